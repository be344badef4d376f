"""scikit-learn's handwritten digits written once as an mmpretrain class-folder dataset.

``sklearn.datasets.load_digits`` ships 1,797 real 8x8 greyscale images of the digits 0-9 inside
the scikit-learn wheel, so the benchmark measures accuracy on data that no one in this project
made, with no download. They are written as PNG files in the layout mmpretrain's
``CustomDataset`` reads (labels in sorted folder order)::

    <root>/train/<digit>/<sklearn index>.png
    <root>/test/<digit>/<sklearn index>.png
    <root>/READY.json      # written last: the split, the counts, the source

The split is fixed: ``train_test_split(test_size=0.2, stratify=y, random_state=0)``, 1,437
training and 360 test images. The whole tree is written into a temporary sibling directory and
renamed into place before the marker is written, so an interrupted run never leaves a
half-written dataset that a later run would trust.
"""
import json
import os
import os.path as osp
import shutil
import tempfile

import numpy as np

from ..utils.errors import UserError
from ..utils.io import atomic_json_dump

#: The marker file, written after every image; its presence means the dataset is complete.
MARKER = 'READY.json'
#: The split's parameters (part of the marker, so a changed split is never mistaken for this one)
SPLIT = dict(test_size=0.2, random_state=0, stratify=True)
CLASSES = tuple(str(d) for d in range(10))


def load_split():
    """The digits and their fixed stratified split.

    Returns:
        dict: ``train`` and ``test``, each a tuple ``(indices, images uint8 (N, 8, 8),
        labels (N,))``; pixel values are sklearn's 0..16 scaled to 0..255.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=SPLIT['test_size'], stratify=labels,
                                   random_state=SPLIT['random_state'])
    train, test = np.sort(train), np.sort(test)
    return dict(train=(train, images[train], labels[train]),
                test=(test, images[test], labels[test]))


def _summary(split):
    return dict(
        source='sklearn.datasets.load_digits',
        split=SPLIT,
        image_size=[8, 8],
        channels=1,
        classes=list(CLASSES),
        counts={name: int(len(idx)) for name, (idx, _, _) in split.items()},
        per_class={name: np.bincount(lab, minlength=10).tolist()
                   for name, (_, _, lab) in split.items()})


def prepare_digits(root):
    """Write the digits dataset under ``root`` unless a complete one is already there.

    Args:
        root (str): the dataset directory, e.g. ``data/bench/digits``.

    Returns:
        dict: the marker's content (``counts``, ``per_class``, ``split``, ...).
    """
    from PIL import Image
    marker = osp.join(root, MARKER)
    split = load_split()
    expected = _summary(split)
    if osp.isfile(marker):
        with open(marker) as f:
            found = json.load(f)
        if found == expected:
            return found
        raise UserError(f'{root} holds another digits split than this benchmark writes '
                        f'({marker} differs); delete {root} and run again')
    if osp.exists(root) and os.listdir(root):
        raise UserError(f'{root} exists without {MARKER} (an interrupted or foreign dataset); '
                        'delete it and run again')
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(root)}.', dir=parent)
    try:
        for name, (indices, images, labels) in split.items():
            for c in CLASSES:
                os.makedirs(osp.join(tmp, name, c))
            for i, img, y in zip(indices, images, labels):
                Image.fromarray(img).save(osp.join(tmp, name, str(y), f'{i:04d}.png'))
        if osp.isdir(root):
            os.rmdir(root)  # empty (checked above)
        os.replace(tmp, root)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)
    atomic_json_dump(expected, marker)
    return expected
