"""The optimizer: Adam on one flat parameter vector, and global gradient-norm clipping."""
from __future__ import annotations

import math

import numpy as np


class Adam:
    """Adam (Kingma & Ba 2015) on one flat parameter vector, updated in place:
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  theta -= lr * m_hat / (sqrt(v_hat) + eps),
    with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)."""

    def __init__(self, params: np.ndarray, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self._tmp = np.zeros_like(params)
        self.t = 0

    def step(self, grad: np.ndarray) -> None:
        self.t += 1
        b1, b2, tmp = self.beta1, self.beta2, self._tmp
        self.m *= b1
        self.m += np.multiply(grad, 1 - b1, out=tmp)
        self.v *= b2
        self.v += np.multiply(np.square(grad, out=tmp), 1 - b2, out=tmp)
        np.sqrt(self.v, out=tmp)                      # sqrt(v_hat) + eps = sqrt(v) / sqrt(1 - b2^t) + eps
        tmp *= 1.0 / math.sqrt(1 - b2 ** self.t)
        tmp += self.eps
        np.divide(self.m, tmp, out=tmp)
        tmp *= self.lr / (1 - b1 ** self.t)           # lr * m_hat / (sqrt(v_hat) + eps)
        self.params -= tmp


def clip_grad_norm(grad: np.ndarray, max_norm: float) -> float:
    """Scales grad in place to global L2 norm <= max_norm; returns the norm before clipping."""
    norm = math.sqrt(float(np.dot(grad, grad)))
    if norm > max_norm:
        grad *= max_norm / norm
    return norm
