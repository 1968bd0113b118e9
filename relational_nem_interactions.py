"""Interactions learned from frames: the simulator recipe's models trained on what the E-step tracker saw.

The simulator draws training sequences of balls into binary frames, and nothing true goes further:
the tracker of relational_nem_pixels.py (known renderer, spatial-mixture EM, components discovered
from the frames) follows the balls with a dynamics that knows nothing learned (constant velocity);
each component's track becomes training states (positions from the EM, velocities from the
positions by straight segments between collisions, radius from the claimed area; rnem/tracks.py),
keeping only the transitions the tracker got right by its own account (the expected number of
balls, no component lost, duplicated or jumping). The simulator recipe's per-ball and relational
models (rnem/simulator_model.py: same design, same one-step loss, same number of Adam steps) are
trained on them. Then, as EM does, the training frames are tracked again with the learned
relational model between frames, and the models trained again, for --rounds rounds. Every round
is evaluated exactly as the oracle-trained models are (results/sweep_simulator.json): closed-loop
rollouts from the true first state of fresh sequences, K = 3..8, the same test sequences per seed.
The truth is used only to measure (how far the inferred states are from it, and the evaluation).

    python3 relational_nem_interactions.py --out runs/my_interactions.json              # seed 0, about 3 min on 2 cores
    python3 relational_nem_interactions.py --masses --out runs/my_interactions_masses.json
    python3 relational_nem_interactions.py --save-model runs/my_models.npz --out runs/my_run.json
    python3 relational_nem_interactions.py --seeds 0-9 --out runs/my_interactions_seeds.json   # ten seeds, a summary
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

from rnem.blas import BLAS_THREAD_VARS  # noqa: E402  (imports no numpy)
for _var in BLAS_THREAD_VARS:             # before numpy loads: one BLAS thread
    os.environ.setdefault(_var, "1")
import numpy as np  # noqa: E402

from rnem import simulator, state_config, state_evaluation, state_models, state_training
from rnem import tracker, tracks  # noqa: E402
from rnem.blas import with_one_blas_thread  # noqa: E402
from rnem.entry import run_main  # noqa: E402
from rnem.cli import ConfigError, config_field, parse_int_list, parse_seeds, parser_from_config  # noqa: E402
from rnem.environment import code_sha256, environment  # noqa: E402
from rnem.files import RUNS_DIR, check_folder_writable, check_output_path, write_json_atomic  # noqa: E402
from rnem.frames import render_binary  # noqa: E402
from rnem.processes import exit_if_worker_startup, run_workers  # noqa: E402
from rnem.scenes import DT, RADIUS  # noqa: E402
from rnem.sweeps import mean_interval, over_seeds, run_jobs_in_folders, seed_file, summarise  # noqa: E402

SAMPLE_SEQUENCE = 0      # the training sequence the figure shows (round 1)
SLICE_FRAMES = 20        # frames of the first chunk that the committed result's slice reads
TRACK_CHUNK = 50          # sequences per tracking job: the chunks, not the workers, decide the numbers
ORACLE_STEPS = 2 * 1531   # the oracle-trained recipe's Adam steps (2 epochs of 1 531 on 2 000 x 49 transitions)


@dataclasses.dataclass
class InteractionsConfig:
    seed: int = config_field(0, "the seed of the training frames, the initial weights, the batches and the test sequences")
    seeds: str = config_field("", "e.g. 0-9: every seed (one per worker), per-seed files in --seed-dir, and a summary")
    masses: bool = config_field(False, "the paper's two ball types; the models read the radius the tracker inferred")
    # the frames
    n_balls: int = config_field(4, "balls per training sequence (the one thing known: how many objects to expect)")
    n_train: int = config_field(500, "training sequences drawn into frames and tracked")
    n_val: int = config_field(50, "validation sequences (tracked the same way; the loss curve only)")
    t_frames: int = config_field(50, "frames per sequence")
    size: int = config_field(48, "frame side in pixels")
    # the tracker
    components: int = config_field(5, "K, components of the tracker (at least --n-balls)")
    em_iters: int = config_field(3, "EM iterations per frame")
    velocity: str = config_field("segments", "velocities from positions: segments (straight lines between collisions) "
                                 "or difference ((x_{t+1} - x_t) / dt)", choices=tracks.VELOCITY_METHODS)
    penalty: float = config_field(20.0, "segments: the cost of one more segment, in units of the tracker's position "
                                  "variance sigma^2 (estimated from the tracks)")
    rounds: int = config_field(3, "tracking rounds: 1 with constant velocity, each later one with the relational "
                               "model of the round before; models trained after every round")
    # training (the simulator recipe's, on the windows) and the evaluation (the oracle-trained's)
    steps: int = config_field(ORACLE_STEPS, "Adam steps per training (the oracle-trained recipe: 3 062)")
    n_eval: int = config_field(50, "test sequences per K (the oracle-trained sweep's: 50, the same sequences per seed)")
    eval_k: tuple = config_field((3, 4, 5, 6, 7, 8), "comma-separated numbers of balls to evaluate on (the oracle-trained "
                               "sweep's: 3..8)")
    jobs: int = config_field(0, "worker processes (0 = all cores); the numbers do not depend on it")
    # output
    out: str = config_field("", "the result JSON ('': results/interactions[_masses]_seed<seed>.json; with --seeds "
                            "the summary, results/interactions[_masses].json)")
    seed_dir: str = config_field("runs/interactions_runs", "with --seeds: the per-seed files (a _masses folder "
                                 "with --masses)")
    save_model: str = config_field("", "also write the last round's models (the simulator recipe's format, readable "
                                   "by relational_nem_pixels.py --models)")


def simulator_config(cfg: InteractionsConfig, **changes) -> state_config.Config:
    """The simulator recipe's config of this seed (its model sizes, optimizer, evaluation)."""
    return state_config.Config(**{**state_config.SIMULATOR_DEFAULTS, "recipe": "simulator", "masses": cfg.masses, "seed": cfg.seed,
                       "k_train": cfg.n_balls, "n_eval": cfg.n_eval, "eval_k": tuple(cfg.eval_k),
                       "jobs": cfg.jobs, **changes})


# ----------------------------------------------------------------------------- tracks from frames
def _track_job(job):
    """One chunk of sequences: drawn into frames, followed by the tracker. job = (positions (T, n,
    B, 2), radii (n, B), size, components, em_iters, dynamics: None or (relational model, masses))."""
    positions, radii, size, components, em_iters, dynamics = job
    frames, _ = render_binary(positions, radii[None], size)                           # (T, n, S, S)
    step = (tracker.make_step("constant_velocity", {}) if dynamics is None else
            tracker.make_step("simulator.relational", {"simulator.relational": dynamics[0]}, dynamics[1]))
    visible = np.ones(frames.shape[1:], bool)
    return tracker.follow(frames, visible, components, step, tracker.KnownRenderer(size, tracker.SOFTNESS), em_iters)


def track_all(states, radii, cfg: InteractionsConfig, model=None) -> dict:
    """The tracks of every sequence of states (T, n, B, D): chunks of TRACK_CHUNK sequences,
    in worker processes when there are two or more."""
    jobs = [(states[:, i:i + TRACK_CHUNK, :, :2], radii[i:i + TRACK_CHUNK], cfg.size, cfg.components,
             cfg.em_iters, None if model is None else (model, cfg.masses))
            for i in range(0, states.shape[1], TRACK_CHUNK)]
    workers = min(cfg.jobs or os.cpu_count() or 1, len(jobs))
    if workers >= 2:
        outcomes = run_workers(_track_job, jobs, workers)
        for _, error in outcomes:
            if error is not None:
                raise RuntimeError(f"tracking failed: {error}")
        parts = [result for result, _ in outcomes]
    else:
        parts = [_track_job(job) for job in jobs]
    return {key: np.concatenate([p[key] for p in parts], axis=1) for key in parts[0]}


def training_windows(tr: dict, cfg: InteractionsConfig):
    """Tracks -> (windows (M, 2, k, D): the states at t and t + 1 of every usable transition,
    where (M, 2): its (t, sequence), facts: what survived and the noise scale, velocities
    (T, n, K, 2), usable (T - 1, n))."""
    ok = tracks.steady(tr, cfg.n_balls)
    sigma = tracks.noise_scale(tr["positions"], tr["present"])
    v = tracks.velocities(tr["positions"], DT, cfg.velocity, tracks.breaks_of(tr, ok), cfg.penalty * sigma ** 2,
                          tracks.CORNER_SIGMAS * sigma, tr["radii"])
    usable = tracks.usable_windows(tr, v, ok)
    inputs, targets, where = tracks.window_states(tr, v, usable, cfg.n_balls, cfg.masses)
    facts = {"windows": int(usable.sum()), "transitions": int(usable.size),
             "windows_fraction": float(usable.mean()), "steady_frames_fraction": float(ok.mean()),
             "noise_sigma": sigma}
    return np.stack([inputs, targets], axis=1), where, facts, v, usable


def track_sample(tr: dict, v: np.ndarray, usable: np.ndarray, states: np.ndarray, seq: int) -> dict:
    """One training sequence for the figure: the tracked positions, presence and velocities of its
    components, its usable transitions, and the true states (measurement only)."""
    def rounded(a):
        return np.where(np.isnan(a), None, np.round(a, 5)).tolist()
    return {"index": seq, "positions": rounded(tr["positions"][:, seq]), "present": tr["present"][:, seq].tolist(),
            "velocities": rounded(v[:, seq]), "usable": usable[:, seq].tolist(),
            "truth": np.round(states[:, seq, :, :4], 5).tolist()}


def first_chunk_slice(tr: dict, cfg: InteractionsConfig) -> dict:
    """Round 1's training windows of the first SLICE_FRAMES frames of the first TRACK_CHUNK
    sequences alone (their count and the sum of their states; the tracker is causal, so tracking
    only those frames gives the same tracks): what a test recomputes from the committed code in seconds."""
    part = {key: value[:SLICE_FRAMES, :TRACK_CHUNK] for key, value in tr.items()}
    windows, _, facts, _, _ = training_windows(part, cfg)
    return {"sequences": int(part["present"].shape[1]), "windows": facts["windows"], "state_sum": float(windows.sum()),
            "noise_sigma": facts["noise_sigma"]}


def scenes(cfg: InteractionsConfig, n: int, purpose: str):
    """n sequences of cfg.n_balls balls (the simulator): (states (T, n, B, D), radii (n, B))."""
    states, _ = simulator.simulate_sequences(n, cfg.t_frames, cfg.n_balls, DT, RADIUS, simulator.rng_for(cfg.seed, purpose), cfg.masses)
    return states, states[0, :, :, 4] if cfg.masses else np.full(states.shape[1:3], RADIUS)


# ----------------------------------------------------------------------------- the chain
def learned_mass_ratio(model) -> float | None:
    """The heavy / light mass ratio the relational model's masses give the true radii (6 is right)."""
    return float(math.exp(-model.params["mass.alpha"][0])) if "mass.alpha" in model.params else None


@with_one_blas_thread
def chain(cfg: InteractionsConfig, log=print) -> tuple:
    """The whole chain for one seed: (result payload, the last round's models, their config)."""
    exit_if_worker_startup()
    t0 = time.perf_counter()
    train_states, train_radii = scenes(cfg, cfg.n_train, "interactions/train")
    val_states, val_radii = scenes(cfg, cfg.n_val, "interactions/val")
    eval_cfg = simulator_config(cfg)
    eval_sets = {k: state_training.test_set(eval_cfg, k, "eval") for k in eval_cfg.eval_k}     # the oracle's test sequences
    long_sets = {k: state_training.test_set(eval_cfg, k, "long") for k in eval_cfg.eval_k}
    rounds, model, models = [], None, None
    for r in range(1, cfg.rounds + 1):
        t_round = time.perf_counter()
        tracked = {"train": track_all(train_states, train_radii, cfg, model),
                   "val": track_all(val_states, val_radii, cfg, model)}
        t_track = time.perf_counter() - t_round
        windows, where, facts, v, usable = training_windows(tracked["train"], cfg)
        val_windows = training_windows(tracked["val"], cfg)[0]
        if len(windows) < 64 or len(val_windows) < 1:
            raise ConfigError(f"--n-train {cfg.n_train}: round {r} kept {len(windows)} training and "
                              f"{len(val_windows)} validation windows; give more sequences")
        errors = tracks.state_errors(windows[:, 0], where, train_states, train_radii)    # measurement only
        if r == 1:
            first_chunk = first_chunk_slice(tracked["train"], cfg)
            sample = track_sample(tracked["train"], v, usable, train_states, SAMPLE_SEQUENCE)
        per_epoch = len(windows) // eval_cfg.batch
        train_cfg = simulator_config(cfg, n_train=len(windows), n_val=len(val_windows), t_train=2,
                                     epochs=max(1, math.ceil(cfg.steps / per_epoch)))
        t1 = time.perf_counter()
        models, histories, timings = state_training.train_both(train_cfg, {cfg.n_balls: windows}, {cfg.n_balls: val_windows},
                                                  verbose=False)
        t_train = time.perf_counter() - t1
        sections = state_evaluation.evaluate(models, eval_sets, long_sets, eval_cfg)
        rollouts, one_step, long_horizon = sections["rollout"], sections["one_step"], sections["long_horizon"]
        model = models["relational"]
        horizons = {k: long_horizon[k]["relational"]["horizon"] for k in long_horizon}
        log(f"round {r} ({'constant velocity' if r == 1 else 'relational model of round ' + str(r - 1)}): "
            f"{facts['windows']} windows ({facts['windows_fraction']:.1%}), position error "
            f"{errors['position_error']:.4f}, velocity error {errors['velocity_error']:.3f}; relational horizon "
            + ", ".join(f"K={k} {h:.0f}" for k, h in horizons.items()) +
            f" [{t_track:.0f} s tracking, {t_train:.0f} s training, {time.perf_counter() - t_round:.0f} s]")
        rounds.append({"round": r, "tracked_with": "constant_velocity" if r == 1 else "simulator.relational",
                       **facts, "state_errors": errors, "epochs": train_cfg.epochs,
                       "optimizer_steps": train_cfg.epochs * train_cfg.steps_per_epoch,
                       "learned_mass_ratio": learned_mass_ratio(model), "history": histories,
                       "seconds": {"tracking": t_track, "training": t_train,
                                   "total": time.perf_counter() - t_round},
                       "rollout": rollouts, "one_step": one_step, "long_horizon": long_horizon})
    payload = {"config": dataclasses.asdict(cfg), "source_sha256": code_sha256(__file__)[0],
               "env": environment("float64", __file__), "simulator_config": state_config.payload_config(eval_cfg),
               "numbers_depend_on": "seed and config (float64); the closed-loop measures move with the BLAS kernel "
                                    "as the oracle-trained ones do (rnem.sweeps.CHAOTIC_METRICS)",
               "first_chunk": first_chunk, "sample": sample, "rounds": rounds, "seconds": time.perf_counter() - t0}
    return payload, models, train_cfg


def round_payload(result: dict, r: int) -> dict:
    """Round r (1-based) of a per-seed result as a simulator-recipe run payload (for rnem.sweeps)."""
    one = result["rounds"][r - 1]
    return {"config": {**result["simulator_config"], "seed": result["config"]["seed"]}, "env": result["env"],
            **{key: one[key] for key in ("rollout", "one_step", "long_horizon")}}


# ----------------------------------------------------------------------------- many seeds
def _seed_job(job):
    """Worker: one seed's chain, its file written (a failure too); returns [(variant, seed, path,
    error or None)] as rnem.sweeps.run_jobs_in_folders expects."""
    cfg, path = job
    try:
        payload, _, _ = chain(cfg, log=lambda *_: None)
    except Exception as err:  # a failed seed is reported, not lost
        payload = {"config": dataclasses.asdict(cfg), "error": f"{type(err).__name__}: {err}"}
    write_json_atomic(path, payload)
    return [("interactions", cfg.seed, path, payload.get("error"))]


def run_seeds(cfg: InteractionsConfig, log=print) -> dict:
    """Every seed of cfg.seeds in worker processes (one seed each, its file in seed_dir(cfg); the
    folder is locked, and an interrupted run leaves only finished files), then the summary.
    Raises TrainingError naming the seeds that failed."""
    seeds, folder = parse_seeds(cfg.seeds), seed_dir(cfg)
    jobs = [(dataclasses.replace(cfg, seed=s, seeds="", jobs=1), seed_file(folder, s)) for s in seeds]
    failed_payloads = [[(path, {"seed": c.seed, "variant": "interactions"})] for c, path in jobs]
    workers = min(cfg.jobs or os.cpu_count() or 1, len(jobs))
    outcome = run_jobs_in_folders(_seed_job, jobs, [folder], failed_payloads, workers, log)
    failed = sorted(f"seed {seed}: {error}" for _, seed, _, error in outcome if error)
    if failed:
        raise state_training.TrainingError("; ".join(failed))
    results = {}
    for _, seed, path, _ in outcome:
        with open(path) as f:
            results[seed] = json.load(f)
    return summarise_seeds(results, oracle_sweep(cfg))


OUTPUT_FIELDS = ("seed", "seeds", "out", "seed_dir", "save_model", "jobs")   # not part of what a result means
TRACK_FACTS = ("windows_fraction", "noise_sigma", "learned_mass_ratio")
STATE_ERRORS = ("position_error", "velocity_error", "velocity_error_over_speed", "identified_fraction", "radius_error")


def summarise_seeds(results: dict, oracle_path: str | None) -> dict:
    """Per round: the simulator recipe's sweep summary of the seeds (rnem.sweeps.summarise), the
    tracks' facts and state errors over seeds; and, against the oracle-trained sweep (same seeds,
    same test sequences), per K the paired per-seed ratio frame-trained / oracle of the relational
    model's horizon and one-step ball-ball velocity MSE."""
    seeds = sorted(results)
    first = results[seeds[0]]
    oracle = None
    if oracle_path and os.path.isfile(oracle_path):
        with open(oracle_path) as f:
            oracle = json.load(f)
    out = {"seeds": seeds, "config": {k: v for k, v in first["config"].items() if k not in OUTPUT_FIELDS},
           "env": first["env"], "source_sha256": first["source_sha256"],
           "oracle": oracle_path if oracle else None, "rounds": []}
    for r in range(1, len(first["rounds"]) + 1):
        runs = {s: round_payload(results[s], r) for s in seeds}
        sweep = summarise(runs, {})
        entry = {"round": r, "summary": sweep["summary"], "ratio": sweep["ratio"], "wins": sweep["wins"]}
        for key in TRACK_FACTS:
            values = [results[s]["rounds"][r - 1][key] for s in seeds]
            if all(v is not None for v in values):
                entry[key] = over_seeds(values)
        entry["state_errors"] = {key: over_seeds(v) for key in STATE_ERRORS
                                 if all(key in results[s]["rounds"][r - 1]["state_errors"] for s in seeds)
                                 for v in [[results[s]["rounds"][r - 1]["state_errors"][key] for s in seeds]]}
        if oracle is not None and [int(s) for s in oracle["seeds"]] == seeds:
            entry["over_oracle"] = {}
            for k, per_metric in sweep["summary"].items():
                entry["over_oracle"][k] = {}
                for metric in ("horizon", "one_step_vel_mse_ball", "long_energy_at_100", "long_outside_frac"):
                    mine = per_metric[metric]["relational"]["per_seed"]
                    theirs = oracle["summary"][k][metric]["relational"]["per_seed"]
                    ratio = mean_interval([a / b for a, b in zip(mine, theirs)]) if all(theirs) else None
                    entry["over_oracle"][k][metric] = {"frames": float(np.mean(mine)), "oracle": float(np.mean(theirs)),
                                                       "paired_ratio": ratio}
        out["rounds"].append(entry)
    return out


# ----------------------------------------------------------------------------- CLI
RANGES = {"n_balls": (1, simulator.max_balls(RADIUS)), "n_train": (2, 100_000), "n_val": (1, 10_000), "t_frames": (8, 1000),
          "size": (16, 256), "components": (1, 16), "em_iters": (1, 20), "rounds": (1, 20), "steps": (1, 10_000_000),
          "n_eval": (2, 10_000),
          "jobs": (0, 1024), "seed": (0, 2**32 - 1)}


def default_out(cfg: InteractionsConfig) -> str:
    name = "interactions" + ("_masses" if cfg.masses else "") + ("" if cfg.seeds else f"_seed{cfg.seed}")
    return os.path.join(RUNS_DIR, name + ".json")


def check_config(cfg: InteractionsConfig) -> None:
    """Every option in its range and the outputs writable: before any work."""
    for name, (lo, hi) in RANGES.items():
        if not lo <= getattr(cfg, name) <= hi:
            raise ConfigError(f"--{name.replace('_', '-')} must be in {lo}..{hi} (got {getattr(cfg, name)})")
    if cfg.components < cfg.n_balls:
        raise ConfigError(f"--components must be at least --n-balls ({cfg.n_balls}) and at most "
                          f"{RANGES['components'][1]} (got {cfg.components})")
    ks = cfg.eval_k
    if not all(2 <= k <= simulator.max_balls(RADIUS) for k in ks) or len(set(ks)) < len(ks):
        raise ConfigError(f"--eval-k must list distinct numbers of balls in 2..{simulator.max_balls(RADIUS)} (a ball "
                          f"needs another to interact with; got {','.join(map(str, ks))})")
    if cfg.velocity not in tracks.VELOCITY_METHODS:
        raise ConfigError(f"--velocity must be one of {', '.join(tracks.VELOCITY_METHODS)} (got {cfg.velocity!r})")
    if not (0 < cfg.penalty <= 1e6):
        raise ConfigError(f"--penalty must be in (0, 1e6] (units of sigma^2; got {cfg.penalty})")
    if cfg.seeds:
        parse_seeds(cfg.seeds)
        check_folder_writable(seed_dir(cfg), "--seed-dir")
        if cfg.save_model:
            raise ConfigError("--save-model takes one seed's models: give --seed, not --seeds")
    check_output_path(cfg.out, "--out")
    if cfg.save_model:
        check_output_path(cfg.save_model, "--save-model", ".npz")


def seed_dir(cfg: InteractionsConfig) -> str:
    return cfg.seed_dir + ("_masses" if cfg.masses and not cfg.seed_dir.endswith("_masses") else "")


def oracle_sweep(cfg: InteractionsConfig) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        f"sweep_simulator{'_masses' if cfg.masses else ''}.json")


def command(argv) -> int:
    """The CLI's work: one chain or --seeds (bad input raises ConfigError first)."""
    parser = parser_from_config(InteractionsConfig, __doc__)
    args = vars(parser.parse_args(argv))
    cfg = InteractionsConfig(**args | {"eval_k": parse_int_list(args["eval_k"], "--eval-k")})   # read as text
    cfg.out = cfg.out or default_out(cfg)
    check_config(cfg)
    if cfg.seeds:
        write_json_atomic(cfg.out, run_seeds(cfg))
    else:
        result, models, train_cfg = chain(cfg, log=lambda line: print(line, flush=True))
        write_json_atomic(cfg.out, result)
        if cfg.save_model:
            last = result["rounds"][-1]
            state_models.save_models(cfg.save_model, models, train_cfg, last["history"],
                                     {kind: {} for kind in models}, __file__,
                                     extra={"trained_from": "frames", "interactions_config": dataclasses.asdict(cfg)})
    print(f"wrote {cfg.out}" + (f" and {cfg.save_model}" if cfg.save_model else ""))
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 1 a seed failed; 130 / 143 stopped by SIGINT / SIGTERM (workers stopped, no partial output)."""
    exit_if_worker_startup()
    return run_main(lambda: command(argv), stopped="workers stopped, no partial output written")


if __name__ == "__main__":
    sys.exit(main())
