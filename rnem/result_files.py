"""Reading the result JSON for the figure and GIF scripts: a run, its keys, its stored sample
rollouts and a pixel run's sample sequence, each checked before anything is drawn (ConfigError,
one line naming the file and what is wrong)."""
from __future__ import annotations

import json
import os

import numpy as np

from rnem.cli import ConfigError

# the option that reads a file -> the script that writes it
SCRIPT_OF = {"--run": "relational_nem_bouncing_balls.py", "--pixels": "relational_nem_pixels.py",
             "--network": "relational_nem_network.py", "--interactions": "relational_nem_interactions.py"}
PANELS = ("truth", "non_relational", "relational")      # the sample rollouts of a run: the truth and the two models
COMPONENT_CHARS = "0123456789abcdef"   # component k of a pixel run's map; "." background (at most 16 components)
PIXEL_KEYS = ("size", "truth", "radii", "hidden_fraction", "collisions", "visible", "frames", "prediction_component",
              "prediction_level", "gamma_component", "gamma_level")


def kind_of(run: dict) -> str | None:
    """The option that reads a result of this shape (a key of SCRIPT_OF), or None if unknown."""
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    if "rounds" in run:
        return "--interactions"
    if ("models" in run and "orderings" in run) or ("test" in run and "kind" in config):
        return "--network"
    if "renderer" in config or "constant_velocity" in run:
        return "--pixels"
    if any(key in run for key in ("rollout", "variants", "summary")):
        return "--run"
    return None


def load_run(path: str, need=("samples",), option: str = "--run", check_kind: bool = True) -> dict:
    """Reads run.json and checks the keys this script needs (ConfigError otherwise); a result of
    another script (check_kind) gets a line saying what it is and which option reads it."""
    if not os.path.isfile(path):
        raise ConfigError(f"{option} {path}: file not found; produce it with python3 {SCRIPT_OF.get(option, SCRIPT_OF['--run'])}")
    try:
        with open(path) as f:
            run = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{option} {path}: not valid JSON ({err.msg if hasattr(err, 'msg') else err})")
    except OSError as err:
        raise ConfigError(f"{option} {path}: cannot be read ({err.strerror})")
    if not isinstance(run, dict):
        raise ConfigError(f"{option} {path}: expected a JSON object with keys {', '.join(need)}")
    other = kind_of(run)
    if check_kind and other is not None and other != option:
        raise ConfigError(f"{option} {path}: this is a result of {SCRIPT_OF[other]}; give it as {other} {path}")
    if "error" in run:                           # a per-seed file of a seed whose training failed
        raise ConfigError(f"{option} {path}: seed {run.get('seed')!r} failed ({run['error']}); it holds no results "
                         f"to draw")
    return require_keys(run, need, path, option)


def require_keys(run: dict, need, path: str, option: str = "--run") -> dict:
    """run itself when it has every key in `need` (ConfigError naming the missing ones otherwise)."""
    missing = [key for key in need if key not in run]
    if missing:
        raise ConfigError(f"{option} {path}: missing key(s) {', '.join(missing)}; regenerate it with python3 "
                          f"{SCRIPT_OF.get(option, SCRIPT_OF['--run'])}")
    return run


def check_samples(samples, path: str, names=PANELS) -> dict:
    """The `samples` section with the types the pictures need: arrays (T, S, K, D) of finite
    numbers of one shape for the truth and each model, T >= 2, D = 4 or 5 (the radius of each
    ball last), and a radius in (0, 0.25).
    Returns {name: float array} (ConfigError naming what is wrong otherwise)."""
    def bad(what):
        raise ConfigError(f"--run {path}: malformed samples ({what}); regenerate it with "
                         f"python3 relational_nem_bouncing_balls.py")

    if not isinstance(samples, dict):
        bad("samples must be an object")
    radius = samples.get("radius")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 < radius < 0.25:
        bad(f"radius must be a number in (0, 0.25), got {radius!r}")
    arrays = {}
    for name in names:
        try:
            array = np.asarray(samples[name], dtype=float)
        except KeyError:
            bad(f"no {name}")
        except (TypeError, ValueError):
            bad(f"{name} is not an array of numbers")
        if array.ndim != 4 or array.shape[-1] not in (4, 5) or len(array) < 2 or not np.isfinite(array).all():
            bad(f"{name} must be finite numbers of shape (T >= 2, sequences, K, 4 or 5), got shape {array.shape}")
        if array.shape[-1] == 5 and not ((array[..., 4] > 0) & (array[..., 4] < 0.25)).all():
            bad(f"{name}: every radius (fifth component) must be in (0, 0.25)")
        if arrays and array.shape != next(iter(arrays.values())).shape:
            bad(f"{name} has shape {array.shape}, the truth {arrays['truth'].shape}")
        arrays[name] = array
    return arrays


def decode_rows(rows, size: int, what: str, path: str, alphabet: str) -> np.ndarray:
    """(size, size) int from rows of characters: the character's index in alphabet ("." = -1)."""
    if not isinstance(rows, list) or len(rows) != size or any(not isinstance(r, str) or len(r) != size for r in rows):
        raise ConfigError(f"--pixels {path}: {what} must be {size} rows of {size} characters")
    lookup = {c: i for i, c in enumerate(alphabet)} | {".": -1}
    try:
        return np.array([[lookup[c] for c in row] for row in rows])
    except KeyError as err:
        raise ConfigError(f"--pixels {path}: {what} has the character {err.args[0]!r} (expected {alphabet} or .)")


def pixel_sample(run: dict, path: str) -> dict:
    """The sample sequence of a relational_nem_pixels.py result, decoded into arrays (ConfigError
    when anything the pictures read is missing or malformed)."""
    sample = require_keys(run, ("config", "sample"), path, "--pixels")["sample"]
    if not isinstance(sample, dict) or any(key not in sample for key in PIXEL_KEYS):
        raise ConfigError(f"--pixels {path}: sample must hold {', '.join(PIXEL_KEYS)}")
    size = sample["size"]
    if not isinstance(size, int) or not 8 <= size <= 512:
        raise ConfigError(f"--pixels {path}: sample size must be an integer in [8, 512] (got {size!r})")
    T = len(sample["frames"]) if isinstance(sample["frames"], list) else 0
    try:
        truth = np.asarray(sample["truth"], float)                                  # (T, B, 2)
        radii = np.asarray(sample["radii"], float)                                  # (B,)
        hidden = np.asarray(sample["hidden_fraction"], float)                       # (T, B)
        collisions = np.asarray(sample["collisions"], bool)                         # (T, B)
    except (TypeError, ValueError):
        raise ConfigError(f"--pixels {path}: truth, radii, hidden_fraction and collisions must be arrays of numbers")
    if T < 2 or truth.shape[0] != T or truth.ndim != 3 or truth.shape[2] != 2 or radii.shape != truth.shape[1:2] \
            or hidden.shape != truth.shape[:2] or collisions.shape != truth.shape[:2] or not np.isfinite(truth).all() \
            or not ((radii > 0) & (radii < 0.5)).all():
        raise ConfigError(f"--pixels {path}: sample truth must be (T >= 2, B, 2) finite, radii (B,) in (0, 0.5), "
                         f"hidden_fraction and collisions (T, B)")
    for key, n in (("prediction_component", T - 1), ("prediction_level", T - 1), ("gamma_component", T),
                   ("gamma_level", T)):
        if not isinstance(sample[key], list) or len(sample[key]) != n:
            raise ConfigError(f"--pixels {path}: {key} must hold {n} maps")
    rows = lambda key, alphabet: np.array([decode_rows(m, size, key, path, alphabet) for m in sample[key]])  # noqa: E731
    return {"size": size, "truth": truth, "radii": radii, "hidden_fraction": hidden, "collisions": collisions,
            "visible": decode_rows(sample["visible"], size, "visible", path, "01") == 1,
            "frames": rows("frames", "01") == 1,
            "prediction_component": rows("prediction_component", COMPONENT_CHARS),
            "prediction_level": rows("prediction_level", "0123456789"),
            "gamma_component": rows("gamma_component", COMPONENT_CHARS),
            "gamma_level": rows("gamma_level", "0123456789"),
            "renderer": str(sample.get("renderer", "?")), "dynamics": str(sample.get("dynamics", "?"))}


NETWORK_SAMPLE_KEYS = ("frames", "visible", "truth", "radii", "psi", "gamma", "prediction", "attention", "collisions")


def network_sample(run: dict, path: str) -> dict:
    """The sample test sequence of a relational_nem_network.py result (run with --sample), decoded
    into arrays: frames (T, S, S), visible (S, S), truth (T, B, 2), radii (B,), psi and gamma
    (T-1, K, S, S), prediction (T-1, S, S), attention (T-1, K, K) or None, collisions (T, B),
    sim (steps, S, S) of frames observed .. observed + steps - 1, observed, size (ConfigError when
    anything is missing or malformed)."""
    def bad(what):
        raise ConfigError(f"--network {path}: {what}; produce it with python3 relational_nem_network.py --sample")
    balls = run.get("test", {}).get("balls") if isinstance(run.get("test"), dict) else None
    if not isinstance(balls, dict) or not isinstance(balls.get("sample"), dict):
        bad("no sample sequence (test.balls.sample)")
    sample = balls["sample"]
    if any(key not in sample for key in NETWORK_SAMPLE_KEYS) or "sim_sample" not in balls:
        bad(f"the sample must hold {', '.join(NETWORK_SAMPLE_KEYS)} and test.balls.sim_sample")
    try:
        out = {key: np.asarray(sample[key], float) for key in NETWORK_SAMPLE_KEYS if key != "attention"}
        out["attention"] = None if sample["attention"] is None else np.asarray(sample["attention"], float)
        out["sim"] = np.asarray(balls["sim_sample"], float)
        T, S = out["frames"].shape[:2]
        K = out["psi"].shape[1]
        shapes_ok = (out["frames"].shape == (T, S, S) and out["visible"].shape == (S, S) and out["psi"].shape ==
                     (T - 1, K, S, S) == out["gamma"].shape and out["prediction"].shape == (T - 1, S, S)
                     and out["truth"].shape[0] == T and out["sim"].shape[1:] == (S, S) and len(out["sim"]) < T
                     and out["truth"].ndim == 3 and out["radii"].shape == out["truth"].shape[1:2]
                     and out["collisions"].shape == out["truth"].shape[:2]
                     and (out["attention"] is None or out["attention"].shape == (T - 1, K, K)))
    except (ValueError, TypeError, IndexError):
        shapes_ok = False
    if not shapes_ok or not all(np.isfinite(a).all() for a in out.values() if a is not None):
        bad("malformed sample (arrays of the wrong shape or not finite)")
    out["frames"], out["visible"], out["collisions"] = out["frames"] > 0, out["visible"] > 0, out["collisions"] > 0
    sims = balls.get("simulation")
    clean = sims.get("clean") if isinstance(sims, dict) else None
    seen = clean.get("seen") if isinstance(clean, dict) else None            # older results: the last frames
    if seen is not None and (not isinstance(seen, int) or not 1 <= seen <= T - len(out["sim"])):
        bad("malformed sample (the simulation's frames seen do not fit the sequence)")
    out["size"], out["observed"] = S, T - len(out["sim"]) if seen is None else seen
    return out
