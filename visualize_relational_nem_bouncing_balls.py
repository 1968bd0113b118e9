"""Static figures of a run: reads run.json, writes PNGs into viz/.

    python3 visualize_relational_nem_bouncing_balls.py                      # run.json -> viz/
    python3 visualize_relational_nem_bouncing_balls.py --run other.json --out other_viz

Figures of a run: training_curves.png, rollout_errors.png, extrapolation_summary.png,
sample_trajectories.png, rendered_frames.png, collision_metrics.png, long_horizon.png.
Figures of a sweep summary (--run results/sweep.json): sweep_summary.png, sweep_wins.png.
Figures of a relational_nem_pixels.py result (--pixels results/pixels.json): pixels_frames.png (the
paper's Figure 2 analogue; Figure 5's with a curtain) and, for the learned renderer, *_renderer.png.
Figures of the paper's network (--network results/network/r_nem_seed0.json): *_frames.png (its
Figure 2, or 5 with a curtain), *_simulation.png (Figure 4, left); of their summary (--network
results/network_summary.json): network_comparison.png (Figure 3), network_simulation.png (Figure 4).
Of interactions learned from frames (--interactions results/interactions.json): interactions_horizon.png;
of one seed (--interactions results/interactions_seed0.json): *_tracks.png.
"""
import multiprocessing
import os
import signal
import sys

import numpy as np

from rnem.cli import ConfigError, HelpFormatter, OneLineParser
from rnem.entry import run_main
from rnem import provenance
from rnem.files import TEMP_PREFIX, check_folder_writable
from rnem.frame_figures import interactions_figures, network_figures, pixel_figures
from rnem.pictures import DPI, STYLE, PANEL_COLOURS, panel_titles, radii_of, render_frames
from rnem.result_files import check_samples, load_run, require_keys

DEFAULT_RUN = "run.json"
DEFAULT_OUT = "runs/viz"      # git-ignored: regenerate.sh names viz/ for the committed figures
MODELS = ("non_relational", "relational")
LABELS = {"truth": "ground truth", "non_relational": "non-relational", "relational": "relational"}
COLOURS = {name: tuple(c / 255 for c in rgb) for name, rgb in PANEL_COLOURS.items()}
METRICS = {   # key -> axis label naming what it computes
    "vel_err": "velocity: mean Euclidean error |d(vx, vy)|",
    "vel_mse": "velocity: per-element MSE",
    "pos_err": "position: mean Euclidean error |d(x, y)|",
    "pos_mse": "position: per-element MSE",
}
LOG_SPAN = 50            # bars whose values span more than this factor get a log axis
COINCIDE = 0.02          # two curves closer than this (relative to their size) everywhere coincide
K_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)), (0, (3, 1, 3, 4)))
NEEDED = ("config", "history", "rollout", "one_step", "long_horizon", "samples")
SWEEP_NEEDED = ("seeds", "n_seeds", "metrics", "summary", "wins")


def variant_note(data) -> str:
    """What a figure shows, for its title: the relational model's aggregator and training K (a
    run), or the variant a sweep figure draws."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    k_train = config.get("k_train", "?")
    k_text = ",".join(map(str, k_train)) if isinstance(k_train, list) else k_train
    masses = ", balls with mass" if config.get("masses") else ""
    if "shown_variant" in data:
        return f"[variant shown: {data['shown_variant']}, trained on K={k_text}{masses}]"
    if config.get("recipe") == "simulator":
        return f"[simulator recipe, trained on K={k_text}{masses}]"
    return f"[relational: {config.get('agg', 'mean')} aggregator, trained on K={k_text}]"


def suptitle(fig, data, text, **kw):
    """The figure title, ending with variant_note(data)."""
    return fig.suptitle(f"{text} {variant_note(data)}", **kw)


def sorted_ks(keys) -> list:
    """K keys of a result section ("4", "3", ...) in increasing order."""
    return sorted(keys, key=int)


def training_curves(run, plt):
    """Training loss and validation MSE per epoch; one validation panel when the BPTT length is 1
    (the closed-loop validation is then the one-step one)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
    t_bptt = run["config"]["t_bptt"]
    keys = [("train_loss", f"train loss ({t_bptt}-step BPTT, per-element MSE)" if t_bptt > 1 else
             "train loss (one-step, per-element MSE)"), ("val_mse_1step", "validation 1-step MSE (teacher-forced)")]
    if t_bptt > 1:
        keys.append(("val_mse_bptt", f"validation {t_bptt}-step closed-loop MSE"))
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4.2),
                             gridspec_kw=dict(left=0.15 / len(keys), right=0.99, bottom=0.13, top=0.84, wspace=0.25))
    for ax, (key, title) in zip(axes, keys):
        for model in MODELS:
            h = run["history"][model]
            ax.plot(h["epoch"], h[key], color=COLOURS[model], label=LABELS[model])
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))   # labelled ticks within a decade
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))          # plain numbers: mathtext is slow to draw
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("per-element MSE")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend()
    suptitle(fig, run, f"Training curves (seed {run['config']['seed']}, K = {run['config']['k_train']})")
    return fig


def plot_curves(ax, curves) -> bool:
    """Draws curves [(y, plot keywords)] in order; a curve that coincides with a later one of the
    same line style (same K; within COINCIDE of its largest value everywhere) is drawn wider
    beneath it, so that both colours show instead of one, or a mix of the two.
    Returns whether any two coincided (the figure's legend then says how to read them)."""
    ys = [np.asarray(y, float) for y, _ in curves]
    coincided = False
    for i, (y, (_, kw)) in enumerate(zip(ys, curves)):
        scale = COINCIDE * max(float(np.abs(y).max(initial=0.0)), 1e-12)
        under = sum(curves[j][1].get("ls") == kw.get("ls") and ys[j].shape == y.shape
                    and bool(np.all(np.abs(ys[j] - y) <= scale)) for j in range(i + 1, len(ys)))
        coincided |= under > 0
        ax.plot(y, **{**kw, "lw": kw.get("lw", 1.2) + 2.2 * min(under, 2)})
    return coincided


def coincide_handle():
    """The legend entry that explains plot_curves' wide lines."""
    from matplotlib.lines import Line2D
    return Line2D([], [], color="grey", lw=4.0, label="wide line beneath another: the two coincide")


def rollout_errors(run, plt):
    """One panel per metric; colour = predictor (the two models, and the constant-velocity and
    uninformed levels), line style = evaluation K."""
    from matplotlib.lines import Line2D
    ks = sorted_ks(run["rollout"])
    names = [n for n in PREDICTOR_COLOURS if n in run["rollout"][ks[0]]]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True,
                             gridspec_kw=dict(left=0.08, right=0.98, bottom=0.07, top=0.84, wspace=0.2, hspace=0.12))
    coincided = False
    for ax, (metric, label) in zip(axes.ravel(), METRICS.items()):
        coincided |= plot_curves(ax, [(run["rollout"][k][name][metric],
                                       dict(ls=style, color=PREDICTOR_COLOURS[name], lw=1.3 if name in MODELS else 0.9))
                                      for k, style in zip(ks, K_STYLES) for name in names])
        ax.set_ylabel(label.replace(": ", ":\n"), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("closed-loop step")
    k_train = run["config"]["k_train"]
    handles = [Line2D([], [], color=PREDICTOR_COLOURS[n], label=PREDICTOR_LABELS[n]) for n in names]
    handles += [Line2D([], [], ls=s, color="black", label=f"K = {k}" + (" (train)" if int(k) == k_train else ""))
                for k, s in zip(ks, K_STYLES)]
    handles += [coincide_handle()] if coincided else []
    fig.legend(handles=handles, loc="upper center", ncols=5, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.945))
    n = run["config"]["n_eval"]
    suptitle(fig, run, f"Closed-loop rollout error per step from frame 0 (mean over {n} sequences and all balls)\n")
    return fig


def extrapolation_summary(run, plt):
    ks = sorted_ks(run["rollout"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), gridspec_kw=dict(left=0.08, right=0.98, bottom=0.08, top=0.88,
                                                                       wspace=0.22, hspace=0.35))
    x = np.arange(len(ks))
    for ax, (metric, label) in zip(axes.ravel(), METRICS.items()):
        values = {m: [run["rollout"][k][m][f"mean_{metric}"] for k in ks] for m in MODELS}
        for i, model in enumerate(MODELS):
            ax.bar(x + (i - 0.5) * 0.38, values[model], 0.38, color=COLOURS[model], label=LABELS[model])
        top = max(max(v) for v in values.values())
        for xi, a, b in zip(x, values["non_relational"], values["relational"]):
            ax.text(xi, max(a, b) + 0.02 * top, f"{b / a:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, top * 1.15)
        ax.set_xticks(x, [f"K={k}" + ("\n(train)" if int(k) == run["config"]["k_train"] else "") for k in ks])
        ax.set_ylabel(f"mean over steps of the\n{label.split(': ')[1]}", fontsize=9)
        ax.set_title(label.split(":")[0], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncols=2, fontsize=9, frameon=False)
    T = run["config"]["t_eval"]
    suptitle(fig, run, f"Mean closed-loop error over {T} steps (step 0 included) per evaluation K;\n"
                 f"numbers above bars = relational / non-relational", x=0.4)
    return fig


BALL_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
TRAJECTORY_STYLES = {"truth": dict(ls="-", lw=2.2, alpha=0.35), "non_relational": dict(ls="--", lw=1.1),
                     "relational": dict(ls="-", lw=1.1)}


def sample_trajectories(run, plt):
    """Centre paths of the stored sequences: colour = ball, line style = truth or model; a
    circle marks where every path starts, a cross where it ends."""
    from matplotlib.lines import Line2D
    samples = run["samples"]
    data = {name: np.asarray(samples[name], float) for name in ("truth",) + MODELS}   # (T, S, K, 4)
    n = data["truth"].shape[1]
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.9), squeeze=False,
                             gridspec_kw=dict(left=0.04, right=0.98, bottom=0.06, top=0.8, wspace=0.15))
    r = samples["radius"]
    for i, ax in enumerate(axes[0]):
        for name, style in TRAJECTORY_STYLES.items():
            traj = data[name][:, i, :, :2]                                    # (T, K, 2)
            for k in range(traj.shape[1]):
                colour = BALL_COLOURS[k % len(BALL_COLOURS)]
                ax.plot(traj[:, k, 0], traj[:, k, 1], color=colour, **style)
                ax.plot(*traj[-1, k], "x", color=colour, ms=6 if name == "truth" else 4, mew=1.5)
        for k, (x, y) in enumerate(data["truth"][0, i, :, :2]):
            ax.plot(x, y, "o", color=BALL_COLOURS[k % len(BALL_COLOURS)], ms=7, mec="black", mew=0.8)
        ax.add_patch(plt.Rectangle((r, r), 1 - 2 * r, 1 - 2 * r, fill=False, ls=":", color="grey"))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"sequence {samples['index'][i]}", fontsize=10)
    handles = [Line2D([], [], color="black", label=LABELS[name], **style) for name, style in TRAJECTORY_STYLES.items()]
    handles += [Line2D([], [], ls="", marker="o", color="grey", mec="black", label="start"),
                Line2D([], [], ls="", marker="x", color="grey", mew=1.5, label="end")]
    fig.legend(handles=handles, loc="upper center", ncols=5, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.9))
    suptitle(fig, run, f"Ball centres over {data['truth'].shape[0]} steps, K = {samples['K']}; colour = ball "
                       f"(dotted square: where centres can be)")
    return fig


def rendered_frames(run, plt, size=96, gap=4):
    """One image: rows = ground truth / non-relational / relational, columns = four steps."""
    samples = run["samples"]
    T = len(samples["truth"])
    steps = sorted({0, T // 3, 2 * T // 3, T - 1})
    truth = np.asarray(samples["truth"], float)[:, 0, :, :2]
    rows = ("truth",) + MODELS
    grid = np.full((len(rows) * (size + gap) - gap, len(steps) * (size + gap) - gap, 3), 255, np.uint8)
    radius = radii_of(np.asarray(samples["truth"], float)[steps, 0], samples["radius"])
    for row, name in enumerate(rows):
        pos = np.asarray(samples[name], float)[:, 0, :, :2]                  # (T, K, 2)
        frames = render_frames(pos[steps], radius, size, PANEL_COLOURS[name],
                               ghost=None if name == "truth" else truth[steps])
        for col, frame in enumerate(frames):
            y, x = row * (size + gap), col * (size + gap)
            grid[y:y + size, x:x + size] = frame
            grid[y:y + size, [x, x + size - 1]] = grid[[y, y + size - 1], x:x + size] = 150   # box outline
    label_in = 0.3 + 0.08 * max(len(LABELS[name]) for name in rows)       # inches for the row labels (font size 10)
    width = label_in + 2.0 * len(steps) + 0.1
    fig, ax = plt.subplots(figsize=(width, 6.6),
                           gridspec_kw=dict(left=label_in / width, right=0.99, bottom=0.01, top=0.88))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([col * (size + gap) + size / 2 for col in range(len(steps))], [f"step {t}" for t in steps])
    ax.xaxis.tick_top()
    ax.set_yticks([row * (size + gap) + size / 2 for row in range(len(rows))], [LABELS[name] for name in rows])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    suptitle(fig, run, f"Sequence {samples['index'][0]}, K = {samples['K']}, closed loop from step 0\n"
                 f"(light grey under each model: the true positions)", fontsize=10)
    return fig


PREDICTOR_COLOURS = {"non_relational": COLOURS["non_relational"], "relational": COLOURS["relational"],
                     "constant_velocity": (0.25, 0.45, 0.85), "uninformed": (0.6, 0.6, 0.6)}
PREDICTOR_LABELS = {**LABELS, "constant_velocity": "constant velocity + walls", "uninformed": "uninformed guess"}


def grouped_bars(ax, ks, values: dict, errors: dict = None):
    """Bars per K (x) and predictor (colour); values/errors: predictor -> list over ks."""
    names = [n for n in PREDICTOR_COLOURS if n in values]
    width = 0.8 / len(names)
    x = np.arange(len(ks))
    for i, name in enumerate(names):
        ax.bar(x + (i - (len(names) - 1) / 2) * width, values[name], width, color=PREDICTOR_COLOURS[name],
               label=PREDICTOR_LABELS[name], yerr=None if errors is None else errors[name],
               error_kw=dict(lw=0.8, capsize=1.5))
    ax.set_xticks(x, [f"K={k}" for k in ks])
    ax.grid(alpha=0.3, axis="y")
    positive = [v for name in names for v in values[name] if v is not None and v > 0]
    if positive and max(positive) < 1e-3:                                 # tiny values: "5e-16", no "1e-15" over the title
        from matplotlib.ticker import FormatStrFormatter
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.1e"))           # two digits: no tick label twice
    if not positive and all(v == 0 for name in names for v in values[name] if v is not None):
        ax.text(0.5, 0.7, "0 for every predictor, K and seed", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="0.3")                                   # an empty panel says why
        ax.set_yticks([0])
    log = bool(positive) and max(positive) > LOG_SPAN * min(positive)   # decades apart: a log axis shows all
    if log:
        ax.set_yscale("log")
        ax.set_ylim(min(positive) / 3, max(positive) * 3)
    for i, name in enumerate(names):                                      # a zero has no bar: say it
        for xi, v in zip(x, values[name]):
            if v == 0 and positive:
                ax.text(xi + (i - (len(names) - 1) / 2) * width, min(positive) / 2.5 if log else 0.0, "0",
                        ha="center", va="bottom", fontsize=7, color=PREDICTOR_COLOURS[name])


def collision_metrics(run, plt):
    """Teacher-forced one-step velocity MSE by event class, and post-collision rollout velocity MSE."""
    ks = sorted_ks(run["one_step"])
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4),
                             gridspec_kw=dict(left=0.05, right=0.99, bottom=0.12, top=0.78, wspace=0.25))
    for ax, cls in zip(axes, ("free", "wall", "ball")):
        values = {name: [run["one_step"][k][name][cls]["vel_mse"] or 0.0 for k in ks]
                  for name in run["one_step"][ks[0]]}
        grouped_bars(ax, ks, values)
        counts = ", ".join(str(run["one_step"][k]["relational"][cls]["count"]) for k in ks)
        ax.set_title(f"one step from the true state: {cls} steps\n(ball-steps per K: {counts})", fontsize=9)
        ax.set_ylabel("velocity per-element MSE", fontsize=9)
    window = run["config"]["post_window"]
    values = {name: [run["rollout"][k][name]["post_collision_vel_mse"] or 0.0 for k in ks]
              for name in PREDICTOR_COLOURS if name in run["rollout"][ks[0]]}
    grouped_bars(axes[3], ks, values)
    axes[3].set_title(f"closed loop from frame 0: the {window} states after\neach ball-ball collision "
                      f"of the colliding balls", fontsize=9)
    axes[3].set_ylabel("velocity per-element MSE", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=4, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.99))
    suptitle(fig, run, f"Velocity error by event (seed {run['config']['seed']}; free = no wall or ball contact in the step)",
                 y=0.91, fontsize=10)
    return fig


def long_horizon(run, plt):
    """Per-step measures of the long closed-loop rollouts; line style = K."""
    from matplotlib.lines import Line2D
    ks = sorted_ks(run["long_horizon"])
    keys = [("vel_err", "velocity: mean Euclidean error"), ("pair_dist_w1", "pair distances: W1 to truth"),
            ("speed_w1", "speeds: W1 to truth"), ("outside_frac", "fraction of balls overlapping a wall"),
            ("energy_ratio", "kinetic energy / true kinetic energy")]
    if "vel_cos" in run["long_horizon"][ks[0]]["relational"]:
        keys[2] = ("vel_cos", "velocity cosine to truth")
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.6), sharex=True,
                             gridspec_kw=dict(left=0.06, right=0.98, bottom=0.08, top=0.9, wspace=0.25, hspace=0.2))
    names = [n for n in PREDICTOR_COLOURS if n in run["long_horizon"][ks[0]]]
    coincided = False
    for ax, (key, label) in zip(axes.ravel(), keys):
        coincided |= plot_curves(ax, [(run["long_horizon"][k][name][key],
                                       dict(ls=style, color=PREDICTOR_COLOURS[name], lw=1.1))
                                      for k, style in zip(ks, K_STYLES) for name in names])
        if key == "energy_ratio":                                  # 1 is exact: show it against 0
            top = max(max(run["long_horizon"][k][n][key]) for k in ks for n in names)
            ax.set_ylim(0, max(1.3, 1.05 * top))
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("closed-loop step")
    axes[1, 2].axis("off")
    handles = [Line2D([], [], color=PREDICTOR_COLOURS[n], label=PREDICTOR_LABELS[n]) for n in names]
    handles += [Line2D([], [], ls=s, color="black", label=f"K = {k}") for k, s in zip(ks, K_STYLES)]
    handles += [coincide_handle()] if coincided else []
    axes[1, 2].legend(handles=handles, loc="center", fontsize=10, frameon=False)
    T = run["long_horizon"][ks[0]]["T"]
    suptitle(fig, run, f"{T}-step closed-loop rollouts from frame 0: error, and measures that need no step-by-step "
                 f"alignment (mean over {run['config']['n_eval']} sequences)", fontsize=11)
    return fig


ENERGY_FLAT = 1e-6        # energy ratios this close to 1 everywhere are drawn as their deviation from 1


def energy_overlap(run, plt):
    """Per step of the long rollouts: kinetic energy over the true one, and the fraction of ball
    pairs overlapping by more than 10 % of 2r (dashed: the truth's own rate); one panel per K."""
    from matplotlib.lines import Line2D
    ks = sorted_ks(run["long_horizon"])
    names = [n for n in PREDICTOR_COLOURS if n in run["long_horizon"][ks[0]] and n != "uninformed"]
    fig, axes = plt.subplots(2, len(ks), figsize=(3.0 * len(ks) + 1, 6.4), squeeze=False, sharex=True,
                             gridspec_kw=dict(left=0.06, right=0.99, bottom=0.08, top=0.82, wspace=0.3, hspace=0.15))
    coincided = False
    # every model conserving the energy to rounding (the simulator recipe): the deviation on a log axis
    conserved = all(abs(v - 1) < ENERGY_FLAT for k in ks for n in names for v in run["long_horizon"][k][n]["energy_ratio"])
    for col, k in enumerate(ks):
        entry = run["long_horizon"][k]
        energy = {n: (np.abs(np.array(entry[n]["energy_ratio"]) - 1) + 1e-18 if conserved else entry[n]["energy_ratio"])
                  for n in names}
        coincided |= plot_curves(axes[0, col], [(energy[n], dict(color=PREDICTOR_COLOURS[n], lw=1.2)) for n in names])
        coincided |= plot_curves(axes[1, col], [(entry[n]["overlap_frac"], dict(color=PREDICTOR_COLOURS[n], lw=1.0))
                                                for n in names] +
                                 [(entry["truth_overlap_frac"], dict(ls="--", color="black", lw=1.0))])
        axes[0, col].set_title(f"K = {k}", fontsize=10)
        if conserved:
            axes[0, col].set_yscale("log")
        else:
            axes[0, col].set_ylim(0, max(1.3, max(max(entry[n]["energy_ratio"]) for n in names) * 1.05))
        axes[1, col].set_xlabel("closed-loop step")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("|kinetic energy / true - 1|\n(+1e-18: a log axis)" if conserved else "kinetic energy / true")
    axes[1, 0].set_ylabel("pairs overlapping > 10 % of 2r")
    handles = [Line2D([], [], color=PREDICTOR_COLOURS[n], label=PREDICTOR_LABELS[n]) for n in names]
    handles.append(Line2D([], [], ls="--", color="black", label="truth (overlap rate)"))
    handles += [coincide_handle()] if coincided else []
    fig.legend(handles=handles, loc="upper center", ncols=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.93))
    T = run["long_horizon"][ks[0]]["T"]
    suptitle(fig, run, f"Energy and overlaps over {T}-step closed-loop rollouts (mean over "
                       f"{run['config']['n_eval']} sequences)\n")
    return fig


SWEEP_LABELS = {
    "vel_err": "rollout velocity: mean Euclidean error", "vel_mse": "rollout velocity: per-element MSE",
    "pos_err": "rollout position: mean Euclidean error", "pos_mse": "rollout position: per-element MSE",
    "post_collision_vel_mse": "post-collision rollout velocity MSE",
    "one_step_vel_mse_free": "one-step velocity MSE, free steps",
    "one_step_vel_mse_wall": "one-step velocity MSE, wall steps",
    "one_step_vel_mse_ball": "one-step velocity MSE, ball-ball steps",
    "long_pair_dist_w1": "long rollout: pair-distance W1 (step mean)",
    "long_speed_w1": "long rollout: speed W1 (step mean)",
    "long_outside_frac": "long rollout: fraction overlapping a wall",
    "long_energy_drift": "long rollout: |energy ratio - 1| (step mean)",
    "long_energy_at_100": "long rollout: energy ratio at step 100 (nearer 1 wins)",
    "long_overlap_frac": "long rollout: fraction of pairs overlapping",
    "long_vel_cos_10": "velocity cosine at step 10 (higher wins)",
    "long_vel_cos_20": "velocity cosine at step 20 (higher wins)",
    "long_speed_rel_err_10": "relative speed error at step 10",
    "horizon": "horizon: steps to mean position error > r (higher wins)",
}


def sweep_summary(sweep, plt):
    ks = sorted_ks(sweep["summary"])
    metrics = sweep["metrics"]
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.1 * rows), squeeze=False,
                             gridspec_kw=dict(left=0.04, right=0.99, bottom=0.05, top=0.9, wspace=0.22, hspace=0.42))
    for ax, metric in zip(axes.ravel(), metrics):
        cells = {k: sweep["summary"][k][metric] for k in ks}
        names = [n for n in PREDICTOR_COLOURS if all(n in cells[k] for k in ks)]
        values = {n: [cells[k][n]["mean"] for k in ks] for n in names}
        errors = {n: np.array([[cells[k][n]["mean"] - (cells[k][n]["ci95"] or [cells[k][n]["mean"]] * 2)[0],
                                (cells[k][n]["ci95"] or [cells[k][n]["mean"]] * 2)[1] - cells[k][n]["mean"]]
                               for k in ks]).T for n in names}
        grouped_bars(ax, ks, values, errors)
        ax.set_title(SWEEP_LABELS.get(metric, metric), fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=4, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.955))
    suptitle(fig, sweep, f"Mean over {sweep['n_seeds']} seeds with 95 % t-intervals", fontsize=11)
    return fig


def sweep_wins(sweep, plt):
    ks = sorted_ks(sweep["wins"])
    metrics = [m for m in sweep["metrics"] if any(m in sweep["wins"][k] for k in ks)]   # chaotic ones have none
    wins = np.array([[sweep["wins"][k].get(m, np.nan) for k in ks] for m in metrics], float)
    n = sweep["n_seeds"]
    labels = [SWEEP_LABELS.get(m, m) for m in metrics]
    label_in = 0.3 + 0.068 * max(len(label) for label in labels)   # inches of metric labels at font size 9
    width = label_in + 0.2 + 0.8 * len(ks)
    height = 0.42 * len(metrics) + 1.6
    width += 0.9                                                    # the colour bar
    fig, ax = plt.subplots(figsize=(width, height),
                           gridspec_kw=dict(left=label_in / width, right=1 - 0.9 / width, bottom=0.3 / height,
                                            top=1 - 0.75 / height))
    image = ax.imshow(wins / n, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, ticks=[0, 0.5, 1])
    bar.ax.set_yticklabels(["0", f"{n / 2:g}", f"{n}"], fontsize=8)
    bar.set_label("seeds won", fontsize=8)
    for i in range(len(metrics)):
        for j in range(len(ks)):
            dark = abs(wins[i, j] / n - 0.5) > 0.3                 # the ends of RdYlGn are dark: white numbers there
            ax.text(j, i, f"{wins[i, j]:.0f}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(ks)), [f"K={k}" for k in ks])
    ax.set_yticks(range(len(metrics)), labels, fontsize=9)
    suptitle(fig, sweep, f"Seeds (of {n}) in which the relational model does better than the\nnon-relational "
                         f"model (lower error unless the label says otherwise;\nchaotic measures have no win count)",
                 fontsize=10)
    return fig


KEY_METRICS = ("post_collision_vel_mse", "one_step_vel_mse_ball", "vel_mse", "long_outside_frac")
VARIANT_COLOURS = {"mean": (0.35, 0.72, 0.35), "sum": (0.2, 0.45, 0.8), "attention": (0.5, 0.2, 0.6)}   # one hue each


def variant_order(variants) -> list:
    """mean, sum, attention, then the same trained on the K-curriculum."""
    aggs = list(VARIANT_COLOURS)
    return sorted(variants, key=lambda n: ("+curriculum" in n, aggs.index(n.split("+")[0]) if n.split("+")[0] in aggs
                                           else len(aggs), n))


def variant_style(name):
    """Colour by aggregator; hatched bars for the K-curriculum variants."""
    return VARIANT_COLOURS.get(name.split("+")[0], (0.5, 0.5, 0.5)), ("//" if "+curriculum" in name else None)


def sweep_variants(sweep, plt):
    """Relational variants against the non-relational model on the key metrics, per K."""
    variants = sweep["variants"]
    names = variant_order(variants)
    ks = sorted_ks(variants[names[0]]["summary"])
    fig, axes = plt.subplots(2, 2, figsize=(16, 8.6),
                             gridspec_kw=dict(left=0.05, right=0.99, bottom=0.06, top=0.86, wspace=0.15, hspace=0.3))
    regimes = {}                                   # one non-relational reference per training regime
    for name in names:
        regimes.setdefault("+curriculum" in name, name)
    bars = [(f"non-relational{' (curriculum)' if cur else ''}", src_name, "non_relational",
             COLOURS["non_relational"], "//" if cur else None) for cur, src_name in regimes.items()]
    bars += [(f"relational, {name}", name, "relational", *variant_style(name)) for name in names]
    width = 0.85 / len(bars)
    x = np.arange(len(ks))
    for ax, metric in zip(axes.ravel(), KEY_METRICS):
        heights = [variants[name]["summary"][k][metric][model]["mean"] for _, name, model, _, _ in bars for k in ks]
        top = min(max(heights), 4 * float(np.median(heights))) * 1.1   # a diverged variant would flatten the rest
        for i, (label, name, model, colour, hatch) in enumerate(bars):
            cells = [variants[name]["summary"][k][metric][model] for k in ks]
            means = [c["mean"] for c in cells]
            err = np.array([[c["mean"] - c["ci95"][0], c["ci95"][1] - c["mean"]] if c["ci95"] else [0, 0]
                            for c in cells]).T
            xs = x + (i - (len(bars) - 1) / 2) * width
            ax.bar(xs, means, width, color=colour, hatch=hatch,
                   edgecolor="white", lw=0, label=label, yerr=err, error_kw=dict(lw=0.7, capsize=1))
            for xi, m in zip(xs, means):
                if m > top:                                                 # clipped bar: print its value
                    ax.text(xi, top * 0.97, f"{m:.3g}", rotation=90, ha="center", va="top", fontsize=7,
                            color="white")
        ax.set_ylim(0, top)
        ax.set_xticks(x, [f"K={k}" for k in ks])
        ax.set_title(SWEEP_LABELS[metric], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=4, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.96))
    fig.suptitle(f"Aggregators over {sweep['n_seeds']} seeds: mean and 95 % t-interval (hatched: trained on the "
                 f"K-curriculum; bars cut at the top are labelled with their value)", fontsize=11, y=0.995)
    return fig


def attention_geometry(run, plt):
    """Teacher-forced gates a_kj against the pair's centre distance and approach speed."""
    att = run["attention"]
    gate, dist, approach, hit = (np.asarray(att[key], float)
                                 for key in ("gate", "distance", "approach_speed", "collided"))
    hit = hit.astype(bool)
    r = run["config"]["radius"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6),
                             gridspec_kw=dict(left=0.05, right=0.99, bottom=0.13, top=0.84, wspace=0.25))
    sc = axes[0].scatter(dist[~hit], gate[~hit], c=approach[~hit], s=4, cmap="coolwarm", vmin=-2, vmax=2, alpha=0.6)
    axes[0].scatter(dist[hit], gate[hit], s=22, facecolors="none", edgecolors="black", lw=0.8,
                    label="pair collides in this step")
    axes[0].axvline(2 * r, color="grey", ls=":", lw=1)
    axes[0].set_xlabel("centre distance |p_j - p_k| (2r dotted)")
    axes[0].set_ylabel("gate a_kj")
    axes[0].legend(fontsize=8, loc="upper right")
    fig.colorbar(sc, ax=axes[0], label="approach speed")
    near = dist < 4 * r
    axes[1].scatter(approach[near & ~hit], gate[near & ~hit], s=5, color="tab:blue", alpha=0.5,
                    label="distance < 4r, no collision")
    axes[1].scatter(approach[hit], gate[hit], s=22, facecolors="none", edgecolors="black", lw=0.8, label="collides")
    axes[1].set_xlabel("approach speed -(v_j - v_k).(p_j - p_k) / |p_j - p_k|")
    axes[1].set_ylabel("gate a_kj")
    axes[1].legend(fontsize=8)
    bins = np.linspace(0, 1.0, 21)
    centres = (bins[1:] + bins[:-1]) / 2
    which = np.digitize(dist, bins) - 1
    mean_gate = [gate[which == i].mean() if (which == i).any() else np.nan for i in range(len(centres))]
    axes[2].plot(centres, mean_gate, "o-", color="tab:green", label="mean gate of all pairs at that distance")
    if hit.any():
        axes[2].axhline(gate[hit].mean(), color="black", ls="--", label=f"colliding pairs: mean {gate[hit].mean():.2f}")
    axes[2].axvline(2 * r, color="grey", ls=":", lw=1)
    axes[2].set_xlabel("centre distance")
    axes[2].set_ylabel("mean gate")
    axes[2].set_ylim(0, 1)
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    suptitle(fig, run, f"Attention gates on true states (K = {att['K']}, {att['n_sequences']} sequences, {len(gate)} "
                 f"pair-steps, {int(hit.sum())} in collisions)", fontsize=10)
    return fig


def attention_frames(run, plt, n_frames=6, size=150):
    """Closed-loop rollout frames with every pair drawn as a line of opacity a_kj."""
    samples = run["samples"]
    pos = np.asarray(samples["relational"], float)[:, 0, :, :2]          # (T, K, 2)
    gates = np.asarray(samples["attention"], float)[:, 0]                # (T, K, K)
    truth = np.asarray(samples["truth"], float)[:, 0, :, :2]
    T, K = pos.shape[:2]
    steps = np.linspace(0, T - 1, n_frames).round().astype(int)
    frames = render_frames(pos[steps], samples["radius"], size, PANEL_COLOURS["relational"], ghost=truth[steps])
    fig, axes = plt.subplots(1, n_frames, figsize=(2.6 * n_frames, 3.3), squeeze=False,
                             gridspec_kw=dict(left=0.01, right=0.99, bottom=0.02, top=0.76, wspace=0.05))
    for ax, t, frame in zip(axes[0], steps, frames):
        ax.imshow(frame, extent=(0, 1, 0, 1))
        for k in range(K):
            for j in range(K):
                if j != k and gates[t, k, j] > 0.05:                     # a_kj: j's effect on k
                    ax.plot(*zip(pos[t, k], pos[t, j]), color="black", lw=2.5, alpha=float(gates[t, k, j]) * 0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"step {t}: largest gate {gates[t].max():.2f}", fontsize=9)
    suptitle(fig, run, "Relational (attention) rollout from frame 0, sequence 0: a line joins two balls with opacity = "
                 "gate a_kj\n(drawn where a_kj > 0.05); light grey: the true positions", fontsize=10)
    return fig


FIGURES = {
    "training_curves.png": training_curves,
    "rollout_errors.png": rollout_errors,
    "extrapolation_summary.png": extrapolation_summary,
    "sample_trajectories.png": sample_trajectories,
    "rendered_frames.png": rendered_frames,
    "collision_metrics.png": collision_metrics,
    "long_horizon.png": long_horizon,
    "energy_overlap.png": energy_overlap,
}
SWEEP_FIGURES = {"sweep_summary.png": sweep_summary, "sweep_wins.png": sweep_wins}
VARIANT_FIGURES = {"sweep_variants.png": sweep_variants}
ATTENTION_FIGURES = {"attention_geometry.png": attention_geometry, "attention_frames.png": attention_frames}
ALL_FIGURES = {**FIGURES, **SWEEP_FIGURES, **VARIANT_FIGURES, **ATTENTION_FIGURES}

# two groups of about equal drawing time, one per worker process
WORKER_GROUPS = (("rollout_errors.png", "extrapolation_summary.png", "rendered_frames.png", "long_horizon.png"),
                 ("energy_overlap.png",),
                 ("training_curves.png", "sample_trajectories.png", "collision_metrics.png"),
                 ("sweep_summary.png", "sweep_variants.png", "attention_geometry.png"),
                 ("sweep_wins.png", "attention_frames.png"))


def draw_to_temp(run, out_dir, names, sources: str) -> list:
    """Draws the named figures into temporary files in out_dir, each recording `sources` (what
    it was drawn from: rnem.provenance); returns error strings."""
    import matplotlib.pyplot as plt
    errors = []
    for name in names:
        try:
            fig = ALL_FIGURES[name](run, plt)
        except Exception as err:  # malformed data of any shape: reported on one line by main
            errors.append(f"{name} ({type(err).__name__}: {err})")
            plt.close("all")
            continue
        fig.savefig(os.path.join(out_dir, TEMP_PREFIX + name), dpi=DPI, format="png",
                    metadata={provenance.KEY: sources}, pil_kwargs={"compress_level": 3})
        plt.close(fig)
    return errors


def missing_folders(path: str) -> list:
    """path and those of its parents that do not exist yet, innermost first (what makedirs makes)."""
    missing, path = [], os.path.abspath(path)
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def quiet_worker() -> None:
    """A figure worker: stopped by the parent (SIGTERM, default action), deaf to Ctrl-C (the parent
    gets it, stops the pool and prints the one line)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_run(run: dict, path: str):
    """(data to draw, is_sweep, is_variants): the keys and types the figures read (ConfigError otherwise)."""
    is_variants = "variants" in run and "seeds" in run
    is_sweep = is_variants or ("summary" in run and "seeds" in run)
    if is_variants:                          # the one-variant figures show the mean variant
        if not isinstance(run["variants"], dict) or not run["variants"]:
            raise ConfigError(f"--run {path}: variants must be a non-empty object")
        for name, one in run["variants"].items():
            if not isinstance(one, dict) or any(key not in one for key in SWEEP_NEEDED):
                raise ConfigError(f"--run {path}: variant {name} lacks {', '.join(SWEEP_NEEDED)}")
        shown = "mean" if "mean" in run["variants"] else next(iter(run["variants"]))
        run = {**run, **run["variants"][shown], "shown_variant": shown}
    else:
        require_keys(run, SWEEP_NEEDED if is_sweep else NEEDED, path)
    sections = ("summary", "wins") if is_sweep else ("config", "history", "rollout", "one_step", "long_horizon")
    for key in sections:
        if not isinstance(run[key], dict) or not run[key]:
            raise ConfigError(f"--run {path}: {key} must be a non-empty object")
    if not is_sweep:
        for model in MODELS:
            if not isinstance(run["history"].get(model), dict):
                raise ConfigError(f"--run {path}: history has no entry for {model}")
        check_samples(run["samples"], path)
    return run, is_sweep, is_variants


def figures_for(run: dict, is_sweep: bool, is_variants: bool) -> dict:
    """name -> drawing function of every figure made from this result (see check_run)."""
    if is_sweep:
        figures = {**SWEEP_FIGURES, **(VARIANT_FIGURES if is_variants else {})}
        summaries = run["variants"].values() if is_variants else [run]
        if not any(counts for one in summaries for counts in one["wins"].values()):
            # every measure chaotic (the stub's recipe): no win count to draw, the intervals say it
            figures.pop("sweep_wins.png")
        return figures
    return {**FIGURES, **(ATTENTION_FIGURES if "attention" in run else {})}


def command(argv) -> int:
    """The CLI's work (bad input raises ConfigError before anything is written)."""
    parser = OneLineParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter,
                           epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("--run", default=None, help="run.json of one run, or the results/sweep.json summary of "
                                                           "--seeds (then sweep_*.png are drawn) (default: run.json)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNGs (created if its parent exists) "
                                                           "(default: runs/viz; regenerate.sh draws the committed viz/)")
    parser.add_argument("--pixels", default="", help="a result JSON of relational_nem_pixels.py instead: draws "
                                                     "<name>_frames.png (and <name>_renderer.png) into --out")
    parser.add_argument("--network", default="", help="a result JSON of relational_nem_network.py (run with --sample: "
                                                      "<name>_frames.png, <name>_simulation.png) or its summary "
                                                      "(network_comparison.png, network_simulation.png) instead")
    parser.add_argument("--interactions", default="", help="a summary of relational_nem_interactions.py --seeds "
                                                           "(results/interactions.json: interactions_horizon.png) or one "
                                                           "seed's result (<name>_tracks.png) instead")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.pixels, args.network, args.interactions, args.run is not None))) > 1:
        raise ConfigError("--run, --pixels, --network and --interactions: give one of them (--pixels draws a pixel "
                          "result, --network a network result, --interactions a summary of interactions learned "
                          "from frames, --run a run.json)")
    args.run = args.run or DEFAULT_RUN
    check_folder_writable(args.out, "--out")
    if args.pixels or args.network or args.interactions:
        written = (pixel_figures(args.pixels, args.out) if args.pixels else
                   network_figures(args.network, args.out) if args.network else
                   interactions_figures(args.interactions, args.out))
        print(f"wrote {len(written)} figures to {args.out}/: {', '.join(written)}")
        return 0
    run, is_sweep, is_variants = check_run(load_run(args.run, ()), args.run)
    sources = provenance.record(args.run)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = panel_titles(run.get("config", {}))
    for name in MODELS:                          # read by the forked workers
        LABELS[name] = PREDICTOR_LABELS[name] = titles[name]
    plt.rcParams.update(STYLE)
    warm = plt.figure(figsize=(1, 1))            # load fonts once, before the workers fork
    warm.text(0.5, 0.5, "0.1")
    warm.canvas.draw()
    plt.close(warm)

    created = missing_folders(args.out)
    os.makedirs(args.out, exist_ok=True)
    figures = figures_for(run, is_sweep, is_variants)
    jobs = [(run, args.out, [n for n in group if n in figures], sources) for group in WORKER_GROUPS
            if any(n in figures for n in group)]
    temps = {name: os.path.join(args.out, TEMP_PREFIX + name) for name in figures}
    errors = ["interrupted"]
    try:
        if "fork" in multiprocessing.get_all_start_methods():   # two processes share the figures
            with multiprocessing.get_context("fork").Pool(2, initializer=quiet_worker) as pool:
                errors = sum(pool.starmap(draw_to_temp, jobs), [])
        else:
            errors = sum((draw_to_temp(*job) for job in jobs), [])
    finally:
        if errors:                               # no partial output: drop every temp file
            for path in temps.values():
                if os.path.exists(path):
                    os.remove(path)
            for folder in created:               # the folders this call made, innermost first, if still empty
                if not os.listdir(folder):
                    os.rmdir(folder)
    if errors:
        print(f"error: --run {args.run}: malformed data for {errors[0]}", file=sys.stderr)
        return 2
    for name, path in temps.items():
        os.replace(path, os.path.join(args.out, name))
    print(f"wrote {len(figures)} figures to {args.out}/: {', '.join(figures)}")
    return 0


def main(argv=None) -> int:
    """The CLI, under the exit codes of rnem.entry: 0 done; 2 bad input (one `error:` line, nothing
    written); 130 / 143 stopped by SIGINT / SIGTERM (no partial file)."""
    return run_main(lambda: command(argv))


if __name__ == "__main__":
    sys.exit(main())
