"""Gradient checking (cs231n's way): centred finite differences in float64 of a scalar function
with respect to every element of an array, and the relative error between two gradients. With
h = 1e-6 in float64 a correct backward pass gives a relative error of about 1e-7 or less."""
from __future__ import annotations

import numpy as np


def numerical_grad(f, x, h=1e-6):
    """Centred differences of the scalar f() with respect to every element of x (changed in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def rel_error(analytic, numeric):
    """|a - n| / max(|a| + |n|, 1e-8), over the whole array (norms)."""
    return float(np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-8))
