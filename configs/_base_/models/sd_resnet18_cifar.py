# mmpretrain's CIFAR ResNet-18 (3x3 stem, no max-pool) as an SDImageClassifier; each config adds
# its SD method (model.sd) and its number of classes (model.head.num_classes).
_base_ = 'mmpretrain::_base_/models/resnet18_cifar.py'

model = dict(
    type='SDImageClassifier',
    # mmpretrain zero-initializes the last BatchNorm of every residual block by default. Pruning
    # at initialization scores the network as initialized, and with those BatchNorms at 0 the
    # gradient of every convolution inside a residual branch is exactly 0: SNIP would score them
    # all 0 and empty those layers, and EPSD's first inner step would not move them. So the
    # default initialization of the BatchNorms (weight 1) is kept, for the dense baselines too.
    backbone=dict(zero_init_residual=False))
