"""Side-by-side GIF of one stored rollout: ground truth | non-relational | relational.

Reads the `samples` of run.json (written by relational_nem_bouncing_balls.py); one GIF
frame per rollout step, rendered with numpy and written with imageio.

    python3 make_relational_nem_bouncing_balls_gif.py                 # run.json -> relational_nem_bouncing_balls.gif
    python3 make_relational_nem_bouncing_balls_gif.py --sample 2 --fps 6 --frame-size 160
"""
import argparse
import json
import os
import sys

import numpy as np

DEFAULT_RUN = "run.json"
DEFAULT_OUT = "relational_nem_bouncing_balls.gif"
PANELS = ("truth", "non_relational", "relational")
# RGB of the balls in each panel, and of the strip above it that names the panel by colour
PANEL_COLOURS = {"truth": (40, 40, 40), "non_relational": (214, 39, 40), "relational": (44, 160, 44)}
BACKGROUND = (250, 250, 250)
GHOST_COLOUR = (215, 215, 215)     # the true balls, drawn faintly under each model's balls
GAP = 6                 # pixels between panels
STRIP = 6               # height of the colour strip above each panel
PROGRESS = 4            # height of the progress bar under the panels


class InputError(ValueError):
    """A missing or malformed input file; reported on one line with exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def load_run(path: str, need=("samples",)) -> dict:
    """Reads run.json and checks the keys this script needs (InputError otherwise)."""
    if not os.path.isfile(path):
        raise InputError(f"--run {path}: file not found; produce it with python3 relational_nem_bouncing_balls.py")
    try:
        with open(path) as f:
            run = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"--run {path}: not valid JSON ({err.msg if hasattr(err, 'msg') else err})")
    if not isinstance(run, dict):
        raise InputError(f"--run {path}: expected a JSON object with keys {', '.join(need)}")
    missing = [key for key in need if key not in run]
    if missing:
        raise InputError(f"--run {path}: missing key(s) {', '.join(missing)}; regenerate it with "
                         f"python3 relational_nem_bouncing_balls.py")
    return run


def check_out_file(path: str, option: str = "--out") -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{option} {path} is a folder; give a file path")


def disk_coverage(positions: np.ndarray, radius: float, size: int) -> np.ndarray:
    """Fraction of each pixel covered by any ball: positions (T, K, 2) in box units ([0, 1]^2,
    y up) -> (T, size, size) in [0, 1], approximated by clip(radius_px - distance_px + 0.5, 0, 1)."""
    centres = (np.arange(size) + 0.5) / size                                # (size,) pixel centres
    px = positions[..., 0][:, :, None, None]                                # (T, K, 1, 1)
    py = (1.0 - positions[..., 1])[:, :, None, None]                        # image rows run downwards
    dist = np.sqrt((centres[None, None, None, :] - px) ** 2 + (centres[None, None, :, None] - py) ** 2)
    return np.clip((radius - dist) * size + 0.5, 0.0, 1.0).max(axis=1)


def render_frames(positions: np.ndarray, radius: float, size: int, colour, ghost=None) -> np.ndarray:
    """Anti-aliased balls of `colour` on a light background, uint8 frames (T, size, size, 3).
    `ghost` (T, K, 2), e.g. the true positions, is drawn faintly underneath."""
    image = np.broadcast_to(np.array(BACKGROUND, float), (len(positions), size, size, 3))
    layers = [(ghost, GHOST_COLOUR)] if ghost is not None else []
    for pos, rgb in layers + [(positions, colour)]:
        cover = disk_coverage(pos, radius, size)[..., None]                 # (T, size, size, 1)
        image = image + cover * (np.array(rgb, float) - image)
    return image.round().astype(np.uint8)


def compose(panels: list, strip_colours: list) -> np.ndarray:
    """Panels (T, S, S, 3) side by side with a colour strip above each and a progress bar below."""
    T, S = panels[0].shape[:2]
    width = len(panels) * S + (len(panels) - 1) * GAP
    frames = np.full((T, STRIP + S + PROGRESS, width, 3), 255, np.uint8)
    for i, (panel, colour) in enumerate(zip(panels, strip_colours)):
        x0 = i * (S + GAP)
        frames[:, :STRIP - 2, x0:x0 + S] = colour
        frames[:, STRIP:STRIP + S, x0:x0 + S] = panel
        frames[:, STRIP:STRIP + S, [x0, x0 + S - 1]] = 120                  # box outline
        frames[:, [STRIP, STRIP + S - 1], x0:x0 + S] = 120
    for t in range(T):                                                      # progress bar: step t of T
        frames[t, -PROGRESS:, :int(round(width * (t + 1) / T))] = 90
    return frames


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=DEFAULT_RUN, help="run.json written by the main script")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output GIF path")
    parser.add_argument("--sample", type=int, default=0, help="which stored sample sequence to animate")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second")
    parser.add_argument("--frame-size", type=int, default=160, help="pixel size of each square panel")
    args = parser.parse_args(argv)
    try:
        if not 0 < args.fps <= 50:
            raise InputError(f"--fps must be in (0, 50] (got {args.fps})")
        if not 32 <= args.frame_size <= 1024:
            raise InputError(f"--frame-size must be in [32, 1024] pixels (got {args.frame_size})")
        check_out_file(args.out)
        run = load_run(args.run)
        samples = run["samples"]
        n = len(samples.get("truth", [[]])[0])
        if not 0 <= args.sample < n:
            raise InputError(f"--sample must be in [0, {n - 1}] for this run.json (got {args.sample})")
        truth = np.asarray(samples["truth"], float)[:, args.sample, :, :2]        # (T, K, 2)
        panels = []
        for name in PANELS:
            positions = np.asarray(samples[name], float)[:, args.sample, :, :2]   # (T, K, 2)
            panels.append(render_frames(positions, samples["radius"], args.frame_size, PANEL_COLOURS[name],
                                        ghost=None if name == "truth" else truth))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, IndexError, TypeError, ValueError) as err:
        print(f"error: --run {args.run}: malformed samples ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    import imageio.v2 as imageio

    frames = compose(panels, [PANEL_COLOURS[name] for name in PANELS])
    imageio.mimsave(args.out, list(frames), duration=1.0 / args.fps, loop=0)
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px "
          f"(dark = ground truth, red = non-relational, green = relational; "
          f"light grey = true positions under each model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
