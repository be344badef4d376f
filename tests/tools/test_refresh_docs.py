"""tools/misc/refresh_docs.py: its marked blocks, and that the docs quote exactly those."""
import importlib.util
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'refresh_docs', osp.join(ROOT, 'tools', 'misc', 'refresh_docs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replace_blocks_rewrites_bodies_and_stamps_the_date():
    tool = _tool()
    text = ('intro\n<!-- begin refresh_docs:a (python tools/misc/refresh_docs.py, 2020-01-01) '
            '-->\nold a\n<!-- end refresh_docs:a -->\nmiddle\n<!-- begin refresh_docs:b -->\n'
            'same\n<!-- end refresh_docs:b -->\n<!-- begin refresh_docs:c -->\nx\n'
            '<!-- end refresh_docs:c -->\nend\n')
    new, changed, unknown = tool.replace_blocks(text, {'a': 'new a\n', 'b': 'same'},
                                                '2026-12-01')
    assert new == ('intro\n<!-- begin refresh_docs:a (python tools/misc/refresh_docs.py, '
                   '2026-12-01) -->\nnew a\n<!-- end refresh_docs:a -->\nmiddle\n'
                   '<!-- begin refresh_docs:b (python tools/misc/refresh_docs.py, 2026-12-01) '
                   '-->\nsame\n<!-- end refresh_docs:b -->\n<!-- begin refresh_docs:c -->\nx\n'
                   '<!-- end refresh_docs:c -->\nend\n')
    assert changed == ['a'] and unknown == ['c']
    # idempotent: a second pass changes nothing
    again, changed, _ = tool.replace_blocks(new, {'a': 'new a\n', 'b': 'same'}, '2026-12-01')
    assert again == new and changed == []


def test_the_docs_quote_every_block_once_and_no_other():
    tool = _tool()
    names = []
    for doc in tool.DOCS:
        with open(osp.join(ROOT, doc)) as f:
            names += tool.block_names(f.read())
    assert sorted(names) == sorted(tool.BLOCK_NAMES)


def test_abridged_table_and_flops_numbers():
    tool = _tool()
    table = '\n'.join(['title', '', 'layer  numel', '-----'] + [f'l{i}  {i}' for i in range(8)]
                      + ['-----', 'total  28'])
    assert tool._abridge_table(table) == '\n'.join(
        ['title', '', 'layer  numel', '-----', 'l0  0', 'l1  1', '...', 'l6  6', 'l7  7',
         '-----', 'total  28'])
    out = ('dense parameters:                 702,741  (703 K)\n'
           'effective FLOPs (masked layers scaled by kept fraction):  1,385,782  (1.39 M)\n')
    assert tool._flops_numbers(out) == {'dense parameters': 702741, 'effective FLOPs': 1385782}
