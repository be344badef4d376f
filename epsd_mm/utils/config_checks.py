"""Checking and preparing a loaded config before the Runner is built.

A typo in a data path otherwise surfaces deep inside a dataset's ``load_data_list`` (after the
model is built, sometimes after pruning has run); checking the paths before the Runner is built
answers it in one line, naming the path and the config key that holds it.

The tools share two more steps here: importing the package that the config's ``default_scope``
names (:func:`import_scope`), and adapting a distributed launch to a machine without CUDA
(:func:`adapt_dist_to_cpu`).
"""
import contextlib
import datetime
import importlib
import os
import os.path as osp
import re
import sys
from typing import NamedTuple

import torch

from .checkpoints import checkpoint_problem, local_checkpoint_path
from .errors import UserError

#: The dataloaders :func:`check_data_paths` looks at by default.
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

#: What creates the demo data; named in the message when a missing path lies under data/demo.
DEMO_DATA_HINT = 'create it with: python tools/misc/make_demo_data.py --out data/demo'


def _is_remote(path):
    # URIs (http://, s3://, petrel://...) are served by a file backend, not the local disk.
    return '://' in path


def _join(data_root, path):
    """Join like mmengine's ``BaseDataset._join_prefix``: absolute paths and URIs stay as
    they are, relative ones go under ``data_root``."""
    if not data_root or osp.isabs(path) or _is_remote(path):
        return path
    return osp.join(data_root, path)


def _under_demo(path):
    parts = osp.normpath(osp.abspath(path)).split(osp.sep)
    return any(a == 'data' and b == 'demo' for a, b in zip(parts, parts[1:]))


def _missing(path, what, key):
    msg = (f'{what} does not exist: {path} (set by {key}; fix the path in the config or '
           f'override it with --cfg-options {key}=PATH)')
    if _under_demo(path):
        msg += f'; {DEMO_DATA_HINT}'
    return UserError(msg)


def _leaf_datasets(dataset, key):
    """Yield ``(dataset_cfg, key)`` for every real dataset below dataset wrappers.

    ``ConcatDataset`` holds a list under ``datasets``; ``RepeatDataset``, ``ClassBalancedDataset``,
    ``MultiImageMixDataset``, ``KFoldDataset`` and the like hold one under ``dataset``.
    """
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, sub in enumerate(dataset['datasets']):
            yield from _leaf_datasets(sub, f'{key}.datasets.{i}')
    elif isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'], f'{key}.dataset')
    else:
        yield dataset, key


def _check_dataset(dataset, key):
    backend = (dataset.get('backend_args') or {}).get('backend', 'local')
    if backend != 'local' or dataset.get('download'):
        # Remote storage, or a dataset that fetches its own files: nothing on disk to check yet.
        return
    data_root = dataset.get('data_root') or ''
    if not isinstance(data_root, str):
        return
    if data_root and not _is_remote(data_root) and not osp.exists(data_root):
        raise _missing(data_root, 'data_root', f'{key}.data_root')
    ann_files = dataset.get('ann_file') or ''
    ann_list = [ann_files] if isinstance(ann_files, str) else list(ann_files)
    for i, ann_file in enumerate(a for a in ann_list if a):
        if not isinstance(ann_file, str):
            continue
        path = _join(data_root, ann_file)
        if not _is_remote(path) and not osp.exists(path):
            sub = '' if isinstance(ann_files, str) else f'.{i}'
            raise _missing(path, 'annotation file', f'{key}.ann_file{sub}')
    if not any(ann_list):
        # Class-folder datasets (mmpretrain's CustomDataset without ann_file) scan this folder.
        prefix = dataset.get('data_prefix') or ''
        if isinstance(prefix, dict):
            prefix, sub = prefix.get('img_path') or '', '.img_path'
        else:
            sub = ''
        if prefix and isinstance(prefix, str):
            path = _join(data_root, prefix)
            if not _is_remote(path) and not osp.exists(path):
                raise _missing(path, 'image folder', f'{key}.data_prefix{sub}')


def check_data_paths(cfg, dataloaders=DATALOADER_KEYS):
    """Raise :class:`UserError` if a dataset of ``cfg`` points at a path that does not exist.

    For each dataloader named in ``dataloaders`` that the config sets, every dataset below its
    wrappers is checked: ``data_root`` must exist, and so must each ``ann_file``, joined with
    ``data_root`` the way mmengine's ``BaseDataset`` joins it. A class-folder dataset (no
    ``ann_file``) must have its image folder (``data_prefix``). Paths under ``data/demo`` add the
    command that creates the demo data. Datasets on a remote file backend, and those with
    ``download=True``, are skipped.

    Args:
        cfg (mmengine.Config | dict): The loaded config.
        dataloaders (Sequence[str]): Config keys of the dataloaders to check.
            Defaults to ``('train_dataloader', 'val_dataloader', 'test_dataloader')``.

    Raises:
        UserError: Naming the missing path and the config key that sets it.
    """
    for loader_key in dataloaders:
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for dataset, key in _leaf_datasets(loader['dataset'], f'{loader_key}.dataset'):
            _check_dataset(dataset, key)


#: File name endings mmpretrain's ``CustomDataset`` reads as images by default.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def _class_folders(dataset):
    """The image folder of a class-folder dataset (mmpretrain's ``CustomDataset`` family
    without ``ann_file``, labels from folder names), or None."""
    kind = dataset.get('type', '')
    if not (isinstance(kind, str) and kind.endswith('CustomDataset')) or dataset.get('ann_file') \
            or not dataset.get('with_label', True) or dataset.get('metainfo'):
        return None
    prefix = dataset.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path') or ''
    data_root = dataset.get('data_root') or ''
    if not isinstance(prefix, str) or not isinstance(data_root, str):
        return None
    folder = _join(data_root, prefix)
    return folder if folder and not _is_remote(folder) and osp.isdir(folder) else None


def _holds_an_image(folder):
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def check_class_folders(cfg, dataloaders=DATALOADER_KEYS):
    """Raise :class:`UserError` if class-folder datasets would get shifted labels.

    A class-folder dataset (``CustomDataset`` without ``ann_file`` or ``metainfo``) numbers its
    classes by the sorted names of the sub-folders of its image folder. An empty sub-folder
    still takes a number, and two splits with different sets of folders number the same class
    differently: every later label shifts, and training or testing goes on with wrong labels
    (a test top-1 of 0 %). Checked: no class folder is empty, and every dataset named in
    ``dataloaders`` has the same class folders.

    Args:
        cfg (mmengine.Config | dict): The loaded config.
        dataloaders (Sequence[str]): Config keys of the dataloaders to check.
            Defaults to ``('train_dataloader', 'val_dataloader', 'test_dataloader')``.
    """
    seen = None
    for loader_key in dataloaders:
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for dataset, key in _leaf_datasets(loader['dataset'], f'{loader_key}.dataset'):
            folder = _class_folders(dataset)
            if folder is None:
                continue
            classes = sorted(d.name for d in os.scandir(folder) if d.is_dir())
            for name in classes:
                if not _holds_an_image(osp.join(folder, name)):
                    raise UserError(
                        f'class folder {osp.join(folder, name)} holds no image (read by '
                        f'{key}): classes are numbered by their sorted folder names, so it '
                        f'would shift the label of every later class; remove the folder or put '
                        f'its images in it')
            if seen is not None and classes != seen[1]:
                only_here = sorted(set(classes) - set(seen[1]))
                only_there = sorted(set(seen[1]) - set(classes))
                raise UserError(
                    f'{folder} and {seen[0]} have different class folders (only in the first: '
                    f'{", ".join(only_here) or "none"}; only in the second: '
                    f'{", ".join(only_there) or "none"}): the same label would mean different '
                    'classes in the two splits; give both the same class folders')
            seen = seen or (folder, classes)


def _checkpoint_refs(node, key):
    """Yield ``(path, key)`` for every Pretrained ``init_cfg`` checkpoint below ``node``."""
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            yield node['checkpoint'], f'{key}.checkpoint'
        for k, v in node.items():
            yield from _checkpoint_refs(v, f'{key}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _checkpoint_refs(v, f'{key}.{i}')


def check_checkpoint_paths(cfg):
    """Raise :class:`UserError` if a local checkpoint the run will read is missing or unreadable.

    Checked: ``load_from`` (the checkpoint to resume from when resuming), every
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` inside ``model``, and the
    ``mask_file`` of a ``PruningHook``. Without this check, a missing file surfaces as a
    traceback from inside mmengine's weight loading, and an empty or truncated one as an
    ``EOFError`` or ``RuntimeError`` traceback.
    """
    refs = list(_checkpoint_refs(cfg.get('model'), 'model'))
    if cfg.get('load_from'):
        refs.append((cfg.load_from, '--resume' if cfg.get('resume') else 'load_from'))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and hook.get('mask_file'):
            refs.append((hook['mask_file'], f'custom_hooks.{i}.mask_file'))
    for path, key in refs:
        fix = '--resume PATH' if key == '--resume' else f'--cfg-options {key}=PATH'
        local = local_checkpoint_path(path)
        if local is None:
            continue
        if not osp.isfile(local):
            raise UserError(f'checkpoint does not exist: {path} (set by {key}; train the run '
                            f'that produces it first, or override it with {fix})')
        check_readable(path, f'set by {key}; give a complete checkpoint with {fix}')


def check_readable(path, fix):
    """Raise :class:`UserError` if the local checkpoint ``path`` is unreadable.

    Args:
        path (str): A checkpoint path (``epsdc://`` allowed; remote paths are not checked).
        fix (str): What the message adds in parentheses: where the path comes from and how
            to give another one.
    """
    local = local_checkpoint_path(path)
    problem = None if local is None else checkpoint_problem(local)
    if problem is not None:
        raise UserError(f'checkpoint {path} is unreadable: {problem} ({fix})')


def _hook_configs(cfg):
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        yield hook, f'custom_hooks.{i}'
    for name, hook in (cfg.get('default_hooks') or {}).items():
        yield hook, f'default_hooks.{name}'


def check_hook_args(cfg):
    """Raise :class:`UserError` if a hook of ``cfg`` is given an argument it does not take.

    A typo such as ``--cfg-options custom_hooks.0.sparsty=0.5`` otherwise ends in a
    ``TypeError`` traceback from inside the Runner's hook building. Hooks whose type the
    registry does not know here (another package's, resolved later by the Runner's scope) and
    those that take ``**kwargs`` are left to the Runner.

    Args:
        cfg (mmengine.Config): The loaded config.
    """
    import difflib
    import inspect

    from mmengine.registry import HOOKS
    for hook, key in _hook_configs(cfg):
        if not isinstance(hook, dict) or 'type' not in hook:
            continue
        cls = hook['type'] if isinstance(hook['type'], type) else HOOKS.get(hook['type'])
        if cls is None:
            continue
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        names = [n for n in params if n != 'self']
        for arg in hook:
            # type, and keys such as _scope_ that mmengine's Config adds, are not arguments
            if arg == 'type' or arg.startswith('_') or arg in names:
                continue
            close = difflib.get_close_matches(arg, names, n=1)
            guess = f' (did you mean {close[0]!r}?)' if close else ''
            takes = f'its arguments: {", ".join(names)}' if names else 'it takes no arguments'
            raise UserError(f'{key}.{arg}: {cls.__name__} has no argument {arg!r}{guess}; '
                            f'{takes}')


def check_writable_dir(path, what='work dir', flag='--work-dir'):
    """Create directory ``path`` if needed and raise :class:`UserError` unless a file can be
    written into it, so that a path that is a file, or a read-only place, fails before any
    work is done rather than when the first result is written.

    Args:
        path (str): The directory.
        what (str): How the message names it. Defaults to ``'work dir'``.
        flag (str): The option that sets it. Defaults to ``'--work-dir'``.
    """
    import tempfile
    if osp.exists(path) and not osp.isdir(path):
        raise UserError(f'the {what} {path} is a file, not a directory; give {flag} another '
                        'path')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f'cannot write into the {what} {path}: {e.strerror}; give {flag} a '
                        'directory you can write to') from None


class TypeSwitch(NamedTuple):
    """A config dict whose ``type`` a merge changed while keeping the other keys.

    mmengine merges a child config's dict into its base's key by key, so
    ``model=dict(sd=dict(type='CSKD'))`` over a base's ``dict(type='DLB', tau=3.0)`` gives
    ``dict(type='CSKD', tau=3.0)``: the new type receives the old one's settings, and nothing
    says so. ``_delete_=True`` in the child's dict starts it afresh and records no switch.

    Attributes:
        key (str): Dotted config key of the dict, e.g. ``'model.sd'``.
        old (str): The ``type`` before the merge.
        new (str): The ``type`` after it.
        carried (dict): The keys kept from the old dict (not set by the merged-in one).
        source (str): Which file (or ``--cfg-options``) set the new type.
    """
    key: str
    old: str
    new: str
    carried: dict
    source: str


#: Checks :func:`load_config` runs on every config it loads: callables ``check(cfg, switches)``
#: (``switches`` a list of :class:`TypeSwitch`) that may warn or raise :class:`UserError`.
#: Upper layers append to it (utils imports nothing else of epsd_mm).
CONFIG_CHECKS = []


def _find_switches(child, base, key, source, found):
    """Record in ``found`` every dict of ``child`` merging into ``base`` with another type."""
    if isinstance(base, (list, tuple)):  # --cfg-options' list indices: custom_hooks.0.x=...
        base = {str(i): v for i, v in enumerate(base)}
    if not isinstance(child, dict) or not isinstance(base, dict) or child.get('_delete_'):
        return
    old, new = base.get('type'), child.get('type')
    if isinstance(old, str) and isinstance(new, str) and old != new:
        carried = {k: v for k, v in base.items() if k not in child and k != 'type'}
        if carried:
            found.append(TypeSwitch(key, old, new, carried, source))
    for k, v in child.items():
        if isinstance(v, dict) and k in base:
            _find_switches(v, base[k], f'{key}.{k}' if key else str(k), source, found)


@contextlib.contextmanager
def _recording_type_switches(found, source=None):
    r"""Observe mmengine's own merges (``Config._merge_a_into_b``, used for ``_base_``
    inheritance and ``--cfg-options``) and record their :class:`TypeSwitch` entries in ``found``.
    Only the outermost call of each merge is inspected; the merge itself is unchanged."""
    from mmengine.config import Config
    original = Config.__dict__['_merge_a_into_b']
    merge = original.__func__
    depth = [0]

    def observed(a, b, allow_list_keys=False):
        if depth[0] == 0:
            # a _base_ merge happens in Config._file2dict, whose `filename` is the child
            where = source or sys._getframe(1).f_locals.get('filename') or 'a config file'
            _find_switches(a, b, '', str(where), found)
        depth[0] += 1
        try:
            return merge(a, b, allow_list_keys)
        finally:
            depth[0] -= 1

    Config._merge_a_into_b = staticmethod(observed)
    try:
        yield found
    finally:
        Config._merge_a_into_b = original


def load_config(path, cfg_options=None):
    r"""``Config.fromfile(path)`` merged with ``cfg_options``; a missing config file, one with a
    syntax error or an undefined name, or a missing ``_base_`` file raises :class:`UserError`
    instead of a traceback. Then every check of :data:`CONFIG_CHECKS` runs, with the
    :class:`TypeSwitch` entries that inheritance and ``cfg_options`` made.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides. Defaults to None.

    Returns:
        mmengine.Config: The config.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise UserError(f'config file not found: {path}')
    switches = []
    try:
        with _recording_type_switches(switches):
            cfg = Config.fromfile(path)
    except SyntaxError as e:
        raise UserError(f'config {path} is not valid Python: {e}') from None
    except NameError as e:  # the config's code, run by mmengine, uses an undefined name
        raise UserError(f'config {path} cannot be run: {e} (define it in the config or in a '
                        '_base_ it inherits from)') from None
    except FileNotFoundError as e:  # a _base_ file that is not there
        found = re.search(r'"(.+)" does not exist', str(e))  # mmengine's own message
        missing = e.filename or (found.group(1) if found else str(e))
        raise UserError(f'config {path} inherits from a file that does not exist: {missing} '
                        '(fix its _base_ entry)') from None
    if cfg_options:
        with _recording_type_switches(switches, '--cfg-options'):
            cfg.merge_from_dict(cfg_options)
    for check in CONFIG_CHECKS:
        check(cfg, switches)
    return cfg


def import_scope(cfg):
    """Import the package named by ``cfg.default_scope`` and register all its modules.

    mmpretrain and mmdet each offer ``<scope>.utils.register_all_modules``; it is called with
    ``init_default_scope=False`` because the Runner sets the default scope from the config
    itself. A config without ``default_scope`` is left alone.

    Args:
        cfg (mmengine.Config): The loaded config.

    Returns:
        str | None: The scope.
    """
    scope = cfg.get('default_scope')
    if not scope:
        return None
    try:
        utils = importlib.import_module(f'{scope}.utils')
    except ModuleNotFoundError as e:
        if e.name == scope:
            raise UserError(
                f'the config\'s default_scope is {scope!r}, but no package {scope!r} is '
                f'installed (use mmpretrain for classification or mmdet for detection)') from None
        if e.name == f'{scope}.utils':
            return scope  # a package without register_all_modules: nothing to register
        raise
    register = getattr(utils, 'register_all_modules', None)
    if register is not None:
        register(init_default_scope=False)
    return scope


def adapt_dist_to_cpu(cfg, launcher):
    """Make a distributed launch work on a machine without CUDA; a no-op otherwise.

    mmengine 0.10.7 assumes a GPU per process: its PyTorch launcher calls
    ``torch.cuda.set_device`` before ``init_process_group``, and its default model wrapper
    passes ``device_ids=[LOCAL_RANK]``, which ``DistributedDataParallel`` rejects for a CPU model.
    Without CUDA this function therefore sets ``env_cfg.dist_cfg.backend='gloo'``, gives a
    ``DistributedDataParallel`` model wrapper ``device_ids=None``, and for ``launcher='pytorch'``
    initializes the gloo process group itself (from the ``RANK``/``WORLD_SIZE``/``MASTER_*``
    variables torchrun sets), so that the Runner finds it initialized and skips its own set-up.

    Args:
        cfg (mmengine.Config): The loaded config; changed in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: Whether the config was adapted.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    from mmengine.config import ConfigDict
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    env_cfg = cfg.get('env_cfg') or ConfigDict()
    dist_cfg = env_cfg.get('dist_cfg') or ConfigDict()
    dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg['env_cfg'] = env_cfg

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # What the Runner builds by default, minus the GPU id.
        cfg['model_wrapper_cfg'] = ConfigDict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper_type = wrapper.get('type', 'MMDistributedDataParallel')
        if isinstance(wrapper_type, str):
            wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
        if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
            wrapper.setdefault('device_ids', None)

    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
            if var not in os.environ:
                raise UserError(
                    f'--launcher pytorch needs the environment variable {var}, which torchrun '
                    f'sets; start the tool with tools/dist_train.sh or tools/dist_test.sh')
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    return True


def finish_dist():
    """Tear the process group down before the interpreter exits.

    A DDP-wrapped model holds a reference to the process group. Left alive until interpreter
    shutdown, the group is destroyed there with gloo's threads still joinable, and the rank
    dies with ``terminate called without an active exception`` (SIGABRT), failing the whole
    torchrun launch after all its work is done (about 1 launch in 6 on a loaded 2-core
    machine; never in 50 once the model was freed first). So the caller drops its runner
    (``del runner``) before calling this; the garbage collection here frees the runner's
    reference cycles, and with them the wrapped model, before the group is destroyed. A no-op
    without distributed training.
    """
    import gc

    import torch.distributed as torch_dist
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gc.collect()
    torch_dist.barrier()
    torch_dist.destroy_process_group()
