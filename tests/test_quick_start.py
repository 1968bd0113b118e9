"""A new user's first contact: the README's quick start, run in a copy of the repository, writes the
run, its figures and its GIF as documented and leaves every tracked file as it was (its outputs go to
runs/, which git ignores), and the README stays short and self-contained."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from rnem import state_config

README = os.path.join(ROOT, "README.md")


def readme() -> str:
    with open(README) as f:
        return f.read()


def quick_start_commands() -> list:
    """The python3 commands of the README's first bash block, but pip and pytest; the design
    card's full run gets the --quick budget here (the same code and outputs, seconds not a minute)."""
    block = readme().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        command = line.split("#", 1)[0].split()
        if command[:1] != ["python3"] or command[1] == "-m":
            continue
        if command[1:] == ["relational_nem_bouncing_balls.py", "--seed", "0"]:
            command += ["--quick", "--out", "runs/run.json"]
        commands.append(command[1:])
    return commands


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_the_quick_start_changes_no_tracked_file(tmp_path):
    commands = quick_start_commands()
    assert len(commands) == 4 and commands[0][:3] == ["relational_nem_bouncing_balls.py", "--seed", "0"], commands
    clone = tmp_path / "clone"
    # the working tree's tracked files but the results, models and pictures (70 MB the commands do not
    # read): a command that writes one of those shows in git status as an untracked file all the same
    for name in git("ls-files", "-z", cwd=ROOT).split("\0"):
        if name and os.path.exists(os.path.join(ROOT, name)) and not name.endswith((".json", ".npz", ".png", ".gif")):
            os.makedirs(clone / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), clone / name)
    git("init", "-q", cwd=clone)
    git("add", "-A", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "copy", cwd=clone)
    for command in commands:
        done = subprocess.run([sys.executable, *command], cwd=clone, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    assert sorted(os.listdir(clone / "runs")) == ["relational_nem_bouncing_balls.gif", "run.json", "run_quick.json", "viz"]
    check_run_figures_and_gif(clone)


def check_run_figures_and_gif(clone):
    """What the quick start wrote is what the README says: a run with every section, its eight
    figures, and a GIF whose palette-indexed frames decode to exactly the intended colours."""
    run = json.loads((clone / "runs" / "run.json").read_text())
    assert set(run) >= {"config", "env", "params", "timing", "history", "rollout", "one_step", "long_horizon",
                        "samples"}
    assert run["params"] == {"non_relational": 4740, "relational": 6348}
    assert run["config"]["quick"] and run["config"]["epochs"] == state_config.QUICK["epochs"]
    assert list(run["rollout"]) == ["4", "3", "5", "6"]
    for key, entry in run["rollout"].items():
        assert entry["K"] == int(key) and entry["T"] == run["config"]["t_eval"]
        for model in state_config.MODEL_KINDS:
            for metric in ("pos_err", "vel_err", "pos_mse", "vel_mse"):
                assert len(entry[model][metric]) == entry["T"]
                assert entry[model][f"mean_{metric}"] == pytest.approx(np.mean(entry[model][metric]))
    for model in state_config.MODEL_KINDS:
        assert run["history"][model]["epoch"] == list(range(1, state_config.QUICK["epochs"] + 1))
        assert run["timing"]["steps_per_sec"][model] > 0
    assert np.asarray(run["samples"]["truth"]).shape == (run["config"]["t_eval"], 3, 4, 4)
    with open(clone / "relational_nem_bouncing_balls.py", "rb") as f:
        assert run["env"]["source_sha256"] == hashlib.sha256(f.read()).hexdigest()

    assert sorted(os.listdir(clone / "runs" / "viz")) == sorted(
        ["training_curves.png", "rollout_errors.png", "extrapolation_summary.png", "sample_trajectories.png",
         "rendered_frames.png", "collision_metrics.png", "long_horizon.png", "energy_overlap.png"])
    import imageio.v2 as imageio
    import make_relational_nem_bouncing_balls_gif as G
    decoded = imageio.mimread(clone / "runs" / "relational_nem_bouncing_balls.gif")
    assert len(decoded) == run["config"]["t_eval"]
    frames, palette = G.build_frames(run["samples"], 0, 160)          # the GIF script's default sample and size
    for t in (0, len(frames) // 2, len(frames) - 1):
        np.testing.assert_array_equal(np.asarray(decoded[t])[..., :3], palette[frames[t]])


def test_the_readme_is_short_and_points_nowhere_outside_the_repository():
    text = readme()
    assert text.count("\n") <= 200
    for path in [README] + [os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs
                            if f.endswith((".py", ".md", ".sh")) and "/." not in d and "tests" not in d]:
        with open(path) as f:
            assert "../shared" not in f.read(), f"{os.path.relpath(path, ROOT)} points outside the repository"
    for link in re.findall(r"\]\(([^)#]+)", text):                      # every relative link of the README exists
        if "://" not in link:
            assert os.path.exists(os.path.join(ROOT, link)), link
