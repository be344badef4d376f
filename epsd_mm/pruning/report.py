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


def plot_sparsity(masks, path):
    """Per-layer sparsity bars (network order) into a PNG, written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = masks.layer_stats()
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(rows) + 2), 4))
    ax.bar(range(len(rows)), [r['sparsity'] for r in rows], color='tab:blue')
    ax.axhline(masks.sparsity, color='tab:red', ls='--', lw=1,
               label=f'overall {masks.sparsity:.3f}')
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r['name'].replace('.weight', '') for r in rows], rotation=90,
                       fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel('sparsity (fraction pruned)')
    ax.set_title(f'{masks.method or "masks"}: per-layer sparsity')
    ax.legend(loc='lower right')
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def write_reports(masks, out_dir):
    """Write ``sparsity.json`` and ``sparsity.png`` into ``out_dir``; return their paths."""
    json_path = osp.join(out_dir, 'sparsity.json')
    png_path = osp.join(out_dir, 'sparsity.png')
    atomic_json_dump(report_dict(masks), json_path)
    plot_sparsity(masks, png_path)
    return json_path, png_path
