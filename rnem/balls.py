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
