"""R-NEM's E-step on raw frames, with a known renderer: objects found in binary images.

The balls of the simulator are drawn into binary frames; K components, each a soft disk at
its own position, explain every frame as a spatial mixture. The E-step assigns every pixel
to the components by its Bernoulli likelihood (gamma); the (generalised) M-step moves every
component to the gamma-weighted centre of the lit pixels it explains. Components start
uninformed: they are placed one by one on the lit pixel that the others explain least, so
the objects are discovered from the frame, and a component that explains no lit pixel stays
empty. Between frames a dynamics model advances every component: constant velocity, or the
simulator recipe's per-ball or relational model (models/simulator_seed0.npz), and the E-step
on that prediction, before the frame is seen, measures how well the model predicts.

This is the first part of issue 10 (the instrument); the learned renderer, the curtain, the
masses and the figures are not built yet.

    python3 relational_nem_pixels.py                      # 50 sequences x 30 frames of 4 balls -> pixels.json
    python3 relational_nem_pixels.py --k-balls 6 --components 8 --out pixels_k6.json
"""
import dataclasses
import math
import os
import sys
import time

import numpy as np

import relational_nem_bouncing_balls as R

DT, RADIUS = 0.05, 0.11  # the simulator's time step and ball radius (the default experiment's)
LIT_TOLERANCE = 1e-3    # Bernoulli probabilities are kept in [eps, 1 - eps] (a lit pixel far from a disk)


@dataclasses.dataclass
class PixelConfig:
    seed: int = 0
    seeds: str = ""            # e.g. 0-9: every seed, then means over seeds and wins of the relational simulator
    k_balls: int = 4
    components: int = 5
    n_seq: int = 50
    t_frames: int = 30
    size: int = 48
    em_iters: int = 3
    softness: float = 0.5      # pixels over which a rendered disk edge goes from 1 to 0
    dynamics: str = "all"      # constant_velocity, simulator.non_relational, simulator.relational, or all three
    models: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "simulator_seed0.npz")
    out: str = "pixels.json"


# ----------------------------------------------------------------------------- frames
def pixel_centres(size: int) -> np.ndarray:
    """(size, size, 2) box coordinates (x, y) of every pixel centre; row 0 is the top (y near 1)."""
    c = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(c, c[::-1])
    return np.stack([x, y], axis=-1)


def render_binary(positions: np.ndarray, radius: float, size: int):
    """positions (..., K, 2) -> (frames (..., size, size) bool: lit where any ball covers the pixel
    centre, labels (..., size, size) int: the covering ball, -1 background, -2 covered by several)."""
    d2 = ((pixel_centres(size)[:, :, None, :] - positions[..., None, None, :, :]) ** 2).sum(-1)   # (..., S, S, K)
    inside = d2 < radius * radius
    count = inside.sum(-1)
    labels = np.where(count == 1, inside.argmax(-1), np.where(count == 0, -1, -2))
    return count > 0, labels


def soft_disks(positions: np.ndarray, radius: float, size: int, softness: float) -> np.ndarray:
    """The known renderer: positions (K, 2) -> psi (K, size, size), the probability that each
    pixel is lit by each component: sigmoid((r - distance) / (softness pixels))."""
    dist = np.sqrt(((pixel_centres(size)[None] - positions[:, None, None, :]) ** 2).sum(-1))          # (K, S, S)
    return 1.0 / (1.0 + np.exp(-(radius - dist) * size / softness))


def render_components(positions: np.ndarray, present: np.ndarray, cfg: "PixelConfig") -> np.ndarray:
    """psi (K, S, S) of the components: the present ones as soft disks, the empty ones parked
    off the frame (they explain no lit pixel)."""
    return soft_disks(np.where(present[:, None], positions, -1.0), RADIUS, cfg.size, cfg.softness)


# ----------------------------------------------------------------------------- EM
def e_step(frame: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """gamma (K, S, S): the posterior of each component for each pixel of frame (S, S), with
    Bernoulli likelihoods psi^x (1 - psi)^(1 - x) and equal mixing weights; sums to 1 per pixel."""
    p = np.clip(psi, LIT_TOLERANCE, 1.0 - LIT_TOLERANCE)
    like = np.where(frame[None], p, 1.0 - p)
    return like / like.sum(axis=0, keepdims=True)


def m_step(frame: np.ndarray, gamma: np.ndarray, positions: np.ndarray, present: np.ndarray, size: int,
           radius: float):
    """Each component moves to the gamma-weighted centre of the lit pixels; a component that
    explains less than a quarter of a pixel of them is empty (present False) and stays put, and
    of two components closer than half a radius the second is emptied (one ball, one component)."""
    weight = gamma * frame[None]                                                   # (K, S, S)
    mass = weight.sum(axis=(1, 2))
    centre = (weight[..., None] * pixel_centres(size)[None]).sum(axis=(1, 2)) / np.maximum(mass, 1e-12)[:, None]
    present = present & (mass > 0.25)
    positions = np.where(present[:, None], centre, positions)
    for k in range(len(positions)):
        for j in range(k):
            if present[k] and present[j] and np.linalg.norm(positions[k] - positions[j]) < 0.5 * radius:
                present[k] = False
    return positions, present


def discover(frame: np.ndarray, n_components: int, radius: float, size: int, softness: float):
    """Uninformed start: components placed one at a time on the lit pixel that the components
    already placed explain least (all of them parked off the frame at first)."""
    positions = np.full((n_components, 2), -1.0)                                  # off the frame: explains nothing
    centres = pixel_centres(size)
    for k in range(n_components):
        # a lit pixel within a pixel of a placed disk counts as explained (its edge is soft)
        explained = soft_disks(positions[:k], radius + 1.0 / size, size, softness).max(axis=0) if k else np.zeros(frame.shape)
        unexplained = np.where(frame, 1.0 - explained, -1.0)
        if unexplained.max() <= 0.5:                                               # every lit pixel is explained
            break
        positions[k] = centres[np.unravel_index(unexplained.argmax(), frame.shape)]
    return positions, positions[:, 0] >= 0


def em(frame, positions, present, cfg: PixelConfig):
    """cfg.em_iters E and M steps on one frame from the given components; returns (positions, present, gamma)."""
    for _ in range(cfg.em_iters):
        gamma = e_step(frame, render_components(positions, present, cfg))
        positions, present = m_step(frame, gamma, positions, present, cfg.size, RADIUS)
    return positions, present, e_step(frame, render_components(positions, present, cfg))


def adjusted_rand_index(truth: np.ndarray, pred: np.ndarray) -> float:
    """ARI of two labelings of the same items (1: identical up to renaming; about 0: chance)."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(table, (t, p), 1)
    comb = lambda n: n * (n - 1) / 2.0                                             # noqa: E731
    index, rows, cols, total = comb(table).sum(), comb(table.sum(1)).sum(), comb(table.sum(0)).sum(), comb(len(t))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2.0
    return 1.0 if maximum == expected else float((index - expected) / (maximum - expected))


def frame_ari(labels: np.ndarray, gamma: np.ndarray) -> float:
    """ARI of the most likely component against the true ball, over the pixels of exactly one
    ball (background and overlaps ignored, as the paper does)."""
    keep = labels >= 0
    return adjusted_rand_index(labels[keep], gamma.argmax(axis=0)[keep]) if keep.any() else 1.0


# ----------------------------------------------------------------------------- a run
DYNAMICS = ("constant_velocity", "simulator.non_relational", "simulator.relational")


def make_step(name: str, models: dict):
    """(positions (m, 2), velocities (m, 2)) -> predicted (positions, velocities) one step later:
    constant velocity, or a model of models/ rolled one step on the present components."""
    if name == "constant_velocity":
        return lambda x, v: (x + DT * v, v)
    model = models[name]

    def step(x, v):
        S = np.concatenate([x, v], axis=-1)[None]                                  # (1, m, 4)
        out = S + model.forward(S)[0]
        return out[0, :, :2], out[0, :, 2:4]
    return step


def track(frames, labels, truth, cfg: PixelConfig, step):
    """One sequence: discovery and EM on frame 0; then per frame the dynamics' prediction, the
    E-step on it before the frame is seen (predicted ARI), EM on the frame (ARI after EM). The
    velocity of a component is the dynamics' prediction corrected by the M-step's move:
    v = v_pred + (x_em - x_pred) / dt (constant velocity: the last displacement over dt)."""
    positions, present = discover(frames[0], cfg.components, RADIUS, cfg.size, cfg.softness)
    positions, present, gamma = em(frames[0], positions, present, cfg)
    velocities = np.zeros_like(positions)
    ari_em, ari_pred, err = [frame_ari(labels[0], gamma)], [], []
    for t in range(1, len(frames)):
        predicted, v_pred = positions.copy(), velocities.copy()
        if present.any():
            predicted[present], v_pred[present] = step(positions[present], velocities[present])
        ari_pred.append(frame_ari(labels[t], e_step(frames[t], render_components(predicted, present, cfg))))
        positions, present, gamma = em(frames[t], predicted, present, cfg)
        velocities = v_pred + (positions - predicted) / DT
        ari_em.append(frame_ari(labels[t], gamma))
        found = positions[present]
        d = np.linalg.norm(truth[t, :, None, :2] - found[None], axis=-1)          # (K, found): matched by distance
        err.append(float(d.min(axis=1).mean()) if len(found) else math.inf)
    return ari_em, ari_pred, err


def run(cfg: PixelConfig) -> dict:
    """Every selected dynamics on the same frames: ARI after EM and from the prediction, position
    error of the discovered objects (pixels); means over sequences and frames."""
    states, _ = R.simulate_sequences(cfg.n_seq, cfg.t_frames, cfg.k_balls, DT, RADIUS,
                                     R.rng_for(cfg.seed, "pixels/data"), False)      # (T, n, K, 4)
    frames, labels = render_binary(states[..., :2], RADIUS, cfg.size)             # (T, n, S, S)
    names = DYNAMICS if cfg.dynamics == "all" else (cfg.dynamics,)
    models = R.load_models(cfg.models) if any(n != "constant_velocity" for n in names) else {}   # checked in main
    result = {"config": dataclasses.asdict(cfg), "source_sha256": R.source_sha256(__file__),
              "main_source_sha256": R.source_sha256()}
    for name in names:
        t0 = time.perf_counter()
        step = make_step(name, models)
        em_all, pred_all, err_all = [], [], []
        for s in range(cfg.n_seq):
            ari_em, ari_pred, err = track(frames[:, s], labels[:, s], states[:, s], cfg, step)
            em_all += ari_em
            pred_all += ari_pred
            err_all += err
        result[name] = {"ari_after_em": float(np.mean(em_all)), "ari_from_prediction": float(np.mean(pred_all)),
                        "position_error_px": float(np.mean(err_all)) * cfg.size, "seconds": time.perf_counter() - t0}
    return result


def run_seeds(cfg: PixelConfig, seeds: list) -> dict:
    """run() for every seed; per dynamics and measure the per-seed values and their mean_interval,
    and the seeds in which the relational simulator's ARI from the prediction is above each other's."""
    runs = [run(dataclasses.replace(cfg, seed=s, seeds="")) for s in seeds]
    names = [n for n in DYNAMICS if n in runs[0]]
    result = {"config": dataclasses.asdict(cfg), "seeds": seeds, "source_sha256": runs[0]["source_sha256"],
              "main_source_sha256": runs[0]["main_source_sha256"]}
    for name in names:
        result[name] = {key: {"per_seed": [r[name][key] for r in runs], **R.mean_interval([r[name][key] for r in runs])}
                        for key in runs[0][name]}
    if "simulator.relational" in names:
        rel = [r["simulator.relational"]["ari_from_prediction"] for r in runs]
        result["relational_prediction_wins"] = {
            name: sum(a > r[name]["ari_from_prediction"] for a, r in zip(rel, runs)) for name in names
            if name != "simulator.relational"}
    return result


def main(argv=None) -> int:
    parser = R._Parser(description=__doc__.split("\n")[0])
    for f in dataclasses.fields(PixelConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=f"(default: {f.default})")
    cfg = PixelConfig(**vars(parser.parse_args(argv)))
    try:
        for name, lo in (("k_balls", 1), ("components", 1), ("n_seq", 1), ("t_frames", 2), ("size", 16), ("em_iters", 1)):
            if getattr(cfg, name) < lo:
                raise R.ConfigError(f"--{name.replace('_', '-')} must be at least {lo} (got {getattr(cfg, name)})")
        if cfg.size > 256:
            raise R.ConfigError(f"--size must be at most 256 pixels (got {cfg.size})")
        if not 0 < cfg.softness <= 5:
            raise R.ConfigError(f"--softness must be in (0, 5] pixels (got {cfg.softness})")
        if cfg.k_balls > R.max_balls(RADIUS):
            raise R.ConfigError(f"--k-balls must be at most {R.max_balls(RADIUS)} (got {cfg.k_balls})")
        if cfg.dynamics not in DYNAMICS + ("all",):
            raise R.ConfigError(f"--dynamics must be one of {', '.join(DYNAMICS + ('all',))} (got {cfg.dynamics!r})")
        if cfg.dynamics != "constant_velocity":
            try:
                models = R.load_models(cfg.models)
            except R.ConfigError as err:
                raise R.ConfigError(str(err).replace("--load-model", "--models", 1))
            if not {"simulator.relational", "simulator.non_relational"} <= set(models):
                raise R.ConfigError(f"--models {cfg.models}: needs the simulator recipe's models (--recipe simulator "
                                    f"--save-model)")
        R.check_output_path(cfg.out, "--out")
        seeds = R.parse_seeds(cfg.seeds).copy() if cfg.seeds else None
        result = run_seeds(cfg, seeds) if seeds else run(cfg)
    except R.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    R.write_json_atomic(cfg.out, result)
    for name in (n for n in DYNAMICS if n in result):
        r = {key: value["mean"] if isinstance(value, dict) else value for key, value in result[name].items()}
        print(f"{name:>24}: ARI after EM {r['ari_after_em']:.4f}, from the prediction {r['ari_from_prediction']:.4f}, "
              f"position error {r['position_error_px']:.2f} px, {r['seconds']:.1f} s"
              + (f" (means over {len(result['seeds'])} seeds)" if "seeds" in result else ""))
    if "relational_prediction_wins" in result:
        print(f"seeds in which the relational simulator predicts better: {result['relational_prediction_wins']}")
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
