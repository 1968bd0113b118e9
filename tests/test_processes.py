"""The promises that hold however the code is called: the same numbers whatever BLAS thread
count the caller has, no hang when worker processes cannot start, nothing left running at exit,
divergence caught by size, and the last bad inputs."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import relational_nem_bouncing_balls as R
from rnem import blas, cli, optim, state_training
from rnem.processes import run_workers
from conftest import GIF, MAIN, ROOT, VIZ, assert_one_line_error, call_main, processes
from test_robustness import TINY, TINY_CFG, companion_main

HANG = 60          # seconds: a call that has not ended by then hangs, and the test fails instead of the suite


def set_blas_threads(n):
    """Sets this process's OpenBLAS thread count; returns the count before (None: not OpenBLAS)."""
    found = blas._openblas()
    if found is None:
        return None
    lib, prefix, suffix = found
    before = int(getattr(lib, f"{prefix}get_num_threads{suffix}")())
    getattr(lib, f"{prefix}set_num_threads{suffix}")(n)
    return before


def test_in_process_numbers_do_not_depend_on_the_callers_blas_threads():
    # numpy is imported (conftest) before the module, so the module's environment setting came
    # too late: the thread count here is whatever the caller has. Bigger products than TINY's
    # so that OpenBLAS does split them when it may.
    cfg = dataclasses.replace(TINY_CFG, n_eval=64, batch=64, jobs=1)
    before = set_blas_threads(2)
    if before is None:
        pytest.skip("the thread count is set through OpenBLAS")
    try:
        two = R.run(cfg, log=None)
        assert blas.blas_info()["threads"] == 2                        # restored after the call
        set_blas_threads(1)
        one = R.run(cfg, log=None)
    finally:
        set_blas_threads(before)
    for key in ("history", "rollout", "one_step", "long_horizon", "samples"):
        assert two[key] == one[key], key                            # bit for bit
    assert two["env"]["blas"]["threads"] == 1 and two["timing"]["blas_threads"]["relational"] == 1


def test_one_blas_thread_restores_the_count_also_on_error():
    before = set_blas_threads(2)
    if before is None:
        pytest.skip("the thread count is set through OpenBLAS")
    try:
        with pytest.raises(ZeroDivisionError):
            with blas.one_blas_thread():
                assert blas.blas_info()["threads"] == 1
                1 / 0
        assert blas.blas_info()["threads"] == 2
    finally:
        set_blas_threads(before)


def run_code(tmp_path, code, *args):
    """python3 code.py in tmp_path (the repository on sys.path), with a timeout that fails the test."""
    path = tmp_path / "user_script.py"
    path.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\n" + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(path), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=HANG, start_new_session=True)


def test_a_signal_another_thread_receives_is_held_until_the_worker_has_started():
    # SIGTERM to a process is handed by the kernel to any thread that does not block it (one of
    # BLAS's): its Python handler runs in the main thread, which must not raise inside
    # process.start() (a worker left without its start-up data waits for ever); it runs on leaving
    import threading
    from rnem.processes import signals_held
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            def blas_like_thread():                                 # started before the mask: not blocking
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            other = threading.Thread(target=blas_like_thread)
            other.start()
            other.join()
            for _ in range(1000):                                   # bytecodes at which a handler would run
                pass
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_script_without_a_main_guard_runs_here_instead_of_hanging(tmp_path):
    done = run_code(tmp_path, f"""
        import relational_nem_bouncing_balls as R
        sys.exit(R.main({TINY + ["--out", "q.json"]!r}))
    """)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "the worker re-ran the calling script" in done.stderr and '__name__ == "__main__"' in done.stderr
    ran_here = json.loads((tmp_path / "q.json").read_text())
    reference = R.run(TINY_CFG, log=None)                           # in workers, as usual
    for key in ("history", "rollout", "one_step", "long_horizon"):
        assert ran_here[key] == json.loads(json.dumps(reference[key])), key


def test_a_module_loaded_under_another_name_runs_here_instead_of_hanging(tmp_path):
    done = run_code(tmp_path, f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("renamed_rnem", {MAIN!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules["renamed_rnem"] = module
        spec.loader.exec_module(module)
        if __name__ == "__main__":          # a sweep's jobs run a function of the renamed module
            sys.exit(module.main({TINY + ["--seeds", "0-1", "--out", "q.json", "--seed-dir", "runs"]!r}))
    """)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "module 'renamed_rnem' was loaded under a name that a new process cannot import" in done.stderr
    assert (tmp_path / "q.json").exists()


class DiesOnArrival:
    """A job function whose worker dies (exit code 7) while it starts: unpickling it ends the process."""
    def __reduce__(self):
        return os._exit, (7,)

    def __call__(self, job):
        return "ran here", job


class Hung(Exception):
    pass


def raise_hung(signum, frame):
    raise Hung(f"no result after {HANG} s")


def test_a_worker_that_dies_before_its_job_starts_is_seen_at_once(capfd):
    previous = signal.signal(signal.SIGALRM, raise_hung)          # a hang fails this test, not the suite
    signal.alarm(HANG)
    try:
        outcomes = run_workers(DiesOnArrival(), [4, 5, 6], 2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert outcomes == [(("ran here", 4), None), (("ran here", 5), None), (("ran here", 6), None)]
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: worker processes cannot run here: a worker died while "
                                                    "starting (exit code 7); running the 3 remaining job(s)")


def group_members(pgid):
    """Process ids in the process group pgid."""
    return [pid for pid, _, group, _ in processes() if group == pgid]


def test_nothing_outlives_the_main_process(tmp_path):
    proc = subprocess.Popen([sys.executable, MAIN, *TINY, "--jobs", "2", "--no-save"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err
    assert group_members(proc.pid) == []                             # no worker, no resource tracker


def test_a_diverged_training_with_finite_numbers_is_an_error(tmp_path, capsys, monkeypatch):
    # 0.07 is the smallest of 0.03, 0.05, 0.07 whose loss ends far above where it began on this data
    done = call_main(R.main, [*TINY, "--lr", "0.07", "--jobs", "1"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "training diverged: the last epoch's mean loss" in done.stderr and "above 100x the first step's" in done.stderr
    assert os.listdir(tmp_path) == []
    assert call_main(R.main, [*TINY, "--lr", "0.05", "--no-save"], tmp_path, capsys, monkeypatch).returncode == 0


def test_a_training_that_ends_worse_than_untrained_has_failed(tmp_path, capsys, monkeypatch):
    # every step walks the weights the same way, finite and away from any minimum; the loss-ratio
    # check is switched off, so only the validation check can see it
    monkeypatch.setattr(state_training, "DIVERGED_LOSS_RATIO", float("inf"))

    class Away(optim.Adam):
        def step(self, grad):
            self.params += 0.05
    monkeypatch.setattr(state_training, "Adam", Away)
    done = call_main(R.main, [*TINY, "--jobs", "1"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "is above the untrained model's" in done.stderr, done.stderr
    assert os.listdir(tmp_path) == []


def test_a_diverged_seed_is_a_failed_seed(tmp_path):
    cfg = dataclasses.replace(TINY_CFG, seeds="0", jobs=1, lr=0.07, seed_dir=str(tmp_path / "runs"))
    with pytest.raises(cli.ConfigError, match="no successful seed"):
        R.run_sweep(cfg, log=lambda *_: None)
    failed = json.loads((tmp_path / "runs" / "seed_0.json").read_text())
    assert "training diverged: the last epoch's mean loss" in failed["error"]


@pytest.mark.parametrize("args,message", [
    (["--seeds", "\u00b2"], "--seeds must be non-negative integers"),
    (["--seeds", "0-\u0663"], "--seeds must be non-negative integers"),
])
def test_seeds_take_ascii_digits_only(tmp_path, args, message, capsys, monkeypatch):
    assert_one_line_error(call_main(R.main, args, tmp_path, capsys, monkeypatch), message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("seed", [[1], "0", True, -1, 1.5])
def test_aggregate_refuses_a_seed_that_is_not_a_number(tmp_path, seed, capsys, monkeypatch):
    (tmp_path / "seed_0.json").write_text(json.dumps({"config": {"seed": seed}, "rollout": {}, "one_step": {},
                                                      "long_horizon": {}, "env": {}}))
    assert_one_line_error(call_main(R.main, ["--aggregate", "seed_0.json", "--out", "s.json"], tmp_path, capsys,
                                    monkeypatch), "the seed must be a non-negative integer")
    assert os.listdir(tmp_path) == ["seed_0.json"]


@pytest.mark.parametrize("script", [VIZ, GIF])
def test_companions_refuse_a_failed_seed(tmp_path, script, capsys, monkeypatch):
    (tmp_path / "seed_3.json").write_text(json.dumps({"seed": 3, "variant": "mean",
                                                      "error": "FloatingPointError: diverged"}))
    out = "x.gif" if script == GIF else "figs"
    done = call_main(companion_main(script), ["--run", "seed_3.json", "--out", out], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--run seed_3.json: seed 3 failed (FloatingPointError: diverged)")
    assert os.listdir(tmp_path) == ["seed_3.json"]


@pytest.mark.parametrize("script", [VIZ, GIF])
def test_companions_take_run_or_pixels_not_both(tmp_path, script, capsys, monkeypatch):
    out = "x.gif" if script == GIF else "figs"
    for two in (["--run", "run.json", "--pixels", "p.json"], ["--pixels", "p.json", "--network", "n.json"]):
        done = call_main(companion_main(script), two + ["--out", out], tmp_path, capsys, monkeypatch)
        assert_one_line_error(done, "--run, --pixels, --network and --interactions: give one of them" if script == VIZ
                              else "--run, --pixels and --network: give one of them")
    assert os.listdir(tmp_path) == []


def test_gif_out_must_be_a_gif(tmp_path, capsys, monkeypatch):
    done = call_main(companion_main(GIF), ["--out", "my.png"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--out must be a file path ending in .gif (got 'my.png')")
    assert os.listdir(tmp_path) == []


def test_pixels_refuse_fewer_components_than_balls(tmp_path, capsys, monkeypatch):
    import relational_nem_pixels as P
    done = call_main(P.main, ["--n-balls", "9", "--out", "p.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--components must be at least the number of balls, 9 (--n-balls 9)")
    done = call_main(P.main, ["--n-balls", "6-8", "--components", "7", "--out", "p.json"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--components must be at least the number of balls, 8")
    done = call_main(P.main, ["--renderer", "learned", "--components", "3", "--n-balls", "3", "--out", "p.json"],
                     tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--train-n-balls must be at most --components (3)")
    assert os.listdir(tmp_path) == []


def test_the_blas_module_imports_no_numpy():
    # the scripts read BLAS_THREAD_VARS from it before numpy loads (numpy reads them once, at import)
    done = subprocess.run([sys.executable, "-c", "import sys, rnem.blas; assert 'numpy' not in sys.modules"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
