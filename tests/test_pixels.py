"""The E-step on frames with a known renderer: ARI, gamma, discovery of two balls."""
import os
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, call_main

sys.path.insert(0, ROOT)
import relational_nem_pixels as P  # noqa: E402


def test_ari_on_hand_built_labelings():
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert P.adjusted_rand_index(truth, truth) == 1.0
    assert P.adjusted_rand_index(truth, np.array([5, 5, 3, 3, 4, 4])) == 1.0          # renamed labels
    # truth [0, 0, 1, 1] against [0, 0, 1, 2]: pairs index 1, rows 2, columns 1, of 6: (1 - 1/3) / (1.5 - 1/3)
    assert P.adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])) == pytest.approx(4.0 / 7.0)


def test_gamma_sums_to_one_per_pixel():
    rng = np.random.default_rng(0)
    frame, _ = P.render_binary(np.array([[0.3, 0.4], [0.7, 0.6]]), 0.11, 32)
    psi = P.soft_disks(rng.uniform(size=(5, 2)), 0.11, 32, 0.5)
    gamma = P.e_step(frame, psi)
    np.testing.assert_allclose(gamma.sum(axis=0), 1.0, rtol=1e-12)
    assert (gamma >= 0).all()


def test_em_discovers_two_far_apart_balls_within_a_pixel():
    size, truth = 48, np.array([[0.25, 0.3], [0.72, 0.7]])
    frame, labels = P.render_binary(truth, 0.11, size)
    cfg = P.PixelConfig(size=size, components=3)
    positions, present = P.discover(frame, 3, 0.11, size, cfg.softness)
    positions, present, gamma = P.em(frame, positions, present, cfg)
    assert present.sum() == 2                                            # the third component stays empty
    found = positions[present]
    error = np.linalg.norm(truth[:, None] - found[None], axis=-1).min(axis=1) * size
    assert (error < 1.0).all(), error                                    # within a pixel
    assert P.frame_ari(labels, gamma) == 1.0


def test_pixels_bad_input(tmp_path, capsys, monkeypatch):
    assert_one_line_error(call_main(P.main, ["--size", "8"], tmp_path, capsys, monkeypatch), "--size must be at least 16")
    assert_one_line_error(call_main(P.main, ["--out", "no/dir/p.json"], tmp_path, capsys, monkeypatch), "--out no/dir/p.json")
    assert os.listdir(tmp_path) == []


def test_every_dynamics_tracks_a_short_run(tmp_path, capsys, monkeypatch):
    done = call_main(P.main, ["--n-seq", "2", "--t-frames", "4", "--size", "32", "--out", "p.json"], tmp_path, capsys,
                     monkeypatch)
    assert done.returncode == 0, done.stderr
    import json
    result = json.loads((tmp_path / "p.json").read_text())
    for name in P.DYNAMICS:
        assert 0.9 < result[name]["ari_after_em"] <= 1.0 and result[name]["position_error_px"] < 1.0
    assert_one_line_error(call_main(P.main, ["--dynamics", "magic"], tmp_path, capsys, monkeypatch), "--dynamics must be")
    assert_one_line_error(call_main(P.main, ["--models", "none.npz"], tmp_path, capsys, monkeypatch),
                          "--models none.npz: file not found")


def test_seeds_give_means_and_wins(tmp_path, capsys, monkeypatch):
    args = ["--n-seq", "2", "--t-frames", "4", "--size", "32", "--dynamics", "all"]
    done = call_main(P.main, args + ["--seeds", "0-1", "--out", "s.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    import json
    result = json.loads((tmp_path / "s.json").read_text())
    one = P.run(P.PixelConfig(n_seq=2, t_frames=4, size=32, seed=1))
    for name in P.DYNAMICS:
        ari = result[name]["ari_from_prediction"]
        assert ari["per_seed"][1] == one[name]["ari_from_prediction"]          # seed 1 of the sweep = the single run
        assert ari["mean"] == pytest.approx(np.mean(ari["per_seed"]))
    assert set(result["relational_prediction_wins"]) == {"constant_velocity", "simulator.non_relational"}
