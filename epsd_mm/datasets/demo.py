"""Deterministic demo data in real on-disk formats: simple shapes for classification and VOC.

No real data set can be downloaded on the machines this project is built on, so the demo trains
on shapes (circle, square, triangle, cross, ring) drawn with random colour, position, scale and
rotation on a noisy, shaded background. The same shapes serve both halves of EPSD's pipeline, so
a backbone pruned and self-distilled on the classification set transfers to a detector of the
same shapes.

Layout written by :func:`make_demo_data` (``out_dir`` is ``data/demo`` for the shipped configs)::

    data/demo/
    ├── cls/                              # mmpretrain ``CustomDataset``, data_root='data/demo/cls'
    │   ├── train/<class>/<class>_00000.png    # class folders: data_prefix='train'
    │   ├── val/<class>/<class>_00000.png      # data_prefix='val'
    │   ├── meta/train.txt, meta/val.txt       # annotation lists ("circle/circle_00000.png 0")
    │   ├── classes.txt                        # one class name per line, in label order
    │   └── .demo_complete.json                # written last: the generation finished
    └── voc/
        ├── VOCdevkit/VOC2007/                 # mmdet ``VOCDataset``, see make_voc_demo
        │   ├── JPEGImages/000001.jpg
        │   ├── Annotations/000001.xml         # Pascal VOC XML, 1-based pixel coordinates
        │   └── ImageSets/Main/{trainval,test}.txt
        └── .demo_complete.json

The detection ``data_root`` is ``data/demo/voc/VOCdevkit/``, with
``ann_file='VOC2007/ImageSets/Main/trainval.txt'`` (or ``test.txt``) and
``data_prefix=dict(sub_data_root='VOC2007/')``, as in mmdet's VOC configs. The class names are
the shapes' own (:data:`DEMO_CLASSES`); mmdet's ``VOCDataset`` knows only the 20 VOC classes,
so detection configs pass ``metainfo=dict(classes=DEMO_CLASSES)``.

Every image comes from its own ``numpy.random.RandomState`` seeded with ``(seed, split, index)``:
the same arguments give byte-identical files, and a smaller set is a prefix of a larger one.
A set is generated into a ``<dir>.partial`` sibling, its marker file written last, and only then
renamed into place, so a killed generation never looks complete and is simply redone.
"""
import json
import os
import os.path as osp
import shutil
import sys
import time
from collections import namedtuple

import numpy as np
from PIL import Image, ImageDraw

from ..utils.errors import UserError
from ..utils.io import atomic_json_dump

#: Every shape the generators can draw, in the order ``num_classes`` takes them.
SHAPES = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')


def demo_classes(num_classes=5):
    """The class names of a demo set with ``num_classes`` shapes, in label order.

    Labels follow the sorted names, because mmpretrain's ``CustomDataset`` labels class folders
    in sorted order: the folder layout and the annotation lists then agree.
    """
    if not isinstance(num_classes, int) or not 1 <= num_classes <= len(SHAPES):
        raise UserError(f'num_classes must be an integer in [1, {len(SHAPES)}] (the shapes '
                        f'{", ".join(SHAPES)}), got {num_classes!r}')
    return tuple(sorted(SHAPES[:num_classes]))


#: The classes of the default demo data (classification and detection alike), in label order:
#: ``('circle', 'cross', 'ring', 'square', 'triangle')``.
DEMO_CLASSES = demo_classes(5)

#: The command that creates the demo data; configs and tools quote it when the data is missing.
MAKE_DEMO_DATA_CMD = 'python tools/misc/make_demo_data.py --out data/demo'

MARKER = '.demo_complete.json'
# Bump when the generated content changes, so stale data on disk is regenerated.
FORMAT_VERSION = 1

# Split codes that go into each image's seed, so that splits never share images.
_SPLIT_CODES = {'train': 1, 'val': 2, 'trainval': 11, 'test': 12}

# Shapes drawn as a polygon get a small random rotation; larger angles would make a square
# look like the diamond class.
_MAX_ANGLE = 15.0

DemoData = namedtuple('DemoData', ['root', 'cls_root', 'voc_root', 'classes', 'counts'])
DemoData.__doc__ = """Paths of the demo data.

``cls_root`` is the ``data_root`` of the classification set (``train/``, ``val/``, ``meta/``);
``voc_root`` the ``data_root`` of the detection set (the ``VOCdevkit`` directory, holding
``VOC2007/``); ``classes`` the class names of both, in label order; ``counts`` the number of
images (and detection objects): ``{'cls': {'train', 'val'}, 'voc': {'trainval', 'test',
'objects'}}``."""


# ---------------------------------------------------------------------------------------------
# drawing

def _polygon(kind, size, angle):
    """Vertices (relative to the centre) of a polygonal shape of extent ``size``, or None."""
    a = size / 2.0
    if kind == 'square':
        pts = [(-a, -a), (a, -a), (a, a), (-a, a)]
    elif kind == 'triangle':
        pts = [(0.0, -a), (a, a), (-a, a)]
    elif kind == 'cross':
        h = 0.16 * size  # arm half-thickness
        pts = [(-h, -a), (h, -a), (h, -h), (a, -h), (a, h), (h, h), (h, a), (-h, a), (-h, h),
               (-a, h), (-a, -h), (-h, -h)]
    elif kind == 'diamond':
        w = 0.36 * size
        pts = [(0.0, -a), (w, 0.0), (0.0, a), (-w, 0.0)]
    else:
        return None
    t = np.deg2rad(angle)
    c, s = np.cos(t), np.sin(t)
    return [(c * x - s * y, s * x + c * y) for x, y in pts]


def _half_extent(kind, size, angle):
    """Half width and half height of the shape's outline (before rasterization)."""
    pts = _polygon(kind, size, angle)
    if pts is None:
        return size / 2.0, size / 2.0
    xs, ys = zip(*pts)
    return max(abs(x) for x in xs), max(abs(y) for y in ys)


def draw_shape_mask(kind, size, center, angle, canvas_hw):
    """Rasterize one shape into a binary mask.

    Args:
        kind (str): One of :data:`SHAPES`.
        size (float): The shape's extent in pixels (diameter, side, height).
        center (tuple[float, float]): ``(x, y)`` of its centre in pixels.
        angle (float): Rotation in degrees (ignored by the round shapes).
        canvas_hw (tuple[int, int]): Height and width of the mask.

    Returns:
        np.ndarray: ``bool`` array of shape ``canvas_hw``, True on the shape.
    """
    if kind not in SHAPES:
        raise ValueError(f'unknown shape {kind!r}; shapes: {SHAPES}')
    h, w = canvas_hw
    img = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(img)
    cx, cy = center
    r = size / 2.0
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == 'circle':
        draw.ellipse(box, fill=255)
    elif kind == 'ring':
        draw.ellipse(box, outline=255, width=max(2, int(round(0.2 * size))))
    else:
        draw.polygon([(cx + x, cy + y) for x, y in _polygon(kind, size, angle)], fill=255)
    return np.asarray(img) > 0


def _background(rng, h, w):
    """A random base colour with a linear shading and pixel noise (float, HxWx3)."""
    base = rng.uniform(0, 255, size=3)
    gx, gy = rng.uniform(-40, 40, size=(2, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    xx = (xx / max(w - 1, 1) - 0.5)[..., None]
    yy = (yy / max(h - 1, 1) - 0.5)[..., None]
    img = base + xx * gx + yy * gy + rng.normal(0.0, 10.0, size=(h, w, 3))
    return img, base


def _shape_colour(rng, base):
    """A colour far enough from the background's base colour for the shape to stand out."""
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - base) >= 150:
            return colour
    # Rare: a mid-grey background; the complement is always far enough away.
    return 255.0 - base


def _paint(rng, img, mask, base):
    colour = _shape_colour(rng, base)
    fill = colour + rng.normal(0.0, 8.0, size=img.shape)
    img[mask] = fill[mask]


def _to_uint8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def render_classification_image(rng, kind, size=32, scale=(0.4, 0.85)):
    """One ``size``x``size`` RGB image showing one shape of class ``kind``.

    Args:
        rng (np.random.RandomState): The image's own random state.
        kind (str): One of :data:`SHAPES`.
        size (int): Image height and width. Defaults to 32.
        scale (tuple[float, float]): Range of the shape's extent as a fraction of ``size``.
            Defaults to (0.4, 0.85).

    Returns:
        np.ndarray: ``uint8`` array of shape (size, size, 3), RGB.
    """
    img, base = _background(rng, size, size)
    extent = rng.uniform(*scale) * size
    angle = rng.uniform(-_MAX_ANGLE, _MAX_ANGLE)
    hw, hh = _half_extent(kind, extent, angle)
    # Keep the whole shape inside the image (one pixel of margin).
    cx = rng.uniform(hw + 1, max(hw + 1, size - 1 - hw))
    cy = rng.uniform(hh + 1, max(hh + 1, size - 1 - hh))
    mask = draw_shape_mask(kind, extent, (cx, cy), angle, (size, size))
    _paint(rng, img, mask, base)
    return _to_uint8(img)


def render_detection_image(rng, classes=DEMO_CLASSES, image_size=128, obj_size=(36, 64),
                           max_objects=3, margin=4):
    """One RGB image with 1 to ``max_objects`` non-overlapping shapes and their exact boxes.

    Args:
        rng (np.random.RandomState): The image's own random state.
        classes (Sequence[str]): Shapes to draw from, in label order. Defaults to
            :data:`DEMO_CLASSES`.
        image_size (int | tuple[int, int]): Height and width (an int for a square). Defaults
            to 128.
        obj_size (tuple[int, int]): Range of each shape's extent in pixels. Defaults to
            (36, 64).
        max_objects (int): The most shapes in one image. Defaults to 3.
        margin (int): Minimum gap in pixels between two shapes' boxes. Defaults to 4.

    Returns:
        tuple[np.ndarray, list[dict]]: The ``uint8`` image (H, W, 3) and one dict per shape with
        ``name`` and ``bbox`` = ``(x0, y0, x1, y1)``, the tight box of the shape's pixels in
        0-based coordinates with exclusive ``x1``/``y1``.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    img, base = _background(rng, h, w)
    num = rng.randint(1, max_objects + 1)
    boxes, objects = [], []
    for _ in range(num):
        kind = classes[rng.randint(len(classes))]
        extent = rng.uniform(obj_size[0], obj_size[1])
        angle = rng.uniform(-_MAX_ANGLE, _MAX_ANGLE)
        hw, hh = _half_extent(kind, extent, angle)
        # Rejection sampling of the position; an object that finds no free place is dropped
        # (the first always fits: the largest extent is checked against the image below).
        for _attempt in range(50):
            cx = rng.uniform(hw + 1, max(hw + 1, w - 1 - hw))
            cy = rng.uniform(hh + 1, max(hh + 1, h - 1 - hh))
            box = (cx - hw - 1, cy - hh - 1, cx + hw + 1, cy + hh + 1)
            if all(box[2] + margin <= b[0] or b[2] + margin <= box[0] or
                   box[3] + margin <= b[1] or b[3] + margin <= box[1] for b in boxes):
                break
        else:
            continue
        boxes.append(box)
        mask = draw_shape_mask(kind, extent, (cx, cy), angle, (h, w))
        ys, xs = np.nonzero(mask)
        objects.append(dict(name=kind, bbox=(int(xs.min()), int(ys.min()),
                                              int(xs.max()) + 1, int(ys.max()) + 1)))
        _paint(rng, img, mask, base)
    return _to_uint8(img), objects


def voc_xml(filename, width, height, objects, folder='VOC2007'):
    """The Pascal VOC XML annotation of one image (1-based, inclusive pixel coordinates).

    Args:
        filename (str): The image's file name (``000001.jpg``).
        width (int): Image width.
        height (int): Image height.
        objects (list[dict]): ``name`` and 0-based exclusive ``bbox`` per object, as
            :func:`render_detection_image` returns them.
        folder (str): The ``<folder>`` entry. Defaults to 'VOC2007'.

    Returns:
        str: The XML document.
    """
    lines = ['<annotation>',
             f'\t<folder>{folder}</folder>',
             f'\t<filename>{filename}</filename>',
             '\t<source>',
             '\t\t<database>epsd_mm demo shapes</database>',
             '\t</source>',
             '\t<size>',
             f'\t\t<width>{width}</width>',
             f'\t\t<height>{height}</height>',
             '\t\t<depth>3</depth>',
             '\t</size>',
             '\t<segmented>0</segmented>']
    for obj in objects:
        x0, y0, x1, y1 = obj['bbox']
        # VOC counts pixels from 1 and its xmax/ymax are inclusive: the 0-based exclusive box
        # [x0, x1) becomes [x0 + 1, x1]; mmdet's XMLDataset subtracts the 1 again.
        lines += ['\t<object>',
                  f'\t\t<name>{obj["name"]}</name>',
                  '\t\t<pose>Unspecified</pose>',
                  '\t\t<truncated>0</truncated>',
                  '\t\t<difficult>0</difficult>',
                  '\t\t<bndbox>',
                  f'\t\t\t<xmin>{x0 + 1}</xmin>',
                  f'\t\t\t<ymin>{y0 + 1}</ymin>',
                  f'\t\t\t<xmax>{x1}</xmax>',
                  f'\t\t\t<ymax>{y1}</ymax>',
                  '\t\t</bndbox>',
                  '\t</object>']
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# generation into place, with the completion marker

def _read_marker(root):
    try:
        with open(osp.join(root, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(root, params):
    marker = _read_marker(root)
    return marker is not None and marker.get('params') == params


def _generate_into_place(out_dir, params, generate, force, progress, what):
    """Run ``generate(tmp_dir)`` and move the result onto ``out_dir`` (see the module doc).

    Returns the marker dict (``params`` plus the ``counts`` that ``generate`` returned).
    """
    out_dir = osp.abspath(out_dir)
    if not force and _is_complete(out_dir, params):
        if progress:
            print(f'[demo data] {what}: complete in {out_dir}, skipped', flush=True)
        return _read_marker(out_dir)
    if osp.isdir(out_dir) and os.listdir(out_dir) and _read_marker(out_dir) is None:
        # Never delete what this module did not make.
        raise UserError(
            f'{out_dir} exists and is not demo data made by make_demo_data (no {MARKER}); '
            f'remove it or choose another output directory')
    tmp = out_dir + '.partial'
    if osp.exists(tmp):  # left behind by a killed generation: ours, redo it
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    if progress:
        reason = 'forced' if force else ('parameters changed' if _read_marker(out_dir)
                                         else 'missing')
        print(f'[demo data] {what}: generating into {out_dir} ({reason})', flush=True)
    start = time.time()
    counts = generate(tmp, progress)
    marker = dict(format_version=FORMAT_VERSION, kind=what, params=params, counts=counts,
                  seconds=round(time.time() - start, 2))
    # The marker is the last file written: without it the set is incomplete.
    atomic_json_dump(marker, osp.join(tmp, MARKER))
    if osp.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(osp.dirname(out_dir), exist_ok=True)
    os.replace(tmp, out_dir)
    if progress:
        print(f'[demo data] {what}: {counts} in {marker["seconds"]:.1f} s', flush=True)
    return marker


class _Progress:
    """mmengine's ProgressBar on a terminal; in a log, a line at every quarter."""

    def __init__(self, total, enabled):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled and total > 0
        if self.enabled and sys.stdout.isatty():
            from mmengine.utils import ProgressBar
            self.bar = ProgressBar(total)

    def update(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.enabled and self.done * 4 // self.total > (self.done - 1) * 4 // self.total:
            print(f'[demo data]   {self.done}/{self.total} images', flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.file.write('\n')
            self.bar.file.flush()


def _check_counts(**counts):
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise UserError(f'{name} must be a non-negative integer, got {value!r}')


def make_classification_demo(out_dir, num_classes=len(DEMO_CLASSES), train_per_class=160,
                             val_per_class=40, size=32, seed=0, force=False, progress=True):
    """Write the shapes classification set as class folders plus annotation lists.

    The result loads with mmpretrain's ``CustomDataset(data_root=out_dir, data_prefix='train')``
    (labels from the sorted folder names, the label order of :func:`demo_classes`), or with
    ``ann_file='meta/train.txt'`` and ``metainfo=dict(classes=...)``.

    Args:
        out_dir (str): Directory to create (``data/demo/cls``).
        num_classes (int): How many of :data:`SHAPES` to use (see :func:`demo_classes`).
            Defaults to 5 (:data:`DEMO_CLASSES`).
        train_per_class (int): Training images per class. Defaults to 160.
        val_per_class (int): Validation images per class. Defaults to 40.
        size (int): Image height and width in pixels. Defaults to 32.
        seed (int): Seed of every image's random state. Defaults to 0.
        force (bool): Regenerate even if a complete set with the same arguments exists.
            Defaults to False.
        progress (bool): Print progress and a progress bar. Defaults to True.

    Returns:
        dict: The completion marker: ``params`` (the arguments) and ``counts``.
    """
    classes = demo_classes(num_classes)
    _check_counts(train_per_class=train_per_class, val_per_class=val_per_class, size=size)
    params = dict(classes=list(classes), train_per_class=train_per_class,
                  val_per_class=val_per_class, size=size, seed=seed,
                  format_version=FORMAT_VERSION)

    def generate(root, show):
        counts = {}
        bar = _Progress(len(classes) * (train_per_class + val_per_class), show)
        for split, per_class in (('train', train_per_class), ('val', val_per_class)):
            lines = []
            for label, kind in enumerate(classes):
                os.makedirs(osp.join(root, split, kind), exist_ok=True)
                for i in range(per_class):
                    rng = np.random.RandomState([seed, _SPLIT_CODES[split], label, i])
                    img = render_classification_image(rng, kind, size)
                    rel = f'{kind}/{kind}_{i:05d}.png'
                    Image.fromarray(img).save(osp.join(root, split, rel), format='PNG')
                    lines.append(f'{rel} {label}')
                    bar.update()
            os.makedirs(osp.join(root, 'meta'), exist_ok=True)
            with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(lines) + ('\n' if lines else ''))
            counts[split] = len(lines)
        with open(osp.join(root, 'classes.txt'), 'w') as f:
            f.write('\n'.join(classes) + '\n')
        bar.close()
        return counts

    return _generate_into_place(out_dir, params, generate, force, progress, 'classification')


def make_voc_demo(out_dir, num_classes=len(DEMO_CLASSES), num_trainval=300, num_test=100,
                  image_size=128, obj_size=(36, 64), max_objects=3, seed=0, jpeg_quality=95,
                  force=False, progress=True):
    """Write the shapes detection set in the Pascal VOC layout (``VOCdevkit/VOC2007``).

    Each image holds 1 to ``max_objects`` non-overlapping shapes; boxes are the tight boxes of
    the shapes' pixels. Load it with mmdet's ``VOCDataset`` (or ``CheckedVOCDataset``) with
    ``data_root=<out_dir>/VOCdevkit/``, ``ann_file='VOC2007/ImageSets/Main/trainval.txt'``,
    ``data_prefix=dict(sub_data_root='VOC2007/')`` and ``metainfo=dict(classes=DEMO_CLASSES)``.

    Args:
        out_dir (str): Directory to create (``data/demo/voc``); ``VOCdevkit/`` goes inside.
        num_classes (int): How many of :data:`SHAPES` to use (see :func:`demo_classes`).
            Defaults to 5 (:data:`DEMO_CLASSES`).
        num_trainval (int): Images listed in ``trainval.txt``. Defaults to 300.
        num_test (int): Images listed in ``test.txt``. Defaults to 100.
        image_size (int): Image height and width in pixels. Defaults to 128.
        obj_size (tuple[int, int]): Range of a shape's extent in pixels. Defaults to (36, 64),
            so that no box falls below mmdet's VOC ``bbox_min_size=32`` filter.
        max_objects (int): The most shapes per image. Defaults to 3.
        seed (int): Seed of every image's random state. Defaults to 0.
        jpeg_quality (int): JPEG quality of ``JPEGImages/``. Defaults to 95.
        force (bool): Regenerate even if a complete set with the same arguments exists.
            Defaults to False.
        progress (bool): Print progress and a progress bar. Defaults to True.

    Returns:
        dict: The completion marker: ``params`` (the arguments) and ``counts``.
    """
    classes = demo_classes(num_classes)
    _check_counts(num_trainval=num_trainval, num_test=num_test, image_size=image_size,
                  max_objects=max_objects)
    lo, hi = obj_size
    if not 1 <= lo <= hi or hi * 1.3 + 4 > image_size:
        raise UserError(f'obj_size must be (min, max) with 1 <= min <= max and room for a '
                        f'rotated shape in a {image_size}-pixel image, got {obj_size!r}')
    if max_objects < 1:
        raise UserError(f'max_objects must be at least 1, got {max_objects!r}')
    params = dict(classes=list(classes), num_trainval=num_trainval, num_test=num_test,
                  image_size=image_size, obj_size=[lo, hi], max_objects=max_objects, seed=seed,
                  jpeg_quality=jpeg_quality, format_version=FORMAT_VERSION)

    def generate(root, show):
        voc = osp.join(root, 'VOCdevkit', 'VOC2007')
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(voc, sub), exist_ok=True)
        bar = _Progress(num_trainval + num_test, show)
        counts = dict(objects=0)
        index = 0
        for split, num in (('trainval', num_trainval), ('test', num_test)):
            ids = []
            for i in range(num):
                index += 1
                img_id = f'{index:06d}'
                rng = np.random.RandomState([seed, _SPLIT_CODES[split], i])
                img, objects = render_detection_image(rng, classes, image_size, (lo, hi),
                                                      max_objects)
                Image.fromarray(img).save(osp.join(voc, 'JPEGImages', f'{img_id}.jpg'),
                                          format='JPEG', quality=jpeg_quality)
                with open(osp.join(voc, 'Annotations', f'{img_id}.xml'), 'w') as f:
                    f.write(voc_xml(f'{img_id}.jpg', image_size, image_size, objects))
                ids.append(img_id)
                counts['objects'] += len(objects)
                bar.update()
            with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(ids) + ('\n' if ids else ''))
            counts[split] = len(ids)
        bar.close()
        return counts

    return _generate_into_place(out_dir, params, generate, force, progress, 'detection (VOC)')


def make_demo_data(out_dir='data/demo', force=False, progress=True, cls=None, voc=None):
    """Generate both demo sets into ``out_dir/cls`` and ``out_dir/voc`` (see the module doc).

    A set already complete with the same arguments is skipped; one whose generation was killed
    or whose arguments changed is generated again.

    Args:
        out_dir (str): The demo data root. Defaults to 'data/demo'.
        force (bool): Regenerate both sets even if complete. Defaults to False.
        progress (bool): Print progress. Defaults to True.
        cls (dict, optional): Keyword arguments for :func:`make_classification_demo`
            (e.g. ``dict(train_per_class=8)``). Defaults to None (its defaults).
        voc (dict, optional): Keyword arguments for :func:`make_voc_demo`. Defaults to None.

    Returns:
        DemoData: ``root``, ``cls_root``, ``voc_root`` (the ``VOCdevkit`` dir), ``classes`` and
        ``counts``.
    """
    cls, voc = dict(cls or {}), dict(voc or {})
    cls_root, voc_dir = osp.join(out_dir, 'cls'), osp.join(out_dir, 'voc')
    cls_marker = make_classification_demo(cls_root, force=force, progress=progress, **cls)
    voc_marker = make_voc_demo(voc_dir, force=force, progress=progress, **voc)
    if cls_marker['params']['classes'] != voc_marker['params']['classes']:
        raise UserError('the classification and detection demo sets must use the same classes '
                        '(pass the same num_classes to both)')
    return DemoData(root=out_dir, cls_root=cls_root, voc_root=osp.join(voc_dir, 'VOCdevkit'),
                    classes=tuple(cls_marker['params']['classes']),
                    counts=dict(cls=cls_marker['counts'], voc=voc_marker['counts']))


def demo_data_missing_message(path):
    """The message for a missing demo data path: which command creates it."""
    return (f'demo data not found: {path} does not exist; create it with '
            f'`{MAKE_DEMO_DATA_CMD}` (or `make demo`)')
