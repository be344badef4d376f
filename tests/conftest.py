"""Session fixtures shared by the whole suite: small demo data and tiny real-format datasets.

Both are generated once per test session into pytest's temporary directory, by the project's
own generators (``epsd_mm.datasets``), so they are exactly the formats the configs read.
"""
import pytest

#: Sizes of the session's demo data: enough for a few iterations of every demo config.
SMALL_DEMO = dict(cls=dict(train_per_class=8, val_per_class=4),
                  voc=dict(num_trainval=8, num_test=4))


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """A small copy of the demo data (``epsd_mm.datasets.DemoData``).

    ``.root`` replaces ``data/demo`` in a demo config; ``.cls_root`` is the classification
    ``data_root`` (5 classes x 8 train, x 4 val images), ``.voc_root`` the detection
    ``data_root`` (the ``VOCdevkit`` dir: 8 trainval, 4 test images); ``.classes`` the names.
    Read-only: tests that modify data make their own copy.
    """
    from epsd_mm.datasets import make_demo_data
    return make_demo_data(str(tmp_path_factory.mktemp('demo_data')), progress=False,
                          **SMALL_DEMO)


@pytest.fixture(scope='session')
def tiny_formats(tmp_path_factory):
    """Tiny copies of every classification format (``epsd_mm.datasets.write_tiny_formats``).

    A dict of ``data_root`` paths: ``cifar10``, ``cifar100`` (load them with ``CIFAR10Local`` /
    ``CIFAR100Local``: mmpretrain's classes check the official md5s), ``imagenet``,
    ``tinyimagenet``, ``cub``; ``details`` holds what each writer returned (labels, paths).
    Read-only.
    """
    from epsd_mm.datasets import write_tiny_formats
    return write_tiny_formats(str(tmp_path_factory.mktemp('tiny_formats')))


def _scopes_restored():
    """Undo any mmengine ``DefaultScope`` created while this generator is suspended.

    The current default scope is process-global (the most recently created ``DefaultScope``);
    a test that builds a detector leaves 'mmdet' current, and every later test that builds an
    mmpretrain component by name would then look in mmdet's registries.
    """
    from mmengine.registry import DefaultScope
    before = list(DefaultScope._instance_dict)
    yield
    for name in list(DefaultScope._instance_dict):
        if name not in before:
            del DefaultScope._instance_dict[name]


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Each test starts from the scope it found."""
    yield from _scopes_restored()


@pytest.fixture(autouse=True, scope='module')
def _restore_default_scope_of_module():
    """The same for a module's fixtures (a module-scoped Runner, for one): they are set up
    before the per-test snapshot, so only a module-level one removes their scopes."""
    yield from _scopes_restored()
