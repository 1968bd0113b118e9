"""Reproducibility across BLAS kernels, worker processes, saved models, and what bad input,
signals and shared folders get: nothing clobbered, nothing hung, nothing left behind."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import relational_nem_bouncing_balls as R
from rnem import blas, cli, rollout_measures, state_config, state_models, state_training
from rnem import files, pictures
from conftest import call_main, GIF, MAIN, ROOT, VIZ, assert_one_line_error, processes, run_script

TINY = ["--epochs", "1", "--n-train", "16", "--n-val", "4", "--n-eval", "4", "--t-eval", "8", "--t-long", "12",
        "--eval-k", "3,4", "--n-samples", "1"]
TINY_CFG = R.config_from_args(TINY + ["--no-save"])


def run_under_kernel(tmp_path, coretype, dtype):
    env = {key: value for key, value in os.environ.items() if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = tmp_path / f"{coretype or 'default'}-{dtype}.json"
    done = subprocess.run([sys.executable, MAIN, *TINY, "--epochs", "2", "--dtype", dtype, "--jobs", "1",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def numbers(payload):
    """Every float of the sections that depend on training, flattened."""
    flat = []

    def walk(value):
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, float):
            flat.append(value)
    for key in ("history", "rollout", "one_step", "long_horizon"):
        walk(payload[key])
    return np.array(flat)


def test_float64_gives_the_same_numbers_under_two_blas_kernels(tmp_path):
    a = run_under_kernel(tmp_path, "", "float64")
    b = run_under_kernel(tmp_path, "Nehalem", "float64")                 # SSE kernels, on every x86-64 CPU
    if a["env"]["blas"]["library"] != "OpenBLAS":
        pytest.skip("the kernel switch is OpenBLAS's")
    assert b["env"]["blas"]["kernel"] == "Nehalem" and a["env"]["blas"]["kernel"] != "Nehalem"
    x, y = numbers(a), numbers(b)
    assert len(x) == len(y) > 500
    # float64 products differ between kernels only in their last bits; training amplifies that
    # to far below 1e-9 relative over this run (float32 would differ by percents)
    np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    assert a["env"]["numbers_depend_on"] == "source_sha256, package_sha256, config"


def test_workers_run_one_blas_thread_whatever_the_parent_loaded(tmp_path):
    # numpy imported first, with no thread variable set: the parent's OpenBLAS starts all its threads
    env = {key: value for key, value in os.environ.items() if key not in blas.BLAS_THREAD_VARS}
    code = ("import numpy, json, sys; sys.path.insert(0, sys.argv[1]); import relational_nem_bouncing_balls as R; from rnem import blas; "
            "cfg = R.config_from_args(sys.argv[2:]); p = R.run(cfg, log=None); "
            "print(json.dumps([blas.blas_info()['threads'], p['timing']['blas_threads']]))")
    done = subprocess.run([sys.executable, "-c", code, ROOT, *TINY, "--jobs", "2", "--no-save"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    parent, workers = json.loads(done.stdout.splitlines()[-1])
    if parent is None:
        pytest.skip("no OpenBLAS to ask for its thread count")
    assert parent == min(os.cpu_count(), 64)                      # the parent kept what numpy chose ...
    assert workers == {"non_relational": 1, "relational": 1}      # ... the workers run one thread each


def test_save_then_load_gives_the_same_evaluation(tmp_path, capsys, monkeypatch):
    trained = run_script(MAIN, *TINY, "--save-model", "m.npz", "--out", "a.json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    loaded = call_main(R.main, [*TINY, "--load-model", "m.npz", "--out", "b.json"], tmp_path, capsys, monkeypatch)
    assert loaded.returncode == 0, loaded.stderr
    assert "epoch" not in loaded.stdout                             # no training
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    for key in ("history", "rollout", "one_step", "long_horizon", "samples"):
        assert a[key] == b[key], key
    assert b["loaded_model"]["path"] == "m.npz" and b["loaded_model"]["source_sha256"] == a["env"]["source_sha256"]
    # the Python API: load_models, rollout, then the metrics
    models = state_models.load_models(str(tmp_path / "m.npz"))
    assert sorted(models) == ["stub.non_relational", "stub.relational"]
    truth, _ = state_training.make_data(R.config_from_args(TINY + ["--no-save"]))[2][4]
    pred = state_training.rollout(models["stub.relational"], truth[0], truth.shape[0])
    assert pred.shape == truth.shape
    metrics = rollout_measures.rollout_metrics(pred, truth)
    assert metrics["mean_vel_mse"] == pytest.approx(a["rollout"]["4"]["relational"]["mean_vel_mse"], rel=1e-12)
    # new evaluation K without retraining
    more = call_main(R.main, [*TINY, "--load-model", "m.npz", "--eval-k", "5,6", "--out", "c.json"], tmp_path, capsys,
                     monkeypatch)
    assert more.returncode == 0 and list(json.loads((tmp_path / "c.json").read_text())["rollout"]) == ["5", "6"]


def test_bad_model_files(tmp_path, capsys, monkeypatch):
    assert call_main(R.main, [*TINY, "--save-model", "m.npz", "--no-save"], tmp_path, capsys, monkeypatch).returncode == 0
    with np.load(tmp_path / "m.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    np.savez(tmp_path / "short.npz", **{**arrays, "stub.relational": arrays["stub.relational"][:-1]})
    np.savez(tmp_path / "nometa.npz", **{k: v for k, v in arrays.items() if k != "meta"})
    np.savez(tmp_path / "nan.npz", **{**arrays, "stub.relational": arrays["stub.relational"] * np.nan})
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    (tmp_path / "text.npz").write_text("not a zip")
    before = sorted(os.listdir(tmp_path))
    for name, message in (("missing.npz", "file not found"), ("text.npz", "not a model file"),
                          ("pickled.npz", "not a model file"), ("nometa.npz", "not a model file"),
                          ("short.npz", "stub.relational has 6347 parameters, but its config"),
                          ("nan.npz", "non-finite parameters")):
        if name in ("short.npz", "nan.npz"):             # the arrays are checked when the models are built
            assert_one_line_error(call_main(R.main, ["--load-model", name], tmp_path, capsys, monkeypatch), message)
        else:                                            # the rest while the options are parsed
            with pytest.raises(cli.ConfigError, match=message):
                R.config_from_args(["--load-model", str(tmp_path / name)])
        if name != "missing.npz":
            with pytest.raises(cli.ConfigError, match=message):
                state_models.load_models(str(tmp_path / name))
    assert_one_line_error(run_script(MAIN, "--load-model", "text.npz", cwd=tmp_path), "--load-model text.npz: not a")
    assert_one_line_error(run_script(MAIN, "--load-model", "m.npz", "--hidden", "32", cwd=tmp_path),
                          "--hidden 32 does not match the model loaded from m.npz (trained with 64)")
    assert sorted(os.listdir(tmp_path)) == before


def test_quick_never_writes_over_a_full_run(tmp_path):
    full = {"config": {"quick": False}, "rollout": {}}
    (tmp_path / "run.json").write_text(json.dumps(full))
    done = run_script(MAIN, "--quick", *TINY, cwd=tmp_path)
    assert done.returncode == 0 and "wrote runs/run_quick.json" in done.stdout
    assert_one_line_error(run_script(MAIN, "--quick", *TINY, "--out", "run.json", cwd=tmp_path),
                          "--out run.json holds the results of a full run")
    assert json.loads((tmp_path / "run.json").read_text()) == full


def test_explicit_flags_win_over_quick_even_at_their_default():
    cfg = R.config_from_args(["--quick", "--t-long", "100", "--epochs", "60"])
    assert cfg.t_long == 100 and cfg.epochs == 60 and cfg.n_train == state_config.QUICK["n_train"]
    assert R.config_from_args(["--quick"]).t_long == state_config.QUICK["t_long"]


def test_help_shows_defaults_choices_quick_settings_and_examples():
    done = run_script(MAIN, "--help")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    for piece in ("(default: 60)", "(default: 'float64')", "{float64,float32}", "one of mean, sum, attention",
                  "--epochs 2 --n-train 64", "Examples:", "--seeds 0-9"):
        assert piece in text, piece


BAD = [
    (["--seeds", ""], "--seeds must list seeds"),
    (["--seeds", "0-99999999999"], "--seeds lists 100000000000 seeds; a sweep takes at most"),
    (["--hidden", "100000000"], "mostly for --hidden"),
    (["--n-eval", "1000000000000"], "mostly for --n-eval, --t-eval, --t-long"),
    (["--n-attention", "60"], "--n-attention must be at most --n-eval = 50"),
    (["--out", ""], "--out must be a file path"),
    (["--out", "x.json/"], "--out x.json/ is a folder"),
    (["--save-model", "m.json"], "--save-model m.json: the file name must end in .npz"),
    (["--save-model", "m.npz", "--seeds", "0-1"], "--save-model saves or loads the two models of one run"),
    (["--seeds", "0-1", "--seed-dir", "/proc/no-such-sweep"], "--seed-dir /proc/no-such-sweep: folder /proc"),
    (["--out", "/proc/run.json"], "--out /proc/run.json: folder /proc is not writable"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_before_any_work(tmp_path, args, message, capsys, monkeypatch):
    done = call_main(R.main, args, tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, message)
    assert "epoch" not in done.stdout and os.listdir(tmp_path) == []


def test_unplaceable_balls_name_the_options(tmp_path, capsys, monkeypatch):
    # 16 balls pass the packing bound at r = 0.11 but do not fit by random placement
    done = call_main(R.main, ["--eval-k", "4,16"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--eval-k 4,16: could not place 16 balls of radius 0.11")
    assert "--radius" in done.stderr and "epoch" not in done.stdout
    done = call_main(R.main, ["--k-train", "16", "--seeds", "0-1"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, "--k-train 16: could not place 16 balls")
    assert os.listdir(tmp_path) == []


def test_divergence_is_one_line(tmp_path):
    done = run_script(MAIN, *TINY, "--lr", "1e30", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "Warning" not in done.stderr
    assert done.stderr.startswith("error: training the ") and done.stderr.count("\n") == 1
    assert "training diverged (non-finite loss) in epoch 1; try a smaller --lr (got 1e+30)" in done.stderr
    assert os.listdir(tmp_path) == []


def kill_own_worker_for_seed_1(job):
    """A sweep job whose worker process dies (SIGKILL) for seed 1, as if killed by the OOM killer."""
    if job[0].seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return R._sweep_job(job)


def test_a_killed_worker_is_a_failed_seed(tmp_path):
    cfg = dataclasses.replace(TINY_CFG, seeds="0-2", jobs=2, seed_dir=str(tmp_path / "runs"))
    summary = R.run_sweep(cfg, log=lambda *_: None, job_fn=kill_own_worker_for_seed_1)
    assert summary["seeds"] == [0, 2]
    assert summary["failed"] == {"1": "WorkerDied: worker died (killed by signal 9)"}
    assert sorted(os.listdir(cfg.seed_dir)) == ["seed_0.json", "seed_1.json", "seed_2.json"]   # no lock, no temp


def sweep_process(tmp_path, *args):
    return subprocess.Popen([sys.executable, MAIN, "--seeds", "0-5", "--epochs", "20", "--seed-dir", "runs", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def workers_of(pid):
    """Process ids whose parent is pid and that run a multiprocessing worker."""
    return [child for child, parent, _, cmd in processes() if parent == pid and "spawn_main" in cmd]


@pytest.mark.parametrize("how", ["SIGTERM to the main process", "Ctrl-C to the process group"])
def test_a_stopped_sweep_stops_its_workers_and_leaves_nothing(tmp_path, how):
    proc = sweep_process(tmp_path)
    deadline = time.time() + 30
    while len(workers_of(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    workers = workers_of(proc.pid)
    assert len(workers) == 2
    time.sleep(0.5)                                                 # let them import and start training
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == (143 if how.startswith("SIGTERM") else 130)
    assert err.startswith("error: stopped by SIG") and err.count("\n") == 1, err
    time.sleep(0.3)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}") and
                open(f"/proc/{pid}/stat").read().split()[2] != "Z"]   # no worker left running
    assert os.listdir(tmp_path) == []                               # no seed folder, no summary, no temp


def test_two_sweeps_cannot_share_a_seed_dir(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "seeds"
    runs.mkdir()
    (runs / ".lock").write_text(str(os.getpid()))                    # a live process holds it
    assert_one_line_error(call_main(R.main, [*TINY, "--seeds", "0-1", "--seed-dir", "seeds"], tmp_path, capsys, monkeypatch),
                          f"--seed-dir seeds is in use by another sweep (process {os.getpid()})")
    assert os.listdir(runs) == [".lock"]
    (runs / ".lock").write_text("999999999")                         # stale: that process is gone
    done = call_main(R.main, [*TINY, "--seeds", "0-1", "--seed-dir", "seeds", "--jobs", "1"], tmp_path, capsys, monkeypatch)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(runs)) == ["seed_0.json", "seed_1.json"]
    # a later sweep of another config does not overwrite these files
    assert_one_line_error(run_script(MAIN, *TINY, "--lr", "0.001", "--seeds", "0-1", "--seed-dir", "seeds",
                                     cwd=tmp_path), "holds a run of a different config (lr)")


def test_per_seed_files_of_two_folders_merge(tmp_path, capsys, monkeypatch):
    for seeds, folder in (("0", "a"), ("1", "b")):
        done = call_main(R.main, [*TINY, "--seeds", seeds, "--seed-dir", folder, "--jobs", "1", "--out", f"{folder}.json"],
                         tmp_path, capsys, monkeypatch)
        assert done.returncode == 0, done.stderr
    done = call_main(R.main, ["--aggregate", "a/seed_0.json", "b/seed_1.json", "--out", "merged.json"], tmp_path, capsys,
                     monkeypatch)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "merged.json").read_text())["seeds"] == [0, 1]


@pytest.fixture(scope="module")
def quick_payload():
    return R.run(TINY_CFG, log=None)


@pytest.mark.parametrize("change,message", [
    (lambda p: p.update(rollout=[1, 2]), "rollout, one_step and long_horizon must be"),
    (lambda p: p["rollout"]["4"].update(relational=[0.1]), "K=4 vel_err of relational"),
    (lambda p: p["rollout"]["4"]["relational"].update(mean_vel_err="small"), "K=4 vel_err of relational is not a"),
    (lambda p: p.update(config=[]), "config and env must be objects"),
])
def test_aggregate_checks_types(tmp_path, change, message, quick_payload, capsys, monkeypatch):
    payload = json.loads(json.dumps(quick_payload))
    change(payload)
    files.write_json_atomic(str(tmp_path / "seed_0.json"), payload)
    assert_one_line_error(call_main(R.main, ["--aggregate", "seed_0.json"], tmp_path, capsys, monkeypatch),
                          "--aggregate seed_0.json: malformed per-seed JSON (" + message.split("(", 1)[-1])


def companion_main(script):
    """The main() of a companion script, imported (its checks run before any drawing)."""
    import make_relational_nem_bouncing_balls_gif
    import visualize_relational_nem_bouncing_balls
    return (make_relational_nem_bouncing_balls_gif if script == GIF else visualize_relational_nem_bouncing_balls).main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quick")
    done = run_script(MAIN, *TINY, "--out", "run.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads((folder / "run.json").read_text())


@pytest.mark.parametrize("script", [VIZ, GIF])
@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(samples=[1, 2]), "samples must be an object"),
    (lambda r: r["samples"].update(radius=1e9), "radius must be a number in (0, 0.25)"),
    (lambda r: r["samples"].update(relational="abc"), "relational is not an array of numbers"),
    (lambda r: r["samples"].update(relational=[[[0.5, 0.5]]] * 3), "relational must be finite numbers of shape"),
    (lambda r: r["samples"].update(relational=[[[[0.5, 0.5, 0.0, 0.0]]]] * 2), "relational has shape (2, 1, 1, 4)"),
])
def test_companions_check_types(tmp_path, quick_run, script, change, message, capsys, monkeypatch):
    run = json.loads(json.dumps(quick_run))
    change(run)
    (tmp_path / "run.json").write_text(json.dumps(run))
    done = call_main(companion_main(script), ["--run", "run.json", "--out", "out.gif" if script == GIF else "figs"],
                     tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, message)
    assert os.listdir(tmp_path) == ["run.json"]


def test_visualize_checks_section_types(tmp_path, quick_run, capsys, monkeypatch):
    run = dict(quick_run, rollout=[1, 2])
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert_one_line_error(call_main(companion_main(VIZ), [], tmp_path, capsys, monkeypatch),
                          "rollout must be a non-empty object")
    run = dict(quick_run, rollout={"4": [1]}, long_horizon={"4": []},  # pass the checks, fail while drawing
               history={"non_relational": {}, "relational": {}})
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert_one_line_error(run_script(VIZ, cwd=tmp_path), "malformed data for")
    assert os.listdir(tmp_path) == ["run.json"]


def test_gif_fps_range_and_atomic_write(tmp_path, quick_run):
    (tmp_path / "run.json").write_text(json.dumps(quick_run))
    (tmp_path / "old.gif").write_bytes(b"GIF89a previous")
    for fps in ("0.001", "0", "nan", "51"):
        assert_one_line_error(run_script(GIF, "--fps", fps, "--out", "old.gif", cwd=tmp_path), "--fps must be in [0.1, 50]")
    done = run_script(GIF, "--run", "run.json", "--fps", "0.1", "--out", "slow.gif", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # a crash while writing (the GIF writer fails) leaves the old file whole and no temporary file
    def failing_write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half a GIF")
        raise OSError("disk full")
    with pytest.raises(OSError):
        files.write_atomic(str(tmp_path / "old.gif"), failing_write, ".gif")
    assert (tmp_path / "old.gif").read_bytes() == b"GIF89a previous"
    assert sorted(os.listdir(tmp_path)) == ["old.gif", "run.json", "slow.gif"]


def test_gif_has_titles_and_a_step_line(quick_run):
    import make_relational_nem_bouncing_balls_gif as G
    frames, palette = G.build_frames(quick_run["samples"], 0, 64, quick_run["config"])
    ink = np.flatnonzero((palette == 0).all(axis=1))[0]              # black: text only
    assert (frames[:, :G.TITLE] == ink).any(axis=(1, 2)).all()       # titles on every frame
    footer = frames[:, -G.TITLE:] == ink
    assert footer.any(axis=(1, 2)).all()
    assert not (footer[0] == footer[-1]).all()                       # the step number changes
    assert pictures.panel_titles({"agg": "attention"})["relational"] == "relational (attention)"


@pytest.mark.parametrize("script", [VIZ, GIF])
@pytest.mark.parametrize("option,given,kind", [
    ("--run", "results/pixels.json", "relational_nem_pixels.py; give it as --pixels"),
    ("--network", "results/pixels.json", "relational_nem_pixels.py; give it as --pixels"),
    ("--pixels", "results/network/r_nem_seed0.json", "relational_nem_network.py; give it as --network"),
    ("--run", "results/network_summary.json", "relational_nem_network.py; give it as --network"),
    ("--network", "run.json", "relational_nem_bouncing_balls.py; give it as --run"),
])
def test_a_result_of_another_script_is_named_with_the_option_that_reads_it(tmp_path, capsys, monkeypatch, script,
                                                                           option, given, kind):
    done = call_main(companion_main(script), [option, os.path.join(ROOT, given), "--out",
                                              "x.gif" if script == GIF else "figs"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, f"this is a result of {kind}")
    assert os.listdir(tmp_path) == []


def _without_measures(summary):
    for model in summary["models"].values():
        model.pop("measures")


def _short_radii(result):
    sample = result["test"]["balls"]["sample"]
    sample["radii"] = sample["radii"][:1]


@pytest.mark.parametrize("given,spoil,message", [
    ("results/network_summary.json", _without_measures, "malformed summary (KeyError: 'measures')"),
    ("results/network/r_nem_seed0.json", _short_radii, "malformed sample"),
])
def test_a_malformed_network_result_is_one_line_and_leaves_no_folder(tmp_path, capsys, monkeypatch, given, spoil,
                                                                       message):
    with open(os.path.join(ROOT, given)) as f:
        data = json.load(f)
    spoil(data)
    (tmp_path / "bad.json").write_text(json.dumps(data))
    done = call_main(companion_main(VIZ), ["--network", "bad.json", "--out", "figs"], tmp_path, capsys, monkeypatch)
    assert_one_line_error(done, message)
    assert os.listdir(tmp_path) == ["bad.json"]
