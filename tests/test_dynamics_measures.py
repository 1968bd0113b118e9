"""rnem.dynamics_measures on hand-made cases whose answers are known: a predictor that moves each
ball by exactly its displacement has motion fraction 1, one that copies the frame 0; positions,
Brier scores and attention by hand."""
import numpy as np
import pytest

from rnem import dynamics_measures as dyn
from rnem.frames import ball_pixels

SIZE = 16


def disks_of(positions, radius=0.12, wider=0.0):
    """(T, n, B, D) flat disks of balls at positions (T, n, B, 2) in box units."""
    d = ball_pixels(np.asarray(positions, float), radius + wider / SIZE, SIZE)
    return d.reshape(d.shape[:3] + (-1,))


def moving_scene(seed=0, T=6, n=5, B=3):
    """Balls on straight lines (no bounce inside the box over T frames), positions (T, n, B, 2)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.3, 0.7, size=(n, B, 2))
    vel = rng.uniform(-0.03, 0.03, size=(n, B, 2))
    return start[None] + np.arange(T)[:, None, None, None] * vel[None]


def displacements_of(predict, positions):
    """Pooled (predicted, true) displacements of a predictor predict(t) -> psi_{t+1} (n, K, D) whose
    component k owns ball k (gamma one-hot on the balls' disks)."""
    disks, wide = disks_of(positions), disks_of(positions, wider=1.0)
    visible = np.ones(disks.shape[1:2] + disks.shape[-1:], bool)
    moved, moves = [], []
    for t in range(disks.shape[0] - 1):
        gamma = disks[t].astype(float) + 1e-3                                           # (n, K = B, D)
        gamma /= gamma.sum(axis=1, keepdims=True)
        window, usable = dyn.motion_windows(disks[t], disks[t + 1], wide[t], wide[t + 1], visible)
        m, true = dyn.predicted_displacements(predict(disks, t), dyn.owners(gamma, disks[t]), disks[t],
                                              disks[t + 1], window, usable, SIZE)
        moved.append(m)
        moves.append(true)
    return np.concatenate(moved), np.concatenate(moves)


def test_motion_fraction_is_one_for_a_perfect_predictor_and_zero_for_a_copy():
    positions = moving_scene()
    perfect = dyn.motion_fraction(*displacements_of(lambda d, t: d[t + 1].astype(float), positions))
    copy = dyn.motion_fraction(*displacements_of(lambda d, t: d[t].astype(float), positions))
    assert perfect["n"] > 20 and perfect["slope"] == pytest.approx(1.0, abs=1e-12)
    assert perfect["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert copy["slope"] == 0.0 and copy["mean_predicted_px"] == 0.0
    # half way: the centroid of the two disks' mean moves about half as far (not exactly: the disks' pixels differ)
    half = dyn.motion_fraction(*displacements_of(lambda d, t: 0.5 * (d[t] + d[t + 1]), positions))
    assert 0.3 < half["slope"] < 0.7


def test_motion_fraction_ignores_other_balls_and_empty_predictions():
    positions = moving_scene(seed=1)
    # a predictor that also lights the other balls' next disks: their pixels are outside every ball's window
    others = dyn.motion_fraction(*displacements_of(lambda d, t: d[t + 1].any(axis=1, keepdims=True)
                                                   .repeat(d.shape[2], axis=1).astype(float), positions))
    assert others["slope"] == pytest.approx(1.0, abs=1e-12)
    nothing = dyn.motion_fraction(*displacements_of(lambda d, t: np.zeros(d[t].shape), positions))
    assert nothing["n"] == 0 and nothing["slope"] is None


def test_owners_pick_the_component_with_most_gamma_on_the_ball():
    disks = np.zeros((1, 2, 4), bool)
    disks[0, 0, :2], disks[0, 1, 2:] = True, True
    gamma = np.array([[[0.1, 0.2, 0.9, 0.8], [0.1, 0.1, 0.05, 0.1], [0.8, 0.7, 0.05, 0.1]]])   # (1, K = 3, D = 4)
    assert dyn.owners(gamma, disks).tolist() == [[2, 0]]


def test_centroid_and_component_positions_by_hand():
    weight = np.zeros((2, 9))
    weight[0, [0, 2]] = 1.0                                                 # (col 0, row 0) and (col 2, row 0)
    pos, mass = dyn.centroid(weight, 3)
    assert pos[0].tolist() == [1.0, 0.0] and mass.tolist() == [2.0, 0.0] and np.isnan(pos[1]).all()
    psi = np.zeros((1, 2, 9))
    psi[0, 0, 4], psi[0, 1, 4], psi[0, 1, 8] = 0.9, 0.5, 0.05             # k = 0 wins pixel 4; 8 is below 0.1
    placed = dyn.component_positions(psi, 0.1, 3, previous=np.full((1, 2, 2), 7.0))
    assert placed[0, 0].tolist() == [1.0, 1.0] and placed[0, 1].tolist() == [7.0, 7.0]


def test_brier_of_a_copy_counts_the_changed_pixels():
    a, b = np.array([[1, 0, 1, 0]], bool), np.array([[1, 1, 0, 0]], bool)
    assert dyn.brier(b, a).tolist() == [2.0]
    assert dyn.brier(b, np.full(4, 0.5)).tolist() == [1.0]


def test_attention_on_real_and_empty_components():
    attention = np.array([[[0.0, 0.6, 0.1], [0.8, 0.0, 0.3], [0.4, 0.2, 0.0]]])   # (1, K, K): a[k, i]
    real = np.array([[True, True, False]])
    out = dyn.attention_on(attention, real)
    assert out["on_real"] == pytest.approx(np.mean([0.6, 0.8, 0.4, 0.2]))
    assert out["on_empty"] == pytest.approx(np.mean([0.1, 0.3]))
    assert out["sum_over_others"] == pytest.approx(np.mean([0.7, 1.1, 0.6]))
    gamma = np.zeros((1, 3, 10))
    gamma[0, 0, :4], gamma[0, 1, 4:6], gamma[0, 2, 6:] = 1.0, 1.0, 1.0
    frame = np.zeros((1, 10), bool)
    frame[0, :6] = True
    assert dyn.real_components(gamma, frame, area=4.0).tolist() == [[True, True, False]]


def test_attention_around_collisions_a_network_that_attends_only_to_a_collision():
    # 3 balls owned by components 2, 0, 1 of K = 4 (component 3 empty); balls 0 and 1 collide at step 3
    T, K = 8, 4
    owner = np.tile(np.array([2, 0, 1]), (T, 1, 1))                                  # (T, N=1, B=3)
    owned = np.ones((T, 1, 3), bool)
    pair = np.zeros((T, 1, 3, 3), bool)
    pair[3, 0, 0, 1] = pair[3, 0, 1, 0] = True
    attention = np.full((T, 1, K, K), 0.1)
    attention[4, 0, 2, 0] = attention[4, 0, 0, 2] = 0.9                             # components of balls 0, 1, one step after
    out = dyn.attention_around_collisions(attention, owner, owned, pair, lags=(-1, 0, 1, 2))
    assert out["by_lag"] == {"-1": pytest.approx(0.1), "0": pytest.approx(0.1), "1": pytest.approx(0.9),
                             "2": pytest.approx(0.1)}
    assert out["on_colliding"] == pytest.approx(0.1) and out["n_colliding"] == 2       # both orders of the pair
    # apart: every other (step, ordered pair) of distinct owners, outside steps 1..5 for balls 0 and 1
    assert out["on_apart"] == pytest.approx(0.1) and out["n_apart"] == T * 6 - 5 * 2
    owner[4, 0, 1] = 2                                                                 # one component owns both balls
    assert dyn.attention_around_collisions(attention, owner, owned, pair, lags=(1,))["by_lag"]["1"] is None
    owned[:] = False
    assert dyn.attention_around_collisions(attention, owner, owned, pair)["on_apart"] is None


def test_attention_around_collisions_equals_a_loop_over_steps_and_pairs():
    rng = np.random.default_rng(0)
    T, N, B, K, lags = 9, 5, 4, 6, (-2, 0, 3)
    attention = rng.random((T, N, K, K))
    owner = rng.integers(0, K, (T, N, B))
    owned = rng.random((T, N, B)) < 0.8
    pair = rng.random((T, N, B, B)) < 0.05
    out = dyn.attention_around_collisions(attention, owner, owned, pair, lags)
    ok = lambda t, n, b, c: owned[t, n, b] and owned[t, n, c] and owner[t, n, b] != owner[t, n, c]  # noqa: E731
    a = lambda t, n, b, c: attention[t, n, owner[t, n, b], owner[t, n, c]]                        # noqa: E731
    cells = [(t, n, b, c) for t in range(T) for n in range(N) for b in range(B) for c in range(B)]
    for L in lags:
        w = [a(*x) for x in cells if ok(*x) and 0 <= x[0] - L < T and pair[x[0] - L, x[1], x[2], x[3]]]
        assert out["by_lag"][str(L)] == pytest.approx(np.mean(w))
    far = [a(*x) for x in cells if ok(*x) and not any(pair[s, x[1], x[2], x[3]] for s in range(T) if abs(s - x[0]) <= 3)]
    assert out["on_apart"] == pytest.approx(np.mean(far)) and out["n_apart"] == len(far)
