"""The command lines: determinism, bad input, provenance (a --quick run with both companion scripts is the
quick start's test, tests/test_quick_start.py)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

import relational_nem_bouncing_balls as R
from rnem import state_config
from conftest import call_main, GIF, MAIN, ROOT, VIZ, assert_one_line_error, run_script

TINY = ["--epochs", "2", "--n-train", "16", "--n-val", "4", "--n-eval", "4", "--t-eval", "8",
        "--eval-k", "4,3", "--n-samples", "2"]


def test_same_seed_same_numbers_serial_or_parallel():
    a = R.run(R.config_from_args(TINY + ["--jobs", "1"]), log=None)
    b = R.run(R.config_from_args(TINY + ["--jobs", "2"]), log=None)
    for key in ("history", "rollout", "samples"):
        assert a[key] == b[key]
    c = R.run(R.config_from_args(TINY + ["--jobs", "1", "--seed", "1"]), log=None)
    assert c["history"] != a["history"]


BAD_MAIN = [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--batch", "-3"], "--batch must be a positive integer"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--n-train", "0"], "--n-train must be a positive integer"),
    (["--t-train", "4"], "--t-train must be at least --t-bptt + 1 = 5"),
    (["--t-eval", "1"], "--t-eval must be at least 2"),
    (["--eval-k", "4,x"], "--eval-k must be comma-separated integers"),
    (["--eval-k", "4,1"], "--eval-k values must be at least 2"),
    (["--eval-k", "40"], "--eval-k 40: at most"),
    (["--k-train", "1"], "--k-train values must be at least 2 balls"),
    (["--k-train", "3,1"], "--k-train values must be at least 2 balls"),
    (["--k-train", "4,4"], "--k-train lists a K twice"),
    (["--k-train", "2,3,4", "--n-train", "2"], "--n-train 2 is smaller than the 3 training K"),
    (["--agg", "softmax"], "--agg must be one of mean, sum, attention"),
    (["--agg", "mean,sum"], "--agg takes one of mean, sum, attention for a single run"),
    (["--curriculum", "2,3"], "--curriculum is a sweep option"),
    (["--radius", "0.3"], "--radius must be in (0, 0.25)"),
    (["--dt", "0"], "--dt must be in (0, 0.1]"),
    (["--batch", "100000"], "--batch 100000 is larger than the"),
    (["--n-samples", "99"], "--n-samples must be at most --n-eval"),
    (["--out", "missing_folder/run.json"], "folder"),
    (["--epochs", "two"], "argument --epochs: invalid int value"),
    (["--dtype", "float16"], "argument --dtype: invalid choice"),
]


@pytest.mark.parametrize("args,message", BAD_MAIN)
def test_bad_input_main(tmp_path, args, message, capsys, monkeypatch):
    assert_one_line_error(call_main(R.main, args, tmp_path, capsys, monkeypatch), message)
    assert os.listdir(tmp_path) == []                        # nothing written


def test_out_is_a_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    done = run_script(MAIN, "--out", "sub", cwd=tmp_path)
    assert done.returncode == 2 and "is a folder" in done.stderr


@pytest.mark.parametrize("script", [VIZ, GIF])
def test_bad_input_companions(tmp_path, script, capsys, monkeypatch):
    import make_relational_nem_bouncing_balls_gif
    import visualize_relational_nem_bouncing_balls
    main = (make_relational_nem_bouncing_balls_gif if script == GIF else visualize_relational_nem_bouncing_balls).main

    def check(args, message):
        assert_one_line_error(call_main(main, args, tmp_path, capsys, monkeypatch), message)
    check(["--run", "nope.json"], "file not found")
    (tmp_path / "bad.json").write_text("{not json")
    check(["--run", "bad.json"], "not valid JSON")
    (tmp_path / "partial.json").write_text(json.dumps({"config": {}}))
    check(["--run", "partial.json"], "missing key")
    assert sorted(os.listdir(tmp_path)) == ["bad.json", "partial.json"]
    # the scripts as programs: one line, exit code 2, no traceback
    assert_one_line_error(run_script(script, "--run", "nope.json", cwd=tmp_path), "file not found")


def test_docs_tables_are_made_from_the_committed_results():
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    import tables
    for path, make in tables.DOCUMENTS.items():
        assert tables.current(path) == make(), f"{path} is out of date: run python3 docs/tables.py --write"


def test_readme_python_example_runs():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(ROOT, "results", "run_simulator.json")) as f:            # the number the README states
        committed = json.load(f)["long_horizon"]["8"]["relational"]["horizon"]
    assert float(done.stdout.split()[-1]) == committed and f"# {committed}, as results/run_simulator.json" in code


def test_one_vocabulary_across_the_scripts():
    # the same thing has one name in every script's config (balls n_*, the test set n_eval, the
    # training length steps); a stored config under the old names loads under the new ones
    import relational_nem_interactions as I
    import relational_nem_network as N
    import relational_nem_pixels as P
    from rnem.cli import RENAMED, stored_config
    classes = (state_config.Config, N.NetworkConfig, P.PixelConfig, I.InteractionsConfig)
    for config_class in classes:
        names = {f.name for f in dataclasses.fields(config_class)}
        assert not names & set(RENAMED), (config_class.__name__, names & set(RENAMED))
    for name in ("n_eval", "steps", "n_balls", "eval_k"):         # each means one thing, of one type
        types = {type(f.default) for c in classes for f in dataclasses.fields(c) if f.name == name}
        assert len(types) <= 1 or name == "n_balls", (name, types)  # n_balls: a range ("6-8") in the pixels only
    old = N.NetworkConfig(n_balls=3, n_eval=9, steps=7)
    stored = {("k_balls" if k == "n_balls" else "n_test" if k == "n_eval" else "iterations" if k == "steps" else k): v
              for k, v in dataclasses.asdict(old).items()}
    assert stored_config(N.NetworkConfig, stored) == old
    cfg = stored_config(I.InteractionsConfig, {"k_balls": 3, "eval_k": "3,4"})
    assert (cfg.n_balls, cfg.eval_k) == (3, (3, 4))
    assert stored_config(I.InteractionsConfig, {"eval_k": [5, 6]}).eval_k == (5, 6)
    assert stored_config(P.PixelConfig, {"n_seq": 4, "train_iters": 2, "gone": 1}, known_only=True).n_eval == 4
    with pytest.raises(TypeError):
        stored_config(P.PixelConfig, {"gone": 1})
