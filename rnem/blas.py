"""The BLAS under numpy: which library and kernel this process loaded (they decide the last
digit of a matrix product), and one BLAS thread for the duration of a call (training and
evaluation run inside it, so the caller's thread count does not move their numbers)."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import threading


# The environment variables that set a BLAS's thread count; read once, when numpy loads it, so
# they must be set before numpy is imported (this module imports no numpy at its top).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
@functools.lru_cache(maxsize=None)
def _openblas():
    """(ctypes library, symbol prefix, symbol suffix) of the OpenBLAS this process loaded, or None.

    numpy's wheels ship OpenBLAS as libscipy_openblas64_ with symbols scipy_openblas_*64_;
    other builds use plain openblas_*."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            if hasattr(lib, f"{prefix}get_corename{suffix}"):
                return lib, prefix, suffix
    return None


def blas_info() -> dict:
    """What decides the numbers of this process's matrix products: the BLAS library, its build
    and the kernel it selected for this CPU (OpenBLAS's corename), and its thread count."""
    found = _openblas()
    if found is None:
        import numpy as np                    # this module imports no numpy: see BLAS_THREAD_VARS
        libs = [lib for lib in np.show_config(mode="dicts").get("Build Dependencies", {}).values()] \
            if hasattr(np, "show_config") else []
        return {"library": str(libs[0].get("name", "unknown")) if libs else "unknown",
                "kernel": "unknown", "threads": None,
                "thread_control": "none: not OpenBLAS, the caller's BLAS thread count decides the last digits"}
    lib, prefix, suffix = found
    corename, config = getattr(lib, f"{prefix}get_corename{suffix}"), getattr(lib, f"{prefix}get_config{suffix}")
    corename.restype = config.restype = ctypes.c_char_p
    return {"library": "OpenBLAS", "config": config().decode(), "kernel": corename().decode(),
            "threads": int(getattr(lib, f"{prefix}get_num_threads{suffix}")()),
            "thread_control": "one thread during training and evaluation"}


@contextlib.contextmanager
def one_blas_thread():
    """Runs its body with one OpenBLAS thread and restores the caller's count afterwards.

    Training and evaluation run inside it, in the calling process as in the workers, so their
    numbers do not depend on how many threads the caller's numpy had (two threads split a matrix
    product differently, which moves the last digit). With another BLAS (MKL, Accelerate) the
    count cannot be set from here: the caller's thread count then decides the last digits, and
    blas_info()["thread_control"] says so."""
    found = _openblas()
    if found is None:
        yield
        return
    lib, prefix, suffix = found
    get, put = getattr(lib, f"{prefix}get_num_threads{suffix}"), getattr(lib, f"{prefix}set_num_threads{suffix}")
    before = int(get())
    if before != 1:
        put(1)
    try:
        yield
    finally:
        if before != 1:
            put(before)


def with_one_blas_thread(fn):
    """Decorator: fn runs inside one_blas_thread()."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapper


@contextlib.contextmanager
def one_blas_thread_environment():
    """os.environ with one BLAS thread while worker processes start (they inherit it before
    their numpy loads), restored afterwards; SIGINT is blocked meanwhile so that a Ctrl-C
    reaches a worker only once it ignores it (the block is inherited through exec)."""
    saved = {var: os.environ.get(var) for var in BLAS_THREAD_VARS}
    os.environ.update({var: "1" for var in BLAS_THREAD_VARS})
    blocked = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
