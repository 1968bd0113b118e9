"""The balls: the paper's two ball types (the second 1.25x the radius and 6x the mass), and each
ball's radius and mass read from a state (x, y, vx, vy) or (x, y, vx, vy, r)."""
from __future__ import annotations

import numpy as np

HEAVY_RADIUS, HEAVY_MASS = 1.25, 6.0   # the paper's second ball type: 1.25x the radius, 6x the mass


def ball_types(n: int, k: int, radius: float, rng: np.random.Generator):
    """The paper's two ball types, each ball one of them with probability 1/2: radii (n, k)
    (radius or 1.25 radius) and masses (n, k) (1 or 6)."""
    heavy = rng.random((n, k)) < 0.5
    return np.where(heavy, HEAVY_RADIUS * radius, radius), np.where(heavy, HEAVY_MASS, 1.0)


def ball_masses(states: np.ndarray, radius: float) -> np.ndarray:
    """(..., K) mass of every ball of states (..., K, D): 1, or HEAVY_MASS for the larger radius."""
    if states.shape[-1] < 5:
        return np.ones(states.shape[:-1])
    return np.where(states[..., 4] > 1.1 * radius, HEAVY_MASS, 1.0)


def ball_radii(states: np.ndarray, radius: float) -> np.ndarray:
    """(..., K) radius of every ball of states (..., K, D): the fifth component, or `radius`."""
    return states[..., 4] if states.shape[-1] == 5 else np.full(states.shape[:-1], radius)


def mirror_into_box(pos: np.ndarray, vel: np.ndarray, lo, hi):
    """One wall pass of the simulator: every centre coordinate below lo (above hi) is mirrored at
    that wall and its velocity component points inwards. pos, vel (..., 2); lo, hi broadcast to
    them (the walls for each ball's centre: r and 1 - r). Returns (pos, vel, outside (..., 2) bool:
    the coordinates that were mirrored). One pass suffices for an overshoot smaller than 1 - 3 r."""
    below, above = pos < lo, pos > hi
    pos = np.where(below, 2 * lo - pos, np.where(above, 2 * hi - pos, pos))
    vel = np.where(below, np.abs(vel), np.where(above, -np.abs(vel), vel))
    return pos, vel, below | above
