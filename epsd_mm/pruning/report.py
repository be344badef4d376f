"""Human- and machine-readable reports of masks: a terminal table, ``sparsity.json`` and
``sparsity.png`` (per-layer bars in network order). One schema for every tool."""
import os.path as osp

from ..utils.io import atomic_json_dump, atomic_path


def report_dict(masks):
    """The ``sparsity.json`` schema: ``{"method", "target_sparsity", "sparsity", "numel",
    "kept", "layers": [{"name", "shape", "numel", "kept", "sparsity"}, ...]}``."""
    return dict(method=masks.method, target_sparsity=masks.target_sparsity,
                sparsity=masks.sparsity, numel=masks.numel, kept=masks.kept,
                layers=masks.layer_stats())


def format_table(masks):
    """A per-layer table with totals, as text."""
    rows = masks.layer_stats()
    width = max([len('layer')] + [len(r['name']) for r in rows])
    lines = [f'{"layer":<{width}}  {"shape":>18}  {"numel":>10}  {"kept":>10}  sparsity',
             '-' * (width + 54)]
    for r in rows:
        shape = 'x'.join(map(str, r['shape']))
        lines.append(f'{r["name"]:<{width}}  {shape:>18}  {r["numel"]:>10}  {r["kept"]:>10}  '
                     f'{r["sparsity"]:8.4f}')
    lines.append('-' * (width + 54))
    target = '' if masks.target_sparsity is None else f' (target {masks.target_sparsity})'
    lines.append(f'{"total":<{width}}  {"":>18}  {masks.numel:>10}  {masks.kept:>10}  '
                 f'{masks.sparsity:8.4f}{target}')
    return '\n'.join(lines)


def _stage(name):
    """The group a layer's bar is coloured by: its first two name components
    (``backbone.layer3``, ``backbone.conv1``, ``head.fc``)."""
    return '.'.join(name.split('.')[:2])


def sparsity_figure(masks, title=None):
    """The matplotlib figure of :func:`plot_sparsity` (the caller closes it).

    A horizontal layout that stays readable from a ResNet-18 (21 masked layers) to a ResNet-50
    (54): one row per layer, its name in full on the left; left panel, the layer's sparsity
    with the overall one as a line (the size-weighted mean: total pruned / total prunable, so
    large layers dominate it); right panel, how many weights the layer has and keeps (log
    scale). Bars are coloured by stage (``backbone.layer1``...).

    Args:
        masks (MaskSet): The masks.
        title (str, optional): What the masks belong to (model, checkpoint or config); shown
            in the figure's title with the method. Defaults to None.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = masks.layer_stats()
    n = len(rows)
    names = [r['name'][:-len('.weight')] if r['name'].endswith('.weight') else r['name']
             for r in rows]
    stages = list(dict.fromkeys(_stage(r['name']) for r in rows))
    palette = plt.get_cmap('tab10')
    colours = [palette(stages.index(_stage(r['name'])) % 10) for r in rows]
    y = list(range(n))

    # margins in inches, so that names, labels, title and legend fit at any number of layers
    width, height = 11.0, 1.9 + 0.24 * max(n, 8)
    left = 0.35 + 0.072 * max(len(name) for name in names)
    fig, (ax, ax_n) = plt.subplots(1, 2, sharey=True, figsize=(width, height),
                                   gridspec_kw=dict(width_ratios=(3, 2), wspace=0.05))
    fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, top=1 - 0.75 / height,
                        bottom=1.0 / height)
    ax.barh(y, [r['sparsity'] for r in rows], color=colours, height=0.75)
    ax.axvline(masks.sparsity, color='black', ls='--', lw=1.2,
               label=f'overall {masks.sparsity:.4f} (size-weighted: pruned / prunable)')
    if masks.target_sparsity is not None and abs(masks.target_sparsity - masks.sparsity) > 5e-4:
        ax.axvline(masks.target_sparsity, color='grey', ls=':', lw=1.2,
                   label=f'target {masks.target_sparsity}')
    ax.set_xlim(0, 1)
    ax.set_xlabel('sparsity of the layer (fraction of its weights pruned)', fontsize=10)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=9 if n <= 30 else 8)
    ax.set_ylim(n - 0.5, -0.5)  # network order, top to bottom
    ax.tick_params(axis='x', labelsize=9)
    ax.grid(axis='x', alpha=0.3)

    ax_n.barh(y, [r['numel'] for r in rows], color='lightgrey', height=0.75, label='weights')
    ax_n.barh(y, [max(r['kept'], 1e-9) for r in rows], color=colours, height=0.75,
              label='kept')
    ax_n.set_xscale('log')
    ax_n.set_xlabel('weights: all (grey), kept (colour); log scale', fontsize=10)
    ax_n.tick_params(axis='x', labelsize=9)
    ax_n.tick_params(axis='y', length=0)
    ax_n.grid(axis='x', alpha=0.3, which='both')

    what = f'{masks.method or "masks"} masks' + (f' of {title}' if title else '')
    fig.suptitle(f'{what}\n{n} layers, {masks.kept:,} of {masks.numel:,} weights kept',
                 fontsize=11, y=1 - 0.1 / height, va='top')
    # below the panels, where it covers no bar
    fig.legend(*ax.get_legend_handles_labels(), loc='lower center', ncol=2, fontsize=9,
               frameon=False)
    return fig


def plot_sparsity(masks, path, title=None):
    """Per-layer bars in network order (:func:`sparsity_figure`) into a PNG, written
    atomically."""
    import matplotlib.pyplot as plt
    fig = sparsity_figure(masks, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=110)
    plt.close(fig)


def write_reports(masks, out_dir, title=None):
    """Write ``sparsity.json`` and ``sparsity.png`` (titled with ``title``: what the masks
    belong to) into ``out_dir``; return their paths."""
    json_path = osp.join(out_dir, 'sparsity.json')
    png_path = osp.join(out_dir, 'sparsity.png')
    atomic_json_dump(report_dict(masks), json_path)
    plot_sparsity(masks, png_path, title=title)
    return json_path, png_path
