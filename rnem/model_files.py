"""Model files: numpy arrays in an .npz with one JSON string of metadata, never a pickle; written
atomically, and read back with every way a file can fail to be one reported as one ConfigError."""
from __future__ import annotations

import json
import os

import numpy as np

from rnem.cli import ConfigError
from rnem.files import write_atomic


def write_model_file(path: str, meta: dict, arrays: dict) -> None:
    """arrays (name -> numpy array) and meta (a JSON object, with its `format`) into an .npz."""
    write_atomic(path, lambda tmp: np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays), ".npz")


def read_model_file(path: str, option: str, file_format: str):
    """(meta dict, {name: array}) of a file of this format, written by write_model_file, whose meta
    holds a `config` and a `models` object (ConfigError naming `option` when it is not one)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{option} {path}: file not found; write one with --save-model")
    bad = f"{option} {path}: not a model file written by --save-model"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as err:  # zipfile, pickle refusal, truncation: all mean "not our file"
        raise ConfigError(f"{bad} ({type(err).__name__})")
    try:
        meta = json.loads(str(arrays.pop("meta")))
        ok = (isinstance(meta, dict) and meta.get("format") == file_format
              and isinstance(meta.get("config"), dict) and isinstance(meta.get("models"), dict))
    except (KeyError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{bad} (no valid metadata)")
    return meta, arrays
