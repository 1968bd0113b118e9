"""Collision events, the collision-aware metrics, the baselines, and the multi-seed sweep."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

import relational_nem_bouncing_balls as R
from rnem import (cli, files, rollout_measures, simulator, state_config, state_evaluation, state_models, state_training,
                  sweeps)
from conftest import ROOT, assert_one_line_error, call_main, draw_figures

R_, DT = 0.11, 0.05


def test_events_of_a_head_on_collision():
    # centres 0.4 apart closing at 2 per unit time: 0.3 after step 0, 0.2 < 2r during step 1
    pos = np.array([[[0.3, 0.5], [0.7, 0.5]]])
    vel = np.array([[[1.0, 0.0], [-1.0, 0.0]]])
    states, events = simulator.simulate(pos, vel, 4, DT, R_, return_events=True)
    expected = np.zeros((4, 1, 2, 2), bool)
    expected[1, 0, 0, 1] = expected[1, 0, 1, 0] = True
    np.testing.assert_array_equal(events["pair"], expected)
    assert not events["wall"].any()
    np.testing.assert_allclose(states[2, 0, :, 2], [-1.0, 1.0])      # velocities exchanged in step 1


def test_events_of_a_wall_bounce():
    # x: 0.2 -> 0.15 -> 0.10 (< r during step 1: mirrored to 0.12, vx = +1) -> 0.17
    states, events = simulator.simulate(np.array([[[0.2, 0.5]]]), np.array([[[-1.0, 0.0]]]), 4, DT, R_,
                                return_events=True)
    np.testing.assert_array_equal(events["wall"][:, 0, 0], [False, True, False, False])
    assert not events["pair"].any()
    np.testing.assert_allclose(states[:, 0, 0, 0], [0.2, 0.15, 0.12, 0.17])
    np.testing.assert_allclose(states[2:, 0, 0, 2], [1.0, 1.0])


def test_constant_velocity_equals_simulator_when_no_balls_touch():
    # two balls on horizontal lanes far apart: walls only
    pos = np.array([[[0.3, 0.2], [0.6, 0.8]]])
    vel = np.array([[[0.9, 0.0], [-0.7, 0.0]]])
    truth, events = simulator.simulate(pos, vel, 60, DT, R_, return_events=True)
    assert events["wall"].any() and not events["pair"].any()
    predictors = state_evaluation.make_predictors({}, state_config.Config())
    rollout_fn, step_fn = predictors["constant_velocity"]
    np.testing.assert_array_equal(rollout_fn(truth[0], 60), truth)
    np.testing.assert_array_equal(step_fn(truth[:-1].reshape(-1, 2, 4)), truth[1:].reshape(-1, 2, 4))


def test_uninformed_guess():
    init = np.random.default_rng(0).uniform(size=(3, 2, 4))
    pred = state_evaluation.make_predictors({}, state_config.Config())["uninformed"][0](init, 4)
    np.testing.assert_array_equal(pred[0], init)
    assert (pred[1:] == state_evaluation.UNINFORMED_STATE).all()


def test_wasserstein1_and_pair_distances_by_hand():
    assert rollout_measures.wasserstein1(np.array([[0.0, 1.0]]), np.array([[2.0, 1.0]])).tolist() == [1.0]
    assert rollout_measures.wasserstein1(np.array([[0.0, 3.0]]), np.array([[0.0, 1.0]])).tolist() == [1.0]   # |0-0| + |3-1| over 2
    states = np.zeros((1, 1, 3, 4))
    states[0, 0, :, :2] = [[0, 0], [3, 4], [0, 1]]
    np.testing.assert_allclose(rollout_measures.pair_distances(states), [[5.0, 1.0, math.sqrt(9 + 9)]])


def test_long_horizon_metrics_by_hand():
    truth = np.zeros((1, 1, 2, 4))
    truth[0, 0, :, :2] = [[0.5, 0.5], [0.2, 0.2]]
    truth[0, 0, :, 2:] = [[1.0, 0.0], [0.0, 1.0]]
    pred = truth.copy()
    pred[0, 0, 1, 0] = 0.05                       # ball 1's centre at x = 0.05 < r: overlaps the wall
    pred[0, 0, :, 2:] *= 2                        # doubled speeds: 4x the kinetic energy
    m = rollout_measures.long_horizon_metrics(pred, truth, R_)
    assert m["outside_frac"] == [0.5]
    assert m["energy_ratio"] == [4.0]
    assert m["speed_w1"] == [1.0]                 # speeds {2, 2} vs {1, 1}
    assert m["vel_err"] == [1.0]                  # |(1, 0)| and |(0, 1)|
    np.testing.assert_allclose(m["pair_dist_w1"], [abs(math.hypot(0.45, 0.3) - math.hypot(0.3, 0.3))])


def test_post_collision_mask_and_error_by_hand():
    pair = np.zeros((6, 1, 3, 3), bool)
    pair[1, 0, 0, 1] = pair[1, 0, 1, 0] = True    # balls 0 and 1 collide during step 1 -> 2
    mask = rollout_measures.post_collision_mask(pair, window=2)
    expected = np.zeros((6, 1, 3), bool)
    expected[2:4, 0, :2] = True                   # states 2 and 3 of balls 0 and 1
    np.testing.assert_array_equal(mask, expected)
    truth = np.zeros((6, 1, 3, 4))
    pred = truth.copy()
    pred[2, 0, 0, 2:] = [2.0, 0.0]                # one counted entry off by 4 in vx^2
    pred[5, 0, 2, 2:] = [9.0, 9.0]                # not counted
    assert rollout_measures.masked_vel_mse(pred, truth, mask) == 4.0 / (4 * 2)
    assert rollout_measures.masked_vel_mse(pred, truth, np.zeros_like(mask)) is None


def test_one_step_by_event_by_hand():
    truth = np.zeros((2, 1, 3, 4))
    events = {"wall": np.zeros((2, 1, 3), bool), "pair": np.zeros((2, 1, 3, 3), bool)}
    events["pair"][0, 0, 0, 1] = events["pair"][0, 0, 1, 0] = True   # balls 0, 1: ball-ball
    events["wall"][0, 0, [0, 2]] = True                              # ball 0 also at a wall: counts as ball
    offsets = np.array([[1.0, 0, 2.0, 0], [0, 0, 0, 4.0], [0, 3.0, 1.0, 1.0]])

    def step(S):
        return S + offsets
    out = rollout_measures.one_step_by_event(step, truth, events)
    assert out["ball"] == {"pos_mse": 0.25, "vel_mse": (4 + 16) / 4, "count": 2}
    assert out["wall"] == {"pos_mse": 4.5, "vel_mse": 1.0, "count": 1}
    assert out["free"] == {"pos_mse": None, "vel_mse": None, "count": 0}


def test_mean_interval():
    m = sweeps.mean_interval([1.0, 2.0, 3.0])
    assert m["mean"] == 2.0 and m["std"] == 1.0
    np.testing.assert_allclose(m["ci95"], [2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)])
    assert sweeps.mean_interval([5.0]) == {"mean": 5.0, "std": None, "ci95": None}


TINY = state_config.Config(epochs=1, n_train=16, n_val=4, n_eval=4, t_eval=8, t_long=12, eval_k=(3, 4), n_samples=1, jobs=2)


def test_the_sweep_compares_the_main_scripts_predictors():
    assert sweeps.PREDICTORS == state_evaluation.PREDICTORS == state_config.MODEL_KINDS + state_evaluation.BASELINES


def test_two_seed_sweep_equals_single_runs_and_aggregate(tmp_path):
    cfg = dataclasses.replace(TINY, seeds="0,1", seed_dir=str(tmp_path / "runs"))
    summary = R.run_sweep(cfg, log=lambda *_: None)
    assert summary["seeds"] == [0, 1] and summary["failed"] == {} and summary["timing"]["workers"] == 2
    for seed in (0, 1):
        with open(sweeps.seed_file(cfg.seed_dir, seed)) as f:
            swept = json.load(f)
        single = R.run(dataclasses.replace(TINY, seed=seed, jobs=1), log=None)
        for key in ("history", "rollout", "one_step", "long_horizon", "samples"):
            assert swept[key] == single[key], key
    rebuilt = sweeps.aggregate_files([sweeps.seed_file(cfg.seed_dir, s) for s in (1, 0)])
    summary.pop("timing")
    assert json.loads(json.dumps(rebuilt)) == json.loads(json.dumps(summary))
    k = "4"
    values = []
    for seed in (0, 1):
        with open(sweeps.seed_file(cfg.seed_dir, seed)) as f:
            values.append(json.load(f)["rollout"][k])
    rel = [v["relational"]["mean_vel_mse"] for v in values]
    non = [v["non_relational"]["mean_vel_mse"] for v in values]
    assert summary["summary"][k]["vel_mse"]["relational"]["mean"] == pytest.approx(np.mean(rel))
    assert summary["wins"][k] == {}                                # the stub's measures are all chaotic
    assert summary["ratio"][k]["vel_mse"]["mean"] == pytest.approx(np.mean([r / n for r, n in zip(rel, non)]))
    assert summary["summary"][k]["vel_mse"]["relational"]["per_seed"] == rel
    assert summary["chaotic_metrics"] == list(sweeps.CHAOTIC_METRICS["stub"])
    for metric in sweeps.CHAOTIC_METRICS["stub"]:                        # a mean with its interval, no win count
        assert metric not in summary["wins"][k] and summary["summary"][k][metric]["relational"]["ci95"] is not None
    assert set(summary["summary"][k]["vel_mse"]) == set(state_evaluation.PREDICTORS)
    assert set(summary["summary"][k]["long_outside_frac"]) == {"non_relational", "relational", "constant_velocity"}
    # the visualize script draws a summary when given one
    # every stub measure is chaotic: no win count, so no wins figure
    assert draw_figures(json.loads(json.dumps(summary)), tmp_path / "figs") == ["sweep_summary.png"]


def diverging_second_seed(job):
    """A sweep job (run in a new process, so defined at module level) whose seed 1 diverges."""
    if job[0].seed == 1:
        job = (dataclasses.replace(job[0], lr=1e30),) + job[1:]
    return R._sweep_job(job)


def test_failed_seed_is_reported_not_dropped(tmp_path):
    cfg = dataclasses.replace(TINY, seeds="0-1", seed_dir=str(tmp_path / "runs"))
    summary = R.run_sweep(cfg, log=lambda *_: None, job_fn=diverging_second_seed)
    assert summary["seeds"] == [0] and summary["n_seeds"] == 1
    assert list(summary["failed"]) == ["1"]
    assert "training diverged (non-finite loss) in epoch 1; try a smaller --lr" in summary["failed"]["1"]
    assert sweeps.aggregate_files([sweeps.seed_file(cfg.seed_dir, s) for s in (0, 1)])["failed"] == summary["failed"]


@pytest.mark.parametrize("args,message", [
    (["--seeds", "1-"], "--seeds must be non-negative integers and ranges"),
    (["--seeds", "5-2"], "--seeds must be non-negative integers and ranges"),
    (["--seeds", "a"], "--seeds must be non-negative integers and ranges"),
    (["--seeds", "0,0-2"], "--seeds lists a seed twice"),
    (["--t-long", "20"], "--t-long must be at least --t-eval = 30 (got 20)"),
    (["--seeds", "0-1", "--seed-dir", "no/such/dir"], "--seed-dir no/such/dir: parent folder"),
    (["--aggregate", "missing.json"], "--aggregate missing.json: file not found"),
    (["--aggregate", "bad.json"], "--aggregate bad.json: not a per-seed JSON"),
    (["--aggregate", "other.json"], "--aggregate other.json: missing rollout, one_step, long_horizon"),
    (["--seeds", "0-1", "--aggregate", "other.json"], "--seeds and --aggregate cannot be combined"),
    (["--eval-k", "3,1"], "--eval-k values must be at least 2"),
])
def test_bad_sweep_input(tmp_path, args, message, capsys, monkeypatch):
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "other.json").write_text(json.dumps({"config": {"seed": 3}}))
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(call_main(R.main, args, tmp_path, capsys, monkeypatch), message)
    assert sorted(os.listdir(tmp_path)) == before


def test_aggregate_rejects_mixed_configs(tmp_path):
    a = R.run(dataclasses.replace(TINY, seed=0, jobs=1), log=None)
    b = R.run(dataclasses.replace(TINY, seed=1, jobs=1, lr=1e-3), log=None)
    for seed, payload in ((0, a), (1, b)):
        files.write_json_atomic(str(tmp_path / f"seed_{seed}.json"), payload)
    with pytest.raises(cli.ConfigError, match=r"seed 1 was run with a different config \(lr\)"):
        sweeps.aggregate_files([str(tmp_path / "seed_0.json"), str(tmp_path / "seed_1.json")])


def test_variant_sweep_reuses_the_non_relational_model_and_draws(tmp_path):
    cfg = dataclasses.replace(TINY, seeds="0", agg="mean,attention", curriculum="2,3",
                              seed_dir=str(tmp_path / "runs"))
    summary = R.run_sweep(cfg, log=lambda *_: None)
    assert set(summary["variants"]) == {"mean", "attention", "mean+curriculum", "attention+curriculum"}
    assert summary["seeds"] == [0]

    def load(variant, seed=0):
        with open(sweeps.seed_file(cfg.seed_dir, seed, variant)) as f:
            return json.load(f)
    mean, attention, curriculum = load("mean"), load("attention"), load("attention+curriculum")
    # one non-relational model per seed and training regime, shared by the variants
    assert mean["history"]["non_relational"] == attention["history"]["non_relational"]
    assert attention["params"] == {"non_relational": 4740, "relational": 8301}
    assert curriculum["config"]["k_train"] == [2, 3] and set(curriculum["history"]["relational"]["batch_k"]) == {2, 3}
    assert np.asarray(attention["samples"]["attention"]).shape == (TINY.t_eval, TINY.n_samples, 4, 4)
    # a variant's file equals the single run of that configuration
    single = R.run(dataclasses.replace(TINY, seed=0, agg="attention", jobs=1), log=None)
    for key in ("history", "rollout", "one_step", "long_horizon", "samples", "attention"):
        assert attention[key] == json.loads(json.dumps(single[key])), key
    files = [sweeps.seed_file(cfg.seed_dir, 0, v) for v in summary["variants"]]
    summary.pop("timing")
    assert json.loads(json.dumps(sweeps.aggregate_files(files))) == json.loads(json.dumps(summary))
    # figures: the variant comparison for the summary, the attention figures for an attention run
    assert draw_figures(json.loads(json.dumps(summary)), tmp_path / "figs", ["sweep_variants.png"]) == \
        ["sweep_variants.png"]
    wanted = ["attention_frames.png", "attention_geometry.png"]
    assert draw_figures(attention, tmp_path / "att", wanted) == wanted


def test_diverging_rollout_stays_finite():
    model = state_models.RelationalDynamics(8, 3, rng=np.random.default_rng(0), agg="sum")
    model.flat *= 50                                 # a model whose closed loop blows up
    traj = state_training.rollout(model, np.random.default_rng(1).uniform(size=(2, 6, 4)), 30)
    assert np.isfinite(traj).all() and np.abs(traj).max() == state_training.ROLLOUT_BOUND


def test_a_ratio_to_zero_is_null_and_json_is_strict(tmp_path):
    run = {"config": {"recipe": "simulator"}, "env": {}}
    runs = {}
    for seed, wall in ((0, 0.0), (1, 0.5)):
        payload = json.loads(json.dumps(run))
        payload["rollout"] = {"4": {name: {"mean_vel_err": 1.0} for name in state_evaluation.PREDICTORS}}
        payload["one_step"] = {"4": {name: {"wall": {"vel_mse": wall if name == "non_relational" else 0.1}}
                                     for name in state_evaluation.PREDICTORS}}
        payload["long_horizon"] = {"4": {}}
        runs[seed] = payload
    summary = sweeps.summarise(runs, {})
    assert summary["ratio"]["4"]["one_step_vel_mse_wall"] is None          # non-relational 0 in seed 0: undefined
    assert summary["ratio"]["4"]["vel_err"]["mean"] == 1.0
    assert "vel_err" not in summary["wins"]["4"] and summary["wins"]["4"]["one_step_vel_mse_wall"] == 1
    files.write_json_atomic(str(tmp_path / "s.json"), {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}})
    assert json.loads((tmp_path / "s.json").read_text(), parse_constant=lambda c: 1 / 0) == \
        {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_the_simulator_sweep_draws_its_win_counts(tmp_path):
    with open(os.path.join(ROOT, "results", "sweep_simulator.json")) as f:
        sweep = json.load(f)
    assert draw_figures(sweep, tmp_path / "figs", ["sweep_wins.png"]) == ["sweep_wins.png"]
