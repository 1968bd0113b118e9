"""Does a network on frames know how the balls move? Measures of its predictions against the
true balls: the motion fraction (how much of a ball's displacement the component that owns it
predicts), the position of a component's prediction, its error in simulation beside holding the
last frame, the Brier score of a predicted frame, the attention on real against empty
components and between the components of two balls around their collision. Every function is
plain numpy on arrays; the network script calls them.

Pixels are flat: D = S * S in row-major order, row 0 the top of the box (rnem.frames)."""
from __future__ import annotations

import numpy as np

OWNED_FRACTION = 0.5   # a ball is measured only where at least this part of its disk is in the window (not
#                        hidden behind another ball or the curtain), and a component "owns" a ball's pixels by
#                        the largest gamma mass on them
MOTION_MARGIN_PX = 1.0  # the motion fraction's window: a ball's disks at t and t + 1, this many pixels wider
MIN_MASS = 1.0         # a prediction with less than this much probability (in pixels) in the window has no centroid


def pixel_grid(size: int) -> np.ndarray:
    """(D, 2) the (column, row) coordinates in pixels of every pixel of a flat frame."""
    rows, cols = np.divmod(np.arange(size * size), size)
    return np.stack([cols, rows], axis=-1).astype(np.float64)


def centroid(weight, size: int):
    """(centroid (..., 2) in pixels (column, row), mass (...)): the centre of mass of the
    non-negative weights (..., D) of a flat frame; NaN where the mass is 0."""
    weight = np.asarray(weight, np.float64)
    mass = weight.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weight @ pixel_grid(size)) / mass[..., None], mass


def owners(gamma, disks):
    """(..., B) the component with the largest gamma mass on each ball's pixels: gamma (..., K, D),
    disks (..., B, D) bool (the pixels of each ball that the E-step saw)."""
    mass = np.einsum("...kd,...bd->...bk", gamma, disks.astype(gamma.dtype))                    # (..., B, K)
    return mass.argmax(axis=-1)


def motion_windows(disk_now, disk_next, wide_now, wide_next, visible):
    """(window (..., B, D), usable (..., B)): where ball b's displacement from frame t to t + 1 is
    measured: its disks at t and t + 1, one pixel wider (wide_*), without the pixels of any other
    ball at either frame and without unseen pixels (visible (..., D)); usable where each of its two
    disks keeps at least OWNED_FRACTION of its pixels in the window. disk_*, wide_* (..., B, D) bool."""
    window = wide_now | wide_next                                                               # (..., B, D)
    any_now, any_next = disk_now.sum(axis=-2, keepdims=True), disk_next.sum(axis=-2, keepdims=True)
    others = (any_now - disk_now > 0) | (any_next - disk_next > 0)                             # another ball's pixel
    window &= ~others & visible[..., None, :]
    kept = lambda d: (d & window).sum(axis=-1) >= OWNED_FRACTION * np.maximum(d.sum(axis=-1), 1)  # noqa: E731
    return window, kept(disk_now) & kept(disk_next) & (disk_now.sum(-1) > 0)


def owned_balls(disk, seen):
    """(..., B) bool: the balls whose seen pixels (seen (..., B, D) bool) are at least OWNED_FRACTION
    of their disk (disk (..., B, D) bool), those a component can be said to own."""
    area = disk.sum(axis=-1)
    return (area > 0) & (seen.sum(axis=-1) >= OWNED_FRACTION * area)


def predicted_displacements(psi_next, owner, disk_now, disk_next, window, usable, size: int):
    """(predicted (N, 2), true (N, 2)) displacements in pixels of the usable balls: the centroid
    of the owning component's prediction psi_next[owner] inside the window, and the centroid of the
    ball's disk at t + 1, each minus the centroid of its disk at t (all inside the same window, so
    that a prediction equal to the next disk moves exactly as the ball, and one equal to the
    current disk does not move). psi_next (..., K, D), owner (..., B), the rest (..., B, D) and
    usable (..., B). Balls whose prediction has less than MIN_MASS in the window are left out."""
    own = np.take_along_axis(psi_next, owner[..., None], axis=-2)                               # (..., B, D)
    c_pred, mass = centroid(own * window, size)
    c_now, _ = centroid(disk_now & window, size)
    c_next, _ = centroid(disk_next & window, size)
    keep = usable & (mass >= MIN_MASS)
    return (c_pred - c_now)[keep], (c_next - c_now)[keep]


def motion_fraction(predicted, true) -> dict:
    """The least-squares slope through the origin of the predicted on the true displacements
    (N, 2), both coordinates pooled: 1 for a prediction that moves every ball by exactly its
    displacement, 0 for one that copies the frame. Also the correlation, the mean lengths and N."""
    predicted, true = np.asarray(predicted, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if true.size == 0 or not (true @ true) > 0:
        return {"slope": None, "correlation": None, "mean_predicted_px": None, "mean_true_px": None, "n": 0}
    corr = np.corrcoef(predicted, true)[0, 1] if predicted.std() > 0 else 0.0
    return {"slope": float(predicted @ true / (true @ true)), "correlation": float(corr),
            "mean_predicted_px": float(np.hypot(*predicted.reshape(-1, 2).T).mean()),
            "mean_true_px": float(np.hypot(*true.reshape(-1, 2).T).mean()), "n": int(true.size // 2)}


def component_positions(psi, threshold: float, size: int, previous=None):
    """(..., K, 2) where each component puts its ball, in pixels: the centroid of psi_k (..., K, D)
    over the pixels where k is the most likely component and psi_k > threshold (what the simulation
    itself imagines as k's ball); where k has no such pixel, `previous` (its last position) or NaN."""
    wins = (psi == psi.max(axis=-2, keepdims=True)) & (psi > threshold)                      # (..., K, D)
    pos, mass = centroid(psi * wins, size)
    if previous is not None:
        pos = np.where((mass > 0)[..., None], pos, previous)
    return pos


def brier(frames, prob) -> np.ndarray:
    """(...) the Brier score of each binary frame (..., D) under pixel probabilities prob (..., D):
    the sum over the pixels of (prob - frame)^2 (copying a frame scores the number of changed pixels)."""
    return ((np.asarray(prob, np.float64) - frames) ** 2).sum(axis=-1)


def real_components(gamma, frame, area: float):
    """(..., K) bool: component k explains at least half a ball's area of the lit pixels of the
    frame (gamma (..., K, D), frame (..., D) bool, area: a ball's area in pixels); the others are empty."""
    return (gamma * frame[..., None, :]).sum(axis=-1) >= 0.5 * area


def attention_on(attention, real) -> dict:
    """attention (..., K, K) with a[k, i] the weight component k gives to i (diagonal unused), real
    (..., K) bool: the mean a_ki over pairs i != k whose i is real and whose i is empty, and the
    mean over k of the sum over i != k (the scale of the relational sum)."""
    K = attention.shape[-1]
    off = ~np.eye(K, dtype=bool)
    to_real = off & real[..., None, :]                                                         # (..., K, K)
    to_empty = off & ~real[..., None, :]
    mean = lambda m: float(attention[m].mean()) if m.any() else None                           # noqa: E731
    return {"on_real": mean(to_real), "on_empty": mean(to_empty),
            "sum_over_others": float((attention * off).sum(axis=-1).mean())}


COLLISION_LAGS = tuple(range(-3, 5))   # steps from a collision at which attention_around_collisions looks


def attention_around_collisions(attention, owner, owned, pair, lags=COLLISION_LAGS) -> dict:
    """Does component k attend to i when their balls collide (the paper's Figure 2)? attention
    (T, N, K, K) a_ki at step t, owner (T, N, B) the component that owns each ball at step t, owned
    (T, N, B) bool where that ball is seen well enough to be owned, pair (T, N, B, B) bool: balls b
    and c collide between the frame step t sees and the one it predicts. A pair of balls counts at
    step t if both are owned, by two different components; its weight is a[owner b, owner c].
    Returns by_lag {L: the mean weight at step t + L over collisions at step t, both orders of each
    pair}, on_colliding (L = 0), on_apart (the mean over pairs with no collision within
    max |lags| steps either side) and the number of (step, pair) terms of each."""
    T, N, B = owner.shape
    n_idx = np.arange(N)[:, None, None]
    weight = attention[np.arange(T)[:, None, None, None], n_idx[None], owner[:, :, :, None],
                       owner[:, :, None, :]]                                                   # (T, N, B, B)
    counts = (owned[..., :, None] & owned[..., None, :]
              & (owner[..., :, None] != owner[..., None, :]))                                  # (T, N, B, B)
    by_lag, n_lag = {}, {}
    for L in lags:                                       # the collision at step t - L, the weight at t
        lo, hi = max(0, L), min(T, T + L)
        hit = pair[lo - L:hi - L] & counts[lo:hi]
        n_lag[L] = int(hit.sum())
        by_lag[L] = float(weight[lo:hi][hit].mean()) if hit.any() else None
    reach = max(abs(L) for L in lags)
    near = np.zeros_like(pair)
    for d in range(-reach, reach + 1):                   # a collision within reach steps of t
        near[max(0, d):T + min(0, d)] |= pair[max(0, -d):T - max(0, d)]
    apart = counts & ~near
    return {"by_lag": {str(L): v for L, v in by_lag.items()}, "on_colliding": by_lag.get(0),
            "on_apart": float(weight[apart].mean()) if apart.any() else None,
            "n_colliding": n_lag.get(0, 0), "n_apart": int(apart.sum())}
