"""relational_nem_network.py as a program: bad input, a tiny training whose loss falls, the ARI."""
import json
import os

import numpy as np
import pytest

import relational_nem_network as N
from conftest import assert_one_line_error, call_main

TINY = ["--size", "12", "--hidden", "8", "--t-frames", "12", "--n-train", "8", "--n-val", "4", "--batch", "4",
        "--components", "3", "--k-balls", "2"]


@pytest.mark.parametrize("args, message", [
    (["--size", "4"], "--size must be in 8..128"), (["--lr", "0"], "--lr must be in (0, 1]"),
    (["--bitflip", "0.5"], "--bitflip must be in [0, 0.5)"), (["--t-frames", "5"], "--t-frames must be in 12..200"),
    (["--batch", "9", "--n-train", "8"], "--batch must be at most --n-train = 8"),
    (["--kind", "lstm"], "argument --kind: invalid choice"), (["--out", "nowhere/x.json"], "does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    done = call_main(N.main, args, tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, message)
    assert os.listdir(tmp_path) == []


def test_tiny_training_writes_its_curves(tmp_path, capsys, monkeypatch):
    done = call_main(N.main, TINY + ["--iterations", "6", "--eval-every", "3", "--lr", "3e-3", "--out", "n.json"],
                     tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "n.json").read_text())
    h = result["history"]
    assert h["iteration"] == [3, 6] and h["train_loss"][1] < h["train_loss"][0]          # the loss falls
    assert len(result["final"]["ari_per_step"]) == 11 and -1 <= result["final"]["ari_last"] <= 1


def test_grouping_ari_of_a_perfect_and_a_merged_grouping():
    labels = np.full((2, 1, 4, 4), -1)
    labels[:, 0, :2, :2], labels[:, 0, 2:, 2:] = 0, 1                                     # two balls, frame 1
    perfect = np.zeros((1, 2, 16))
    perfect[0, 0] = (labels[1, 0] == 0).ravel()
    perfect[0, 1] = (labels[1, 0] == 1).ravel()
    merged = np.zeros((1, 2, 16))
    merged[0, 0] = 1.0
    step = lambda gamma: (None, None, None, None, gamma)                                 # noqa: E731 (em_forward's step)
    assert N.grouping_ari([step(perfect)], labels, 4)[0, 0] == 1.0
    assert N.grouping_ari([step(merged)], labels, 4)[0, 0] == 0.0


def test_copy_bces_by_hand():
    frames = np.zeros((4, 1, 10), bool)
    frames[3, 0, :2] = True                                          # steps 1 -> 2 same, 2 -> 3: 2 of 10 change
    out = N.copy_bces(frames)
    assert out["changed_fraction"] == pytest.approx(0.1)
    assert out["copy_best_flip"] == pytest.approx(-(0.1 * np.log(0.1) + 0.9 * np.log(0.9)) * 10)
    # clipped copy: per frame, a changed pixel costs -log 1e-6, an unchanged one -log(1 - 1e-6)
    assert out["copy_clipped"] == pytest.approx((2 * -np.log(1e-6) + 18 * -np.log(1 - 1e-6)) / 2)


def test_save_then_load_gives_the_same_network_and_measures(tmp_path, capsys, monkeypatch):
    done = call_main(N.main, TINY + ["--iterations", "2", "--eval-every", "2", "--out", "n.json", "--save-model",
                                     "n.npz"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    net, config = N.load_network(str(tmp_path / "n.npz"))
    cfg = N.NetworkConfig(**config)
    frames, labels = N.make_frames(cfg, cfg.n_val, "network/val")
    again = N.evaluate(net, cfg, frames, labels)
    final = json.loads((tmp_path / "n.json").read_text())["final"]
    assert again["ari_per_step"] == final["ari_per_step"] and again["bce_prediction"] == final["bce_prediction"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(N.ConfigError, match="not a model file"):
        N.load_network(str(tmp_path / "bad.npz"))
