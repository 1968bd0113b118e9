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

Python API: load_models(path) -> {name: model} for a file written by --save-model;
rollout(model, init (n, K, 4), n_steps) -> (n_steps, n, K, 4); rollout_metrics(pred, truth).

Sections: config, simulator, models, training, evaluation, output, many seeds, main. The
building blocks and machinery it imports live in the rnem package (rnem/__init__.py lists them):
layers and Adam, the simulator recipe's model, the rollout measures, worker processes, sweep
statistics, files and the environment record.

Examples:
    python3 relational_nem_bouncing_balls.py --seed 0            # full run -> run.json
    python3 relational_nem_bouncing_balls.py --quick             # smoke run, about a second -> run_quick.json
    python3 relational_nem_bouncing_balls.py --seed 0 --save-model m.npz      # also keep both trained models
    python3 relational_nem_bouncing_balls.py --load-model m.npz --eval-k 3,4,5,6,7,8 --out more_k.json
    python3 relational_nem_bouncing_balls.py --agg attention --k-train 2,3,4,5,6 --out /tmp/run.json
    python3 relational_nem_bouncing_balls.py --seeds 0-9 --eval-k 3,4,5,6,7,8          # -> results/sweep.json
    python3 relational_nem_bouncing_balls.py --seeds 0-9 --agg mean,sum,attention --curriculum 2,3,4,5,6 --eval-k 3,4,5,6,7,8
                                                                  # the full comparison -> results/sweep.json
    python3 relational_nem_bouncing_balls.py --aggregate results/sweep_runs/*.json --out summary.json
    python3 relational_nem_bouncing_balls.py --recipe simulator                   # -> results/run_simulator.json
    python3 relational_nem_bouncing_balls.py --recipe simulator --masses --seeds 0-9   # -> results/sweep_simulator_masses.json
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
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from rnem.balls import HEAVY_RADIUS
from rnem.blas import blas_info, with_one_blas_thread
from rnem.cli import ConfigError, HelpFormatter, OneLineParser, config_field, parse_int_list, parse_seeds
from rnem.environment import environment, package_sha256, source_sha256
from rnem.files import (RESULTS_DIR, check_folder_writable, check_output_path,
                        write_json_atomic)
from rnem.model_files import read_model_file, write_model_file
from rnem.layers import MLP, PairLayer, ParamBuffer, Workspace, affine_shapes, context_index, init_affine, relu_
from rnem.optim import Adam, clip_grad_norm
from rnem.rollout_measures import (long_horizon_metrics, masked_vel_mse, one_step_by_event, overlap_fraction,
                                   post_collision_mask, rollout_metrics)
from rnem.simulator import (MIN_SEPARATION, initial_state, make_dataset, max_balls, rng_for,  # noqa: F401
                            simulate, simulate_sequences)
from rnem.simulator_model import SimulatorModel
from rnem.processes import Interrupted, exit_if_worker_startup, raise_interrupted, run_workers
from rnem.sweeps import OUTPUT_FIELDS, aggregate_files, run_jobs_in_folders, seed_file, shared_config, sweep_table

MODEL_KINDS = ("non_relational", "relational")


# ----------------------------------------------------------------------------- config
@dataclass
class Config:
    # experiment
    seed: int = config_field(0, "seed of every random generator of the run")
    quick: bool = config_field(False, "smoke run with a tiny budget, written beside the full run's file with _quick "
                              "added (run_quick.json, results/run_simulator_quick.json, ...); explicit flags "
                              "win; it sets")
    recipe: str = config_field("stub", "stub: the reference stub's models and training (the default experiment); simulator: "
                               "the learned simulator (free flight plus learned wall and pair impulses, one-step "
                               "loss); explicit flags win; it sets",
                       choices=("stub", "simulator"))
    masses: bool = config_field(False, "the paper's two ball types: half of the balls (at random) 1.25x the radius and 6x "
                               "the mass; the state gets the radius as fifth component (simulator recipe only)")
    # data
    k_train: int = config_field(4, "balls in training and validation sequences: a K, or a comma-separated list of K "
                           "(each batch then draws one K; --n-train and --n-val are split evenly)")
    n_train: int = config_field(300, "training sequences")
    n_val: int = config_field(50, "validation sequences")
    n_eval: int = config_field(50, "evaluation sequences for each evaluation K")
    t_train: int = config_field(25, "steps per training / validation sequence")
    t_eval: int = config_field(30, "steps per closed-loop evaluation rollout (step 0 = the given frame)")
    eval_k: tuple = config_field((4, 3, 5, 6), "comma-separated numbers of balls to evaluate on")
    t_long: int = config_field(100, "steps of the long-horizon rollouts (at least --t-eval)")
    post_window: int = config_field(3, "states after a ball-ball collision counted by post_collision_vel_mse")
    radius: float = config_field(0.11, "ball radius in box units (the box is [0, 1]^2), in (0, 0.25)")
    dt: float = config_field(0.05, "time step of the explicit Euler simulator, in (0, 0.1]")
    # models
    hidden: int = config_field(64, "hidden units of every MLP layer")
    msg_dim: int = config_field(8, "size of the relational message m_kj")
    agg: str = config_field("mean", "how the relational model combines the other balls, one of mean, sum, attention: "
                            "mean or sum of messages, or attention-gated sum of effects (R-NEM); a sweep takes "
                            "a comma-separated list")
    # training
    epochs: int = config_field(60, "training epochs")
    batch: int = config_field(32, "sequences per optimizer step")
    lr: float = config_field(3e-3, "Adam learning rate; a training whose loss is not finite, or whose last epoch's mean "
                           "loss is above 100x its first step's, has diverged: one error line, exit code 1, "
                           "nothing written (in a sweep, a failed seed)")
    t_bptt: int = config_field(4, "closed-loop steps unrolled per training window (BPTT length)")
    grad_clip: float = config_field(5.0, "clip the global gradient norm to this value")
    lr_schedule: str = config_field("constant", "learning rate over training: constant, or cosine decay to 0",
                            choices=("constant", "cosine"))
    dtype: str = config_field("float64", "float type of training and evaluation: float64 gives the same numbers on every "
                                 "x86-64 machine; float32 is faster but its numbers depend on the BLAS kernel",
                      choices=("float64", "float32"))
    jobs: int = config_field(0, "worker processes: the two models of a run, or the seeds of a sweep (0 = all cores)")
    # output
    n_samples: int = config_field(3, "K_train evaluation sequences stored whole in run.json for the figures")
    n_attention: int = config_field(10, "with --agg attention: evaluation sequences (at most --n-eval; "
                                 "the default is lowered to --n-eval) whose teacher-forced gates are stored")
    log_every: int = config_field(10, "print one log line every this many epochs")
    out: str = config_field("run.json", "output JSON path; the default is run.json for the stub recipe's run, "
                                "results/run_simulator.json (results/run_simulator_masses.json with --masses) for "
                                "the simulator recipe's, results/sweep.json, results/sweep_simulator.json, ... with "
                                "--seeds or --aggregate; --quick adds _quick")
    no_save: bool = config_field(False, "do not write the output JSON")
    save_model: str = config_field("", "also write both trained models to this .npz file (numpy arrays, no pickle)")
    load_model: str = config_field("", "evaluate the models of this .npz file (from --save-model) instead of training; "
                               "the file's config applies except for the evaluation and output options given")
    # many seeds
    seeds: str = config_field("", "run the whole experiment for these seeds, e.g. 0-9 or 0,3,5-7, and summarise them")
    seed_dir: str = config_field("results/sweep_runs", "folder for the per-seed JSON files of --seeds; the default "
                                               "follows --out's: results/sweep_runs_simulator, ...; --quick "
                                               "adds _quick")
    curriculum: str = config_field("", "with --seeds: also run every --agg variant trained on these K, e.g. 2,3,4,5,6")
    aggregate: tuple = config_field((), "rebuild the sweep summary from these per-seed JSON files (no training)")

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: N_train * (T_train - t_bptt) // batch (196 for the defaults)."""
        return self.n_train * (self.t_train - self.t_bptt) // self.batch


# --recipe simulator: its own training setup (more data, one-step loss, cosine decay), longer
# rollouts at K = 3..8, its own output files; explicit flags win.
SIMULATOR_DEFAULTS = dict(n_train=2000, n_val=100, t_train=50, t_bptt=1, batch=64, epochs=2, hidden=32,
                          lr_schedule="cosine", eval_k=(3, 4, 5, 6, 7, 8), t_eval=100, t_long=200, log_every=1)
# The --quick smoke run: same model sizes and optimizer, a tiny budget, its own output files.
QUICK = dict(epochs=2, n_train=64, n_val=16, n_eval=16, t_eval=20, t_long=40, log_every=1)
# Config fields that decide the trained weights: with --load-model they come from the file.
TRAINING_FIELDS = ("recipe", "masses", "k_train", "n_train", "n_val", "t_train", "hidden", "msg_dim", "agg", "epochs",
                   "batch", "lr", "t_bptt", "grad_clip", "lr_schedule", "dtype")


def default_out(recipe: str, masses: bool, sweep: bool) -> str:
    """run.json for the stub recipe's run (the design card's file, in the current folder); in
    RESULTS_DIR otherwise: results/run_simulator.json, results/run_simulator_masses.json,
    results/sweep.json, results/sweep_simulator.json, ..."""
    suffix = ("" if recipe == "stub" else f"_{recipe}") + ("_masses" if masses else "")
    if recipe == "stub" and not sweep:
        return "run.json"
    return os.path.join(RESULTS_DIR, f"{'sweep' if sweep else 'run'}{suffix}.json")


def default_seed_dir(recipe: str, masses: bool) -> str:
    """The per-seed folder of a sweep: results/sweep_runs, results/sweep_runs_simulator, ..."""
    name = os.path.basename(default_out(recipe, masses, True))                  # sweep_simulator.json
    return os.path.join(RESULTS_DIR, "sweep_runs" + name[len("sweep"):-len(".json")])


def build_parser(description: str = "", probe: bool = False) -> argparse.ArgumentParser:
    """The CLI, generated from the fields of Config; --help shows every default.

    probe=True builds the same parser with no defaults at all, so that parsing argv with it
    yields exactly the options given on the command line (see config_from_args)."""
    examples = __doc__[__doc__.index("Examples:"):]
    parser = OneLineParser(description=description or __doc__.split("\n")[0], epilog=examples,
                     formatter_class=HelpFormatter,
                     argument_default=argparse.SUPPRESS if probe else None)
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        shown = meta["help"]
        for name, sets in (("quick", QUICK), ("recipe", SIMULATOR_DEFAULTS)):
            if f.name == name:                                      # the defaults it changes, as flags
                shown += " " + " ".join(f"--{k.replace('_', '-')} " + (",".join(map(str, v)) if isinstance(v, tuple)
                                                                       else str(v)) for k, v in sets.items())
        shown += ("" if f.type in ("bool", bool) or f.name == "aggregate" else
                  f" (default: {default!r})" if isinstance(default, str) else f" (default: {default})")
        kw = {} if probe else {"default": f.default}
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=shown, **({} if probe else {"default": False}))
        elif f.name in ("eval_k", "k_train"):
            parser.add_argument(flag, type=str, help=shown, **({} if probe else {"default": str(default)}))
        elif f.name == "aggregate":
            parser.add_argument(flag, nargs="+", metavar="FILE", help=shown, **({} if probe else {"default": ()}))
        else:
            kind = {"int": int, "float": float, "str": str}[f.type] if isinstance(f.type, str) else f.type
            parser.add_argument(flag, type=kind, help=shown, choices=meta.get("choices"), **kw)
    return parser


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


def k_list(k_train) -> tuple:
    """config.k_train (a K or a list of K) as a tuple."""
    return (k_train,) if isinstance(k_train, int) else tuple(k_train)


def k_train_text(cfg: Config) -> str:
    return ",".join(map(str, k_list(cfg.k_train)))


# ----------------------------------------------------------------------------- models
class MessageAggregation:
    """m_kj = MLP_msg([s_k; s_j]) (8-hidden-msg_dim) aggregated over j != k by mean or sum.

    The second message layer is affine, so with scale = 1/(K-1) (mean) or 1 (sum):
    agg_k = scale sum_j (h_kj W1 + b1) = [c, scale sum_j h_kj] @ [b1; W1] with c = scale (K-1):
    one (R, H) x (H, M) product instead of one per pair. Per step the workspace keeps
    `msg.hbar` (R, 1 + H) = [c, scale sum_j h_kj] and `msg.on` (K-1, K, B, H), the bool ReLU
    mask of the pairs (not the pair activations: a process's workspace stays near L2 size).
    """

    def __init__(self, hidden: int, msg_dim: int, agg: str):
        self.hidden, self.msg_dim, self.agg = hidden, msg_dim, agg
        self.pair = PairLayer("msg", 4, hidden)
        self.layers = [self.pair.layer, "msg.1"]

    def param_shapes(self) -> dict:
        return {**self.pair.param_shapes(), **affine_shapes("msg.1", self.hidden, self.msg_dim)}

    def init_params(self, A: dict, rng) -> None:
        for layer in self.layers:
            init_affine(A[layer], rng)

    def scale(self, k: int) -> float:
        return 1.0 / (k - 1) if self.agg == "mean" else 1.0

    def workspace_shapes(self, batch: int, k: int) -> dict:
        R = batch * k
        return {"msg.hbar": (R, 1 + self.hidden), "msg.on": (k - 1, k, batch, self.hidden),
                **self.pair.workspace_shapes(R)}

    def lead(self, k: int) -> dict:
        return {"msg.hbar": self.scale(k) * (k - 1)}

    def add_views(self, ws: Workspace, dtype) -> None:
        K, B, H = ws.k, ws.batch, self.hidden
        self.pair.add_scratch(ws, dtype)
        ws.scratch["msg.pair"] = np.zeros((K - 1, K, B, H), dtype)      # pre-activations, then dL/dpre
        ws.scratch["msg.dhsum"] = np.zeros((K * B, H), dtype)
        for slot in ws.slot:
            slot["msg.hsum"] = slot["msg.hbar"].reshape(K, B, 1 + H)[..., 1:]   # (K, B, H) view

    def forward(self, A, ws, slot, u, agg) -> None:
        """u (R, 1 + 4) = [1, s_k] -> agg (R, M)."""
        h = self.pair.forward(A, ws, u, ws.scratch["msg.pair"])     # (K-1, K, B, H)
        relu_(h, slot["msg.on"])
        hsum = np.add.reduce(h, axis=0, out=slot["msg.hsum"])      # (K, B, H) sum over the K-1 partners
        if self.agg == "mean":
            hsum *= self.scale(ws.k)
        np.matmul(slot["msg.hbar"], A["msg.1"], out=agg)            # (R, M)

    def backward_input(self, A, ws, slot, d_agg, need_input_grad):
        K, B, H = ws.k, ws.batch, self.hidden
        d_hsum = np.matmul(d_agg, A["msg.1"][1:].T, out=ws.scratch["msg.dhsum"])   # (R, H)
        if self.agg == "mean":
            d_hsum *= self.scale(K)
        d_pre = np.multiply(slot["msg.on"], d_hsum.reshape(K, B, H), out=ws.scratch["msg.pair"])
        return self.pair.backward(A, ws, slot, d_pre, need_input_grad)

    def weight_grads(self, ws, steps, u, d_agg, G) -> None:
        self.pair.weight_grads(ws, steps, u, G)
        np.matmul(ws["msg.hbar"][steps].reshape(-1, 1 + self.hidden).T, d_agg, out=G["msg.1"])


class AttentionInteraction:
    """R-NEM's interaction function (van Steenkiste et al. 2018, eq. 5) with small sizes:

        h_k = MLP_enc(s_k)                       4 -> He, ReLU
        xi_kj = MLP_emb([h_k; h_j])              2 He -> Hm, ReLU (focus k, context j kept apart)
        e_kj = MLP_eff(xi_kj)                    Hm -> msg_dim, ReLU
        a_kj = sigmoid(MLP_att(xi_kj))           Hm -> Ha tanh -> 1, an independent gate per pair
        E_k = sum_{j != k} a_kj e_kj             (agg_k of the dynamics MLP)

    with He = Hm = hidden / 2 and Ha = hidden / 4. Setting `gate_override` to a number replaces
    every a_kj by it (a test hook: with 1, E_k is the plain sum of effects). Activations that
    feed a next layer are stored as [1, x] (`enc.h`, `emb.xi`, `att.t`); pair rows are (d, k, b).
    """

    def __init__(self, hidden: int, msg_dim: int):
        self.He = self.Hm = max(1, hidden // 2)
        self.Ha, self.msg_dim = max(1, hidden // 4), msg_dim
        self.emb = PairLayer("emb", self.He, self.Hm)
        self.sizes = {"enc.0": (4, self.He), "eff.0": (self.Hm, msg_dim), "att.0": (self.Hm, self.Ha),
                      "att.1": (self.Ha, 1)}
        self.layers = ["enc.0", self.emb.layer, "eff.0", "att.0", "att.1"]
        self.gate_override = None

    def param_shapes(self) -> dict:
        shapes = affine_shapes("enc.0", *self.sizes["enc.0"])
        shapes.update(self.emb.param_shapes())
        for layer in ("eff.0", "att.0", "att.1"):
            shapes.update(affine_shapes(layer, *self.sizes[layer]))
        return shapes

    def init_params(self, A: dict, rng) -> None:
        for layer in self.layers:
            init_affine(A[layer], rng)

    def workspace_shapes(self, batch: int, k: int) -> dict:
        R, P = batch * k, (k - 1) * k * batch
        return {"enc.h": (R, 1 + self.He), "enc.on": (R, self.He), "enc.dz": (R, self.He),
                **self.emb.workspace_shapes(R),
                "emb.xi": (P, 1 + self.Hm), "emb.on": (P, self.Hm),
                "eff.e": (P, self.msg_dim), "eff.on": (P, self.msg_dim), "eff.dz": (P, self.msg_dim),
                "att.t": (P, 1 + self.Ha), "att.dzt": (P, self.Ha), "att.a": (P, 1), "att.dza": (P, 1)}

    def lead(self, k: int) -> dict:
        return {"enc.h": 1.0, "emb.xi": 1.0, "att.t": 1.0}

    def add_views(self, ws: Workspace, dtype) -> None:
        K, B = ws.k, ws.batch
        self.emb.add_scratch(ws, dtype)
        ws.scratch["emb.dxi"] = np.zeros(((K - 1) * K * B, self.Hm), dtype)
        ws.scratch["att.pair"] = np.zeros(((K - 1) * K * B, self.msg_dim), dtype)
        for slot in ws.slot:
            slot["enc.z"] = slot["enc.h"][:, 1:]                                          # (R, He)
            slot["emb.z"] = slot["emb.xi"].reshape(K - 1, K, B, 1 + self.Hm)[..., 1:]    # (K-1, K, B, Hm)
            slot["att.z"] = slot["att.t"][:, 1:]                                          # (P, Ha)
            slot["emb.on4"] = slot["emb.on"].reshape(K - 1, K, B, self.Hm)               # (K-1, K, B, Hm)

    def forward(self, A, ws, slot, u, agg) -> None:
        """u (R, 1 + 4) = [1, s_k] -> agg (R, M)."""
        K, B, M = ws.k, ws.batch, self.msg_dim
        h = np.matmul(u, A["enc.0"], out=slot["enc.z"])            # (R, He)
        relu_(h, slot["enc.on"])
        xi = self.emb.forward(A, ws, slot["enc.h"], slot["emb.z"])  # (K-1, K, B, Hm)
        relu_(xi, slot["emb.on4"])
        xi = slot["emb.xi"]                                         # (P, 1 + Hm) = [1, xi_kj]
        e = np.matmul(xi, A["eff.0"], out=slot["eff.e"])           # (P, M)
        relu_(e, slot["eff.on"])
        np.tanh(np.matmul(xi, A["att.0"], out=slot["att.z"]), out=slot["att.z"])   # (P, Ha)
        a = np.matmul(slot["att.t"], A["att.1"], out=slot["att.a"])               # (P, 1)
        np.negative(a, out=a)                                       # sigmoid(z) = 1 / (1 + exp(-z))
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a)
        if self.gate_override is not None:
            a[...] = self.gate_override
        ae = np.multiply(a, e, out=ws.scratch["att.pair"])          # (P, M) a_kj e_kj
        np.add.reduce(ae.reshape(K - 1, K * B, M), axis=0, out=agg)  # E_k = sum_j a_kj e_kj

    def backward_input(self, A, ws, slot, d_agg, need_input_grad):
        K, B, M = ws.k, ws.batch, self.msg_dim
        R, e, a, t = K * B, slot["eff.e"], slot["att.a"], slot["att.z"]
        dz_e = slot["eff.dz"]                                                       # (P, M), rows (d, k, b)
        np.multiply(a.reshape(K - 1, R, 1), d_agg, out=dz_e.reshape(K - 1, R, M))  # dL/de_kj = a_kj dL/dE_k ...
        dz_e *= slot["eff.on"]                                                      # ... through the ReLU
        e_dE = np.multiply(e.reshape(K - 1, R, M), d_agg, out=ws.scratch["att.pair"].reshape(K - 1, R, M))
        np.add.reduce(e_dE, axis=2, out=slot["att.dza"].reshape(K - 1, R))         # dL/da_kj = e_kj . dL/dE_k
        dza = slot["att.dza"]                                                       # (P, 1)
        dza *= a * (1.0 - a)                                                        # sigmoid'
        dzt = np.multiply(dza, A["att.1"][1:].T, out=slot["att.dzt"])              # (P, 1) x (1, Ha) outer product
        dzt *= 1.0 - t * t                                                          # tanh'
        dxi = np.matmul(dz_e, A["eff.0"][1:].T, out=ws.scratch["emb.dxi"])         # (P, Hm)
        dxi += dzt @ A["att.0"][1:].T
        dxi *= slot["emb.on"]                                                       # ReLU of the embedding
        dh = self.emb.backward(A, ws, slot, dxi.reshape(K - 1, K, B, self.Hm))    # (R, He)
        dz_h = np.multiply(dh, slot["enc.on"], out=slot["enc.dz"])
        return dz_h @ A["enc.0"][1:].T if need_input_grad else None

    def weight_grads(self, ws, steps, u, d_agg, G) -> None:
        def stacked(name):
            return ws[name][steps].reshape(-1, ws[name].shape[-1])

        xi = stacked("emb.xi")
        for layer, inputs, grads in (("enc.0", u, stacked("enc.dz")),
                                     ("eff.0", xi, stacked("eff.dz")),
                                     ("att.0", xi, stacked("att.dzt")),
                                     ("att.1", stacked("att.t"), stacked("att.dza"))):
            np.matmul(inputs.T, grads, out=G[layer])
        self.emb.weight_grads(ws, steps, stacked("enc.h"), G)


AGGREGATORS = ("mean", "sum", "attention")


class DynamicsModel:
    """Shared machinery: flat parameters, workspaces, the forward/backward API.

    forward(S) -> (delta, cache) for S (B, K, 4); backward(d_delta, cache) -> (grads, dS).
    Inside, rows are ordered (k, b) and the input of step t of the dynamics MLP,
    `ws.inputs[t]` (R, 1 + 4 + ...) = [1, s_k, ...], holds the state: `ws.states[t]` (K, B, 4)
    is a view of it, so a closed-loop unroll writes s_{t+1} straight into step t+1's input.
    With a workspace `ws` and step `t`, forward writes its activations into slot t of ws and
    the returned delta is a view valid until slot t is written again.
    """

    kind = ""

    def _setup(self, blocks, dtype):
        shapes = {}
        for block in blocks:
            shapes.update(block.param_shapes())
        self.layers = [layer for block in blocks for layer in block.layers]
        self.layout = ParamBuffer(shapes)
        self.dtype = np.dtype(dtype)
        self.flat = np.zeros(self.layout.size, self.dtype)
        self.params = self.layout.views(self.flat)
        self.A = self.layout.affine(self.flat, self.layers)         # layer -> [b; W], views of flat

    @property
    def n_params(self) -> int:
        return self.layout.size

    def grads_like(self, flat: np.ndarray) -> dict:
        """Named views of a gradient vector (cached for the last vector asked for)."""
        self._grad_views(flat)
        return self._grads_views

    def _grad_views(self, flat: np.ndarray) -> dict:
        """[b; W] views of a gradient vector, by layer (cached with grads_like)."""
        if getattr(self, "_grads_flat", None) is not flat:
            self._grads_flat, self._grads_views = flat, self.layout.views(flat)
            self._grads_affine = self.layout.affine(flat, self.layers)
        return self._grads_affine

    def make_workspace(self, n_steps: int, batch: int, k: int) -> Workspace:
        ws = Workspace(n_steps, batch, k, self._workspace_shapes(batch, k), self.dtype, self._lead(k))
        n_in = self.dyn.sizes[0]
        ws.inputs = np.zeros((n_steps + 1, batch * k, 1 + n_in), self.dtype)    # [1, s_t, ...]; [n_steps]: s_T only
        ws.inputs[..., 0] = 1.0
        ws.states = ws.inputs.reshape(n_steps + 1, k, batch, 1 + n_in)[..., 1:5]   # (n_steps + 1, K, B, 4)
        ws.d_delta = ws[self.dyn.d[-1]].reshape(n_steps, k, batch, 4)           # dL/d delta_t (n_steps, K, B, 4)
        for t, slot in enumerate(ws.slot):
            slot["dyn.x0"] = ws.inputs[t]
        self.dyn.add_views(ws)
        self._add_views(ws)
        return ws

    def _lead(self, k: int) -> dict:
        return self.dyn.lead()

    def _add_views(self, ws: Workspace) -> None:
        """Buffers used only within one step (shared by all slots) and extra per-slot views."""

    def forward(self, S: np.ndarray, ws: Workspace | None = None, t: int = 0):
        B, K, _ = S.shape
        if ws is None:
            ws, t = self.make_workspace(1, B, K), 0
        np.copyto(ws.states[t], S.transpose(1, 0, 2))
        return self.step(ws, t).transpose(1, 0, 2), (ws, t)          # (B, K, 4)

    def backward_input(self, d_delta: np.ndarray, cache, need_input_grad: bool = True):
        """dL/dS (B, K, 4) of one forward call, from d_delta (B, K, 4); fills the slot's gradients."""
        ws, t = cache
        np.copyto(ws.d_delta[t], d_delta.transpose(1, 0, 2))
        dS = self.step_backward(ws, t, need_input_grad)
        return None if dS is None else dS.transpose(1, 0, 2)

    def backward(self, d_delta: np.ndarray, cache):
        """Gradients of sum(d_delta * delta) for one forward call: (grads keyed like params, dS)."""
        ws, t = cache
        dS = self.backward_input(d_delta, cache)
        grad_flat = np.zeros(self.layout.size, self.dtype)
        self.weight_grads(ws, slice(t, t + 1), grad_flat)
        return self.grads_like(grad_flat), dS

    def weight_grads(self, ws: Workspace, steps: slice, grad_flat: np.ndarray) -> None:
        """Writes into grad_flat the weight gradients of the forward/backward passes in those steps."""
        self._weight_grads(ws, steps, self._grad_views(grad_flat))


class NonRelationalDynamics(DynamicsModel):
    """delta_k = MLP_dyn(s_k): every slot updated alone (4-hidden-hidden-4)."""

    kind = "non_relational"

    def __init__(self, hidden: int = 64, rng: np.random.Generator | None = None, dtype=np.float64):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dyn = MLP("dyn", (4, hidden, hidden, 4))
        self._setup([self.dyn], dtype)
        self.dyn.init_params(self.A, rng)

    def _workspace_shapes(self, batch, k):
        return self.dyn.workspace_shapes(batch * k)

    def step(self, ws, t):
        """delta (K, B, 4) from the state in ws.inputs[t]."""
        return self.dyn.forward(self.A, ws.slot[t], ws.inputs[t]).reshape(ws.k, ws.batch, 4)

    def step_backward(self, ws, t, need_input_grad=True):
        """dL/ds_t (K, B, 4) through delta_t alone, from ws.d_delta[t]; or None."""
        dX = self.dyn.backward_input(self.A, ws.slot[t], need_input_grad)
        return None if dX is None else dX.reshape(ws.k, ws.batch, 4)

    def _weight_grads(self, ws, steps, G):
        self.dyn.weight_grads(ws, steps, ws.inputs[steps].reshape(-1, 5), G)


class RelationalDynamics(DynamicsModel):
    """delta_k = MLP_dyn([s_k; agg_k]) with agg_k from the other balls:

    agg="mean"       agg_k = mean_{j != k} MLP_msg([s_k; s_j])      message MLP 8-hidden-msg_dim
    agg="sum"        agg_k = sum_{j != k} MLP_msg([s_k; s_j])
    agg="attention"  agg_k = sum_{j != k} a_kj e_kj (AttentionInteraction)

    Dynamics MLP (4+msg_dim)-hidden-hidden-4. Pair functions are evaluated on the K(K-1) ordered
    off-diagonal pairs only. Rows are ordered (k, b) so that pair tensors are (K-1, K, B, .):
    pair (d, k) has context ball j = ctx[d, k]. The dynamics input [1, s_k, agg_k] is one
    buffer: the interaction reads [1, s_k] from it and writes agg_k into it.
    """

    kind = "relational"

    def __init__(self, hidden: int = 64, msg_dim: int = 8, rng: np.random.Generator | None = None,
                 dtype=np.float64, agg: str = "mean"):
        if agg not in AGGREGATORS:
            raise ValueError(f"agg must be one of {', '.join(AGGREGATORS)} (got {agg!r})")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.hidden, self.msg_dim, self.agg = hidden, msg_dim, agg
        self.interaction = (AttentionInteraction(hidden, msg_dim) if agg == "attention"
                            else MessageAggregation(hidden, msg_dim, agg))
        self.dyn = MLP("dyn", (4 + msg_dim, hidden, hidden, 4))
        self._setup([self.interaction, self.dyn], dtype)
        self.interaction.init_params(self.A, rng)
        self.dyn.init_params(self.A, rng)

    def _workspace_shapes(self, batch, k):
        shapes = self.dyn.workspace_shapes(batch * k)
        shapes["dyn.dx0"] = (batch * k, 4 + self.msg_dim)           # dL/d[s_k; agg_k]
        shapes.update(self.interaction.workspace_shapes(batch, k))
        return shapes

    def _lead(self, k):
        return {**self.dyn.lead(), **self.interaction.lead(k)}

    def _add_views(self, ws):
        self.interaction.add_views(ws, self.dtype)

    def step(self, ws, t):
        """delta (K, B, 4) from the state in ws.inputs[t]."""
        slot, x = ws.slot[t], ws.inputs[t]                          # x (R, 1 + 4 + M) = [1, s_k, agg_k]
        self.interaction.forward(self.A, ws, slot, x[:, :5], x[:, 5:])
        return self.dyn.forward(self.A, slot, x).reshape(ws.k, ws.batch, 4)

    def step_backward(self, ws, t, need_input_grad=True):
        """dL/ds_t (K, B, 4) through delta_t (directly and through every agg_k), from ws.d_delta[t]; or None."""
        slot = ws.slot[t]
        dx = self.dyn.backward_input(self.A, slot, out=slot["dyn.dx0"])         # (R, 4 + M)
        dS = self.interaction.backward_input(self.A, ws, slot, dx[:, 4:], need_input_grad)
        if not need_input_grad:
            return None
        dS += dx[:, :4]
        return dS.reshape(ws.k, ws.batch, 4)

    def _weight_grads(self, ws, steps, G):
        x = ws.inputs[steps].reshape(-1, 5 + self.msg_dim)         # (steps*R, 1 + 4 + M)
        self.dyn.weight_grads(ws, steps, x, G)
        d_agg = ws["dyn.dx0"][steps][..., 4:].reshape(-1, self.msg_dim)
        self.interaction.weight_grads(ws, steps, x[:, :5], d_agg, G)

    def attention(self, ws: Workspace, t: int = 0) -> np.ndarray:
        """The gates a_kj of the last forward pass in slot t as (B, K, K), zero on the diagonal."""
        K, B = ws.k, ws.batch
        a = ws.slot[t]["att.a"].reshape(K - 1, K, B)                # a[d, k, b] for j = ctx[d, k]
        out = np.zeros((B, K, K))
        ctx = context_index(K)
        for d in range(K - 1):
            out[:, np.arange(K), ctx[d]] = a[d].T
        return out


def make_model(kind: str, cfg: Config, rng: np.random.Generator, dtype=None):
    """The `kind` model of cfg's recipe."""
    dtype = dtype or cfg.dtype
    if cfg.recipe == "simulator":
        return SimulatorModel(kind, cfg.hidden, cfg.radius, cfg.dt, rng=rng, dtype=dtype)
    if kind == "non_relational":
        return NonRelationalDynamics(cfg.hidden, rng=rng, dtype=dtype)
    return RelationalDynamics(cfg.hidden, cfg.msg_dim, rng=rng, dtype=dtype, agg=cfg.agg)


# ----------------------------------------------------------------------------- training
def bptt_loss_and_grads(model: DynamicsModel, window: np.ndarray, ws: Workspace | None = None,
                        grad_flat: np.ndarray | None = None):
    """Closed-loop BPTT loss and gradients for one batch of windows.

    window (t_bptt + 1, B, K, 4): window[0] starts the unroll s_{t+1} = s_t + delta(s_t);
    loss = mean over the t_bptt steps of the per-element MSE between s_{t+1} and window[t+1].
    Returns (loss, grads) with grads keyed like model.params (views into grad_flat, which
    is allocated when not given). `ws` is a workspace for (t_bptt, B, K), reused
    between calls to save allocations.
    """
    T = window.shape[0] - 1
    B, K = window.shape[1:3]
    if ws is None:
        ws = model.make_workspace(T, B, K)
    states, d_delta = ws.states, ws.d_delta                         # (T+1, K, B, 4), (T, K, B, 4)
    np.copyto(states[0], window[0].transpose(1, 0, 2))
    for t in range(T):
        np.add(states[t], model.step(ws, t), out=states[t + 1])    # s_{t+1} = s_t + delta(s_t)
    err = np.subtract(states[1:], window[1:].transpose(0, 2, 1, 3), out=d_delta)   # (T, K, B, 4)
    loss = float(np.vdot(err, err)) / err.size
    err *= 2.0 / err.size                                           # d_delta[t]: step t's own loss term
    for t in reversed(range(T)):
        # d_delta[t] = dL/ds_{t+1} = dL/d delta_t, as s_{t+1} = s_t + delta_t; then
        # dL/ds_t = dL/ds_{t+1} + (d delta_t / d s_t)^T dL/ds_{t+1} + the loss term of s_t itself
        dS = model.step_backward(ws, t, need_input_grad=t > 0)
        if t > 0:
            d_delta[t - 1] += d_delta[t]
            d_delta[t - 1] += dS
    if grad_flat is None:
        grad_flat = np.zeros(model.n_params, model.dtype)
    model.weight_grads(ws, slice(0, T), grad_flat)
    return loss, model.grads_like(grad_flat)


ROLLOUT_BOUND = 10.0    # |state| cap of closed-loop rollouts (the box is [0, 1], speeds ~1)


def rollout(model: DynamicsModel, init: np.ndarray, n_steps: int, ws: Workspace | None = None) -> np.ndarray:
    """Closed-loop prediction from init (n, K, 4): returns (n_steps, n, K, 4), [0] = init.

    Every state is clipped to [-ROLLOUT_BOUND, ROLLOUT_BOUND]: a rollout that diverges (the sum
    aggregator can, at K far from training) then gives large finite errors instead of inf/NaN.
    """
    n, K, D = init.shape
    ws = ws if ws is not None else model.make_workspace(1, n, K)
    traj = np.empty((n_steps, n, K, D), model.dtype)
    traj[0] = init
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, n_steps):
            delta, _ = model.forward(traj[t - 1], ws, 0)
            np.add(traj[t - 1], delta, out=traj[t])
            np.clip(traj[t], -ROLLOUT_BOUND, ROLLOUT_BOUND, out=traj[t])
    return traj


class Validator:
    """(val_mse_1step, val_mse_bptt) of a model on validation sequences val (N, T, K, D),
    with inputs and workspaces built once for the per-epoch calls.

    val_mse_1step: per-element MSE of (x, y, vx, vy) one predicted step from every true state
    s_t, t < T-1. val_mse_bptt: the same over t_bptt closed-loop steps (the stub recipe's
    training loss) on the non-overlapping windows starting at t = 0, t_bptt, 2 t_bptt, ...
    """

    def __init__(self, model: DynamicsModel, val: np.ndarray, t_bptt: int):
        N, T, K, D = val.shape
        val = val.astype(model.dtype)
        self.model, self.t_bptt = model, t_bptt
        self.inputs = val[:, :-1].reshape(-1, K, D)                 # (N (T-1), K, D)
        self.targets = val[:, 1:].reshape(-1, K, D)
        starts = np.arange(0, T - t_bptt, t_bptt)
        windows = val[:, starts[:, None] + np.arange(t_bptt + 1)]   # (N, W, t_bptt+1, K, D)
        self.windows = windows.transpose(2, 0, 1, 3, 4).reshape(t_bptt + 1, -1, K, D)
        self.ws_1step = model.make_workspace(1, len(self.inputs), K)
        self.ws_rollout = model.make_workspace(1, self.windows.shape[1], K)

    def __call__(self):
        delta, _ = self.model.forward(self.inputs, self.ws_1step, 0)
        mse_1 = float(np.mean((self.inputs + delta - self.targets)[..., :4] ** 2))
        pred = rollout(self.model, self.windows[0], self.t_bptt + 1, self.ws_rollout)
        mse_bptt = float(np.mean((pred[1:] - self.windows[1:])[..., :4] ** 2))
        return mse_1, mse_bptt


def residual_spread(train_tm: dict, dt: float):
    """(sigma_x, sigma_v): standard deviations over all training transitions of the position
    residual x_{t+1} - (x_t + dt v_t) and of the velocity change v_{t+1} - v_t (the simulator
    recipe's loss weighs each by 1 / sigma^2). train_tm: K -> (T, N, K, D)."""
    dx, dv = [], []
    for data in train_tm.values():
        dx.append((data[1:, ..., :2] - data[:-1, ..., :2] - dt * data[:-1, ..., 2:4]).ravel())
        dv.append((data[1:, ..., 2:4] - data[:-1, ..., 2:4]).ravel())
    return float(np.std(np.concatenate(dx))), float(np.std(np.concatenate(dv)))


DIVERGED_LOSS_RATIO = 100.0   # training diverged if its last epoch's mean loss is above this times the first step's


@with_one_blas_thread
def train_model(kind: str, cfg: Config, train: dict, val: dict, log=print, stop_after: int | None = None):
    """Trains one model with Adam on random (sequence, start) windows of train {K: (N_K, T, K, 4)};
    with several K, each batch first draws one K uniformly (batches stay rectangular).

    Returns (model, history, timing): history holds per-epoch lists of epoch, train_loss
    (mean BPTT loss of the epoch's steps), val_mse_1step, val_mse_bptt (means over the training
    K) and grad_norm (mean global gradient norm before clipping), and with several K `batch_k`,
    the K of every batch; timing holds train_s, step_s and steps_per_sec. stop_after = E ends the
    training after its first E epochs, with the schedule of the whole (the test of committed
    results recomputes their first epoch this way).
    """
    t_start = time.perf_counter()
    dtype = np.dtype(cfg.dtype)
    model = make_model(kind, cfg, rng_for(cfg.seed, f"init/{kind}"), dtype)
    batch_rng = rng_for(cfg.seed, f"batches/{kind}")
    ks = k_list(cfg.k_train)
    train_tm = {k: np.ascontiguousarray(train[k].transpose(1, 0, 2, 3), dtype=dtype) for k in ks}   # (T, N, K, D)
    simulator = cfg.recipe == "simulator"
    if simulator:                                                   # soft gates; loss in units of the residuals' spread
        model.hard_gates = False
        model.loss_scale = 1.0 / np.array(residual_spread(train_tm, cfg.dt)) ** 2
    validators = [Validator(model, val[k], cfg.t_bptt) for k in ks]
    offsets = np.arange(cfg.t_bptt + 1)[:, None]                               # (t_bptt+1, 1)
    workspaces = {k: model.make_workspace(cfg.t_bptt, cfg.batch, k) for k in ks}
    grad = np.zeros(model.n_params, dtype)
    adam = Adam(model.flat, cfg.lr)
    history = {key: [] for key in ("epoch", "train_loss", "val_mse_1step", "val_mse_bptt", "grad_norm")}
    if len(ks) > 1:
        history["batch_k"] = []
    step_seconds, n_steps, first_loss = 0.0, cfg.epochs * cfg.steps_per_epoch, math.inf
    for epoch in range(1, min(cfg.epochs, stop_after or cfg.epochs) + 1):
        t_epoch = time.perf_counter()
        loss_sum = norm_sum = 0.0
        with np.errstate(over="ignore", invalid="ignore"):             # a diverging loss is caught below
            for step in range((epoch - 1) * cfg.steps_per_epoch, epoch * cfg.steps_per_epoch):
                if cfg.lr_schedule == "cosine":
                    adam.lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / n_steps))
                k = ks[batch_rng.integers(len(ks))] if len(ks) > 1 else ks[0]
                T, N = train_tm[k].shape[:2]
                seq = batch_rng.integers(N, size=cfg.batch)
                start = batch_rng.integers(T - cfg.t_bptt, size=cfg.batch)
                window = train_tm[k][start + offsets, seq]                           # (t_bptt+1, B, K, D)
                if simulator:
                    loss, grad[...] = model.loss_and_grads(window[0], window[1])
                else:
                    loss, _ = bptt_loss_and_grads(model, window, workspaces[k], grad)
                if len(ks) > 1:
                    history["batch_k"].append(int(k))
                norm = clip_grad_norm(grad, cfg.grad_clip)
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    raise FloatingPointError(f"{kind}: training diverged (non-finite loss) in epoch {epoch}; "
                                             f"try a smaller --lr (got {cfg.lr}) or --grad-clip "
                                             f"(got {cfg.grad_clip})")
                norm_sum += norm
                adam.step(grad)
                loss_sum += loss
                first_loss = loss if step == 0 else first_loss
        step_seconds += time.perf_counter() - t_epoch
        val_1, val_b = np.mean([validate() for validate in validators], axis=0).tolist()
        for key, value in zip(history, (epoch, loss_sum / cfg.steps_per_epoch, val_1, val_b,
                                        norm_sum / cfg.steps_per_epoch)):
            history[key].append(value)
        if epoch % cfg.log_every == 0 or epoch == cfg.epochs:
            rate = epoch * cfg.steps_per_epoch / step_seconds
            log(f"[{kind:>14}] epoch {epoch:3d}/{cfg.epochs}  train {history['train_loss'][-1]:.5f}  "
                f"val 1-step {val_1:.5f}  " + (f"val {cfg.t_bptt}-step {val_b:.5f}  " if cfg.t_bptt > 1 else "") +
                f"|g| {history['grad_norm'][-1]:.2f}  {rate:.0f} steps/s")
    if history["train_loss"][-1] > DIVERGED_LOSS_RATIO * first_loss:
        raise FloatingPointError(f"{kind}: training diverged: the last epoch's mean loss "
                                 f"{history['train_loss'][-1]:.3g} is above {DIVERGED_LOSS_RATIO:g}x the first "
                                 f"step's {first_loss:.3g}; try a smaller --lr (got {cfg.lr}) or --grad-clip "
                                 f"(got {cfg.grad_clip})")
    if simulator:
        model.hard_gates = True
    timing = {"train_s": time.perf_counter() - t_start, "step_s": step_seconds,
              "steps_per_sec": len(history["epoch"]) * cfg.steps_per_epoch / step_seconds,
              "optimizer_steps": len(history["epoch"]) * cfg.steps_per_epoch,
              "blas_threads": blas_info()["threads"]}
    return model, history, timing


def _print_flush(line):
    print(line, flush=True)


def _silent(*_):
    pass


def _train_job(job):
    """Worker entry point: trains one model, returns what the parent needs (picklable).
    job = (kind, cfg, train, val, verbose)."""
    kind, cfg, train, val, verbose = job
    model, history, timing = train_model(kind, cfg, train, val, log=_print_flush if verbose else _silent)
    return kind, model.flat, history, timing


def n_workers(cfg: Config) -> int:
    return cfg.jobs or os.cpu_count() or 1


def train_both(cfg: Config, train, val, verbose: bool = True, pretrained: dict | None = None):
    """Trains both models, in two processes when there are two workers (same numbers either way).
    pretrained: kind -> (model, history, timing) of a model already trained on this data.
    A model whose training fails raises TrainingError naming it."""
    models, histories, timings = {}, {}, {}
    jobs = [(kind, cfg, train, val, verbose) for kind in reversed(MODEL_KINDS) if kind not in (pretrained or {})]
    if n_workers(cfg) >= 2 and len(jobs) == 2:
        outcomes = run_workers(_train_job, jobs, 2)
    else:
        outcomes = []
        for job in jobs:
            try:
                outcomes.append((_train_job(job), None))
            except FloatingPointError as err:
                outcomes.append((None, f"{type(err).__name__}: {err}"))
    for job, (result, error) in zip(jobs, outcomes):
        if error is not None:
            raise TrainingError(f"training the {job[0]} model failed: {error}")
    for kind, (model, history, timing) in (pretrained or {}).items():
        models[kind], histories[kind], timings[kind] = model, history, timing
    for kind, flat, history, timing in (result for result, _ in outcomes):
        model = make_model(kind, cfg, np.random.default_rng(0))
        model.flat[...] = flat
        models[kind], histories[kind], timings[kind] = model, history, timing
    return ({k: models[k] for k in MODEL_KINDS}, {k: histories[k] for k in MODEL_KINDS},
            {k: timings[k] for k in MODEL_KINDS})


class TrainingError(RuntimeError):
    """Training failed (diverged, or its worker died); main() prints it on one line, exit code 1."""


# ----------------------------------------------------------------------------- evaluation
BASELINES = ("constant_velocity", "uninformed")
PREDICTORS = MODEL_KINDS + BASELINES
# The uninformed guess: every ball at the box centre, at rest. For positions symmetric about the
# centre and directions uniform, this constant minimises the expected squared error, so its
# error is the level at which a predictor that has lost track of the balls saturates.
UNINFORMED_STATE = np.array([0.5, 0.5, 0.0, 0.0])
EVENT_CLASSES = ("free", "wall", "ball")


def make_predictors(models: dict, cfg: Config) -> dict:
    """name -> (rollout_fn(init (n, K, 4), n_steps) -> (n_steps, n, K, 4), step_fn(S) -> next S).

    constant_velocity: free flight with wall reflection and no ball-ball interaction (the
    simulator with collide=False), what perfect non-relational physics achieves;
    uninformed: UNINFORMED_STATE at every step after the given frame.
    """
    predictors = {}
    for kind, model in models.items():
        predictors[kind] = (
            lambda init, n, m=model: rollout(m, init.astype(m.dtype), n),
            lambda S, m=model: S + m.forward(S.astype(m.dtype))[0])

    def free_flight(init, n):
        """The simulator without ball-ball collisions, from init (n_seq, K, D); keeps the radius column."""
        radii = init[..., 4] if init.shape[-1] == 5 else cfg.radius
        states = simulate(init[..., :2], init[..., 2:4], n, cfg.dt, radii, collide=False)
        return with_radii(states, init)

    def guess(init, n):
        pred = np.broadcast_to(init, (n,) + init.shape).copy()
        pred[1:, ..., :4] = UNINFORMED_STATE
        return pred

    predictors["constant_velocity"] = (free_flight, lambda S: free_flight(S, 2)[1])
    predictors["uninformed"] = (guess, lambda S: guess(S, 2)[1])
    return predictors


def with_radii(states: np.ndarray, like: np.ndarray) -> np.ndarray:
    """states (T, n, K, 4) with the radius column of `like` (n, K, D) appended when D = 5."""
    if like.shape[-1] == 4:
        return states
    return np.concatenate([states, np.broadcast_to(like[..., 4:], states.shape[:3] + (1,))], axis=-1)


def packing_fraction(k: int, radius: float) -> float:
    """Fraction of the unit box covered by K balls of this radius."""
    return k * math.pi * radius ** 2


@with_one_blas_thread
def evaluate(models: dict, eval_sets: dict, long_sets: dict, cfg: Config):
    """Closed-loop rollouts from frame 0, one-step errors by event class and long rollouts,
    for the two models and both baselines at every evaluation K.

    eval_sets / long_sets: K -> (states (T, n, K, 4), events). Returns (rollout, one_step,
    long_horizon, samples), the run.json sections of those names.
    """
    predictors = make_predictors(models, cfg)
    rollouts, one_step, long_horizon, preds = {}, {}, {}, {}
    for k, (truth, events) in eval_sets.items():
        mask = post_collision_mask(events["pair"], cfg.post_window)      # (T, n, K)
        entry = {"K": k, "T": cfg.t_eval, "packing_fraction": packing_fraction(k, cfg.radius),
                 "post_collision_window": cfg.post_window, "post_collision_count": int(mask.sum())}
        one_step[str(k)] = {}
        for name, (rollout_fn, step_fn) in predictors.items():
            pred = rollout_fn(truth[0], cfg.t_eval)
            entry[name] = rollout_metrics(pred, truth)
            entry[name]["post_collision_vel_mse"] = masked_vel_mse(pred, truth, mask)
            one_step[str(k)][name] = one_step_by_event(step_fn, truth, events)
            preds[k, name] = pred
        rollouts[str(k)] = entry
        long_truth, _ = long_sets[k]
        long_horizon[str(k)] = {"T": cfg.t_long, "truth_overlap_frac": overlap_fraction(long_truth, cfg.radius).tolist(), **{
            name: long_horizon_metrics(predictors[name][0](long_truth[0], cfg.t_long), long_truth, cfg.radius)
            for name in MODEL_KINDS + ("constant_velocity",)}}
    k_samples = next((k for k in k_list(cfg.k_train) if k in eval_sets), next(iter(eval_sets)))
    idx = slice(0, cfg.n_samples)

    def as_list(a):
        return np.round(np.asarray(a, np.float64), 5).tolist()

    samples = {"K": k_samples, "index": list(range(cfg.n_samples)), "radius": cfg.radius,
               "truth": as_list(eval_sets[k_samples][0][:, idx])}
    samples.update({kind: as_list(preds[k_samples, kind][:, idx]) for kind in models})
    attention = None
    if cfg.agg == "attention":
        model = models["relational"]
        gates = np.stack([rollout_gates(model, pred_t) for pred_t in preds[k_samples, "relational"][:, idx]])
        samples["attention"] = as_list(gates)                       # (T, S, K, K) along the closed-loop rollout
        attention = attention_geometry(model, *eval_sets[k_samples], min(cfg.n_attention, cfg.n_eval))
    return rollouts, one_step, long_horizon, samples, attention


def rollout_gates(model: "RelationalDynamics", S: np.ndarray) -> np.ndarray:
    """Attention gates a_kj (n, K, K) the model computes on states S (n, K, 4)."""
    ws = model.make_workspace(1, *S.shape[:2])
    model.forward(S.astype(model.dtype), ws, 0)
    return model.attention(ws, 0)


def attention_geometry(model, truth: np.ndarray, events: dict, n_seq: int) -> dict:
    """Teacher-forced gates against the geometry of each ordered pair, over the first n_seq
    sequences of truth (T, n, K, 4): for every step t and pair j != k, the gate a_kj computed on
    the true state s_t, the centre distance, the approach speed -(v_j - v_k).(p_j - p_k) / |p_j - p_k|
    (positive when closing in), and whether the pair collides during the step t -> t+1."""
    T, _, K, _ = truth.shape
    states = truth[:, :n_seq]                                       # (T, S, K, 4)
    gates = rollout_gates(model, states.reshape(-1, K, 4)).reshape(T, -1, K, K)
    offset = states[:, :, None, :, :2] - states[:, :, :, None, :2]  # (T, S, K, K, 2): p_j - p_k
    rel_vel = states[:, :, None, :, 2:4] - states[:, :, :, None, 2:4]
    dist = np.linalg.norm(offset, axis=-1)
    off_diag = ~np.eye(K, dtype=bool)
    approach = -(rel_vel * offset).sum(-1) / np.where(off_diag, dist, 1.0)
    collided = events["pair"][:, :n_seq]
    return {"K": K, "n_sequences": n_seq,
            **{name: np.round(value[:, :, off_diag].ravel(), 4).tolist()
               for name, value in (("gate", gates), ("distance", dist), ("approach_speed", approach))},
            "collided": collided[:, :, off_diag].ravel().astype(int).tolist()}


# ----------------------------------------------------------------------------- output
MODEL_FILE_FORMAT = "relational-nem-bouncing-balls models 1"


def model_name(kind: str, recipe: str = "stub") -> str:
    """The name of a saved model: recipe.kind, e.g. stub.relational."""
    return f"{recipe}.{kind}"


def save_models(path: str, models: dict, cfg: Config, histories: dict, timings: dict, extra: dict | None = None) -> None:
    """Writes every model's parameter vector with the config, history and source sha256 (and
    `extra`, more metadata) to an .npz (numpy arrays only: the metadata is one JSON string,
    loadable without pickle); written to a temporary file and renamed into place."""
    meta = {"format": MODEL_FILE_FORMAT, "source_sha256": source_sha256(__file__), "package_sha256": package_sha256(),
            "config": payload_config(cfg),
            "models": {model_name(kind, cfg.recipe): {"kind": kind, "n_params": model.n_params,
                                                      "dtype": model.dtype.name}
                       for kind, model in models.items()},
            "history": histories, "timing": timings, **(extra or {})}
    arrays = {model_name(kind, cfg.recipe): model.flat for kind, model in models.items()}
    write_model_file(path, meta, arrays)


def read_model_meta(path: str) -> dict:
    return read_model_file(path, "--load-model", MODEL_FILE_FORMAT)[0]


def load_models(path: str) -> dict:
    """{name: model} of a file written by --save-model, e.g. {"stub.non_relational": ...,
    "stub.relational": ...}; each is ready for rollout(model, init, n_steps). Raises
    ConfigError (a ValueError) for a malformed file or one that does not match its config."""
    meta, arrays = read_model_file(path, "--load-model", MODEL_FILE_FORMAT)
    config = meta["config"]
    try:
        cfg = Config(**{f.name: (tuple(config[f.name]) if isinstance(config[f.name], list) else config[f.name])
                        for f in dataclasses.fields(Config) if f.name in config})
    except TypeError as err:
        raise ConfigError(f"--load-model {path}: config does not fit this script ({err})")
    models = {}
    for name, info in meta["models"].items():
        kind = info.get("kind") if isinstance(info, dict) else None
        if kind not in MODEL_KINDS or name not in arrays:
            raise ConfigError(f"--load-model {path}: model {name!r} is missing or of unknown kind")
        flat = arrays[name]
        if flat.dtype.name not in ("float32", "float64"):
            raise ConfigError(f"--load-model {path}: {name} has dtype {flat.dtype}, expected float32 or float64")
        try:
            model = make_model(kind, cfg, np.random.default_rng(0), flat.dtype.name)
        except (ValueError, TypeError, MemoryError) as err:
            raise ConfigError(f"--load-model {path}: {name}: {type(err).__name__} {err}")
        if flat.shape != (model.n_params,):
            raise ConfigError(f"--load-model {path}: {name} has {flat.size} parameters, but its config "
                              f"(hidden {cfg.hidden}, msg_dim {cfg.msg_dim}, agg {cfg.agg}) needs {model.n_params}")
        if not np.isfinite(flat).all():
            raise ConfigError(f"--load-model {path}: {name} has non-finite parameters")
        model.flat[...] = flat
        models[name] = model
    return models


def test_set(cfg: Config, k: int, which: str):
    """The closed-loop ("eval", cfg.t_eval steps) or long-horizon ("long", cfg.t_long steps) test
    set of K = k balls: (states (T, n_eval, k, D), events); each K has its own generator."""
    n_steps = cfg.t_eval if which == "eval" else cfg.t_long
    return simulate_sequences(cfg.n_eval, n_steps, k, cfg.dt, cfg.radius, rng_for(cfg.seed, f"data/{which}/K={k}"),
                              cfg.masses)


def make_data(cfg: Config):
    """Training and validation sequences, K -> (n_K, T, K, D) for every training K, and per
    evaluation K the closed-loop and long-horizon test sets: K -> (states (T, n, K, D), events);
    D = 4, or 5 with --masses."""
    ks = k_list(cfg.k_train)

    def split(n, purpose):
        """K -> (n_K, T, K, 4): n sequences split evenly over the training K."""
        if len(ks) == 1:                                            # one K: the stub's single stream
            return {ks[0]: make_dataset(n, cfg.t_train, ks[0], cfg.dt, cfg.radius, rng_for(cfg.seed, purpose),
                                        cfg.masses)}
        counts = [n // len(ks) + (i < n % len(ks)) for i in range(len(ks))]
        return {k: make_dataset(c, cfg.t_train, k, cfg.dt, cfg.radius, rng_for(cfg.seed, f"{purpose}/K={k}"),
                                cfg.masses)
                for k, c in zip(ks, counts)}

    try:
        train, val = split(cfg.n_train, "data/train"), split(cfg.n_val, "data/val")
    except ValueError as err:
        raise ConfigError(f"--k-train {k_train_text(cfg)}: {err}")
    try:
        eval_sets = {k: test_set(cfg, k, "eval") for k in cfg.eval_k}
        long_sets = {k: test_set(cfg, k, "long") for k in cfg.eval_k}
    except ValueError as err:
        raise ConfigError(f"--eval-k {','.join(map(str, cfg.eval_k))}: {err}")
    return train, val, eval_sets, long_sets


def payload_config(cfg: Config) -> dict:
    """The config as written into run.json and model files (JSON types, derived sizes added)."""
    return dataclasses.asdict(cfg) | {"eval_k": list(cfg.eval_k), "steps_per_epoch": cfg.steps_per_epoch}


@with_one_blas_thread
def run(cfg: Config, log=print, pretrained: dict | None = None, trained: dict | None = None) -> dict:
    """The whole experiment: data, training of both models, evaluation; returns the run.json
    payload. log=None runs silently. pretrained (kind -> (model, history, timing)) skips training
    that kind; `trained`, if given, receives the same for both models."""
    exit_if_worker_startup()
    verbose, log = log is not None, log or _silent
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
        save_models(cfg.save_model, models, cfg, histories, timings)
        log(f"wrote {cfg.save_model}")
    if trained is not None:
        trained.update({kind: (models[kind], histories[kind], timings[kind]) for kind in MODEL_KINDS})
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    rollouts, one_step, long_horizon, samples, attention = evaluate(models, eval_sets, long_sets, cfg)
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
        "rollout": rollouts,
        "one_step": one_step,
        "long_horizon": long_horizon,
        "samples": samples,
    }
    if attention is not None:
        payload["attention"] = attention
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
def main(argv=None) -> int:
    """The CLI. Exit codes: 0 done; 2 bad input (one `error:` line, nothing written);
    1 training failed (diverged, a worker died); 130 / 143 stopped by SIGINT / SIGTERM (workers
    stopped, no partial output)."""
    exit_if_worker_startup()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupted)
    try:
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
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        name = str(err) if isinstance(err, Interrupted) else "SIGINT"
        print(f"error: stopped by {name}: workers stopped, no partial output written", file=sys.stderr)
        return 128 + getattr(signal, name, signal.SIGINT)
    print(summary_table(payload))
    print(f"total {payload['timing']['total_s']:.2f} s" + ("" if cfg.no_save else f"; wrote {cfg.out}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
