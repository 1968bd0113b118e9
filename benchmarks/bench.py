"""Micro-benchmarks behind docs/performance.md.

    python3 benchmarks/bench.py            # the floor, data generation, training-step and overhead timings
    python3 benchmarks/bench.py --floor    # the floor alone: quote a timing as its ratio to this

Every timing is also given as a ratio to the floor: the time this machine takes for the
282 240 float64 products of a (128, 64) by a (64, 64) matrix on one thread that the hidden
64->64 layer of both default models costs over a full default run (2 models x 11 760 steps x
4 BPTT steps x 3 products). Machines of one kind differ by up to 2x, so compare ratios.

This VM's speed drifts by tens of percent from one second to the next, so each figure is the
minimum over many short repeats, and the things compared (two models, tiny and default sizes,
the aggregators) are timed in turn within each repeat rather than one after the other. The
minimum is the stable figure: noise only ever adds time.
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from rnem import optim, simulator, state_config, state_models, state_training


def interleaved_min(runs: dict, repeats: int) -> dict:
    """name -> min over `repeats` of the seconds that runs[name]() takes, the runs taking turns."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


FLOOR_PRODUCTS = 2 * 11760 * 4 * 3


def floor_seconds(reps=5, n=20000) -> float:
    """The floor: best of `reps` timings of n (128, 64) @ (64, 64) float64 products, scaled to FLOOR_PRODUCTS."""
    rng = np.random.default_rng(0)
    a, b = rng.random((128, 64)), rng.random((64, 64))
    out = np.empty((128, 64))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return best * FLOOR_PRODUCTS / n


def training_steps(model, windows):
    """A function that runs one optimizer step (BPTT loss and gradients, clipping, Adam) per window."""
    t_bptt, batch, k = windows[0].shape[0] - 1, windows[0].shape[1], windows[0].shape[2]
    ws, grad = model.make_workspace(t_bptt, batch, k), np.zeros(model.n_params, model.dtype)
    adam = optim.Adam(model.flat, 1e-9)

    def steps():
        for w in windows:
            state_training.bptt_loss_and_grads(model, w, ws, grad)
            optim.clip_grad_norm(grad, 5.0)
            adam.step(grad)
    return steps


def bench_data(n=300, steps=25, k=4):
    pos, vel = simulator.initial_state(n, k, 0.11, np.random.default_rng(0))
    best = interleaved_min({"vectorised": lambda: simulator.simulate(pos, vel, steps, 0.05, 0.11),
                            "per_sequence": lambda: [simulator.simulate(pos[i:i + 1], vel[i:i + 1], steps, 0.05, 0.11)
                                                     for i in range(n)]}, repeats=5)
    print(f"simulate {n} sequences x {steps} steps, K={k}: vectorised {best['vectorised'] * 1e3:.1f} ms, "
          f"per-sequence loop {best['per_sequence'] * 1e3:.0f} ms, "
          f"speed-up {best['per_sequence'] / best['vectorised']:.0f}x")


def bench_steps(floor, k=4, batch=32, t_bptt=4, n_windows=20, repeats=40, dtype=np.float64):
    """Both models at the default sizes, on windows of real training data; also as the ratio of
    a full run's 11 760 steps of that model to the floor."""
    train = simulator.make_dataset(300, 25, k, 0.05, 0.11, np.random.default_rng(0))
    data = np.ascontiguousarray(train.transpose(1, 0, 2, 3), dtype)
    rng = np.random.default_rng(1)
    offsets = np.arange(t_bptt + 1)[:, None]
    windows = [data[rng.integers(25 - t_bptt, size=batch) + offsets, rng.integers(300, size=batch)]
               for _ in range(n_windows)]
    runs = {kind: training_steps(state_models.make_model(kind, state_config.Config(), np.random.default_rng(0), dtype), windows)
            for kind in state_config.MODEL_KINDS}
    for kind, seconds in interleaved_min(runs, repeats).items():
        per_step = seconds / n_windows
        print(f"{kind:>14} K={k} {np.dtype(dtype).name}: {per_step * 1e6:.0f} us per optimizer step "
              f"({1 / per_step:.0f} steps/s); 11 760 steps = {11760 * per_step / floor:.2f} x the floor")


def bench_overhead(n_windows=20, repeats=40, dtype=np.float64):
    """The fixed cost of a training step: the same code on a batch of one sequence of two balls
    with 2 hidden units (next to no arithmetic: Python and numpy's per-call overhead) against the
    default sizes (32 sequences of 4 balls, 64 hidden units)."""
    rng = np.random.default_rng(0)
    runs = {}
    for kind in state_config.MODEL_KINDS:
        for label, cfg, batch, k in (("tiny", state_config.Config(hidden=2, msg_dim=1), 1, 2), ("default", state_config.Config(), 32, 4)):
            windows = [rng.uniform(0, 1, (5, batch, k, 4)).astype(dtype) for _ in range(n_windows)]
            runs[kind, label] = training_steps(state_models.make_model(kind, cfg, np.random.default_rng(0), dtype), windows)
    best = interleaved_min(runs, repeats)
    for kind in state_config.MODEL_KINDS:
        tiny, default = best[kind, "tiny"] / n_windows, best[kind, "default"] / n_windows
        print(f"{kind:>14}: {tiny * 1e6:.0f} us per step at tiny sizes, {default * 1e6:.0f} us at "
              f"the defaults: {tiny / default:.0%} of a step is per-call overhead")


def bench_aggregators(ks=(4, 8, 16, 32), batch=32, t_bptt=4, n_windows=10, dtype=np.float64):
    """Time per optimizer step of each relational variant as K grows (random states: the cost
    depends only on the shapes; K = 16 or 32 balls of radius 0.11 would not fit in the box)."""
    rng = np.random.default_rng(0)
    print(f"{'K':>3} " + " ".join(f"{agg:>12}" for agg in state_models.AGGREGATORS) + "   (us per optimizer step)  attention/mean")
    for k in ks:
        windows = [rng.uniform(0, 1, (t_bptt + 1, batch, k, 4)).astype(dtype) for _ in range(n_windows)]
        runs = {agg: training_steps(state_models.RelationalDynamics(64, 8, rng=np.random.default_rng(0), dtype=dtype, agg=agg),
                                    windows) for agg in state_models.AGGREGATORS}
        best = interleaved_min(runs, repeats=40 if k < 16 else 10)
        print(f"{k:>3} " + " ".join(f"{best[agg] / n_windows * 1e6:12.0f}" for agg in state_models.AGGREGATORS) +
              f"   {best['attention'] / best['mean']:28.2f}")


if __name__ == "__main__":
    floor = floor_seconds()
    print(f"floor {floor:.2f} s ({FLOOR_PRODUCTS} float64 products of (128, 64) x (64, 64), one thread)")
    if sys.argv[1:] == ["--floor"]:
        sys.exit(0)
    bench_data()
    bench_steps(floor)
    bench_steps(floor, dtype=np.float32)
    bench_overhead()
    bench_aggregators()
