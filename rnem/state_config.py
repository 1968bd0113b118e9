"""The config of the state models' experiment (the design card's script, relational_nem_bouncing_balls.py):
one dataclass with every hyperparameter and its help text (the script's CLI is generated from it),
the simulator recipe's and the smoke run's settings, and the config as results record it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnem.cli import config_field

MODEL_KINDS = ("non_relational", "relational")


# ----------------------------------------------------------------------------- config
@dataclass
class Config:
    # experiment
    seed: int = config_field(0, "seed of every random generator of the run")
    quick: bool = config_field(False, "smoke run with a tiny budget, written beside the full run's file with _quick "
                              "added (runs/run_quick.json, runs/run_simulator_quick.json, ...); explicit flags "
                              "win; it sets")
    recipe: str = config_field("stub", "stub: the reference stub's models and training (the default experiment); simulator: "
                               "the learned simulator (free flight plus learned wall and pair impulses, one-step "
                               "loss); explicit flags win; it sets",
                       choices=("stub", "simulator"))
    masses: bool = config_field(False, "the paper's two ball types: half of the balls (at random) 1.25x the radius and 6x "
                               "the mass; the state gets the radius as fifth component (simulator recipe only)")
    # data
    k_train: int = config_field(4, "balls in training and validation sequences: a K, or a comma-separated list of K "
                           "(each batch then draws one K; --n-train and --n-val are split evenly)", cli_type=str)
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
    out: str = config_field("runs/run.json", "output JSON path; the default is in runs/ (git-ignored, never a "
                                "committed file): runs/run.json for the stub recipe's run, runs/run_simulator.json "
                                "(runs/run_simulator_masses.json with --masses) for the simulator recipe's, "
                                "runs/sweep.json, runs/sweep_simulator.json, ... with --seeds or --aggregate; "
                                "--quick adds _quick")
    no_save: bool = config_field(False, "do not write the output JSON")
    save_model: str = config_field("", "also write both trained models to this .npz file (numpy arrays, no pickle)")
    load_model: str = config_field("", "evaluate the models of this .npz file (from --save-model) instead of training; "
                               "the file's config applies except for the evaluation and output options given")
    # many seeds
    seeds: str = config_field("", "run the whole experiment for these seeds, e.g. 0-9 or 0,3,5-7, and summarise them")
    seed_dir: str = config_field("runs/sweep_runs", "folder for the per-seed JSON files of --seeds; the default "
                                                "follows the recipe: runs/sweep_runs_simulator, ...; --quick "
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


def k_list(k_train) -> tuple:
    """config.k_train (a K or a list of K) as a tuple."""
    return (k_train,) if isinstance(k_train, int) else tuple(k_train)


def k_train_text(cfg: Config) -> str:
    return ",".join(map(str, k_list(cfg.k_train)))


def payload_config(cfg: Config) -> dict:
    """The config as written into run.json and model files (JSON types, derived sizes added)."""
    return dataclasses.asdict(cfg) | {"eval_k": list(cfg.eval_k), "steps_per_epoch": cfg.steps_per_epoch}
