"""Micro-benchmarks behind the README's performance table.

    python3 benchmarks/bench.py            # data generation, training-step and overhead timings

Each figure is the median of several repeats (this VM's speed drifts between runs).
"""
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

import relational_nem_bouncing_balls as R  # noqa: E402


def median_seconds(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_data(n=300, steps=25, k=4):
    pos, vel = R.initial_state(n, k, 0.11, np.random.default_rng(0))
    vectorised = median_seconds(lambda: R.simulate(pos, vel, steps, 0.05, 0.11))
    per_sequence = median_seconds(lambda: [R.simulate(pos[i:i + 1], vel[i:i + 1], steps, 0.05, 0.11)
                                           for i in range(n)], repeats=3)
    print(f"simulate {n} sequences x {steps} steps, K={k}: vectorised {vectorised * 1e3:.1f} ms, "
          f"per-sequence loop {per_sequence * 1e3:.0f} ms, speed-up {per_sequence / vectorised:.0f}x")


def seconds_per_step(model, windows, repeats=5):
    """Median time of one optimizer step (BPTT loss and gradients, clipping, Adam) over `windows`."""
    t_bptt, batch, k = windows[0].shape[0] - 1, windows[0].shape[1], windows[0].shape[2]
    ws, grad = model.make_workspace(t_bptt, batch, k), np.zeros(model.n_params, model.dtype)
    adam = R.Adam(model.flat, 1e-9)

    def steps():
        for w in windows:
            R.bptt_loss_and_grads(model, w, ws, grad)
            R.clip_grad_norm(grad, 5.0)
            adam.step(grad)
    return median_seconds(steps, repeats) / len(windows)


def bench_steps(k=4, batch=32, t_bptt=4, n_windows=100, dtype=np.float32, **model_kw):
    train = R.make_dataset(300, 25, k, 0.05, 0.11, np.random.default_rng(0))
    data = np.ascontiguousarray(train.transpose(1, 0, 2, 3), dtype)
    rng = np.random.default_rng(1)
    offsets = np.arange(t_bptt + 1)[:, None]
    windows = [data[rng.integers(25 - t_bptt, size=batch) + offsets, rng.integers(300, size=batch)]
               for _ in range(n_windows)]
    for kind in R.MODEL_KINDS:
        cfg = R.Config(**model_kw)
        per_step = seconds_per_step(R.make_model(kind, cfg, np.random.default_rng(0), dtype), windows)
        print(f"{kind:>14} K={k}: {per_step * 1e6:.0f} us per optimizer step ({1 / per_step:.0f} steps/s)")


def bench_overhead(n_windows=100, dtype=np.float32):
    """The fixed cost of a training step: the same code on a batch of one sequence of two balls
    with 2 hidden units (next to no arithmetic: Python and numpy's per-call overhead) against the
    default sizes (32 sequences of 4 balls, 64 hidden units)."""
    rng = np.random.default_rng(0)
    for kind in R.MODEL_KINDS:
        times = {}
        for label, cfg, batch, k in (("tiny", R.Config(hidden=2, msg_dim=1), 1, 2), ("default", R.Config(), 32, 4)):
            windows = [rng.uniform(0, 1, (5, batch, k, 4)).astype(dtype) for _ in range(n_windows)]
            times[label] = seconds_per_step(R.make_model(kind, cfg, np.random.default_rng(0), dtype), windows)
        print(f"{kind:>14}: {times['tiny'] * 1e6:.0f} us per step at tiny sizes, {times['default'] * 1e6:.0f} us at "
              f"the defaults: {times['tiny'] / times['default']:.0%} of a step is per-call overhead")


def bench_aggregators(ks=(4, 8, 16, 32), batch=32, t_bptt=4, n_windows=30, dtype=np.float32):
    """Time per optimizer step of each relational variant as K grows (random states: the cost
    depends only on the shapes; K = 16 or 32 balls of radius 0.11 would not fit in the box)."""
    rng = np.random.default_rng(0)
    print(f"{'K':>3} " + " ".join(f"{agg:>12}" for agg in R.AGGREGATORS) + "   (us per optimizer step)")
    for k in ks:
        windows = [rng.uniform(0, 1, (t_bptt + 1, batch, k, 4)).astype(dtype) for _ in range(n_windows)]
        row = []
        for agg in R.AGGREGATORS:
            model = R.RelationalDynamics(64, 8, rng=np.random.default_rng(0), dtype=dtype, agg=agg)
            row.append(seconds_per_step(model, windows, repeats=3 if k < 32 else 1))
        print(f"{k:>3} " + " ".join(f"{s * 1e6:12.0f}" for s in row))


if __name__ == "__main__":
    bench_data()
    bench_steps()
    bench_overhead()
    bench_aggregators()
