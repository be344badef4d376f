"""checkpoint_problem says what is wrong with an unreadable checkpoint file; find_resumable
takes the newest readable one and names the ones it skipped."""
import os
import os.path as osp

import pytest
import torch

from epsd_mm.utils.checkpoints import checkpoint_problem, find_resumable


def _save(path, mtime=None, **extra):
    torch.save(dict(state_dict={'w': torch.arange(2000.0)}, **extra), path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def _truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    return len(data[:int(len(data) * keep)])


def test_a_complete_checkpoint_is_readable(tmp_path):
    assert checkpoint_problem(_save(tmp_path / 'a.pth')) is None


def test_problems_are_named(tmp_path):
    assert checkpoint_problem(str(tmp_path / 'none.pth')) == 'it does not exist'
    assert checkpoint_problem(str(tmp_path)) == 'it is a directory, not a file'
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert checkpoint_problem(str(tmp_path / 'empty.pth')) == 'it is empty (0 bytes)'
    size = _truncate(_save(tmp_path / 'half.pth'))
    assert checkpoint_problem(str(tmp_path / 'half.pth')) == (
        f'it is not a complete torch checkpoint ({size} bytes: truncated by an interrupted '
        'write, damaged, or not a checkpoint at all)')
    (tmp_path / 'noise.pth').write_bytes(os.urandom(3000))
    assert checkpoint_problem(str(tmp_path / 'noise.pth')) == (
        'it is not a complete torch checkpoint (3000 bytes: truncated by an interrupted '
        'write, damaged, or not a checkpoint at all)')


def test_a_flipped_byte_fails_the_crc_check(tmp_path):
    path = _save(tmp_path / 'flip.pth')
    data = bytearray(open(path, 'rb').read())
    offset = data.index(torch.arange(2000.0)[1000:1001].numpy().tobytes())
    data[offset] ^= 0xFF
    open(path, 'wb').write(bytes(data))
    assert checkpoint_problem(path) == 'it is damaged (member flip/data/0 fails its CRC check)'


def test_resume_takes_the_recorded_checkpoint_when_it_is_readable(tmp_path):
    _save(tmp_path / 'epoch_1.pth', mtime=1000)
    two = _save(tmp_path / 'epoch_2.pth', mtime=2000)
    _save(tmp_path / 'epoch_3.pth', mtime=3000)
    (tmp_path / 'last_checkpoint').write_text(two)
    assert find_resumable(str(tmp_path)) == (two, [], True)


def test_resume_skips_unreadable_ones_and_takes_the_newest_readable(tmp_path):
    one = _save(tmp_path / 'epoch_1.pth', mtime=1000)
    two = _save(tmp_path / 'epoch_2.pth', mtime=2000)
    three = str(tmp_path / 'epoch_3.pth')
    open(three, 'wb').close()
    os.utime(three, (3000, 3000))
    _save(tmp_path / 'best_accuracy_top1_epoch_3.pth', mtime=4000)  # no optimizer: never taken
    size = _truncate(two)
    os.utime(two, (2000, 2000))
    (tmp_path / 'last_checkpoint').write_text(three)
    path, skipped, recorded = find_resumable(str(tmp_path))
    assert path == one and recorded
    assert skipped == [(three, 'it is empty (0 bytes)'),
                       (two, f'it is not a complete torch checkpoint ({size} bytes: truncated '
                             'by an interrupted write, damaged, or not a checkpoint at all)')]


def test_resume_of_a_recorded_checkpoint_that_was_deleted(tmp_path):
    one = _save(tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    assert find_resumable(str(tmp_path)) == (
        one, [(str(tmp_path / 'epoch_2.pth'), 'it does not exist')], True)


@pytest.mark.parametrize('files', [[], ['best_accuracy_top1_epoch_1.pth']])
def test_nothing_to_resume(tmp_path, files):
    for name in files:
        _save(tmp_path / name)
    assert find_resumable(str(tmp_path)) == (None, [], False)
    assert find_resumable(osp.join(str(tmp_path), 'absent')) == (None, [], False)
