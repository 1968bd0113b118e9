"""The simulator: vectorised code against a plain per-sequence loop, physics invariants, placement."""
import math

import numpy as np
import pytest

from rnem import simulator


def simulate_one_sequence(pos, vel, n_steps, dt, radius):
    """Plain reference: one sequence, Python floats, the same update rules written out."""
    pos = [list(map(float, p)) for p in pos]
    vel = [list(map(float, v)) for v in vel]
    k = len(pos)
    lo, hi = radius, 1.0 - radius
    states = []
    for _ in range(n_steps):
        states.append([p + v for p, v in zip(pos, vel)])
        for b in range(k):
            for a in range(2):
                pos[b][a] += vel[b][a] * dt
        for i in range(k):
            for j in range(i + 1, k):
                ox, oy = pos[j][0] - pos[i][0], pos[j][1] - pos[i][1]
                dist = math.sqrt(ox * ox + oy * oy)
                rvx, rvy = vel[j][0] - vel[i][0], vel[j][1] - vel[i][1]
                if dist < 2 * radius and rvx * ox + rvy * oy < 0 and dist > 0:
                    nx, ny = ox / dist, oy / dist
                    along = (vel[i][0] - vel[j][0]) * nx + (vel[i][1] - vel[j][1]) * ny
                    vel[i] = [vel[i][0] - along * nx, vel[i][1] - along * ny]
                    vel[j] = [vel[j][0] + along * nx, vel[j][1] + along * ny]
                    half = 0.5 * (2 * radius - dist)
                    pos[i] = [pos[i][0] - half * nx, pos[i][1] - half * ny]
                    pos[j] = [pos[j][0] + half * nx, pos[j][1] + half * ny]
        for b in range(k):
            for a in range(2):
                while pos[b][a] < lo or pos[b][a] > hi:
                    if pos[b][a] < lo:
                        pos[b][a], vel[b][a] = 2 * lo - pos[b][a], abs(vel[b][a])
                    else:
                        pos[b][a], vel[b][a] = 2 * hi - pos[b][a], -abs(vel[b][a])
    return np.array(states)                                   # (n_steps, k, 4)


@pytest.mark.parametrize("k", [3, 4, 6])
def test_vectorised_simulator_equals_per_sequence_loop(k):
    rng = np.random.default_rng(k)
    pos, vel = simulator.initial_state(12, k, 0.11, rng)
    states = simulator.simulate(pos, vel, 40, 0.05, 0.11)
    for s in range(12):
        reference = simulate_one_sequence(pos[s], vel[s], 40, 0.05, 0.11)
        # same operations in the same order on IEEE doubles: equal up to the last bit
        np.testing.assert_allclose(states[:, s], reference, rtol=0, atol=1e-12)


def test_simulator_has_collisions_to_compare():
    """The comparison above is only meaningful if ball-ball and wall events happen."""
    pos, vel = simulator.initial_state(12, 6, 0.11, np.random.default_rng(6))
    _, events = simulator.simulate(pos, vel, 40, 0.05, 0.11, return_events=True)
    assert events["pair"].sum() > 10 and events["wall"].sum() > 10


@pytest.mark.parametrize("k", [3, 4, 6, 8])
def test_containment_energy_and_start(k):
    rng = np.random.default_rng(100 + k)
    pos, vel = simulator.initial_state(200, k, 0.11, rng)
    # start: centres inside, at least 2.2 r apart, speeds in [0.6, 1.0]
    assert pos.min() >= 0.11 and pos.max() <= 0.89
    gaps = np.linalg.norm(pos[:, :, None] - pos[:, None, :], axis=-1) + np.eye(k) * 9
    assert gaps.min() >= 2.2 * 0.11
    speed = np.linalg.norm(vel, axis=-1)
    assert speed.min() >= 0.6 and speed.max() <= 1.0
    states = simulator.simulate(pos, vel, 60, 0.05, 0.11)
    # containment holds exactly: every recorded centre lies in [r, 1 - r]
    assert states[..., :2].min() >= 0.11 and states[..., :2].max() <= 0.89
    # equal masses: total kinetic energy per sequence is conserved (to rounding)
    energy = (states[..., 2:] ** 2).sum(axis=(-1, -2))           # (T, n)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[0], energy.shape), rtol=1e-12)


def test_pair_collision_conserves_momentum_and_separates():
    pos = np.array([[[0.40, 0.5], [0.60, 0.5]]])
    vel = np.array([[[0.8, 0.3], [-0.6, 0.3]]])
    states = simulator.simulate(pos, vel, 5, 0.05, 0.11)
    momentum = states[..., 2:].sum(axis=2)                      # (T, 1, 2)
    np.testing.assert_allclose(momentum, np.broadcast_to(momentum[0], momentum.shape), atol=1e-14)
    # centres level, same vy: head-on along x, the x components are exchanged in the first step
    np.testing.assert_allclose(states[1, 0, :, 2], [-0.6, 0.8], atol=1e-14)


def test_make_dataset_shape_and_determinism():
    a = simulator.make_dataset(5, 7, 3, 0.05, 0.11, np.random.default_rng(3))
    b = simulator.make_dataset(5, 7, 3, 0.05, 0.11, np.random.default_rng(3))
    assert a.shape == (5, 7, 3, 4)
    assert np.array_equal(a, b)


def test_impossible_placement_is_an_error():
    with pytest.raises(ValueError, match="cannot place 40 balls of radius 0.11"):
        simulator.initial_state(4, 40, 0.11, np.random.default_rng(0))
