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
LEVELS = 6              # anti-aliasing levels of a ball edge; frames are palette-indexed and the
                        # GIF writer remaps a palette in time ~ its size squared: keep it small


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
    return require_keys(run, need, path)


def require_keys(run: dict, need, path: str) -> dict:
    """run itself when it has every key in `need` (InputError naming the missing ones otherwise)."""
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
    y up) -> (T, size, size) in [0, 1], approximated by clip(radius_px - distance_px + 0.5, 0, 1).

    Each ball is evaluated only on its bounding box of pixels, then max-combined into the frame.
    """
    T, K, _ = positions.shape
    r_px = radius * size
    half = int(np.ceil(r_px)) + 1
    width = 2 * half + 1
    cx = positions[..., 0] * size                                           # (T, K) pixel coordinates
    cy = (1.0 - positions[..., 1]) * size                                   # image rows run downwards
    x0 = np.floor(cx).astype(int) - half                                    # box origin
    y0 = np.floor(cy).astype(int) - half
    offsets = np.arange(width) + 0.5                                        # pixel centres within the box
    dx2 = (x0[..., None] + offsets - cx[..., None]) ** 2                    # (T, K, width)
    dy2 = (y0[..., None] + offsets - cy[..., None]) ** 2
    sprites = np.clip(r_px - np.sqrt(dy2[..., :, None] + dx2[..., None, :]) + 0.5, 0.0, 1.0)   # (T, K, w, w)
    pad = width                                                             # balls may sit outside the box
    cover = np.zeros((T, size + 2 * pad, size + 2 * pad))
    for t in range(T):
        for k in range(K):
            x, y = x0[t, k] + pad, y0[t, k] + pad
            if 0 <= x <= size + pad and 0 <= y <= size + pad:               # skip balls far outside the frame
                region = cover[t, y:y + width, x:x + width]
                np.maximum(region, sprites[t, k], out=region)
    return cover[:, pad:pad + size, pad:pad + size]


def panel_palette(colour) -> np.ndarray:
    """(LEVELS^2, 3) RGB of every (ghost level g, ball level b): the background blended with
    GHOST_COLOUR by g / (LEVELS - 1), then with `colour` by b / (LEVELS - 1); row = g * LEVELS + b."""
    level = np.arange(LEVELS) / (LEVELS - 1)
    bg, ghost, ball = (np.array(c, float) for c in (BACKGROUND, GHOST_COLOUR, colour))
    under = bg + level[:, None] * (ghost - bg)                              # (LEVELS, 3)
    rgb = under[:, None, :] + level[None, :, None] * (ball - under[:, None, :])
    return rgb.reshape(-1, 3).round().astype(np.uint8)


def render_levels(positions: np.ndarray, radius: float, size: int, ghost=None) -> np.ndarray:
    """Palette rows (T, size, size) of panel_palette: balls at `positions` (T, K, 2) over
    `ghost` (T, K, 2) balls, e.g. the true positions, each quantised to LEVELS coverage levels."""
    levels = np.rint(disk_coverage(positions, radius, size) * (LEVELS - 1)).astype(np.uint8)
    if ghost is not None:
        levels += LEVELS * np.rint(disk_coverage(ghost, radius, size) * (LEVELS - 1)).astype(np.uint8)
    return levels


def render_frames(positions: np.ndarray, radius: float, size: int, colour, ghost=None) -> np.ndarray:
    """Anti-aliased balls of `colour` on a light background, uint8 RGB frames (T, size, size, 3);
    `ghost` (T, K, 2), e.g. the true positions, is drawn faintly underneath."""
    return panel_palette(colour)[render_levels(positions, radius, size, ghost)]


def compose(panels: list, colours: list):
    """Palette-indexed GIF frames: panels (T, S, S) of render_levels side by side, a colour strip
    above each, a progress bar below. Returns (frames (T, H, W) uint8, palette (n, 3) uint8)."""
    T, S = panels[0].shape[:2]
    n_panel = LEVELS * LEVELS
    extra = np.array([(255, 255, 255), (120, 120, 120), (90, 90, 90)] + list(colours), np.uint8)
    palette = np.concatenate([panel_palette(c) for c in colours] + [extra])
    white, outline, bar = len(colours) * n_panel + np.arange(3)
    width = len(panels) * S + (len(panels) - 1) * GAP
    frames = np.full((T, STRIP + S + PROGRESS, width), white, np.uint8)
    for i, (panel, colour) in enumerate(zip(panels, colours)):
        x0 = i * (S + GAP)
        frames[:, :STRIP - 2, x0:x0 + S] = len(colours) * n_panel + 3 + i       # colour strip
        frames[:, STRIP:STRIP + S, x0:x0 + S] = panel + i * n_panel
        frames[:, STRIP:STRIP + S, [x0, x0 + S - 1]] = outline
        frames[:, [STRIP, STRIP + S - 1], x0:x0 + S] = outline
    for t in range(T):                                                      # progress bar: step t of T
        frames[t, -PROGRESS:, :int(round(width * (t + 1) / T))] = bar
    return frames, palette


def build_frames(samples: dict, sample: int, size: int):
    """GIF frames (T, H, W) palette indices and their palette for one stored sample sequence."""
    truth = np.asarray(samples["truth"], float)[:, sample, :, :2]              # (T, K, 2)
    panels = []
    for name in PANELS:
        positions = np.asarray(samples[name], float)[:, sample, :, :2]         # (T, K, 2)
        panels.append(render_levels(positions, samples["radius"], size, ghost=None if name == "truth" else truth))
    return compose(panels, [PANEL_COLOURS[name] for name in PANELS])


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
        frames, palette = build_frames(samples, args.sample, args.frame_size)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, IndexError, TypeError, ValueError) as err:
        print(f"error: --run {args.run}: malformed samples ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    import imageio.v3 as iio

    # palette-indexed frames with their palette: the GIF writer has nothing to quantise
    iio.imwrite(args.out, frames, extension=".gif", mode="P", palette=palette.tobytes(),
                duration=1000.0 / args.fps, loop=0)
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px "
          f"(dark = ground truth, red = non-relational, green = relational; "
          f"light grey = true positions under each model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
