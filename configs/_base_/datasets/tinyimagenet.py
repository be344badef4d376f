# Tiny-ImageNet-200 in the layout of its official archive, read by TinyImageNet (epsd_mm.datasets;
# mmpretrain has no class and no config for it): data/tiny-imagenet-200/{wnids.txt, train/<wnid>/
# images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt}. The validation split is the test set
# (the official test split has no labels).
#
# At its native 64x64 pixels, the CIFAR recipe's augmentations at that size (RandomCrop 64 with 4
# pixels of padding, horizontal flip) and ImageNet's normalization: the common setting of the
# pruning-at-initialization literature (ResNet-18 with a CIFAR stem, configs/classification/
# tinyimagenet). CS-KD's own code instead resizes Tiny-ImageNet to 32 pixels.
dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'

data_preprocessor = dict(
    num_classes=200,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    # LoadImageFromFile gives BGR
    to_rgb=True)

# The train pipeline in three parts, so that DLB's configs wrap the random augmentations in
# MultiView: loading, augmentations, packing.
train_load = [dict(type='LoadImageFromFile')]
train_augment = [
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [*train_load, *train_augment, dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

# The batch size is the SD recipe's, set by each config.
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
