"""R-NEM on frames: ARI, gamma, the renderers, the M-step, discovery, the curtain, bad input."""
import json
import os
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, call_main

sys.path.insert(0, ROOT)
import relational_nem_pixels as P  # noqa: E402
from rnem import tracker  # noqa: E402
from rnem import environment, measures  # noqa: E402
from rnem import frames as F  # noqa: E402

TINY = ["--n-eval", "2", "--t-frames", "5", "--size", "32", "--sim-steps", "2"]


def test_ari_on_hand_built_labelings():
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert measures.adjusted_rand_index(truth, truth) == 1.0
    assert measures.adjusted_rand_index(truth, np.array([5, 5, 3, 3, 4, 4])) == 1.0          # renamed labels
    # truth [0, 0, 1, 1] against [0, 0, 1, 2]: pairs index 1, rows 2, columns 1, of 6: (1 - 1/3) / (1.5 - 1/3)
    assert measures.adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])) == pytest.approx(4.0 / 7.0)


def test_ari_batch_equals_the_plain_ari_per_sequence():
    rng = np.random.default_rng(0)
    labels = rng.integers(-2, 3, size=(6, 8, 8))                                        # balls 0..2, background, overlaps
    gamma = rng.uniform(size=(6, 4 + 1, 8, 8))
    keep = rng.uniform(size=(6, 8, 8)) < 0.8
    got = measures.ari_batch(labels, gamma, keep)
    for s in range(6):
        use = keep[s] & (labels[s] >= 0)
        assert got[s] == pytest.approx(measures.adjusted_rand_index(labels[s][use], gamma[s, :-1].argmax(0)[use]), abs=1e-12)


def test_fast_geometry_equals_the_plain_formulas():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 4, 2))
    plain = ((F.pixel_centres(16) - x[..., None, None, :]) ** 2).sum(-1)
    np.testing.assert_allclose(F.squared_distances(x, 16), plain, atol=1e-15)
    w = rng.uniform(size=(3, 4, 16, 16))
    np.testing.assert_allclose(tracker.centre_of(w, 16), np.einsum("nkij,ijc->nkc", w, F.pixel_centres(16)), rtol=1e-12)
    image = rng.uniform(size=(2, 12, 12)) < 0.3
    loop = np.array([[[image[n, max(i - 2, 0):i + 3, max(j - 2, 0):j + 3].sum() for j in range(12)] for i in range(12)]
                     for n in range(2)])
    np.testing.assert_array_equal(tracker.box_count(image, 2), loop)


def test_gamma_sums_to_one_per_pixel():
    rng = np.random.default_rng(0)
    frames, _ = F.render_binary(np.array([[[0.3, 0.4], [0.7, 0.6]]]), 0.11, 32)
    psi = tracker.KnownRenderer(32, 0.5)(rng.uniform(size=(1, 5, 2)), np.full((1, 5), 0.11))
    gamma = tracker.e_step(frames, psi)
    assert gamma.shape == (1, 6, 32, 32)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-12)
    assert (gamma >= 0).all()


def test_bce_on_a_hand_computed_case():
    frames = np.array([[[True, False]]])
    prob = np.array([[[0.8, 0.1]]])
    assert measures.bce(frames, prob, np.ones((1, 1, 2)))[0] == pytest.approx(-np.log(0.8) - np.log(0.9))
    assert measures.bce(frames, prob, np.array([[[0.0, 1.0]]]))[0] == pytest.approx(-np.log(0.9))   # weighted out


def em_on(truth, size=48, components=3, visible=None, renderer=None):
    frames, labels = F.render_binary(truth[None], 0.11, size)
    visible = np.ones_like(frames) if visible is None else visible
    comp = tracker.Components.empty(1, components)
    psi, gamma = tracker.em(frames & visible, visible, comp, renderer or tracker.KnownRenderer(size, 0.5), 3)
    return comp, gamma, labels


def test_em_discovers_two_far_apart_balls_within_a_pixel():
    truth = np.array([[0.25, 0.3], [0.72, 0.7]])
    comp, gamma, labels = em_on(truth)
    assert comp.present.sum() == 2                                                      # the third stays empty
    error = np.linalg.norm(truth[:, None] - comp.positions[0][comp.present[0]][None], axis=-1).min(axis=1) * 48
    assert (error < 1.0).all(), error                                                   # within a pixel
    assert measures.ari_batch(labels, gamma, np.ones_like(labels, bool))[0] == 1.0
    np.testing.assert_allclose(comp.radii[0][comp.present[0]], 0.11, rtol=0.05)      # the radius from the area


def test_a_half_hidden_ball_is_not_pulled_into_the_open():
    # the band covers x < 0.5; a ball centred on its edge shows its right half only. The M-step
    # compares what the component claims with what it renders on the observed pixels, so a
    # component on the ball stays there (the plain centre of the lit pixels is 0.47 r off).
    size, truth = 48, np.array([[0.5, 0.5]])
    visible = np.ones((1, size, size), bool)
    visible[:, :, :size // 2] = False
    frames, _ = F.render_binary(truth[None], 0.11, size)
    comp = tracker.Components.empty(1, 2)
    comp.positions[0, 0], comp.present[0, 0] = truth[0], True
    tracker.em(frames & visible, visible, comp, tracker.KnownRenderer(size, 0.5), 3)
    assert comp.present[0, 0] and not comp.present[0, 1]
    assert np.linalg.norm(comp.positions[0, 0] - truth[0]) * size < 0.5               # within half a pixel
    comp.positions[0, 0] = (0.3, 0.5)                                                    # wholly behind the band
    tracker.em(frames & visible, visible, comp, tracker.KnownRenderer(size, 0.5), 3)
    np.testing.assert_array_equal(comp.positions[0, 0], (0.3, 0.5))                      # hidden: it keeps its place
    assert comp.present[0, 0]


def test_the_curtain_hides_exactly_its_band():
    cfg = P.PixelConfig(n_balls="3", curtain=0.25, n_eval=6, t_frames=8, size=32)
    data = P.make_frames(cfg, 3, 6, "test")
    x = F.pixel_centres(32)[..., 0]
    for s in range(6):
        hidden = ~data["visible"][s]
        assert (hidden == hidden[0]).all()                                               # a vertical band
        width = x[0][hidden[0]]
        assert len(width) in (8, 9) and np.all(np.diff(np.nonzero(hidden[0])[0]) == 1)  # 0.25 of 32 columns, contiguous
        assert not data["frames"][:, s][:, hidden].any()                                 # nothing lit behind it
        lit, _ = F.render_binary(data["states"][:, s, :, :2], 0.11, 32)
        np.testing.assert_array_equal(data["frames"][:, s], lit & ~hidden)              # and everything else as drawn
    assert F.curtain_mask(3, 32, 0.0, np.random.default_rng(0)).all()


def test_learned_renderer_gradient_by_finite_differences():
    rng = np.random.default_rng(2)
    ren = P.LearnedRenderer(16, 5, rng)
    ren.flat[:] = rng.normal(0, 0.5, ren.flat.shape)                                     # h != 0 everywhere
    positions, radii = rng.uniform(0.3, 0.7, (2, 3, 2)), np.full((2, 3), 0.2)
    frames = rng.uniform(size=(2, 16, 16)) < 0.3
    gamma = rng.uniform(size=(2, 3, 16, 16))
    gamma[1, 2] = 0.0                                                                    # an empty component
    weight = (rng.uniform(size=(2, 16, 16)) < 0.9).astype(float)

    def loss():
        psi, cache = ren.forward(positions, radii)
        return ren.loss_and_grads(frames, gamma, psi, cache, weight)

    _, grad = loss()
    numeric, eps = np.zeros_like(grad), 1e-6
    for i in range(len(grad)):
        old = ren.flat[i]
        ren.flat[i] = old + eps
        up = loss()[0]
        ren.flat[i] = old - eps
        numeric[i] = (up - loss()[0]) / (2 * eps)
        ren.flat[i] = old
    rel = np.abs(grad - numeric) / np.maximum(np.abs(grad) + np.abs(numeric), 1e-8)
    assert rel.max() < 1e-6, rel.max()                                                  # centred differences, float64


def test_learned_renderer_draws_point_symmetric_shapes():
    rng = np.random.default_rng(3)
    ren = P.LearnedRenderer(32, 6, rng)
    ren.flat[:] = rng.normal(0, 1.0, ren.flat.shape)
    u = rng.normal(size=(50, 2))
    np.testing.assert_allclose(ren.h_forward(u)[0], ren.h_forward(-u)[0], rtol=1e-12)
    psi = ren(np.array([[[0.5 + 0.5 / 32, 0.5 - 0.5 / 32]]]), np.array([[0.15]]))[0, 0]   # centred on a pixel
    np.testing.assert_allclose(psi[1:, 1:], psi[1:, 1:][::-1, ::-1], rtol=1e-9)       # its drawing too, about pixel (16, 16)
    assert (P.LearnedRenderer(32, 6, rng).flat[-7:] == 0).all()                         # untrained: h = 0, the prior


def test_pixels_bad_input(tmp_path, capsys, monkeypatch):
    cases = [(["--size", "8"], "--size must be in 16..256"), (["--out", "no/dir/p.json"], "--out no/dir/p.json"),
             (["--seed", "-1"], "--seed must be in 0..4294967295"),
             (["--n-balls", "99"], "--n-balls must be within 1.."), (["--n-balls", "8-6"], "--n-balls must be within"),
             (["--n-balls", "x"], "--n-balls must be a number"), (["--curtain", "0.7"], "--curtain must be in [0, 0.5]"),
             (["--bitflip", "0.5"], "--bitflip must be in [0, 0.5)"), (["--renderer", "magic"], "argument --renderer: invalid choice"),
             (["--dynamics", "magic"], "argument --dynamics: invalid choice"), (["--sim-steps", "40"], "--sim-steps must be in 0..28"),
             (["--lr", "0"], "--lr must be in (0, 1]"), (["--components", "0"], "--components must be in 1..16"),
             (["--models", "none.npz"], "--models none.npz: file not found"), (["--seeds", "x"], "--seeds"),
             (["--masses", "--models", os.path.join(ROOT, "models", "simulator_seed0.npz")], "trained with --masses")]
    for argv, message in cases:
        assert_one_line_error(call_main(P.main, argv, tmp_path, capsys, monkeypatch), message)
    assert os.listdir(tmp_path) == []


def test_every_dynamics_tracks_a_short_run(tmp_path, capsys, monkeypatch):
    done = call_main(P.main, TINY + ["--out", "p.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "p.json").read_text())
    for name in P.DYNAMICS:
        assert 0.9 < result[name]["ari_after_em"] <= 1.0 and result[name]["position_error_px"] < 1.0
        assert result[name]["next_frame_bce"] < result[name]["next_frame_bce_repeat"]
        assert result[name]["hidden_lost_fraction"] is None                             # no curtain, no hidden balls
    sample = result["sample"]
    assert len(sample["frames"]) == 5 and len(sample["gamma_component"]) == 5 and len(sample["prediction_level"]) == 4
    assert result["source_sha256"] == environment.source_sha256(P.__file__)


def test_curtain_masses_and_learned_renderer_run(tmp_path, capsys, monkeypatch):
    args = TINY + ["--dynamics", "simulator.relational"]
    done = call_main(P.main, args + ["--curtain", "0.3", "--n-balls", "3", "--out", "c.json"], tmp_path, capsys,
                     monkeypatch)
    assert done.returncode == 0, done.stderr
    done = call_main(P.main, args + ["--masses", "--out", "m.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    masses = json.loads((tmp_path / "m.json").read_text())
    assert masses["models"] == os.path.join("models", "simulator_masses_seed0.npz")    # no machine's folder recorded
    assert masses["env"]["package_sha256"] == environment.package_sha256()
    done = call_main(P.main, args + ["--renderer", "learned", "--train-steps", "2", "--train-seq", "2", "--batch", "2",
                                     "--out", "l.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "l.json").read_text())
    assert len(result["renderer_training"]["loss_per_lit_pixel"]) == 2 and "untrained_renderer" in result


def test_seeds_give_means_and_wins(tmp_path, capsys, monkeypatch):
    done = call_main(P.main, TINY + ["--seeds", "0-1", "--out", "s.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "s.json").read_text())
    one = P.run(P.PixelConfig(n_eval=2, t_frames=5, size=32, sim_steps=2, seed=1), log=lambda *_: None)
    for name in P.DYNAMICS:
        ari = result[name]["ari_from_prediction"]
        assert ari["per_seed"][1] == one[name]["ari_from_prediction"]                   # seed 1 of the sweep = the single run
        assert ari["mean"] == pytest.approx(np.mean(ari["per_seed"]))
    assert set(result["relational_wins"]["ari_from_prediction"]) == {"constant_velocity", "simulator.non_relational"}


def test_figures_and_gif_of_a_pixel_result(tmp_path, capsys, monkeypatch):
    import make_relational_nem_bouncing_balls_gif as G
    import visualize_relational_nem_bouncing_balls as V
    args = ["--n-eval", "3", "--t-frames", "8", "--size", "32", "--sim-steps", "2", "--dynamics", "simulator.relational"]
    done = call_main(P.main, args + ["--curtain", "0.3", "--n-balls", "3", "--out", "c.json"], tmp_path, capsys,
                     monkeypatch)
    assert done.returncode == 0, done.stderr
    done = call_main(V.main, ["--pixels", "c.json", "--out", "viz"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "viz") == ["c_frames.png"]
    done = call_main(G.main, ["--pixels", "c.json", "--out", "c.gif", "--frame-size", "64"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    import imageio.v3 as iio
    assert iio.imread(tmp_path / "c.gif").shape[0] == 7                                  # frames 1..7
    result = json.loads((tmp_path / "c.json").read_text())
    result["sample"]["gamma_level"][2][0] = "x" * 32                                     # a malformed map
    (tmp_path / "bad.json").write_text(json.dumps(result))
    for main in (V.main, G.main):
        assert_one_line_error(call_main(main, ["--pixels", "bad.json", "--out", "bad.gif" if main is G.main else "v2"],
                                        tmp_path, capsys, monkeypatch), "gamma_level has the character 'x'")
    assert not (tmp_path / "bad.gif").exists() and not (tmp_path / "v2").exists()
    assert_one_line_error(call_main(G.main, ["--pixels", "none.json"], tmp_path, capsys, monkeypatch),
                          "--pixels none.json: file not found; produce it with python3 relational_nem_pixels.py")
