"""Which numbers are exact on every machine: the same runs under two OpenBLAS kernels, compared.

Runs the stub's seed-0 experiments (mean and attention aggregator), the simulator recipe's ten
seeds with masses, the two seed-0 pixel runs (known and learned renderer) and one round of the
interactions learned from frames (seed 0) under this
machine's kernel and, side by side, under --coretype (OPENBLAS_CORETYPE), then compares every
number. Per family of numbers it reports
the largest relative difference and how many numbers differ by more than EXACT (1e-8); a sweep measure
is compared seed by seed. Exit code 1 when a number expected exact (not a measure
the run lists as chaotic, not a long-rollout step from LONG_EXACT on, not a run whose training is
chaotic) differs by more than EXACT: then the README's "exact on every machine" is wrong and
sweeps.CHAOTIC_METRICS must grow.

    python3 benchmarks/kernel_check.py                        # about 12 minutes on 2 cores
    python3 benchmarks/kernel_check.py --coretype Nehalem --out /tmp/check.json
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
import relational_nem_bouncing_balls as R  # noqa: E402
from rnem import environment, files, state_evaluation, sweeps  # noqa: E402
from rnem.cli import OneLineParser  # noqa: E402

EXACT = 1e-8             # relative difference below which two numbers count as the same
LONG_EXACT = 20          # long-rollout steps before chaos may show (tests/test_committed_results.py)
MAIN, PIXELS, INTERACTIONS = "relational_nem_bouncing_balls.py", "relational_nem_pixels.py", "relational_nem_interactions.py"
# title -> (script, options, the measures expected to move: "all" where training itself is chaotic)
RUNS = {"stub seed 0 (mean)": (MAIN, ["--seed", "0"], sweeps.LONG_ROLLOUT_METRICS),
        "stub seed 0 (attention)": (MAIN, ["--seed", "0", "--agg", "attention"], "all"),
        "simulator, masses, seeds 0-9": (MAIN, ["--recipe", "simulator", "--masses", "--seeds", "0-9"],
                                         sweeps.CHAOTIC_METRICS["simulator"]),
        "pixels, known renderer, seed 0": (PIXELS, [], ()),
        "pixels, learned renderer, seed 0": (PIXELS, ["--renderer", "learned"], ()),
        "interactions from frames, seed 0, one round": (INTERACTIONS, ["--rounds", "1"],
                                                         sweeps.CHAOTIC_METRICS["simulator"])}
# families of closed-loop curves that move with the measures read from them
CLOSED_LOOP = {"vel_err": ("rollout", "samples")}


def start_under(coretype, script, args, folder):
    """Starts script with args under OPENBLAS_CORETYPE=coretype ('' = this machine's kernel)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    extra = ["--seed-dir", os.path.join(folder, "seeds")] if "--seeds" in args else []
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args, *extra, "--out",
                             os.path.join(folder, "out.json")], env=env, stdout=subprocess.DEVNULL)


def kernel_under(coretype):
    """The OpenBLAS kernel a new process selects under OPENBLAS_CORETYPE=coretype ('' = this machine's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    code = "import numpy; from rnem.blas import blas_info; print(blas_info()['kernel'])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def results_in(folder):
    """{name: payload} of the run in folder, or of every per-seed file of its sweep, and the kernel."""
    seeds = os.path.join(folder, "seeds")
    if not os.path.isdir(seeds):
        with open(os.path.join(folder, "out.json")) as f:
            payload = json.load(f)
        return {"seed 0": payload}, payload["env"]["blas"]["kernel"]
    runs = {}
    for name in sorted(os.listdir(seeds)):
        if name.endswith(".json"):
            with open(os.path.join(seeds, name)) as f:
                runs[name[:-5]] = json.load(f)
    return runs, next(iter(runs.values()))["env"]["blas"]["kernel"]


def relative(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-300) if a != b else 0.0


def families(payload):
    """{family: [floats]} of one run: training curves, closed-loop, one-step, samples, the long
    rollouts' first LONG_EXACT steps and the rest, and every sweep measure (per predictor); of a
    pixel run, every measure of each dynamics and the learned renderer's training."""
    out = {}
    if "rounds" in payload:                                         # interactions from frames: per round
        for entry in payload["rounds"]:
            for key in ("windows", "windows_fraction", "noise_sigma"):
                out.setdefault("tracks", []).append(float(entry[key]))
            out["tracks"] += [float(v) for v in entry["state_errors"].values()]
            for family, values in families({key: entry[key] for key in ("history", "rollout", "one_step",
                                                                         "long_horizon")} | {"samples": {}}).items():
                out.setdefault(family, []).extend(values)
        out["tracks"] += [float(v) for v in payload["first_chunk"].values()]
        return out
    if "rollout" not in payload:                                    # a pixel result
        for name, measures in payload.items():
            if isinstance(measures, dict) and "ari_after_em" in measures:
                for key, value in measures.items():
                    if isinstance(value, float) and key != "seconds":
                        out.setdefault(f"pixels {key}", []).append(value)
        if "renderer_training" in payload:
            out["pixels renderer_training"] = [float(v) for v in payload["renderer_training"]["loss_per_lit_pixel"]]
        return out

    def walk(value, family):
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], family)
        elif isinstance(value, list):
            for item in value:
                walk(item, family)
        elif isinstance(value, float):
            out.setdefault(family, []).append(value)
    for key in ("history", "rollout", "one_step", "samples"):
        walk(payload[key], key)
    for k, entry in payload["long_horizon"].items():
        for name, curves in entry.items():
            for metric, value in (curves.items() if isinstance(curves, dict) else []):
                if isinstance(value, list):
                    walk(value[:LONG_EXACT], f"long_horizon steps < {LONG_EXACT}")
                    walk(value[LONG_EXACT:], f"long_horizon steps >= {LONG_EXACT}")
    for metric, read in sweeps.SWEEP_METRICS.items():
        for k in payload["rollout"]:
            for name in state_evaluation.PREDICTORS:
                value = read(payload, k, name)
                if value is not None:
                    out.setdefault(f"measure {metric}", []).append(float(value))
    return out


def compare(a_runs, b_runs, chaotic):
    report = {}
    for name in a_runs:
        fa, fb = families(a_runs[name]), families(b_runs[name])
        for family in fa:
            diffs = [relative(x, y) for x, y in zip(fa[family], fb[family])]
            entry = report.setdefault(family, {"numbers": 0, "differ": 0, "max_relative": 0.0})
            entry["numbers"] += len(diffs)
            entry["differ"] += sum(d > EXACT for d in diffs)
            entry["max_relative"] = max(entry["max_relative"], max(diffs, default=0.0))
    moving = {f"measure {m}" for m in chaotic} | {f"long_horizon steps >= {LONG_EXACT}"}
    moving |= {family for m in chaotic for family in CLOSED_LOOP.get(m, ())}
    for family, entry in report.items():
        entry["expected_exact"] = chaotic != "all" and family not in moving
    return report


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coretype", default="Sandybridge",
                        help="the second OpenBLAS kernel (OPENBLAS_CORETYPE); default Sandybridge (no FMA)")
    parser.add_argument("--out", default=os.path.join(HERE, "kernel_check.json"), help="where the report goes")
    args = parser.parse_args(argv)
    here, there = kernel_under(""), kernel_under(args.coretype)
    if here == there:
        print(f"error: --coretype {args.coretype}: this machine selects {here} under it too; name another kernel "
              f"(for example Sandybridge or Nehalem)", file=sys.stderr)
        return 2
    result, failed = {"exact_below": EXACT, "long_exact_steps": LONG_EXACT, "runs": {}}, []
    for title, (script, cmd, chaotic) in RUNS.items():
        with tempfile.TemporaryDirectory() as a_dir, tempfile.TemporaryDirectory() as b_dir:
            runs = [start_under("", script, cmd, a_dir), start_under(args.coretype, script, cmd, b_dir)]
            if any(run.wait() for run in runs):                        # the two kernels side by side
                print(f"error: {script} {' '.join(cmd)} failed", file=sys.stderr)
                return 1
            (a, kernel_a), (b, kernel_b) = results_in(a_dir), results_in(b_dir)
        report = compare(a, b, chaotic)
        result["runs"][title] = {"kernels": [kernel_a, kernel_b], "command": " ".join([script] + cmd),
                                 "families": report}
        print(f"{title}: {kernel_a} against {kernel_b}")
        for family, entry in report.items():
            flag = "" if entry["differ"] == 0 or not entry["expected_exact"] else "   <- expected exact"
            print(f"  {family:<40} {entry['differ']:>6} of {entry['numbers']:>6} differ, largest {entry['max_relative']:.1e}"
                  f"{flag}")
            if flag:
                failed.append(f"{title}: {family}")
    result["code_sha256"], result["package_sha256"] = environment.code_sha256(R.__file__)
    files.write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if failed:
        print("error: numbers expected exact differ: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
