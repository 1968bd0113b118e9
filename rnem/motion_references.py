"""How much of a ball's displacement simple physics predicts from what two frames show: the
references beside a network's motion fraction (rnem.dynamics_measures). Each reference knows the
true centre of every ball at frames t - 1 and t, takes their difference as the velocity (a bounce
between the two frames included, as a viewer of the frames would), and predicts the centres at
t + 1:
- constant_velocity: x_t + (x_t - x_{t-1});
- walls: that velocity flown by the project's simulator without ball-ball collisions (free
  flight, mirrored at the walls);
- simulator: the same with the collisions: the whole physics, from a two-frame velocity;
- walls_true_velocity: free flight with the walls from the simulator's own velocity at t, which
  no frame shows: what knowing each ball's velocity gives without modelling the other balls.
The simulator from the true state predicts every displacement: slope 1. A reference's ball is
its disk drawn at the predicted centre and measured in the same window, by the same rule, as the
component that owns the ball in a network's prediction."""
from __future__ import annotations

import numpy as np

from rnem import dynamics_measures as dyn
from rnem.balls import ball_masses
from rnem.frames import ball_pixels
from rnem.scenes import DT, RADIUS, ball_disks
from rnem.simulator import simulate

REFERENCES = ("constant_velocity", "walls", "simulator", "walls_true_velocity")


def predicted_centres(states, radii, frame_steps: int, dt: float = DT, radius: float = RADIUS) -> dict:
    """{reference: (T-2, n, B, 2) the centres it predicts for frames 2 .. T-1}, from states (T, n, B, D)
    (x, y, vx, vy[, r]) of frames frame_steps simulator steps of dt apart and radii (n, B); the
    balls' masses follow their radii (rnem.balls.ball_masses) when D = 5."""
    now, before = states[1:-1, ..., :2], states[:-2, ..., :2]                   # (T-2, n, B, 2)
    seen_velocity = (now - before) / (dt * frame_steps)                           # what two frames show
    flat = lambda a: a.reshape((-1,) + a.shape[2:])                  # noqa: E731  ((T-2) n, B, ...): one sequence each
    many_radii = flat(np.broadcast_to(radii, now.shape[:-1]))
    mass = None if states.shape[-1] < 5 else flat(ball_masses(states[1:-1], radius))

    def fly(velocity, collide: bool):                                # frame_steps simulator steps on from frame t
        flown = simulate(flat(now), flat(velocity), frame_steps + 1, dt, many_radii, collide=collide, mass=mass)
        return flown[-1, ..., :2].reshape(now.shape)

    return {"constant_velocity": 2.0 * now - before, "walls": fly(seen_velocity, False),
            "simulator": fly(seen_velocity, True), "walls_true_velocity": fly(states[1:-1, ..., 2:4], False)}


def reference_motion(scenes: dict, frame_steps: int) -> dict:
    """{reference: rnem.dynamics_measures.motion_fraction of its predictions} over the steps t = 1 .. T-2
    of scenes (rnem.scenes.ball_scenes, drawn with frame_steps), the steps a network's motion
    fraction is measured on."""
    states, radii = scenes["states"], scenes["radii"]
    T, n, B = states.shape[:3]
    size = scenes["frames"].shape[-1]
    disks, wide = ball_disks(scenes, size), ball_disks(scenes, size, wider=dyn.MOTION_MARGIN_PX)    # (T, n, B, D)
    visible = scenes["visible"].reshape(n, -1)                                                    # (n, D)
    owner = np.broadcast_to(np.arange(B), (n, B))                    # reference "component" b draws ball b
    windows = [dyn.motion_windows(disks[t], disks[t + 1], wide[t], wide[t + 1], visible) for t in range(1, T - 1)]
    out = {}
    for name, centres in predicted_centres(states, radii, frame_steps).items():
        drawn = ball_pixels(centres, radii, size).reshape(T - 2, n, B, -1)        # (T-2, n, B, D) disk at t + 1
        pairs = [dyn.predicted_displacements(drawn[t - 1].astype(np.float64), owner, disks[t], disks[t + 1],
                                             *windows[t - 1], size) for t in range(1, T - 1)]
        out[name] = dyn.motion_fraction(np.concatenate([p for p, _ in pairs]), np.concatenate([q for _, q in pairs]))
    return out
