"""relational_nem_network.py as a program: bad input, a tiny training whose loss falls, the ARI."""
import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import relational_nem_network as N
from conftest import ROOT, assert_one_line_error, call_main

TINY = ["--size", "12", "--hidden", "8", "--t-frames", "12", "--n-train", "8", "--n-val", "4", "--batch", "4",
        "--components", "3", "--n-balls", "2", "--n-eval", "6"]


@pytest.mark.parametrize("args, message", [
    (["--size", "4"], "--size must be in 8..128"), (["--lr", "0"], "--lr must be in (0, 1]"),
    (["--bitflip", "0.5"], "--bitflip must be in [0, 0.5)"), (["--t-frames", "5"], "--t-frames must be in 12..200"),
    (["--batch", "9", "--n-train", "8"], "--batch must be at most --n-train = 8"),
    (["--kind", "lstm"], "argument --kind: invalid choice"), (["--out", "nowhere/x.json"], "does not exist"),
    (["--curtain", "0.6"], "--curtain must be in [0, 0.5]"), (["--observed", "1"], "--observed must be in 2..19"),
    (["--n-eval", "2"], "--n-eval must be in 3..10000"), (["--masses", "--n-balls", "15"], "--n-balls must be in 1..14 with --masses"),
    (["--summarise", "nowhere"], "--summarise must be a folder"), (["--patience", "-1"], "--patience must be in 0..1000"),
    (["--frame-steps", "5"], "--frame-steps must be in 1..4"), (["--lr-drop", "0"], "--lr-drop must be in (0, 1]"),
    (["--own-input", "1.5"], "--own-input must be in [0, 1]"), (["--own-input-from", "-1"],
                                                                "--own-input-from must be in 0..1000000"), (["--train-balls", "3,x"], "--train-balls must be"),
    (["--train-balls", "0,4"], "--train-balls must be a list of numbers of balls in 1..22"), (["--select-from", "7", "--steps", "6"],
                                                                "--select-from must be in 0..6"),
    (["--lr-drop-at", "-2"], "--lr-drop-at must be in 0..1000000"), (["--retest", "none.npz"], "--retest must be a"), (["--dtype", "float16"], "invalid choice"),
    (["--attention-width", "-1"], "--attention-width must be in 0..1024"),
    (["--attention-width", "10", "--kind", "rnn_em"], "--attention-width must be 0 unless --kind is r_nem"),
    (["--iterations", "5"], "unrecognized arguments: --iterations 5 (--iterations is now --steps)"),    # an old name
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    done = call_main(N.main, args, tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, message)
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny training with a curtain, a sample sequence and its saved network, in a folder of
    its own (the tests below read it; none writes into it)."""
    folder = tmp_path_factory.mktemp("tiny_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        assert N.main(TINY + ["--steps", "6", "--eval-every", "3", "--lr", "3e-3", "--curtain", "0.25", "--sample",
                              "--own-input", "0.5",
                              "--out", "r_nem_seed0.json", "--save-model", "r_nem_seed0.npz"]) == 0
    return folder


def test_tiny_training_writes_its_curves_and_test_measures(tiny_run):
    result = json.loads((tiny_run / "r_nem_seed0.json").read_text())
    h = result["history"]
    assert h["iteration"] == [3, 6] and h["train_loss"][1] < h["train_loss"][0]          # the loss falls
    assert result["selected"]["iteration"] == h["iteration"][int(np.argmin(h["val_loss"]))]
    balls, more = result["test"]["balls"], result["test"]["more_balls"]
    assert len(balls["ari_per_step"]) == 11 and -1 <= balls["ari_last"] <= 1
    assert len(balls["sim_bce_per_step"]) == 12 - 10 and more["components"] == N.EXTRAPOLATE_K
    assert balls["reemerging_events"] >= 0 and balls["bce_copy_best"] <= balls["bce_copy_clipped"]
    assert set(result["test"]) == {"balls", "balls_noisy", "balls_k8", "more_balls", "more_balls_noisy"}
    assert set(balls["simulation"]) == set(N.SIM_PROTOCOLS) and balls["simulation"]["figure4"]["seen"] == 5
    for sim in balls["simulation"].values():
        assert len(sim["bce_real_per_step"]) == sim["steps"] == 12 - sim["seen"]
        assert sim["bce_hold"] > 0 and sim["brier_grey"] > 0 and sim["hold_position_error_px"] >= 0
    assert balls["sim_bce"] == balls["simulation"]["clean"]["bce_real"]
    assert balls["motion"]["n"] > 0 and balls["attention"]["sum_over_others"] >= 0
    sample = balls["sample"]
    assert np.array(sample["psi"]).shape == (11, 3, 12, 12) and np.array(sample["attention"]).shape == (11, 3, 3)


def test_patience_stops_after_that_many_checks_without_a_lower_validation_loss(tmp_path, capsys, monkeypatch):
    done = call_main(N.main, TINY + ["--steps", "60", "--eval-every", "2", "--patience", "2", "--lr", "3e-3",
                                     "--out", "r.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    losses, checks = result["history"]["val_loss"], result["history"]["iteration"]
    best = int(np.argmin(losses))
    assert result["trained_steps"] == checks[-1] < 60 and "stopped at step" in done.stdout    # it did stop early
    assert len(checks) - 1 - best == 2 and result["selected"]["iteration"] == checks[best]   # 2 checks, no lower loss
    assert all(j - int(np.argmin(losses[:j + 1])) < 2 for j in range(len(losses) - 1))      # and not before


def test_selection_from_a_step_ignores_earlier_checks(tmp_path, capsys, monkeypatch):
    done = call_main(N.main, TINY + ["--steps", "8", "--eval-every", "2", "--select-from", "6", "--lr", "3e-2",
                                     "--out", "r.json"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    losses = dict(zip(result["history"]["iteration"], result["history"]["val_loss"]))
    assert min(losses, key=losses.get) < 6                               # the lowest loss of all comes earlier
    assert result["selected"]["iteration"] == min((6, 8), key=losses.get)
    assert result["selected"]["rule"].endswith("from step 6 on")


def test_selection_rule_replayed_on_checks():
    steps, losses = [1, 2, 3, 4, 5, 6], [5.0, 4.0, 6.0, 7.0, 8.0, 3.0]
    assert N.selection(steps, losses, 0, 2) == (2, 4)          # 2 checks after step 2 without a lower loss
    assert N.selection(steps, losses, 0, 0) == (6, None)       # patience 0: all checks, the lowest
    assert N.selection(steps, losses, 3, 2) == (3, 5)          # from step 3 on: 6.0 is the lowest so far
    assert N.selection(steps, losses, 3, 9) == (6, None)
    assert N.selection(steps[:2], losses[:2], 3, 1) == (None, None)      # no check from step 3 on yet
    assert N.selection([1, 2, 3], [4.0, 4.0, 5.0], 0, 1) == (1, 2)       # ties keep the first


def test_summary_replays_an_earlier_selection_rule_or_refuses_it(tmp_path):
    # seed 0 selected from step 3 on, seed 1 from step 0 on: seed 1 counts only where the rule
    # "from step 3 on", replayed on its history, picks its check and stops where it stopped
    def result(seed, select_from, losses, selected, trained):
        part = {m.split("/")[1]: 1.0 for m in N.SUMMARY_MEASURES if m.count("/") == 1} | {"sim_bce_per_step": [1.0]}
        steps = list(range(1, len(losses) + 1))
        return {"test": {"balls": part, "more_balls": part}, "selected": {"iteration": selected},
                "trained_steps": trained, "history": {"val_ari_last": [0.5] * len(steps), "iteration": steps,
                                                      "val_loss": losses},
                "timing": {"to_selected_s": 1.0, "s_per_step": 0.1}, "env": {"source_sha256": "x"},
                "config": {"seed": seed, "select_from": select_from, "patience": 2, "steps": 6}}
    (tmp_path / "r_nem_seed0.json").write_text(json.dumps(result(0, 3, [5.0, 4.0, 6.0, 7.0, 8.0], 3, 5)))
    (tmp_path / "r_nem_seed1.json").write_text(json.dumps(result(1, 0, [5.0, 6.0, 4.0, 3.0, 6.0, 7.0], 4, 6)))
    summary = N.summarise(str(tmp_path))
    assert summary["models"]["r_nem"]["config"]["select_from"] == 3
    assert summary["selection"] == {"select_from": 3, "replayed": {"r_nem_seed1": 0}}
    (tmp_path / "r_nem_seed1.json").write_text(json.dumps(result(1, 0, [5.0, 3.0, 4.0, 6.0], 2, 4)))
    with pytest.raises(N.ConfigError, match="r_nem_seed1.json was selected from step 0 on.*--select-from 3"):
        N.summarise(str(tmp_path))


def test_learning_rate_drop_takes_effect_at_its_step(tmp_path, capsys, monkeypatch):
    # a drop to 1e-12 from step 4 on: the network after 6 steps is the one after 3 (Adam moves each
    # parameter by about the learning rate per step); without the drop it moves on by about 1e-3
    flats = {}
    for name, extra in (("three", ["--steps", "3"]), ("dropped", ["--steps", "6", "--lr-drop-at", "4",
                                                                          "--lr-drop", "1e-12"]),
                        ("six", ["--steps", "6"])):
        args = TINY + extra + ["--eval-every", "3", "--n-eval", "3", "--out", f"{name}.json", "--save-model",
                               f"{name}.npz"]
        assert call_main(N.main, args, tmp_path, capsys, monkeypatch).returncode == 0
        flats[name] = N.load_network(str(tmp_path / f"{name}.npz"))[0].flat
    assert np.abs(flats["dropped"] - flats["three"]).max() < 1e-9
    assert np.abs(flats["six"] - flats["three"]).max() > 1e-4


def test_training_frames_with_several_numbers_of_balls():
    cfg = N.NetworkConfig(size=12, t_frames=12, n_train=7, train_balls="1,3")
    frames = N.training_frames(cfg)                                                       # (T, N, D)
    assert frames.shape == (12, 7, 144)
    lit = frames.sum(axis=2).mean(axis=0)                                                 # pixels lit per sequence
    assert lit[:4].max() < lit[4:].min()                                                  # 4 of one ball, 3 of three
    np.testing.assert_array_equal(N.training_frames(N.NetworkConfig(size=12, t_frames=12, n_train=7)),
                                  N.flat_frames(N.make_scenes(N.NetworkConfig(size=12, t_frames=12, n_train=7), 7,
                                                              "network/train")))


def test_summarise_and_retest_refuse_what_they_cannot_use(tmp_path, capsys, monkeypatch):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "pixels_seeds.json").write_text("{}")                    # not <name>_seed<N>.json: skipped
    done = call_main(N.main, ["--summarise", "runs", "--out", "s.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "no result files <name>_seed<N>.json there")
    (tmp_path / "runs" / "r_nem_seed0.json").write_text("{not json")
    done = call_main(N.main, ["--summarise", "runs", "--out", "s.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "r_nem_seed0.json is not a readable JSON result")
    (tmp_path / "runs" / "r_nem_seed0.json").write_text('{"config": {}}')
    done = call_main(N.main, ["--summarise", "runs", "--out", "s.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "r_nem_seed*.json are not results of relational_nem_network.py")
    done = call_main(N.main, ["--summarise", "runs", "--steps", "5", "--out", "s.json"], tmp_path, capsys,
                     monkeypatch)
    assert_one_line_error(done, "--summarise reads results: --steps is a training option")
    (tmp_path / "m.npz").write_bytes(b"")
    done = call_main(N.main, ["--retest", "m.npz", "--lr", "0.1", "--out", "r.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--retest measures a saved network with its own config: --lr is a training option")
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "runs"]


def test_grouping_ari_of_a_perfect_and_a_merged_grouping():
    labels = np.full((1, 4, 4), -1)
    labels[0, :2, :2], labels[0, 2:, 2:] = 0, 1                                           # two balls
    perfect = np.zeros((1, 2, 16))
    perfect[0, 0] = (labels[0] == 0).ravel()
    perfect[0, 1] = (labels[0] == 1).ravel()
    merged = np.zeros((1, 2, 16))
    merged[0, 0] = 1.0
    visible = np.ones((1, 4, 4), bool)
    assert N.grouping_ari([perfect], labels[None], visible, 4)[0, 0] == 1.0
    assert N.grouping_ari([merged], labels[None], visible, 4)[0, 0] == 0.0


def test_copy_bces_by_hand():
    frames = np.zeros((4, 1, 10), bool)
    frames[3, 0, :2] = True                                          # steps 1 -> 2 same, 2 -> 3: 2 of 10 change
    q = N.best_flip_rate(frames)
    assert q == pytest.approx(2 / 30)
    best = N.frame_bces(frames[1:], frames[:-1], clip=q).sum() / 3
    assert best == pytest.approx(-(q * np.log(q) + (1 - q) * np.log(1 - q)) * 10)     # the entropy of a flip
    # the paper's clip: a changed pixel costs -log 1e-6, an unchanged one -log(1 - 1e-6)
    assert N.frame_bces(frames[3], frames[2])[0] == pytest.approx(2 * -np.log(1e-6) + 8 * -np.log(1 - 1e-6))


def test_summary_checks_the_orderings_seed_by_seed(tmp_path):
    def result(bce, ari):
        part = {m.split("/")[1]: 1.0 for m in N.SUMMARY_MEASURES if m.count("/") == 1} | {"bce_real": bce, "ari_last": ari,
                                                                    "bce_copy_best": 100.0, "sim_bce_per_step": [bce, bce]}
        return {"test": {"balls": part, "more_balls": part}, "selected": {"iteration": 3},
                "history": {"val_ari_last": [0.1, ari], "iteration": [1, 3]}, "timing": {"to_selected_s": 1.0, "s_per_step": 0.1},
                "config": {"seed": 0, "select_from": 0}, "env": {"source_sha256": "x"}}
    for name, seed, bce in (("r_nem", 0, 50.0), ("rnn_em", 0, 60.0), ("rnn", 0, 70.0),
                            ("r_nem", 1, 65.0), ("rnn_em", 1, 60.0), ("rnn", 1, 70.0)):
        (tmp_path / f"{name}_seed{seed}.json").write_text(json.dumps(result(bce, 0.9)))
    summary = N.summarise(str(tmp_path))
    check = summary["orderings"]["balls/bce_real: r_nem < rnn_em < rnn"]
    assert check["holds_per_seed"] == [True, False] and not check["holds_in_every_seed"]
    assert summary["models"]["r_nem"]["measures"]["balls/bce_real"]["mean"] == 57.5
    assert summary["models"]["rnn"]["measures"]["balls/bce_real_over_copy"]["per_seed"] == [0.7, 0.7]


def test_attention_width_is_kept_in_the_model_file(tmp_path):
    """A network of --attention-width A comes back from its file with A; a file written before the
    option existed (no attention_width in its config) is read as M / 2."""
    cfg = N.NetworkConfig(size=8, hidden=6, attention_width=7)
    net = N.new_network(cfg)
    assert net.params["att.W"].shape == (6, 7)
    N.save_network(str(tmp_path / "w.npz"), net, cfg, {"history": [], "selected": {}})
    again, meta = N.load_network(str(tmp_path / "w.npz"))
    assert again.params["att.W"].shape == (6, 7) and np.array_equal(again.flat, net.flat)
    old = N.NetworkConfig(size=8, hidden=6)
    old_dict = {k: v for k, v in dataclasses.asdict(old).items() if k != "attention_width"}
    N.write_model_file(str(tmp_path / "old.npz"), {**meta, "config": old_dict}, {"r_nem": N.new_network(old).flat})
    assert N.load_network(str(tmp_path / "old.npz"))[0].params["att.W"].shape == (6, 3)


def test_save_then_retest_gives_the_same_measures(tiny_run, tmp_path, capsys, monkeypatch):
    net, meta = N.load_network(str(tiny_run / "r_nem_seed0.npz"))
    first = json.loads((tiny_run / "r_nem_seed0.json").read_text())
    assert meta["history"] == first["history"] and meta["selected"] == first["selected"]
    done = call_main(N.main, ["--retest", str(tiny_run / "r_nem_seed0.npz"), "--sample", "--out", "again.json"],
                     tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["test"] == first["test"] and again["history"] == first["history"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    done = call_main(N.main, ["--retest", "bad.npz", "--out", "x.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "not a model file")
    assert not (tmp_path / "x.json").exists()


def test_figures_and_gif_of_a_network_result_and_summary(tiny_run, tmp_path, capsys, monkeypatch):
    import imageio.v3 as iio

    import make_relational_nem_bouncing_balls_gif as G
    import visualize_relational_nem_bouncing_balls as V
    run = str(tiny_run / "r_nem_seed0.json")
    done = call_main(V.main, ["--network", run, "--out", "viz"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "viz")) == ["r_nem_seed0_frames.png", "r_nem_seed0_simulation.png"]
    assert call_main(N.main, ["--summarise", str(tiny_run), "--out", "s.json"], tmp_path, capsys,
                     monkeypatch).returncode == 0
    done = call_main(V.main, ["--network", "s.json", "--out", "viz2"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "viz2")) == ["network_comparison.png", "network_dynamics.png",
                                                  "network_simulation.png"]
    done = call_main(G.main, ["--network", run, "--out", "n.gif", "--frame-size", "64"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    assert iio.imread(tmp_path / "n.gif").shape[0] == 11                                 # frames 1..11
    result = json.loads((tiny_run / "r_nem_seed0.json").read_text())
    result["test"]["balls"]["sample"]["psi"][0] = [[0.5]]                                 # a malformed array
    (tmp_path / "bad.json").write_text(json.dumps(result))
    for main in (V.main, G.main):
        assert_one_line_error(call_main(main, ["--network", "bad.json", "--out", "bad.gif" if main is G.main else "v3"],
                                        tmp_path, capsys, monkeypatch), "malformed sample")
    assert not (tmp_path / "bad.gif").exists() and not (tmp_path / "v3").exists()
    assert_one_line_error(call_main(G.main, ["--network", "none.json"], tmp_path, capsys, monkeypatch),
                          "--network none.json: file not found; produce it with python3 relational_nem_network.py")


def test_sigterm_stops_a_training_and_writes_nothing(tmp_path):
    script = os.path.join(ROOT, "relational_nem_network.py")
    process = subprocess.Popen([sys.executable, script, *TINY, "--steps", "100000", "--eval-every", "1",
                                "--out", "n.json", "--save-model", "n.npz"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("step      1 ")                     # training has begun
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err == "error: stopped by SIGTERM: nothing written\n", err
    assert os.listdir(tmp_path) == []
