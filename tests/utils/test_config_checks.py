"""check_data_paths names the missing path and the config key that sets it; the tools'
config preparation (load_config, import_scope, adapt_dist_to_cpu) and teardown (finish_dist)."""
import gc
import os.path as osp
import weakref

import pytest
import torch
from mmengine.config import Config

from epsd_mm.utils.config_checks import (
    DEMO_DATA_HINT,
    adapt_dist_to_cpu,
    check_data_paths,
    finish_dist,
    import_scope,
    load_config,
)
from epsd_mm.utils.errors import UserError


def voc_like(root, ann='VOC2007/ImageSets/Main/trainval.txt'):
    return dict(type='VOCDataset', data_root=root, ann_file=ann,
                data_prefix=dict(sub_data_root='VOC2007/'))


@pytest.fixture
def voc_root(tmp_path):
    """A data_root holding one annotation list, as the VOC layout has it."""
    root = tmp_path / 'VOCdevkit'
    (root / 'VOC2007' / 'ImageSets' / 'Main').mkdir(parents=True)
    (root / 'VOC2007' / 'ImageSets' / 'Main' / 'trainval.txt').write_text('000001\n')
    return str(root)


def test_existing_paths_pass(voc_root, tmp_path):
    cls_root = tmp_path / 'cls'
    (cls_root / 'train' / 'a').mkdir(parents=True)
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='ConcatDataset', datasets=[voc_like(voc_root), voc_like(voc_root)]))),
        val_dataloader=dict(dataset=dict(type='CustomDataset', data_root=str(cls_root),
                                         data_prefix='train')),
        test_dataloader=None))
    check_data_paths(cfg)


def test_missing_data_root_is_named(tmp_path):
    missing = str(tmp_path / 'nowhere')
    cfg = Config(dict(train_dataloader=dict(dataset=voc_like(missing))))
    with pytest.raises(UserError) as e:
        check_data_paths(cfg)
    msg = str(e.value)
    assert msg.startswith(f'data_root does not exist: {missing} ')
    assert '--cfg-options train_dataloader.dataset.data_root=PATH' in msg
    assert DEMO_DATA_HINT not in msg


def test_missing_ann_file_inside_wrappers_is_named(voc_root):
    bad = voc_like(voc_root, ann='VOC2012/ImageSets/Main/trainval.txt')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', times=3,
                      dataset=dict(type='ConcatDataset', datasets=[voc_like(voc_root), bad])))))
    with pytest.raises(UserError) as e:
        check_data_paths(cfg)
    joined = osp.join(voc_root, 'VOC2012/ImageSets/Main/trainval.txt')
    assert str(e.value).startswith(f'annotation file does not exist: {joined} ')
    assert 'train_dataloader.dataset.dataset.datasets.1.ann_file' in str(e.value)


def test_absolute_ann_file_is_not_joined(voc_root, tmp_path):
    absolute = str(tmp_path / 'lists' / 'val.txt')
    cfg = Config(dict(val_dataloader=dict(dataset=voc_like(voc_root, ann=absolute))))
    with pytest.raises(UserError, match=f'annotation file does not exist: {absolute} '):
        check_data_paths(cfg)


def test_missing_class_folder_is_named(tmp_path):
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='CustomDataset', data_root=str(tmp_path), data_prefix=dict(img_path='val')))))
    with pytest.raises(UserError, match='image folder does not exist: .*val .*'
                                        r'test_dataloader\.dataset\.data_prefix\.img_path'):
        check_data_paths(cfg)


def test_demo_paths_say_how_to_create_them(tmp_path):
    demo = str(tmp_path / 'data' / 'demo' / 'cls')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='CustomDataset', data_root=demo,
                                                         data_prefix='train'))))
    with pytest.raises(UserError) as e:
        check_data_paths(cfg)
    assert str(e.value).endswith(
        '; create it with: python tools/misc/make_demo_data.py --out data/demo')


def test_only_the_named_dataloaders_are_checked(voc_root, tmp_path):
    cfg = Config(dict(train_dataloader=dict(dataset=voc_like(voc_root)),
                      test_dataloader=dict(dataset=voc_like(str(tmp_path / 'gone')))))
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    with pytest.raises(UserError, match='gone'):
        check_data_paths(cfg)


def test_remote_and_downloading_datasets_are_skipped(tmp_path):
    cfg = Config(dict(
        train_dataloader=dict(dataset=voc_like('s3://bucket/VOCdevkit/')),
        val_dataloader=dict(dataset=dict(type='CIFAR10', data_root=str(tmp_path / 'c'),
                                         download=True)),
        test_dataloader=dict(dataset=dict(voc_like(str(tmp_path / 'x')),
                                          backend_args=dict(backend='petrel')))))
    check_data_paths(cfg)


def test_load_config_errors(tmp_path):
    with pytest.raises(UserError, match='config file not found: .*missing.py'):
        load_config(str(tmp_path / 'missing.py'))
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    with pytest.raises(UserError, match='is not valid Python'):
        load_config(str(broken))
    good = tmp_path / 'good.py'
    good.write_text("default_scope = 'mmpretrain'\na = dict(b=1)\n")
    cfg = load_config(str(good), {'a.b': 2})
    assert cfg.a.b == 2


def test_import_scope():
    assert import_scope(Config(dict(default_scope='mmpretrain'))) == 'mmpretrain'
    assert import_scope(Config(dict())) is None
    with pytest.raises(UserError, match="default_scope is 'mmnothing'"):
        import_scope(Config(dict(default_scope='mmnothing')))


@pytest.mark.skipif(torch.cuda.is_available(), reason='adapts only machines without CUDA')
def test_adapt_dist_to_cpu():
    assert not adapt_dist_to_cpu(Config(dict()), 'none')
    # 'mpi' leaves the process group to mmengine, so nothing is initialized here
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
    assert adapt_dist_to_cpu(cfg, 'mpi')
    assert cfg.env_cfg.dist_cfg.to_dict() == dict(backend='gloo', timeout=60)
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None
    # a configured DDP wrapper keeps its settings and only loses the GPU id
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                             find_unused_parameters=True)))
    adapt_dist_to_cpu(cfg, 'slurm')
    assert cfg.model_wrapper_cfg.to_dict() == dict(
        type='MMDistributedDataParallel', find_unused_parameters=True, device_ids=None)
    assert not torch.distributed.is_initialized()


class _RunnerLike:
    """A DDP model inside a reference cycle, as mmengine's Runner and its loops hold theirs."""

    def __init__(self, model):
        self.model = model
        self.loop = dict(runner=self)


def test_finish_dist_frees_the_ddp_model_before_destroying_the_group(tmp_path, monkeypatch):
    """A DDP model still alive when the process group is destroyed at interpreter shutdown made
    gloo ranks abort after a finished run; finish_dist collects the dropped runner's cycle
    first, then destroys the group."""
    import torch.distributed as torch_dist
    assert not torch_dist.is_initialized()
    torch_dist.init_process_group('gloo', init_method=f'file://{tmp_path / "init"}', rank=0,
                                  world_size=1)
    try:
        gc.disable()  # no automatic collection may free the cycle before finish_dist does
        runner = _RunnerLike(torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2)))
        model = weakref.ref(runner.model)
        del runner
        assert model() is not None  # only a collection frees a cycle

        alive_at_destroy = []
        destroy = torch_dist.destroy_process_group

        def recording_destroy(*args, **kwargs):
            alive_at_destroy.append(model() is not None)
            return destroy(*args, **kwargs)

        monkeypatch.setattr(torch_dist, 'destroy_process_group', recording_destroy)
        finish_dist()
    finally:
        gc.enable()
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    assert alive_at_destroy == [False]
    assert not torch_dist.is_initialized()


def test_finish_dist_without_distributed_is_a_no_op():
    import torch.distributed as torch_dist
    assert not torch_dist.is_initialized()
    finish_dist()
    assert not torch_dist.is_initialized()
