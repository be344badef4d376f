"""Fashion-MNIST for the benchmark: find the four official IDX files, unpack them once, split.

mmpretrain's own ``FashionMNIST`` dataset class reads the *unzipped* files from its
``data_root`` (with ``download=False`` it never touches the network)::

    <root>/train-images-idx3-ubyte   # 60,000 x 28 x 28 uint8
    <root>/train-labels-idx1-ubyte
    <root>/t10k-images-idx3-ubyte    # 10,000 x 28 x 28 uint8
    <root>/t10k-labels-idx1-ubyte

:func:`prepare_fashion` puts them there: a file already unzipped under ``root`` is used as it
is; otherwise its gzipped form (``<name>.gz``) is taken from ``root`` itself or from
:data:`SYSTEM_DIR`, where Debian's package ``dataset-fashion-mnist`` installs them. Each file is
decompressed into a temporary file beside its final name and renamed into place, so an
interrupted run never leaves a truncated file that a later run would trust. Every file's IDX
header is checked against its size before use.

:func:`split_indices` then draws the benchmark's fixed, stratified subsets of the 60,000 training
images: a validation split and, disjoint from it, the training subset. Both depend only on the
labels and a seed, never on the run.
"""
import gzip
import os
import os.path as osp
import shutil
import struct

import numpy as np

from ..utils.errors import UserError
from ..utils.io import atomic_path

#: where ``apt-get install dataset-fashion-mnist`` puts the gzipped files
SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
#: the files FashionMNIST reads, with the IDX magic number of each (uint8 images of 3
#: dimensions, uint8 labels of 1); the official files hold 60,000 and 10,000 samples
FILES = {
    'train-images-idx3-ubyte': 0x803,
    'train-labels-idx1-ubyte': 0x801,
    't10k-images-idx3-ubyte': 0x803,
    't10k-labels-idx1-ubyte': 0x801,
}
#: the side of every image
IMAGE_SIZE = 28
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle boot')


def idx_header(head):
    """``(magic, dims)`` of an IDX file from its first bytes (big-endian, ``0x08`` = uint8)."""
    if len(head) < 4:
        return None, ()
    magic = struct.unpack('>I', head[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or not 1 <= ndim <= 3 or len(head) < 4 + 4 * ndim:
        return magic, ()
    return magic, struct.unpack(f'>{ndim}I', head[4:4 + 4 * ndim])


def check_idx(path, magic):
    """Check that ``path`` is a complete uint8 IDX file with ``magic`` (images: 28 x 28).

    Returns:
        tuple[int, ...]: its dimensions.
    """
    with open(path, 'rb') as f:
        found, dims = idx_header(f.read(16))
    if found != magic or not dims:
        shown = 'none' if found is None else f'{found:#x}'
        raise UserError(f'{path} is not an IDX file of the expected kind (magic {shown}, '
                        f'expected {magic:#x}); replace it with the official Fashion-MNIST file')
    if len(dims) == 3 and tuple(dims[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f'{path} holds images of {dims[1]}x{dims[2]} pixels, expected '
                        f'{IMAGE_SIZE}x{IMAGE_SIZE}; replace it with the official Fashion-MNIST '
                        'file')
    size = 4 + 4 * len(dims) + int(np.prod(dims))
    if osp.getsize(path) != size:
        raise UserError(f'{path} has {osp.getsize(path)} bytes, its header says {size} '
                        '(truncated or corrupt); delete it and run again')
    return tuple(dims)


def _missing_message(root, missing):
    return (f'Fashion-MNIST not found: put the four official files {", ".join(FILES)} '
            f'(gzipped as .gz or not) into {root}, or install them with '
            f'`apt-get install dataset-fashion-mnist` (into {SYSTEM_DIR}); missing: '
            f'{", ".join(missing)}')


def prepare_fashion(root, sources=None):
    """Make the four unzipped IDX files available under ``root``.

    Args:
        root (str): the ``data_root`` of ``FashionMNIST``, e.g. ``data/fashion-mnist``.
        sources (Sequence[str], optional): where to look for ``<name>.gz`` when ``root`` lacks
            ``<name>``. Defaults to ``(root, SYSTEM_DIR)``.

    Returns:
        dict: file name -> its dimensions.
    """
    sources = (root, SYSTEM_DIR) if sources is None else tuple(sources)
    found, missing = {}, []
    for name in FILES:
        target = osp.join(root, name)
        if osp.isfile(target):
            found[name] = target
            continue
        gz = next((osp.join(d, name + '.gz') for d in sources
                   if osp.isfile(osp.join(d, name + '.gz'))), None)
        if gz is None:
            missing.append(name)
        else:
            found[name] = gz
    if missing:
        raise UserError(_missing_message(root, missing))
    dims = {}
    for name, path in found.items():
        target = osp.join(root, name)
        if path != target:
            with atomic_path(target) as tmp:
                try:
                    with gzip.open(path, 'rb') as src, open(tmp, 'wb') as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (OSError, EOFError) as e:
                    raise UserError(f'cannot decompress {path}: {e}; replace it with the '
                                    'official Fashion-MNIST file') from None
                check_idx(tmp, FILES[name])
        dims[name] = check_idx(target, FILES[name])
    if dims['train-images-idx3-ubyte'][0] != dims['train-labels-idx1-ubyte'][0] or \
            dims['t10k-images-idx3-ubyte'][0] != dims['t10k-labels-idx1-ubyte'][0]:
        raise UserError(f'the image and label files under {root} hold different numbers of '
                        'samples; replace them with the official Fashion-MNIST files')
    return dims


def read_labels(path):
    """The labels of an IDX label file as an int64 array."""
    with open(path, 'rb') as f:
        data = f.read()
    _, dims = idx_header(data[:8])
    return np.frombuffer(data, dtype=np.uint8, offset=8, count=dims[0]).astype(np.int64)


def split_indices(labels, num_train, num_val, seed=0):
    """Fixed stratified subsets of the training file: a validation split and a training subset.

    Every class is shuffled with ``numpy.random.default_rng(seed)``; the validation split takes
    the first ``num_val / C`` images of each class, the training subset the next
    ``num_train / C`` (``C`` classes), so the two never overlap and each holds every class
    equally often (remainders go to the lowest class ids). The training subset is the same
    whether a run is evaluated on the test set or on the validation split.

    Args:
        labels (np.ndarray): the labels of the whole training file.
        num_train (int): size of the training subset.
        num_val (int): size of the validation split (0 for none).
        seed (int): the split's seed. Defaults to 0.

    Returns:
        tuple[list[int], list[int]]: sorted training and validation indices into the file.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)

    def quota(n):
        q = np.full(len(classes), n // len(classes))
        q[:n % len(classes)] += 1
        return q

    q_train, q_val = quota(int(num_train)), quota(int(num_val))
    train, val = [], []
    for c, nt, nv in zip(classes, q_train, q_val):
        members = rng.permutation(np.flatnonzero(labels == c))
        if nt + nv > len(members):
            raise UserError(f'class {c} has {len(members)} training images, fewer than the '
                            f'{nt} + {nv} that {num_train} training and {num_val} validation '
                            'images need; lower --train-images')
        val.extend(members[:nv].tolist())
        train.extend(members[nv:nv + nt].tolist())
    return sorted(train), sorted(val)


def fashion_info(root, num_train, num_val, seed=0, eval_split='test'):
    """The split used by a sweep: indices and a summary for ``results.json``.

    Returns:
        dict: ``train_indices``, ``val_indices``, ``counts`` and ``per_class``.
    """
    labels = read_labels(osp.join(root, 'train-labels-idx1-ubyte'))
    test = read_labels(osp.join(root, 't10k-labels-idx1-ubyte'))
    train, val = split_indices(labels, num_train, num_val, seed)
    evaluated = labels[val] if eval_split == 'val' else test
    return dict(
        train_indices=train, val_indices=val,
        counts=dict(train=len(train), val=len(val), test=int(len(test)),
                    evaluated=int(len(evaluated))),
        per_class=dict(train=np.bincount(labels[train], minlength=10).tolist(),
                       evaluated=np.bincount(evaluated, minlength=10).tolist()))


def write_idx(path, array):
    """Write a uint8 array as an IDX file (the format of the official files), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack('>I', 0x800 | array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(header)
            f.write(array.tobytes())
