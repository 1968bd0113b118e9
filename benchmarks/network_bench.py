"""The paper's network (relational_nem_network.py): time per training step beside the floor, and
what a short training gives under a second BLAS kernel.

    python3 benchmarks/network_bench.py                 # seconds per step, R-NEM and RNN-EM, float32 and float64
    python3 benchmarks/network_bench.py --kernels       # a short training under this kernel and under Sandybridge

Speed: one training step (unrolled EM forward, BPTT backward, Adam) of the default configuration
(24 px, K = 5, M = 100, batch 16, 20 frames), one BLAS thread; the models and the floor
(benchmarks/bench.py: the same float64 products as ../shared/bench/floor.py) take turns, and each
figure is the median of the repeats. One R-NEM step is 2.06 G multiply-adds (counted from the
layer shapes in ../shared/reference/rnem-network-prototype.md).

Kernels: the same short training (--kernels-args) run twice, under this machine's OpenBLAS kernel
and under OPENBLAS_CORETYPE=Sandybridge (no FMA); prints the first history entry that differs and
the relative differences of the final measures.
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
from rnem import network  # noqa: E402
from rnem.optim import Adam  # noqa: E402

GMAC_PER_STEP = 2.06      # R-NEM, 24 px, K = 5, batch 16, 19 steps, forward + backward
KERNEL_ARGS = ["--iterations", "60", "--eval-every", "20", "--n-train", "200", "--n-val", "16", "--n-test", "24"]


def step_function(kind: str, dtype: str, cfg: N.NetworkConfig, frames: np.ndarray):
    """One training step of a fresh network of this kind on batches of `frames` (T, N, D)."""
    net = N.new_network(N.NetworkConfig(kind=kind, dtype=dtype))
    adam, rng = Adam(net.flat, 1e-9), np.random.default_rng(0)

    def step():
        clean = frames[:, rng.choice(frames.shape[1], cfg.batch, replace=False)]
        noisy = clean ^ (rng.random(clean.shape) < cfg.bitflip)
        _, steps = network.em_forward(net, noisy, clean, network.initial_gamma(rng, cfg.batch, cfg.components,
                                                                               clean.shape[2]))
        adam.step(network.em_backward(net, steps))
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
    with tempfile.TemporaryDirectory() as folder:
        out = {}
        for name, extra in (("here", {}), (coretype, {"OPENBLAS_CORETYPE": coretype})):
            env = {**{k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}, **extra}
            path = os.path.join(folder, f"{name}.json")
            subprocess.run([sys.executable, os.path.join(ROOT, "relational_nem_network.py"), *KERNEL_ARGS, "--out", path],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            with open(path) as f:
                out[name] = json.load(f)
    a, b = out["here"], out[coretype]
    print(f"kernels: {a['env'].get('blas', {}).get('kernel', '?')} and {b['env'].get('blas', {}).get('kernel', '?')}; "
          f"{' '.join(KERNEL_ARGS)}")
    for key in ("first_losses", "train_loss", "val_loss", "val_ari_last"):
        diff = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a["history"][key], b["history"][key])]
        print(f"history {key:14s} relative differences {', '.join(f'{d:.1e}' for d in diff)}")
    for part in ("balls", "more_balls"):
        for key in ("ari_last", "bce_real", "bce_max", "sim_bce"):
            x, y = a["test"][part].get(key), b["test"][part].get(key)
            if x is not None:
                print(f"test {part}/{key}: {x:.6g} and {y:.6g} (relative difference {abs(x - y) / abs(x):.1e})")


if __name__ == "__main__":
    if "--kernels" in sys.argv[1:]:
        kernels()
    else:
        speed()
