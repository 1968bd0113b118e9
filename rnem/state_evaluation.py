"""Evaluating the state models against two baselines (constant velocity, the uninformed guess):
closed-loop rollout errors split by collision events, one-step errors by event, long-horizon
measures, the stored sample sequences and the attention's geometry (evaluate)."""
from __future__ import annotations

import math

import numpy as np

from rnem.blas import with_one_blas_thread
from rnem.rollout_measures import (long_horizon_metrics, masked_vel_mse, one_step_by_event, overlap_fraction,
                                   post_collision_mask, rollout_metrics)
from rnem.simulator import simulate
from rnem.state_config import MODEL_KINDS, Config, k_list
from rnem.state_models import RelationalDynamics
from rnem.state_training import rollout


# ----------------------------------------------------------------------------- evaluation
BASELINES = ("constant_velocity", "uninformed")
PREDICTORS = MODEL_KINDS + BASELINES
# The uninformed guess: every ball at the box centre, at rest. For positions symmetric about the
# centre and directions uniform, this constant minimises the expected squared error, so its
# error is the level at which a predictor that has lost track of the balls saturates.
UNINFORMED_STATE = np.array([0.5, 0.5, 0.0, 0.0])
EVENT_CLASSES = ("free", "wall", "ball")


def make_predictors(models: dict, cfg: Config) -> dict:
    """name -> (rollout_fn(init (n, K, 4), n_steps) -> (n_steps, n, K, 4), step_fn(S) -> next S).

    constant_velocity: free flight with wall reflection and no ball-ball interaction (the
    simulator with collide=False), what perfect non-relational physics achieves;
    uninformed: UNINFORMED_STATE at every step after the given frame.
    """
    predictors = {}
    for kind, model in models.items():
        predictors[kind] = (
            lambda init, n, m=model: rollout(m, init.astype(m.dtype), n),
            lambda S, m=model: S + m.forward(S.astype(m.dtype))[0])

    def free_flight(init, n):
        """The simulator without ball-ball collisions, from init (n_seq, K, D); keeps the radius column."""
        radii = init[..., 4] if init.shape[-1] == 5 else cfg.radius
        states = simulate(init[..., :2], init[..., 2:4], n, cfg.dt, radii, collide=False)
        return with_radii(states, init)

    def guess(init, n):
        pred = np.broadcast_to(init, (n,) + init.shape).copy()
        pred[1:, ..., :4] = UNINFORMED_STATE
        return pred

    predictors["constant_velocity"] = (free_flight, lambda S: free_flight(S, 2)[1])
    predictors["uninformed"] = (guess, lambda S: guess(S, 2)[1])
    return predictors


def with_radii(states: np.ndarray, like: np.ndarray) -> np.ndarray:
    """states (T, n, K, 4) with the radius column of `like` (n, K, D) appended when D = 5."""
    if like.shape[-1] == 4:
        return states
    return np.concatenate([states, np.broadcast_to(like[..., 4:], states.shape[:3] + (1,))], axis=-1)


def packing_fraction(k: int, radius: float) -> float:
    """Fraction of the unit box covered by K balls of this radius."""
    return k * math.pi * radius ** 2


@with_one_blas_thread
def evaluate(models: dict, eval_sets: dict, long_sets: dict, cfg: Config):
    """Closed-loop rollouts from frame 0, one-step errors by event class and long rollouts,
    for the two models and both baselines at every evaluation K.

    eval_sets / long_sets: K -> (states (T, n, K, 4), events). Returns {"rollout", "one_step",
    "long_horizon", "samples", "attention"}: the run.json sections of those names (attention None
    unless the relational model has attention).
    """
    predictors = make_predictors(models, cfg)
    rollouts, one_step, long_horizon, preds = {}, {}, {}, {}
    for k, (truth, events) in eval_sets.items():
        mask = post_collision_mask(events["pair"], cfg.post_window)      # (T, n, K)
        entry = {"K": k, "T": cfg.t_eval, "packing_fraction": packing_fraction(k, cfg.radius),
                 "post_collision_window": cfg.post_window, "post_collision_count": int(mask.sum())}
        one_step[str(k)] = {}
        for name, (rollout_fn, step_fn) in predictors.items():
            pred = rollout_fn(truth[0], cfg.t_eval)
            entry[name] = rollout_metrics(pred, truth)
            entry[name]["post_collision_vel_mse"] = masked_vel_mse(pred, truth, mask)
            one_step[str(k)][name] = one_step_by_event(step_fn, truth, events)
            preds[k, name] = pred
        rollouts[str(k)] = entry
        long_truth, _ = long_sets[k]
        long_horizon[str(k)] = {"T": cfg.t_long, "truth_overlap_frac": overlap_fraction(long_truth, cfg.radius).tolist(), **{
            name: long_horizon_metrics(predictors[name][0](long_truth[0], cfg.t_long), long_truth, cfg.radius)
            for name in MODEL_KINDS + ("constant_velocity",)}}
    k_samples = next((k for k in k_list(cfg.k_train) if k in eval_sets), next(iter(eval_sets)))
    idx = slice(0, cfg.n_samples)

    def as_list(a):
        return np.round(np.asarray(a, np.float64), 5).tolist()

    samples = {"K": k_samples, "index": list(range(cfg.n_samples)), "radius": cfg.radius,
               "truth": as_list(eval_sets[k_samples][0][:, idx])}
    samples.update({kind: as_list(preds[k_samples, kind][:, idx]) for kind in models})
    attention = None
    if cfg.agg == "attention":
        model = models["relational"]
        gates = np.stack([rollout_gates(model, pred_t) for pred_t in preds[k_samples, "relational"][:, idx]])
        samples["attention"] = as_list(gates)                       # (T, S, K, K) along the closed-loop rollout
        attention = attention_geometry(model, *eval_sets[k_samples], min(cfg.n_attention, cfg.n_eval))
    return {"rollout": rollouts, "one_step": one_step, "long_horizon": long_horizon, "samples": samples,
            "attention": attention}


def rollout_gates(model: "RelationalDynamics", S: np.ndarray) -> np.ndarray:
    """Attention gates a_kj (n, K, K) the model computes on states S (n, K, 4)."""
    ws = model.make_workspace(1, *S.shape[:2])
    model.forward(S.astype(model.dtype), ws, 0)
    return model.attention(ws, 0)


def attention_geometry(model, truth: np.ndarray, events: dict, n_seq: int) -> dict:
    """Teacher-forced gates against the geometry of each ordered pair, over the first n_seq
    sequences of truth (T, n, K, 4): for every step t and pair j != k, the gate a_kj computed on
    the true state s_t, the centre distance, the approach speed -(v_j - v_k).(p_j - p_k) / |p_j - p_k|
    (positive when closing in), and whether the pair collides during the step t -> t+1."""
    T, _, K, _ = truth.shape
    states = truth[:, :n_seq]                                       # (T, S, K, 4)
    gates = rollout_gates(model, states.reshape(-1, K, 4)).reshape(T, -1, K, K)
    offset = states[:, :, None, :, :2] - states[:, :, :, None, :2]  # (T, S, K, K, 2): p_j - p_k
    rel_vel = states[:, :, None, :, 2:4] - states[:, :, :, None, 2:4]
    dist = np.linalg.norm(offset, axis=-1)
    off_diag = ~np.eye(K, dtype=bool)
    approach = -(rel_vel * offset).sum(-1) / np.where(off_diag, dist, 1.0)
    collided = events["pair"][:, :n_seq]
    return {"K": K, "n_sequences": n_seq,
            **{name: np.round(value[:, :, off_diag].ravel(), 4).tolist()
               for name, value in (("gate", gates), ("distance", dist), ("approach_speed", approach))},
            "collided": collided[:, :, off_diag].ravel().astype(int).tolist()}
