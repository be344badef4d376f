# The runtime of every classification config: mmpretrain's default runtime, plus the import of
# epsd_mm (it registers SDImageClassifier, the SD methods, the hooks, samplers and datasets) and
# checkpoints that keep the last two epochs and the best top-1 accuracy.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)

default_hooks = dict(
    # Every epoch, so a run resumes where it stopped (PS-KD's memory and DLB's carried batch travel
    # in the checkpoint); two kept, because PS-KD's memory makes ImageNet checkpoints large.
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='accuracy/top1', rule='greater'))
