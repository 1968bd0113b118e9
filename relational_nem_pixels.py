"""R-NEM on raw frames: objects found in binary images, tracked, predicted and kept behind a curtain.

The balls of the simulator are drawn into binary frames. K components explain every frame as
a spatial mixture (plus a background component that lights any pixel with a small constant
probability). Each component k has a state theta_k = (position, velocity, radius, present) and
a renderer f(theta_k) -> psi_k, the probability that each pixel is lit. One EM iteration:
the E-step gives gamma, the posterior of each component for each pixel under Bernoulli
likelihoods; the generalised M-step moves each component so that the centre of the lit pixels
it claims matches the centre of what it renders (where the frame is observed), and re-estimates
its radius from the area it claims. Components start empty: a component is placed wherever
enough lit pixels are explained by none (so objects are discovered from the frames, and again
when one comes out from behind the curtain). Between frames a dynamics model advances every
present component: constant velocity, or the simulator recipe's non-relational or relational model
(models/simulator_seed0.npz, or models/simulator_masses_seed0.npz with --masses); the E-step on
its prediction, before the frame is seen, measures how well it predicts.

Two renderers: `known`, a soft disk of the component's radius; `learned`, N-EM's decoder: a
small network of the pixel's offset from the component (in units of its radius), trained from
frames only with the next-frame objective (gamma held fixed, bit-flip noise on the frames the
EM sees); its forward and backward passes are written out below.

    python3 relational_nem_pixels.py                                  # 50 sequences x 30 frames, 4 balls -> runs/pixels.json
    python3 relational_nem_pixels.py --n-balls 6-8 --components 8 --out runs/pixels_k6-8.json
    python3 relational_nem_pixels.py --n-balls 3 --curtain 0.25 --out runs/pixels_curtain.json   # 3 balls, as the paper
    python3 relational_nem_pixels.py --renderer learned --out runs/pixels_learned.json
    python3 relational_nem_pixels.py --seeds 0-9 --out runs/pixels_seeds.json
"""
import dataclasses
import math
import os
import sys
import time

from rnem.blas import BLAS_THREAD_VARS  # noqa: E402  (imports no numpy)
for _var in BLAS_THREAD_VARS:                     # before numpy loads: one BLAS thread, as the main script's workers
    os.environ.setdefault(_var, "1")
import numpy as np  # noqa: E402

from rnem import simulator, state_models  # noqa: E402
from rnem.blas import with_one_blas_thread  # noqa: E402
from rnem.entry import run_main  # noqa: E402
from rnem.cli import ConfigError, config_field, parse_seeds, parser_from_config  # noqa: E402
from rnem.environment import code_sha256, environment, repository_path, source_sha256  # noqa: E402
from rnem.files import check_output_path, write_json_atomic  # noqa: E402
from rnem.frames import squared_distances  # noqa: E402
from rnem.layers import ParamBuffer, sigmoid  # noqa: E402
from rnem.measures import ari_batch, bce  # noqa: E402
from rnem.optim import Adam  # noqa: E402
from rnem.result_files import COMPONENT_CHARS  # noqa: E402
from rnem.scenes import RADIUS, ball_scenes, collision_region, hidden_balls, hidden_fractions  # noqa: E402
from rnem.sweeps import over_seeds  # noqa: E402
from rnem.tracker import (SOFTNESS, Components, KnownRenderer, advance, e_step, em, em_after_prediction,  # noqa: E402
                          make_step, nearest_component)

HERE = os.path.dirname(os.path.abspath(__file__))

DYNAMICS = ("constant_velocity", "simulator.non_relational", "simulator.relational")
RENDERERS = ("known", "learned")


@dataclasses.dataclass
class PixelConfig:
    # data
    seed: int = config_field(0, "the seed of the data, the curtains and the renderer's training")
    seeds: str = config_field("", 'e.g. 0-9: every seed, then means over seeds and wins of the relational simulator')
    n_balls: str = config_field("4", 'balls per sequence, or a range (6-8: the sequences split evenly between 6, 7, 8)')
    masses: bool = config_field(False, "the paper's two ball types (6x mass, 1.25x radius) instead of equal masses")
    curtain: float = config_field(0.0, 'width of an unobserved vertical band at a random place per sequence (0: none)')
    n_eval: int = config_field(50, "test sequences (split over the ball counts of --n-balls)")
    t_frames: int = config_field(30, 'frames per sequence')
    size: int = config_field(48, 'frame side in pixels (the paper: 64; at 48 a ball is 5.3 px in radius and a '
                                 'frame has 0.56x the pixels)')
    # EM
    components: int = config_field(5, 'K, components per sequence (the paper: 5 for 4 balls, 8 for 6-8)')
    em_iters: int = config_field(3, 'EM iterations per frame')
    softness: float = config_field(SOFTNESS, "known renderer: pixels over which a disk's edge goes from 1 to 0")
    dynamics: str = config_field("all", 'constant_velocity, simulator.non_relational, simulator.relational, or all '
                                        'three', choices=DYNAMICS + ("all",))
    models: str = config_field("", "the simulator recipe's saved models ('': models/simulator[_masses]_seed0.npz)")
    sim_steps: int = config_field(10, 'the last sim_steps frames are also predicted without seeing frames')
    # the learned renderer
    renderer: str = config_field("known", 'known (soft disk) or learned (trained here from frames)', choices=RENDERERS)
    train_n_balls: int = config_field(4, 'the learned renderer is trained on frames of this many balls')
    hidden: int = config_field(16, 'learned renderer: hidden units per layer')
    train_seq: int = config_field(200, 'learned renderer: training sequences')
    train_steps: int = config_field(100, 'learned renderer: Adam steps (one batch of sequences each, cosine-decayed rate)')
    batch: int = config_field(8, 'learned renderer: sequences per step')
    lr: float = config_field(0.01, "learned renderer: Adam's learning rate")
    bitflip: float = config_field(0.05, 'fraction of the pixels flipped in the frames the EM sees while training')
    out: str = config_field("runs/pixels.json", 'the result JSON (written atomically; runs/ is git-ignored)')




# ----------------------------------------------------------------------------- renderers
class LearnedRenderer:
    """N-EM's decoder, small: psi_ik = sigmoid(prior(u) + h(u)), u = (p_i - x_k) / r_k the pixel's
    offset from the component in units of its radius; h a network 3 -> H tanh -> H tanh -> 1
    learned from frames; prior(u) = PRIOR_HEIGHT (1 - |u|^2 / PRIOR_REACH^2) a bump, so an untrained
    renderer (h = 0) is a blurred disk (psi 0.88 at the centre, 0.5 at one radius, 0.12 at 1.4).
    h is evaluated where |u| < SUPPORT; beyond it psi = sigmoid(prior) < 0.003."""

    name = "learned"
    PRIOR_HEIGHT, PRIOR_REACH, SUPPORT = 2.0, 1.0, 2.0

    def __init__(self, size: int, hidden: int, rng: np.random.Generator):
        self.size = size
        shapes = {"W1": (3, hidden), "b1": (hidden,), "W2": (hidden, hidden), "b2": (hidden,), "W3": (hidden, 1),
                  "b3": (1,)}
        self.layout = ParamBuffer(shapes)
        self.flat = np.zeros(self.layout.size)                                            # parameters, one buffer
        self.params = self.layout.views(self.flat)                                        # named views into it
        self.params["W1"][:] = rng.normal(0, 1.0, (3, hidden))
        self.params["W2"][:] = rng.normal(0, 1.0 / math.sqrt(hidden), (hidden, hidden))
        # W3 = 0, b = 0: h = 0 at the start, the renderer is the prior

    def prior(self, u2: np.ndarray) -> np.ndarray:
        return self.PRIOR_HEIGHT * (1.0 - u2 / self.PRIOR_REACH ** 2)

    def h_forward(self, u: np.ndarray):
        """u (M, 2) -> (h (M,), cache). The network reads (u_x^2, u_y^2, u_x u_y), so h(-u) = h(u):
        what a component draws is point-symmetric about its position, which pins the position
        to the centre of the drawing (otherwise a shifted drawing and a shifted position are
        the same rendering, and the positions would drift from the objects' centres)."""
        P = self.params
        f = np.stack([u[:, 0] ** 2, u[:, 1] ** 2, u[:, 0] * u[:, 1]], axis=-1)          # (M, 3) even features
        a1 = np.tanh(f @ P["W1"] + P["b1"])                                               # (M, H)
        a2 = np.tanh(a1 @ P["W2"] + P["b2"])                                              # (M, H)
        return (a2 @ P["W3"])[:, 0] + P["b3"][0], (f, a1, a2)

    def h_backward(self, dh: np.ndarray, cache) -> np.ndarray:
        """dh (M,) -> the gradient of every parameter, one flat vector laid out as self.flat."""
        f, a1, a2 = cache
        P, grad = self.params, np.zeros_like(self.flat)
        G = self.layout.views(grad)                                                       # same names as P
        G["W3"][:, 0] = a2.T @ dh
        G["b3"][0] = dh.sum()
        dz2 = np.outer(dh, P["W3"][:, 0]) * (1.0 - a2 * a2)                               # (M, H) through tanh
        G["W2"][:] = a1.T @ dz2
        G["b2"][:] = dz2.sum(0)
        dz1 = (dz2 @ P["W2"].T) * (1.0 - a1 * a1)                                         # (M, H)
        G["W1"][:] = f.T @ dz1
        G["b1"][:] = dz1.sum(0)
        return grad


    def forward(self, positions: np.ndarray, radii: np.ndarray):
        """positions (n, K, 2), radii (n, K) -> (psi (n, K, S, S), cache)."""
        u2 = squared_distances(positions, self.size) / (radii ** 2)[..., None, None]     # (n, K, S, S) |u|^2
        logit = self.prior(u2)
        near = u2 < self.SUPPORT ** 2                                                     # where h is evaluated
        seq, k, row, col = np.nonzero(near)
        c = (np.arange(self.size) + 0.5) / self.size
        u = np.stack([c[col] - positions[seq, k, 0], c[::-1][row] - positions[seq, k, 1]], axis=-1)
        u /= radii[seq, k, None]                                                          # (M, 2) offsets in radii
        h, cache = self.h_forward(u)                                                      # (M,)
        logit[near] += h
        return sigmoid(logit), (near, cache)

    def __call__(self, positions, radii):
        return self.forward(positions, radii)[0]

    def loss_and_grads(self, frames, gamma, psi, cache, weight):
        """N-EM's next-frame objective: per component and pixel, gamma_ik BCE(x_i, psi_ik) (explain
        the pixels it is responsible for) + (1 - gamma_ik) KL(prior || psi_ik) with the prior
        Bernoulli(0), = -log(1 - psi_ik) (light nothing else); weighted per pixel by weight
        (n, S, S) (observed pixels); gamma (n, K, S, S) held fixed (zero for empty components:
        no loss); frames (n, S, S); psi and cache from forward(). Returns (loss, flat gradient)."""
        near, h_cache = cache
        x = frames[:, None].astype(float)                                                 # (n, 1, S, S)
        g = gamma * weight[:, None]                                                       # (n, K, S, S)
        rest = (gamma > 0) * (1.0 - gamma) * weight[:, None]                              # out of the group
        p = np.clip(psi, 1e-12, 1 - 1e-12)
        loss = float(-(g * (x * np.log(p) + (1 - x) * np.log(1 - p)) + rest * np.log(1 - p)).sum())
        dlogit = g * (psi - x) + rest * psi                                               # d loss / d logit
        return loss, self.h_backward(dlogit[near], h_cache)


# ----------------------------------------------------------------------------- data and a run
def group_sizes(cfg: PixelConfig, n: int) -> list:
    """[(balls, sequences)]: n sequences split as evenly as possible over the ball counts of cfg.n_balls."""
    counts = parse_balls(cfg.n_balls)
    return [(k, n // len(counts) + (i < n % len(counts))) for i, k in enumerate(counts) if
            n // len(counts) + (i < n % len(counts))]


def parse_balls(text: str) -> list:
    lo, _, hi = str(text).partition("-")
    try:
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(f"--n-balls must be a number of balls or a range like 6-8 (got {text!r})")
    if not 1 <= lo <= hi <= simulator.max_balls(RADIUS):
        raise ConfigError(f"--n-balls must be within 1..{simulator.max_balls(RADIUS)}, low to high (got {text!r})")
    return list(range(lo, hi + 1))


def make_frames(cfg: PixelConfig, k: int, n: int, purpose: str) -> dict:
    """n sequences of k balls as cfg describes them (rnem.scenes.ball_scenes)."""
    return ball_scenes(n, cfg.t_frames, k, cfg.size, cfg.seed, purpose, cfg.masses, cfg.curtain)


MEASURES = ("ari_after_em", "ari_from_prediction", "position_error_px", "lost_fraction", "frames_until_discovery",
            "undiscovered_fraction", "next_frame_bce", "next_frame_bce_repeat", "relational_bce",
            "relational_bce_repeat", "sim_ari", "sim_position_error_px", "sim_bce", "sim_bce_repeat",
            "hidden_lost_fraction", "hidden_error_r", "hidden_collided_lost_fraction", "hidden_collided_error_r",
            "hidden_ball_frames", "hidden_collided_ball_frames")
HIGHER_IS_BETTER = ("ari_after_em", "ari_from_prediction", "sim_ari")


def track(data: dict, cfg: PixelConfig, step, renderer, sample: int | None = None) -> dict:
    """Every sequence of data at once: discovery and EM on frame 0; then per frame the dynamics'
    prediction, the E-step on it before the frame is seen, EM on the frame. A component's
    velocity is the prediction's, corrected by the M-step's move: v = v_pred + (x_em - x_pred) / dt.
    From frame T - 1 - sim_steps a copy is also rolled on by the dynamics alone. Returns the
    per-(sequence, frame) values of every measure (pooled by pool()); with sample (a sequence
    index), also that sequence's frames, predictions and gamma under out["sample"]."""
    frames, labels, visible, states = data["frames"], data["labels"], data["visible"], data["states"]
    T, n, B = states.shape[:3]
    size = cfg.size
    truth_r = data["radii"]                                                               # (n, B)
    behind, hidden = hidden_balls(data, size)
    collided = np.zeros((n, B), bool)                                                     # a collision in this hidden spell
    comp = Components.empty(n, cfg.components)
    psi, gamma = em(frames[0], visible, comp, renderer, cfg.em_iters)
    out = {key: [] for key in MEASURES}
    out["ari_after_em"].append(ari_batch(labels[0], gamma, visible))
    found_at = np.full(n, -1)
    sim_from = T - 1 - cfg.sim_steps
    shots = {"frames": [], "prediction": [], "gamma": [], "positions": [], "present": []}
    for t in range(T):
        if t:
            pred = advance(comp, step)
            psi_pred = renderer(pred.shown(), pred.radii)
            gamma_pred = e_step(frames[t], psi_pred)
            out["ari_from_prediction"].append(ari_batch(labels[t], gamma_pred, visible))
            lit_prob = psi_pred.max(axis=1)                                               # (n, S, S) max_k psi
            out["next_frame_bce"].append(bce(frames[t], lit_prob, visible))
            out["next_frame_bce_repeat"].append(bce(frames[t], frames[t - 1], visible))
            region, rows = collision_region(data, t, size)
            out["relational_bce"].append(bce(frames[t], lit_prob, region & visible)[rows])
            out["relational_bce_repeat"].append(bce(frames[t], frames[t - 1], region & visible)[rows])
            comp, psi, gamma = em_after_prediction(frames[t], visible, comp, pred, renderer, cfg.em_iters)
            out["ari_after_em"].append(ari_batch(labels[t], gamma, visible))
            if sample is not None:
                shots["prediction"].append(psi_pred[sample])
        distance = nearest_component(states[t, :, :, :2], comp)                           # (n, B)
        lost = distance > truth_r
        view = ~behind[t]
        out["position_error_px"].append(np.where(view, distance, 0).sum(1)[view.any(1)] / view.sum(1)[view.any(1)] * size)
        out["lost_fraction"].append(lost[view])
        found_at = np.where((found_at < 0) & ~(lost & view).any(axis=1), t, found_at)
        collided = np.where(hidden[t], collided | (data["pair"][t - 1].any(axis=2) if t else False), False)
        out["hidden_lost_fraction"].append(lost[hidden[t]])
        out["hidden_error_r"].append((distance / truth_r)[hidden[t] & ~lost])
        out["hidden_collided_lost_fraction"].append(lost[hidden[t] & collided])
        out["hidden_collided_error_r"].append((distance / truth_r)[hidden[t] & collided & ~lost])
        if t == sim_from and cfg.sim_steps:
            simulate_without_frames(data, comp, step, renderer, t, cfg, out)
        if sample is not None:
            shots["frames"].append(frames[t, sample])
            shots["gamma"].append(gamma[sample])
            shots["positions"].append(comp.positions[sample].copy())
            shots["present"].append(comp.present[sample].copy())
    out["frames_until_discovery"].append(found_at[found_at >= 0].astype(float))
    out["undiscovered_fraction"].append(found_at < 0)
    out["hidden_ball_frames"].append(np.array([float(hidden.sum())]))
    out["hidden_collided_ball_frames"].append(np.array([float(sum(len(x) for x in out["hidden_collided_lost_fraction"]))]))
    if sample is not None:
        out["sample"] = {**shots, "index": sample, "hidden_fraction": hidden_fractions(data, size)[:, sample]}
    return out


def simulate_without_frames(data, comp: Components, step, renderer, t0: int, cfg: PixelConfig, out: dict) -> None:
    """The components of frame t0 rolled on sim_steps frames by the dynamics alone: ARI of the
    E-step on each true frame given the simulated rendering, BCE of max_k psi against it (and of
    repeating frame t0), and the position error after the last step."""
    frames, visible = data["frames"], data["visible"]
    sim = comp
    for t in range(t0 + 1, t0 + 1 + cfg.sim_steps):
        sim = advance(sim, step)
        psi = renderer(sim.shown(), sim.radii)
        out["sim_ari"].append(ari_batch(data["labels"][t], e_step(frames[t], psi), visible))
        out["sim_bce"].append(bce(frames[t], psi.max(axis=1), visible))
        out["sim_bce_repeat"].append(bce(frames[t], frames[t0], visible))
    out["sim_position_error_px"].append(nearest_component(data["states"][t, :, :, :2], sim).mean(1) * cfg.size)


def pool(parts: list) -> dict:
    """Means over every (sequence, frame) value of every measure, pooled over ball-count groups;
    the counts are summed; None where there is no value (no hidden balls without a curtain)."""
    result = {}
    for key in MEASURES:
        values = np.concatenate([np.concatenate([np.ravel(v) for v in p[key]]) if p[key] else np.zeros(0)
                                 for p in parts]).astype(float)
        if key.endswith("ball_frames"):
            result[key] = int(values.sum())
        else:
            result[key] = float(values.mean()) if len(values) else None
    return result


def default_models(cfg: PixelConfig) -> str:
    return cfg.models or os.path.join(HERE, "models", f"simulator{'_masses' if cfg.masses else ''}_seed0.npz")


def load_dynamics(cfg: PixelConfig, names) -> dict:
    """The saved models the selected dynamics need (checked in main)."""
    return state_models.load_models(default_models(cfg)) if any(n != "constant_velocity" for n in names) else {}


def train_renderer(cfg: PixelConfig, step, log=print) -> tuple:
    """A LearnedRenderer trained from frames alone (cfg.train_seq sequences of cfg.train_n_balls
    balls): per iteration, cfg.batch sequences with bit-flip noise are tracked
    by EM with the current renderer; at every frame the loss is the next-frame objective on the
    clean frame: sum_ik gamma_ik BCE(x_i, psi_ik) of the components predicted by the dynamics,
    gamma from the E-step on the noisy frame given that prediction, held fixed. Adam, one step
    per batch (gradient summed over frames, divided by the batch's lit-pixel count). Returns
    (renderer, history of mean losses per lit pixel)."""
    renderer = LearnedRenderer(cfg.size, cfg.hidden, simulator.rng_for(cfg.seed, "pixels/renderer-init"))
    data = make_frames(dataclasses.replace(cfg, curtain=0.0), cfg.train_n_balls, cfg.train_seq, "pixels/train")
    adam = Adam(renderer.flat, cfg.lr)
    rng = simulator.rng_for(cfg.seed, "pixels/train-batches")
    history = []
    for it in range(cfg.train_steps):
        seqs = rng.choice(cfg.train_seq, size=min(cfg.batch, cfg.train_seq), replace=False)
        clean = data["frames"][:, seqs]                                                   # (T, b, S, S)
        noisy = clean ^ (rng.random(clean.shape) < cfg.bitflip)
        seen = np.ones(clean.shape[1:], bool)
        comp = Components.empty(len(seqs), cfg.components)
        em(noisy[0], seen, comp, renderer, cfg.em_iters)
        grad, loss = np.zeros_like(renderer.flat), 0.0
        for t in range(1, cfg.t_frames):
            pred = advance(comp, step)
            psi, cache = renderer.forward(pred.shown(), pred.radii)
            gamma = e_step(noisy[t], psi)[:, :-1] * pred.present[..., None, None]         # empty components: no loss
            value, g = renderer.loss_and_grads(clean[t], gamma, psi, cache, seen.astype(float))
            loss, grad = loss + value, grad + g
            comp = em_after_prediction(noisy[t], seen, comp, pred, renderer, cfg.em_iters)[0]
        lit = max(float(clean[1:].sum()), 1.0)
        adam.lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * it / cfg.train_steps))           # cosine decay
        adam.step(grad / lit)
        history.append(loss / lit)
        if it % max(1, cfg.train_steps // 10) == 0 or it == cfg.train_steps - 1:
            log(f"renderer iter {it:4d}: next-frame loss {loss / lit:.4f} per lit pixel")
    return renderer, history


def component_map(maps: np.ndarray, floor: float) -> tuple:
    """maps (K, S, S) in [0, 1] -> (rows of the index of the largest map per pixel, "." where it is
    below floor; rows of its level, floor(10 value) clipped to 0..9)."""
    top, level = maps.argmax(axis=0), np.clip((maps.max(axis=0) * 10).astype(int), 0, 9)
    chars = np.where(maps.max(axis=0) >= floor, np.array(list(COMPONENT_CHARS))[top], ".")
    return ["".join(row) for row in chars], ["".join(map(str, row)) for row in level]


def sample_sequence(data: dict, size: int) -> int:
    """The sequence the figures show: with a curtain, the one with most frames of a ball mostly
    hidden after it was seen; otherwise the one with most ball collisions (chosen from the truth alone)."""
    if not data["visible"].all():
        return int(hidden_balls(data, size)[1].sum(axis=(0, 2)).argmax())
    return int(data["pair"].sum(axis=(0, 2, 3)).argmax())


def sample_payload(shots: dict, data: dict, size: int, renderer_name: str, dynamics: str) -> dict:
    """One sequence for the figures: the truth, the curtain, the frames (rows of 0/1), per frame
    the components' positions and presence, the prediction max_k psi_k before the frame (which
    component and how much) and gamma after its EM (which component, "." for the background,
    and how much); levels quantised to 0..9."""
    s = shots["index"]
    predictions = [component_map(p, 0.05) for p in shots["prediction"]]
    gammas = [component_map(g[:-1] * (g[:-1].max(0) > g[-1]), 0.05) for g in shots["gamma"]]
    return {"renderer": renderer_name, "dynamics": dynamics, "size": size, "index": s,
            "truth": data["states"][:, s, :, :2].round(4).tolist(), "radii": data["radii"][s].round(4).tolist(),
            "hidden_fraction": shots["hidden_fraction"].round(3).tolist(),
            "collisions": data["pair"][:, s].any(axis=2).tolist(),
            "visible": ["".join(map(str, row)) for row in data["visible"][s].astype(int)],
            "frames": [["".join(map(str, row)) for row in f.astype(int)] for f in shots["frames"]],
            "positions": [p.round(4).tolist() for p in shots["positions"]],
            "present": [p.tolist() for p in shots["present"]],
            "prediction_component": [p[0] for p in predictions], "prediction_level": [p[1] for p in predictions],
            "gamma_component": [g[0] for g in gammas], "gamma_level": [g[1] for g in gammas]}


def renderer_profile(renderer: LearnedRenderer, untrained: LearnedRenderer, cfg: PixelConfig) -> dict:
    """psi along a line through a component of radius RADIUS (u: the offset in radii, along x
    and along the diagonal), trained and untrained, and the known renderer's soft disk."""
    u = np.linspace(0.0, 2.0, 41)
    profile = {"u": u.round(3).tolist(), "known": sigmoid((1.0 - u) * RADIUS * cfg.size / cfg.softness).round(4).tolist()}
    for name, ren, direction in (("learned_x", renderer, (1.0, 0.0)), ("learned_diagonal", renderer, (0.7071, 0.7071)),
                                 ("untrained", untrained, (1.0, 0.0))):
        offsets = u[:, None] * np.array(direction)                                        # (41, 2)
        profile[name] = sigmoid(ren.prior(u * u) + ren.h_forward(offsets)[0]).round(4).tolist()
    return profile


@with_one_blas_thread
def run(cfg: PixelConfig, log=print, with_sample: bool = True) -> dict:
    """Every selected dynamics on the same frames; with the learned renderer, trained first (with
    the relational simulator as the dynamics, or constant velocity when it is the only one)."""
    names = DYNAMICS if cfg.dynamics == "all" else (cfg.dynamics,)
    models = load_dynamics(cfg, names)
    groups = [(k, n, make_frames(cfg, k, n, "pixels/data")) for k, n in group_sizes(cfg, cfg.n_eval)]
    models_path = default_models(cfg)
    result = {"config": dataclasses.asdict(cfg), "source_sha256": code_sha256(__file__)[0],
              "models": repository_path(models_path) if models else None,
              "models_sha256": source_sha256(models_path) if models else None,
              "numbers_depend_on": "seed and config; float64 numpy; the learned renderer's matrix products (BLAS)",
              "env": environment("float64", __file__)}
    if cfg.renderer == "learned":
        t0 = time.perf_counter()
        trainer = "simulator.relational" if "simulator.relational" in names else names[0]
        renderer, history = train_renderer(cfg, make_step(trainer, models, cfg.masses), log)
        untrained = LearnedRenderer(cfg.size, cfg.hidden, simulator.rng_for(cfg.seed, "pixels/renderer-init"))
        result["renderer_training"] = {"dynamics": trainer, "seconds": time.perf_counter() - t0,
                                       "loss_per_lit_pixel": [round(h, 6) for h in history],
                                       "parameters": {k: v.tolist() for k, v in renderer.params.items()},
                                       "profile": renderer_profile(renderer, untrained, cfg)}
        result["untrained_renderer"] = pool([track(d, cfg, make_step(names[-1], models, cfg.masses), untrained) for _, _, d in groups])
        result["untrained_renderer"]["dynamics"] = names[-1]
    else:
        renderer = KnownRenderer(cfg.size, cfg.softness)
    for name in names:
        t0 = time.perf_counter()
        step = make_step(name, models, cfg.masses)
        shown = sample_sequence(groups[0][2], cfg.size) if with_sample and name == names[-1] else None
        parts = [track(d, cfg, step, renderer, sample=shown if i == 0 else None) for i, (_, _, d) in enumerate(groups)]
        result[name] = pool(parts)
        result[name]["seconds"] = time.perf_counter() - t0
        if "sample" in parts[0]:
            result["sample"] = sample_payload(parts[0]["sample"], groups[0][2], cfg.size, renderer.name, name)
    return result


WIN_MEASURES = ("ari_from_prediction", "next_frame_bce", "relational_bce", "sim_position_error_px", "hidden_lost_fraction",
                "hidden_error_r")


def run_seeds(cfg: PixelConfig, seeds: list, log=print) -> dict:
    """run() for every seed; per dynamics and measure the per-seed values and their mean_interval,
    and per measure of WIN_MEASURES the seeds in which the relational simulator is better than each other dynamics."""
    runs = [run(dataclasses.replace(cfg, seed=s, seeds=""), log, with_sample=False) for s in seeds]
    names = [n for n in DYNAMICS if n in runs[0]]
    result = {"config": dataclasses.asdict(cfg), "seeds": seeds,
              **{key: runs[0][key] for key in ("source_sha256", "models", "models_sha256", "numbers_depend_on", "env")}}
    for name in names + (["untrained_renderer"] if "untrained_renderer" in runs[0] else []):
        result[name] = {}
        for key, value in runs[0][name].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                per_seed = [r[name][key] for r in runs]
                result[name][key] = over_seeds(per_seed)
            else:
                result[name][key] = value
    if "renderer_training" in runs[0]:
        result["renderer_training_seconds"] = [r["renderer_training"]["seconds"] for r in runs]
    if "simulator.relational" in names:
        wins = {}
        for key in WIN_MEASURES:
            if runs[0]["simulator.relational"][key] is None:
                continue
            better = (lambda a, b: a > b) if key in HIGHER_IS_BETTER else (lambda a, b: a < b)
            wins[key] = {name: sum(better(r["simulator.relational"][key], r[name][key]) for r in runs)
                         for name in names if name != "simulator.relational"}
        result["relational_wins"] = wins
    return result


# ----------------------------------------------------------------------------- CLI
RANGES = {"components": (1, 16), "n_eval": (1, 10_000), "t_frames": (2, 1000), "size": (16, 256), "em_iters": (1, 20),
          "hidden": (1, 256), "train_seq": (1, 100_000), "train_n_balls": (1, simulator.max_balls(RADIUS)), "train_steps": (1, 100_000), "batch": (1, 1000),
          "seed": (0, 2**32 - 1)}


def check_config(cfg: PixelConfig) -> None:
    """Every option in its range, the models readable, the output writable: before any work."""
    for name, (lo, hi) in RANGES.items():
        if not lo <= getattr(cfg, name) <= hi:
            raise ConfigError(f"--{name.replace('_', '-')} must be in {lo}..{hi} (got {getattr(cfg, name)})")
    most = max(parse_balls(cfg.n_balls))
    if cfg.components < most:
        raise ConfigError(f"--components must be at least the number of balls, {most} (--n-balls {cfg.n_balls}), "
                            f"and at most {RANGES['components'][1]} (got {cfg.components}): with fewer components "
                            f"than balls some balls are never tracked")
    if cfg.renderer == "learned" and cfg.components < cfg.train_n_balls:
        raise ConfigError(f"--train-n-balls must be at most --components ({cfg.components}) with the learned "
                            f"renderer (got {cfg.train_n_balls})")
    if not 0 < cfg.softness <= 5:
        raise ConfigError(f"--softness must be in (0, 5] pixels (got {cfg.softness})")
    if not 0 <= cfg.curtain <= 0.5:
        raise ConfigError(f"--curtain must be in [0, 0.5] (the band's width in box units; got {cfg.curtain})")
    if not 0 <= cfg.bitflip < 0.5:
        raise ConfigError(f"--bitflip must be in [0, 0.5) (got {cfg.bitflip})")
    if not 0 < cfg.lr <= 1:
        raise ConfigError(f"--lr must be in (0, 1] (got {cfg.lr})")
    if not 0 <= cfg.sim_steps <= cfg.t_frames - 2:
        raise ConfigError(f"--sim-steps must be in 0..{cfg.t_frames - 2} (--t-frames - 2; got {cfg.sim_steps})")
    if cfg.dynamics not in DYNAMICS + ("all",):
        raise ConfigError(f"--dynamics must be one of {', '.join(DYNAMICS + ('all',))} (got {cfg.dynamics!r})")
    if cfg.renderer not in RENDERERS:
        raise ConfigError(f"--renderer must be one of {', '.join(RENDERERS)} (got {cfg.renderer!r})")
    if cfg.dynamics != "constant_velocity":
        try:
            models = state_models.load_models(default_models(cfg))
        except ConfigError as err:
            raise ConfigError(str(err).replace("--load-model", "--models", 1))
        need = {"simulator.relational", "simulator.non_relational"}
        if not need <= set(models) or state_models.read_model_meta(default_models(cfg))["config"].get("masses") != cfg.masses:
            raise ConfigError(f"--models {default_models(cfg)}: needs the simulator recipe's models"
                                f"{' trained with --masses' if cfg.masses else ' (equal masses)'} (--recipe simulator "
                                f"--save-model)")
    if cfg.seeds:
        parse_seeds(cfg.seeds)
    check_output_path(cfg.out, "--out")


def command(argv) -> int:
    """The CLI's work: one run or --seeds (bad input raises ConfigError first)."""
    parser = parser_from_config(PixelConfig, __doc__)
    cfg = PixelConfig(**vars(parser.parse_args(argv)))
    check_config(cfg)
    seeds = parse_seeds(cfg.seeds).copy() if cfg.seeds else None
    result = run_seeds(cfg, seeds) if seeds else run(cfg)
    write_json_atomic(cfg.out, result)
    for name in (n for n in DYNAMICS + ("untrained_renderer",) if n in result):
        r = {key: value["mean"] if isinstance(value, dict) else value for key, value in result[name].items()}
        line = (f"{name:>24}: ARI after EM {r['ari_after_em']:.4f}, from the prediction {r['ari_from_prediction']:.4f}, "
                f"error {r['position_error_px']:.2f} px, next-frame BCE {r['next_frame_bce']:.1f} "
                f"(repeat {r['next_frame_bce_repeat']:.1f})")
        if r["hidden_lost_fraction"] is not None:
            line += f", hidden lost {r['hidden_lost_fraction']:.3f} error {r['hidden_error_r']:.3f} r"
        print(line + (f", {r['seconds']:.1f} s" if "seconds" in r else "")
              + (f" (means over {len(result['seeds'])} seeds)" if "seeds" in result else ""))
    if "relational_wins" in result:
        print(f"seeds in which the relational simulator is better: {result['relational_wins']}")
    print(f"wrote {cfg.out}")
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 130 / 143 stopped by SIGINT / SIGTERM (nothing written)."""
    return run_main(lambda: command(argv))


if __name__ == "__main__":
    sys.exit(main())
