"""Run a Python tool and SIGKILL it while it writes a given file: a fault injector for tests.

Usage: ``python kill_at_write.py PATH N SCRIPT [ARGS...]`` runs ``SCRIPT ARGS`` in this process
(as ``python SCRIPT ARGS`` would) and kills the process with SIGKILL during the N-th time it
opens ``PATH`` for writing: as soon as the file holds its first bytes, or at the latest when it
is about to be renamed away (an ``os.rename`` / ``os.replace`` of it), whichever comes first.
Nothing of the tool is replaced; the kill is real and the file system is left as it is.
Used where ``strace -e inject=write:signal=KILL`` is not available.
"""
import os
import os.path as osp
import runpy
import signal
import sys
import threading
import time


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_once_written(path):
    while True:
        try:
            if os.stat(path).st_size > 0:
                _kill()
        except FileNotFoundError:
            pass
        time.sleep(0.0005)


def main():
    target, nth, script = osp.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    opened = [0]

    def audit(event, args):
        if event == 'open' and isinstance(args[0], str) and isinstance(args[1], str) \
                and 'w' in args[1] and osp.abspath(args[0]) == target:
            opened[0] += 1
            if opened[0] == nth:
                threading.Thread(target=_kill_once_written, args=(target, ),
                                 daemon=True).start()
        elif event == 'os.rename' and opened[0] >= nth and isinstance(args[0], str) \
                and osp.abspath(args[0]) == target:
            _kill()

    sys.addaudithook(audit)
    sys.argv = [script] + sys.argv[4:]
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
