"""Side-by-side GIF of one stored rollout: ground truth | non-relational | relational; or, with
--pixels, of relational_nem_pixels.py's sample sequence: truth | prediction | gamma by component;
with --network, of relational_nem_network.py's: truth | prediction | psi | gamma by component.

Reads the `samples` of run.json (written by relational_nem_bouncing_balls.py); one GIF
frame per rollout step, rendered with numpy, titled with PIL's default font (imageio's own
dependency) and written with imageio to a temporary file that is renamed into place.

    python3 make_relational_nem_bouncing_balls_gif.py                 # run.json -> relational_nem_bouncing_balls.gif
    python3 make_relational_nem_bouncing_balls_gif.py --run results/run_simulator.json --out viz/simulator/rollout.gif
    python3 make_relational_nem_bouncing_balls_gif.py --sample 2 --fps 6 --frame-size 160 --out my.gif
    python3 make_relational_nem_bouncing_balls_gif.py --pixels results/pixels_curtain.json --out viz/pixels/curtain.gif
    python3 make_relational_nem_bouncing_balls_gif.py --network results/network/r_nem_seed0.json --out viz/network/r_nem.gif
"""
import math
import sys

import numpy as np

from rnem.cli import ConfigError, HelpFormatter, OneLineParser
from rnem.entry import run_main
from rnem import provenance
from rnem.files import check_output_path, write_atomic
from rnem.pictures import (LEVELS, PANEL_COLOURS, component_rgb, gamma_rgb, panel_palette, panel_titles, radii_of,
                           render_levels, truth_rgb)
from rnem.result_files import PANELS, check_samples, load_run, network_sample, pixel_sample

DEFAULT_RUN = "run.json"                # the design card's run -> the headline GIF
DEFAULT_OUT = "runs/relational_nem_bouncing_balls.gif"   # git-ignored (regenerate.sh names the committed one)
GAP = 6                 # pixels between panels
STRIP = 6               # height of the colour strip above each panel
PROGRESS = 4            # height of the progress bar under the panels
TITLE = 14              # height of the panel titles above the strips, and of the step line below
WORD_GAP = 4            # pixels between the words of a title
FPS_RANGE = (0.1, 50.0)  # a GIF frame lasts 1/fps s, stored in hundredths: 10 s at most, 0.02 s at least


def text_mask(text: str, width: int, height: int = TITLE) -> np.ndarray:
    """(height, width) bool: `text` in PIL's default font, left-aligned and vertically centred."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    image = Image.new("L", (width, height), 0)
    top = font.getbbox(text)[1]
    draw, x, y = ImageDraw.Draw(image), 1, (height - font.getbbox(text)[3] - top) // 2
    for word in text.split(" "):               # word by word: the font's own space (2 px) vanishes once thresholded
        draw.text((x, y), word, fill=255, font=font)
        x += font.getlength(word) + WORD_GAP
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
def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def panel_frames(panels: list, titles: list, footers: list, frame_size: int) -> np.ndarray:
    """RGB GIF frames (T, H, W, 3) uint8 of square panels side by side, each (T, S, S, 3) floats in
    [0, 1] upscaled to about frame_size, titled, with a progress bar and a footer line per frame."""
    factor = max(1, frame_size // panels[0].shape[1])
    S = panels[0].shape[1] * factor
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
        frames[t, TITLE + S + PROGRESS:][text_mask(footers[t], width)] = 0
    return frames


def build_pixel_frames(px: dict, frame_size: int) -> np.ndarray:
    """RGB GIF frames (T - 1, H, W, 3) uint8: per frame t >= 1 the truth (curtain pale red), the
    prediction max_k psi_k made before frame t, and gamma after frame t's EM, coloured by component."""
    panels = [truth_rgb(px)[1:], component_rgb(px["prediction_component"], px["prediction_level"]),
              gamma_rgb(px)[1:]]
    T = len(panels[0])
    footers = [f"frame {t + 1}/{T}  {px['renderer']} renderer, {px['dynamics']}" for t in range(T)]
    return panel_frames(panels, ["truth (frame t)", "prediction of t", "gamma after EM"], footers, frame_size)


def build_network_frames(ns: dict, kind: str, frame_size: int) -> np.ndarray:
    """RGB GIF frames (T - 1, H, W, 3) uint8 of relational_nem_network.py's sample: per frame t >= 1
    the truth, the real prediction sum_k gamma psi_k made before frame t, each pixel of psi in the
    colour of the component that predicts it most, and gamma on the frame's lit pixels."""
    frames = ns["frames"][1:]                                                           # (T-1, S, S)
    psi_max, psi_arg = ns["psi"].max(axis=1), ns["psi"].argmax(axis=1)                  # (T-1, S, S)
    panels = [truth_rgb(ns)[1:], np.repeat(1.0 - ns["prediction"][..., None], 3, axis=-1),
              component_rgb(psi_arg, 9 * psi_max),
              component_rgb(np.where(frames, ns["gamma"].argmax(axis=1), -1), 9 * ns["gamma"].max(axis=1))]
    T = len(frames)
    footers = [f"frame {t + 1}/{T}  {kind}" + ("  (collision)" if ns["collisions"][t].any() else "") for t in range(T)]
    return panel_frames(panels, ["truth (frame t)", "prediction of t", "psi by component", "gamma"], footers,
                        frame_size)


def command(argv) -> int:
    """The CLI's work (bad input raises ConfigError before anything is written)."""
    parser = OneLineParser(description=" ".join(__doc__.split("\n\n")[0].split()), formatter_class=HelpFormatter,
                           epilog="examples:\n" + __doc__.split("\n\n")[-1].rstrip('"\n'))
    parser.add_argument("--run", default=None, help=f"result JSON written by the main script (default: {DEFAULT_RUN})")
    parser.add_argument("--pixels", default="", help="a result JSON of relational_nem_pixels.py instead: its sample "
                                                     "sequence as truth | prediction | gamma (--sample does not apply)")
    parser.add_argument("--network", default="", help="a result JSON of relational_nem_network.py (run with --sample) "
                                                      "instead: truth | prediction | psi | gamma")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output GIF path (default: {DEFAULT_OUT})")
    parser.add_argument("--sample", type=int, default=0, help="which stored sample sequence to animate (default: 0)")
    parser.add_argument("--fps", type=float, default=8.0,
                        help=f"frames per second, in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}] (default: 8)")
    parser.add_argument("--frame-size", type=int, default=160,
                        help="pixel size of each square panel, in [64, 1024] (default: 160)")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.pixels, args.network, args.run is not None))) > 1:
        raise ConfigError("--run, --pixels and --network: give one of them (--pixels draws a pixel result, "
                          "--network a network result, --run a run.json)")
    args.run = args.run or DEFAULT_RUN
    if not args.out.lower().endswith(".gif"):
        raise ConfigError(f"--out must be a file path ending in .gif (got {args.out!r})")
    if not (math.isfinite(args.fps) and FPS_RANGE[0] <= args.fps <= FPS_RANGE[1]):
        raise ConfigError(f"--fps must be in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}] (got {args.fps})")
    if not 64 <= args.frame_size <= 1024:
        raise ConfigError(f"--frame-size must be in [64, 1024] pixels (got {args.frame_size})")
    check_output_path(args.out, "--out")
    if args.pixels:
        source = args.pixels
        frames = build_pixel_frames(pixel_sample(load_run(args.pixels, ("sample",), "--pixels"), args.pixels),
                                    args.frame_size)
        palette = None
    elif args.network:
        source = args.network
        run = load_run(args.network, ("config", "test"), "--network")
        frames = build_network_frames(network_sample(run, args.network), str(run["config"].get("kind")),
                                      args.frame_size)
        palette = None
    else:
        source = args.run
        run = load_run(args.run)
        arrays = check_samples(run["samples"], args.run)
        n = arrays["truth"].shape[1]
        if not 0 <= args.sample < n:
            raise ConfigError(f"--sample must be in [0, {n - 1}] for this run.json (got {args.sample})")
        frames, palette = build_frames(run["samples"], args.sample, args.frame_size, run.get("config"), args.run)
    import imageio.v3 as iio

    comment = provenance.record(source).encode()  # what the GIF was drawn from (rnem.provenance)
    if palette is None:                          # RGB frames: the GIF writer quantises them
        write_atomic(args.out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / args.fps,
                                                       loop=0, comment=comment), ".gif")
        print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px (truth, the "
              f"prediction before each frame, {'psi and ' if args.network else ''}gamma"
              f"{'' if args.network else ' after its EM'}; colour = component, pale red = the curtain)")
        return 0
    # palette-indexed frames with their palette: the GIF writer has nothing to quantise
    write_atomic(args.out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", mode="P",
                                                   palette=palette.tobytes(), duration=1000.0 / args.fps, loop=0,
                                                   comment=comment),
                 ".gif")
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} px "
          f"(dark = ground truth, red = non-relational, green = relational; "
          f"light grey = true positions under each model)")
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 130 / 143 stopped by SIGINT / SIGTERM (no partial file)."""
    return run_main(lambda: command(argv))


if __name__ == "__main__":
    sys.exit(main())
