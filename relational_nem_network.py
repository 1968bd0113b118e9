"""The paper's network on frames: neural R-NEM and RNN-EM learned end to end by unrolled EM, in pure numpy.

The model, its forward and backward passes and the unrolled EM are in rnem/network.py; the frames
come from the project's simulator and renderer (rnem/scenes.py). This script trains one network
as the paper does (the input of component k is gamma_k (x_noisy - psi_k) with bit-flip noise,
next-frame prediction, the gamma-weighted BCE plus the out-of-group KL to Bernoulli(0), no
gradient through gamma, BPTT through every step, Adam), selects the check with the lowest
validation loss, and measures it on fresh test sequences: ARI of the grouping, next-frame BCE
(max_k psi and the mixture, beside copying the frame), relational BCE, 6-8 balls with K = 8,
simulation, and with --curtain the balls that come out from behind it. docs/network.md defines
every measure.

    python3 relational_nem_network.py --out runs/my_network.json --save-model runs/my_network.npz   # R-NEM, about 5.5 min
    python3 relational_nem_network.py --kind rnn_em --components 1 --out runs/my_rnn.json      # the paper's RNN
    python3 relational_nem_network.py --steps 50 --n-train 200 --out runs/my_short.json    # a short training
    python3 relational_nem_network.py --retest runs/my_network.npz --sample --out runs/again.json    # measure a saved network
    python3 relational_nem_network.py --summarise results/network --out runs/my_summary.json   # over seeds
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import sys
import time

from rnem.blas import BLAS_THREAD_VARS  # noqa: E402  (imports no numpy)
for _var in BLAS_THREAD_VARS:             # before numpy loads: one BLAS thread
    os.environ.setdefault(_var, "1")
import numpy as np  # noqa: E402

from rnem import dynamics_measures as dyn  # noqa: E402
from rnem import network  # noqa: E402
from rnem.balls import HEAVY_RADIUS  # noqa: E402
from rnem.blas import with_one_blas_thread  # noqa: E402
from rnem.entry import run_main  # noqa: E402
from rnem.cli import ConfigError, config_field, current_names, parser_from_config, stored_config  # noqa: E402
from rnem.environment import environment  # noqa: E402
from rnem.files import check_output_path, write_json_atomic  # noqa: E402
from rnem.frames import ball_pixels  # noqa: E402
from rnem.measures import ari_batch, bce  # noqa: E402
from rnem.model_files import read_model_file, write_model_file  # noqa: E402
from rnem.motion_references import REFERENCES, reference_motion  # noqa: E402
from rnem.optim import Adam  # noqa: E402
from rnem.scenes import RADIUS, ball_disks, ball_scenes, collision_region, hidden_balls, scene_rows  # noqa: E402
from rnem.simulator import max_balls, rng_for  # noqa: E402
from rnem.sweeps import over_seeds  # noqa: E402

LAST_STEPS = 10             # ARI "last": the mean over the last this many steps
PAPER_CLIP = 1e-6           # the paper's clip of predicted probabilities in its BCE
EVAL_CHUNK = 64             # sequences per forward pass when measuring (bounds the memory of the caches)
EXTRAPOLATE_BALLS = (6, 7, 8)   # the paper's harder test: more balls than in training, the same weights
EXTRAPOLATE_K = 8           # ... with this many components (a network trained with K = 1 keeps K = 1)


@dataclasses.dataclass
class NetworkConfig:
    seed: int = config_field(0, "the seed of the data, the initial weights and the batches")
    kind: str = config_field("r_nem", "r_nem (attention), r_nem_sum (no attention), rnn_em (Upsilon = theta_k; "
                             "with --components 1 it is the paper's RNN)", choices=network.KINDS)
    size: int = config_field(24, "frame side in pixels")
    n_balls: int = config_field(4, "balls per training, validation and test sequence")
    train_balls: str = config_field("", "balls per training sequence instead, as a list (e.g. 3,4,5: equal shares, "
                                        "so that the number of empty components varies); validation and test keep "
                                        "--n-balls")
    components: int = config_field(5, "K, components per sequence")
    hidden: int = config_field(100, "M, the recurrent state of a component")
    attention_width: int = config_field(0, "A, the width of the attention MLP's tanh layer (--kind r_nem; 0: M / 2, "
                                           "this project's default; the paper's is 100 beside 250 for M)")
    masses: bool = config_field(False, "the paper's two ball types (1.25x the radius and 6x the mass)")
    curtain: float = config_field(0.0, "width of an unseen vertical band at a random place per sequence, in box "
                                       "units (0: none); the network is not told where it is")
    t_frames: int = config_field(20, "frames per sequence")
    frame_steps: int = config_field(1, "simulator steps between two frames (2: balls move twice as far a frame, "
                                       "about 1.8 px at 24 px; the physics is the same)")
    n_train: int = config_field(5000, "training sequences")
    n_val: int = config_field(64, "validation sequences (model selection)")
    n_eval: int = config_field(256, "test sequences of --n-balls balls, and as many of 6-8 balls")
    observed: int = config_field(10, "simulation: frames seen before the model runs on its own predictions (the "
                                     "clean and original protocols; the paper's Figure 4 protocol sees 5)")
    batch: int = config_field(16, "sequences per Adam step")
    steps: int = config_field(1500, "Adam steps (the training length)")
    lr: float = config_field(1e-3, "Adam's learning rate")
    lr_drop_at: int = config_field(0, "from this step on, the learning rate is --lr times --lr-drop (0: never)")
    lr_drop: float = config_field(0.2, "the factor of the learning rate from --lr-drop-at on")
    bitflip: float = config_field(0.2, "fraction of the input pixels flipped (the paper's noise)")
    own_input: float = config_field(0.0, "fraction of the training batches whose input, from a random step on (5 "
                                         "and later), is the network's own prediction with the bit-flip noise (a "
                                         "curriculum toward simulation; not the paper's)")
    own_input_from: int = config_field(0, "the first training step that uses --own-input")
    select_from: int = config_field(0, "select among the checks from this step on only (when a later phase changes "
                                       "the training, e.g. --own-input-from)")
    eval_every: int = config_field(100, "validate (and maybe select) every this many steps")
    patience: int = config_field(0, "stop after this many checks without a lower validation loss (0: train all "
                                    "--steps steps)")
    dtype: str = config_field("float32", "of parameters and activations (the gradient checks use float64)",
                              choices=("float32", "float64"))
    sample: bool = config_field(False, "keep one test sequence's frames, psi_k, gamma and attention in the result "
                                       "(for the figures)")
    retest: str = config_field("", "instead of training: measure the network saved in this .npz again (its "
                                   "config and curves come from the file; --out, --sample from here)")
    summarise: str = config_field("", "instead of training: summarise the result files <name>_seed<N>.json of this "
                                      "folder over seeds into --out (docs/network.md)")
    out: str = config_field("runs/network.json", "the result JSON (written atomically; runs/ is git-ignored)")
    save_model: str = config_field("", "also write the selected network to this .npz (numpy arrays and JSON "
                                       "metadata, no pickle)")


def check_config(cfg: NetworkConfig) -> None:
    """ConfigError naming the option and its valid range, before any work."""
    ranges = {"size": (8, 128), "n_balls": (1, max_balls(RADIUS)), "components": (1, 16), "hidden": (2, 1024),
              "attention_width": (0, 1024),
              "t_frames": (LAST_STEPS + 2, 200), "frame_steps": (1, 4), "n_train": (1, 100_000), "n_val": (1, 10_000),
              "n_eval": (len(EXTRAPOLATE_BALLS), 10_000), "observed": (2, cfg.t_frames - 1), "batch": (1, 1024),
              "steps": (1, 1_000_000), "eval_every": (1, 1_000_000), "patience": (0, 1000),
              "lr_drop_at": (0, 1_000_000), "own_input_from": (0, 1_000_000),
              "select_from": (0, cfg.steps), "seed": (0, 2**32 - 1)}
    for name, (lo, hi) in ranges.items():
        if not lo <= getattr(cfg, name) <= hi:
            raise ConfigError(f"--{name.replace('_', '-')} must be in {lo}..{hi} (got {getattr(cfg, name)})")
    if cfg.attention_width and cfg.kind != "r_nem":
        raise ConfigError(f"--attention-width must be 0 unless --kind is r_nem (the only network with attention; "
                          f"got {cfg.attention_width} with --kind {cfg.kind})")
    if not 0 < cfg.lr <= 1:
        raise ConfigError(f"--lr must be in (0, 1] (got {cfg.lr})")
    if not 0 < cfg.lr_drop <= 1:
        raise ConfigError(f"--lr-drop must be in (0, 1] (got {cfg.lr_drop})")
    if not 0 <= cfg.own_input <= 1:
        raise ConfigError(f"--own-input must be in [0, 1] (got {cfg.own_input})")
    if not 0 <= cfg.bitflip < 0.5:
        raise ConfigError(f"--bitflip must be in [0, 0.5) (got {cfg.bitflip})")
    if not 0 <= cfg.curtain <= 0.5:
        raise ConfigError(f"--curtain must be in [0, 0.5] (the band's width in box units; got {cfg.curtain})")
    if cfg.batch > cfg.n_train:
        raise ConfigError(f"--batch must be at most --n-train = {cfg.n_train} (got {cfg.batch})")
    try:
        counts = ball_counts(cfg.train_balls)
    except ValueError:
        counts = [0]
    if any(not 1 <= k <= max_balls(RADIUS) for k in counts) or len(counts) > cfg.n_train:
        raise ConfigError(f"--train-balls must be a list of numbers of balls in 1..{max_balls(RADIUS)}, at most "
                          f"--n-train of them (got {cfg.train_balls!r})")
    if cfg.masses and cfg.n_balls > max_balls(RADIUS * HEAVY_RADIUS):
        raise ConfigError(f"--n-balls must be in 1..{max_balls(RADIUS * HEAVY_RADIUS)} with --masses "
                          f"(got {cfg.n_balls})")
    if cfg.retest and not os.path.isfile(cfg.retest):
        raise ConfigError(f"--retest must be a network file written by --save-model (got {cfg.retest!r})")
    if cfg.retest or cfg.summarise:
        given = [f.name for f in dataclasses.fields(cfg) if f.name not in RETEST_OPTIONS
                 and getattr(cfg, f.name) != f.default]
        if given:
            which = "--retest measures a saved network with its own config" if cfg.retest else \
                "--summarise reads results"
            raise ConfigError(f"{which}: --{given[0].replace('_', '-')} is a training option; give only "
                              f"{', '.join('--' + o for o in RETEST_OPTIONS)}")
    if cfg.summarise and not os.path.isdir(cfg.summarise):
        raise ConfigError(f"--summarise must be a folder of result files (got {cfg.summarise!r})")
    check_output_path(cfg.out, "--out")
    if cfg.save_model:
        check_output_path(cfg.save_model, "--save-model", suffix=".npz")


RETEST_OPTIONS = ("retest", "summarise", "out", "sample")   # the options --retest and --summarise take

MODEL_FILE_FORMAT = "relational-nem-network 1"


def new_network(cfg: NetworkConfig) -> network.Network:
    """The network cfg describes (kind, size, hidden, attention_width, dtype), with its seeded initial
    weights."""
    return network.Network(cfg.kind, cfg.size ** 2, cfg.hidden, rng=rng_for(cfg.seed, "network/init"),
                           attention=cfg.attention_width or None, dtype=np.dtype(cfg.dtype))


def save_network(path: str, net, cfg: NetworkConfig, training: dict) -> None:
    """The network's parameter vector with its config and `training` (history, selected, timing:
    what --retest copies into its result) (rnem.model_files)."""
    meta = {"format": MODEL_FILE_FORMAT, "config": dataclasses.asdict(cfg), **training,
            "models": {cfg.kind: {"n_params": int(net.flat.size)}}, "env": environment(cfg.dtype, __file__)}
    write_model_file(path, meta, {cfg.kind: net.flat})


def load_network(path: str, option: str = "--retest"):
    """(network, the file's metadata: config, history, ...) of a file written by save_network
    (ConfigError if it is not one)."""
    meta, arrays = read_model_file(path, option, MODEL_FILE_FORMAT)
    config = meta.get("config")
    try:
        net = new_network(stored_config(NetworkConfig, config))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{option} {path}: its config does not describe a network ({type(err).__name__}: {err})")
    flat = arrays.get(config["kind"])
    if flat is None or flat.shape != net.flat.shape or not np.isfinite(flat).all():
        raise ConfigError(f"{option} {path}: parameters missing, of the wrong length or not finite")
    net.flat[...] = flat
    return net, meta


def make_scenes(cfg: NetworkConfig, n: int, purpose: str, n_balls: int | None = None) -> dict:
    """n sequences of n_balls (default cfg.n_balls) balls as cfg describes them (rnem.scenes.ball_scenes)."""
    return ball_scenes(n, cfg.t_frames, n_balls or cfg.n_balls, cfg.size, cfg.seed, purpose, cfg.masses, cfg.curtain,
                       cfg.frame_steps)


def ball_counts(text: str) -> list:
    """The list of --train-balls ([] for none); ValueError if it is not a list of whole numbers."""
    return [int(part) for part in text.split(",")] if text else []


def training_frames(cfg: NetworkConfig) -> np.ndarray:
    """(T, n_train, D) the training frames: of --n-balls balls, or of each count of --train-balls in
    equal shares (sequences in the order of the list; the batches draw them at random)."""
    counts = ball_counts(cfg.train_balls)
    if not counts:
        return flat_frames(make_scenes(cfg, cfg.n_train, "network/train"))
    shares = np.diff(np.linspace(0, cfg.n_train, len(counts) + 1).round().astype(int))
    return np.concatenate([flat_frames(make_scenes(cfg, n, f"network/train/balls{k}", k))
                           for k, n in zip(counts, shares)], axis=1)


def flat_frames(scenes: dict) -> np.ndarray:
    """(T, n, D) bool: the frames with the pixels of a frame in one row."""
    T, n = scenes["frames"].shape[:2]
    return scenes["frames"].reshape(T, n, -1)


def grouping_ari(gammas, labels, visible, size: int) -> np.ndarray:
    """(len(gammas), n) ARI of argmax_k gamma (each (n, K, D)) against the labels (n, S, S) of the
    same frame, on the visible pixels of one ball (background and overlaps ignored)."""
    out = []
    for gamma, lab in zip(gammas, labels):
        n, K, D = gamma.shape
        with_bg = np.concatenate([gamma, np.zeros((n, 1, D), gamma.dtype)], axis=1)   # ari_batch's background slot
        out.append(ari_batch(lab, with_bg.reshape(n, K + 1, size, size), visible))
    return np.array(out)


def frame_bces(frames, prob, weight=None, clip: float = PAPER_CLIP) -> np.ndarray:
    """(...) the BCE in nats of each binary frame (..., D) under prob (..., D), summed over the
    pixels (weighted by weight (..., D) if given), prob clipped to [clip, 1 - clip] (rnem.measures.bce)."""
    D = frames.shape[-1]
    lead = frames.shape[:-1]
    w = 1.0 if weight is None else np.broadcast_to(weight, frames.shape).reshape(-1, 1, D)
    return bce(frames.reshape(-1, 1, D), np.broadcast_to(prob, frames.shape).reshape(-1, 1, D), w, clip).reshape(lead)


def best_flip_rate(frames) -> float:
    """The fraction of pixels that change from one frame to the next, frames (T, n, D): copying the
    current frame with this flip rate (BCE clipped to [q, 1 - q]) is the best copy of its kind."""
    return float((frames[1:] != frames[:-1]).mean())


def input_noise(frames, cfg: NetworkConfig, purpose: str):
    """frames (T, n, D) with the training's bit-flip noise (cfg.bitflip) drawn by rng_for(seed, purpose)."""
    return network.bitflip(frames, rng_for(cfg.seed, f"{purpose}/noise"), cfg.bitflip)


def run_network(net, scenes: dict, components: int, seed: int, purpose: str, keep: int | None = None,
                limit: int | None = None, noisy=None) -> dict:
    """The unrolled EM over the scenes, EVAL_CHUNK sequences at a time; the input is the clean frames,
    or `noisy` (T, n, D) if given (the E-step always sees the clean frame). Returns per step t = 0 ..
    T-2 (predicting frame t + 1) and sequence: gamma (the E-step on frame t + 1) reduced at once to
    the ARI; the prediction of frame t + 1 before it is seen, sum_k gamma_t psi_{t+1} ("real"), and
    the paper's max_k psi_{t+1} ("max"); the mean loss; the displacements for the motion fraction
    (predicted and true, rnem.dynamics_measures, steps t >= 1) and, with attention, the mean a_ki on
    real and on empty components. With keep (a sequence index), also that sequence's psi, gamma and
    attention per step; with limit, only the chunks of the first `limit` sequences (the same numbers
    as theirs in a whole run)."""
    frames = flat_frames(scenes)                                                         # (T, n, D)
    T, n, D = frames.shape
    size = int(math.isqrt(D))
    area = float(ball_disks(scenes, size, slice(0, 1))[0].sum(axis=-1).mean())          # pixels of one ball
    gamma0 = network.initial_gamma(rng_for(seed, f"{purpose}/gamma0"), n, components, D)
    visible = scenes["visible"].reshape(n, D)
    out = {"ari": [], "real": [], "max": [], "loss": 0.0, "moved": [], "moves": [], "attention": [], "real_k": [],
           "pairs": []}
    for lo in range(0, min(n, limit or n), EVAL_CHUNK):
        rows = slice(lo, min(n, lo + EVAL_CHUNK))
        x_in = frames[:, rows] if noisy is None else noisy[:, rows]
        loss, steps = network.em_forward(net, x_in, frames[:, rows], gamma0[rows])
        out["loss"] += loss * (rows.stop - rows.start) / n
        psi, gamma = [s[3] for s in steps], [s[4] for s in steps]                       # psi_{t+1}, gamma_{t+1}
        out["ari"].append(grouping_ari(gamma, scenes["labels"][1:, rows], scenes["visible"][rows], size))
        out["real"].append(np.stack([(s[2] * p).sum(axis=1) for s, p in zip(steps, psi)]))   # (T-1, chunk, D)
        out["max"].append(np.stack([p.max(axis=1) for p in psi]))
        disks, wide = ball_disks(scenes, size, rows), ball_disks(scenes, size, rows, wider=dyn.MOTION_MARGIN_PX)  # (T, chunk, B, D)
        seen = disks & visible[rows, None, :]
        owner = np.stack([dyn.owners(gamma[t - 1], seen[t]) for t in range(1, T - 1)])  # (T-2, chunk, B): at step t
        for t in range(1, T - 1):                              # psi_{t+1} of the component that owns the ball at t
            window, usable = dyn.motion_windows(disks[t], disks[t + 1], wide[t], wide[t + 1], visible[rows])
            moved, moves = dyn.predicted_displacements(psi[t], owner[t - 1], disks[t], disks[t + 1], window, usable,
                                                       size)
            out["moved"].append(moved)
            out["moves"].append(moves)
        if net.kind == "r_nem":                                # a_ki at step t, from the components of gamma_t
            attention = [net.attention(s[0]) for s in steps[1:]]                             # T-2 of (chunk, K, K)
            out["attention"] += attention
            out["real_k"] += [dyn.real_components(s[2], frames[t, rows], area) for t, s in enumerate(steps) if t]
            out["pairs"].append((np.stack(attention), owner,            # (T-2, chunk, K, K), (T-2, chunk, B)
                                 dyn.owned_balls(disks[1:-1], seen[1:-1]),                    # (T-2, chunk, B)
                                 scenes["pair"][1:T - 1, rows]))                              # (T-2, chunk, B, B)
        if keep is not None and rows.start <= keep < rows.stop:
            i = keep - lo
            out["keep"] = {"psi": np.stack([p[i] for p in psi]), "gamma": np.stack([g[i] for g in gamma]),
                           "attention": (np.stack([net.attention(s[0])[i] for s in steps])
                                         if net.kind == "r_nem" else None)}
    for key in ("ari", "real", "max"):
        out[key] = np.concatenate(out[key], axis=1)                                      # (T-1, n, ...)
    out["motion"] = dyn.motion_fraction(np.concatenate(out.pop("moved")), np.concatenate(out.pop("moves")))
    attention, real_k = out.pop("attention"), out.pop("real_k")
    out["attention"] = (dyn.attention_on(np.concatenate(attention), np.concatenate(real_k))
                        if attention else None)
    pairs = out.pop("pairs")
    if pairs:                                                # along the sequences: (T-2, n, ...)
        out["attention"]["collisions"] = dyn.attention_around_collisions(
            *(np.concatenate(a, axis=1) for a in zip(*pairs)))
    return out


def measure(net, cfg: NetworkConfig, scenes: dict, components: int, purpose: str, keep=None,
            noisy: bool = False) -> dict:
    """The paper's measures on the scenes (docs/network.md defines them), the input clean or with
    the training's bit-flip noise (noisy: the original code's test protocol):
    ari_last (mean over the last LAST_STEPS steps), ari_all (over every step) and ari_per_step;
    next-frame BCE in nats per frame over frames 2 .. T-1 (frame 1's prediction rests on the random
    gamma(0)) of the real prediction (bce_real) and of max_k psi (bce_max), beside copying the
    current frame with the paper's clip (bce_copy_clipped) and with the best flip rate (bce_copy_best,
    the fair bar); relational BCE: the same summed over the pixels of colliding balls
    (rnem.scenes.collision_region), mean over the frames that show a collision; the motion fraction
    (teacher-forced) and the attention on real and empty components; with a curtain, the BCE on the
    pixels of a ball that comes out from behind it (reemerging_*)."""
    frames = flat_frames(scenes)                                                         # (T, n, D)
    run = run_network(net, scenes, components, cfg.seed, purpose, keep,
                      noisy=input_noise(frames, cfg, purpose) if noisy else None)
    q = best_flip_rate(frames)
    target, now = frames[2:], frames[1:-1]                                       # frames 2 .. T-1, and the frames before
    preds = {"real": run["real"][1:], "max": run["max"][1:], "copy_clipped": now, "copy_best": now}
    clips = {"copy_best": q}
    out = {"loss": float(run["loss"]), "ari_per_step": run["ari"].mean(axis=1).tolist(),
           "ari_last": float(run["ari"][-LAST_STEPS:].mean()), "ari_all": float(run["ari"].mean()),
           "changed_fraction": q, "motion": run["motion"], "attention": run["attention"]}
    for name, prob in preds.items():
        out[f"bce_{name}"] = float(frame_bces(target, prob, clip=clips.get(name, PAPER_CLIP)).mean())
    out["brier_real"] = float(dyn.brier(target, run["real"][1:]).mean())
    out["brier_max"] = float(dyn.brier(target, run["max"][1:]).mean())
    out["brier_copy"] = float(dyn.brier(target, now).mean())
    regions = [collision_region(scenes, t, cfg.size) for t in range(2, frames.shape[0])]
    region = np.stack([r.reshape(r.shape[0], -1) for r, _ in regions])                  # (T-2, n, D)
    shows = np.stack([rows for _, rows in regions])                                      # (T-2, n)
    out["collision_frames"] = int(shows.sum())
    for name, prob in preds.items():
        per = frame_bces(target, prob, region, clip=clips.get(name, PAPER_CLIP))
        out[f"relational_bce_{name}"] = float(per[shows].mean()) if shows.any() else None
    if cfg.curtain > 0:
        out |= reemerging(cfg, scenes, target, preds, clips)
    if keep is not None:
        out["sample"] = sample_payload(scenes, keep, run, cfg.size)
    return out


def reemerging(cfg: NetworkConfig, scenes: dict, target, preds: dict, clips: dict) -> dict:
    """Object permanence behind the curtain: at each frame t where a ball that was hidden at t - 1
    (mostly behind the curtain, seen before) is mostly out again, the BCE of each prediction on that
    ball's disk (one pixel wider), summed over the disk's visible pixels; mean over such events."""
    behind, hidden = hidden_balls(scenes, cfg.size)                                      # (T, n, B) each
    back = hidden[1:-1] & ~behind[2:]                                                    # (T-2, n, B): out at frame t
    disks = ball_pixels(scenes["states"][2:, :, :, :2], scenes["radii"] + 1.0 / cfg.size, cfg.size)  # (T-2, n, B, S, S)
    disks &= scenes["visible"][None, :, None]
    region = disks.reshape(disks.shape[:3] + (-1,))                                      # (T-2, n, B, D)
    out = {"reemerging_events": int(back.sum())}
    for name, prob in preds.items():
        per = frame_bces(np.broadcast_to(target[:, :, None], region.shape),
                         np.broadcast_to(prob[:, :, None], region.shape), region, clip=clips.get(name, PAPER_CLIP))
        out[f"reemerging_bce_{name}"] = float(per[back].mean()) if back.any() else None
    return out


def sample_payload(scenes: dict, s: int, run: dict, size: int) -> dict:
    """One test sequence for the figures (Figure 2 of the paper): its frames, labels, true
    positions and radii, and per step psi_k, gamma_k, the attention a_ki (R-NEM) and the real
    prediction, rounded to 2 decimals (what the figures need)."""
    keep, rnd = run["keep"], (lambda a: np.round(np.asarray(a, float), 2).tolist())
    img = (lambda a: rnd(np.asarray(a).reshape(a.shape[:-1] + (size, size))))
    return {"index": s, "frames": scenes["frames"][:, s].astype(int).tolist(),
            "labels": scenes["labels"][:, s].tolist(),
            "visible": scenes["visible"][s].astype(int).tolist(), "truth": rnd(scenes["states"][:, s, :, :2]),
            "radii": rnd(scenes["radii"][s]), "psi": img(keep["psi"]), "gamma": img(keep["gamma"]),
            "prediction": img(run["real"][:, s]),
            "attention": None if keep["attention"] is None else rnd(keep["attention"]),
            "collisions": scenes["pair"][:, s].any(axis=2).tolist()}


SIM_STEPS = 10            # frames simulated (the paper's Figure 4), fewer if the sequences are shorter
SIM_PROTOCOLS = {         # name: (frames seen (None: --observed), input fed back, bit-flip noise on every input)
    "clean": (None, "binary", False),     # this project's first protocol: max_k psi > 0.1 fed back, clean input
    "original": (None, "soft", True),     # the original code's: sum_k gamma_k psi_k fed back, noisy input
    "figure4": (5, "soft", True),         # the original code's with 5 frames seen, as the paper's Figure 4
}
POSITION_STEP = 5         # the simulated step whose position error the goals read
WATCHED_PROTOCOL = "original"   # the simulation measured on the validation sequences at every check


def simulate_measure(net, cfg: NetworkConfig, scenes: dict, components: int, purpose: str, protocol: str,
                     keep=None) -> dict:
    """Simulation under one of SIM_PROTOCOLS: after `seen` frames the network runs on its own
    predictions for SIM_STEPS frames or to the end of the sequences (rnem.network.em_simulate; the
    E-step on max_k psi > 0.1).
    Per simulated step (mean over sequences) and in the mean over steps: the BCE in nats per frame
    (the paper's clip) and the Brier score of the real prediction (bce_real, brier_real) and of
    max_k psi (bce_max, brier_max), beside two baselines: holding the last seen frame with the best
    flip rate of that step (hold) and a uniform grey at the mean density of the seen frames (grey);
    the position error in pixels of the component that owned each ball at the last seen frame
    (rnem.dynamics_measures.component_positions, its last position where it shows no ball) beside
    holding the ball where it was last seen. With keep, that sequence's real predictions."""
    seen, feed, noisy = SIM_PROTOCOLS[protocol]
    seen = seen or cfg.observed
    frames = flat_frames(scenes)[:seen + SIM_STEPS]                                     # (T', n, D)
    T, n, D = frames.shape
    steps = T - seen
    size = cfg.size
    gamma0 = network.initial_gamma(rng_for(cfg.seed, f"{purpose}/gamma0"), n, components, D)
    noise = (rng_for(cfg.seed, f"{purpose}/{protocol}/noise"), cfg.bitflip) if noisy else None
    disks = ball_disks(scenes, size)[:T]                                                # (T', n, B, D)
    centres = dyn.centroid(disks, size)[0]                                              # (T', n, B, 2) the truth
    visible = scenes["visible"].reshape(n, 1, D)
    sims, position = [], []
    for lo in range(0, n, EVAL_CHUNK):
        rows = slice(lo, min(n, lo + EVAL_CHUNK))
        sim = network.em_simulate(net, frames[:, rows], gamma0[rows], seen, feed, noise)
        owner = dyn.owners(sim["gamma_seen"], disks[seen - 1, rows] & visible[rows])     # (chunk, B)
        at, track = centres[seen - 1, rows], []                                          # where it was last seen
        for psi in sim.pop("psi"):                                                       # (chunk, K, D) per step
            placed = np.take_along_axis(dyn.component_positions(psi, network.SIM_THRESHOLD, size),
                                        owner[..., None], axis=1)                        # (chunk, B, 2)
            at = np.where(np.isnan(placed), at, placed)
            track.append(at)
        position.append(np.stack(track))                                                 # (steps, chunk, B, 2)
        sims.append(sim)
    real, peak = (np.concatenate([s[key] for s in sims], axis=1) for key in ("real", "max"))  # (steps, n, D)
    truth, last = frames[seen:], frames[seen - 1]
    flips = (truth != last).mean(axis=(1, 2))                                           # (steps,) best flip rates
    grey = np.full(D, frames[:seen].mean())
    per = {"bce_real": frame_bces(truth, real), "bce_max": frame_bces(truth, peak),
           "bce_hold": np.stack([frame_bces(x, last, clip=q) for x, q in zip(truth, flips)]),
           "bce_grey": frame_bces(truth, grey), "brier_real": dyn.brier(truth, real),
           "brier_max": dyn.brier(truth, peak), "brier_hold": dyn.brier(truth, last),
           "brier_grey": dyn.brier(truth, grey)}
    placed = np.concatenate(position, axis=1)                                            # (steps, n, B, 2)
    used = (disks[seen - 1] & visible).any(axis=-1)                                      # (n, B) seen at the start
    per["position_error_px"] = np.where(used, np.linalg.norm(placed - centres[seen:], axis=-1), np.nan)
    per["hold_position_error_px"] = np.where(used, np.linalg.norm(centres[seen - 1] - centres[seen:], axis=-1),
                                             np.nan)
    out = {"seen": seen, "steps": steps, "feed": feed, "noise": cfg.bitflip if noisy else 0.0}
    for key, value in per.items():
        mean = np.nanmean(value.reshape(steps, -1), axis=1)                                 # (steps,)
        out[f"{key}_per_step"] = mean.tolist()
        out[key] = float(mean.mean())
    at = min(POSITION_STEP, steps) - 1
    out["position_error_px_at_step"] = out["position_error_px_per_step"][at]
    out["hold_position_error_px_at_step"] = out["hold_position_error_px_per_step"][at]
    if keep is not None:
        out["sample"] = np.round(real[:, keep].reshape(-1, size, size).astype(float), 2).tolist()
    return out


def test(net, cfg: NetworkConfig) -> dict:
    """Every measure on fresh test sequences of cfg.n_balls balls with K = cfg.components: on clean
    input ("balls", with the simulation under every protocol of SIM_PROTOCOLS) and on noisy input
    ("balls_noisy", the original code's test); the same balls with K = EXTRAPOLATE_K ("balls_k8");
    and EXTRAPOLATE_BALLS balls (n_eval / 3 of each) with K = EXTRAPOLATE_K ("more_balls", and
    "more_balls_noisy"). A network trained with K = 1 keeps K = 1."""
    scenes = make_scenes(cfg, cfg.n_eval, "network/test")
    keep = int(scenes["pair"].sum(axis=(0, 2, 3)).argmax()) if cfg.sample else None     # the most collisions
    k_more = EXTRAPOLATE_K if cfg.components > 1 else 1
    out = {"balls": measure(net, cfg, scenes, cfg.components, "network/test", keep),
           "balls_noisy": measure(net, cfg, scenes, cfg.components, "network/test", noisy=True)}
    if k_more != cfg.components:
        out["balls_k8"] = measure(net, cfg, scenes, k_more, "network/test-k8")
    sims = {name: simulate_measure(net, cfg, scenes, cfg.components, "network/test-sim", name,
                                   keep if name == "clean" else None) for name in SIM_PROTOCOLS}
    clean = sims["clean"]
    out["balls"] |= {"simulation": sims, "sim_bce": clean["bce_real"], "sim_bce_per_step": clean["bce_real_per_step"],
                     "motion_references": reference_motion(scenes, cfg.frame_steps)}
    if keep is not None:
        out["balls"]["sim_sample"] = clean.pop("sample")
    more = [make_scenes(cfg, cfg.n_eval // len(EXTRAPOLATE_BALLS), "network/test-more", k) for k in EXTRAPOLATE_BALLS]
    for name, noisy in (("more_balls", False), ("more_balls_noisy", True)):
        parts = [measure(net, cfg, sc, k_more, f"network/test-more/k{k}", noisy=noisy)
                 for k, sc in zip(EXTRAPOLATE_BALLS, more)]
        out[name] = {"balls": list(EXTRAPOLATE_BALLS), "components": k_more, **combine(parts)}
    return out


COUNTS = ("collision_frames", "reemerging_events", "n")    # summed over the groups of 6, 7 and 8 balls, not averaged


def combine(parts: list) -> dict:
    """One measure dict from those of the groups of 6, 7 and 8 balls: numbers averaged (None
    ignored), COUNTS summed, lists averaged element by element, dicts combined key by key."""
    out = {}
    for key, first in parts[0].items():
        values = [p[key] for p in parts]
        if isinstance(first, dict):
            out[key] = combine(values)
        elif isinstance(first, list):
            out[key] = np.mean(values, axis=0).tolist()
        elif key in COUNTS:
            out[key] = sum(values)
        else:
            out[key] = mean_of(values)
    return out


def mean_of(values):
    """The mean of numbers, ignoring None (None if all are)."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def batch_gradient(net, cfg: NetworkConfig, train_frames, rng, own: bool = False):
    """One training batch: cfg.batch sequences of train_frames (T, N, D) drawn by rng, bit-flip
    noise on the input, a random gamma(0); with own, in a fraction cfg.own_input of the batches the
    input from a random step on is the network's own prediction. Returns (the unrolled EM's loss,
    its flat gradient)."""
    clean = train_frames[:, rng.choice(train_frames.shape[1], size=cfg.batch, replace=False)]   # (T, B, D)
    noisy = clean ^ (rng.random(clean.shape) < cfg.bitflip)
    gamma0 = network.initial_gamma(rng, cfg.batch, cfg.components, clean.shape[2])
    own_from = None
    if own and rng.random() < cfg.own_input:                        # this batch runs on its own predictions
        own_from = int(rng.integers(OWN_FROM_FIRST, clean.shape[0] - 1))
    loss, steps = network.em_forward(net, noisy, clean, gamma0, own_from=own_from, own_noise=(rng, cfg.bitflip))
    return loss, network.em_backward(net, steps)


OWN_FROM_FIRST = 5        # --own-input: the first step that may run on the network's own prediction (as Figure 4)


def selection(iterations: list, val_losses: list, select_from: int, patience: int):
    """The model selection rule, replayed on the checks so far: the check with the lowest validation
    loss among those from step select_from on (the first one on ties), and the step of the check at
    which training stops: `patience` checks after that one without a lower loss (never for 0).
    Returns (selected step or None, stopping step or None). Training calls it after every check; the
    summary replays it on a result's history to ask whether another select_from picks the same."""
    best = None                                               # index of the selected check so far
    for n, (it, loss) in enumerate(zip(iterations, val_losses)):
        if it >= select_from and loss < (math.inf if best is None else val_losses[best]):
            best = n
        if patience and best is not None and n - best >= patience:
            return iterations[best], it
    return (None if best is None else iterations[best]), None


@with_one_blas_thread
def train(cfg: NetworkConfig, log=print) -> dict:
    """Trains one network and selects, among the checks every eval_every steps, the one with the
    lowest validation loss (the paper's loss: no labels); measures it on the test sequences.
    Returns the result payload (config, env, curves, selection, test measures, timing)."""
    t0 = time.perf_counter()
    train_frames = training_frames(cfg)                                                 # (T, N, D)
    val = make_scenes(cfg, cfg.n_val, "network/val")
    net = new_network(cfg)
    adam = Adam(net.flat, cfg.lr)
    rng = rng_for(cfg.seed, "network/batches")
    history = {"iteration": [], "train_loss": [], "val_loss": [], "val_ari_last": [], "val_bce_real": [],
               "val_motion_slope": [], "val_attention_on_real": [], "val_attention_on_empty": [],
               "val_sim_bce_real": [], "val_sim_bce_hold": [], "val_sim_position_error_px": [],
               "val_sim_hold_position_error_px": [], "first_losses": []}
    best = {"val_loss": math.inf}
    t_train, losses = time.perf_counter(), []
    for it in range(1, cfg.steps + 1):
        if it == cfg.lr_drop_at:
            adam.lr = cfg.lr * cfg.lr_drop
        loss, grad = batch_gradient(net, cfg, train_frames, rng, own=cfg.own_input > 0 and it >= cfg.own_input_from)
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged (loss {loss}) at step {it}; try a smaller --lr (got {cfg.lr})")
        adam.step(grad)
        losses.append(loss)
        if it <= 2:
            history["first_losses"].append(float(loss))
        if it % cfg.eval_every == 0 or it == cfg.steps:
            v = measure(net, cfg, val, cfg.components, "network/val")
            sim = simulate_measure(net, cfg, val, cfg.components, "network/val-sim", WATCHED_PROTOCOL)
            attention = v["attention"] or {}
            for key, value in (("iteration", it), ("train_loss", float(np.mean(losses))), ("val_loss", v["loss"]),
                               ("val_ari_last", v["ari_last"]), ("val_bce_real", v["bce_real"]),
                               ("val_motion_slope", v["motion"]["slope"]),
                               ("val_attention_on_real", attention.get("on_real")),
                               ("val_attention_on_empty", attention.get("on_empty")),
                               ("val_sim_bce_real", sim["bce_real"]), ("val_sim_bce_hold", sim["bce_hold"]),
                               ("val_sim_position_error_px", sim["position_error_px_at_step"]),
                               ("val_sim_hold_position_error_px", sim["hold_position_error_px_at_step"])):
                history[key].append(value)
            losses = []
            selected, stopped_at = selection(history["iteration"], history["val_loss"], cfg.select_from, cfg.patience)
            if selected == it:
                best = {"val_loss": v["loss"], "iteration": it, "flat": net.flat.copy()}
            log(f"step {it:6d}  train loss {history['train_loss'][-1]:9.3f}  val loss {v['loss']:9.3f}  "
                f"val ARI (last {LAST_STEPS} steps) {v['ari_last']:.3f}  BCE of the prediction "
                f"{v['bce_real']:.1f} (copy {v['bce_copy_best']:.1f})  motion fraction {v['motion']['slope'] or 0:.2f}  "
                f"simulated: BCE {sim['bce_real']:.0f} (hold {sim['bce_hold']:.0f}), position error at step "
                f"{POSITION_STEP} {sim['position_error_px_at_step']:.2f} px (hold "
                f"{sim['hold_position_error_px_at_step']:.2f})  {(time.perf_counter() - t_train) / it:.3f} s/step")
            if stopped_at is not None:
                log(f"stopped at step {it}: no lower validation loss in {cfg.patience} checks")
                break
    s_per_step = (time.perf_counter() - t_train) / it
    net.flat[...] = best.pop("flat")
    rule = "the lowest validation loss among the checks" + (f" from step {cfg.select_from} on" if cfg.select_from
                                                             else "")
    training = {"history": history, "selected": {"rule": rule, **best},
                "trained_steps": it,
                "timing": {"train_s": time.perf_counter() - t0, "s_per_step": s_per_step,
                           "to_selected_s": s_per_step * best["iteration"]}}
    result = measured(net, cfg, training)
    if cfg.save_model:                                        # once the work is done: Ctrl-C before leaves nothing
        save_network(cfg.save_model, net, cfg, training)
    return result


SLICE_SEQUENCES = 16      # the result's slice: per-sequence values of the first test sequences


def untrained_slice(cfg: NetworkConfig) -> float:
    """The untrained network's loss on the first SLICE_SEQUENCES validation sequences: the seed's
    data and initial weights, in one number."""
    val = flat_frames(make_scenes(cfg, cfg.n_val, "network/val"))[:, :SLICE_SEQUENCES]
    gamma0 = network.initial_gamma(rng_for(cfg.seed, "network/slice-gamma0"), val.shape[1], cfg.components,
                                   val.shape[2])
    return float(network.em_forward(new_network(cfg), val, val, gamma0)[0])


def trained_slice(net, cfg: NetworkConfig) -> dict:
    """The first SLICE_SEQUENCES test sequences' ARI (last 10 steps) and mixture BCE (frames
    2..T-1), from the first chunk alone (the same numbers as in the whole test)."""
    scenes = make_scenes(cfg, cfg.n_eval, "network/test")
    run = run_network(net, scenes, cfg.components, cfg.seed, "network/test", limit=SLICE_SEQUENCES)
    first = slice(0, SLICE_SEQUENCES)
    bce_real = frame_bces(flat_frames(scenes)[2:, first], run["real"][1:, first]).mean(axis=0)
    return {"test_ari_last": run["ari"][-LAST_STEPS:, first].mean(axis=0).tolist(), "test_bce_real": bce_real.tolist()}


def references_slice(cfg: NetworkConfig) -> dict:
    """The motion fraction of each physics reference (rnem.motion_references) on the first
    SLICE_SEQUENCES test sequences: the test data's part of the slice, no network needed."""
    first = scene_rows(make_scenes(cfg, cfg.n_eval, "network/test"), slice(0, SLICE_SEQUENCES))
    return {name: m["slope"] for name, m in reference_motion(first, cfg.frame_steps).items()}


def result_slice(net, cfg: NetworkConfig) -> dict:
    """Numbers a fast test recomputes from the committed code (tests/test_committed_results.py)."""
    return {"sequences": SLICE_SEQUENCES, "untrained_val_loss": untrained_slice(cfg), **trained_slice(net, cfg),
            "motion_references_slope": references_slice(cfg)}


@with_one_blas_thread
def measured(net, cfg: NetworkConfig, training: dict) -> dict:
    """The result payload of a trained network: config, env, `training` (history, selected,
    timing) and every test measure."""
    t0 = time.perf_counter()
    result = test(net, cfg)
    return {"config": dataclasses.asdict(cfg), "env": environment(cfg.dtype, __file__), **training, "test": result,
            "slice": result_slice(net, cfg),
            "timing": {**training["timing"], "test_s": time.perf_counter() - t0}}


def retest(cfg: NetworkConfig) -> dict:
    """Measures the network saved in cfg.retest again with this code (its training, config and
    curves come from the file; --out and --sample from the command line)."""
    net, meta = load_network(cfg.retest)
    model_cfg = dataclasses.replace(stored_config(NetworkConfig, meta["config"]), out=cfg.out, sample=cfg.sample,
                                    save_model=cfg.retest)
    return measured(net, model_cfg, {key: meta[key] for key in ("history", "selected", "timing", "trained_steps")
                                     if key in meta})


# ----------------------------------------------------------------------------- summary over seeds
SIMULATION_KEYS = ("bce_real", "bce_max", "bce_hold", "bce_grey", "brier_real", "brier_max", "brier_hold",
                   "brier_grey", "position_error_px_at_step", "hold_position_error_px_at_step")
SUMMARY_MEASURES = (("balls/ari_last", "balls/ari_all", "balls/bce_real", "balls/bce_max", "balls/bce_copy_best",
                     "balls/bce_copy_clipped", "balls/relational_bce_real", "balls/relational_bce_max",
                     "balls/relational_bce_copy_best", "balls/sim_bce", "balls/reemerging_bce_real",
                     "balls/reemerging_bce_max", "balls/reemerging_bce_copy_best", "balls/motion/slope",
                     "balls/motion/correlation", *(f"balls/motion_references/{name}/{key}" for name in REFERENCES
                                                   for key in ("slope", "correlation")),
                     "balls/attention/on_real", "balls/attention/on_empty",
                     "balls/attention/sum_over_others",
                     "balls_noisy/ari_last", "balls_noisy/ari_all", "balls_noisy/bce_real", "balls_noisy/bce_max",
                     "balls_noisy/bce_copy_best", "balls_noisy/motion/slope",
                     "balls_k8/ari_last", "balls_k8/bce_max", "balls_k8/attention/on_real",
                     "balls_k8/attention/on_empty", "balls_k8/attention/sum_over_others",
                     *(f"{part}/attention/collisions/{key}" for part in ("balls", "balls_k8")
                       for key in ("on_colliding", "on_apart")),
                     *(f"balls/attention/collisions/by_lag/{lag}" for lag in dyn.COLLISION_LAGS),
                     "more_balls/ari_last", "more_balls/bce_real", "more_balls/bce_max", "more_balls/bce_copy_best",
                     "more_balls/relational_bce_real", "more_balls/relational_bce_max",
                     "more_balls_noisy/ari_last", "more_balls_noisy/bce_max", "more_balls_noisy/bce_copy_best")
                    + tuple(f"balls/simulation/{p}/{key}" for p in SIM_PROTOCOLS for key in SIMULATION_KEYS))
# the paper's claims, per seed (paired: the same seed draws the same data): (measure, models from best to worst)
ORDERINGS = (("balls/bce_real", ("r_nem", "rnn_em", "rnn")), ("balls/bce_max", ("r_nem", "rnn_em", "rnn")),
             ("balls/relational_bce_real", ("r_nem", "rnn_em", "rnn")),
             ("balls/relational_bce_max", ("r_nem", "rnn_em", "rnn")), ("balls/sim_bce", ("r_nem", "rnn_em", "rnn")),
             *((f"balls/simulation/{p}/bce_real", ("r_nem", "rnn_em", "rnn")) for p in SIM_PROTOCOLS),
             ("more_balls/bce_real", ("r_nem", "r_nem_sum")), ("more_balls/bce_max", ("r_nem", "r_nem_sum")),
             ("more_balls/ari_last", ("r_nem", "r_nem_sum")),
             ("more_balls/ari_last", ("r_nem", "rnn_em")), ("more_balls/bce_max", ("r_nem", "rnn_em")),
             ("more_balls/bce_real", ("r_nem", "rnn_em")), ("more_balls_noisy/ari_last", ("r_nem", "rnn_em")),
             ("balls/ari_last", ("r_nem_k8", "r_nem")),
             # the relational core against the plain one, each dynamics measure on its own
             *((f"balls/simulation/{p}/bce_real", ("r_nem", "rnn_em")) for p in SIM_PROTOCOLS),
             *((f"balls/simulation/{p}/position_error_px_at_step", ("r_nem", "rnn_em")) for p in SIM_PROTOCOLS),
             ("balls/motion/slope", ("r_nem", "rnn_em")))
HIGHER_IS_BETTER = ("ari_last", "ari_all", "slope")
BASELINES = ("hold", "grey")     # a simulation beats both when its bce_real is below each, seed by seed


def measure_at(test: dict, path: str):
    """test["a"]["b"]... for path "a/b/..."; None where a key is missing (an older result, or a
    measure that does not apply, such as attention without attention)."""
    value = test
    for key in path.split("/"):
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def derived_measures(result: dict) -> dict:
    """The summary's measures of one result file: SUMMARY_MEASURES (None where not measured), the
    real prediction's BCE relative to copying with the best flip rate, the selection and the time."""
    t = result["test"]
    out = {m: measure_at(t, m) for m in SUMMARY_MEASURES}
    for part in ("balls", "more_balls"):
        for name in ("real", "max"):
            out[f"{part}/bce_{name}_over_copy"] = t[part][f"bce_{name}"] / t[part]["bce_copy_best"]
    out["selected_iteration"] = result["selected"]["iteration"]
    history = result["history"]
    out["val_ari_best"] = max(history["val_ari_last"])                        # with labels: not a selection rule
    out["val_ari_selected"] = history["val_ari_last"][history["iteration"].index(out["selected_iteration"])]
    out["to_selected_s"] = result["timing"]["to_selected_s"]
    out["s_per_step"] = result["timing"]["s_per_step"]
    return out


def one_selection_rule(folder: str, groups: dict):
    """The select_from under which every result of a folder was selected: the latest any of them used.
    A result trained with an earlier select_from counts when the rule, replayed on its history, picks
    the same check and stops at the same step (training does not depend on select_from, only the pick
    does); else the folder mixes two rules and cannot be summarised.
    Returns (select_from, {"<name>_seed<N>": the select_from it was trained with} for the replayed ones)."""
    runs = {f"{name}_seed{seed}": run for name, by_seed in groups.items() for seed, run in by_seed.items()}
    latest = max(run["config"].get("select_from", 0) for run in runs.values())     # 0 in results older than it
    replayed = {}
    for label, run in sorted(runs.items()):
        cfg = run["config"]
        if cfg.get("select_from", 0) == latest:
            continue
        history = run["history"]
        picked, stopped_at = selection(history["iteration"], history["val_loss"], latest, cfg.get("patience", 0))
        if (picked, stopped_at or cfg["steps"]) != (run["selected"]["iteration"], run.get("trained_steps", cfg["steps"])):
            raise ConfigError(f"--summarise {folder}: {label}.json was selected from step {cfg['select_from']} "
                              f"on, another result from step {latest} on, and that rule picks another check for "
                              f"it: retrain it with --select-from {latest}")
        replayed[label] = cfg["select_from"]
    return latest, replayed


def summarise(folder: str) -> dict:
    """Every result file <name>_seed<N>.json of folder, grouped by name: per-seed values with mean and
    95 % interval of each measure, and each of the paper's orderings checked seed by seed."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(folder, "*_seed*.json"))):
        match = re.fullmatch(r"(.+)_seed(\d+)\.json", os.path.basename(path))
        if match is None:                                          # e.g. pixels_seeds.json: not a network result
            continue
        try:
            with open(path) as f:
                run = json.load(f)
            if isinstance(run, dict) and isinstance(run.get("config"), dict):
                run["config"] = current_names(run["config"])          # results of older code: today's names
            groups.setdefault(match[1], {})[int(match[2])] = run
        except (OSError, ValueError) as err:
            raise ConfigError(f"--summarise {folder}: {path} is not a readable JSON result ({err})")
    if not groups:
        raise ConfigError(f"--summarise {folder}: no result files <name>_seed<N>.json there")
    try:
        select_from, replayed = one_selection_rule(folder, groups)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"--summarise {folder}: a result there is not a result of relational_nem_network.py "
                          f"({type(err).__name__}: {err})")
    models = {}
    for name, runs in groups.items():
        seeds = sorted(runs)
        try:
            values = [derived_measures(runs[s]) for s in seeds]
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as err:
            raise ConfigError(f"--summarise {folder}: {name}_seed*.json are not results of relational_nem_network.py "
                              f"({type(err).__name__}: {err})")
        config = {k: v for k, v in runs[seeds[0]]["config"].items() if k not in ("seed", "out", "save_model", "sample")}
        config["select_from"] = select_from                          # the folder's one rule (replayed where needed)
        sim_per_step = np.mean([runs[s]["test"]["balls"]["sim_bce_per_step"] for s in seeds], axis=0)
        sims = [runs[s]["test"]["balls"].get("simulation") for s in seeds]
        per_step = ({p: {key: np.mean([sim[p][key] for sim in sims], axis=0).tolist() for key in sims[0][p]
                         if key.endswith("_per_step")} for p in sims[0]} if all(sims) else None)
        models[name] = {"config": config, "seeds": seeds, "sim_bce_per_step": sim_per_step.tolist(),
                        "simulation_per_step": per_step,
                        "code_sha256": sorted({runs[s]["env"]["source_sha256"] for s in seeds}),
                        "measures": {m: over_seeds([v[m] for v in values]) for m in values[0]}}
    orderings = {}
    for measure_name, order in ORDERINGS:
        if not all(name in models for name in order):
            continue
        seeds = sorted(set.intersection(*(set(models[name]["seeds"]) for name in order)))
        per = {name: dict(zip(models[name]["seeds"], models[name]["measures"][measure_name]["per_seed"]))
               for name in order}
        if not seeds or any(per[name][s] is None for name in order for s in seeds):
            continue                                                  # no common seed, or not measured by an older result
        sign = -1.0 if measure_name.endswith(HIGHER_IS_BETTER) else 1.0
        holds = [all(sign * per[a][s] < sign * per[b][s] for a, b in zip(order, order[1:])) for s in seeds]
        first, second = order[0], order[1]
        change = [per[first][s] / per[second][s] - 1.0 for s in seeds]
        orderings[f"{measure_name}: {' < '.join(order) if sign > 0 else ' > '.join(order)}"] = {
            "seeds": seeds, "holds_per_seed": holds, "holds_in_every_seed": all(holds),
            f"{first}_over_{second}_minus_1": over_seeds(change)}
    beats = {}
    for name, model in models.items():                                # simulation below both baselines
        for protocol in SIM_PROTOCOLS:
            values = {key: model["measures"][f"balls/simulation/{protocol}/bce_{key}"]["per_seed"]
                      for key in ("real",) + BASELINES}
            if any(None in v for v in values.values()):
                continue
            holds = [all(values["real"][i] < values[b][i] for b in BASELINES) for i in range(len(values["real"]))]
            beats[f"{name}: balls/simulation/{protocol}/bce_real < hold, grey"] = {
                "seeds": model["seeds"], "holds_per_seed": holds, "holds_in_every_seed": all(holds)}
    return {"models": models, "orderings": orderings, "beats_baselines": beats,
            "selection": {"select_from": select_from, "replayed": replayed}, "env": environment("float64", __file__)}


def command(argv) -> int:
    """The CLI's work: a training, --retest or --summarise (bad input raises ConfigError first)."""
    parser = parser_from_config(NetworkConfig, __doc__)
    cfg = NetworkConfig(**vars(parser.parse_args(argv)))
    check_config(cfg)
    if cfg.summarise:
        write_json_atomic(cfg.out, summarise(cfg.summarise))
        print(f"wrote {cfg.out}")
        return 0
    result = retest(cfg) if cfg.retest else train(cfg)
    write_json_atomic(cfg.out, result)
    t, sel = result["test"], result["selected"]
    print(f"selected step {sel['iteration']} (lowest validation loss); test, {result['config']['n_balls']} balls: ARI (last "
          f"{LAST_STEPS} steps) {t['balls']['ari_last']:.3f}, BCE of the prediction {t['balls']['bce_real']:.1f} nats "
          f"per frame (copying the frame: {t['balls']['bce_copy_best']:.1f} with the best flip rate, "
          f"{t['balls']['bce_copy_clipped']:.1f} with the paper's clip), simulated {t['balls']['sim_bce']:.1f}; "
          f"{'-'.join(map(str, EXTRAPOLATE_BALLS))} balls: ARI {t['more_balls']['ari_last']:.3f}, BCE "
          f"{t['more_balls']['bce_real']:.1f}; wrote {cfg.out}")
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 1 training diverged; 130 / 143 stopped by SIGINT / SIGTERM (nothing written)."""
    return run_main(lambda: command(argv))


if __name__ == "__main__":
    sys.exit(main())
