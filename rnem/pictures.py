"""Pictures of balls and of components shared by the figure and GIF scripts: anti-aliased disks
(numpy, no plotting library), the colours that name the models, and a pixel run's frames
coloured by component."""
from __future__ import annotations

import numpy as np

# RGB of the balls in each panel, and of the strip above it that names the panel by colour
PANEL_COLOURS = {"truth": (40, 40, 40), "non_relational": (214, 39, 40), "relational": (44, 160, 44)}
BACKGROUND = (250, 250, 250)
GHOST_COLOUR = (215, 215, 215)     # the true balls, drawn faintly under each model's balls
LEVELS = 6              # anti-aliasing levels of a ball edge; frames are palette-indexed and the
                        # GIF writer remaps a palette in time ~ its size squared: keep it small
COMPONENT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                     (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127), (0, 0, 128), (128, 0, 0),
                     (0, 128, 128), (128, 128, 0), (255, 0, 255), (0, 0, 0))      # component k's colour
CURTAIN_COLOUR = (255, 222, 215)        # the pixels no frame shows
HIDDEN_COLOUR = (200, 200, 200)         # the part of a true ball behind the curtain


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


def panel_titles(config: dict) -> dict:
    """Panel name -> title; the relational model is named with its aggregator."""
    config = config if isinstance(config, dict) else {}
    if config.get("recipe") == "simulator":
        return {"truth": "ground truth", "non_relational": "non-relational simulator", "relational": "relational simulator"}
    agg = config.get("agg", "mean")
    return {"truth": "ground truth", "non_relational": "non-relational",
            "relational": f"relational ({agg if isinstance(agg, str) else '?'})"}


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


# the figures' resolution and matplotlib style
DPI = 90
# titles at a fixed height above their axes (no figure has tick labels on top: spares matplotlib
# a search for overlaps that costs a tenth of the drawing time); tick labels as plain numbers,
# never an offset ("1e-12+1e0") printed over a title
STYLE = {"axes.titley": 1.0, "axes.formatter.useoffset": False}
