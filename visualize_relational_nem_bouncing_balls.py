"""Static figures of a run: reads run.json, writes PNGs into viz/.

    python3 visualize_relational_nem_bouncing_balls.py                      # run.json -> viz/
    python3 visualize_relational_nem_bouncing_balls.py --run other.json --out other_viz

Figures: training_curves.png, rollout_errors.png, extrapolation_summary.png,
sample_trajectories.png, rendered_frames.png.
"""
import multiprocessing
import os
import sys

import numpy as np

from make_relational_nem_bouncing_balls_gif import (PANEL_COLOURS, InputError, OneLineParser, load_run,
                                                    render_frames)

DEFAULT_RUN = "run.json"
DEFAULT_OUT = "viz"
MODELS = ("non_relational", "relational")
LABELS = {"truth": "ground truth", "non_relational": "non-relational", "relational": "relational"}
COLOURS = {name: tuple(c / 255 for c in rgb) for name, rgb in PANEL_COLOURS.items()}
METRICS = {   # key -> axis label naming what it computes
    "vel_err": "velocity: mean Euclidean error |d(vx, vy)|",
    "vel_mse": "velocity: per-element MSE",
    "pos_err": "position: mean Euclidean error |d(x, y)|",
    "pos_mse": "position: per-element MSE",
}
DPI = 90
K_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)), (0, (3, 1, 3, 4)))
TEMP_PREFIX = ".tmp-"
NEEDED = ("config", "history", "rollout", "samples")


def training_curves(run, plt):
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    keys = [("train_loss", f"train loss ({run['config']['t_bptt']}-step BPTT, per-element MSE)"),
            ("val_mse_1step", "validation 1-step MSE (teacher-forced)"),
            ("val_mse_bptt", f"validation {run['config']['t_bptt']}-step closed-loop MSE")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw=dict(left=0.05, right=0.99, bottom=0.13, top=0.84, wspace=0.25))
    for ax, (key, title) in zip(axes, keys):
        for model in MODELS:
            h = run["history"][model]
            ax.plot(h["epoch"], h[key], color=COLOURS[model], label=LABELS[model])
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))   # labelled ticks within a decade
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))          # plain numbers: mathtext is slow to draw
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("epoch")
        ax.set_ylabel("per-element MSE")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Training curves (seed {run['config']['seed']}, K = {run['config']['k_train']})")
    return fig


def rollout_errors(run, plt):
    """One panel per metric; colour = model, line style = evaluation K."""
    from matplotlib.lines import Line2D
    ks = list(run["rollout"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True,
                             gridspec_kw=dict(left=0.08, right=0.98, bottom=0.07, top=0.86, wspace=0.2, hspace=0.12))
    for ax, (metric, label) in zip(axes.ravel(), METRICS.items()):
        for k, style in zip(ks, K_STYLES):
            for model in MODELS:
                ax.plot(run["rollout"][k][model][metric], style, color=COLOURS[model], lw=1.3)
        ax.set_ylabel(label.replace(": ", ":\n"), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("closed-loop step")
    k_train = run["config"]["k_train"]
    handles = [Line2D([], [], color=COLOURS[m], label=LABELS[m]) for m in MODELS]
    handles += [Line2D([], [], ls=s, color="black", label=f"K = {k}" + (" (train)" if int(k) == k_train else ""))
                for k, s in zip(ks, K_STYLES)]
    fig.legend(handles=handles, loc="upper center", ncols=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.935))
    n = run["config"]["n_eval"]
    fig.suptitle(f"Closed-loop rollout error per step from frame 0 (mean over {n} sequences and all balls)")
    return fig


def extrapolation_summary(run, plt):
    ks = list(run["rollout"])
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
    fig.suptitle(f"Mean closed-loop error over {T} steps (step 0 included) per evaluation K;\n"
                 f"numbers above bars = relational / non-relational", x=0.4)
    return fig


def sample_trajectories(run, plt):
    samples = run["samples"]
    data = {name: np.asarray(samples[name], float) for name in ("truth",) + MODELS}   # (T, S, K, 4)
    n = data["truth"].shape[1]
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), squeeze=False,
                             gridspec_kw=dict(left=0.04, right=0.98, bottom=0.06, top=0.86, wspace=0.15))
    r = samples["radius"]
    for i, ax in enumerate(axes[0]):
        for name, style in (("truth", "-"), ("non_relational", "--"), ("relational", "-")):
            traj = data[name][:, i, :, :2]                                    # (T, K, 2)
            for k in range(traj.shape[1]):
                ax.plot(traj[:, k, 0], traj[:, k, 1], style, color=COLOURS[name], lw=1.3 if name == "truth" else 1.0,
                        label=LABELS[name] if k == 0 else None)
            ax.plot(traj[0, :, 0], traj[0, :, 1], "o", color="black", ms=4)
        ax.add_patch(plt.Rectangle((r, r), 1 - 2 * r, 1 - 2 * r, fill=False, ls=":", color="grey"))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"sequence {samples['index'][i]}", fontsize=10)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Ball centres over {data['truth'].shape[0]} steps, K = {samples['K']} (dots: start; "
                 f"dotted square: where centres can be)")
    return fig


def rendered_frames(run, plt, size=96, gap=4):
    """One image: rows = ground truth / non-relational / relational, columns = four steps."""
    samples = run["samples"]
    T = len(samples["truth"])
    steps = sorted({0, T // 3, 2 * T // 3, T - 1})
    truth = np.asarray(samples["truth"], float)[:, 0, :, :2]
    rows = ("truth",) + MODELS
    grid = np.full((len(rows) * (size + gap) - gap, len(steps) * (size + gap) - gap, 3), 255, np.uint8)
    for row, name in enumerate(rows):
        pos = np.asarray(samples[name], float)[:, 0, :, :2]                  # (T, K, 2)
        frames = render_frames(pos[steps], samples["radius"], size, PANEL_COLOURS[name],
                               ghost=None if name == "truth" else truth[steps])
        for col, frame in enumerate(frames):
            y, x = row * (size + gap), col * (size + gap)
            grid[y:y + size, x:x + size] = frame
            grid[y:y + size, [x, x + size - 1]] = grid[[y, y + size - 1], x:x + size] = 150   # box outline
    fig, ax = plt.subplots(figsize=(2.0 * len(steps) + 1.2, 6.6),
                           gridspec_kw=dict(left=0.17, right=0.99, bottom=0.01, top=0.88))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([col * (size + gap) + size / 2 for col in range(len(steps))], [f"step {t}" for t in steps])
    ax.xaxis.tick_top()
    ax.set_yticks([row * (size + gap) + size / 2 for row in range(len(rows))], [LABELS[name] for name in rows])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"Sequence {samples['index'][0]}, K = {samples['K']}, closed loop from step 0\n"
                 f"(light grey under each model: the true positions)", fontsize=10)
    return fig


FIGURES = {
    "training_curves.png": training_curves,
    "rollout_errors.png": rollout_errors,
    "extrapolation_summary.png": extrapolation_summary,
    "sample_trajectories.png": sample_trajectories,
    "rendered_frames.png": rendered_frames,
}

# two groups of about equal drawing time, one per worker process
WORKER_GROUPS = (("rollout_errors.png", "extrapolation_summary.png", "rendered_frames.png"),
                 ("training_curves.png", "sample_trajectories.png"))


def draw_to_temp(run, out_dir, names) -> list:
    """Draws the named figures into temporary files in out_dir; returns error strings."""
    import matplotlib.pyplot as plt
    errors = []
    for name in names:
        try:
            fig = FIGURES[name](run, plt)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            errors.append(f"{name} ({type(err).__name__}: {err})")
            continue
        fig.savefig(os.path.join(out_dir, TEMP_PREFIX + name), dpi=DPI, format="png",
                    pil_kwargs={"compress_level": 3})
        plt.close(fig)
    return errors


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=DEFAULT_RUN, help="run.json written by the main script")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNGs (created if its parent exists)")
    args = parser.parse_args(argv)
    try:
        parent = os.path.dirname(os.path.abspath(args.out))
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise InputError(f"--out {args.out} is a file; give a folder")
        if not os.path.isdir(parent):
            raise InputError(f"--out {args.out}: parent folder {parent} does not exist")
        run = load_run(args.run, NEEDED)
        for model in MODELS:
            if model not in run["history"]:
                raise InputError(f"--run {args.run}: history has no entry for {model}")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warm = plt.figure(figsize=(1, 1))            # load fonts once, before the workers fork
    warm.text(0.5, 0.5, "0.1")
    warm.canvas.draw()
    plt.close(warm)

    created = not os.path.isdir(args.out)
    os.makedirs(args.out, exist_ok=True)
    jobs = [(run, args.out, names) for names in WORKER_GROUPS]
    if "fork" in multiprocessing.get_all_start_methods():   # two processes draw half the figures each
        with multiprocessing.get_context("fork").Pool(2) as pool:
            errors = sum(pool.starmap(draw_to_temp, jobs), [])
    else:
        errors = sum((draw_to_temp(*job) for job in jobs), [])
    temps = {name: os.path.join(args.out, TEMP_PREFIX + name) for name in FIGURES}
    if errors:                                   # no partial output: drop every temp file
        for path in temps.values():
            if os.path.exists(path):
                os.remove(path)
        if created:
            os.rmdir(args.out)
        print(f"error: --run {args.run}: malformed data for {errors[0]}", file=sys.stderr)
        return 2
    for name, path in temps.items():
        os.replace(path, os.path.join(args.out, name))
    print(f"wrote {len(FIGURES)} figures to {args.out}/: {', '.join(FIGURES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
