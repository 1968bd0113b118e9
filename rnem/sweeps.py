"""Many seeds: the measures a sweep summarises, their statistics over seeds (means with 95 %
t-intervals, paired relational / non-relational ratios, win counts where a measure reproduces), and
the summary rebuilt from per-seed files (--aggregate)."""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from rnem.cli import ConfigError
from rnem.files import TEMP_PREFIX, seed_dir_lock, write_json_atomic
from rnem.processes import run_workers

# Config fields that only say where output goes or how fast: not part of what a result means,
# so seeds run in different folders or jobs merge into one summary.
# The predictors a sweep compares, as a run's payload names them: the main script's two models
# (MODEL_KINDS) and two baselines (BASELINES); a test checks that the two lists agree.
PREDICTORS = ("non_relational", "relational", "constant_velocity", "uninformed")
OUTPUT_FIELDS = ("seed", "out", "seeds", "jobs", "seed_dir", "log_every", "no_save", "save_model", "aggregate")


def _rollout_value(key):
    return lambda run, k, name: run["rollout"][k].get(name, {}).get(key)


def _one_step_value(cls):
    return lambda run, k, name: run["one_step"][k].get(name, {}).get(cls, {}).get("vel_mse")


def _long_value(key, reduce):
    def read(run, k, name):
        values = run["long_horizon"][k].get(name, {}).get(key)
        return None if values is None else float(reduce(np.asarray(values)))
    return read


SWEEP_METRICS = {
    "vel_err": _rollout_value("mean_vel_err"),
    "vel_mse": _rollout_value("mean_vel_mse"),
    "pos_err": _rollout_value("mean_pos_err"),
    "pos_mse": _rollout_value("mean_pos_mse"),
    "post_collision_vel_mse": _rollout_value("post_collision_vel_mse"),
    "one_step_vel_mse_free": _one_step_value("free"),
    "one_step_vel_mse_wall": _one_step_value("wall"),
    "one_step_vel_mse_ball": _one_step_value("ball"),
    "long_pair_dist_w1": _long_value("pair_dist_w1", np.mean),
    "long_speed_w1": _long_value("speed_w1", np.mean),
    "long_outside_frac": _long_value("outside_frac", np.mean),
    "long_energy_drift": _long_value("energy_ratio", lambda r: np.mean(np.abs(r - 1.0))),
    "long_energy_at_100": _long_value("energy_ratio", lambda r: r[min(100, len(r) - 1)]),
    "long_overlap_frac": _long_value("overlap_frac", np.mean),
    "long_vel_cos_10": _long_value("vel_cos", lambda c: c[min(10, len(c) - 1)]),
    "long_vel_cos_20": _long_value("vel_cos", lambda c: c[min(20, len(c) - 1)]),
    "long_speed_rel_err_10": _long_value("speed_rel_err", lambda e: e[min(10, len(e) - 1)]),
    "horizon": lambda run, k, name: run["long_horizon"][k].get(name, {}).get("horizon"),
}
# how a metric's better value reads (all others: lower is better, they are errors)
METRIC_BETTER = {"horizon": "higher", "long_vel_cos_10": "higher", "long_vel_cos_20": "higher",
                 "long_energy_at_100": "nearer 1"}


# Measures whose per-seed values do not reproduce across BLAS kernels (the kernels round matrix
# products differently in the last bit; docs/reproducibility.md has the measurements):
# - averages over a 100- or 200-step closed-loop rollout, with any model: rollouts of bouncing
#   balls are chaotic and grow a 1e-15 difference in the weights until it shows;
# - the simulator recipe's closed-loop errors too: its gates are rounded to 0 or 1 in a rollout,
#   and a flipped gate parts two rollouts at once;
# - every measure of the stub's recipe: its training (BPTT through closed-loop steps, 11 760
#   steps) is itself chaotic for some seeds and aggregators (attention: two kernels' training
#   losses part from epoch 9-14 on), so each seed's trained model is one draw of many.
# Their seed means are published with 95 % intervals and paired ratios, never a per-seed win
# count; the other measures come out the same to 1e-8 on every kernel.
LONG_ROLLOUT_METRICS = ("long_pair_dist_w1", "long_speed_w1", "long_outside_frac", "long_energy_drift",
                        "long_energy_at_100", "long_overlap_frac")
CHAOTIC_METRICS = {
    "stub": tuple(SWEEP_METRICS),
    "simulator": ("vel_err", "vel_mse", "pos_err", "pos_mse", "post_collision_vel_mse") + LONG_ROLLOUT_METRICS,
}


def better(metric: str, a: float, b: float) -> bool:
    """a is better than b for this metric."""
    how = METRIC_BETTER.get(metric, "lower")
    return a > b if how == "higher" else abs(a - 1.0) < abs(b - 1.0) if how == "nearer 1" else a < b
# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (1.96 beyond)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def mean_interval(values) -> dict:
    """{mean, std, ci95: [lo, hi]} of a sample: t-interval of the mean (std and ci95 None for one value)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return {"mean": mean, "std": None, "ci95": None}
    std = float(values.std(ddof=1))
    half = (T_975[len(values) - 2] if len(values) - 1 <= len(T_975) else 1.96) * std / math.sqrt(len(values))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def over_seeds(values) -> dict:
    """One measure over seeds, as every summary records it: mean_interval and the per-seed values
    (in seed order); a seed with no value (None) leaves mean, std and ci95 out."""
    values = list(values)
    return {**(mean_interval(values) if all(v is not None for v in values) else {}), "per_seed": values}


def shared_config(config: dict) -> dict:
    """The part of a per-seed config that every seed of one sweep shares: all but OUTPUT_FIELDS
    (seed, where files go, workers), so that seeds run in different folders or jobs merge."""
    return {key: value for key, value in config.items() if key not in OUTPUT_FIELDS}


def summarise(runs: dict, failed: dict) -> dict:
    """The sweep summary of per-seed payloads runs {seed: run.json payload}.

    summary[K][metric][predictor] = mean_interval over seeds with the per-seed values, in seed
    order (for long_overlap_frac also "truth", the true sequences' own rate); ratio[K][metric] =
    mean_interval of the paired per-seed relational / non-relational ratio, null where the
    non-relational value is 0 in some seed (the ratio is undefined); wins[K][metric] = seeds in which
    the relational model's value is better (lower for errors; see METRIC_BETTER for the others),
    for every metric but the recipe's CHAOTIC_METRICS, whose per-seed order is not reproducible.
    """
    seeds = sorted(runs)
    first = runs[seeds[0]]
    chaotic = CHAOTIC_METRICS[first["config"].get("recipe", "stub")]
    summary, ratio, wins = {}, {}, {}
    for k in first["rollout"]:
        summary[k], ratio[k], wins[k] = {}, {}, {}
        for metric, read in SWEEP_METRICS.items():
            summary[k][metric] = {}
            for name in PREDICTORS:
                values = [read(runs[s], k, name) for s in seeds]
                if all(v is not None for v in values):
                    summary[k][metric][name] = over_seeds(values)
            if metric == "long_overlap_frac" and all("truth_overlap_frac" in runs[s]["long_horizon"][k] for s in seeds):
                values = [float(np.mean(runs[s]["long_horizon"][k]["truth_overlap_frac"])) for s in seeds]
                summary[k][metric]["truth"] = over_seeds(values)
            pairs = [(read(runs[s], k, "relational"), read(runs[s], k, "non_relational")) for s in seeds]
            pairs = [(r, n) for r, n in pairs if r is not None and n is not None]
            if pairs:
                ratio[k][metric] = mean_interval([r / n for r, n in pairs]) if all(n for _, n in pairs) else None
                if metric not in chaotic:
                    wins[k][metric] = sum(better(metric, r, n) for r, n in pairs)
    return {"seeds": seeds, "failed": {str(s): failed[s] for s in sorted(failed)}, "n_seeds": len(seeds),
            "config": shared_config(first["config"]),
            "env": first["env"], "metrics": list(SWEEP_METRICS), "chaotic_metrics": list(chaotic),
            "summary": summary, "ratio": ratio, "wins": wins}


def seed_file(seed_dir: str, seed: int, variant: str | None = None) -> str:
    return os.path.join(seed_dir, *([variant] if variant else []), f"seed_{seed}.json")


def run_jobs_in_folders(job_fn, jobs: list, folders: list, failed_payloads: list, workers: int, log=print) -> list:
    """job_fn(job) for every job, in `workers` worker processes (in this process for one), while
    holding the lock of folders[0] (the seed folder; a second sweep there is refused). Each job
    writes its per-seed files itself and returns [(variant, seed, path, error or None)]; a job
    whose worker fails or dies gets, instead, failed_payloads[index] ([(path, payload)]) written
    with its error, so that no seed is lost. Interrupted, it stops every worker and removes what
    is incomplete (temporary files, folders it created that stay empty); finished files stay.
    Returns every job's list, concatenated in the order the jobs ended."""
    created = [folder for folder in folders if not os.path.isdir(folder)]
    os.makedirs(folders[0], exist_ok=True)
    t0, results = time.perf_counter(), []
    total = sum(len(paths) for paths in failed_payloads)
    try:
        with seed_dir_lock(folders[0]):
            for folder in folders:
                os.makedirs(folder, exist_ok=True)

            def done(index, outcome, error):
                if error is not None:                                # the worker itself failed or died
                    outcome = []
                    for path, payload in failed_payloads[index]:
                        write_json_atomic(path, {**payload, "error": error})
                        outcome.append((payload["variant"], payload["seed"], path, error))
                results.extend(outcome)
                for name, seed, path, err in outcome:
                    log(f"{name} seed {seed}: " + (f"FAILED {err}" if err else f"done ({path})") +
                        f"  [{len(results)}/{total}, {time.perf_counter() - t0:.0f} s]")

            if workers >= 2:
                run_workers(job_fn, jobs, workers, on_done=done)
            else:
                for index, job in enumerate(jobs):
                    done(index, job_fn(job), None)
    except BaseException:
        for folder in reversed(folders):
            for entry in os.listdir(folder) if os.path.isdir(folder) else []:
                if entry.startswith(TEMP_PREFIX):
                    os.remove(os.path.join(folder, entry))
            if folder in created and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    return results


def aggregate_files(paths) -> dict:
    """The sweep summary rebuilt from per-seed JSON files (ConfigError for unreadable ones).

    Files of one variant give a one-variant summary; files of several variants (their
    `variant` key) give {"variants": {name: one-variant summary}, "seeds", "n_seeds"}.
    """
    groups = {}
    for path in paths:
        try:
            with open(path) as f:
                payload = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"--aggregate {path}: file not found")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"--aggregate {path}: not a per-seed JSON written by --seeds "
                              f"({type(err).__name__}: {err})")
        if not isinstance(payload, dict) or not isinstance(payload.get("config", {}), dict):
            raise ConfigError(f"--aggregate {path}: malformed per-seed JSON (config and env must be objects)")
        name = payload.get("variant") or payload.get("config", {}).get("agg", "mean")
        if not isinstance(name, str):
            raise ConfigError(f"--aggregate {path}: malformed per-seed JSON (variant must be a string)")
        groups.setdefault(name, []).append((path, payload))
    if len(groups) == 1:
        return aggregate_variant(*groups.values())
    variants = {name: aggregate_variant(group) for name, group in groups.items()}
    seeds = sorted({s for v in variants.values() for s in v["seeds"]})
    return {"variants": variants, "seeds": seeds, "n_seeds": len(seeds)}


def check_per_seed_payload(path: str, payload: dict) -> None:
    """Every value the summary reads from a per-seed payload is there with the right type
    (ConfigError naming the file otherwise): a config dict, and per K a number or null for every
    metric and predictor."""
    def fail(what):
        raise ConfigError(f"--aggregate {path}: malformed per-seed JSON ({what})")

    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("env"), dict):
        fail("config and env must be objects")
    sections = [payload[key] for key in ("rollout", "one_step", "long_horizon")]
    if not all(isinstance(section, dict) and section for section in sections):
        fail("rollout, one_step and long_horizon must be non-empty objects")
    if not (set(sections[0]) == set(sections[1]) == set(sections[2])):
        fail("rollout, one_step and long_horizon name different K")
    for k in sections[0]:
        for metric, read in SWEEP_METRICS.items():
            for name in PREDICTORS:
                try:
                    value = read(payload, k, name)
                except (AttributeError, TypeError, KeyError, ValueError, IndexError) as err:
                    fail(f"K={k} {metric} of {name}: {type(err).__name__}")
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    fail(f"K={k} {metric} of {name} is not a number")


def aggregate_variant(files) -> dict:
    """The one-variant summary of [(path, payload)] per-seed files."""
    runs, failed, configs = {}, {}, {}
    for path, payload in files:
        try:
            seed = payload["config"]["seed"] if "config" in payload else payload["seed"]
        except (KeyError, TypeError) as err:
            raise ConfigError(f"--aggregate {path}: not a per-seed JSON written by --seeds "
                              f"({type(err).__name__}: {err})")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"--aggregate {path}: malformed per-seed JSON (the seed must be a non-negative "
                              f"integer, got {seed!r})")
        if seed in runs or seed in failed:
            raise ConfigError(f"--aggregate {path}: seed {seed} appears twice")
        if "error" in payload:
            failed[seed] = payload["error"]
            continue
        missing = [key for key in ("rollout", "one_step", "long_horizon") if key not in payload]
        if missing:
            raise ConfigError(f"--aggregate {path}: missing {', '.join(missing)}; per-seed files come from --seeds")
        check_per_seed_payload(path, payload)
        runs[seed] = payload
        configs[seed] = shared_config(payload["config"])
    if not runs:
        raise ConfigError("--aggregate: no successful seed among the files" if failed else "--aggregate: no files")
    reference = next(iter(configs.values()))
    for seed, config in configs.items():
        if config != reference:
            changed = sorted(key for key in reference if config.get(key) != reference[key])
            raise ConfigError(f"--aggregate: seed {seed} was run with a different config ({', '.join(changed)})")
    return summarise(runs, failed)


TABLE_COLUMNS = dict(zip(PREDICTORS, ("non-relational", "relational", "const. velocity", "uninformed")))  # sweep_table


def sweep_table(summary: dict, metrics=("vel_err", "vel_mse", "post_collision_vel_mse", "one_step_vel_mse_ball")) -> str:
    """Per K and metric: mean of each predictor and relational wins out of the seeds."""
    n = summary["n_seeds"]
    lines = [f"{'K':>3} {'metric':<24} " + " ".join(f"{label:>15}" for label in TABLE_COLUMNS.values()) + "  wins"]
    for k, per_metric in summary["summary"].items():
        for metric in metrics:
            row = per_metric[metric]
            cells = [f"{row[name]['mean']:15.4f}" if name in row else f"{'-':>15}" for name in TABLE_COLUMNS]
            won = summary["wins"][k].get(metric)
            lines.append(f"{k:>3} {metric:<24} {' '.join(cells)}  " + (f"{won}/{n}" if won is not None else "-"))
    return "\n".join(lines)
