"""What a result records of the machine and the code that made it: Python, numpy, the CPU, the
BLAS library and kernel, and the sha256 of the script and of this package."""
from __future__ import annotations

import hashlib
import os
import platform
import sys

import numpy as np

from rnem.blas import blas_info

PACKAGE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(PACKAGE)


def repository_path(path: str) -> str:
    """path relative to the repository when it lies inside it (what a result records: no
    machine's folder names), else as given."""
    full = os.path.abspath(path)
    return os.path.relpath(full, REPOSITORY) if full.startswith(REPOSITORY + os.sep) else path


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_sha256(path: str) -> str:
    """sha256 of the file at path (hex), as it is now."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def package_sha256() -> str:
    """sha256 over every module of this package (rnem/*.py, by name, each name then its sha256),
    as they are now."""
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(PACKAGE) if n.endswith(".py")):
        digest.update(f"{name} {source_sha256(os.path.join(PACKAGE, name))}\n".encode())
    return digest.hexdigest()


_LOADED = {}     # what code_sha256 hashed first in this process: {path: sha256, PACKAGE: package_sha256}


def code_sha256(script: str) -> tuple[str, str]:
    """(the script's sha256, package_sha256) as this process first saw them: both are taken when
    this module is imported, at the start of every script, before any work, so that a result
    records the code that ran even when the files are edited during a long run."""
    if PACKAGE not in _LOADED:
        _LOADED[PACKAGE] = package_sha256()
    key = os.path.realpath(script)
    if key not in _LOADED:
        _LOADED[key] = source_sha256(script)
    return _LOADED[key], _LOADED[PACKAGE]


_main = getattr(sys.modules.get("__main__"), "__file__", None)     # the script that runs, if any
code_sha256(_main if _main and os.path.isfile(_main) else __file__)  # at import: before any work


def environment(dtype: str, script: str) -> dict:
    """The run.json `env` record: what decides the numbers. In float64 they are the same to 1e-8
    on every x86-64 machine but for the chaotic closed-loop measures (CHAOTIC_METRICS), which move
    with the BLAS kernel's rounding; in float32 all depend on the kernel, so `numbers_depend_on`
    says which one was used. script: the file of the script that runs (its sha256 is recorded,
    with package_sha256 for the modules it imports)."""
    blas = blas_info()
    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "cpu": cpu_model(), "blas": blas, "dtype": dtype,
            "numbers_depend_on": ("source_sha256, package_sha256, config" if dtype == "float64" else
                                  f"source_sha256, package_sha256, config and the BLAS kernel ({blas['kernel']})"),
            **dict(zip(("source_sha256", "package_sha256"), code_sha256(script)))}
