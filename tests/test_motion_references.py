"""rnem.motion_references on scenes whose answers are known: a ball in free flight is predicted
exactly by every reference; a wall bounce by the references that know the walls, and the frame
after it only from the true velocity; a head-on collision only by the simulator; and on the network's own test data each reference that knows
more of the physics predicts more of the motion."""
import numpy as np
import pytest

from rnem import motion_references as refs
from rnem.frames import render_binary
from rnem.scenes import DT, RADIUS, ball_scenes
from rnem.simulator import simulate

SIZE = 24


def scenes_of(pos, vel, frames: int, frame_steps: int = 1) -> dict:
    """The rnem.scenes.ball_scenes dict of the balls started at pos, vel (n, B, 2), simulated with
    the project's physics, every frame_steps-th state a frame."""
    states = simulate(np.asarray(pos, float), np.asarray(vel, float), (frames - 1) * frame_steps + 1, DT,
                      RADIUS)[::frame_steps]                                        # (T, n, B, 4)
    n, B = states.shape[1:3]
    drawn, labels = render_binary(states[..., :2], RADIUS, SIZE)
    return {"states": states, "pair": np.zeros(states.shape[:2] + (B, B), bool), "frames": drawn, "labels": labels,
            "visible": np.ones((n, SIZE, SIZE), bool), "radii": np.full((n, B), RADIUS)}


def test_free_flight_is_predicted_by_every_reference():
    # one ball crossing the middle of the box, far from every wall: each reference draws the next disk
    scenes = scenes_of([[[0.3, 0.4]]], [[[0.8, 0.3]]], frames=8)
    for name, m in refs.reference_motion(scenes, 1).items():
        assert m["n"] == 6 and m["slope"] == pytest.approx(1.0, abs=1e-12), name


def test_a_wall_bounce_is_predicted_by_the_references_that_know_the_walls():
    # a ball flying right at 1.0 box/s, two simulator steps a frame (0.62, 0.72, 0.82), meets the wall
    # (x = 1 - r) before the next frame: constant velocity flies through it, the others mirror it
    scenes = scenes_of([[[0.62, 0.5]]], [[[1.0, 0.0]]], frames=4, frame_steps=2)
    m = refs.reference_motion(scenes, 2)
    for name in ("walls", "simulator", "walls_true_velocity"):
        assert m[name]["slope"] == pytest.approx(1.0, abs=1e-9), name
    assert abs(m["constant_velocity"]["slope"] - 1.0) > 0.1


def test_the_frame_after_a_bounce_needs_the_true_velocity():
    # one frame later the two frames around the bounce show a velocity that is neither before nor after
    # it: every reference from two frames errs, free flight from the true velocity does not
    scenes = scenes_of([[[0.62, 0.5]]], [[[1.0, 0.0]]], frames=5, frame_steps=2)
    m = refs.reference_motion(scenes, 2)
    assert m["walls_true_velocity"]["slope"] == pytest.approx(1.0, abs=1e-9)
    for name in ("constant_velocity", "walls", "simulator"):
        assert m[name]["slope"] < 0.6, name


def test_a_head_on_collision_is_predicted_only_by_the_simulator():
    # two balls meeting head-on exchange their velocities between the last two frames; only the
    # simulator knows, and no free flight, even from the true velocity
    scenes = scenes_of([[[0.25, 0.5], [0.75, 0.5]]], [[[0.8, 0.0], [-0.8, 0.0]]], frames=5)
    m = refs.reference_motion(scenes, 1)
    assert m["simulator"]["slope"] == pytest.approx(1.0, abs=1e-9)
    for name in ("constant_velocity", "walls", "walls_true_velocity"):
        assert abs(m[name]["slope"] - 1.0) > 0.05, name


def test_predicted_centres_by_hand():
    # constant velocity is 2 x_t - x_{t-1}; in free flight the simulator's centre is the same to rounding
    scenes = scenes_of([[[0.3, 0.4], [0.7, 0.6]]], [[[0.5, 0.2], [-0.3, 0.4]]], frames=5)
    pos = scenes["states"][..., :2]
    centres = refs.predicted_centres(scenes["states"], scenes["radii"], 1)
    assert centres["constant_velocity"] == pytest.approx(2 * pos[1:-1] - pos[:-2])
    for name in refs.REFERENCES:
        assert centres[name].shape == (3, 1, 2, 2)
        assert centres[name] == pytest.approx(pos[2:], abs=1e-12), name


def test_on_the_test_data_more_physics_predicts_more_motion():
    # the long training's data (4 balls, two simulator steps a frame): each reference that knows more
    # of the physics predicts more of the motion; knowing the true velocity predicts nearly all of it
    scenes = ball_scenes(16, 12, 4, SIZE, 0, "test-references", frame_steps=2)
    m = {name: v["slope"] for name, v in refs.reference_motion(scenes, 2).items()}
    assert 0 < m["constant_velocity"] < m["walls"] < m["simulator"] < 1
    assert m["walls_true_velocity"] > 0.95
