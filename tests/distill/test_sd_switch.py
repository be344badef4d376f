"""Switching the SD method by inheritance or --cfg-options: mmengine merges the new method's
dict into the old one key by key, so the tools' config loading (``load_config``) names what is
carried over: a setting the new method does not take is an error, one it takes with another
default a warning, and so is a two-view pipeline under a one-view method."""
import os.path as osp
import warnings

import pytest

from epsd_mm.utils.config_checks import load_config
from epsd_mm.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')


def _child(tmp_path, base, body, name='child.py'):
    path = tmp_path / name
    path.write_text(f'_base_ = [{osp.join(DEMO, base)!r}]\n{body}\n')
    return str(path)


def _load(path, cfg_options=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        cfg = load_config(path, cfg_options)
    return cfg, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_cskd_over_the_dlb_demo_names_the_carried_tau_and_the_second_view(tmp_path):
    path = _child(tmp_path, 'epsd_dlb_demo.py', "model = dict(sd=dict(type='CSKD'))")
    cfg, messages = _load(path)
    assert cfg.model.sd == dict(type='CSKD', tau=3.0, loss_weight=1.0)  # mmengine's merge
    (switch,) = [m for m in messages if 'changes model.sd' in m]
    assert switch.startswith(f'{path} changes model.sd from DLB to CSKD')
    assert "CSKD trains with DLB's tau=3.0 (its own default: tau=4.0)" in switch
    assert "sd=dict(_delete_=True, type='CSKD', ...) in model" in switch
    assert 'loss_weight' not in switch  # carried, but equal to CS-KD's own default
    (views,) = [m for m in messages if 'view' in m and 'changes' not in m]
    assert 'CSKD uses 1 view(s)' in views and "MultiView makes 2" in views


def test_delete_starts_afresh_and_a_cskd_base_is_silent(tmp_path):
    fresh = _child(tmp_path, 'epsd_dlb_demo.py',
                   "model = dict(sd=dict(_delete_=True, type='CSKD'))")
    cfg, messages = _load(fresh)
    assert cfg.model.sd == dict(type='CSKD')
    assert not [m for m in messages if 'changes model.sd' in m]
    assert [m for m in messages if 'MultiView makes 2' in m]  # the pipeline is still DLB's
    # one base per method: nothing carried, nothing to say
    own = _child(tmp_path, 'epsd_cskd_demo.py', 'sparsity = 0.8', name='own.py')
    cfg, messages = _load(own)
    assert cfg.model.sd.type == 'CSKD' and messages == []


def test_a_setting_the_new_method_does_not_take_is_an_error(tmp_path):
    path = _child(tmp_path, 'epsd_dlb_demo.py', "model = dict(sd=dict(type='PSKD'))")
    with pytest.raises(UserError, match=r"changes model\.sd from DLB to PSKD, .*: PSKD does "
                                        r"not take DLB's tau=3\.0; start it afresh"):
        load_config(path)


def test_a_switch_on_the_command_line_is_named_too():
    _, messages = _load(osp.join(DEMO, 'epsd_dlb_demo.py'), {'model.sd.type': 'CSKD'})
    assert any(m.startswith('--cfg-options changes model.sd from DLB to CSKD') for m in messages)
    # and the shipped demos themselves load without a word
    for name in ('epsd_dlb_demo.py', 'epsd_cskd_demo.py', 'epsd_pskd_demo.py',
                 'frcnn_demo.py'):
        assert _load(osp.join(DEMO, name))[1] == [], name
