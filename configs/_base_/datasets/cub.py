# CUB-200-2011 in its official layout, read by mmpretrain's CUB: data/CUB_200_2011/{images/,
# images.txt, image_class_labels.txt, train_test_split.txt, classes.txt}.
#
# mmpretrain's CUB config (cub_bs8_448) fine-tunes a pretrained network at 448 pixels. The SD
# recipe followed here (CS-KD's fine-grained recipe, schedules/cub_200e.py) trains from scratch
# at 224 pixels, so the pipelines are CS-KD's: RandomResizedCrop 224 and flip; test: short edge
# 256, center crop 224 (ImageNet's normalization, from mmpretrain's config).
_base_ = 'mmpretrain::_base_/datasets/cub_bs8_448.py'

# The train pipeline in three parts, so that DLB's configs wrap the random augmentations in
# MultiView: loading, augmentations, packing.
train_load = [dict(type='LoadImageFromFile')]
train_augment = [
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [*train_load, *train_augment, dict(type='PackInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# The batch size is the SD recipe's, set by each config.
train_dataloader = dict(num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
