"""Relational vs non-relational slot dynamics on bouncing balls, in pure numpy.

The M-step ablation of Relational N-EM (van Steenkiste, Chang, Greff, Schmidhuber,
ICLR 2018) on oracle slot states: every ball is a slot s_k = (x, y, vx, vy), and a
dynamics model predicts the state delta of each slot for the next step.

    non-relational  delta_k = MLP_dyn(s_k)                                  4-64-64-4
    relational      delta_k = MLP_dyn([s_k; agg_k])                         12-64-64-4, with agg_k
      --agg mean    agg_k = mean_{j != k} MLP_msg([s_k; s_j])               msg 8-64-8 (the stub's model)
      --agg sum     agg_k = sum_{j != k} MLP_msg([s_k; s_j])
      --agg attention  agg_k = sum_{j != k} a_kj e_kj, R-NEM's attention-gated effects

Both are trained with 4-step backprop-through-time on K=4 sequences (or on a list of K) and
evaluated as closed-loop predictors from frame 0 on K = 4, 3, 5, 6 (--eval-k), with errors
split by collision events, long rollouts, and two baselines (constant velocity, uninformed).

--recipe simulator is a second pair of models of one design (rnem/simulator_model.py): free flight
plus learned, gated wall reflections and (relational) elastic pair impulses along the line of
centres, trained on one-step loss; --masses gives the paper's two ball types (6x the mass,
1.25x the radius), the radius then being a fifth state component.

Numbers: training and evaluation run in float64 with one BLAS thread (whatever the caller set),
so one seed gives the same numbers to 1e-8 on every x86-64 machine, except what chaos amplifies
(CHAOTIC_METRICS: long rollouts, the simulator recipe's rollouts, and the stub's training, which
is itself chaotic for some seeds and aggregators), whose last-bit differences between BLAS
kernels grow until they show; those are published as means over seeds with intervals
(docs/reproducibility.md). run.json's `env` records numpy, the BLAS library and kernel, the
CPU, this file's sha256 and the rnem package's; --dtype float32 is faster, but all its numbers
depend on the BLAS kernel.

Where each part lives (this script keeps the CLI, the recipes' defaults, run, the sweep and main):
    rnem/state_config.py      Config (every option, the CLI's source), the simulator recipe, --quick
    rnem/simulator.py         the bouncing-balls simulator and the data sets
    rnem/state_models.py      the two models (forward/backward pairs), save_models / load_models
    rnem/simulator_model.py   the simulator recipe's model
    rnem/state_training.py    4-step BPTT, Adam, validation, the two models in two workers, rollout
    rnem/state_evaluation.py  closed-loop errors by event, baselines, long horizon, attention
    rnem/rollout_measures.py  the measures of a rollout
rnem/__init__.py lists the rest (layers, Adam, worker processes, sweep statistics, files, the
environment record).

Python API: rnem.state_models.load_models(path) -> {name: model} for a file written by
--save-model; rnem.state_training.rollout(model, init (n, K, 4), n_steps) -> (n_steps, n, K, 4);
rnem.rollout_measures.rollout_metrics(pred, truth).

Examples:
    python3 relational_nem_bouncing_balls.py --seed 0            # full run -> runs/run.json (runs/ is git-ignored)
    python3 relational_nem_bouncing_balls.py --quick             # smoke run, about a second -> runs/run_quick.json
    python3 relational_nem_bouncing_balls.py --seed 0 --save-model runs/m.npz      # also keep both trained models
    python3 relational_nem_bouncing_balls.py --load-model runs/m.npz --eval-k 3,4,5,6,7,8 --out runs/more_k.json
    python3 relational_nem_bouncing_balls.py --agg attention --k-train 2,3,4,5,6 --out runs/attention.json
    python3 relational_nem_bouncing_balls.py --seeds 0-9 --eval-k 3,4,5,6,7,8          # -> runs/sweep.json
    python3 relational_nem_bouncing_balls.py --seeds 0-9 --agg mean,sum,attention --curriculum 2,3,4,5,6 --eval-k 3,4,5,6,7,8
                                                                  # the full comparison -> runs/sweep.json
    python3 relational_nem_bouncing_balls.py --aggregate results/sweep_runs/*.json --out runs/summary.json
    python3 relational_nem_bouncing_balls.py --recipe simulator                   # -> runs/run_simulator.json
    python3 relational_nem_bouncing_balls.py --recipe simulator --masses --seeds 0-9   # -> runs/sweep_simulator_masses.json
"""
from __future__ import annotations

import os

# One BLAS thread per process: at these matrix sizes (128 x 64) a second thread only adds
# synchronisation, and the two models train in two processes side by side. This works only
# when the module is imported before numpy; worker processes get one thread in any case
# (see run_workers), and training and evaluation set it for their duration (one_blas_thread).
from rnem.blas import BLAS_THREAD_VARS  # noqa: E402  (imports no numpy)
for _var in BLAS_THREAD_VARS:
    os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import json
import math
import sys
import time

import numpy as np

from rnem.balls import HEAVY_RADIUS
from rnem.blas import with_one_blas_thread
from rnem.cli import ConfigError, parse_int_list, parse_seeds, parser_from_config
from rnem.environment import environment, source_sha256
from rnem.files import RUNS_DIR, check_folder_writable, check_output_path, write_json_atomic
from rnem.simulator import MIN_SEPARATION, initial_state, max_balls, rng_for
from rnem.entry import run_main
from rnem.processes import exit_if_worker_startup
from rnem.sweeps import OUTPUT_FIELDS, aggregate_files, run_jobs_in_folders, seed_file, shared_config, sweep_table
from rnem.state_config import (MODEL_KINDS, QUICK, SIMULATOR_DEFAULTS, TRAINING_FIELDS, Config, k_list, k_train_text,
                               payload_config)
from rnem.state_evaluation import evaluate, packing_fraction
from rnem.state_models import AGGREGATORS, load_models, read_model_meta, save_models
from rnem.state_training import make_data, n_workers, silent, train_both


# ----------------------------------------------------------------------------- config
def default_out(recipe: str, masses: bool, sweep: bool) -> str:
    """Where a run writes when --out is not given: in RUNS_DIR (git-ignored), so that a user's run
    never rewrites a committed file: runs/run.json (the stub recipe), runs/run_simulator.json,
    runs/run_simulator_masses.json, runs/sweep.json, runs/sweep_simulator.json, ... (regenerate.sh
    names the committed files, run.json and results/*, explicitly)."""
    suffix = ("" if recipe == "stub" else f"_{recipe}") + ("_masses" if masses else "")
    return os.path.join(RUNS_DIR, f"{'sweep' if sweep else 'run'}{suffix}.json")


def default_seed_dir(recipe: str, masses: bool) -> str:
    """The per-seed folder of a sweep: runs/sweep_runs, runs/sweep_runs_simulator, ..."""
    name = os.path.basename(default_out(recipe, masses, True))                  # sweep_simulator.json
    return os.path.join(RUNS_DIR, "sweep_runs" + name[len("sweep"):-len(".json")])


def build_parser(probe: bool = False) -> argparse.ArgumentParser:
    """The CLI, generated from the fields of Config (rnem.cli.parser_from_config); --help shows
    every default, and what --quick and --recipe simulator set. probe=True: no defaults at all,
    so that parsing argv yields exactly the options given (see config_from_args)."""
    notes = {name: " " + " ".join(f"--{k.replace('_', '-')} " + (",".join(map(str, v)) if isinstance(v, tuple) else str(v))
                                  for k, v in sets.items())
             for name, sets in (("quick", QUICK), ("recipe", SIMULATOR_DEFAULTS))}
    return parser_from_config(Config, __doc__, epilog=__doc__[__doc__.index("Examples:"):], notes=notes, probe=probe)


def config_from_args(argv) -> Config:
    """Parse argv into a validated Config (raises ConfigError).

    An option given on the command line always wins, whatever its value (also over --quick
    and over the config of a --load-model file)."""
    args = vars(build_parser().parse_args(argv))
    explicit = set(vars(build_parser(probe=True).parse_args(argv)))
    if args["seeds"] == "" and "seeds" in explicit:
        raise ConfigError("--seeds must list seeds such as 0-9 or 0,3,5-7 (got '')")
    args["eval_k"] = parse_int_list(args["eval_k"], "--eval-k")
    k_train = parse_int_list(args["k_train"], "--k-train")
    args["k_train"] = k_train[0] if len(k_train) == 1 else k_train
    args["aggregate"] = tuple(args["aggregate"])
    if args["recipe"] == "simulator":
        for name, value in SIMULATOR_DEFAULTS.items():
            if name not in explicit:
                args[name] = value
    if "out" not in explicit:
        args["out"] = default_out(args["recipe"], args["masses"], bool(args["seeds"] or args["aggregate"]))
    if "seed_dir" not in explicit:
        args["seed_dir"] = default_seed_dir(args["recipe"], args["masses"])
    if args["quick"]:
        for name, value in QUICK.items():
            if name not in explicit:
                args[name] = value
        explicit |= set(QUICK) - set(TRAINING_FIELDS)              # --quick's evaluation sizes hold with --load-model
        for name, suffix in (("out", ".json"), ("seed_dir", "")):
            if name not in explicit:
                args[name] = args[name][:len(args[name]) - len(suffix)] + "_quick" + suffix
    if args["load_model"]:
        args = merge_loaded_config(args, explicit)
    if "n_attention" not in explicit:
        args["n_attention"] = min(args["n_attention"], args["n_eval"])
    cfg = Config(**args)
    validate_config(cfg)
    return cfg


def merge_loaded_config(args: dict, explicit: set) -> dict:
    """args with every option not given on the command line taken from the --load-model file's
    config; a training option given with a different value than the file's is an error."""
    saved = read_model_meta(args["load_model"])["config"]
    merged = dict(args)
    for name in [f.name for f in dataclasses.fields(Config)]:
        if name in OUTPUT_FIELDS + ("load_model", "quick") or name not in saved:
            continue
        value = saved[name]
        value = tuple(value) if isinstance(value, list) else value
        if name not in explicit:
            merged[name] = value
        elif name in TRAINING_FIELDS and args[name] != value:
            raise ConfigError(f"--{name.replace('_', '-')} {args[name]} does not match the model loaded from "
                              f"{args['load_model']} (trained with {value}); drop the option")
    if "seed" not in explicit:
        merged["seed"] = saved.get("seed", args["seed"])
    return merged


def validate_config(cfg: Config) -> None:
    """Reject impossible or nonsensical settings before any data or training (ConfigError)."""
    def need(ok, message):
        if not ok:
            raise ConfigError(message)

    for name in ("epochs", "batch", "hidden", "msg_dim", "n_train", "n_val", "n_eval",
                 "t_bptt", "n_samples", "n_attention", "log_every", "post_window"):
        value = getattr(cfg, name)
        need(value >= 1, f"--{name.replace('_', '-')} must be a positive integer (got {value})")
    need(cfg.seed >= 0, f"--seed must be a non-negative integer (got {cfg.seed})")
    need(cfg.jobs >= 0, f"--jobs must be 0 (all cores) or a positive integer (got {cfg.jobs})")
    need(cfg.t_long >= cfg.t_eval, f"--t-long must be at least --t-eval = {cfg.t_eval} (got {cfg.t_long})")
    need(not (cfg.seeds and cfg.aggregate), "--seeds and --aggregate cannot be combined: run the seeds, or "
                                            "summarise existing per-seed files")
    for option, value in (("--save-model", cfg.save_model), ("--load-model", cfg.load_model)):
        need(not (value and (cfg.seeds or cfg.aggregate)),
             f"{option} saves or loads the two models of one run: not with --seeds or --aggregate")
    need(not (cfg.save_model and cfg.load_model), "--save-model and --load-model cannot be combined: the loaded "
                                                  "file is the saved model")
    if cfg.seeds:
        parse_seeds(cfg.seeds)
        check_folder_writable(cfg.seed_dir, "--seed-dir")
    for name in ("lr", "grad_clip"):
        value = getattr(cfg, name)
        need(math.isfinite(value) and value > 0, f"--{name.replace('_', '-')} must be a positive number (got {value})")
    need(cfg.t_train >= cfg.t_bptt + 1,
         f"--t-train must be at least --t-bptt + 1 = {cfg.t_bptt + 1} for one BPTT window (got {cfg.t_train})")
    need(cfg.t_eval >= 2, f"--t-eval must be at least 2 steps (got {cfg.t_eval})")
    need(cfg.steps_per_epoch >= 1,
         f"--batch {cfg.batch} is larger than the {cfg.n_train * (cfg.t_train - cfg.t_bptt)} training windows "
         f"(--n-train x (--t-train - --t-bptt)); use --batch at most that")
    need(0 < cfg.radius < 0.25, f"--radius must be in (0, 0.25) box units (got {cfg.radius})")
    need(0 < cfg.dt <= 0.1, f"--dt must be in (0, 0.1] (got {cfg.dt})")
    need(cfg.n_samples <= cfg.n_eval, f"--n-samples must be at most --n-eval = {cfg.n_eval} (got {cfg.n_samples})")
    need(cfg.n_attention <= cfg.n_eval,
         f"--n-attention must be at most --n-eval = {cfg.n_eval} (got {cfg.n_attention})")
    curriculum = parse_int_list(cfg.curriculum, "--curriculum") if cfg.curriculum else ()
    need(not cfg.curriculum or cfg.seeds, "--curriculum is a sweep option: use it with --seeds (for one run, "
                                          "give the list to --k-train)")
    for option, ks in (("--k-train", k_list(cfg.k_train)), ("--eval-k", cfg.eval_k), ("--curriculum", curriculum)):
        for k in ks:
            need(k >= 2, f"{option} values must be at least 2 balls so that pairs exist (got {k})")
        need(len(set(ks)) == len(ks), f"{option} lists a K twice: {','.join(map(str, ks))}")
    for option, ks in (("--n-train", k_list(cfg.k_train)), ("--n-val", k_list(cfg.k_train)), ("--n-train", curriculum)):
        n = getattr(cfg, option[2:].replace("-", "_"))
        need(n >= len(ks), f"{option} {n} is smaller than the {len(ks)} training K; use at least {len(ks)}")
    need(not cfg.masses or cfg.recipe == "simulator",
         "--masses needs --recipe simulator (the stub recipe's models read 4-D states without the radius)")
    need(cfg.recipe == "stub" or cfg.agg == "mean", "--agg chooses the stub recipe's aggregator: not with --recipe "
                                                     "simulator (its relational model sums gated impulses)")
    need(cfg.recipe == "stub" or cfg.t_bptt == 1, "--recipe simulator trains on one-step loss: --t-bptt must be 1")
    aggs = cfg.agg.split(",")
    for agg in aggs:
        need(agg in AGGREGATORS, f"--agg must be one of {', '.join(AGGREGATORS)} (got {agg!r})")
    need(len(set(aggs)) == len(aggs), f"--agg lists a variant twice: {cfg.agg}")
    need(len(aggs) == 1 or cfg.seeds, f"--agg takes one of {', '.join(AGGREGATORS)} for a single run "
                                      f"(a comma-separated list with --seeds; got {cfg.agg})")
    largest = cfg.radius * (HEAVY_RADIUS if cfg.masses else 1.0)
    for k, option in ([(k, "--k-train") for k in k_list(cfg.k_train)] + [(k, "--eval-k") for k in cfg.eval_k]
                      + [(k, "--curriculum") for k in curriculum]):
        k_max = max_balls(largest)
        need(k <= k_max, f"{option} {k}: at most {k_max} balls of radius {largest:g} fit at separation "
                         f"{MIN_SEPARATION} r in the unit box; use fewer balls or a smaller --radius")
    check_memory(cfg, curriculum)
    if not cfg.no_save:
        check_output_path(cfg.out, "--out")
        check_not_clobbering(cfg)
    if cfg.save_model:
        check_output_path(cfg.save_model, "--save-model", suffix=".npz")
    if cfg.load_model:
        read_model_meta(cfg.load_model)


def check_not_clobbering(cfg: Config) -> None:
    """A --quick run never writes over the results of a full run."""
    if not cfg.quick or not os.path.isfile(cfg.out):
        return
    try:
        with open(cfg.out) as f:
            existing = json.load(f)
        config = existing.get("config", {}) if isinstance(existing, dict) else {}
        full = isinstance(config, dict) and config.get("quick") is False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        full = False
    if full:
        raise ConfigError(f"--out {cfg.out} holds the results of a full run; a --quick run does not overwrite "
                          f"them: give another --out")


def available_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo (8 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


def memory_estimate(cfg: Config, curriculum=()) -> dict:
    """Bytes that the largest arrays of one process need, by the options that size them: an
    upper-bound estimate within a small factor, for refusing hopeless sizes before any work."""
    item = np.dtype(cfg.dtype).itemsize
    ks = k_list(cfg.k_train) + tuple(curriculum)
    k_train, k_eval, H = max(ks), max(cfg.eval_k), cfg.hidden
    pairs = lambda k: max(k * (k - 1), 1)                                     # noqa: E731
    params = 6 * (2 * H * H + (12 + cfg.msg_dim) * H) * item                 # params, grads, Adam, scratch
    return {
        "--hidden": params,
        "--n-train, --n-val, --t-train": 3 * (cfg.n_train + cfg.n_val) * cfg.t_train * k_train * 4 * 8
        + 3 * cfg.n_val * cfg.t_train * pairs(k_train) * H * item,
        "--batch, --t-bptt": 4 * cfg.t_bptt * cfg.batch * pairs(k_train) * H * item,
        "--n-eval, --t-eval, --t-long": 12 * cfg.n_eval * (cfg.t_eval + cfg.t_long) * k_eval * (4 + k_eval) * 8
        + 4 * cfg.n_eval * pairs(k_eval) * H * item,
    }


def check_memory(cfg: Config, curriculum=()) -> None:
    parts = memory_estimate(cfg, curriculum)
    need, have = sum(parts.values()), available_memory_bytes()
    if need > 0.8 * have:
        largest = max(parts, key=parts.get)
        raise ConfigError(f"this configuration needs about {need / 2**30:.1f} GiB, mostly for {largest} "
                          f"({parts[largest] / 2**30:.1f} GiB), but {have / 2**30:.1f} GiB are available; "
                          f"reduce {largest}")


@with_one_blas_thread
def run(cfg: Config, log=print, pretrained: dict | None = None, trained: dict | None = None) -> dict:
    """The whole experiment: data, training of both models, evaluation; returns the run.json
    payload. log=None runs silently. pretrained (kind -> (model, history, timing)) skips training
    that kind; `trained`, if given, receives the same for both models."""
    exit_if_worker_startup()
    verbose, log = log is not None, log or silent
    t0 = time.perf_counter()
    train, val, eval_sets, long_sets = make_data(cfg)
    t_data = time.perf_counter() - t0
    log(f"data: {cfg.n_train} train / {cfg.n_val} val sequences at K={k_train_text(cfg)}, "
        f"{cfg.n_eval} eval sequences of {cfg.t_eval} and {cfg.t_long} steps at K={','.join(map(str, cfg.eval_k))} "
        f"({t_data:.2f} s)")
    densest = max(k_list(cfg.k_train))
    for k in cfg.eval_k:
        if packing_fraction(k, cfg.radius) > 1.5 * packing_fraction(densest, cfg.radius):
            log(f"note: K={k} balls of radius {cfg.radius} cover {packing_fraction(k, cfg.radius):.0%} of the box "
                f"(training K={densest}: {packing_fraction(densest, cfg.radius):.0%}): denser than training")
    t1 = time.perf_counter()
    loaded = None
    if cfg.load_model and pretrained is None:
        meta = read_model_meta(cfg.load_model)
        by_kind = {model.kind: model for model in load_models(cfg.load_model).values()}
        if set(by_kind) != set(MODEL_KINDS):
            raise ConfigError(f"--load-model {cfg.load_model}: needs one model of each kind "
                              f"({', '.join(MODEL_KINDS)}), found {', '.join(sorted(by_kind)) or 'none'}")
        pretrained = {kind: (by_kind[kind], meta["history"][kind], meta["timing"][kind]) for kind in MODEL_KINDS}
        loaded = {"path": cfg.load_model, "file_sha256": source_sha256(cfg.load_model),
                  "source_sha256": meta["source_sha256"], "config": meta["config"]}
        log(f"loaded both models from {cfg.load_model}: no training")
    models, histories, timings = train_both(cfg, train, val, verbose, pretrained)
    if cfg.save_model:
        save_models(cfg.save_model, models, cfg, histories, timings, __file__)
        log(f"wrote {cfg.save_model}")
    if trained is not None:
        trained.update({kind: (models[kind], histories[kind], timings[kind]) for kind in MODEL_KINDS})
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    sections = evaluate(models, eval_sets, long_sets, cfg)       # rollout, one_step, long_horizon, samples, attention
    t_eval = time.perf_counter() - t2
    payload = {
        "config": payload_config(cfg),
        "env": environment(cfg.dtype, __file__),
        "params": {kind: models[kind].n_params for kind in MODEL_KINDS},
        "timing": {"data_s": t_data, "train_wall_s": t_train, "eval_s": t_eval,
                   "parallel_training": n_workers(cfg) >= 2,
                   **{f"train_{kind}_s": timings[kind]["train_s"] for kind in MODEL_KINDS},
                   "steps_per_sec": {kind: timings[kind]["steps_per_sec"] for kind in MODEL_KINDS},
                   "blas_threads": {kind: timings[kind].get("blas_threads") for kind in MODEL_KINDS},
                   "optimizer_steps": timings["relational"]["optimizer_steps"]},
        "history": histories,
        **{key: sections[key] for key in ("rollout", "one_step", "long_horizon", "samples")},
    }
    if sections["attention"] is not None:
        payload["attention"] = sections["attention"]
    if loaded is not None:
        payload["loaded_model"] = loaded
    payload["timing"]["total_s"] = time.perf_counter() - t0
    return payload


def summary_table(payload: dict) -> str:
    """What the screen shows at the end of a run, per evaluation K: the mean closed-loop errors
    (the stub's table) and the measures the README's verdict quotes: the horizon, the one-step
    velocity MSE on ball-ball steps, and the kinetic energy at the end of the long rollout."""
    T, T_long = payload["config"]["t_eval"], payload["config"]["t_long"]
    ks = list(payload["rollout"])
    lines = [f"mean over the {T} closed-loop steps (step 0 included); err = mean Euclidean error, MSE = per element",
             f"{'K':>3} | {'vel err':>14} {'':>10} {'':>7} | {'vel MSE':>14} {'':>10} | {'pos err':>14} {'':>10}",
             f"{'':>3} | {'non-relational':>14} {'relational':>10} {'ratio':>7} | {'non-relational':>14} "
             f"{'relational':>10} | {'non-relational':>14} {'relational':>10}"]
    for k in ks:
        nr, r = payload["rollout"][k]["non_relational"], payload["rollout"][k]["relational"]
        lines.append(f"{k:>3} | {nr['mean_vel_err']:14.4f} {r['mean_vel_err']:10.4f} "
                     f"{r['mean_vel_err'] / nr['mean_vel_err']:7.3f} | {nr['mean_vel_mse']:14.4f} "
                     f"{r['mean_vel_mse']:10.4f} | {nr['mean_pos_err']:14.4f} {r['mean_pos_err']:10.4f}")
    names = ("non_relational", "relational", "constant_velocity")
    lines += ["", f"horizon = mean steps until the mean position error exceeds one radius ({T_long}-step rollouts);",
              f"one-step = velocity MSE on ball-ball steps (teacher-forced); energy = kinetic energy at step "
              f"{T_long - 1} / the truth's",
              f"{'K':>3} | {'horizon':>14} {'':>10} {'':>9} | {'one-step':>14} {'':>10} | {'energy':>14} {'':>10}",
              f"{'':>3} | {'non-relational':>14} {'relational':>10} {'const. v.':>9} | {'non-relational':>14} "
              f"{'relational':>10} | {'non-relational':>14} {'relational':>10}"]
    for k in ks:
        long, one = payload["long_horizon"][k], payload["one_step"][k]
        ball = [one[n]["ball"]["vel_mse"] for n in names[:2]]
        lines.append(f"{k:>3} | " + f"{long[names[0]]['horizon']:14.1f} {long[names[1]]['horizon']:10.1f} "
                     f"{long[names[2]]['horizon']:9.1f} | " +
                     " ".join(f"{v:{w}.4f}" if v is not None else f"{'-':>{w}}" for v, w in zip(ball, (14, 10))) +
                     f" | {long[names[0]]['energy_ratio'][-1]:14.3f} {long[names[1]]['energy_ratio'][-1]:10.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- many seeds
# summary metric -> how to read it from one run's payload for K and a predictor (None: not defined)
def sweep_variants(cfg: Config) -> list:
    """[(variant name, agg, k_train)]: every --agg trained on --k-train, then on --curriculum
    (the simulator recipe has one variant, named after it)."""
    names = {agg: agg for agg in cfg.agg.split(",")} if cfg.recipe == "stub" else {cfg.agg: cfg.recipe}
    variants = [(name, agg, cfg.k_train) for agg, name in names.items()]
    if cfg.curriculum:
        ks = parse_int_list(cfg.curriculum, "--curriculum")
        variants += [(f"{name}+curriculum", agg, ks[0] if len(ks) == 1 else ks) for agg, name in names.items()]
    return variants


def _sweep_job(job):
    """Worker: one seed and training regime; the non-relational model is trained once and reused
    for every variant of the relational model. Each variant is written to its own file, a
    failure too. Returns [(variant, seed, path, error or None)]."""
    cfg, variants, one_variant = job
    pretrained, results = None, []
    for name, agg in variants:
        path = seed_file(cfg.seed_dir, cfg.seed, None if one_variant else name)
        trained = {}
        try:
            payload = run(dataclasses.replace(cfg, agg=agg, out=path), log=None, pretrained=pretrained, trained=trained)
            payload["variant"] = name
            pretrained = pretrained or {"non_relational": trained["non_relational"]}
        except Exception as err:  # a diverged or failed seed is reported, not lost
            payload = {"seed": cfg.seed, "variant": name, "error": f"{type(err).__name__}: {err}"}
        write_json_atomic(path, payload)
        results.append((name, cfg.seed, path, payload.get("error")))
    return results


def sweep_jobs(cfg: Config) -> list:
    """[(per-seed cfg, [(variant, agg)], one_variant)]: one job per seed and training regime."""
    seeds, variants = parse_seeds(cfg.seeds), sweep_variants(cfg)
    regimes = {}                                                    # k_train -> [(variant, agg)]
    for name, agg, k_train in variants:
        regimes.setdefault(tuple(k_list(k_train)), []).append((name, agg))
    return [(dataclasses.replace(cfg, seed=s, jobs=1, seeds="", curriculum="",
                                 k_train=ks[0] if len(ks) == 1 else ks), names, len(variants) == 1)
            for ks, names in regimes.items() for s in seeds]


def job_paths(job) -> list:
    """[(variant, agg, per-seed file)] of one sweep job."""
    cfg, names, one_variant = job
    return [(name, agg, seed_file(cfg.seed_dir, cfg.seed, None if one_variant else name)) for name, agg in names]


def check_sweep_inputs(cfg: Config, jobs: list) -> None:
    """Before any work: every K can be placed, and no per-seed file already in --seed-dir comes
    from a different config (a rerun of the same config may overwrite its own files)."""
    curriculum = parse_int_list(cfg.curriculum, "--curriculum") if cfg.curriculum else ()
    for option, ks in (("--k-train", k_list(cfg.k_train)), ("--curriculum", curriculum), ("--eval-k", cfg.eval_k)):
        for k in ks:
            try:
                initial_state(min(cfg.n_eval, 64), k, cfg.radius, rng_for(0, f"probe/K={k}"))
            except ValueError as err:
                raise ConfigError(f"{option} {k}: {err}")
    for job in jobs:
        for name, agg, path in job_paths(job):
            if not os.path.isfile(path):
                continue
            try:
                with open(path) as f:
                    existing = json.load(f).get("config")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                existing = None
            expected = shared_config(payload_config(dataclasses.replace(job[0], agg=agg, out=path)))
            if isinstance(existing, dict) and shared_config(existing) != expected:
                changed = sorted(k for k in expected if existing.get(k) != expected[k])
                raise ConfigError(f"--seed-dir {cfg.seed_dir}: {path} holds a run of a different config "
                                  f"({', '.join(changed)}); give another --seed-dir or remove it")


def run_sweep(cfg: Config, log=print, job_fn=None) -> dict:
    """Runs every seed of cfg.seeds, for every variant (--agg, --curriculum), in worker processes
    (one seed and training regime per process at a time, its models trained one after the
    other; rnem.sweeps.run_jobs_in_folders), then summarises the per-seed files. A seed whose
    worker fails or dies is a failed seed of the summary. job_fn replaces _sweep_job (a test
    hook; it must be importable by a new process)."""
    exit_if_worker_startup()
    jobs = sweep_jobs(cfg)
    check_sweep_inputs(cfg, jobs)
    variants = sweep_variants(cfg)
    folders = [cfg.seed_dir] + ([] if len(variants) == 1 else [os.path.join(cfg.seed_dir, name)
                                                               for name, _, _ in variants])
    failed_payloads = [[(path, {"seed": job[0].seed, "variant": name}) for name, _, path in job_paths(job)]
                       for job in jobs]
    workers = min(n_workers(cfg), len(jobs))
    t0 = time.perf_counter()
    results = run_jobs_in_folders(job_fn or _sweep_job, jobs, folders, failed_payloads, workers, log)
    summary = aggregate_files([path for _, _, path, _ in sorted(results)])
    summary["timing"] = {"wall_s": time.perf_counter() - t0, "workers": workers}
    return summary


# ----------------------------------------------------------------------------- main
def command(argv) -> int:
    """The CLI's work: a run, a sweep or --aggregate (bad input raises ConfigError first)."""
    cfg = config_from_args(argv)
    if cfg.aggregate or cfg.seeds:
        summary = aggregate_files(cfg.aggregate) if cfg.aggregate else run_sweep(cfg)
        if not cfg.no_save:
            check_output_path(cfg.out, "--out")
            write_json_atomic(cfg.out, summary)
        for name, one in (summary["variants"] if "variants" in summary else {"": summary}).items():
            print(f"{name + ': ' if name else ''}{one['n_seeds']} seeds" +
                  (f", failed: {one['failed']}" if one["failed"] else "") +
                  "; means over seeds, wins = seeds in which relational < non-relational "
                  "(none for chaotic closed-loop measures)")
            print(sweep_table(one))
        print("" if cfg.no_save else f"wrote {cfg.out}")
        return 0
    payload = run(cfg)
    if not cfg.no_save:
        check_output_path(cfg.out, "--out")
        write_json_atomic(cfg.out, payload)
    print(summary_table(payload))
    print(f"total {payload['timing']['total_s']:.2f} s" + ("" if cfg.no_save else f"; wrote {cfg.out}"))
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 1 training failed (diverged, a worker died); 130 / 143 stopped by SIGINT / SIGTERM
    (workers stopped, no partial output)."""
    exit_if_worker_startup()
    return run_main(lambda: command(argv), stopped="workers stopped, no partial output written")


if __name__ == "__main__":
    sys.exit(main())
