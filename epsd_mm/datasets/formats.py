"""Classification dataset formats: the glue mmpretrain lacks, and tiny copies in the real formats.

Registered into mmpretrain's ``DATASETS``:

- :class:`CIFAR10Local` / :class:`CIFAR100Local`: mmpretrain's CIFAR classes minus only their
  md5 check against the official release, for local copies that are not the official files
  (the tiny copies of the tests, or a re-pickled subset).
- :class:`TinyImageNet`: Tiny-ImageNet-200 in its real layout (mmpretrain has no class for it).
- :class:`CheckedCustomDataset`: mmpretrain's ``CustomDataset`` that names a missing path (and,
  through ``missing_hint``, the command that creates it) instead of failing deep inside.

The ``write_tiny_*`` helpers write a few images in each real on-disk format (CIFAR-10/100
pickled batches, ImageNet, Tiny-ImageNet, CUB-200-2011), so that tests build every shipped
config's dataset, and run its pipeline, without the real data.
"""
import os
import os.path as osp
import pickle

import numpy as np
from mmengine.fileio import exists, isdir, join_path, list_dir_or_file, list_from_file
from mmpretrain.datasets import CIFAR10, CIFAR100, BaseDataset, CustomDataset
from mmpretrain.datasets.categories import CUB_CATEGORIES
from mmpretrain.registry import DATASETS
from PIL import Image

from ..utils.errors import UserError
from .demo import SHAPES, render_classification_image
from .image_errors import NamesUnreadableImages


def _missing(what, path, hint=None):
    msg = f'{what} not found: {path}'
    if hint:
        msg += f'; {hint}'
    return UserError(msg)


class _LocalCIFARMixin:
    """What ``CIFAR10Local`` and ``CIFAR100Local`` change: no md5, no download, clear errors."""

    def __init__(self, *args, download=False, **kwargs):
        if download:
            raise UserError(f'{type(self).__name__} reads a local copy and never downloads; '
                            f'use mmpretrain\'s CIFAR10 or CIFAR100 for the official files')
        super().__init__(*args, download=False, **kwargs)

    def load_data_list(self):
        root = self.data_prefix['root']
        for name, _ in self.train_list + self.test_list:
            path = join_path(root, self.base_folder, name)
            if not exists(path):
                raise _missing(f'{type(self).__name__} file', path,
                               f'expected the pickled batches of the python version under '
                               f'{join_path(root, self.base_folder)}')
        return super().load_data_list()


@DATASETS.register_module()
class CIFAR10Local(_LocalCIFARMixin, CIFAR10):
    """CIFAR-10 from a local copy in the official format, without the md5 check.

    mmpretrain's ``CIFAR10`` compares every file's md5 with the official release and, on a
    mismatch, downloads the archive; it has no option to skip that check, so a copy that is
    not byte-identical to the release (the tiny copies the tests write, a subset) can never
    load. This class changes only that: the same files (``cifar-10-batches-py/data_batch_1``
    ... ``data_batch_5``, ``test_batch``, ``batches.meta``), parsed by mmpretrain's own code,
    with no md5 and no download; a missing file raises :class:`UserError` naming it. Use
    mmpretrain's ``CIFAR10`` for the real data set.

    Args:
        data_root (str): The directory holding ``cifar-10-batches-py``. Defaults to ''.
        split (str): 'train' or 'test'. Defaults to 'train'.
        metainfo (dict, optional): Meta information, e.g. ``classes``. Defaults to None.
        download (bool): Must be False (kept for config compatibility). Defaults to False.
        **kwargs: Other arguments of mmpretrain's ``CIFAR10``.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = dict(CIFAR10.meta, md5=None)


@DATASETS.register_module()
class CIFAR100Local(_LocalCIFARMixin, CIFAR100):
    """CIFAR-100 from a local copy in the official format, without the md5 check.

    See :class:`CIFAR10Local`; the files are ``cifar-100-python/train``, ``test`` and ``meta``.

    Args:
        data_root (str): The directory holding ``cifar-100-python``. Defaults to ''.
        split (str): 'train' or 'test'. Defaults to 'train'.
        metainfo (dict, optional): Meta information, e.g. ``classes``. Defaults to None.
        download (bool): Must be False (kept for config compatibility). Defaults to False.
        **kwargs: Other arguments of mmpretrain's ``CIFAR100``.
    """

    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = dict(CIFAR100.meta, md5=None)


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """Tiny-ImageNet-200 in the layout of its official archive.

    ::

        tiny-imagenet-200
        ├── wnids.txt                     # one WordNet id per class
        ├── words.txt                     # wnid -> names (not needed here)
        ├── train/<wnid>/images/<wnid>_<k>.JPEG
        ├── val/images/val_<k>.JPEG
        ├── val/val_annotations.txt       # "val_<k>.JPEG<TAB><wnid><TAB>x0<TAB>y0<TAB>x1<TAB>y1"
        └── test/images/test_<k>.JPEG     # no labels

    Class ``i`` is the ``i``-th wnid in sorted order, the order torchvision's ``ImageFolder``
    gives ``train/``, so labels agree with the common PyTorch recipes. The classes in the
    metainfo are the wnids unless ``metainfo=dict(classes=...)`` names them (one per wnid).

    Args:
        data_root (str): The ``tiny-imagenet-200`` directory.
        split (str): 'train', 'val' or 'test' (no labels). Defaults to 'train'.
        metainfo (dict, optional): Meta information, e.g. ``classes``. Defaults to None.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``, ...).
    """

    IMG_EXTENSIONS = ('.jpeg', '.jpg', '.png')

    def __init__(self, data_root, split='train', metainfo=None, **kwargs):
        if split not in ('train', 'val', 'test'):
            raise UserError(f"TinyImageNet split must be 'train', 'val' or 'test', got {split!r}")
        self.split = split
        super().__init__(ann_file='', metainfo=metainfo, data_root=data_root,
                         data_prefix=split, **kwargs)

    def _images(self, folder):
        if not isdir(folder):
            raise _missing('Tiny-ImageNet image folder', folder)
        return sorted(f for f in list_dir_or_file(folder, list_dir=False)
                      if f.lower().endswith(self.IMG_EXTENSIONS))

    def load_data_list(self):
        if not isdir(self.data_root):
            raise _missing('Tiny-ImageNet data_root', self.data_root,
                           'it should be the tiny-imagenet-200 directory')
        wnids_file = join_path(self.data_root, 'wnids.txt')
        if not exists(wnids_file):
            raise _missing('Tiny-ImageNet class list', wnids_file)
        wnids = sorted(line.strip() for line in list_from_file(wnids_file) if line.strip())
        if self.CLASSES is None:
            self._metainfo['classes'] = tuple(wnids)
        elif len(self.CLASSES) != len(wnids):
            raise UserError(f'{len(self.CLASSES)} classes given in metainfo, but {wnids_file} '
                            f'lists {len(wnids)} wnids')
        label_of = {wnid: i for i, wnid in enumerate(wnids)}

        data_list = []
        if self.split == 'train':
            for wnid in wnids:
                folder = join_path(self.img_prefix, wnid, 'images')
                for name in self._images(folder):
                    data_list.append(dict(img_path=join_path(folder, name),
                                          gt_label=label_of[wnid]))
        elif self.split == 'val':
            ann_file = join_path(self.img_prefix, 'val_annotations.txt')
            if not exists(ann_file):
                raise _missing('Tiny-ImageNet validation annotations', ann_file)
            for lineno, line in enumerate(list_from_file(ann_file), 1):
                if not line.strip():
                    continue
                fields = line.split('\t')
                if len(fields) < 2 or fields[1] not in label_of:
                    raise UserError(f'{ann_file}, line {lineno}: expected "<image><TAB><wnid>'
                                    f'..." with a wnid from wnids.txt, got {line!r}')
                data_list.append(dict(img_path=join_path(self.img_prefix, 'images', fields[0]),
                                      gt_label=label_of[fields[1]]))
        else:
            folder = join_path(self.img_prefix, 'images')
            data_list = [dict(img_path=join_path(folder, name)) for name in self._images(folder)]
        return data_list

    def extra_repr(self):
        return [f'Root of dataset: \t{self.data_root}', f'Split: \t{self.split}']


@DATASETS.register_module()
class CheckedCustomDataset(NamesUnreadableImages, CustomDataset):
    """mmpretrain's ``CustomDataset`` that names a missing path instead of failing later.

    A missing ``data_root``, annotation file or image folder raises :class:`UserError` with
    the path and, if given, ``missing_hint`` (e.g. the command that creates the demo data);
    so does an image that cannot be decoded, naming it; everything else is
    ``CustomDataset``'s.

    Args:
        missing_hint (str, optional): Appended to the message about a missing path.
            Defaults to None.
        **kwargs: The arguments of mmpretrain's ``CustomDataset`` (``data_root``,
            ``data_prefix``, ``ann_file``, ``with_label``, ``metainfo``, ``pipeline``, ...).
    """

    def __init__(self, missing_hint=None, **kwargs):
        self.missing_hint = missing_hint
        super().__init__(**kwargs)

    def load_data_list(self):
        if self.data_root and not isdir(self.data_root):
            raise _missing('dataset data_root', self.data_root, self.missing_hint)
        if self.ann_file:
            if not exists(self.ann_file):
                raise _missing('annotation file', self.ann_file, self.missing_hint)
        elif not isdir(self.img_prefix):
            raise _missing('image folder', self.img_prefix, self.missing_hint)
        return super().load_data_list()


# ---------------------------------------------------------------------------------------------
# tiny copies in the real formats

def _image(rng, label, size):
    """A recognisable image for ``label``: one of the demo shapes."""
    return render_classification_image(rng, SHAPES[label % len(SHAPES)], size)


def _save(img, path, fmt):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)


def write_tiny_cifar(root, cifar100=False, num_train=10, num_test=5, seed=0):
    """Write a tiny CIFAR-10 or CIFAR-100 in the official pickled format under ``root``.

    CIFAR-10: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` (the
    training images spread over the five batches); CIFAR-100: ``root/cifar-100-python/
    {train, test, meta}``. Each batch is a protocol-2 pickle of a dict with ``data`` (N x 3072
    ``uint8``, channel-major rows), ``labels`` (CIFAR-10) or ``fine_labels``/``coarse_labels``
    (CIFAR-100), ``filenames`` and ``batch_label``, as in the official files.

    Args:
        root (str): The ``data_root`` of the dataset config.
        cifar100 (bool): Write CIFAR-100 instead of CIFAR-10. Defaults to False.
        num_train (int): Training images. Defaults to 10.
        num_test (int): Test images. Defaults to 5.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``root``; ``train`` and ``test``, each a tuple ``(images, labels)`` with images
        as an (N, 32, 32, 3) ``uint8`` array (HWC, RGB) and labels as a list of ints.
    """
    num_classes = 100 if cifar100 else 10
    rng = np.random.RandomState(seed)

    def make(n):
        labels = [int(x) for x in rng.randint(num_classes, size=n)]
        imgs = np.stack([_image(rng, lb, 32) for lb in labels]) if n else \
            np.zeros((0, 32, 32, 3), np.uint8)
        return imgs, labels

    def dump(obj, path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=2)

    def batch(imgs, labels, name):
        data = imgs.transpose(0, 3, 1, 2).reshape(len(imgs), -1)  # rows of R, G, B planes
        entry = dict(batch_label=name, data=data,
                     filenames=[f'tiny_{i:05d}.png' for i in range(len(labels))])
        if cifar100:
            entry.update(fine_labels=labels, coarse_labels=[lb // 5 for lb in labels])
        else:
            entry.update(labels=labels)
        return entry

    train, test = make(num_train), make(num_test)
    if cifar100:
        folder = osp.join(root, 'cifar-100-python')
        dump(batch(*train, 'training batch 1 of 1'), osp.join(folder, 'train'))
        dump(batch(*test, 'testing batch 1 of 1'), osp.join(folder, 'test'))
        dump(dict(fine_label_names=[f'class_{i}' for i in range(100)],
                  coarse_label_names=[f'superclass_{i}' for i in range(20)]),
             osp.join(folder, 'meta'))
    else:
        folder = osp.join(root, 'cifar-10-batches-py')
        parts = np.array_split(np.arange(num_train), 5)
        for k, idx in enumerate(parts, 1):
            dump(batch(train[0][idx], [train[1][i] for i in idx], f'training batch {k} of 5'),
                 osp.join(folder, f'data_batch_{k}'))
        dump(batch(*test, 'testing batch 1 of 1'), osp.join(folder, 'test_batch'))
        dump(dict(label_names=[f'class_{i}' for i in range(10)], num_cases_per_batch=10000,
                  num_vis=3072), osp.join(folder, 'batches.meta'))
    return dict(root=root, train=train, test=test)


def write_tiny_imagenet(root, num_classes=3, train_per_class=2, val_per_class=1, size=32,
                        with_meta=True, seed=0):
    """Write a tiny ImageNet in the layout mmpretrain's ``ImageNet`` reads.

    ``root/train/<wnid>/<wnid>_<k>.JPEG`` always. With ``with_meta`` (the layout mmpretrain
    documents): ``root/val/ILSVRC2012_val_<k>.JPEG`` flat plus ``root/meta/train.txt`` and
    ``root/meta/val.txt`` ("<path> <label>"), which ``ImageNet(split=...)`` picks up, so the
    1000-class default metainfo applies. Without it, ``val/<wnid>/...`` class folders, which
    ``ImageNet`` accepts only with ``metainfo=dict(classes=...)`` naming one class per folder.
    Labels are the index of the wnid in sorted order, as in the real ``meta`` files.

    Args:
        root (str): The ``data_root`` (``data/imagenet``).
        num_classes (int): Classes (folders) to write. Defaults to 3.
        train_per_class (int): Training images per class. Defaults to 2.
        val_per_class (int): Validation images per class. Defaults to 1.
        size (int): Image size in pixels. Defaults to 32.
        with_meta (bool): Write the ``meta/*.txt`` lists and a flat ``val/``. Defaults to True.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``root``, ``classes`` (the wnids), ``train`` and ``val``: lists of
        ``(path relative to the split folder, label)``.
    """
    rng = np.random.RandomState(seed)
    wnids = [f'n{1440764 + 1000 * k:08d}' for k in range(num_classes)]
    out = dict(root=root, classes=wnids, train=[], val=[])
    k_val = 0
    for label, wnid in enumerate(wnids):
        for k in range(train_per_class):
            rel = f'{wnid}/{wnid}_{k}.JPEG'
            _save(_image(rng, label, size), osp.join(root, 'train', rel), 'JPEG')
            out['train'].append((rel, label))
        for k in range(val_per_class):
            k_val += 1
            rel = f'ILSVRC2012_val_{k_val:08d}.JPEG' if with_meta else f'{wnid}/{wnid}_v{k}.JPEG'
            _save(_image(rng, label, size), osp.join(root, 'val', rel), 'JPEG')
            out['val'].append((rel, label))
    if with_meta:
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        for split in ('train', 'val'):
            with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
                f.writelines(f'{rel} {label}\n' for rel, label in out[split])
    return out


def write_tiny_tinyimagenet(root, num_classes=3, train_per_class=2, val_per_class=1,
                            num_test=2, size=64, seed=0):
    """Write a tiny Tiny-ImageNet in its official layout (see :class:`TinyImageNet`).

    ``wnids.txt`` lists the wnids unsorted, as the official file does, so the sorted label
    order is exercised.

    Args:
        root (str): The ``tiny-imagenet-200`` directory to create.
        num_classes (int): Classes to write. Defaults to 3.
        train_per_class (int): Training images per class. Defaults to 2.
        val_per_class (int): Validation images per class. Defaults to 1.
        num_test (int): Unlabelled test images. Defaults to 2.
        size (int): Image size (64 in the real set). Defaults to 64.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``root``, ``classes`` (the wnids, sorted: label order), ``train`` and ``val``:
        lists of ``(path relative to root, label)``.
    """
    rng = np.random.RandomState(seed)
    wnids = [f'n{2000000 + 7919 * k:08d}' for k in range(num_classes)]
    classes = sorted(wnids)
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'wnids.txt'), 'w') as f:
        f.writelines(f'{w}\n' for w in reversed(wnids))
    with open(osp.join(root, 'words.txt'), 'w') as f:
        f.writelines(f'{w}\tshape {SHAPES[i % len(SHAPES)]}\n' for i, w in enumerate(classes))
    out = dict(root=root, classes=classes, train=[], val=[])
    val_lines = []
    for label, wnid in enumerate(classes):
        boxes = []
        for k in range(train_per_class):
            rel = f'train/{wnid}/images/{wnid}_{k}.JPEG'
            _save(_image(rng, label, size), osp.join(root, rel), 'JPEG')
            out['train'].append((rel, label))
            boxes.append(f'{wnid}_{k}.JPEG\t0\t0\t{size - 1}\t{size - 1}\n')
        with open(osp.join(root, 'train', wnid, f'{wnid}_boxes.txt'), 'w') as f:
            f.writelines(boxes)
        for _ in range(val_per_class):
            name = f'val_{len(val_lines)}.JPEG'
            _save(_image(rng, label, size), osp.join(root, 'val', 'images', name), 'JPEG')
            out['val'].append((f'val/images/{name}', label))
            val_lines.append(f'{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n')
    os.makedirs(osp.join(root, 'val'), exist_ok=True)
    with open(osp.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        f.writelines(val_lines)
    for k in range(num_test):
        _save(_image(rng, k, size), osp.join(root, 'test', 'images', f'test_{k}.JPEG'), 'JPEG')
    return out


def write_tiny_cub(root, num_classes=3, images_per_class=3, size=64, seed=0):
    """Write a tiny CUB-200-2011 in its official layout, as mmpretrain's ``CUB`` reads it.

    ``images/<NNN.Name>/<Name>_<k>.jpg``, ``images.txt`` ("<id> <path>"),
    ``image_class_labels.txt`` ("<id> <class id>"), ``train_test_split.txt`` ("<id> <1 if
    train else 0>") and ``classes.txt`` ("<class id> <NNN.Name>"), ids from 1. The images of
    each class alternate between train and test, the first one train.

    Args:
        root (str): The ``CUB_200_2011`` directory to create.
        num_classes (int): Classes to write, the first of CUB's 200. Defaults to 3.
        images_per_class (int): Images per class. Defaults to 3.
        size (int): Image size in pixels. Defaults to 64.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``root``, ``train`` and ``test``: lists of ``(path relative to images/,
        label)`` in file order.
    """
    rng = np.random.RandomState(seed)
    out = dict(root=root, train=[], test=[])
    images, labels, split, classes = [], [], [], []
    for label in range(num_classes):
        folder = f'{label + 1:03d}.{CUB_CATEGORIES[label]}'
        classes.append(f'{label + 1} {folder}\n')
        for k in range(images_per_class):
            idx = len(images) + 1
            rel = f'{folder}/{CUB_CATEGORIES[label]}_{k + 1:04d}.jpg'
            _save(_image(rng, label, size), osp.join(root, 'images', rel), 'JPEG')
            is_train = k % 2 == 0
            images.append(f'{idx} {rel}\n')
            labels.append(f'{idx} {label + 1}\n')
            split.append(f'{idx} {int(is_train)}\n')
            out['train' if is_train else 'test'].append((rel, label))
    for name, lines in (('images.txt', images), ('image_class_labels.txt', labels),
                        ('train_test_split.txt', split), ('classes.txt', classes)):
        with open(osp.join(root, name), 'w') as f:
            f.writelines(lines)
    return out


def write_tiny_formats(root, seed=0):
    """Write one tiny copy of every classification format under ``root``.

    Returns:
        dict: The ``data_root`` of each: ``cifar10``, ``cifar100``, ``imagenet``,
        ``tinyimagenet``, ``cub``, and the writers' full answers under ``details``.
    """
    details = dict(
        cifar10=write_tiny_cifar(osp.join(root, 'cifar10'), seed=seed),
        cifar100=write_tiny_cifar(osp.join(root, 'cifar100'), cifar100=True, seed=seed),
        imagenet=write_tiny_imagenet(osp.join(root, 'imagenet'), seed=seed),
        tinyimagenet=write_tiny_tinyimagenet(osp.join(root, 'tiny-imagenet-200'), seed=seed),
        cub=write_tiny_cub(osp.join(root, 'CUB_200_2011'), seed=seed))
    roots = {name: d['root'] for name, d in details.items()}
    roots['details'] = details
    return roots
