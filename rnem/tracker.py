"""The E-step tracker on binary frames: K components, each a state theta_k = (position, velocity,
radius, present) and a renderer theta_k -> psi_k, explain every frame as a spatial mixture with a
background component; the generalised M-step moves each component onto the lit pixels it claims;
empty components are placed where lit pixels are explained by none; between frames a dynamics
model advances every present component. The pixel pipeline (relational_nem_pixels.py) measures it,
the interactions pipeline (relational_nem_interactions.py) learns dynamics from its tracks."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from rnem.frames import pixel_centres, squared_distances
from rnem.layers import sigmoid
from rnem.mixture import e_step as mixture_e_step
from rnem.scenes import DT, RADIUS

SOFTNESS = 0.5           # the known renderer: pixels over which a disk's edge goes from 1 to 0
LIKELIHOOD_FLOOR = 1e-9  # the E-step's probabilities are kept in [eps, 1 - eps] (far below BACKGROUND_P)
BACKGROUND_P = 0.02      # the background component lights every pixel with this probability
EMPTY_MASS = 0.25        # a seen component that claims fewer lit pixels than this becomes empty
EMPTY_VIEW = 0.9         # a component that claims nothing is emptied only if this much of it is observed
SEEN_FRACTION = 0.2      # a component with less of its rendering observed is hidden: it keeps its prediction
FULL_VIEW = 0.98         # the radius is re-estimated only from components seen this completely
UNEXPLAINED = 0.1        # a lit pixel that no component lights with this probability is unexplained
DISCOVERY_FILL = 0.5     # a component is placed where unexplained pixels fill this much of a square r wide
DUPLICATE_DISTANCE = 1.0  # of two present components closer than this many radii (balls: >= 2), the weaker is emptied



# ----------------------------------------------------------------------------- the known renderer
class KnownRenderer:
    """psi_ik = sigmoid((r_k - |p_i - x_k|) S / softness): a disk of the component's radius
    whose edge goes from 1 to 0 over `softness` pixels."""

    name = "known"

    def __init__(self, size: int, softness: float):
        self.size, self.softness = size, softness

    def __call__(self, positions: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """positions (n, K, 2), radii (n, K) -> psi (n, K, S, S)."""
        dist = np.sqrt(squared_distances(positions, self.size))                            # (n, K, S, S)
        return sigmoid((radii[..., None, None] - dist) * self.size / self.softness)


# ----------------------------------------------------------------------------- EM
def e_step(frames: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """gamma (n, K + 1, S, S): the posterior of each component (the last: background) for each
    pixel of frames (n, S, S) under psi (n, K, S, S) kept in [eps, 1 - eps]: the mixture's
    E-step (rnem.mixture) with the background component."""
    return mixture_e_step(frames, np.clip(psi, LIKELIHOOD_FLOOR, 1.0 - LIKELIHOOD_FLOOR), 0.0, BACKGROUND_P)


@dataclasses.dataclass
class Components:
    """The state of every component of n sequences: positions, velocities (n, K, 2), radii (n, K),
    present (n, K) bool, frames_present (n, K) int (frames seen whole; radius averaging),
    seen (n, K) the fraction of each one's rendering on observed pixels at the last M-step."""
    positions: np.ndarray
    velocities: np.ndarray
    radii: np.ndarray
    present: np.ndarray
    frames_present: np.ndarray
    seen: np.ndarray

    @classmethod
    def empty(cls, n: int, k: int):
        return cls(parked(n, k), np.zeros((n, k, 2)), np.full((n, k), RADIUS), np.zeros((n, k), bool),
                   np.zeros((n, k), int), np.ones((n, k)))

    def copy(self):
        return Components(*(a.copy() for a in dataclasses.astuple(self)))

    def shown(self):
        """positions with the empty components parked off the frame (they render nothing)."""
        return np.where(self.present[..., None], self.positions, parked(*self.present.shape))


def parked(n: int, k: int) -> np.ndarray:
    """(n, K, 2) places off the frame, 3 box widths apart: nothing there is rendered or interacts."""
    spots = np.stack([-3.0 - 3.0 * np.arange(k), np.full(k, -3.0)], axis=-1)                # (K, 2)
    return np.broadcast_to(spots, (n, k, 2)).copy()


def centre_of(weight: np.ndarray, size: int) -> np.ndarray:
    """(n, K, 2) sum over pixels of weight (n, K, S, S) times the pixel centre (x, y): through
    the column sums (x) and the row sums (y)."""
    c = (np.arange(size) + 0.5) / size
    return np.stack([weight.sum(axis=2) @ c, weight.sum(axis=3) @ c[::-1]], axis=-1)


def m_step(frames, visible, gamma, psi, comp: Components, size: int) -> None:
    """The generalised M-step, in place. A present component that is seen (a fraction f >=
    SEEN_FRACTION of its rendering falls on observed pixels) moves by f ((centre of the observed
    lit pixels it claims) - (centre of its rendering on the observed pixels)): with the whole
    disk in view this is the centre of what it claims; half hidden, the hidden half is not
    mistaken for a move, and the move counts for half (a sliver is a poor measurement).
    A seen component claiming fewer than EMPTY_MASS lit pixels becomes empty; a hidden one keeps
    its (predicted) position. Fully seen, its radius is the running mean of sqrt(claimed area / pi).
    Of two seen components closer than DUPLICATE_DISTANCE radii, the one claiming less is
    emptied (two balls are at least two radii apart; two components splitting one ball are not)."""
    claim = gamma[:, :-1] * (frames & visible)[:, None]                                   # (n, K, S, S)
    mass = claim.sum(axis=(2, 3))                                                         # (n, K) lit pixels claimed
    observed = psi * visible[:, None]
    seen_mass, full_mass = observed.sum(axis=(2, 3)), psi.sum(axis=(2, 3))
    comp.seen = seen_mass / np.maximum(full_mass, 1e-12)
    seen = comp.present & (comp.seen > SEEN_FRACTION)
    claimed_centre = centre_of(claim, size) / np.maximum(mass, 1e-12)[..., None]
    rendered_centre = centre_of(observed, size) / np.maximum(seen_mass, 1e-12)[..., None]
    keep = seen & (mass > EMPTY_MASS)
    move = comp.seen[..., None] * (claimed_centre - rendered_centre)                  # a partial view counts less
    comp.positions = np.where(keep[..., None], comp.positions + move, comp.positions)
    comp.present &= ~(comp.present & (comp.seen > EMPTY_VIEW) & (mass <= EMPTY_MASS))
    full = keep & (seen_mass > FULL_VIEW * full_mass)
    estimate = np.sqrt(mass / math.pi) / size
    count = comp.frames_present
    comp.radii = np.where(full, (comp.radii * count + estimate) / (count + 1), comp.radii)
    comp.frames_present = count + full
    # duplicates: of two seen components closer than DUPLICATE_DISTANCE radii, empty the weaker
    gap = np.linalg.norm(comp.positions[:, :, None] - comp.positions[:, None], axis=-1)  # (n, K, K)
    both = seen[:, :, None] & seen[:, None, :] & comp.present[:, :, None] & comp.present[:, None, :]
    close = both & (gap < DUPLICATE_DISTANCE * comp.radii[:, :, None]) & ~np.eye(len(gap[0]), dtype=bool)
    weaker = close & ((mass[:, :, None] < mass[:, None, :]) |
                      ((mass[:, :, None] == mass[:, None, :]) & np.tri(len(gap[0]), k=-1, dtype=bool).T))
    comp.present &= ~weaker.any(axis=2)


def box_count(image: np.ndarray, half: int) -> np.ndarray:
    """(n, S, S): for every pixel, how many True pixels of image (n, S, S) lie in the square of
    side 2 half + 1 around it (an integral image)."""
    n, s, _ = image.shape
    integral = np.zeros((n, s + 1, s + 1))
    integral[:, 1:, 1:] = image.cumsum(1).cumsum(2)
    lo = np.clip(np.arange(s) - half, 0, s)
    hi = np.clip(np.arange(s) + half + 1, 0, s)
    return (integral[:, hi][:, :, hi] - integral[:, lo][:, :, hi] - integral[:, hi][:, :, lo]
            + integral[:, lo][:, :, lo])


def discover(frames, visible, psi, comp: Components, size: int) -> np.ndarray:
    """Places at most one empty component per sequence, in place: on the pixel whose square about
    r wide holds the most unexplained lit pixels (observed, lit, no component lights it with
    probability UNEXPLAINED), if they fill DISCOVERY_FILL of it. The square fits inside a ball,
    so it is fullest at a ball's centre, not between two touching balls. Returns (n,) bool: placed."""
    unexplained = frames & visible & (psi.max(axis=1) < UNEXPLAINED)                      # (n, S, S)
    half = max(1, int(round(RADIUS * size / 2)))                                          # side 2 half + 1 ~ r
    density = box_count(unexplained, half).reshape(len(frames), -1)                       # (n, S*S)
    best = density.argmax(axis=1)
    free = ~comp.present
    placed = (density.max(axis=1) >= DISCOVERY_FILL * (2 * half + 1) ** 2) & free.any(axis=1)
    seqs, slot = np.nonzero(placed)[0], free.argmax(axis=1)[placed]
    comp.positions[seqs, slot] = pixel_centres(size).reshape(-1, 2)[best[placed]]
    comp.velocities[seqs, slot] = 0.0
    comp.radii[seqs, slot], comp.frames_present[seqs, slot] = RADIUS, 0
    comp.present[seqs, slot] = True
    return placed


def em(frames, visible, comp: Components, renderer, iters: int):
    """iters E and M steps on frames (n, S, S), in place; then discovery of what no component
    explains, each new component refined by further EM. Returns (psi, gamma) of the final state."""
    size = frames.shape[-1]
    for _ in range(iters):
        psi = renderer(comp.shown(), comp.radii)
        m_step(frames, visible, e_step(frames, psi), psi, comp, size)
    psi = renderer(comp.shown(), comp.radii)
    for _ in range(comp.present.shape[1]):
        if not discover(frames, visible, psi, comp, size).any():
            break
        for _ in range(iters):
            psi = renderer(comp.shown(), comp.radii)
            m_step(frames, visible, e_step(frames, psi), psi, comp, size)
        psi = renderer(comp.shown(), comp.radii)
    return psi, e_step(frames, psi)


# ----------------------------------------------------------------------------- measures
def nearest_component(truth_xy: np.ndarray, comp: Components) -> np.ndarray:
    """(n, B) distance from every true ball (n, B, 2) to the nearest present component (inf: none)."""
    d = np.linalg.norm(truth_xy[:, :, None] - comp.positions[:, None], axis=-1)           # (n, B, K)
    return np.where(comp.present[:, None], d, np.inf).min(axis=2)


# ----------------------------------------------------------------------------- dynamics
def make_step(name: str, models: dict, masses: bool = False):
    """Components -> predicted (positions, velocities) one frame later, for the present ones:
    constant velocity, or a model of models/ rolled one step (the empty ones are parked apart,
    where they meet nothing; their prediction is ignored); masses: the models read the radius."""
    def step(comp: Components):
        if name == "constant_velocity":
            return comp.positions + DT * comp.velocities, comp.velocities.copy()
        model = models[name]
        x = comp.shown()
        S = np.concatenate([x, comp.velocities] + ([comp.radii[..., None]] if masses else []), -1)
        out = S + model.forward(S)[0]                                                     # (n, K, D)
        keep = comp.present[..., None]
        return np.where(keep, out[..., :2], comp.positions), np.where(keep, out[..., 2:4], comp.velocities)
    return step


def advance(comp: Components, step) -> Components:
    """The components one frame later, as the dynamics predict them."""
    nxt = comp.copy()
    nxt.positions, nxt.velocities = step(comp)
    return nxt


def em_after_prediction(frames, visible, comp: Components, pred: Components, renderer, iters: int):
    """EM on frames from the prediction pred of comp; returns (the new components, psi, gamma).
    A component present before and after keeps the prediction's velocity corrected by the
    M-step's move, weighted by the fraction f of its rendering in view: v = v_pred + f (x_em -
    x_pred) / dt (f = 1 without a curtain); a new one starts at rest."""
    new = pred.copy()
    psi, gamma = em(frames, visible, new, renderer, iters)
    tracked = (comp.present & new.present)[..., None]
    correction = new.seen[..., None] * (new.positions - pred.positions) / DT         # a partial view counts less
    new.velocities = np.where(tracked, pred.velocities + correction, 0.0)
    return new, psi, gamma


def follow(frames, visible, components: int, step, renderer, iters: int) -> dict:
    """The tracker alone, as track() runs it but without measures: discovery and EM on frame 0 of
    frames (T, n, S, S), then per frame the dynamics' prediction and EM on the frame. Returns the
    components after each frame's EM: positions, velocities (T, n, K, 2) (the prediction's,
    corrected by the M-step's move), radii (T, n, K) (running means of the claimed area) and
    present (T, n, K) bool."""
    T, n = frames.shape[:2]
    comp = Components.empty(n, components)
    em(frames[0], visible, comp, renderer, iters)
    out = {key: [] for key in ("positions", "velocities", "radii", "present")}
    for t in range(T):
        if t:
            comp = em_after_prediction(frames[t], visible, comp, advance(comp, step), renderer, iters)[0]
        for key in out:
            out[key].append(getattr(comp, key).copy())
    return {key: np.stack(value) for key, value in out.items()}
