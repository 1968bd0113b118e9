"""Binary frames of balls, as R-NEM sees them: which pixel centres each ball covers, the frame
and its true pixel labels, and the curtain (a vertical band of pixels never observed)."""
from __future__ import annotations

import numpy as np


def pixel_centres(size: int) -> np.ndarray:
    """(size, size, 2) box coordinates (x, y) of every pixel centre; row 0 is the top (y near 1)."""
    c = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(c, c[::-1])
    return np.stack([x, y], axis=-1)


def squared_distances(positions: np.ndarray, size: int) -> np.ndarray:
    """(..., K, S, S) squared distance from every pixel centre to positions (..., K, 2); the
    same as ((pixel_centres(size) - positions[..., None, None, :]) ** 2).sum(-1), built from a
    column part and a row part (a pixel's x depends on its column only, its y on its row)."""
    c = (np.arange(size) + 0.5) / size
    dx = c - positions[..., 0, None]                                                      # (..., K, S) per column
    dy = c[::-1] - positions[..., 1, None]                                                # (..., K, S) per row
    return dy[..., :, None] ** 2 + dx[..., None, :] ** 2                                  # (..., K, S, S)


def ball_pixels(positions: np.ndarray, radii, size: int) -> np.ndarray:
    """(..., K, S, S) True where the pixel centre lies inside ball k; positions (..., K, 2), radii (..., K) or scalar."""
    d2 = squared_distances(positions, size)                                               # (..., K, S, S)
    return d2 < (np.broadcast_to(radii, positions.shape[:-1]) ** 2)[..., None, None]


def render_binary(positions: np.ndarray, radii, size: int):
    """positions (..., K, 2) -> (frames (..., S, S) bool: lit where any ball covers the pixel
    centre, labels (..., S, S) int: the covering ball, -1 background, -2 covered by several)."""
    inside = ball_pixels(positions, radii, size)                                          # (..., K, S, S)
    count = inside.sum(-3)
    labels = np.where(count == 1, inside.argmax(-3), np.where(count == 0, -1, -2))
    return count > 0, labels


def curtain_mask(n: int, size: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """(n, S, S) bool, False inside a vertical band of `width` (box units) whose left edge is
    uniform in [0, 1 - width]: pixels never observed. All True for width 0."""
    left = rng.uniform(0.0, 1.0 - width, size=n)                                          # (n,)
    x = pixel_centres(size)[..., 0]                                                       # (S, S)
    band = (x >= left[:, None, None]) & (x < left[:, None, None] + width)
    return ~band if width > 0 else np.ones((n, size, size), bool)
