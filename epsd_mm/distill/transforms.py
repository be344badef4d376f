"""Collating multi-view samples for DLB with mmpretrain's own ``ClsDataPreprocessor``.

mmpretrain's ``MultiView`` transform turns a sample's ``img`` into a list of views, and
``PackInputs`` packs that list. mmengine's ``pseudo_collate`` then gives one list per view, which
``ClsDataPreprocessor`` cannot take. :func:`multiview_collate` flattens the views view-major
into one list of ``V * B`` images, which ``ClsDataPreprocessor`` normalizes and stacks like any
batch (``to_rgb``, mean/std and padding apply to every view); the model receives
``(V * B, C, H, W)`` inputs with ``B`` data samples, rows ``[v * B, (v + 1) * B)`` being view
``v`` (:func:`epsd_mm.distill.methods.split_views`). Single-view batches pass through unchanged,
as ``pseudo_collate`` makes them.

The DLB train pipeline and dataloader::

    train_pipeline = [
        dict(type='MultiView', num_views=2, transforms=[[
            dict(type='RandomCrop', crop_size=32, padding=4),
            dict(type='RandomFlip', prob=0.5, direction='horizontal')]]),
        dict(type='PackInputs'),
    ]
    train_dataloader = dict(collate_fn=dict(type='multiview_collate'), ...)
"""
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def multiview_collate(data_batch):
    """``pseudo_collate``, then multi-view ``inputs`` flattened view-major.

    Args:
        data_batch (list[dict]): packed samples (``inputs``: a tensor, or a list of ``V`` view
            tensors from ``MultiView``; ``data_samples``).

    Returns:
        dict: ``inputs`` a list of ``V * B`` tensors (view 0 of every sample, then view 1, ...)
        or of ``B`` tensors for single-view samples; ``data_samples`` a list of ``B``.
    """
    batch = pseudo_collate(data_batch)
    inputs = batch.get('inputs') if isinstance(batch, dict) else None
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple)):
        # pseudo_collate transposed the per-sample view lists into per-view lists
        batch['inputs'] = [img for view in inputs for img in view]
    return batch
