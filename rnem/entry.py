"""The one main() wrapper of every script: what bad input, a failed run and a signal give.

    exit 0   done
    exit 2   bad input: one `error:` line naming the option and its valid range, nothing written
    exit 1   the run failed (training diverged, a worker died): one `error:` line, nothing written
    exit 130 / 143   stopped by SIGINT / SIGTERM: one `error:` line; the work's own `finally`
             blocks and atomic writes leave no partial file, run_workers leaves no worker
"""
from __future__ import annotations

import signal
import sys
import threading

from rnem.cli import ConfigError
from rnem.processes import Interrupted, raise_interrupted


class RunFailed(RuntimeError):
    """A run that failed after its input was accepted (training diverged, its worker died)."""


def run_main(work, stopped: str = "nothing written") -> int:
    """work() -> exit code, run under the contract above; SIGTERM is raised as Interrupted in the
    main thread (so it unwinds like Ctrl-C); `stopped` ends the line printed on a signal."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        return work()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RunFailed, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        name = str(err) if isinstance(err, Interrupted) else "SIGINT"
        print(f"error: stopped by {name}: {stopped}", file=sys.stderr)
        return 128 + getattr(signal, name, signal.SIGINT)
