"""The E-step of a spatial mixture of Bernoulli components, shared by the paper's network
(rnem/network.py) and the E-step tracker on frames (rnem/tracker.py)."""
from __future__ import annotations

import numpy as np


def e_step(x: np.ndarray, psi: np.ndarray, floor: float, background: float | None = None) -> np.ndarray:
    """gamma (n, K, ...): the posterior of each component for each pixel of the binary frames x
    (n, ...) under Bernoulli likelihoods psi (n, K, ...) with equal mixing weights:
    gamma_k = l_k / sum_j l_j with l_k = psi_k^x (1 - psi_k)^(1 - x) + floor. With background = p,
    one more component (the last) lights every pixel with probability p: gamma is (n, K + 1, ...).
    Sums to 1 over the components at every pixel."""
    x = x[:, None]                                                          # (n, 1, ...)
    like = np.where(x, psi, 1.0 - psi)                                      # (n, K, ...)
    if background is not None:
        like = np.concatenate([like, np.where(x, background, 1.0 - background)], axis=1)   # (n, K + 1, ...)
    like = like + floor
    return like / like.sum(axis=1, keepdims=True)
