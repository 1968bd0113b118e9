"""The paper's network (relational_nem_network.py): time per training step beside the floor, and
what a short training gives under a second BLAS kernel.

    python3 benchmarks/network_bench.py                 # seconds per step, R-NEM and RNN-EM, float32 and float64
    python3 benchmarks/network_bench.py --kernels       # a short training under this kernel and under Sandybridge

Speed: one training step (unrolled EM forward, BPTT backward, Adam) of the default configuration
(24 px, K = 5, M = 100, batch 16, 20 frames), one BLAS thread; the models and the floor
(benchmarks/bench.py --floor) take turns, and each
figure is the median of the repeats. One R-NEM step is 2.06 G multiply-adds (counted from the
layer shapes of rnem/network.py).

Kernels: the same short training (KERNEL_ARGS: 500 steps, long enough for the components to
split the balls) run twice side by side, under this machine's OpenBLAS kernel and under
OPENBLAS_CORETYPE=Sandybridge (no FMA); prints both histories and test measures and writes them to
benchmarks/network_kernel_check.json.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import numpy as np  # noqa: E402

import relational_nem_network as N  # noqa: E402
from bench import floor_seconds  # noqa: E402
from rnem.files import write_json_atomic  # noqa: E402
from rnem.optim import Adam  # noqa: E402

GMAC_PER_STEP = 2.06      # R-NEM, 24 px, K = 5, batch 16, 19 steps, forward + backward
KERNEL_ARGS = ["--steps", "500", "--eval-every", "100", "--n-train", "1000", "--n-val", "32", "--n-eval", "64"]
KERNEL_OUT = os.path.join(ROOT, "benchmarks", "network_kernel_check.json")


def step_function(kind: str, dtype: str, cfg: N.NetworkConfig, frames: np.ndarray):
    """One training step (relational_nem_network.batch_gradient, then Adam) of a fresh network of
    this kind on batches of `frames` (T, N, D)."""
    net = N.new_network(N.NetworkConfig(kind=kind, dtype=dtype))
    adam, rng = Adam(net.flat, 1e-9), np.random.default_rng(0)

    def step():
        adam.step(N.batch_gradient(net, cfg, frames, rng)[1])
    return step


def speed(repeats: int = 5, steps: int = 10) -> None:
    cfg = N.NetworkConfig()
    frames = N.flat_frames(N.make_scenes(cfg, 64, "bench"))
    runs = {f"{kind} {dtype}": step_function(kind, dtype, cfg, frames)
            for kind in ("r_nem", "rnn_em") for dtype in ("float32", "float64")}
    times = {name: [] for name in list(runs) + ["floor"]}
    for _ in range(repeats):
        times["floor"].append(floor_seconds(reps=1))
        for name, step in runs.items():
            step()                                                    # warm the caches of this network
            t = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t) / steps)
    floor = float(np.median(times["floor"]))
    print(f"floor {floor:.2f} s (median of {repeats}: {', '.join(f'{t:.2f}' for t in times['floor'])})")
    for name in runs:
        s = float(np.median(times[name]))
        extra = f", {GMAC_PER_STEP / s:.1f} GMAC/s" if name.startswith("r_nem") else ""
        print(f"{name:16s} {s:.3f} s per step (median of {repeats} x {steps} steps{extra}); "
              f"1 500 steps: {1500 * s / 60:.1f} min = {1500 * s / floor:.0f}x the floor")


def kernels(coretype: str = "Sandybridge") -> None:
    """The same short training under this machine's kernel and under `coretype`, side by side (one
    core each); writes what differs to KERNEL_OUT."""
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for name, extra in (("here", {}), (coretype, {"OPENBLAS_CORETYPE": coretype})):
            env = {**{k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}, **extra}
            path = os.path.join(folder, f"{name}.json")
            runs[name] = (path, subprocess.Popen([sys.executable, os.path.join(ROOT, "relational_nem_network.py"),
                                                  *KERNEL_ARGS, "--out", path], env=env, stdout=subprocess.DEVNULL))
        out = {}
        for name, (path, process) in runs.items():
            if process.wait() != 0:
                raise SystemExit(f"error: the training under {name} failed")
            with open(path) as f:
                out[name] = json.load(f)
    a, b = out["here"], out[coretype]
    report = {"args": KERNEL_ARGS, "kernels": [a["env"]["blas"]["kernel"], b["env"]["blas"]["kernel"]],
              "env": a["env"], "history": {}, "test": {}}              # the code and machine (kernel: "kernels")
    for key in ("first_losses", "train_loss", "val_loss", "val_ari_last"):
        report["history"][key] = [[x, y] for x, y in zip(a["history"][key], b["history"][key])]
    for part in ("balls", "more_balls"):
        for key in ("ari_last", "bce_real", "bce_max", "sim_bce"):
            if key in a["test"][part]:                                   # (no simulation on 6-8 balls)
                report["test"][f"{part}/{key}"] = [a["test"][part][key], b["test"][part][key]]
    print(f"kernels {report['kernels'][0]} and {report['kernels'][1]}: {' '.join(KERNEL_ARGS)}")
    for section in ("history", "test"):
        for key, pairs in report[section].items():
            pairs = pairs if section == "history" else [pairs]
            diff = [abs(x - y) / max(abs(x), 1e-12) for x, y in pairs]
            print(f"{section} {key:22s} " + ", ".join(f"{x:.6g}/{y:.6g}" for x, y in pairs)
                  + f"  (relative differences up to {max(diff):.1e})")
    write_json_atomic(KERNEL_OUT, report)
    print(f"wrote {KERNEL_OUT}")


if __name__ == "__main__":
    if "--kernels" in sys.argv[1:]:
        kernels()
    else:
        speed()
