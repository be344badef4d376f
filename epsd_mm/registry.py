"""epsd_mm's own registries.

Pruning criteria and self-distillation methods get registries of their own, so that an unknown
name can be answered with the list of valid ones. Every other component registers into the
registry its framework already builds from: hooks and samplers into mmengine's root registries
(found from mmpretrain- and mmdet-scoped configs alike), models, losses, transforms and datasets
into mmpretrain's or mmdet's.
"""
from mmengine.registry import Registry

from .utils.errors import UserError

#: Pruning-at-initialization criteria (``random``, ``snip``, ..., ``epsd``).
CRITERIA = Registry('pruning criterion', scope='epsd_mm', locations=['epsd_mm.pruning'])

#: Self-distillation methods (``CSKD``, ``PSKD``, ``DLB``) run by ``SDImageClassifier``.
SD_METHODS = Registry('self-distillation method', scope='epsd_mm', locations=['epsd_mm.distill'])


def build_checked(registry, cfg, what, **default_args):
    """Build ``cfg`` from ``registry``; an unknown ``type`` raises :class:`UserError` listing the
    valid names. ``cfg`` may be a dict or a plain name (``'snip'``)."""
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    cfg = dict(cfg)
    name = cfg.get('type')
    registry.import_from_location()
    valid = sorted(registry.module_dict)
    if not isinstance(name, str) or name not in registry.module_dict:
        raise UserError(f'unknown {what} {name!r}; valid names: {", ".join(valid)}')
    # instantiate directly: registry.build() would try to switch to the config's default scope,
    # which these scope-less registries do not have
    cls = registry.get(cfg.pop('type'))
    try:
        return cls(**dict(default_args, **cfg))
    except (TypeError, ValueError) as e:  # a misspelt or mistyped option in the config
        raise UserError(f'invalid arguments for {what} {name!r}: {e}') from None
