"""Pascal VOC loading that answers bad input with a clear :class:`UserError`.

mmdet's ``XMLDataset`` trusts its files: a missing image-set file surfaces as a bare
``FileNotFoundError``, a truncated XML as ``xml.etree.ElementTree.ParseError`` without the file
name, an object without ``<bndbox>`` as ``AttributeError: 'NoneType' object has no attribute
'find'``. :class:`CheckedVOCDataset` validates each annotation before mmdet parses it, and
names the file and what is wrong. Parsing itself stays mmdet's.
"""
import math
import os.path as osp
import xml.etree.ElementTree as ET

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS
from mmengine.fileio import exists, get_local_path, isdir

from ..utils.errors import UserError
from .image_errors import NamesUnreadableImages

_COORDS = ('xmin', 'ymin', 'xmax', 'ymax')


def require_path(path, what, hint=None, directory=False, backend_args=None):
    """Raise :class:`UserError` naming ``path`` (and ``hint``) unless it exists.

    Args:
        path (str): The file or directory.
        what (str): What it is, for the message ("VOC image-set file").
        hint (str, optional): How to fix it (e.g. the command that creates the data).
            Defaults to None.
        directory (bool): ``path`` must be a directory. Defaults to False.
        backend_args (dict, optional): mmengine file backend arguments. Defaults to None.
    """
    found = isdir(path, backend_args=backend_args) if directory else \
        exists(path, backend_args=backend_args)
    if not found:
        msg = f'{what} not found: {path}'
        raise UserError(f'{msg}; {hint}' if hint else msg)


def _text(elem, tag):
    """The stripped text of ``elem``'s child ``tag``, or None if it is absent or empty."""
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def validate_voc_annotation(root, classes):
    """Check a parsed VOC annotation the way mmdet's ``XMLDataset`` will read it.

    Objects whose class is not in ``classes`` are skipped, as mmdet skips them.

    Args:
        root (xml.etree.ElementTree.Element): The ``<annotation>`` element.
        classes (Sequence[str]): The dataset's class names.

    Returns:
        str | None: What is wrong, or None if the annotation is fine.
    """
    if root.tag != 'annotation':
        return f'the root element is <{root.tag}>, expected <annotation>'
    size = root.find('size')
    dims = {}
    # Without <size>, mmdet reads width and height from the image itself; that is allowed.
    if size is not None:
        for tag in ('width', 'height'):
            value = _text(size, tag)
            if value is None:
                return f'<size> has no <{tag}>'
            try:
                number = int(value)  # mmdet parses these with int()
            except ValueError:
                return f'<size><{tag}> is {value!r}, not an integer'
            if number <= 0:
                return f'<size><{tag}> is {number}, must be positive'
            dims[tag] = number
    for i, obj in enumerate(root.findall('object'), 1):
        name = _text(obj, 'name')
        if name is None:
            return f'object {i} has no <name>'
        if name not in classes:
            continue
        where = f'object {i} ({name})'
        difficult = _text(obj, 'difficult')
        if difficult is not None:
            try:
                int(difficult)
            except ValueError:
                return f'{where}: <difficult> is {difficult!r}, not 0 or 1'
        box = obj.find('bndbox')
        if box is None:
            return f'{where} has no <bndbox>'
        coords = {}
        for tag in _COORDS:
            value = _text(box, tag)
            if value is None:
                return f'{where}: <bndbox> has no <{tag}>'
            try:
                coords[tag] = float(value)
            except ValueError:
                return f'{where}: <{tag}> is {value!r}, not a number'
            if not math.isfinite(coords[tag]):
                return f'{where}: <{tag}> is {value!r}, not a finite number'
        box_text = ", ".join(f"{k}={coords[k]:g}" for k in _COORDS)
        if coords['xmax'] < coords['xmin'] or coords['ymax'] < coords['ymin']:
            return f'{where}: the box ({box_text}) has xmax < xmin or ymax < ymin'
        # VOC pixel coordinates run from 1 to width / height
        if dims and (coords['xmax'] < 1 or coords['ymax'] < 1 or coords['xmin'] > dims['width']
                     or coords['ymin'] > dims['height']):
            return (f'{where}: the box ({box_text}) lies entirely outside the '
                    f'{dims["width"]}x{dims["height"]} image (its loss would be NaN)')
    return None


@DATASETS.register_module()
class CheckedVOCDataset(NamesUnreadableImages, VOCDataset):
    """mmdet's ``VOCDataset`` with clear errors for missing files and malformed annotations.

    Before mmdet parses an annotation, it is checked; a problem raises :class:`UserError`
    naming the file and what is wrong: a missing ``data_root``, image-set (``ann_file``),
    annotation or image file; unparsable XML; a ``<size>`` without integer ``<width>`` or
    ``<height>``; an object without ``<name>``; an object of a known class without
    ``<bndbox>`` or with a missing, non-numeric or inverted coordinate. Objects of classes
    outside ``metainfo['classes']`` are skipped as mmdet skips them, and an annotation without
    ``<size>`` takes the image's size, as in mmdet.

    With classes other than VOC's 20 (e.g. the demo's shapes), ``metainfo['dataset_type']``
    is set to None rather than 'VOC2007': mmdet's ``VOCMetric`` otherwise labels its per-class
    table with the 20 VOC names. The metric's ``eval_mode`` is then the config's alone (write it
    out: '11points' for VOC2007, 'area' for VOC2012).

    Args:
        missing_hint (str, optional): Appended to the message about a missing path, e.g. the
            command that creates the data. Defaults to None.
        check_images (bool): Check at load time that every listed image exists.
            Defaults to True.
        **kwargs: The arguments of mmdet's ``VOCDataset`` (``data_root``, ``ann_file``,
            ``data_prefix=dict(sub_data_root='VOC2007/')``, ``metainfo``, ``pipeline``, ...).
    """

    def __init__(self, missing_hint=None, check_images=True, **kwargs):
        self.missing_hint = missing_hint
        self.check_images = check_images
        super().__init__(**kwargs)
        if tuple(self._metainfo['classes']) != tuple(VOCDataset.METAINFO['classes']):
            self._metainfo['dataset_type'] = None

    def _require(self, path, what, directory=False):
        require_path(path, what, self.missing_hint, directory, self.backend_args)

    def load_data_list(self):
        if self.data_root:
            self._require(self.data_root, 'VOC data_root', directory=True)
        self._require(self.ann_file, 'VOC image-set file (ann_file)')
        data_list = super().load_data_list()
        if not data_list:
            raise UserError(f'the VOC image-set file {self.ann_file} lists no image; list one '
                            'image id per line (e.g. 000005)')
        return data_list

    def filter_data(self):
        kept = super().filter_data()
        if not kept and self.data_list and self.filter_cfg and \
                self.filter_cfg.get('filter_empty_gt'):
            classes = ', '.join(self._metainfo['classes'])
            min_size = self.filter_cfg.get('min_size', 0)
            raise UserError(
                f'none of the {len(self.data_list)} images listed in {self.ann_file} is kept: '
                f'none has an object of this dataset\'s classes ({classes}) or all are '
                f'smaller than filter_cfg.min_size={min_size}; check the <name> of the objects '
                'in the annotations, or the classes in metainfo')
        return kept

    def parse_data_info(self, img_info):
        xml_path = img_info['xml_path']
        self._require(xml_path, f'VOC annotation of {img_info["img_id"]} listed in '
                      f'{self.ann_file}')
        with get_local_path(xml_path, backend_args=self.backend_args) as local_path:
            try:
                root = ET.parse(local_path).getroot()
            except ET.ParseError as e:
                raise UserError(f'malformed VOC annotation {xml_path}: not well-formed XML '
                                f'({e})') from None
        problem = validate_voc_annotation(root, self._metainfo['classes'])
        if problem is not None:
            raise UserError(f'malformed VOC annotation {xml_path}: {problem}')
        if self.check_images:
            # the path mmdet's XMLDataset.parse_data_info builds
            self._require(osp.join(self.sub_data_root, img_info['file_name']),
                          f'image of {img_info["img_id"]} listed in {self.ann_file}')
        return super().parse_data_info(img_info)
