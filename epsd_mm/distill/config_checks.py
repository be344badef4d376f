"""Config checks of the SD method, run by the tools when they load a config.

Switching the SD method by inheritance (``model=dict(sd=dict(type='CSKD'))`` over a DLB base)
keeps the base method's other settings, because mmengine merges dicts key by key: CS-KD would
train with DLB's ``tau=3.0`` instead of its own 4, and DLB's two-view pipeline would load a
second view CS-KD never looks at. :func:`check_sd_config` makes both visible:

* a carried setting the new method does not take is an error (it would fail when the model is
  built, with a message that does not say where the setting came from);
* a carried setting it does take, whose value differs from the new method's default, is a
  warning naming the value, the default and the way to switch (``_delete_=True``);
* a train pipeline with more views per sample than the method uses is a warning.

It is registered in :data:`epsd_mm.utils.config_checks.CONFIG_CHECKS`, so
:func:`~epsd_mm.utils.config_checks.load_config` (every tool) runs it.
"""
import inspect
import warnings

from ..registry import SD_METHODS
from ..utils.config_checks import CONFIG_CHECKS
from ..utils.errors import UserError


def _method_class(sd):
    name = sd.get('type') if isinstance(sd, dict) else sd
    if not isinstance(name, str):
        return None
    SD_METHODS.import_from_location()
    return SD_METHODS.module_dict.get(name)


def _fmt(settings):
    return ', '.join(f'{k}={v!r}' for k, v in settings.items())


def check_switch(switch):
    """Raise or warn for one :class:`~epsd_mm.utils.config_checks.TypeSwitch` to an SD
    method (other switches are left alone)."""
    cls = SD_METHODS.module_dict.get(switch.new)
    if cls is None or SD_METHODS.module_dict.get(switch.old) is None:
        return
    params = inspect.signature(cls.__init__).parameters
    refused = {k: v for k, v in switch.carried.items() if k not in params}
    changed = {k: v for k, v in switch.carried.items()
               if k in params and params[k].default != v}
    leaf = switch.key.rsplit('.', 1)[-1]
    fresh = (f'start it afresh with {leaf}=dict(_delete_=True, type={switch.new!r}, ...) in '
             f'{switch.key.rsplit(".", 1)[0] or "the config"}, or inherit a base of the '
             f'{switch.new} method')
    origin = (f'{switch.source} changes {switch.key} from {switch.old} to {switch.new}, and '
              f'mmengine keeps the other keys of the merged dict')
    if refused:
        raise UserError(f'{origin}: {switch.new} does not take {switch.old}\'s '
                        f'{_fmt(refused)}; {fresh}')
    if changed:
        defaults = ', '.join(f'{k}={params[k].default!r}' for k in changed)
        warnings.warn(f'{origin}: {switch.new} trains with {switch.old}\'s {_fmt(changed)} '
                      f'(its own default: {defaults}). To use {switch.new}\'s defaults, '
                      f'{fresh}; to keep the values, set them in the config itself.',
                      UserWarning, stacklevel=2)


def _pipeline_views(pipeline):
    """The ``num_views`` of a ``MultiView`` step of ``pipeline`` (1 without one)."""
    for step in pipeline or []:
        if isinstance(step, dict) and step.get('type') in ('MultiView', 'mmpretrain.MultiView'):
            views = step.get('num_views', 1)  # mmpretrain: an int, or one per transform list
            return sum(views) if isinstance(views, (list, tuple)) else int(views)
    return 1


def check_views(cfg):
    """Warn when the train pipeline makes more views per sample than the SD method uses."""
    model = cfg.get('model') or {}
    cls = _method_class(model.get('sd')) if isinstance(model, dict) else None
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    if cls is None or not isinstance(dataset, dict):
        return
    views = _pipeline_views(dataset.get('pipeline'))
    if views > cls.num_views:
        warnings.warn(
            f'the SD method {cls.__name__} uses {cls.num_views} view(s) of every training '
            f'sample, but the train pipeline\'s MultiView makes {views}: the others are loaded '
            'and preprocessed for nothing (a pipeline inherited from a DLB base?). Give '
            'train_dataloader.dataset.pipeline without MultiView and drop '
            "collate_fn=dict(type='multiview_collate').", UserWarning, stacklevel=2)


def check_sd_config(cfg, switches):
    """The :data:`~epsd_mm.utils.config_checks.CONFIG_CHECKS` entry: every SD method switch
    (:func:`check_switch`) and the views of the train pipeline (:func:`check_views`)."""
    SD_METHODS.import_from_location()
    for switch in switches:
        check_switch(switch)
    check_views(cfg)


if check_sd_config not in CONFIG_CHECKS:
    CONFIG_CHECKS.append(check_sd_config)

__all__ = ['check_sd_config', 'check_switch', 'check_views']
