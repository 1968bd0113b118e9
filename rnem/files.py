"""Files: checks that an output can be written (before any work), atomic writes (a file appears
whole or not at all), strict JSON, and the lock of a folder that a sweep writes into."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile

from rnem.cli import ConfigError

TEMP_PREFIX = ".tmp-"     # files being written; renamed into place when complete
RUNS_DIR = "runs"         # where a user's runs go by default (git-ignored); created in the current folder where missing
                          # (the committed results/ are written by regenerate.sh, which names every output)


def folder_to_check(folder: str) -> str:
    """The folder whose writability decides whether `folder` can be written: itself, or the
    current folder for a missing RUNS_DIR (created when the first file is written)."""
    if not os.path.isdir(folder) and os.path.normpath(folder) == RUNS_DIR:
        return os.curdir
    return folder


def can_write_in(folder: str) -> bool:
    """True when a file can be created in the existing folder (tried, not guessed from mode bits:
    root passes every permission check, a read-only file system does not)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.remove(probe)
    return True


def check_folder_writable(path: str, option: str) -> None:
    """The folder exists and is writable, or its parent does and is, so that it can be created
    (a missing RUNS_DIR parent counts as the current folder: it is created too)."""
    if path.strip() == "":
        raise ConfigError(f"{option} must name a folder (got '')")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{option} {path} is a file; give a folder")
    parent = folder_to_check(os.path.dirname(path)) if os.path.dirname(path) else os.curdir
    if not os.path.isdir(path) and not os.path.isdir(parent):
        raise ConfigError(f"{option} {path}: parent folder {os.path.abspath(parent)} does not exist")
    target = path if os.path.isdir(path) else parent
    if not can_write_in(target):
        raise ConfigError(f"{option} {path}: folder {os.path.abspath(target)} is not writable")


def check_output_path(path: str, option: str, suffix: str = "") -> None:
    """Fail early when `path` cannot be written: empty, a folder, a missing or unwritable folder."""
    if path.strip() == "":
        raise ConfigError(f"{option} must be a file path (got '')")
    if path.endswith(os.sep) or os.path.isdir(path):
        raise ConfigError(f"{option} {path} is a folder; give a file path such as "
                          f"{os.path.join(path, 'out' + (suffix or '.json'))}")
    if suffix and not path.endswith(suffix):
        raise ConfigError(f"{option} {path}: the file name must end in {suffix}")
    folder = folder_to_check(os.path.dirname(path) or os.curdir)
    if not os.path.isdir(folder):
        raise ConfigError(f"{option} {path}: folder {os.path.abspath(folder)} does not exist; create it or choose "
                          f"an existing folder")
    if not can_write_in(folder):
        raise ConfigError(f"{option} {path}: folder {os.path.abspath(folder)} is not writable")


def finite_or_null(value):
    """value with every NaN or infinite float replaced by None (JSON null: undefined), so that the
    file is strict JSON; nested dicts, lists and tuples are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def json_text(payload: dict, depth: int = 2) -> str:
    """JSON text with the dicts of the first `depth` levels written one key per line and every
    deeper value on one line (json's C encoder; indent= on the whole tree is several times slower)."""
    def encode(value, level):
        if level >= depth or not isinstance(value, dict) or not value:
            return json.dumps(finite_or_null(value), allow_nan=False)
        pad = " " * (level + 1)
        items = ",\n".join(f"{pad}{json.dumps(str(key))}: {encode(item, level + 1)}" for key, item in value.items())
        return "{\n" + items + "\n" + " " * level + "}"
    return encode(payload, 0)


def write_atomic(path: str, write, suffix: str) -> None:
    """write(temporary path) in the target folder, then rename it into place with the usual file
    mode: an interrupted or failed write leaves the previous file whole and no temporary file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)                       # RUNS_DIR where missing (see folder_to_check)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                        # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, payload: dict) -> None:
    """Writes payload as strict JSON (json_text) atomically (write_atomic)."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(json_text(payload) + "\n")
    write_atomic(path, write, ".json")


@contextlib.contextmanager
def seed_dir_lock(folder: str):
    """Holds `folder`/.lock (with this process's id) while a sweep writes there: a second sweep
    on the same folder is refused instead of overwriting the first one's files. A lock left by a
    process that no longer exists is taken over."""
    path = os.path.join(folder, ".lock")
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                with open(path) as f:
                    owner = int(f.read().strip() or 0)
                os.kill(owner, 0)
            except (OSError, ValueError):                            # stale: its process is gone
                with contextlib.suppress(OSError):
                    os.remove(path)
                continue
            raise ConfigError(f"--seed-dir {folder} is in use by another sweep (process {owner}); "
                              f"give another --seed-dir or wait for it to finish")
    else:
        raise ConfigError(f"--seed-dir {folder}: cannot create its lock file {path}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)

