"""Training the state models: closed-loop BPTT over t_bptt steps with Adam and one gradient-norm
clip, validation and early failure (TrainingError), the two models in two worker processes
(train_both), closed-loop rollouts, and the data of a run (training, validation and test sets)."""
from __future__ import annotations

import math
import os
import time

import numpy as np

from rnem.blas import blas_info, with_one_blas_thread
from rnem.cli import ConfigError
from rnem.entry import RunFailed
from rnem.layers import Workspace
from rnem.optim import Adam, clip_grad_norm
from rnem.simulator import make_dataset, rng_for, simulate_sequences
from rnem.processes import run_workers
from rnem.state_config import MODEL_KINDS, Config, k_list, k_train_text
from rnem.state_models import DynamicsModel, make_model


# ----------------------------------------------------------------------------- training
def bptt_loss_and_grads(model: DynamicsModel, window: np.ndarray, ws: Workspace | None = None,
                        grad_flat: np.ndarray | None = None):
    """Closed-loop BPTT loss and gradients for one batch of windows.

    window (t_bptt + 1, B, K, 4): window[0] starts the unroll s_{t+1} = s_t + delta(s_t);
    loss = mean over the t_bptt steps of the per-element MSE between s_{t+1} and window[t+1].
    Returns (loss, grads) with grads keyed like model.params (views into grad_flat, which
    is allocated when not given). `ws` is a workspace for (t_bptt, B, K), reused
    between calls to save allocations.
    """
    T = window.shape[0] - 1
    B, K = window.shape[1:3]
    if ws is None:
        ws = model.make_workspace(T, B, K)
    states, d_delta = ws.states, ws.d_delta                         # (T+1, K, B, 4), (T, K, B, 4)
    np.copyto(states[0], window[0].transpose(1, 0, 2))
    for t in range(T):
        np.add(states[t], model.step(ws, t), out=states[t + 1])    # s_{t+1} = s_t + delta(s_t)
    err = np.subtract(states[1:], window[1:].transpose(0, 2, 1, 3), out=d_delta)   # (T, K, B, 4)
    loss = float(np.vdot(err, err)) / err.size
    err *= 2.0 / err.size                                           # d_delta[t]: step t's own loss term
    for t in reversed(range(T)):
        # d_delta[t] = dL/ds_{t+1} = dL/d delta_t, as s_{t+1} = s_t + delta_t; then
        # dL/ds_t = dL/ds_{t+1} + (d delta_t / d s_t)^T dL/ds_{t+1} + the loss term of s_t itself
        dS = model.step_backward(ws, t, need_input_grad=t > 0)
        if t > 0:
            d_delta[t - 1] += d_delta[t]
            d_delta[t - 1] += dS
    if grad_flat is None:
        grad_flat = np.zeros(model.n_params, model.dtype)
    model.weight_grads(ws, slice(0, T), grad_flat)
    return loss, model.grads_like(grad_flat)


ROLLOUT_BOUND = 10.0    # |state| cap of closed-loop rollouts (the box is [0, 1], speeds ~1)


def rollout(model: DynamicsModel, init: np.ndarray, n_steps: int, ws: Workspace | None = None) -> np.ndarray:
    """Closed-loop prediction from init (n, K, 4): returns (n_steps, n, K, 4), [0] = init.

    Every state is clipped to [-ROLLOUT_BOUND, ROLLOUT_BOUND]: a rollout that diverges (the sum
    aggregator can, at K far from training) then gives large finite errors instead of inf/NaN.
    """
    n, K, D = init.shape
    ws = ws if ws is not None else model.make_workspace(1, n, K)
    traj = np.empty((n_steps, n, K, D), model.dtype)
    traj[0] = init
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, n_steps):
            delta, _ = model.forward(traj[t - 1], ws, 0)
            np.add(traj[t - 1], delta, out=traj[t])
            np.clip(traj[t], -ROLLOUT_BOUND, ROLLOUT_BOUND, out=traj[t])
    return traj


class Validator:
    """(val_mse_1step, val_mse_bptt) of a model on validation sequences val (N, T, K, D),
    with inputs and workspaces built once for the per-epoch calls.

    val_mse_1step: per-element MSE of (x, y, vx, vy) one predicted step from every true state
    s_t, t < T-1. val_mse_bptt: the same over t_bptt closed-loop steps (the stub recipe's
    training loss) on the non-overlapping windows starting at t = 0, t_bptt, 2 t_bptt, ...
    """

    def __init__(self, model: DynamicsModel, val: np.ndarray, t_bptt: int):
        N, T, K, D = val.shape
        val = val.astype(model.dtype)
        self.model, self.t_bptt = model, t_bptt
        self.inputs = val[:, :-1].reshape(-1, K, D)                 # (N (T-1), K, D)
        self.targets = val[:, 1:].reshape(-1, K, D)
        starts = np.arange(0, T - t_bptt, t_bptt)
        windows = val[:, starts[:, None] + np.arange(t_bptt + 1)]   # (N, W, t_bptt+1, K, D)
        self.windows = windows.transpose(2, 0, 1, 3, 4).reshape(t_bptt + 1, -1, K, D)
        self.ws_1step = model.make_workspace(1, len(self.inputs), K)
        self.ws_rollout = model.make_workspace(1, self.windows.shape[1], K)

    def __call__(self):
        delta, _ = self.model.forward(self.inputs, self.ws_1step, 0)
        mse_1 = float(np.mean((self.inputs + delta - self.targets)[..., :4] ** 2))
        pred = rollout(self.model, self.windows[0], self.t_bptt + 1, self.ws_rollout)
        mse_bptt = float(np.mean((pred[1:] - self.windows[1:])[..., :4] ** 2))
        return mse_1, mse_bptt


def residual_spread(train_tm: dict, dt: float):
    """(sigma_x, sigma_v): standard deviations over all training transitions of the position
    residual x_{t+1} - (x_t + dt v_t) and of the velocity change v_{t+1} - v_t (the simulator
    recipe's loss weighs each by 1 / sigma^2). train_tm: K -> (T, N, K, D)."""
    dx, dv = [], []
    for data in train_tm.values():
        dx.append((data[1:, ..., :2] - data[:-1, ..., :2] - dt * data[:-1, ..., 2:4]).ravel())
        dv.append((data[1:, ..., 2:4] - data[:-1, ..., 2:4]).ravel())
    return float(np.std(np.concatenate(dx))), float(np.std(np.concatenate(dv)))


DIVERGED_LOSS_RATIO = 100.0   # training diverged if its last epoch's mean loss is above this times the first step's


@with_one_blas_thread
def train_model(kind: str, cfg: Config, train: dict, val: dict, log=print, stop_after: int | None = None):
    """Trains one model with Adam on random (sequence, start) windows of train {K: (N_K, T, K, 4)};
    with several K, each batch first draws one K uniformly (batches stay rectangular).

    Returns (model, history, timing): history holds per-epoch lists of epoch, train_loss
    (mean BPTT loss of the epoch's steps), val_mse_1step, val_mse_bptt (means over the training
    K) and grad_norm (mean global gradient norm before clipping), and with several K `batch_k`,
    the K of every batch; timing holds train_s, step_s and steps_per_sec. A training fails
    (FloatingPointError) when its loss is not finite, when its last epoch's mean loss is above
    DIVERGED_LOSS_RATIO times the first step's, or when its validation loss ends above the
    untrained model's. stop_after = E ends the
    training after its first E epochs, with the schedule of the whole (the test of committed
    results recomputes their first epoch this way).
    """
    t_start = time.perf_counter()
    dtype = np.dtype(cfg.dtype)
    model = make_model(kind, cfg, rng_for(cfg.seed, f"init/{kind}"), dtype)
    batch_rng = rng_for(cfg.seed, f"batches/{kind}")
    ks = k_list(cfg.k_train)
    train_tm = {k: np.ascontiguousarray(train[k].transpose(1, 0, 2, 3), dtype=dtype) for k in ks}   # (T, N, K, D)
    simulator = cfg.recipe == "simulator"
    if simulator:                                                   # soft gates; loss in units of the residuals' spread
        model.hard_gates = False
        model.loss_scale = 1.0 / np.array(residual_spread(train_tm, cfg.dt)) ** 2
    validators = [Validator(model, val[k], cfg.t_bptt) for k in ks]
    untrained_val = float(np.mean([validate() for validate in validators], axis=0)[1])   # val_mse_bptt before any step
    offsets = np.arange(cfg.t_bptt + 1)[:, None]                               # (t_bptt+1, 1)
    workspaces = {k: model.make_workspace(cfg.t_bptt, cfg.batch, k) for k in ks}
    grad = np.zeros(model.n_params, dtype)
    adam = Adam(model.flat, cfg.lr)
    history = {key: [] for key in ("epoch", "train_loss", "val_mse_1step", "val_mse_bptt", "grad_norm")}
    if len(ks) > 1:
        history["batch_k"] = []
    step_seconds, n_steps, first_loss = 0.0, cfg.epochs * cfg.steps_per_epoch, math.inf
    for epoch in range(1, min(cfg.epochs, stop_after or cfg.epochs) + 1):
        t_epoch = time.perf_counter()
        loss_sum = norm_sum = 0.0
        with np.errstate(over="ignore", invalid="ignore"):             # a diverging loss is caught below
            for step in range((epoch - 1) * cfg.steps_per_epoch, epoch * cfg.steps_per_epoch):
                if cfg.lr_schedule == "cosine":
                    adam.lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / n_steps))
                k = ks[batch_rng.integers(len(ks))] if len(ks) > 1 else ks[0]
                T, N = train_tm[k].shape[:2]
                seq = batch_rng.integers(N, size=cfg.batch)
                start = batch_rng.integers(T - cfg.t_bptt, size=cfg.batch)
                window = train_tm[k][start + offsets, seq]                           # (t_bptt+1, B, K, D)
                if simulator:
                    loss, grad[...] = model.loss_and_grads(window[0], window[1])
                else:
                    loss, _ = bptt_loss_and_grads(model, window, workspaces[k], grad)
                if len(ks) > 1:
                    history["batch_k"].append(int(k))
                norm = clip_grad_norm(grad, cfg.grad_clip)
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    raise FloatingPointError(f"{kind}: training diverged (non-finite loss) in epoch {epoch}; "
                                             f"try a smaller --lr (got {cfg.lr}) or --grad-clip "
                                             f"(got {cfg.grad_clip})")
                norm_sum += norm
                adam.step(grad)
                loss_sum += loss
                first_loss = loss if step == 0 else first_loss
        step_seconds += time.perf_counter() - t_epoch
        val_1, val_b = np.mean([validate() for validate in validators], axis=0).tolist()
        for key, value in zip(history, (epoch, loss_sum / cfg.steps_per_epoch, val_1, val_b,
                                        norm_sum / cfg.steps_per_epoch)):
            history[key].append(value)
        if epoch % cfg.log_every == 0 or epoch == cfg.epochs:
            rate = epoch * cfg.steps_per_epoch / step_seconds
            log(f"[{kind:>14}] epoch {epoch:3d}/{cfg.epochs}  train {history['train_loss'][-1]:.5f}  "
                f"val 1-step {val_1:.5f}  " + (f"val {cfg.t_bptt}-step {val_b:.5f}  " if cfg.t_bptt > 1 else "") +
                f"|g| {history['grad_norm'][-1]:.2f}  {rate:.0f} steps/s")
    if history["train_loss"][-1] > DIVERGED_LOSS_RATIO * first_loss:
        raise FloatingPointError(f"{kind}: training diverged: the last epoch's mean loss "
                                 f"{history['train_loss'][-1]:.3g} is above {DIVERGED_LOSS_RATIO:g}x the first "
                                 f"step's {first_loss:.3g}; try a smaller --lr (got {cfg.lr}) or --grad-clip "
                                 f"(got {cfg.grad_clip})")
    if history["val_mse_bptt"][-1] > untrained_val:
        raise FloatingPointError(f"{kind}: training failed: its validation loss after the last epoch, "
                                 f"{history['val_mse_bptt'][-1]:.3g}, is above the untrained model's "
                                 f"{untrained_val:.3g}; try a smaller --lr (got {cfg.lr})")
    if simulator:
        model.hard_gates = True
    timing = {"train_s": time.perf_counter() - t_start, "step_s": step_seconds,
              "steps_per_sec": len(history["epoch"]) * cfg.steps_per_epoch / step_seconds,
              "optimizer_steps": len(history["epoch"]) * cfg.steps_per_epoch,
              "blas_threads": blas_info()["threads"]}
    return model, history, timing


def _print_flush(line):
    print(line, flush=True)


def silent(*_):
    pass


def _train_job(job):
    """Worker entry point: trains one model, returns what the parent needs (picklable).
    job = (kind, cfg, train, val, verbose)."""
    kind, cfg, train, val, verbose = job
    model, history, timing = train_model(kind, cfg, train, val, log=_print_flush if verbose else silent)
    return kind, model.flat, history, timing


def n_workers(cfg: Config) -> int:
    return cfg.jobs or os.cpu_count() or 1


def train_both(cfg: Config, train, val, verbose: bool = True, pretrained: dict | None = None):
    """Trains both models, in two processes when there are two workers (same numbers either way).
    pretrained: kind -> (model, history, timing) of a model already trained on this data.
    A model whose training fails raises TrainingError naming it."""
    models, histories, timings = {}, {}, {}
    jobs = [(kind, cfg, train, val, verbose) for kind in reversed(MODEL_KINDS) if kind not in (pretrained or {})]
    if n_workers(cfg) >= 2 and len(jobs) == 2:
        outcomes = run_workers(_train_job, jobs, 2)
    else:
        outcomes = []
        for job in jobs:
            try:
                outcomes.append((_train_job(job), None))
            except FloatingPointError as err:
                outcomes.append((None, f"{type(err).__name__}: {err}"))
    for job, (result, error) in zip(jobs, outcomes):
        if error is not None:
            raise TrainingError(f"training the {job[0]} model failed: {error}")
    for kind, (model, history, timing) in (pretrained or {}).items():
        models[kind], histories[kind], timings[kind] = model, history, timing
    for kind, flat, history, timing in (result for result, _ in outcomes):
        model = make_model(kind, cfg, np.random.default_rng(0))
        model.flat[...] = flat
        models[kind], histories[kind], timings[kind] = model, history, timing
    return ({k: models[k] for k in MODEL_KINDS}, {k: histories[k] for k in MODEL_KINDS},
            {k: timings[k] for k in MODEL_KINDS})


class TrainingError(RunFailed):
    """Training failed (diverged, or its worker died); main() prints it on one line, exit code 1."""


def test_set(cfg: Config, k: int, which: str):
    """The closed-loop ("eval", cfg.t_eval steps) or long-horizon ("long", cfg.t_long steps) test
    set of K = k balls: (states (T, n_eval, k, D), events); each K has its own generator."""
    n_steps = cfg.t_eval if which == "eval" else cfg.t_long
    return simulate_sequences(cfg.n_eval, n_steps, k, cfg.dt, cfg.radius, rng_for(cfg.seed, f"data/{which}/K={k}"),
                              cfg.masses)


def make_data(cfg: Config):
    """Training and validation sequences, K -> (n_K, T, K, D) for every training K, and per
    evaluation K the closed-loop and long-horizon test sets: K -> (states (T, n, K, D), events);
    D = 4, or 5 with --masses."""
    ks = k_list(cfg.k_train)

    def split(n, purpose):
        """K -> (n_K, T, K, 4): n sequences split evenly over the training K."""
        if len(ks) == 1:                                            # one K: the stub's single stream
            return {ks[0]: make_dataset(n, cfg.t_train, ks[0], cfg.dt, cfg.radius, rng_for(cfg.seed, purpose),
                                        cfg.masses)}
        counts = [n // len(ks) + (i < n % len(ks)) for i in range(len(ks))]
        return {k: make_dataset(c, cfg.t_train, k, cfg.dt, cfg.radius, rng_for(cfg.seed, f"{purpose}/K={k}"),
                                cfg.masses)
                for k, c in zip(ks, counts)}

    try:
        train, val = split(cfg.n_train, "data/train"), split(cfg.n_val, "data/val")
    except ValueError as err:
        raise ConfigError(f"--k-train {k_train_text(cfg)}: {err}")
    try:
        eval_sets = {k: test_set(cfg, k, "eval") for k in cfg.eval_k}
        long_sets = {k: test_set(cfg, k, "long") for k in cfg.eval_k}
    except ValueError as err:
        raise ConfigError(f"--eval-k {','.join(map(str, cfg.eval_k))}: {err}")
    return train, val, eval_sets, long_sets
