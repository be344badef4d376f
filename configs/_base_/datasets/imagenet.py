# ImageNet-1k as mmpretrain reads it: data/imagenet/{train,val} (class folders, or flat folders
# with data/imagenet/meta/{train,val}.txt). mmpretrain's ImageNet settings unchanged (224-pixel
# RandomResizedCrop and flip; val: short edge 256, center crop 224), its train pipeline only
# written in parts.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

# The train pipeline in three parts, so that DLB's configs wrap the random augmentations in
# MultiView: loading, augmentations, packing.
train_load = [dict(type='LoadImageFromFile')]
train_augment = [
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [*train_load, *train_augment, dict(type='PackInputs')]

# The batch size (per GPU) is the SD recipe's, set by each config.
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
