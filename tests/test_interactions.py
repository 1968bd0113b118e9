"""Interactions learned from frames: tracks -> states, the training windows, the box, the chain, bad input."""
import itertools
import json
import os
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, call_main

sys.path.insert(0, ROOT)
from rnem import simulator, state_config, state_models, state_training
import relational_nem_interactions as I  # noqa: E402
import relational_nem_pixels as P  # noqa: E402
from rnem import tracker  # noqa: E402
from rnem import tracks  # noqa: E402
from rnem.balls import mirror_into_box  # noqa: E402
from rnem.frames import render_binary  # noqa: E402

TINY = ["--n-train", "12", "--n-val", "4", "--t-frames", "16", "--size", "32", "--rounds", "2", "--steps", "20",
        "--n-eval", "2", "--eval-k", "3,4", "--jobs", "1"]


def test_two_balls_moving_apart_give_their_velocities_back():
    # two balls from the middle, apart at constant speed, no wall within 14 frames: the tracker's
    # positions at 48 px are within ~0.1 px, so a line through 14 of them gives the velocity to
    # a few percent of the speed at most; tolerance 0.02 box units per unit time
    T, v = 14, np.array([[-0.3, 0.1], [0.3, -0.1]])                                # x stays in [0.18, 0.82]
    x0 = np.array([[0.38, 0.5], [0.62, 0.5]])
    truth = x0 + np.arange(T)[:, None, None] * R_DT * v                                # (T, 2, 2)
    frames, _ = render_binary(truth[:, None], 0.11, 48)                                # (T, 1, S, S)
    tr = tracker.follow(frames, np.ones((1, 48, 48), bool), 3, tracker.make_step("constant_velocity", {}),
                  tracker.KnownRenderer(48, 0.5), 3)
    ok = tracks.steady(tr, 2)
    assert ok.all()
    sigma = tracks.noise_scale(tr["positions"], tr["present"])
    vel = tracks.velocities(tr["positions"], R_DT, "segments", tracks.breaks_of(tr, ok), 10 * sigma ** 2, 3 * sigma, tr["radii"])
    for k in np.nonzero(tr["present"][0, 0])[0]:
        ball = np.linalg.norm(tr["positions"][0, 0, k] - x0, axis=-1).argmin()
        np.testing.assert_allclose(vel[:, 0, k], np.broadcast_to(v[ball], (T, 2)), atol=0.02)


R_DT = 0.05


def hand_tracks(T=10):
    """One sequence, three components, two balls: component 0 flies straight throughout, component 1
    is absent from frame 5 on and back at 6 (lost), then jumps 2 radii at frame 8 (swapped);
    component 2 is empty."""
    positions = np.zeros((T, 1, 3, 2))
    positions[:, 0, 0] = np.stack([0.2 + 0.03 * np.arange(T), np.full(T, 0.3)], -1)
    positions[:, 0, 1] = np.stack([np.full(T, 0.7), 0.2 + 0.02 * np.arange(T)], -1)
    positions[8:, 0, 1, 0] += 0.22                                                     # the swap: 2 r at once
    present = np.zeros((T, 1, 3), bool)
    present[:, 0, :2] = True
    present[5, 0, 1] = False                                                           # lost in frame 5
    return {"positions": positions, "present": present, "radii": np.full((T, 1, 3), 0.11)}


def test_a_training_window_never_spans_a_lost_or_swapped_component():
    tr = hand_tracks()
    ok = tracks.steady(tr, 2)
    assert ok[:, 0].tolist() == [True] * 5 + [False, False] + [True, False, True]      # 5: one ball; 6: back; 8: jump
    for method in tracks.VELOCITY_METHODS:
        v = tracks.velocities(tr["positions"], R_DT, method, tracks.breaks_of(tr, ok), 1e-6, 1e-6, tr["radii"])
        windows = tracks.usable_windows(tr, v, ok)[:, 0]
        spans = [(t, t + 1) for t in range(9) if windows[t]]
        assert all(f not in (5, 6, 8) for span in spans for f in span), (method, spans)
        # difference: v_4 would read frame 5; segments: frames 0-4 are one straight stretch, 7 and 9 alone
        assert spans == [(0, 1), (1, 2), (2, 3)] + ([(3, 4)] if method == "segments" else []), method
        inputs, targets, where = tracks.window_states(tr, v, windows[:, None], 2, False)
        # every window's velocities come from positions of its own unbroken stretch: exact here
        np.testing.assert_allclose(inputs[..., 2:4], [[[0.6, 0.0], [0.0, 0.4]]] * len(inputs), atol=1e-9)
        np.testing.assert_allclose(targets[..., :2] - inputs[..., :2], R_DT * inputs[..., 2:4], atol=1e-12)


def test_segments_by_dynamic_programming_equal_every_split_tried():
    # the fast DP against trying every split of a short track into consecutive segments, on noisy
    # piecewise lines with a break
    rng = np.random.default_rng(0)
    T, penalty = 8, 0.002
    x = np.cumsum(rng.choice([-1.0, 1.0], size=(T, 3, 2)) * 0.05, axis=0) + rng.normal(0, 0.01, (T, 3, 2))
    breaks = np.zeros((T - 1, 3), bool)
    breaks[3, 2] = True                                                                # track 2 broken after frame 3
    first, last = tracks.segments(x, breaks, penalty)

    def cost(track, cuts):
        total, edges = 0.0, [0, *cuts, T]
        for a, b in zip(edges[:-1], edges[1:]):
            if track == 2 and a <= 3 < b - 1:
                return np.inf
            t = np.arange(a, b)
            if len(t) > 1:
                A = np.stack([np.ones(len(t)), t], 1)
                total += ((A @ np.linalg.lstsq(A, x[a:b, track], rcond=None)[0] - x[a:b, track]) ** 2).sum()
            total += penalty
        return total
    for track in range(3):
        best = min((c for n in range(T) for c in itertools.combinations(range(1, T), n)), key=lambda c: cost(track, c))
        edges = [0, *best, T]
        expected = [(a, b - 1) for a, b in zip(edges[:-1], edges[1:]) for _ in range(a, b)]
        assert list(zip(first[:, track], last[:, track])) == expected, track


def test_velocities_from_the_simulators_own_positions_are_exact():
    # noise-free positions of the simulator (walls and ball collisions): straight segments, the
    # corner of a ball collision given to the segment after it, wall bounces folded; every frame
    # with a velocity gets the true one (to rounding), and most frames get one
    truth, events = simulator.simulate_sequences(4, 40, 3, R_DT, 0.11, np.random.default_rng(5), False)
    assert events["wall"].any() and events["pair"].any()
    x = truth[..., :2]                                                                 # (T, n, B, 2)
    breaks = np.zeros((39,) + x.shape[1:3], bool)
    v = tracks.velocities(x, R_DT, "segments", breaks, 1e-12, 1e-9, np.full(x.shape[:3], 0.11))
    known = ~np.isnan(v).any(-1)
    assert known.mean() > 0.9
    np.testing.assert_allclose(v[known], truth[..., 2:4][known], atol=1e-8)


def test_a_corner_goes_to_the_segment_after_it():
    # a ball collision: the position x_5 (the corner, (0.3, 0.4)) lies on the line before exactly
    # and, but for 1e-6, on the line after; the velocity at frame 5 is the one after (the DP alone gives the one before)
    t = np.arange(12, dtype=float)[:, None]
    before, after = np.array([0.2, 0.3]) + 0.02 * t, np.array([0.3, 0.4]) + np.array([0.02, -0.03]) * (t - 5)
    x = np.where(t <= 5, before, after)[:, None]                                      # (T, 1, 2)
    x[6:, 0] += 1e-6                                                                  # 1e-6 off the line after
    breaks = np.zeros((11, 1), bool)
    first, last = tracks.segments(x, breaks, 1e-9)
    assert first[5, 0] == 0                                                           # the DP: frame 5 before
    v = tracks.velocities(x[:, None], 1.0, "segments", breaks[:, None], 1e-9, 1e-4, np.full((12, 1, 1), 0.11))
    np.testing.assert_allclose(v[5, 0, 0], [0.02, -0.03], atol=1e-5)
    np.testing.assert_allclose(v[4, 0, 0], [0.02, 0.02], atol=1e-9)


@pytest.mark.parametrize("name", ["simulator", "simulator_masses", "interactions", "interactions_masses"])
def test_rollouts_never_leave_the_box_even_when_the_wall_gate_never_fires(name):
    # the oracle- and the frame-trained models, 200 steps at K = 8, and each with its wall gate off
    masses = name.endswith("masses")
    models = state_models.load_models(os.path.join(ROOT, "models", f"{name}_seed0.npz"))
    truth, _ = simulator.simulate_sequences(8, 2, 8, R_DT, 0.11, np.random.default_rng(3), masses)
    radii = truth[0, ..., 4] if masses else 0.11
    for model in models.values():
        deaf = state_models.make_model(model.kind, state_config.Config(recipe="simulator", masses=masses, hidden=model.params["wall.W0"].shape[1]),
                            np.random.default_rng(0))
        deaf.flat[...] = model.flat
        deaf.params["wall.b2"][...] = -50.0                                            # the wall gate never fires
        for m in (model, deaf) if model.kind == "relational" else (deaf,):
            pred = state_training.rollout(m, truth[0], 200)                                         # K = 8, 200 steps
            r = radii if np.isscalar(radii) else radii[None, ..., None]
            assert ((pred[..., :2] >= r) & (pred[..., :2] <= 1 - r)).all()


def test_mirror_into_box_is_the_simulators_wall_pass():
    pos = np.array([[0.05, 0.5], [0.95, 0.99], [0.5, 0.5]])
    vel = np.array([[-1.0, 0.2], [0.3, 0.4], [0.1, -0.1]])
    new_pos, new_vel, mirrored = mirror_into_box(pos, vel, 0.11, 0.89)
    np.testing.assert_allclose(new_pos, [[0.17, 0.5], [0.83, 0.79], [0.5, 0.5]])
    np.testing.assert_allclose(new_vel, [[1.0, 0.2], [-0.3, -0.4], [0.1, -0.1]])
    assert mirrored.tolist() == [[True, False], [True, True], [False, False]]


@pytest.fixture(scope="module")
def tiny_chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interactions")
    out, model = str(folder / "run.json"), str(folder / "models.npz")
    code = I.main([*TINY, "--out", out, "--save-model", model])
    return code, out, model


def test_tiny_chain_writes_rounds_and_models_the_pixel_script_reads(tiny_chain, tmp_path, capsys, monkeypatch):
    code, out, model = tiny_chain
    assert code == 0
    with open(out) as f:
        result = json.load(f)
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert [r["tracked_with"] for r in result["rounds"]] == ["constant_velocity", "simulator.relational"]
    for one in result["rounds"]:
        assert 0 < one["windows"] <= one["transitions"]
        assert set(one["long_horizon"]) == {"3", "4"}
        assert one["state_errors"]["position_error"] < 0.01                             # 32 px: ~0.3 px
    pixels = call_main(P.main, ["--n-eval", "2", "--t-frames", "5", "--size", "32", "--sim-steps", "2",
                                "--dynamics", "simulator.relational", "--models", model,
                                "--out", str(tmp_path / "p.json")], tmp_path, capsys, monkeypatch)
    assert pixels.returncode == 0, pixels.stderr


def test_summary_over_seeds_pairs_with_the_oracle(tiny_chain, tmp_path):
    _, out, _ = tiny_chain
    with open(out) as f:
        result = json.load(f)
    other = json.loads(json.dumps(result))
    other["config"]["seed"] = 1
    for one in other["rounds"]:
        one["long_horizon"]["4"]["relational"]["horizon"] *= 2
    summary = I.summarise_seeds({0: result, 1: other}, None)
    h = summary["rounds"][0]["summary"]["4"]["horizon"]["relational"]
    assert h["per_seed"][1] == 2 * h["per_seed"][0]
    assert summary["rounds"][1]["round"] == 2
    assert result["sample"]["index"] == I.SAMPLE_SEQUENCE and len(result["sample"]["usable"]) == 15


def test_figures_of_a_seed_and_of_a_summary(tiny_chain, tmp_path, capsys, monkeypatch):
    import visualize_relational_nem_bouncing_balls as V
    _, out, _ = tiny_chain
    with open(out) as f:
        result = json.load(f)
    summary = I.summarise_seeds({0: result}, None)
    summary["oracle"] = os.path.join(ROOT, "results", "sweep_simulator.json")
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps(summary))
    for source, name in ((out, "run_tracks.png"), (str(summary_path), "interactions_horizon.png")):
        done = call_main(V.main, ["--interactions", source, "--out", str(tmp_path / "viz")], tmp_path, capsys, monkeypatch)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "viz" / name).stat().st_size > 10_000
    summary["oracle"] = str(tmp_path / "missing.json")
    summary_path.write_text(json.dumps(summary))
    assert_one_line_error(call_main(V.main, ["--interactions", str(summary_path), "--out", str(tmp_path / "v2")],
                                    tmp_path, capsys, monkeypatch), "is not there")
    assert not (tmp_path / "v2").exists()


def test_sigterm_while_tracking_stops_the_workers_and_writes_nothing(tmp_path):
    import signal
    import subprocess
    import time
    script = os.path.join(ROOT, "relational_nem_interactions.py")
    args = [*TINY[:-2], "--n-train", "400", "--jobs", "2", "--out", "r.json", "--save-model", "m.npz"]
    process = subprocess.Popen([sys.executable, script, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    children = f"/proc/{process.pid}/task/{process.pid}/children"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(open(children).read().split()) < 3:    # two workers and a tracker
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err == "error: stopped by SIGTERM: workers stopped, no partial output written\n", err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--rounds", "0"], "--rounds must be in 1..20"), (["--seed", "-1"], "--seed must be in 0..4294967295"),
    (["--eval-k", "3,40"], "--eval-k must list distinct numbers of balls in 2.."),
    (["--eval-k", "1"], "--eval-k must list distinct numbers of balls in 2.."),
    (["--eval-k", "3,3"], "--eval-k must list distinct numbers of balls in 2.."),
    (["--seeds", "0-1", "--seed-dir", "/proc/x"], "--seed-dir /proc/x: folder /proc is not writable"),
    (["--seeds", "0-1", "--seed-dir", os.path.join(ROOT, "README.md")], "is a file; give a folder"),
    (["--eval-k", "x"], "--eval-k must be comma-separated integers"),
    (["--components", "3"], "--components must be at least --n-balls"),
    (["--penalty", "0"], "--penalty must be in (0, 1e6]"),
    (["--velocity", "spline"], "--velocity"),
    (["--n-train", "1"], "--n-train must be in 2..100000"),
    (["--seeds", "0-1", "--save-model", "x.npz"], "--save-model takes one seed"),
    (["--seeds", "3-1"], "--seeds must be"),
    (["--out", "/proc/x/y.json"], "--out"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    out = call_main(I.main, ["--out", str(tmp_path / "r.json"), *args] if "--out" not in args else args,
                    tmp_path, capsys, monkeypatch)
    assert_one_line_error(out, message)
    assert os.listdir(tmp_path) == []
