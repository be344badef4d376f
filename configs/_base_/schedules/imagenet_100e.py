# ImageNet, for all three SD methods: mmpretrain's ResNet-50 recipe (resnet50_8xb32_in1k: 8 GPUs x
# 32 images, SGD lr 0.1, momentum 0.9, weight decay 1e-4, 100 epochs, lr x0.1 at epochs 30, 60
# and 90), so that runs compare with mmpretrain's dense ResNet-50. None of CS-KD, PS-KD and DLB
# published a ResNet-50 ImageNet recipe readable here (PS-KD's ImageNet runs train ResNet-152);
# the EPSD paper's ImageNet schedule is not available either. The configs set 32 images per GPU
# (CS-KD: 32 samples plus 32 partners).
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs256.py'
