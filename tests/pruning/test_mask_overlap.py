import importlib.util
import json
import os.path as osp

import pytest
import torch

from epsd_mm.pruning import MaskSet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    path = osp.join(ROOT, 'tools', 'analysis', 'mask_overlap.py')
    spec = importlib.util.spec_from_file_location('_mask_overlap', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overlap_and_layer_fractions_of_two_mask_files(tmp_path, capsys):
    a = MaskSet({'conv.weight': torch.tensor([True, True, False, False]),
                 'fc.weight': torch.tensor([True, False])}, method='a')
    b = MaskSet({'conv.weight': torch.tensor([True, False, True, False]),
                 'fc.weight': torch.tensor([True, True])}, method='b')
    a.save(str(tmp_path / 'a.pth'))
    b.save(str(tmp_path / 'b.pth'))
    out = tmp_path / 'o.json'
    _tool().main([f'a={tmp_path / "a.pth"}', f'b={tmp_path / "b.pth"}', '--json', str(out)])
    # kept by both: conv[0], fc[0] = 2; kept by either: conv[0,1,2], fc[0,1] = 5
    doc = json.loads(out.read_text())
    assert doc['overlap']['a']['b'] == pytest.approx(0.4) and doc['overlap']['a']['a'] == 1.0
    assert doc['layers'] == {'a': {'conv.weight': 0.5, 'fc.weight': 0.5},
                             'b': {'conv.weight': 0.5, 'fc.weight': 1.0}}
    text = capsys.readouterr().out
    assert '| a | 1.000 | 0.400 |' in text and '| fc.weight | 2 | 0.5000 | 1.0000 |' in text


def test_a_bad_label_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _tool().main(['no-label-here'])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("error: 'no-label-here' is not LABEL=PATH")
