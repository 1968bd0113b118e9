"""The simulator of the bouncing balls: balls placed apart at random in the unit box with random
speeds, moved by explicit Euler steps with elastic ball-ball collisions and wall reflections;
sequences of states (and which balls collided), with the paper's two ball types as an option.
Every experiment draws its data here, each purpose from its own generator (rng_for)."""
from __future__ import annotations

import math
import zlib

import numpy as np

from rnem.balls import HEAVY_MASS, ball_types, mirror_into_box


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """One independent generator per (seed, purpose), e.g. rng_for(0, "data/train")."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])



MIN_SEPARATION = 2.2    # initial centres at least 2.2 r apart
SPEED_RANGE = (0.6, 1.0)


def max_balls(radius: float) -> int:
    """An upper bound on how many balls can start `MIN_SEPARATION * radius` apart.

    Centres lie in the square [r, 1-r]^2 of side L = 1 - 2r; disks of radius d/2 around
    them (d = 2.2 r) are disjoint and lie in a square of side L + d, so K pi d^2 / 4 <= (L + d)^2.
    """
    d = MIN_SEPARATION * radius
    return int((1 - 2 * radius + d) ** 2 / (math.pi * d * d / 4))


def initial_state(n: int, k: int, radius, rng: np.random.Generator,
                  max_restarts: int = 20, tries_per_ball: int = 100, redraw=None):
    """Random non-overlapping starts: positions (n, k, 2) with every centre in [r_i, 1-r_i]^2
    and any two at least 1.1 (r_i + r_j) apart (2.2 r for equal radii), velocities (n, k, 2)
    with speed uniform in [0.6, 1.0] and direction uniform. `radius` is one radius for every
    ball or the radii (n, k) of each.

    Balls are placed one at a time, vectorised over sequences: ball i is redrawn in every
    sequence where it lands too close to an earlier ball; a sequence in which some ball finds
    no place after `tries_per_ball` draws is started again from its first ball, after
    redraw(sequences) where given (it may draw new radii into the `radius` array in place).
    Raises ValueError when K balls cannot be placed.
    """
    r_max = float(np.max(radius))
    if k > max_balls(r_max):
        raise ValueError(f"cannot place {k} balls of radius {r_max:g}: at most {max_balls(r_max)} fit "
                         f"at separation {MIN_SEPARATION} r in the unit box")
    radii = np.broadcast_to(np.asarray(radius, np.float64), (n, k))
    pos = np.empty((n, k, 2))
    pending = np.arange(n)                                  # sequences still to place
    for _ in range(max_restarts):
        pending = _place_balls(pos, pending, radii, rng, tries_per_ball)
        if len(pending) == 0:
            break
        if redraw is not None:
            redraw(pending)
    else:
        raise ValueError(f"could not place {k} balls of radius {r_max:g} at separation {MIN_SEPARATION} r "
                         f"after {max_restarts} restarts; use fewer balls or a smaller --radius")
    speed = rng.uniform(*SPEED_RANGE, size=(n, k))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, k))
    vel = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=-1)   # (n, k, 2)
    return pos, vel


def _place_balls(pos, seqs, radii, rng, tries_per_ball):
    """Draw every ball of the sequences `seqs` in pos (n, k, 2) in place, ball by ball (radii
    (n, k)); returns the sequences in which some ball found no free place (to be started again)."""
    k = pos.shape[1]
    active, stuck = seqs, []
    for i in range(k):
        todo = active
        for _ in range(tries_per_ball):
            r = radii[todo, i, None]                                         # (m, 1)
            pos[todo, i] = rng.uniform(r, 1.0 - r, size=(len(todo), 2))
            min_dist = 0.5 * MIN_SEPARATION * (radii[todo, :i] + r)          # (m, i) 1.1 (r_i + r_j)
            gap = np.linalg.norm(pos[todo, :i] - pos[todo, i:i + 1], axis=-1) - min_dist
            todo = todo[gap.min(axis=1, initial=np.inf) < 0]                 # (m,) still too close
            if len(todo) == 0:
                break
        if len(todo):
            stuck.append(todo)
            active = np.setdiff1d(active, todo)
    return np.concatenate(stuck) if stuck else seqs[:0]


def simulate(pos: np.ndarray, vel: np.ndarray, n_steps: int, dt: float, radius,
             return_events: bool = False, collide: bool = True, mass=None):
    """Roll the physics forward; returns states (n_steps, n, k, 4) = (x, y, vx, vy).

    The state is recorded before each update. One update: explicit Euler move; then ball
    pairs (i < j, one at a time) that overlap and approach collide elastically along their line
    of centres n: with inverse masses w = 1/m, the impulse J = 2 ((v_i - v_j).n) / (w_i + w_j)
    gives v_i -= J w_i n, v_j += J w_j n (equal masses: the normal components are exchanged), and
    each is pushed apart by half the overlap; then the wall pass mirrors any centre outside
    [r_i, 1-r_i] back inside and points its velocity inwards. The wall pass comes last, so
    every recorded centre lies in [r_i, 1-r_i] exactly. Kinetic energy is conserved, and
    momentum in every pair collision. `radius`: one radius or the radii (n, k); `mass`: None
    (equal masses) or the masses (n, k).

    With return_events, also returns {"wall": (n_steps, n, k) bool, "pair": (n_steps, n, k, k)
    bool}: True where that ball bounced off a wall / that pair collided during the step that
    starts at that recorded state. collide=False skips the ball pairs: free flight with wall
    reflection, the constant-velocity baseline.
    """
    pos = np.array(pos, dtype=np.float64)            # (n, k, 2)
    vel = np.array(vel, dtype=np.float64)            # (n, k, 2)
    n, k, _ = pos.shape
    radii = np.broadcast_to(np.asarray(radius, np.float64), (n, k))
    lo, hi = radii[..., None], 1.0 - radii[..., None]                        # (n, k, 1) wall limits
    inv_mass = None if mass is None else 1.0 / np.broadcast_to(np.asarray(mass, np.float64), (n, k))
    states = np.empty((n_steps, n, k, 4))
    wall_events = np.zeros((n_steps, n, k), dtype=bool)
    pair_events = np.zeros((n_steps, n, k, k), dtype=bool)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)] if collide else []
    for t in range(n_steps):
        states[t, :, :, :2] = pos
        states[t, :, :, 2:] = vel
        pos += vel * dt
        for i, j in pairs:
            offset = pos[:, j] - pos[:, i]                                   # (n, 2) from i to j
            dist = np.sqrt(offset[:, 0] * offset[:, 0] + offset[:, 1] * offset[:, 1])   # (n,)
            rel_vel = vel[:, j] - vel[:, i]
            approaching = rel_vel[:, 0] * offset[:, 0] + rel_vel[:, 1] * offset[:, 1] < 0
            contact = radii[:, i] + radii[:, j]                              # (n,) r_i + r_j
            hit = (dist < contact) & approaching & (dist > 0)
            if not hit.any():
                continue
            normal = offset[hit] / dist[hit, None]                           # (h, 2) unit i -> j
            vi, vj = vel[hit, i], vel[hit, j]
            # (v_i - v_j).n n: the normal component of the relative velocity
            transfer = ((vi[:, 0] - vj[:, 0]) * normal[:, 0] + (vi[:, 1] - vj[:, 1]) * normal[:, 1])[:, None] * normal
            if inv_mass is None:                                             # equal masses: exchange it
                vel[hit, i] = vi - transfer
                vel[hit, j] = vj + transfer
            else:                                                            # J w_i n = 2 w_i / (w_i + w_j) ...
                wi, wj = inv_mass[hit, i, None], inv_mass[hit, j, None]
                vel[hit, i] = vi - (2.0 * wi / (wi + wj)) * transfer
                vel[hit, j] = vj + (2.0 * wj / (wi + wj)) * transfer
            push = (0.5 * (contact[hit] - dist[hit]))[:, None] * normal     # half the overlap each
            pos[hit, i] -= push
            pos[hit, j] += push
            pair_events[t, hit, i, j] = pair_events[t, hit, j, i] = True
        # walls: mirror the position back inside, velocity points inwards; repeated until
        # inside (one pass always suffices for the validated radius < 0.25, dt <= 0.1)
        while True:
            pos, vel, mirrored = mirror_into_box(pos, vel, lo, hi)           # (n, k, 2)
            if not mirrored.any():
                break
            wall_events[t] |= mirrored.any(axis=-1)
    if return_events:
        return states, {"wall": wall_events, "pair": pair_events}
    return states


def simulate_sequences(n: int, n_steps: int, k: int, dt: float, radius: float, rng: np.random.Generator,
                       masses: bool = False):
    """n fresh sequences: (states (n_steps, n, k, D), events), D = 4, or 5 with masses (the radius
    of each ball appended: what the models see of its type)."""
    if masses:
        radii = ball_types(n, k, radius, rng)[0]

        def redraw(seqs):                                          # a crowd of heavy balls that does not fit
            radii[seqs] = ball_types(len(seqs), k, radius, rng)[0]
        # two sizes pack less easily: more draws, and new types for a sequence that starts again
        pos, vel = initial_state(n, k, radii, rng, max_restarts=100, tries_per_ball=300, redraw=redraw)
        mass = np.where(radii > radius, HEAVY_MASS, 1.0)
    else:                                                          # the stub's experiment, unchanged
        radii, mass = radius, None
        pos, vel = initial_state(n, k, radii, rng)
    states, events = simulate(pos, vel, n_steps, dt, radii, return_events=True, mass=mass)
    if masses:
        states = np.concatenate([states, np.broadcast_to(radii, states.shape[:3])[..., None]], axis=-1)
    return states, events


def make_dataset(n: int, n_steps: int, k: int, dt: float, radius: float, rng: np.random.Generator,
                 masses: bool = False) -> np.ndarray:
    """n simulated sequences, shape (n, n_steps, k, D), float64."""
    return simulate_sequences(n, n_steps, k, dt, radius, rng, masses)[0].transpose(1, 0, 2, 3).copy()
