"""tools/demo.py's terminal: mmengine's config, environment and hook dumps left out (the log
files keep them), everything else (steps, mask tables, progress bars, training lines) shown as
it comes, and all of it with --verbose."""
import importlib.util
import io
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: what the terminal shows: everything but mmengine's dumps, byte for byte
SHOWN = (
    b'[                    ] 0/4, elapsed: 0s, ETA:'
    b'\r[>>>>>>>>>>>>>>>>>>>>] 4/4, 1.4 task/s, elapsed: 3s, ETA:     0s'
    b'\n'
    b'12/01 06:09:38 - mmengine - INFO - pruning: per-layer masks (computed)\n'
    b'layer  numel\n-----\nconv1  2352\n'
    b'12/01 06:09:39 - mmengine - INFO - \n---------------iou_thr: 0.5---------------\n'
    b'| class | ap |\n'
    b'12/01 06:09:40 - mmengine - INFO - Epoch(train)  [1][10/50]  loss: 1.6\n')

STREAM = (
    b'12/01 06:09:30 - mmengine - INFO - \n'
    b'------------------------------------------------------------\n'
    b'System environment:\n    sys.platform: linux\n    CUDA available: False\n'
    b'------------------------------------------------------------\n\n'
    b'12/01 06:09:31 - mmengine - INFO - Config:\nmodel = dict(\n    type=\'SDImageClassifier\')\n'
    b'[demo] not a log record\n'  # (never printed inside a dump in practice; hidden with it)
    b'12/01 06:09:32 - mmengine - INFO - Hooks will be executed in the following order:\n'
    b'before_run:\n(VERY_HIGH   ) RuntimeInfoHook\n'
) + SHOWN


def _demo():
    spec = importlib.util.spec_from_file_location('demo_tool', osp.join(ROOT, 'tools',
                                                                        'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _filtered(chunk):
    out = io.BytesIO()
    quiet = _demo().QuietFilter(out)
    for i in range(0, len(STREAM), chunk):
        quiet.feed(STREAM[i:i + chunk])
    quiet.close()
    return out.getvalue()


def test_dumps_are_left_out_whatever_the_chunks():
    for chunk in (1, 7, 64, len(STREAM)):
        assert _filtered(chunk) == SHOWN, chunk


def test_progress_bar_is_shown_as_it_is_drawn():
    out = io.BytesIO()
    quiet = _demo().QuietFilter(out)
    quiet.feed(b'12/01 06:09:32 - mmengine - INFO - Hooks will be executed in order:\nx\n'
               b'[     ] 0/4, elapsed: 0s, ETA:')
    assert out.getvalue() == b'[     ] 0/4, elapsed: 0s, ETA:'  # before its line ends
    quiet.feed(b'\r[>>   ] 2/4')
    quiet.feed(b'\n12/01 06:09:38 - mmengine - INFO - pruning: done\n')
    assert out.getvalue() == (b'[     ] 0/4, elapsed: 0s, ETA:\r[>>   ] 2/4\n'
                              b'12/01 06:09:38 - mmengine - INFO - pruning: done\n')


def test_verbose_flag():
    demo = _demo()
    assert demo.parse_args(['--verbose']).verbose is True
    assert demo.parse_args([]).verbose is False
