"""Measures of a grouping and of a predicted frame: the adjusted Rand index (plain, and batched
over sequences) and the binary cross-entropy of a frame under predicted pixel probabilities."""
from __future__ import annotations

import numpy as np

BCE_CLIP = 1e-3          # BCE's probabilities are kept in [eps, 1 - eps] (one wrong certain pixel costs 6.9 nats)


def adjusted_rand_index(truth: np.ndarray, pred: np.ndarray) -> float:
    """ARI of two labelings of the same items (1: identical up to renaming; about 0: chance).
    The plain reference of ari_batch."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(table, (t, p), 1)
    comb = lambda n: n * (n - 1) / 2.0                                             # noqa: E731
    index, rows, cols, total = comb(table).sum(), comb(table.sum(1)).sum(), comb(table.sum(0)).sum(), comb(len(t))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2.0
    return 1.0 if maximum == expected else float((index - expected) / (maximum - expected))


def ari_batch(labels: np.ndarray, gamma: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(n,) ARI of the most likely component (background excluded) against the true ball over
    the kept pixels of exactly one ball; labels (n, S, S), gamma (n, K + 1, S, S), keep (n, S, S).
    Equals adjusted_rand_index per sequence (1.0 where it has fewer than two such pixels)."""
    n, k = gamma.shape[0], gamma.shape[1] - 1
    n_balls = max(int(labels.max()) + 1, 1)
    use = keep & (labels >= 0)
    seq = np.broadcast_to(np.arange(n)[:, None, None], use.shape)[use]
    cell = (seq * n_balls + labels[use]) * k + gamma[:, :-1].argmax(axis=1)[use]
    table = np.bincount(cell, minlength=n * n_balls * k).reshape(n, n_balls, k).astype(float)
    comb = lambda a: a * (a - 1) / 2.0                                             # noqa: E731
    index = comb(table).sum(axis=(1, 2))
    rows, cols = comb(table.sum(2)).sum(1), comb(table.sum(1)).sum(1)
    total = comb(table.sum(axis=(1, 2)))
    expected = np.where(total > 0, rows * cols / np.maximum(total, 1), 0.0)
    maximum = (rows + cols) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(maximum == expected, 1.0, (index - expected) / (maximum - expected))


def bce(frames: np.ndarray, prob: np.ndarray, weight: np.ndarray, clip: float = BCE_CLIP) -> np.ndarray:
    """(n,) binary cross-entropy summed over the pixels (weighted by weight (n, S, S)) of frames
    (n, S, S) under the predicted probabilities prob (n, S, S), clipped to [clip, 1 - clip]."""
    p = np.clip(prob, clip, 1.0 - clip)
    return -(weight * np.where(frames, np.log(p), np.log(1.0 - p))).sum(axis=(1, 2))
