# CIFAR-100 in its official python format: data/cifar100/cifar-100-python/{train, test, meta}.
# mmpretrain's CIFAR-100 settings (normalization, RandomCrop 32 with 4 pixels of padding,
# horizontal flip), read by CIFAR100Local (epsd_mm.datasets): mmpretrain's own parser of the same
# files without the md5 check against the release and the download that mmpretrain's CIFAR100
# falls back to (training machines are often offline; the tests' tiny copies are not the release).
_base_ = 'mmpretrain::_base_/datasets/cifar100_bs16.py'

dataset_type = 'CIFAR100Local'
data_root = 'data/cifar100'

# The train pipeline in three parts, so that DLB's configs wrap the random augmentations in
# MultiView: loading (nothing: the pickles hold decoded RGB images), augmentations, packing.
train_load = []
train_augment = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [*train_load, *train_augment, dict(type='PackInputs')]

# The batch size is the SD recipe's, set by each config.
train_dataloader = dict(
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=4, dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
