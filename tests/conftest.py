"""Shared helpers of the tests: the repository root on sys.path, the scripts, running them."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MAIN = os.path.join(ROOT, "relational_nem_bouncing_balls.py")
VIZ = os.path.join(ROOT, "visualize_relational_nem_bouncing_balls.py")
GIF = os.path.join(ROOT, "make_relational_nem_bouncing_balls_gif.py")



def run_script(script, *args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done, message):
    """A rejected command: exit code 2 and one stderr line 'error: ...' containing message, no traceback."""
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def call_main(main, args, cwd, capsys, monkeypatch):
    """main(args) run in this process from folder cwd, as a CompletedProcess (returncode, stdout,
    stderr): the bad-input tests' fast path; an uncaught exception fails the test outright.
    argparse's own errors end in SystemExit, whose code is the return code."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    handler = signal.getsignal(signal.SIGTERM)              # main() installs its own
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    finally:
        signal.signal(signal.SIGTERM, handler)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def draw_figures(data: dict, out, only=None) -> list:
    """The figures the visualize script makes from `data` (those named in `only`, if given),
    drawn in this process (Agg) into the folder `out` (the script's own process handling is
    tested once, in test_cli); returns the names of the files in out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import visualize_relational_nem_bouncing_balls as V
    plt.rcParams.update(V.STYLE)
    run, is_sweep, is_variants = V.check_run(data, "data")
    os.makedirs(out, exist_ok=True)
    for name, draw in V.figures_for(run, is_sweep, is_variants).items():
        if only is not None and name not in only:
            continue
        fig = draw(run, plt)
        fig.savefig(os.path.join(out, name), dpi=40)
        plt.close(fig)
    return sorted(os.listdir(out))


def proc_stat(pid) -> list:
    """The fields of /proc/<pid>/stat after the command name (state first); OSError or IndexError
    where the process cannot be read."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def processes():
    """(pid, parent pid, process group, command line) of every process that can be read in /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = proc_stat(entry)
                with open(f"/proc/{entry}/cmdline") as f:
                    cmd = f.read()
            except (OSError, IndexError):
                continue
            yield int(entry), int(fields[1]), int(fields[3]), cmd


# ---------------------------------------------------------------- slow checks on the second core
# A test that recomputes a slow slice of a committed result asks for the fixture slow_slices_result:
# when the tests start (not at collection), one background process recomputes every slow slice
# (test_committed_results.slow_slices) beside the other tests, which run first.
SLOW_FIXTURE = "slow_slices_result"
_background = {}


def _needs_slow_slices(item) -> bool:
    return SLOW_FIXTURE in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """The tests that wait for the background process run last, when it has had the most time."""
    items.sort(key=_needs_slow_slices)


def pytest_runtestloop(session):
    """Starts the background process when the tests run (never for --collect-only) and a collected
    test needs it; returns None, so that pytest's own loop then runs the tests."""
    if session.config.option.collectonly or not any(_needs_slow_slices(item) for item in session.items):
        return None
    folder = tempfile.mkdtemp(prefix="rnem-tests-")
    out = os.path.join(folder, "slow_slices.json")
    code = f"import test_committed_results as T; T.slow_slices({out!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), ROOT]),
           "OPENBLAS_NUM_THREADS": "1"}                      # one core: the foreground tests have the other
    with open(os.path.join(folder, "stderr.txt"), "wb") as err:      # a file, not a pipe: it never fills and blocks
        _background.update(folder=folder, out=out, process=subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            preexec_fn=lambda: os.nice(10)))                   # the tests in the foreground come first
    return None


def pytest_sessionfinish(session, exitstatus):
    """Nothing outlives the session: the background process is stopped and its folder removed."""
    process = _background.pop("process", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    if "folder" in _background:
        import shutil
        shutil.rmtree(_background.pop("folder"), ignore_errors=True)


SLOW_CPU_S = 120         # the slow slices' budget in CPU seconds: a machine busy with other work waits longer, not fails
SLOW_WALL_S = float(os.environ.get("RNEM_SLOW_WAIT_S", 1200))   # ... and a cap on the wall time, so nothing hangs


def cpu_seconds(pid: int):
    """User + system CPU seconds a running process has used (None where /proc cannot tell)."""
    try:
        fields = proc_stat(pid)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def wait_for(process) -> bytes:
    """The background process's stderr once it has ended; killed (AssertionError) when it has used
    SLOW_CPU_S of CPU, or SLOW_WALL_S of wall time (or SLOW_CPU_S where /proc does not say)."""
    start = time.monotonic()
    while process.poll() is None:
        cpu, wall = cpu_seconds(process.pid), time.monotonic() - start
        if (cpu if cpu is not None else wall) > SLOW_CPU_S or wall > SLOW_WALL_S:
            process.kill()
            process.communicate()
            raise AssertionError(f"the slow slices took more than {SLOW_CPU_S} s of CPU or {SLOW_WALL_S:.0f} s "
                                 f"(RNEM_SLOW_WAIT_S sets the wall cap)")
        time.sleep(0.2)
    with open(os.path.join(_background["folder"], "stderr.txt"), "rb") as f:
        return f.read()


class SlowSlices(dict):
    """The background process's slices by name; reading one that failed fails with its traceback."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, dict) and "error" in value:
            raise AssertionError(f"recomputing the slow slice {name} failed:\n{value['error']}")
        return value


@pytest.fixture(scope="session")
def slow_slices_result():
    """The background process's answer (see wait_for)."""
    process = _background.get("process")
    assert process is not None, "the background check was not started"
    err = wait_for(process)
    assert process.returncode == 0, err.decode(errors="replace")
    with open(_background["out"]) as f:
        return SlowSlices(json.load(f))
