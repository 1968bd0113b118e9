"""The paper's network on frames: neural R-NEM and RNN-EM learned end to end by unrolled EM, in pure numpy.

Work in progress (issue 16): data, training and the first measures. The model, its forward and
backward passes and the unrolled EM are in rnem/network.py; frames come from the project's
simulator (relational_nem_bouncing_balls.py) and renderer (rnem/frames.py).

Training as in the paper: the input of component k is gamma_k (x_noisy - psi_k) with bit-flip
noise on the frames, next-step prediction, the intra-cluster gamma-weighted BCE plus the
out-of-group KL to Bernoulli(0), no gradient through gamma, BPTT through every step, Adam.
Measures: ARI of argmax_k gamma against the true pixel labels (background and pixels of several
balls ignored), per step and the mean of the last 10 steps.

    python3 relational_nem_network.py --iterations 50 --out my_network.json   # a short training
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

from rnem.blas import BLAS_THREAD_VARS  # noqa: E402  (imports no numpy)
for _var in BLAS_THREAD_VARS:             # before numpy loads: one BLAS thread
    os.environ.setdefault(_var, "1")
import numpy as np  # noqa: E402

import relational_nem_bouncing_balls as R  # noqa: E402
from rnem import network  # noqa: E402
from rnem.blas import with_one_blas_thread  # noqa: E402
from rnem.cli import ConfigError, config_field, parser_from_config  # noqa: E402
from rnem.environment import environment  # noqa: E402
from rnem.files import check_output_path, write_json_atomic  # noqa: E402
from rnem.frames import render_binary  # noqa: E402
from rnem.measures import ari_batch, bce  # noqa: E402
from rnem.model_files import read_model_file, write_model_file  # noqa: E402
from rnem.optim import Adam  # noqa: E402

DT, RADIUS = 0.05, 0.11     # the simulator's time step and ball radius (the default experiment's)
LAST_STEPS = 10             # ARI "last": the mean over the last this many steps
PAPER_CLIP = 1e-6           # the paper's clip of predicted probabilities in its BCE


@dataclasses.dataclass
class NetworkConfig:
    seed: int = config_field(0, "the seed of the data, the initial weights and the batches")
    kind: str = config_field("r_nem", "r_nem (attention), r_nem_sum (no attention), rnn_em (Upsilon = theta_k)",
                             choices=network.KINDS)
    size: int = config_field(24, "frame side in pixels")
    k_balls: int = config_field(4, "balls per training and validation sequence")
    components: int = config_field(5, "K, components per sequence")
    hidden: int = config_field(100, "M, the recurrent state of a component")
    t_frames: int = config_field(20, "frames per sequence")
    n_train: int = config_field(2000, "training sequences")
    n_val: int = config_field(64, "validation sequences")
    batch: int = config_field(16, "sequences per Adam step")
    iterations: int = config_field(600, "Adam steps")
    lr: float = config_field(1e-3, "Adam's learning rate")
    bitflip: float = config_field(0.2, "fraction of the input pixels flipped (the paper's noise)")
    eval_every: int = config_field(100, "validate every this many steps")
    out: str = config_field("results/network.json", "the result JSON (written atomically)")
    save_model: str = config_field("", "also write the trained network to this .npz (numpy arrays and JSON "
                                       "metadata, no pickle)")


def check_config(cfg: NetworkConfig) -> None:
    """ConfigError naming the option and its valid range, before any work."""
    ranges = {"size": (8, 128), "k_balls": (1, R.max_balls(RADIUS)), "components": (1, 16), "hidden": (2, 1024),
              "t_frames": (LAST_STEPS + 2, 200), "n_train": (1, 100_000), "n_val": (1, 10_000), "batch": (1, 1024),
              "iterations": (1, 1_000_000), "eval_every": (1, 1_000_000), "seed": (0, 2**32 - 1)}
    for name, (lo, hi) in ranges.items():
        if not lo <= getattr(cfg, name) <= hi:
            raise ConfigError(f"--{name.replace('_', '-')} must be in {lo}..{hi} (got {getattr(cfg, name)})")
    if not 0 < cfg.lr <= 1:
        raise ConfigError(f"--lr must be in (0, 1] (got {cfg.lr})")
    if not 0 <= cfg.bitflip < 0.5:
        raise ConfigError(f"--bitflip must be in [0, 0.5) (got {cfg.bitflip})")
    if cfg.batch > cfg.n_train:
        raise ConfigError(f"--batch must be at most --n-train = {cfg.n_train} (got {cfg.batch})")
    check_output_path(cfg.out, "--out")
    if cfg.save_model:
        check_output_path(cfg.save_model, "--save-model", suffix=".npz")


MODEL_FILE_FORMAT = "relational-nem-network 1"
NETWORK_SHAPE = ("kind", "size", "hidden")        # the config fields that decide a network's parameters


def save_network(path: str, net, cfg: NetworkConfig, history: dict) -> None:
    """The network's parameter vector with its config and training curves (rnem.model_files)."""
    meta = {"format": MODEL_FILE_FORMAT, "config": dataclasses.asdict(cfg), "history": history,
            "models": {cfg.kind: {"n_params": int(net.flat.size)}}, "env": environment("float64", __file__)}
    write_model_file(path, meta, {cfg.kind: net.flat})


def load_network(path: str, option: str = "--load-model"):
    """(network, its config dict) of a file written by save_network (ConfigError if it is not one)."""
    meta, arrays = read_model_file(path, option, MODEL_FILE_FORMAT)
    config = meta["config"]
    try:
        kind, size, hidden = (config[name] for name in NETWORK_SHAPE)
        net = network.Network(kind, size * size, hidden)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{option} {path}: its config does not describe a network ({type(err).__name__}: {err})")
    flat = arrays.get(kind)
    if flat is None or flat.shape != net.flat.shape or not np.isfinite(flat).all():
        raise ConfigError(f"{option} {path}: parameters missing, of the wrong length or not finite")
    net.flat[...] = flat
    return net, config


def make_frames(cfg: NetworkConfig, n: int, purpose: str):
    """n sequences of cfg.k_balls balls: frames (T, n, D) bool and pixel labels (T, n, S, S)."""
    states, _ = R.simulate_sequences(n, cfg.t_frames, cfg.k_balls, DT, RADIUS, R.rng_for(cfg.seed, purpose))
    frames, labels = render_binary(states[..., :2], RADIUS, cfg.size)                  # (T, n, S, S)
    return frames.reshape(cfg.t_frames, n, -1), labels


def grouping_ari(steps, labels, size: int) -> np.ndarray:
    """(T - 1, n) ARI per step and sequence of argmax_k gamma_{t+1} against the labels of frame t+1."""
    out = []
    for t, step in enumerate(steps):
        gamma = step[4]                                                                # (n, K, D)
        n, K, _ = gamma.shape
        with_bg = np.concatenate([gamma, np.zeros((n, 1, gamma.shape[2]))], axis=1)   # ari_batch's background slot
        out.append(ari_batch(labels[t + 1], with_bg.reshape(n, K + 1, size, size), np.ones((n, size, size), bool)))
    return np.array(out)


def frame_bce(frames, prob) -> float:
    """Mean over frames of the BCE (nats per frame) of binary frames (..., D) under prob (..., D),
    clipped to [PAPER_CLIP, 1 - PAPER_CLIP] (rnem.measures.bce on frames of one row)."""
    D = frames.shape[-1]
    return float(bce(frames.reshape(-1, 1, D), prob.reshape(-1, 1, D), 1.0, PAPER_CLIP).mean())


def copy_bces(frames) -> dict:
    """Copying the current frame as the prediction of the next, frames (T, n, D) bool: with the
    paper's clip (a changed pixel costs -log 1e-6 = 13.8 nats), and with the best flip rate
    (each pixel predicted to change with the data's own rate of change q: the fair bar)."""
    now, nxt = frames[1:-1], frames[2:]                                                 # as the prediction's steps
    changed = float((now != nxt).mean())
    best = -(changed * np.log(changed) + (1 - changed) * np.log(1 - changed)) * frames.shape[-1] if 0 < changed < 1 else 0.0
    return {"copy_clipped": frame_bce(nxt, now.astype(float)), "copy_best_flip": float(best), "changed_fraction": changed}


def evaluate(net, cfg: NetworkConfig, frames, labels) -> dict:
    """On the validation sequences (no noise on the input): the loss; ARI per step (mean over
    sequences) and over the last LAST_STEPS steps; the BCE of the real prediction of each next
    frame, sum_k gamma_k(t) psi_k(t+1) (gamma before the frame is seen), in nats per frame over
    steps 1..T-2 (step 0's gamma is the random start), beside copying the current frame."""
    rng = R.rng_for(cfg.seed, "network/val-gamma0")
    loss, steps = network.em_forward(net, frames, frames, network.initial_gamma(rng, frames.shape[1],
                                                                                  cfg.components, frames.shape[2]))
    ari = grouping_ari(steps, labels, cfg.size).mean(axis=1)                          # (T - 1,)
    prediction = np.stack([(step[2] * step[3]).sum(axis=1) for step in steps[1:]])    # (T - 2, n, D)
    return {"loss": loss, "ari_per_step": ari.tolist(), "ari_last": float(ari[-LAST_STEPS:].mean()),
            "bce_prediction": frame_bce(frames[2:], prediction), **copy_bces(frames)}


@with_one_blas_thread
def train(cfg: NetworkConfig, log=print) -> dict:
    """Trains one network; returns the result payload (config, env, curves, final measures)."""
    t0 = time.perf_counter()
    train_frames, _ = make_frames(cfg, cfg.n_train, "network/train")
    val_frames, val_labels = make_frames(cfg, cfg.n_val, "network/val")
    net = network.Network(cfg.kind, cfg.size * cfg.size, cfg.hidden, rng=R.rng_for(cfg.seed, "network/init"))
    adam = Adam(net.flat, cfg.lr)
    rng = R.rng_for(cfg.seed, "network/batches")
    history = {"iteration": [], "train_loss": [], "val_loss": [], "val_ari_last": []}
    t_train, losses = time.perf_counter(), []
    for it in range(1, cfg.iterations + 1):
        seqs = rng.choice(cfg.n_train, size=cfg.batch, replace=False)
        clean = train_frames[:, seqs]                                                  # (T, B, D)
        noisy = clean ^ (rng.random(clean.shape) < cfg.bitflip)
        loss, steps = network.em_forward(net, noisy, clean,
                                         network.initial_gamma(rng, cfg.batch, cfg.components, clean.shape[2]))
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged (loss {loss}) at step {it}; try a smaller --lr (got {cfg.lr})")
        adam.step(network.em_backward(net, steps))
        losses.append(loss)
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            val = evaluate(net, cfg, val_frames, val_labels)
            history["iteration"].append(it)
            history["train_loss"].append(float(np.mean(losses)))
            history["val_loss"].append(val["loss"])
            history["val_ari_last"].append(val["ari_last"])
            losses = []
            log(f"step {it:6d}  train loss {history['train_loss'][-1]:9.3f}  val loss {val['loss']:9.3f}  "
                f"val ARI (last {LAST_STEPS} steps) {val['ari_last']:.3f}  BCE of the prediction "
                f"{val['bce_prediction']:.1f} (copy {val['copy_best_flip']:.1f})  "
                f"{(time.perf_counter() - t_train) / it:.3f} s/step")
    final = evaluate(net, cfg, val_frames, val_labels)
    if cfg.save_model:
        save_network(cfg.save_model, net, cfg, history)
    return {"config": dataclasses.asdict(cfg), "env": environment("float64", __file__), "history": history,
            "final": final, "timing": {"total_s": time.perf_counter() - t0,
                                       "s_per_step": (time.perf_counter() - t_train) / cfg.iterations}}


def main(argv=None) -> int:
    parser = parser_from_config(NetworkConfig, __doc__)
    cfg = NetworkConfig(**vars(parser.parse_args(argv)))
    try:
        check_config(cfg)
        result = train(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: stopped by SIGINT: nothing written", file=sys.stderr)
        return 130
    write_json_atomic(cfg.out, result)
    final = result["final"]
    print(f"final val ARI (last {LAST_STEPS} steps) {final['ari_last']:.3f}; BCE of the prediction "
          f"{final['bce_prediction']:.1f} nats per frame, copying the frame {final['copy_best_flip']:.1f} (best flip "
          f"rate) or {final['copy_clipped']:.1f} (the paper's clip); wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
