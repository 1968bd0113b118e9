"""Measures of a predicted rollout against the truth, both (T, n, K, D): per-step errors,
one-step errors by event (free flight, wall, ball-ball collision), and the long-horizon
measures (horizon, distributions of distances and speeds, energy, balls outside the box)."""
from __future__ import annotations

import numpy as np

from rnem.balls import ball_masses, ball_radii


def rollout_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Per-step errors of a rollout pred against truth, both (T, n, K, 4).

    pos_err / vel_err: mean over sequences and balls of the Euclidean distance |d(x, y)|,
    |d(vx, vy)|; pos_mse / vel_mse: per-element mean squared error. The mean_* scalars
    average the T per-step values, step 0 included (where pred = truth).
    """
    diff = pred.astype(np.float64) - truth                          # (T, n, K, 4)
    out = {
        "pos_err": np.sqrt((diff[..., :2] ** 2).sum(-1)).mean(axis=(1, 2)),
        "vel_err": np.sqrt((diff[..., 2:4] ** 2).sum(-1)).mean(axis=(1, 2)),
        "pos_mse": (diff[..., :2] ** 2).mean(axis=(1, 2, 3)),
        "vel_mse": (diff[..., 2:4] ** 2).mean(axis=(1, 2, 3)),
    }
    result = {key: value.tolist() for key, value in out.items()}
    result.update({f"mean_{key}": float(value.mean()) for key, value in out.items()})
    return result


def post_collision_mask(pair_events: np.ndarray, window: int) -> np.ndarray:
    """(T, n, K) bool: ball k at recorded state s is within `window` states after a ball-ball
    collision of k, i.e. k collided during a step t (t -> t+1) with t + 1 <= s <= t + window."""
    collided = pair_events.any(axis=-1)                             # (T, n, K): collision during step t
    mask = np.zeros_like(collided)
    for w in range(1, window + 1):
        mask[w:] |= collided[:-w]
    return mask


def masked_vel_mse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray):
    """Per-element velocity MSE over the (step, sequence, ball) entries where mask is True (None if none)."""
    if not mask.any():
        return None
    return float(((pred[..., 2:4].astype(np.float64) - truth[..., 2:4])[mask] ** 2).mean())


def one_step_by_event(step_fn, truth: np.ndarray, events: dict) -> dict:
    """Teacher-forced one-step errors split by what each ball does during the step.

    For every t < T-1 the predictor gets the true state s_t and predicts s_{t+1}; each
    (t, sequence, ball) counts as "ball" if the ball collided with another ball during the
    step, else "wall" if it bounced off a wall, else "free". Returns {cls: {pos_mse, vel_mse,
    count}} (per-element MSE; None where count is 0).
    """
    T, n, K, D = truth.shape
    pred = np.asarray(step_fn(truth[:-1].reshape(-1, K, D)), np.float64).reshape(T - 1, n, K, D)
    sq = (pred - truth[1:]) ** 2                                    # (T-1, n, K, D)
    ball = events["pair"][:-1].any(axis=-1)                         # (T-1, n, K)
    wall = events["wall"][:-1] & ~ball
    classes = {"free": ~ball & ~wall, "wall": wall, "ball": ball}
    return {cls: {"pos_mse": float(sq[..., :2][mask].mean()) if mask.any() else None,
                  "vel_mse": float(sq[..., 2:4][mask].mean()) if mask.any() else None,
                  "count": int(mask.sum())}
            for cls, mask in classes.items()}


def wasserstein1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-Wasserstein distance between two empirical distributions with equal sample counts,
    row by row: a, b (T, m) -> (T,), the mean |sorted(a) - sorted(b)|."""
    return np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).mean(axis=1)


def pair_distances(states: np.ndarray) -> np.ndarray:
    """(T, n, K, 4) -> (T, n K (K-1) / 2) centre distances of every unordered pair."""
    T, n, K, _ = states.shape
    i, j = np.triu_indices(K, 1)
    return np.linalg.norm(states[:, :, i, :2] - states[:, :, j, :2], axis=-1).reshape(T, -1)


def overlap_fraction(states: np.ndarray, radius: float) -> np.ndarray:
    """(T,) fraction of ball pairs (i < j, over sequences) whose centres are closer than 0.9 (r_i + r_j):
    overlapping by more than 10 % of their contact distance 2r. states (T, n, K, D)."""
    i, j = np.triu_indices(states.shape[2], 1)
    r = ball_radii(states, radius)
    dist = np.linalg.norm(states[:, :, i, :2] - states[:, :, j, :2], axis=-1)        # (T, n, P)
    return (dist < 0.9 * (r[:, :, i] + r[:, :, j])).mean(axis=(1, 2))


def horizon_steps(pred: np.ndarray, truth: np.ndarray, radius: float) -> np.ndarray:
    """(n,) per sequence: the first step at which the mean over balls of the position error
    |d(x, y)| exceeds `radius`; T (the rollout length) where it never does."""
    err = np.linalg.norm(pred[..., :2] - truth[..., :2], axis=-1).mean(axis=2)       # (T, n)
    exceeded = err > radius
    return np.where(exceeded.any(axis=0), exceeded.argmax(axis=0), len(err))


def long_horizon_metrics(pred: np.ndarray, truth: np.ndarray, radius: float) -> dict:
    """Per-step measures of a long rollout pred against truth (T, n, K, D), D = 4 or 5 (radius).

    vel_err: mean Euclidean velocity error; vel_cos: mean over balls and sequences of the cosine
    between predicted and true velocity; speed_rel_err: mean of | |v_pred| - |v_true| | / |v_true|
    (the Neural Physics Engine's two measures); pair_dist_w1 / speed_w1: 1-Wasserstein distance
    between the predicted and true distributions (pooled over sequences) of pairwise centre
    distances / ball speeds; outside_frac: fraction of predicted balls whose centre lies outside
    [r_i, 1-r_i]^2, i.e. that overlap a wall; overlap_frac: fraction of predicted ball pairs
    overlapping by more than 10 % of 2r (see overlap_fraction); energy_ratio: predicted total
    kinetic energy (masses from the radii) over the true one, which is conserved.
    Scalars: horizon, the mean over sequences of horizon_steps (a lower bound where
    horizon_censored, the fraction of sequences that never exceed it, is above 0).
    """
    pred = pred.astype(np.float64)
    vel_p, vel_t = pred[..., 2:4], truth[..., 2:4]
    speed_p, speed_t = np.linalg.norm(vel_p, axis=-1), np.linalg.norm(vel_t, axis=-1)   # (T, n, K)
    r = ball_radii(truth, radius)[..., None]                                            # (T, n, K, 1)
    outside = ((pred[..., :2] < r) | (pred[..., :2] > 1 - r)).any(axis=-1)
    mass = ball_masses(truth, radius)
    cos = (vel_p * vel_t).sum(-1) / np.maximum(speed_p * speed_t, 1e-12)
    steps = horizon_steps(pred, truth, radius)
    return {
        "vel_err": np.linalg.norm(vel_p - vel_t, axis=-1).mean(axis=(1, 2)).tolist(),
        "vel_cos": cos.mean(axis=(1, 2)).tolist(),
        "speed_rel_err": (np.abs(speed_p - speed_t) / np.maximum(speed_t, 1e-12)).mean(axis=(1, 2)).tolist(),
        "pair_dist_w1": wasserstein1(pair_distances(pred), pair_distances(truth)).tolist(),
        "speed_w1": wasserstein1(speed_p.reshape(len(pred), -1), speed_t.reshape(len(truth), -1)).tolist(),
        "outside_frac": outside.mean(axis=(1, 2)).tolist(),
        "overlap_frac": overlap_fraction(pred, radius).tolist(),
        "energy_ratio": ((mass * speed_p ** 2).sum(axis=(1, 2)) / (mass * speed_t ** 2).sum(axis=(1, 2))).tolist(),
        "horizon": float(steps.mean()),
        "horizon_censored": float((steps == len(pred)).mean()),
    }
