"""Scenes: sequences of binary frames of bouncing balls with everything true about them (states,
ball-ball collisions, pixel labels, the curtain), as both pixel scripts measure on them; and what
is measured from the truth: which balls hide behind the curtain, and the pixels of a collision."""
from __future__ import annotations

import numpy as np

from rnem.frames import ball_pixels, curtain_mask, render_binary
from rnem.simulator import rng_for, simulate_sequences

DT, RADIUS = 0.05, 0.11     # the simulator's time step and the ball radius (the default experiment's)


def ball_scenes(n: int, t_frames: int, k: int, size: int, seed: int, purpose: str, masses: bool = False,
                curtain: float = 0.0, frame_steps: int = 1) -> dict:
    """n sequences of k balls simulated by the project's simulator and rendered at size x size:
    states (T, n, k, D), pair events (T, n, k, k) (balls i, j collide between frames t and t+1),
    frames and labels (T, n, S, S) (the curtain's pixels dark), visible (n, S, S), radii (n, k).
    frame_steps: simulator steps of DT between two frames (2: the balls move twice as far a frame,
    with the same physics). The generators are rng_for(seed, f"{purpose}/k{k}") and
    rng_for(seed, f"{purpose}/curtain/k{k}")."""
    states, events = simulate_sequences(n, (t_frames - 1) * frame_steps + 1, k, DT, RADIUS,
                                        rng_for(seed, f"{purpose}/k{k}"), masses)
    if frame_steps > 1:                                           # every frame_steps-th state; a collision
        pair = events["pair"][:(t_frames - 1) * frame_steps]      # between two frames is one in any step between
        events = {"pair": np.concatenate([pair.reshape((t_frames - 1, frame_steps) + pair.shape[1:]).any(axis=1),
                                          events["pair"][-1:]])}
        states = states[::frame_steps]
    radii = states[0, :, :, 4] if masses else np.full((n, k), RADIUS)
    frames, labels = render_binary(states[..., :2], radii, size)
    visible = curtain_mask(n, size, curtain, rng_for(seed, f"{purpose}/curtain/k{k}"))
    return {"states": states, "pair": events["pair"], "frames": frames & visible, "labels": labels,
            "visible": visible, "radii": radii}


def hidden_fractions(scenes: dict, size: int) -> np.ndarray:
    """(T, n, B) the fraction of each ball's pixels that falls behind the curtain."""
    inside = ball_pixels(scenes["states"][..., :2], scenes["radii"], size)                # (T, n, B, S, S)
    return (inside & ~scenes["visible"][None, :, None]).sum((-2, -1)) / np.maximum(inside.sum((-2, -1)), 1)


def hidden_balls(scenes: dict, size: int):
    """(behind, hidden), both (T, n, B) bool: the ball is mostly (>= 50 %) behind the curtain;
    and it is, having been mostly in view in an earlier frame (what is measured: a ball behind
    the curtain from the first frame on was never seen, and nothing could know of it)."""
    behind = hidden_fractions(scenes, size) >= 0.5
    return behind, behind & (np.cumsum(~behind, axis=0) - ~behind > 0)


def scene_rows(scenes: dict, rows) -> dict:
    """The same scenes for the sequences `rows` only (a slice or indices): states, pair, frames and
    labels are (T, n, ...), visible and radii (n, ...)."""
    return {key: value[:, rows] if key in ("states", "pair", "frames", "labels") else value[rows]
            for key, value in scenes.items()}


def ball_disks(scenes: dict, size: int, rows=slice(None), wider: float = 0.0) -> np.ndarray:
    """(T, n, B, D) bool: the pixels of each ball's disk (its radius plus `wider` pixels) in every frame."""
    disks = ball_pixels(scenes["states"][:, rows, :, :2], scenes["radii"][rows] + wider / size, size)
    return disks.reshape(disks.shape[:3] + (-1,))


def collision_region(scenes: dict, t: int, size: int):
    """The pixels where frame t (t >= 1) shows a collision: (region (n, S, S) bool: the disks,
    one pixel wider, at frames t - 1 and t of every ball that collided between them; rows (n,)
    bool: the sequences with such a collision)."""
    states, radii = scenes["states"], scenes["radii"] + 1.0 / size
    colliding = scenes["pair"][t - 1].any(axis=2)                                          # (n, B) collided in t-1 -> t
    region = (ball_pixels(states[t, :, :, :2], radii, size) & colliding[..., None, None]).any(1)
    region |= (ball_pixels(states[t - 1, :, :, :2], radii, size) & colliding[..., None, None]).any(1)
    return region, colliding.any(axis=1)
