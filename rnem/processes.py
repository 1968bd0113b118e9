"""Worker processes: fn(job) for many jobs in fresh spawned processes (one BLAS thread each),
that never hang whatever happens to a worker, stop on Ctrl-C or SIGTERM without orphans, and
fall back to the calling process when workers cannot start there."""
from __future__ import annotations

import contextlib
import importlib.machinery
import multiprocessing
import multiprocessing.connection
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time

from rnem.blas import one_blas_thread_environment


def _exit_when_orphaned(parent: int) -> None:
    """Worker thread: end this process when its parent is gone (killed without a chance to stop it)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


WORKER_REENTERED = 3     # exit code of a worker whose start-up re-ran a script that starts this work at import


def exit_if_worker_startup() -> None:
    """Ends a spawned worker that is still starting up and is re-running the caller's script
    (one without an `if __name__ == "__main__":` guard, which calls main() or run() at import):
    quietly, with WORKER_REENTERED, so that the parent can say what happened and go on."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(WORKER_REENTERED)


def _run_here(fn, job):
    """(fn(job), None), or (None, "Type: message") if it raised: a job's failure is reported, not raised."""
    try:
        return fn(job), None
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"


def _worker_main(fn, conn, parent: int) -> None:
    """A worker process: ignores Ctrl-C (the parent stops it), says ("started",) as soon as it
    runs, receives its job, runs fn(job) and sends back ("ok", result) or ("error", "Type: message").

    The job comes through the connection, not with the process's start-up data: the parent
    writes the start-up data while it still holds the reading end of that pipe, so a worker
    that died in start-up would leave a large write blocked for ever."""
    conn.send(("started",))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):                # started while the parent held them (signals_held)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    result, error = _run_here(fn, conn.recv())
    conn.send(("ok", result) if error is None else ("error", error))
    conn.close()


def why_workers_cannot_import(fn) -> str | None:
    """Why a spawned worker could not find fn (a new interpreter imports fn's module by name
    from the parent's sys.path, or re-runs the main script), or None if it can."""
    if not hasattr(fn, "__qualname__"):                         # a callable object: pickled as it says
        return None
    module = sys.modules.get(fn.__module__)
    if module is None or getattr(module, fn.__qualname__, None) is not fn:
        return f"{fn.__qualname__} is not reachable as {fn.__module__}.{fn.__qualname__}"
    if fn.__module__ == "__main__":
        return None if getattr(module, "__file__", None) else "the main module has no file to re-run"
    top = fn.__module__.split(".")[0]
    if top in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(top, sys.path) is not None:
        return None
    return f"module {fn.__module__!r} was loaded under a name that a new process cannot import"


def _stop_resource_tracker() -> None:
    """Ends multiprocessing's resource-tracker process (started with the first worker; it would
    outlive this process by a few milliseconds); a later worker starts a new one."""
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    if tracker is not None and hasattr(tracker, "_stop"):
        with contextlib.suppress(Exception):
            tracker._stop()


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM held back (delivered on leaving): a worker interrupted half-started
    (spawned, not yet sent its start-up data) would wait for that data for ever, and the clean-up's
    wait for it would never end. The mask holds them in the main thread (and in the worker, which
    inherits it until _worker_main); a signal the kernel hands to another thread (one of BLAS's)
    still runs its Python handler in the main thread, so the handlers only note it until the end."""
    holding = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    held, handlers = [], {}
    if holding:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not None:                 # (None: a handler not from Python, kept)
                handlers[signum] = signal.signal(signum, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        if holding:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
            for signum in dict.fromkeys(held):                       # each noted signal once, to its own handler
                signal.raise_signal(signum)


def run_workers(fn, jobs: list, workers: int, on_done=None) -> list:
    """fn(job) for every job, in at most `workers` fresh processes at a time; returns, in job
    order, (result, None) or (None, error string) per job. A worker that dies while it runs its
    job (killed, out of memory) fails that job with "worker died (...)" instead of hanging the
    others; a worker that dies before it starts its job (it cannot import fn, or it re-ran a
    script without a main guard) is detected as soon as it ends, and then every job not yet
    done runs in this process, one after another, with one line on stderr saying why.

    Workers are spawned, not forked: each starts a new interpreter with one BLAS thread
    whatever the parent's numpy was set to, so training speed does not depend on import
    order. on_done(index, result, error) is called as each job ends. On KeyboardInterrupt
    (Ctrl-C, or SIGTERM through main) every running worker is terminated before it propagates.
    """
    exit_if_worker_startup()
    outcomes = [None] * len(jobs)
    queue, running = list(enumerate(jobs)), {}            # sentinel -> [index, process, connection, started]
    why_serial = why_workers_cannot_import(fn)

    def finish(index, outcome):
        outcomes[index] = outcome
        if on_done is not None:
            on_done(index, *outcome)

    def finish_reply(index, reply):
        status, value = reply                           # a worker's ("ok", result) or ("error", message)
        finish(index, (value, None) if status == "ok" else (None, value))

    def how_it_ended(process):
        code = process.exitcode
        return f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    context = multiprocessing.get_context("spawn")
    try:
        while (queue or running) and why_serial is None:
            while queue and len(running) < workers:
                index, job = queue.pop(0)
                conn, child_end = context.Pipe()
                process = context.Process(target=_worker_main, args=(fn, child_end, os.getpid()), daemon=True)
                with one_blas_thread_environment(), signals_held():
                    process.start()                         # registered before a Ctrl-C or SIGTERM lands
                    running[process.sentinel] = [index, process, conn, False]
                child_end.close()                           # EOF on `conn` once the worker ends
            ready = multiprocessing.connection.wait([e[2] for e in running.values()] + list(running))
            for sentinel, entry in list(running.items()):
                index, process, conn, started = entry
                ended = sentinel in ready
                if conn not in ready and not ended:
                    continue
                reply = None
                try:
                    while reply is None and conn.poll():
                        message = conn.recv()
                        if message == ("started",):
                            entry[3] = started = True
                            conn.send(jobs[index])
                        else:
                            reply = message
                except (EOFError, BrokenPipeError):
                    ended = True
                if reply is None and not ended:
                    continue
                del running[sentinel]
                process.join()
                conn.close()
                if reply is not None:
                    finish_reply(index, reply)
                    continue
                if started:
                    finish(index, (None, f"WorkerDied: worker died ({how_it_ended(process)})"))
                    continue
                why_serial = ("the worker re-ran the calling script, which starts this work when it is imported"
                              if process.exitcode == WORKER_REENTERED
                              else f"a worker died while starting ({how_it_ended(process)})")
                queue.insert(0, (index, jobs[index]))
        if why_serial is not None:
            for sentinel, (index, process, conn, started) in list(running.items()):
                if started:                                 # a healthy worker finishes its job
                    try:
                        finish_reply(index, conn.recv())
                    except EOFError:
                        process.join()
                        finish(index, (None, f"WorkerDied: worker died ({how_it_ended(process)})"))
                else:
                    process.terminate()
                    queue.append((index, jobs[index]))
                process.join()
                conn.close()
                del running[sentinel]
            print(f"note: worker processes cannot run here: {why_serial}; running the {len(queue)} remaining "
                  f"job(s) in this process, one after another (put the calling code under "
                  f'`if __name__ == "__main__":`, or pass --jobs 1, to skip this)', file=sys.stderr, flush=True)
            for index, job in sorted(queue):
                finish(index, _run_here(fn, job))
            queue = []
    finally:
        for _, process, _, _ in running.values():
            process.terminate()
        for _, process, conn, _ in running.values():
            process.join()
            conn.close()
        _stop_resource_tracker()
    return outcomes


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C (main() installs raise_interrupted)."""


def raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)
