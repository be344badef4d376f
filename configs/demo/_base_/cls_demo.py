# The demo classifier with the project's parts: the plain mmpretrain config
# configs/demo/cls_demo_infer.py (a small ResNet-18, 16 base channels, on the generated shapes:
# python tools/misc/make_demo_data.py --out data/demo), its model made an SDImageClassifier
# (the same state_dict) and its datasets path-checking. Method files (epsd_<sd>_demo.py) add
# the SD method, its pipeline and the hooks.
_base_ = ['../cls_demo_infer.py']
custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)

model = dict(type='SDImageClassifier', sd=dict(type='DLB'))

# CheckedCustomDataset: mmpretrain's CustomDataset, plus a one-line error for a missing path
checked = dict(type='CheckedCustomDataset',
               missing_hint='create it with: python tools/misc/make_demo_data.py --out data/demo')
train_dataloader = dict(dataset=checked)
val_dataloader = dict(dataset=checked)
test_dataloader = val_dataloader
