"""Tracks from frames -> training states: what the E-step tracker followed, turned into the
(x, y, vx, vy[, r]) states a simulator learns from, with no true state anywhere.

A track is one component of the tracker (relational_nem_pixels.follow) over the frames of a
sequence: its position after each frame's EM, its radius (the running mean of sqrt(claimed area / pi))
and whether it is present. Velocities come from the positions (the simulator's own kinematics:
x_{t+1} = x_t + dt v_t between collisions), and a transition s_t -> s_{t+1} becomes a training
window only when every frame whose position it reads is one the tracker clearly got right by its
own account: the expected number of balls present, each component present since the frame before
and moved less than JUMP_RADII radii (a longer move is a swap or a re-discovery, not motion).
"""
from __future__ import annotations

import numpy as np

VELOCITY_METHODS = ("difference", "segments")
JUMP_RADII = 1.5     # a component that moves more than this many radii between frames has changed ball
MIN_SEGMENT = 3      # a line through fewer positions always fits: no evidence that the ball flew straight
CORNER_SIGMAS = 4.0  # a position within this many sigma of the next segment's line is the corner of the two


def noise_scale(x: np.ndarray, present: np.ndarray) -> float:
    """sigma, the spread of one coordinate of a tracked position about the true one, estimated from
    the tracks alone: the median |second difference| x_{t+1} - 2 x_t + x_{t-1} over frames where the
    component is present at t - 1, t, t + 1 is 0.6745 sqrt(6) sigma for noise about straight lines
    (collisions bend few of them, and a median ignores those). x (T, ..., 2), present (T, ...)."""
    d2 = x[2:] - 2.0 * x[1:-1] + x[:-2]
    there = present[2:] & present[1:-1] & present[:-2]
    return float(np.median(np.abs(d2[there])) / (0.6745 * np.sqrt(6.0)))


def _prefix(v: np.ndarray) -> np.ndarray:
    """(T + 1, ...) sums over frames 0..t-1 of v (T, ...)."""
    return np.concatenate([np.zeros((1,) + v.shape[1:]), np.cumsum(v, axis=0)])


def _line_fit(sums: tuple, a: np.ndarray, b: np.ndarray):
    """Least-squares lines through the frames a..b (inclusive) of every track, from prefix sums
    (_sums); a, b: frame indices (..., N), one per track (column). Returns (residual sum of squared
    distances (..., N), slope per frame (..., N, 2), 0 for one frame; frames (..., N))."""
    cols = np.arange(a.shape[-1])

    def total(P):                                                                   # sum over frames a..b
        return P[b + 1, cols] - P[a, cols]
    n, st, stt = total(sums[0]), total(sums[1]), total(sums[2])
    sx, sxx, stx = total(sums[3]), total(sums[4]), total(sums[5])                   # (..., N, 2)
    var_t = stt - st * st / n                                                       # 0 for one frame
    cov = stx - (st / n)[..., None] * sx
    slope = cov / np.where(var_t > 0, var_t, 1.0)[..., None]
    sse = (sxx - sx * sx / n[..., None]).sum(-1) - (cov * slope).sum(-1)
    return np.maximum(sse, 0.0), slope, n


def _sums(x: np.ndarray) -> tuple:
    """Prefix sums over frames of x (T, N, 2) for _line_fit: counts, t, t^2, x, x^2, t x."""
    T, N, _ = x.shape
    tt = np.broadcast_to(np.arange(T, dtype=float)[:, None], (T, N))
    return (_prefix(np.ones((T, N))), _prefix(tt), _prefix(tt * tt), _prefix(x), _prefix(x * x),
            _prefix(tt[..., None] * x))


def segments(x: np.ndarray, breaks: np.ndarray, penalty: float):
    """Piecewise straight lines through every track of x (T, N, 2): the split of frames 0..T-1 into
    consecutive segments [a, b] that minimises the sum over segments of (squared distances of its
    positions from their least-squares line + penalty), by dynamic programming over the last frame;
    a segment never spans a break (breaks (T - 1, N) bool: between frames t and t + 1). Returns
    first, last (T, N) int: the first and last frame of each frame's segment."""
    T, N, _ = x.shape
    sums = _sums(x)
    cut = _prefix(np.concatenate([np.zeros((1, N)), breaks.astype(float)]))        # (T + 1, N) breaks up to t
    best = np.zeros((T + 1, N))                                                     # best[b + 1]: frames 0..b
    start = np.zeros((T, N), int)                                                   # the best last segment's start
    cols = np.arange(N)
    for b in range(T):
        a = np.broadcast_to(np.arange(b + 1)[:, None], (b + 1, N))                  # candidate starts
        sse = _line_fit(sums, a, np.full((b + 1, N), b))[0]                         # (b + 1, N)
        spans_break = cut[b + 1] - cut[a + 1, cols] > 0                             # a break inside [a, b]
        cost = best[a, cols] + sse + penalty + np.where(spans_break, np.inf, 0.0)
        start[b] = cost.argmin(axis=0)
        best[b + 1] = cost[start[b], cols]
    first, last = np.empty((T, N), int), np.empty((T, N), int)
    seg_start, seg_end = start[T - 1].copy(), np.full(N, T - 1)
    for b in range(T - 1, -1, -1):                                                  # walk the segments back
        first[b], last[b] = seg_start, seg_end
        if b:
            ends = seg_start == b                                                   # frame b - 1 ends the one before
            seg_start = np.where(ends, start[b - 1], seg_start)
            seg_end = np.where(ends, b - 1, seg_end)
    return first, last


def corners(x: np.ndarray, first: np.ndarray, last: np.ndarray, breaks: np.ndarray, tolerance: float):
    """Where a segment ends at frame c and the next starts at c + 1, the position x_c that also lies
    within `tolerance` of the next segment's line (extended back to c) is the corner of the two:
    a ball collision pushes the balls apart by a little only, so the first position after it lies on
    the line before it too, while the velocity at c is the one after. Returns (first, last): frame
    c then belongs to the next segment (which now starts at c; the one before still ends at c)."""
    T, N, _ = x.shape
    first, last = first.copy(), last.copy()
    cols = np.arange(N)
    sums = _sums(x)
    for c in range(T - 2, -1, -1):
        boundary = (last[c] == c) & (first[c + 1] == c + 1) & ~breaks[c] & (last[c + 1] > c + 1)
        if not boundary.any():
            continue
        _, slope, n = _line_fit(sums, first[c + 1], last[c + 1])                    # the next segment's line
        a, b = first[c + 1], last[c + 1]
        mean_t = (a + b) / 2.0
        mean_x = (sums[3][b + 1, cols] - sums[3][a, cols]) / n[:, None]
        at_c = mean_x + (c - mean_t)[:, None] * slope                               # the line at frame c
        corner = boundary & (np.linalg.norm(x[c] - at_c, axis=-1) < tolerance)
        last[c] = np.where(corner, last[c + 1], last[c])                            # frame c joins the next segment,
        first[c:] = np.where(corner & (first[c:] == c + 1), c, first[c:])           # which now starts at c
        first[c] = np.where(corner, c, first[c])
    return first, last


def _fit(t: np.ndarray, u: np.ndarray):
    """The least-squares line through points (t (m,), u (m, 2)): (slope (2,), the line as a function
    of t (any shape -> (..., 2)), its residual sum of squares)."""
    tm, um = t.mean(), u.mean(axis=0)
    var = ((t - tm) ** 2).sum()
    slope = ((t - tm) @ (u - um)) / var if var > 0 else np.zeros(2)

    def line(at):
        return um + (np.asarray(at, float)[..., None] - tm) * slope
    return slope, line, float(((u - line(t)) ** 2).sum())


def fold_walls(x: np.ndarray, first: np.ndarray, last: np.ndarray, breaks: np.ndarray, radii: np.ndarray,
               penalty: float, min_frames: int) -> np.ndarray:
    """(T, N, 2) slope per frame of every track of x (T, N, 2) cut into segments (first, last) whose
    consecutive segments are joined across wall bounces: a bounce mirrors the ball at the wall
    (x = r or 1 - r of its radius, radii (T, N)), so the segment after it, mirrored back at that
    wall, continues the line before it. Consecutive segments (no break (T - 1, N) between them)
    whose velocity component along an axis changes sign are joined when one line through the first
    and the mirrored second costs less than two (its squared residuals no more than theirs plus
    `penalty`); the joined line gives every frame of the group its speed (more positions, less
    noise), and the side of the wall on which the line lies at frame t decides the sign at t (not
    the noisy position). A group of fewer than min_frames frames has no slope (NaN)."""
    T, N, _ = x.shape
    out = np.full((T, N, 2), np.nan)
    for j in range(N):
        segs = list(dict.fromkeys(zip(first[:, j].tolist(), last[:, j].tolist())))   # (first, last), in order
        groups, current = [], None
        for a, b in segs:
            frames = np.arange(a, b + 1)
            own_slope, own_line, own_sse = _fit(frames.astype(float), x[frames, j])
            if current is not None:
                prev_slope = current["slope"] * current["signs"][-1]                   # in box coordinates
                flips = prev_slope * own_slope < 0                                     # axes whose velocity turns
                joined = a <= current["frames"][-1] or not breaks[a - 1, j]            # a corner, or no break
                if flips.any() and len(frames) > 1 and joined:
                    wall = np.where(prev_slope > 0, 1.0 - radii[a, j], radii[a, j])    # the wall it was heading to
                    sign0, offset0 = current["signs"][-1], current["offsets"][-1]
                    sign = np.where(flips, -sign0, sign0)
                    offset = np.where(flips, 2.0 * sign0 * wall + offset0, offset0)     # u = sign x + offset
                    new = [f for f in frames if f > current["frames"][-1]]
                    t_all = np.array(current["frames"] + new, float)
                    u_all = np.concatenate([current["u"], sign * x[new, j] + offset])
                    slope, line, sse = _fit(t_all, u_all)
                    if sse <= current["sse"] + own_sse + penalty:
                        current["frames"] += new
                        current["u"] = u_all
                        current["signs"].append(sign)
                        current["offsets"].append(offset)
                        current["walls"].append((flips, sign0 * wall + offset0))       # the wall, in u
                        current.update(slope=slope, line=line, sse=sse)
                        continue
                groups.append(current)
            current = {"frames": list(frames), "u": x[frames, j].copy(), "signs": [np.ones(2)], "offsets": [np.zeros(2)],
                       "walls": [], "slope": own_slope, "line": own_line, "sse": own_sse}
        groups.append(current)
        for g in groups:
            if len(g["frames"]) < min_frames:
                continue
            frames = np.array(g["frames"])
            sign = np.ones((len(frames), 2))
            for flips, wall in g["walls"]:                                              # past a wall on the line:
                beyond = (g["line"](frames) - wall) * np.sign(g["slope"]) > 0           # the mirrored side
                sign = np.where(flips & beyond, -sign, sign)
            out[frames, j] = sign * g["slope"]
    return out


def velocities(x: np.ndarray, dt: float, method: str, breaks: np.ndarray, penalty: float,
               corner: float, radii: np.ndarray) -> np.ndarray:
    """(T, n, K, 2) velocity at every frame from the positions x (T, n, K, 2); NaN where undefined
    (a velocity never reads across a break (T - 1, n, K) of the track).

    difference: v_t = (x_{t+1} - x_t) / dt, exact between collisions (the simulator moves
        x_{t+1} = x_t + dt v_t), wrong across one, undefined at the last frame.
    segments: between collisions a ball moves on a straight line at constant speed; each track is
        cut into straight segments (segments(), `penalty` per segment; corners() with tolerance
        `corner`), segments joined across wall bounces (fold_walls(); radii (T, n, K)), and v_t is
        the slope of the line through the segment that holds frame t (the step t -> t + 1, or the
        last step before a jump); undefined on a segment of fewer than MIN_SEGMENT frames."""
    if method == "difference":
        v = np.full(x.shape, np.nan)
        v[:-1] = np.where(breaks[..., None], np.nan, (x[1:] - x[:-1]) / dt)
        return v
    T = len(x)
    flat, flat_breaks = x.reshape(T, -1, 2), breaks.reshape(T - 1, -1)            # (T, n K, 2)
    first, last = corners(flat, *segments(flat, flat_breaks, penalty), flat_breaks, corner)
    return (fold_walls(flat, first, last, flat_breaks, radii.reshape(T, -1), penalty, MIN_SEGMENT) / dt).reshape(x.shape)


def unbroken(tracks: dict) -> np.ndarray:
    """(T - 1, n, K) bool: component k is present in frames t and t + 1 and moved less than
    JUMP_RADII of its radius between them. tracks: positions (T, n, K, 2), radii, present (T, n, K)."""
    x, present = tracks["positions"], tracks["present"]
    move = np.linalg.norm(x[1:] - x[:-1], axis=-1)                                     # (T-1, n, K)
    return present[1:] & present[:-1] & (move < JUMP_RADII * tracks["radii"][1:])


def steady(tracks: dict, n_balls: int) -> np.ndarray:
    """(T, n) bool: frame t of sequence n has exactly n_balls components present, each of them
    unbroken since frame t - 1 (frame 0: the count alone)."""
    present = tracks["present"]
    ok = present.sum(axis=2) == n_balls                                                # (T, n)
    ok[1:] &= (~present[1:] | unbroken(tracks)).all(axis=2)
    return ok


def breaks_of(tracks: dict, ok: np.ndarray) -> np.ndarray:
    """(T - 1, n, K) bool: component k's track is broken between frames t and t + 1: not
    unbroken(), or either frame not steady (ok (T, n))."""
    return ~(unbroken(tracks) & ok[1:, :, None] & ok[:-1, :, None])


def usable_windows(tracks: dict, v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(T - 1, n) bool: the transition t -> t + 1 of sequence n is a training window: frames t
    and t + 1 are steady (ok (T, n), from steady()) and every present component has a velocity
    (not NaN) at both (a velocity reads only positions of its unbroken track)."""
    defined = (~np.isnan(v).any(-1) | ~tracks["present"]).all(-1)                      # (T, n)
    return ok[:-1] & ok[1:] & defined[:-1] & defined[1:]


def window_states(tracks: dict, v: np.ndarray, windows: np.ndarray, n_balls: int, with_radius: bool):
    """(inputs, targets) (M, n_balls, D), D = 4 (x, y, vx, vy) or 5 (+ r): the states of the
    present components at t and t + 1 for every window (t, n) of windows (T - 1, n), in slot order
    (the same slots at t and t + 1: the window is steady). Also (t, n) of each (M, 2)."""
    t, n = np.nonzero(windows)
    slots = np.argsort(~tracks["present"][t, n], axis=1, kind="stable")[:, :n_balls]   # (M, k) present slots
    parts = []
    for s in (t, t + 1):
        x = np.take_along_axis(tracks["positions"][s, n], slots[..., None], axis=1)    # (M, k, 2)
        vel = np.take_along_axis(v[s, n], slots[..., None], axis=1)
        cols = [x, vel] + ([np.take_along_axis(tracks["radii"][t, n], slots, axis=1)[..., None]] if with_radius else [])
        parts.append(np.concatenate(cols, axis=-1))
    return parts[0], parts[1], np.stack([t, n], axis=1)


def state_errors(inputs: np.ndarray, where: np.ndarray, truth: np.ndarray, radius_truth: np.ndarray) -> dict:
    """Measurement only (never used to train or select): each window's input states (M, k, D)
    against the true states of the same frame, truth (T, n, B, 4) and radii (n, B): every component
    matched to its nearest true ball. Returns mean position error, mean velocity error, its ratio to
    the mean true speed, mean |radius error| (D = 5), and the fraction of windows whose components
    sit within one radius of distinct balls (identified) ."""
    t, n = where[:, 0], where[:, 1]
    balls = truth[t, n]                                                                # (M, B, 4)
    d = np.linalg.norm(inputs[:, :, None, :2] - balls[:, None, :, :2], axis=-1)        # (M, k, B)
    match = d.argmin(axis=2)                                                           # (M, k)
    true = np.take_along_axis(balls, match[..., None], axis=1)                         # (M, k, 4)
    position = np.linalg.norm(inputs[..., :2] - true[..., :2], axis=-1)
    velocity = np.linalg.norm(inputs[..., 2:4] - true[..., 2:4], axis=-1)
    r_true = np.take_along_axis(radius_truth[n], match, axis=1)                        # (M, k)
    distinct = (np.diff(np.sort(match, axis=1), axis=1) > 0).all(axis=1)                 # (M,) no ball twice
    identified = distinct & (position < r_true).all(axis=1)
    out = {"position_error": float(position.mean()), "velocity_error": float(velocity.mean()),
           "velocity_error_over_speed": float(velocity.mean() / np.linalg.norm(true[..., 2:4], axis=-1).mean()),
           "identified_fraction": float(identified.mean())}
    if inputs.shape[-1] == 5:
        out["radius_error"] = float(np.abs(inputs[..., 4] - r_true).mean())
    return out
