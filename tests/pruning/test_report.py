"""The mask reports a user reads: sparsity.png (readable for a ResNet-18 and a ResNet-50, says
what it shows) and the scoring progress bar (its line ends before the next log line)."""
import io

import pytest
import torch

from epsd_mm.pruning import MaskSet
from epsd_mm.pruning.report import sparsity_figure


def _resnet50_like_masks():
    """54 masks named and sized as mmpretrain's ResNet-50 with its head (random kept
    fractions, seeded)."""
    g = torch.Generator().manual_seed(0)
    names = ['backbone.conv1.weight']
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            names += [f'backbone.layer{stage}.{b}.conv{i}.weight' for i in (1, 2, 3)]
            if b == 0:
                names.append(f'backbone.layer{stage}.0.downsample.0.weight')
    names.append('head.fc.weight')
    masks = {n: torch.rand(64 + 8 * i, 9, generator=g) > 0.9 for i, n in enumerate(names)}
    return MaskSet(masks, method='epsd', target_sparsity=0.9)


@pytest.fixture
def figure():
    import matplotlib.pyplot as plt
    figs = []

    def make(*args, **kwargs):
        figs.append(sparsity_figure(*args, **kwargs))
        return figs[-1]

    yield make
    for fig in figs:
        plt.close(fig)


def test_plot_of_a_resnet50_names_every_layer_readably(figure):
    masks = _resnet50_like_masks()
    assert len(masks) == 54
    fig = figure(masks, title='ImageClassifier (epsd_dlb_r50_imagenet.py)')
    ax, ax_n = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [n[:-len('.weight')] for n in masks.names()]  # every layer, in order
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 8
    assert fig.get_size_inches()[1] >= 0.24 * 54  # a row of at least 0.24 inch per layer
    assert 'fraction of its weights pruned' in ax.get_xlabel()
    assert 'log scale' in ax_n.get_xlabel()
    title = fig._suptitle.get_text()
    assert title.startswith('epsd masks of ImageClassifier (epsd_dlb_r50_imagenet.py)')
    assert f'54 layers, {masks.kept:,} of {masks.numel:,} weights kept' in title
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0] == f'overall {masks.sparsity:.4f} (size-weighted: pruned / prunable)'
    # the legend lies below the panels, so it covers no bar
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


def test_two_models_get_two_titles(figure):
    masks = _resnet50_like_masks()
    a = figure(masks, title='SDImageClassifier (epsd_dlb_demo.py)')._suptitle.get_text()
    b = figure(masks, title='FasterRCNN (frcnn_demo.py)')._suptitle.get_text()
    assert a != b and 'FasterRCNN' in b


def test_progress_bar_line_ends_before_the_next_log_line(monkeypatch):
    from epsd_mm.pruning import api

    out = io.StringIO()
    monkeypatch.setattr('sys.stdout', out)  # where mmengine's ProgressBar writes by default
    batches = [(None, [0] * k) for k in (1, 2, 3)]  # (inputs, data_samples) of 1-3 samples
    counting = api._Counting(iter(batches), 3, True)
    assert list(counting) == batches and counting.sizes == [1, 2, 3]
    assert not out.getvalue().endswith('\n')
    counting.close()
    assert out.getvalue().endswith('s\n') and out.getvalue().count('\n') == 1
    counting.close()  # once only
    assert out.getvalue().count('\n') == 1
