"""Side-by-side GIF of one stored rollout: ground truth | non-relational | relational; or, with
--pixels, of relational_nem_pixels.py's sample sequence: truth | prediction | gamma by component.

Reads the `samples` of run.json (written by relational_nem_bouncing_balls.py); one GIF
frame per rollout step, rendered with numpy, titled with PIL's default font (imageio's own
dependency) and written with imageio to a temporary file that is renamed into place.

    python3 make_relational_nem_bouncing_balls_gif.py                 # run_simulator.json -> relational_nem_bouncing_balls.gif
    python3 make_relational_nem_bouncing_balls_gif.py --sample 2 --fps 6 --frame-size 160
    python3 make_relational_nem_bouncing_balls_gif.py --pixels pixels_curtain.json --out relational_nem_pixels.gif
"""
import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

DEFAULT_RUN = "run_simulator.json"      # the headline GIF: the simulator recipe
DEFAULT_OUT = "relational_nem_bouncing_balls.gif"
PANELS = ("truth", "non_relational", "relational")
# RGB of the balls in each panel, and of the strip above it that names the panel by colour
PANEL_COLOURS = {"truth": (40, 40, 40), "non_relational": (214, 39, 40), "relational": (44, 160, 44)}
BACKGROUND = (250, 250, 250)
GHOST_COLOUR = (215, 215, 215)     # the true balls, drawn faintly under each model's balls
GAP = 6                 # pixels between panels
STRIP = 6               # height of the colour strip above each panel
PROGRESS = 4            # height of the progress bar under the panels
TITLE = 14              # height of the panel titles above the strips, and of the step line below
FPS_RANGE = (0.1, 50.0)  # a GIF frame lasts 1/fps s, stored in hundredths: 10 s at most, 0.02 s at least
TEMP_PREFIX = ".tmp-"
LEVELS = 6              # anti-aliasing levels of a ball edge; frames are palette-indexed and the
                        # GIF writer remaps a palette in time ~ its size squared: keep it small


class InputError(ValueError):
    """A missing or malformed input file; reported on one line with exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def load_run(path: str, need=("samples",), option: str = "--run") -> dict:
    """Reads run.json and checks the keys this script needs (InputError otherwise)."""
    if not os.path.isfile(path):
        script = "relational_nem_pixels.py" if option == "--pixels" else "relational_nem_bouncing_balls.py"
        raise InputError(f"{option} {path}: file not found; produce it with python3 {script}")
    try:
        with open(path) as f:
            run = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{option} {path}: not valid JSON ({err.msg if hasattr(err, 'msg') else err})")
    except OSError as err:
        raise InputError(f"{option} {path}: cannot be read ({err.strerror})")
    if not isinstance(run, dict):
        raise InputError(f"{option} {path}: expected a JSON object with keys {', '.join(need)}")
    if "error" in run:                           # a per-seed file of a seed whose training failed
        raise InputError(f"{option} {path}: seed {run.get('seed')!r} failed ({run['error']}); it holds no results "
                         f"to draw")
    return require_keys(run, need, path, option)


def require_keys(run: dict, need, path: str, option: str = "--run") -> dict:
    """run itself when it has every key in `need` (InputError naming the missing ones otherwise)."""
    missing = [key for key in need if key not in run]
    if missing:
        script = "relational_nem_pixels.py" if option == "--pixels" else "relational_nem_bouncing_balls.py"
        raise InputError(f"{option} {path}: missing key(s) {', '.join(missing)}; regenerate it with python3 {script}")
    return run


def check_samples(samples, path: str, names=PANELS) -> dict:
    """The `samples` section with the types the pictures need: arrays (T, S, K, D) of finite
    numbers of one shape for the truth and each model, T >= 2, D = 4 or 5 (the radius of each
    ball last), and a radius in (0, 0.25).
    Returns {name: float array} (InputError naming what is wrong otherwise)."""
    def bad(what):
        raise InputError(f"--run {path}: malformed samples ({what}); regenerate it with "
                         f"python3 relational_nem_bouncing_balls.py")

    if not isinstance(samples, dict):
        bad("samples must be an object")
    radius = samples.get("radius")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 < radius < 0.25:
        bad(f"radius must be a number in (0, 0.25), got {radius!r}")
    arrays = {}
    for name in names:
        try:
            array = np.asarray(samples[name], dtype=float)
        except KeyError:
            bad(f"no {name}")
        except (TypeError, ValueError):
            bad(f"{name} is not an array of numbers")
        if array.ndim != 4 or array.shape[-1] not in (4, 5) or len(array) < 2 or not np.isfinite(array).all():
            bad(f"{name} must be finite numbers of shape (T >= 2, sequences, K, 4 or 5), got shape {array.shape}")
        if array.shape[-1] == 5 and not ((array[..., 4] > 0) & (array[..., 4] < 0.25)).all():
            bad(f"{name}: every radius (fifth component) must be in (0, 0.25)")
        if arrays and array.shape != next(iter(arrays.values())).shape:
            bad(f"{name} has shape {array.shape}, the truth {arrays['truth'].shape}")
        arrays[name] = array
    return arrays


def check_out_file(path: str, option: str = "--out") -> None:
    if path.strip() == "":
        raise InputError(f"{option} must be a file path (got '')")
    if path.endswith(os.sep) or os.path.isdir(path):
        raise InputError(f"{option} {path} is a folder; give a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{option} {path}: folder {folder} is not writable")


def write_atomic(path: str, write, suffix: str) -> None:
    """write(temporary path) in the target folder, then rename it into place: an interrupted or
    failed write leaves the previous file whole and no temporary file behind."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def disk_coverage(positions: np.ndarray, radius, size: int) -> np.ndarray:
    """Fraction of each pixel covered by any ball: positions (T, K, 2) in box units ([0, 1]^2,
    y up), radius one number or (T, K) per ball -> (T, size, size) in [0, 1], approximated by
    clip(radius_px - distance_px + 0.5, 0, 1).

    Each ball is evaluated only on its bounding box of pixels, then max-combined into the frame.
    """
    T, K, _ = positions.shape
    r_px = np.broadcast_to(np.asarray(radius, float) * size, (T, K))        # (T, K)
    half = int(np.ceil(r_px.max())) + 1
    width = 2 * half + 1
    cx = positions[..., 0] * size                                           # (T, K) pixel coordinates
    cy = (1.0 - positions[..., 1]) * size                                   # image rows run downwards
    x0 = np.floor(cx).astype(int) - half                                    # box origin
    y0 = np.floor(cy).astype(int) - half
    offsets = np.arange(width) + 0.5                                        # pixel centres within the box
    dx2 = (x0[..., None] + offsets - cx[..., None]) ** 2                    # (T, K, width)
    dy2 = (y0[..., None] + offsets - cy[..., None]) ** 2
    sprites = np.clip(r_px[..., None, None] - np.sqrt(dy2[..., :, None] + dx2[..., None, :]) + 0.5, 0.0, 1.0)
    pad = width                                                             # balls may sit outside the box
    cover = np.zeros((T, size + 2 * pad, size + 2 * pad))
    for t in range(T):
        for k in range(K):
            x, y = x0[t, k] + pad, y0[t, k] + pad
            if 0 <= x <= size + pad and 0 <= y <= size + pad:               # skip balls far outside the frame
                region = cover[t, y:y + width, x:x + width]
                np.maximum(region, sprites[t, k], out=region)
    return cover[:, pad:pad + size, pad:pad + size]


def radii_of(states: np.ndarray, radius: float):
    """The radius to draw the balls of states (T, K, D) with: (T, K) from D = 5, else `radius`."""
    return states[..., 4] if states.shape[-1] == 5 else radius


def panel_palette(colour) -> np.ndarray:
    """(LEVELS^2, 3) RGB of every (ghost level g, ball level b): the background blended with
    GHOST_COLOUR by g / (LEVELS - 1), then with `colour` by b / (LEVELS - 1); row = g * LEVELS + b."""
    level = np.arange(LEVELS) / (LEVELS - 1)
    bg, ghost, ball = (np.array(c, float) for c in (BACKGROUND, GHOST_COLOUR, colour))
    under = bg + level[:, None] * (ghost - bg)                              # (LEVELS, 3)
    rgb = under[:, None, :] + level[None, :, None] * (ball - under[:, None, :])
    return rgb.reshape(-1, 3).round().astype(np.uint8)


def render_levels(positions: np.ndarray, radius, size: int, ghost=None) -> np.ndarray:
    """Palette rows (T, size, size) of panel_palette: balls at `positions` (T, K, 2) over
    `ghost` (T, K, 2) balls, e.g. the true positions, each quantised to LEVELS coverage levels
    (radius: one number, or (T, K) per ball)."""
    levels = np.rint(disk_coverage(positions, radius, size) * (LEVELS - 1)).astype(np.uint8)
    if ghost is not None:
        levels += LEVELS * np.rint(disk_coverage(ghost, radius, size) * (LEVELS - 1)).astype(np.uint8)
    return levels


def render_frames(positions: np.ndarray, radius, size: int, colour, ghost=None) -> np.ndarray:
    """Anti-aliased balls of `colour` on a light background, uint8 RGB frames (T, size, size, 3);
    `ghost` (T, K, 2), e.g. the true positions, is drawn faintly underneath."""
    return panel_palette(colour)[render_levels(positions, radius, size, ghost)]


def text_mask(text: str, width: int, height: int = TITLE) -> np.ndarray:
    """(height, width) bool: `text` in PIL's default font, left-aligned and vertically centred."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    image = Image.new("L", (width, height), 0)
    top = font.getbbox(text)[1]
    ImageDraw.Draw(image).text((1, (height - font.getbbox(text)[3] - top) // 2), text, fill=255, font=font)
    return np.asarray(image) > 90


def compose(panels: list, colours: list, titles: list, footer=None):
    """Palette-indexed GIF frames: panels (T, S, S) of render_levels side by side, each under its
    title and a colour strip, a progress bar below, and footer(t) (one line of text per frame)
    under it. Returns (frames (T, H, W) uint8, palette (n, 3) uint8)."""
    T, S = panels[0].shape[:2]
    n_panel = LEVELS * LEVELS
    extra = np.array([(255, 255, 255), (120, 120, 120), (90, 90, 90), (0, 0, 0)] + list(colours), np.uint8)
    palette = np.concatenate([panel_palette(c) for c in colours] + [extra])
    white, outline, bar, ink = len(colours) * n_panel + np.arange(4)
    width = len(panels) * S + (len(panels) - 1) * GAP
    top = TITLE + STRIP                                                     # first row of the panels
    frames = np.full((T, top + S + PROGRESS + (TITLE if footer else 0), width), white, np.uint8)
    for i, (panel, title) in enumerate(zip(panels, titles)):
        x0 = i * (S + GAP)
        frames[:, :TITLE, x0:x0 + S][:, text_mask(title, S)] = ink            # panel title
        frames[:, TITLE:top - 2, x0:x0 + S] = len(colours) * n_panel + 4 + i  # colour strip
        frames[:, top:top + S, x0:x0 + S] = panel + i * n_panel
        frames[:, top:top + S, [x0, x0 + S - 1]] = outline
        frames[:, [top, top + S - 1], x0:x0 + S] = outline
    for t in range(T):                                                      # progress bar: step t of T
        frames[t, top + S:top + S + PROGRESS, :int(round(width * (t + 1) / T))] = bar
        if footer:
            frames[t, top + S + PROGRESS:][text_mask(footer(t), width)] = ink
    return frames, palette


def panel_titles(config: dict) -> dict:
    """Panel name -> title; the relational model is named with its aggregator."""
    config = config if isinstance(config, dict) else {}
    if config.get("recipe") == "simulator":
        return {"truth": "ground truth", "non_relational": "per-ball simulator", "relational": "relational simulator"}
    agg = config.get("agg", "mean")
    return {"truth": "ground truth", "non_relational": "per-ball (non-rel.)",
            "relational": f"relational ({agg if isinstance(agg, str) else '?'})"}


def build_frames(samples: dict, sample: int, size: int, config: dict | None = None, path: str = "run.json"):
    """GIF frames (T, H, W) palette indices and their palette for one stored sample sequence."""
    arrays = check_samples(samples, path)
    truth = arrays["truth"][:, sample, :, :2]                                  # (T, K, 2)
    T, K = truth.shape[:2]
    radius = radii_of(arrays["truth"][:, sample], samples["radius"])
    panels = [render_levels(arrays[name][:, sample, :, :2], radius, size,
                            ghost=None if name == "truth" else truth) for name in PANELS]
    titles = panel_titles(config or {})
    return compose(panels, [PANEL_COLOURS[name] for name in PANELS], [titles[name] for name in PANELS],
                   footer=lambda t: f"step {t}/{T - 1}   K = {K}   closed loop from step 0")


# ----------------------------------------------------------------------------- pixels (relational_nem_pixels.py)
COMPONENT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                     (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127), (0, 0, 128), (128, 0, 0),
                     (0, 128, 128), (128, 128, 0), (255, 0, 255), (0, 0, 0))      # component k's colour
COMPONENT_CHARS = "0123456789abcdef"                                          # as relational_nem_pixels.py writes them
CURTAIN_COLOUR = (255, 222, 215)        # the pixels no frame shows
HIDDEN_COLOUR = (200, 200, 200)         # the part of a true ball behind the curtain
PIXEL_KEYS = ("size", "truth", "radii", "hidden_fraction", "collisions", "visible", "frames", "prediction_component",
              "prediction_level", "gamma_component", "gamma_level")


def decode_rows(rows, size: int, what: str, path: str, alphabet: str) -> np.ndarray:
    """(size, size) int from rows of characters: the character's index in alphabet ("." = -1)."""
    if not isinstance(rows, list) or len(rows) != size or any(not isinstance(r, str) or len(r) != size for r in rows):
        raise InputError(f"--pixels {path}: {what} must be {size} rows of {size} characters")
    lookup = {c: i for i, c in enumerate(alphabet)} | {".": -1}
    try:
        return np.array([[lookup[c] for c in row] for row in rows])
    except KeyError as err:
        raise InputError(f"--pixels {path}: {what} has the character {err.args[0]!r} (expected {alphabet} or .)")


def pixel_sample(run: dict, path: str) -> dict:
    """The sample sequence of a relational_nem_pixels.py result, decoded into arrays (InputError
    when anything the pictures read is missing or malformed)."""
    sample = require_keys(run, ("config", "sample"), path, "--pixels")["sample"]
    if not isinstance(sample, dict) or any(key not in sample for key in PIXEL_KEYS):
        raise InputError(f"--pixels {path}: sample must hold {', '.join(PIXEL_KEYS)}")
    size = sample["size"]
    if not isinstance(size, int) or not 8 <= size <= 512:
        raise InputError(f"--pixels {path}: sample size must be an integer in [8, 512] (got {size!r})")
    T = len(sample["frames"]) if isinstance(sample["frames"], list) else 0
    try:
        truth = np.asarray(sample["truth"], float)                                  # (T, B, 2)
        radii = np.asarray(sample["radii"], float)                                  # (B,)
        hidden = np.asarray(sample["hidden_fraction"], float)                       # (T, B)
        collisions = np.asarray(sample["collisions"], bool)                         # (T, B)
    except (TypeError, ValueError):
        raise InputError(f"--pixels {path}: truth, radii, hidden_fraction and collisions must be arrays of numbers")
    if T < 2 or truth.shape[0] != T or truth.ndim != 3 or truth.shape[2] != 2 or radii.shape != truth.shape[1:2] \
            or hidden.shape != truth.shape[:2] or collisions.shape != truth.shape[:2] or not np.isfinite(truth).all() \
            or not ((radii > 0) & (radii < 0.5)).all():
        raise InputError(f"--pixels {path}: sample truth must be (T >= 2, B, 2) finite, radii (B,) in (0, 0.5), "
                         f"hidden_fraction and collisions (T, B)")
    for key, n in (("prediction_component", T - 1), ("prediction_level", T - 1), ("gamma_component", T),
                   ("gamma_level", T)):
        if not isinstance(sample[key], list) or len(sample[key]) != n:
            raise InputError(f"--pixels {path}: {key} must hold {n} maps")
    rows = lambda key, alphabet: np.array([decode_rows(m, size, key, path, alphabet) for m in sample[key]])  # noqa: E731
    return {"size": size, "truth": truth, "radii": radii, "hidden_fraction": hidden, "collisions": collisions,
            "visible": decode_rows(sample["visible"], size, "visible", path, "01") == 1,
            "frames": rows("frames", "01") == 1,
            "prediction_component": rows("prediction_component", COMPONENT_CHARS),
            "prediction_level": rows("prediction_level", "0123456789"),
            "gamma_component": rows("gamma_component", COMPONENT_CHARS),
            "gamma_level": rows("gamma_level", "0123456789"),
            "renderer": str(sample.get("renderer", "?")), "dynamics": str(sample.get("dynamics", "?"))}


def component_rgb(component: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(..., S, S, 3) floats in [0, 1]: white, tinted towards component k's colour by level / 9."""
    colours = np.array(COMPONENT_COLOURS + ((255, 255, 255),), float) / 255          # index -1: white
    amount = np.where(component >= 0, level / 9.0, 0.0)[..., None]
    return 1.0 - amount * (1.0 - colours[component])


def gamma_rgb(px: dict) -> np.ndarray:
    """(T, S, S, 3): every lit pixel of the frame tinted by the component gamma gives it most (by
    how much); unlit pixels white (there the components and the background share gamma)."""
    return component_rgb(np.where(px["frames"], px["gamma_component"], -1), px["gamma_level"])


def truth_rgb(px: dict) -> np.ndarray:
    """(T, S, S, 3): the true balls, dark where a frame shows them and light grey behind the
    curtain, on white, the curtain pale red."""
    size, hidden = px["size"], ~px["visible"]
    cover = disk_coverage(px["truth"], np.broadcast_to(px["radii"], px["truth"].shape[:2]), size)   # (T, S, S)
    image = np.ones(cover.shape + (3,))
    image[:, hidden] = np.array(CURTAIN_COLOUR) / 255
    ball = np.where(hidden[..., None], np.array(HIDDEN_COLOUR) / 255, 0.15)           # (S, S, 3)
    return image * (1 - cover[..., None]) + ball * cover[..., None]


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def build_pixel_frames(px: dict, frame_size: int) -> np.ndarray:
    """RGB GIF frames (T - 1, H, W, 3) uint8: per frame t >= 1 the truth (curtain pale red), the
    prediction max_k psi_k made before frame t, and gamma after frame t's EM, coloured by component."""
    factor = max(1, frame_size // px["size"])
    S = px["size"] * factor
    panels = [truth_rgb(px)[1:], component_rgb(px["prediction_component"], px["prediction_level"]),
              gamma_rgb(px)[1:]]
    titles = ["truth (frame t)", "prediction of t", "gamma after EM"]
    T = len(panels[0])
    width = len(panels) * S + (len(panels) - 1) * GAP
    frames = np.full((T, TITLE + S + PROGRESS + TITLE, width, 3), 255, np.uint8)
    for i, (panel, title) in enumerate(zip(panels, titles)):
        x0 = i * (S + GAP)
        frames[:, :TITLE, x0:x0 + S][:, text_mask(title, S)] = 0
        frames[:, TITLE:TITLE + S, x0:x0 + S] = (upscale(panel, factor) * 255).round().astype(np.uint8)
        frames[:, TITLE:TITLE + S, [x0, x0 + S - 1]] = frames[:, [TITLE, TITLE + S - 1], x0:x0 + S] = 120   # outline
    for t in range(T):
        frames[t, TITLE + S:TITLE + S + PROGRESS, :int(round(width * (t + 1) / T))] = 90
        footer = f"frame {t + 1}/{T}  {px['renderer']} renderer, {px['dynamics']}"
        frames[t, TITLE + S + PROGRESS:][text_mask(footer, width)] = 0
    return frames


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help=f"result JSON written by the main script (default: {DEFAULT_RUN})")
    parser.add_argument("--pixels", default="", help="a result JSON of relational_nem_pixels.py instead: its sample "
                                                     "sequence as truth | prediction | gamma (--sample does not apply)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output GIF path (default: {DEFAULT_OUT})")
    parser.add_argument("--sample", type=int, default=0, help="which stored sample sequence to animate (default: 0)")
    parser.add_argument("--fps", type=float, default=8.0,
                        help=f"frames per second, in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}] (default: 8)")
    parser.add_argument("--frame-size", type=int, default=160,
                        help="pixel size of each square panel, in [64, 1024] (default: 160)")
    args = parser.parse_args(argv)
    try:
        if args.pixels and args.run is not None:
            raise InputError("--run and --pixels: give one of them (--pixels draws a pixel result, --run a run.json)")
        args.run = args.run or DEFAULT_RUN
        if not args.out.lower().endswith(".gif"):
            raise InputError(f"--out must be a file path ending in .gif (got {args.out!r})")
        if not (math.isfinite(args.fps) and FPS_RANGE[0] <= args.fps <= FPS_RANGE[1]):
            raise InputError(f"--fps must be in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}] (got {args.fps})")
        if not 64 <= args.frame_size <= 1024:
            raise InputError(f"--frame-size must be in [64, 1024] pixels (got {args.frame_size})")
        check_out_file(args.out)
        if args.pixels:
            frames = build_pixel_frames(pixel_sample(load_run(args.pixels, ("sample",), "--pixels"), args.pixels),
                                        args.frame_size)
            palette = None
        else:
            run = load_run(args.run)
            arrays = check_samples(run["samples"], args.run)
            n = arrays["truth"].shape[1]
            if not 0 <= args.sample < n:
                raise InputError(f"--sample must be in [0, {n - 1}] for this run.json (got {args.sample})")
            frames, palette = build_frames(run["samples"], args.sample, args.frame_size, run.get("config"), args.run)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import imageio.v3 as iio

    if palette is None:                          # RGB frames: the GIF writer quantises them
        write_atomic(args.out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / args.fps,
                                                       loop=0), ".gif")
        print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px (truth, the "
              f"prediction before each frame, gamma after its EM; colour = component, pale red = the curtain)")
        return 0
    # palette-indexed frames with their palette: the GIF writer has nothing to quantise
    write_atomic(args.out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", mode="P",
                                                   palette=palette.tobytes(), duration=1000.0 / args.fps, loop=0),
                 ".gif")
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px "
          f"(dark = ground truth, red = non-relational, green = relational; "
          f"light grey = true positions under each model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
