"""A new user's first contact: the README's quick start, run in a copy of the repository, leaves
every tracked file as it was (its outputs go to runs/, which git ignores), and the README stays
short and self-contained."""
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT

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
