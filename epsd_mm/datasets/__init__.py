"""Demo data, dataset formats and dataset checks; importing this module registers the datasets.

mmpretrain ``DATASETS``: ``CIFAR10Local``, ``CIFAR100Local``, ``TinyImageNet``,
``CheckedCustomDataset``; mmdet ``DATASETS``: ``CheckedVOCDataset``.
"""
from .demo import (
    DEMO_CLASSES,
    MAKE_DEMO_DATA_CMD,
    SHAPES,
    DemoData,
    demo_classes,
    demo_data_missing_message,
    make_classification_demo,
    make_demo_data,
    make_voc_demo,
)
from .formats import (
    CheckedCustomDataset,
    CIFAR10Local,
    CIFAR100Local,
    TinyImageNet,
    write_tiny_cifar,
    write_tiny_cub,
    write_tiny_formats,
    write_tiny_imagenet,
    write_tiny_tinyimagenet,
)
from .voc_checks import CheckedVOCDataset, require_path, validate_voc_annotation

__all__ = [
    'DEMO_CLASSES', 'MAKE_DEMO_DATA_CMD', 'SHAPES', 'DemoData', 'demo_classes',
    'demo_data_missing_message', 'make_classification_demo', 'make_demo_data', 'make_voc_demo',
    'CheckedCustomDataset', 'CIFAR10Local', 'CIFAR100Local', 'TinyImageNet', 'write_tiny_cifar',
    'write_tiny_cub', 'write_tiny_formats', 'write_tiny_imagenet', 'write_tiny_tinyimagenet',
    'CheckedVOCDataset', 'require_path', 'validate_voc_annotation'
]
