"""The simulator recipe: its blocks' gradients, the physics it promises by construction, balls
with mass in the simulator, and the measures that fit a chaotic system."""
import json
import math

import numpy as np
import pytest

import relational_nem_bouncing_balls as R
from rnem import balls, rollout_measures, simulator, simulator_model, state_models, state_training
from rnem.balls import HEAVY_MASS
from conftest import MAIN, run_script
from rnem.gradcheck import numerical_grad, rel_error

RADIUS, DT = 0.11, 0.05


def sequences(n, k, masses, seed=0, steps=12):
    """(S, S_next) (n (steps-1), K, D) transitions of fresh simulated sequences."""
    states, _ = simulator.simulate_sequences(n, steps, k, DT, RADIUS, np.random.default_rng(seed), masses)
    D = states.shape[-1]
    return states[:-1].reshape(-1, k, D), states[1:].reshape(-1, k, D)


def soft_model(kind, seed=1, hidden=8):
    model = simulator_model.SimulatorModel(kind, hidden, RADIUS, DT, rng=np.random.default_rng(seed))
    model.hard_gates = False
    for name in model.blocks:                     # gates near 0.5: every branch of the gradient is exercised
        model.params[f"{name}.b{model.n_layers - 1}"][...] = 0.0
    if kind == "relational":
        model.params["mass.alpha"][...] = -1.3
    model.loss_scale = np.array([3.0, 0.5])
    return model


def test_gate_mlp_gradients():
    rng = np.random.default_rng(0)
    P = {"g.W0": rng.standard_normal((3, 5)), "g.b0": rng.standard_normal(5),
         "g.W1": rng.standard_normal((5, 1)), "g.b1": rng.standard_normal(1)}
    x, dgate = rng.standard_normal((7, 3)), rng.standard_normal(7)

    def f():
        return float((simulator_model.gate_mlp_forward(P, "g", x, 2)[0] * dgate).sum())
    G = {name: np.zeros_like(value) for name, value in P.items()}
    _, cache = simulator_model.gate_mlp_forward(P, "g", x, 2)
    dx = simulator_model.gate_mlp_backward(dgate, cache, "g", 2, G)
    for name in P:
        assert rel_error(G[name], numerical_grad(f, P[name])) < 1e-7, name      # float64 centred differences
    assert rel_error(dx, numerical_grad(f, x)) < 1e-7


@pytest.mark.parametrize("masses", [False, True])
@pytest.mark.parametrize("kind", ["non_relational", "relational"])
def test_full_one_step_loss_gradient(kind, masses):
    # non_relational: the wall block alone; relational: walls, pairs and the learned inverse masses
    model = soft_model(kind)
    S, T = sequences(6, 5, masses)
    _, grad = model.loss_and_grads(S, T)
    numeric = numerical_grad(lambda: model.loss_and_grads(S, T)[0], model.flat)
    assert rel_error(grad, numeric) < 1e-7
    if kind == "relational" and masses:
        assert abs(model.layout.views(grad)["mass.alpha"][0]) > 1e-6          # the mass path is exercised


def test_permutation_of_balls_permutes_the_step():
    model = soft_model("relational")
    S, _ = sequences(4, 5, True)
    perm = np.array([3, 0, 4, 1, 2])
    out, _ = model.step_forward(S)
    out_perm, _ = model.step_forward(S[:, perm])
    np.testing.assert_allclose(out_perm, out[:, perm], rtol=0, atol=1e-14)


def test_far_from_walls_and_partners_a_ball_flies_exactly_straight():
    model = simulator_model.SimulatorModel("relational", 8, RADIUS, DT, rng=np.random.default_rng(0))   # hard gates
    model.params["pair.b2"][...] = 50.0           # every pair gate within reach would fire ...
    S = np.array([[[0.3, 0.5, 0.5, 0.2], [0.75, 0.5, -0.3, 0.4]]])              # ... but these are 0.45 apart
    out, cache = model.step_forward(S)
    assert not cache[1][1].any()                  # no pair within reach
    np.testing.assert_array_equal(out[..., :2], S[..., :2] + DT * S[..., 2:4])
    np.testing.assert_array_equal(out[..., 2:4], S[..., 2:4])


def test_masked_pairs_contribute_exactly_zero():
    model = soft_model("relational")
    S = np.array([[[0.2, 0.2, 0.5, 0.2], [0.8, 0.8, -0.3, 0.4], [0.45, 0.5, 0.3, 0.0], [0.62, 0.5, -0.3, 0.0]]])
    x, v, r = S[..., :2], S[..., 2:4], model.radii(S)
    dpos, dv, cache = model.pairs_forward(x, v, x + DT * v, r)
    near = cache[1]
    assert near[0, 2, 3] and near[0, 3, 2] and near.sum() == 2                # only the close pair
    np.testing.assert_array_equal(dv[0, :2], 0.0)
    np.testing.assert_array_equal(dpos[0, :2], 0.0)
    assert np.abs(dv[0, 2:]).max() > 0


def test_pair_impulses_conserve_momentum_by_construction():
    model = soft_model("relational")
    model.params["mass.alpha"][...] = -math.log(HEAVY_MASS)   # the true masses
    S, _ = sequences(20, 6, True, steps=30)
    x, v, r = S[..., :2], S[..., 2:4], model.radii(S)
    _, dv, cache = model.pairs_forward(x, v, x + DT * v, r)
    assert (cache[2] > 0.01).sum() > 50           # many active pairs
    mass = balls.ball_masses(S, RADIUS)
    np.testing.assert_allclose(mass / mass[..., :1], (1.0 / cache[5]) / (1.0 / cache[5][..., :1]), rtol=1e-12)
    momentum_change = ((1.0 / cache[5])[..., None] * dv).sum(axis=1)            # sum_k m_k dv_k
    np.testing.assert_allclose(momentum_change, 0.0, atol=1e-13)


def test_hard_gate_rollouts_keep_the_energy_exactly():
    model = simulator_model.SimulatorModel("relational", 8, RADIUS, DT, rng=np.random.default_rng(3))
    model.params["pair.b2"][...] = 0.5            # an untrained model whose gates fire often
    model.params["wall.b2"][...] = 0.5
    states, _ = simulator.simulate_sequences(10, 2, 6, DT, RADIUS, np.random.default_rng(1), False)
    pred = state_training.rollout(model, states[0], 80)
    energy = (pred[..., 2:4] ** 2).sum(axis=(-1, -2))                           # (T, n)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[0], energy.shape), rtol=1e-12)


def test_unequal_masses_collide_elastically_by_hand():
    # heavy (m = 6) at +1 meets light (m = 1) at -1 head on: v' = 3/7 and 17/7
    radii = np.array([[balls.HEAVY_RADIUS * RADIUS, RADIUS]])
    mass = np.array([[HEAVY_MASS, 1.0]])
    pos = np.array([[[0.25, 0.5], [0.65, 0.5]]])               # 0.4 apart, closing at 2: contact in step 1
    vel = np.array([[[1.0, 0.0], [-1.0, 0.0]]])
    states, events = simulator.simulate(pos, vel, 3, DT, radii, return_events=True, mass=mass)
    assert events["pair"][1, 0, 0, 1] and not events["pair"][0].any()
    np.testing.assert_allclose(states[2, 0, :, 2], [3.0 / 7.0, 17.0 / 7.0], rtol=1e-14)
    momentum = (mass[0, :, None] * states[:, 0, :, 2:]).sum(axis=1)
    energy = (mass[0] * (states[:, 0, :, 2:] ** 2).sum(-1)).sum(-1)
    np.testing.assert_allclose(momentum, np.broadcast_to(momentum[0], momentum.shape), rtol=1e-14)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[0], energy.shape), rtol=1e-14)


def test_simulator_with_masses_conserves_energy_and_keeps_balls_inside():
    states, events = simulator.simulate_sequences(40, 150, 6, DT, RADIUS, np.random.default_rng(5), True)
    mass = balls.ball_masses(states, RADIUS)
    energy = (mass * (states[..., 2:4] ** 2).sum(-1)).sum(-1)                  # (T, n)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[0], energy.shape), rtol=1e-12)
    r = states[..., 4:5]
    assert ((states[..., :2] >= r - 1e-12) & (states[..., :2] <= 1 - r + 1e-12)).all()
    assert events["pair"].sum() > 100 and set(np.unique(r)) == {RADIUS, balls.HEAVY_RADIUS * RADIUS}


def test_chaos_measures_by_hand():
    truth = np.zeros((4, 1, 2, 4))
    truth[..., 0] = [[[0.2, 0.6]], [[0.25, 0.6]], [[0.3, 0.6]], [[0.35, 0.6]]]
    truth[..., 1] = 0.5
    truth[..., 2] = 1.0                                       # both move right at speed 1
    pred = truth.copy()
    pred[2:, 0, 0, 0] += 0.3                                  # ball 0 off by 0.3 from step 2: mean error 0.15 > r
    pred[1:, 0, 1, 2:] = [0.0, 2.0]                           # ball 1: perpendicular, twice as fast
    m = rollout_measures.long_horizon_metrics(pred, truth, RADIUS)
    assert m["horizon"] == 2 and m["horizon_censored"] == 0
    assert m["vel_cos"] == [1.0, 0.5, 0.5, 0.5]               # mean of cos 1 (ball 0) and cos 0 (ball 1)
    assert m["speed_rel_err"] == [0.0, 0.5, 0.5, 0.5]         # |2 - 1| / 1 for ball 1, 0 for ball 0
    assert m["energy_ratio"] == [1.0, 2.5, 2.5, 2.5]          # (1 + 4) / (1 + 1)
    assert np.array_equal(rollout_measures.horizon_steps(truth, truth, RADIUS), [4])          # never exceeded: T
    close = truth.copy()
    close[:, 0, 1, 0] = close[:, 0, 0, 0] + 0.18              # 0.18 < 0.9 * 2r = 0.198: overlapping
    assert rollout_measures.overlap_fraction(close, RADIUS).tolist() == [1.0] * 4
    close[:, 0, 1, 0] = close[:, 0, 0, 0] + 0.2               # 0.2: touching, not overlapping by 10 %
    assert rollout_measures.overlap_fraction(close, RADIUS).tolist() == [0.0] * 4


def test_simulator_recipe_quick_run(tmp_path):
    done = run_script(MAIN, "--recipe", "simulator", "--masses", "--quick", "--eval-k", "3,4", "--save-model",
                      "sim.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "runs" / "run_simulator_masses_quick.json").read_text())
    assert run["config"]["recipe"] == "simulator" and run["config"]["t_bptt"] == 1
    assert np.asarray(run["samples"]["truth"]).shape[-1] == 5
    long = run["long_horizon"]["4"]
    for name in ("non_relational", "relational", "constant_velocity"):
        assert 0 < long[name]["horizon"] <= long["T"] and len(long[name]["overlap_frac"]) == long["T"]
    models = state_models.load_models(str(tmp_path / "sim.npz"))
    assert sorted(models) == ["simulator.non_relational", "simulator.relational"]
    cfg = R.config_from_args(["--recipe", "simulator", "--masses", "--quick", "--eval-k", "3,4", "--no-save"])
    truth, _ = state_training.make_data(cfg)[2][4]                          # the run's K=4 evaluation sequences
    pred = state_training.rollout(models["simulator.relational"], truth[0], len(truth))
    assert rollout_measures.rollout_metrics(pred, truth)["mean_vel_mse"] == run["rollout"]["4"]["relational"]["mean_vel_mse"]
