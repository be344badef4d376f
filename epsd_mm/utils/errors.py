"""User-facing errors and the one place where command-line tools turn them into a clean exit.

A :class:`UserError` is a mistake in what the user asked for (a sparsity outside (0, 1), a mask
file for another model, a missing dataset path...). Tools print its message on one line and
exit with status 2; anything else is a bug and keeps its traceback.
"""
import functools
import os
import sys


class UserError(Exception):
    """A problem with the user's input, config or data; its message says how to fix it."""


def check_sparsity(sparsity, what='sparsity'):
    """Return ``sparsity`` as a float, or raise :class:`UserError` unless it lies in (0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise UserError(f'{what} must be a number in (0, 1), got {sparsity!r}') from None
    if not 0.0 < value < 1.0:
        raise UserError(
            f'{what} must lie strictly between 0 and 1 (the fraction of prunable weights '
            f'removed, e.g. 0.9), got {sparsity!r}')
    return value


def cli_main(main):
    """Decorate a tool's ``main()``: a :class:`UserError` prints ``error: ...`` and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            report_and_exit(e)

    return wrapper


def _own_message(error):
    """The message of ``error``; for one re-raised by a torch DataLoader worker ("Caught
    UserError in DataLoader worker process 0. Original Traceback ..."), the original one."""
    text = str(error)
    if 'Original Traceback' in text:
        last = text.rstrip().splitlines()[-1]
        if 'UserError: ' in last:
            return last.split('UserError: ', 1)[1]
    return text


def report_and_exit(error):
    """Print ``error: <error>`` on stderr and exit with status 2.

    Under ``tools/dist_train.sh`` / ``dist_test.sh`` (``EPSD_ERROR_FILE`` set, several
    processes), the first rank to fail writes the line into that file instead, for the script
    to print once, and leaves at once with ``os._exit``: the other ranks may be waiting in a
    collective, and the script ends the launch as torchrun stops them.
    """
    message = f'error: {_own_message(error)}'
    target = os.environ.get('EPSD_ERROR_FILE')
    if target and int(os.environ.get('WORLD_SIZE', '1')) > 1:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, 'w') as f:
                f.write(message + '\n')
        except FileExistsError:
            pass  # another rank's line is there already
        sys.stdout.flush()
        os._exit(2)
    if sys.stdout.isatty():
        print(flush=True)  # end a progress bar's line, so that the error starts its own
    print(message, file=sys.stderr, flush=True)
    sys.exit(2)
