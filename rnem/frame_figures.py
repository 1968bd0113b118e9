"""Figures of the pipelines on frames, drawn from their result JSON for the figure script
(visualize_relational_nem_bouncing_balls.py --pixels / --network / --interactions): the pixel
pipeline's frames and renderer, the paper's network's frames, simulation and summary, the
interactions learned from frames."""
from __future__ import annotations

import os
import textwrap

import numpy as np

from rnem.cli import ConfigError, current_names
from rnem import provenance
from rnem.names import HEADLINE_PROTOCOL, MAIN_NETWORKS, MOTION_REFERENCE_NAMES, NETWORK_NAMES
from rnem.pictures import component_rgb, gamma_rgb, truth_rgb
from rnem.result_files import load_run, network_sample, pixel_sample, require_keys
from rnem.scenes import hidden_balls

from rnem.pictures import DPI, STYLE


# ----------------------------------------------------------------------------- pixels (relational_nem_pixels.py)
PIXEL_COLUMNS = 8       # frames shown side by side


def pixel_columns(px: dict) -> tuple:
    """(frames to show, title): with a curtain, every second frame from two before the first
    frame a ball seen before is mostly hidden; otherwise consecutive frames from two before the
    first collision."""
    T = len(px["frames"])
    behind = px["hidden_fraction"] >= 0.5                                          # (T, B)
    seen_then_hidden = behind & (np.cumsum(~behind, axis=0) - ~behind > 0)
    if seen_then_hidden.any():
        first, step = int(np.argmax(seen_then_hidden.any(axis=1))), 2
        what = "a ball goes behind the curtain"
    else:
        first, step = int(np.argmax(px["collisions"].any(axis=1))) + 1, 1
        what = "balls collide" if px["collisions"].any() else "no collision"
    start = int(np.clip(first - 2 * step, 1, max(1, T - 1 - step * (PIXEL_COLUMNS - 1))))
    return [t for t in range(start, T, step)][:PIXEL_COLUMNS], f"frames {start}.. ({what} at frame {first})"


def pixel_frames_figure(px: dict, plt, per_component: bool):
    """The paper's Figure 2 analogue (per_component: each component's predicted psi_k in a row of
    its own) or Figure 5 analogue (the curtain): the truth, the prediction max_k psi_k made before
    the frame, and gamma after its EM, coloured by component."""
    columns, note = pixel_columns(px)
    truth, gamma = truth_rgb(px), gamma_rgb(px)
    rows = [("truth", lambda t: truth[t])]
    if per_component:
        K = int(max(px["prediction_component"].max(), px["gamma_component"].max())) + 1
        for k in range(K):
            rows.append((f"psi_{k} predicted", lambda t, k=k: component_rgb(
                np.where(px["prediction_component"][t - 1] == k, k, -1), px["prediction_level"][t - 1])))
    rows += [("prediction\nmax_k psi_k", lambda t: component_rgb(px["prediction_component"][t - 1],
                                                                 px["prediction_level"][t - 1])),
             ("gamma after EM\n(lit pixels)", lambda t: gamma[t])]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.25 * len(columns) + 1.2, 1.25 * len(rows) + 0.7),
                             squeeze=False)
    for i, (label, image) in enumerate(rows):
        for j, t in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(image(t), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    curtain = "; pale red = the curtain (never observed), grey balls = what it hides" if not px["visible"].all() else ""
    fig.suptitle(f"{px['renderer']} renderer, {px['dynamics']} between frames; {note}\n"
                 f"colour = component{curtain}", fontsize=9)
    fig.tight_layout()
    return fig


def renderer_figure(training: dict, plt):
    """The learned renderer: its next-frame loss per training step, and what it draws along a
    line through a component (trained, untrained = the prior bump, and the known soft disk)."""
    profile = training["profile"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(training["loss_per_lit_pixel"], color="tab:green")
    left.set_xlabel("training step (one batch of sequences)")
    left.set_ylabel("next-frame loss per lit pixel (nats)")
    left.set_title("training from frames (bit-flip noise on what the EM sees)")
    for key, style, label in (("learned_x", "-", "learned, along x"), ("learned_diagonal", "--", "learned, diagonal"),
                              ("untrained", ":", "untrained (the prior bump)"), ("known", "-.", "known soft disk")):
        right.plot(profile["u"], profile[key], style, label=label)
    right.axvline(1.0, color="0.7", lw=0.8)
    right.set_xlabel("distance from the component's position (radii)")
    right.set_ylabel("psi: probability the pixel is lit")
    right.set_title("what one component draws")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pixel_figures(path: str, out: str) -> list:
    """Draws the figures of a relational_nem_pixels.py result into out; returns the files written."""
    run = load_run(path, ("config", "sample"), "--pixels")
    sources = provenance.record(path)
    px = pixel_sample(run, path)
    training = run.get("renderer_training")
    if training is not None and (not isinstance(training, dict) or any(
            not isinstance(training.get(k), (list, dict)) for k in ("loss_per_lit_pixel", "profile"))):
        raise ConfigError(f"--pixels {path}: renderer_training must hold loss_per_lit_pixel and profile")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update(STYLE)
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out, exist_ok=True)
    figures = {f"{stem}_frames.png": lambda: pixel_frames_figure(px, plt, per_component=px["visible"].all())}
    if training is not None:
        figures[f"{stem}_renderer.png"] = lambda: renderer_figure(training, plt)
    for name, draw in figures.items():
        fig = draw()
        provenance.save_png(fig, os.path.join(out, name), sources, DPI)
        plt.close(fig)
    return list(figures)


# ----------------------------------------------------------------------------- the network (relational_nem_network.py)
NETWORK_MODELS = {name: NETWORK_NAMES[name] for name in MAIN_NETWORKS}   # the paper's models, worst to best
NETWORK_COLUMNS = 8


def tinted(k: int, amount) -> np.ndarray:
    """(..., 3) white tinted towards component k's colour by amount in [0, 1]."""
    return component_rgb(np.full(np.shape(amount), k), np.clip(np.asarray(amount) * 9.0, 0, 9))


def network_frames_figure(ns: dict, plt, title: str):
    """The paper's Figure 2 (Figure 5 with a curtain): per frame t the truth, each component's
    psi_k predicted before the frame, gamma on the frame's lit pixels, the real prediction
    sum_k gamma psi_k and R-NEM's attention a_ki (row: the component k that attends)."""
    T, K = len(ns["frames"]), ns["psi"].shape[1]
    px = {"size": ns["size"], "visible": ns["visible"], "truth": ns["truth"], "radii": ns["radii"]}
    truth = truth_rgb(px)
    if ns["visible"].all():                                                             # from two frames before a collision
        hit = np.flatnonzero(ns["collisions"][3:].any(axis=1)) + 3                      # (from frame 3 -> 4 on)
    else:                                                                               # ... or a ball going behind the curtain
        one = {"states": ns["truth"][:, None], "radii": ns["radii"][None], "visible": ns["visible"][None]}
        hit = np.flatnonzero(hidden_balls(one, ns["size"])[1][:, 0].any(axis=1))        # seen, then mostly hidden
    start = int(np.clip((hit[0] - 2 if len(hit) else 2), 2, T - NETWORK_COLUMNS))
    columns = list(range(start, start + NETWORK_COLUMNS))
    winner = ns["gamma"].argmax(axis=1)                                                 # (T-1, S, S)
    rows = [("truth", lambda t: truth[t]), ("frame seen", lambda t: np.where(ns["frames"][t][..., None], 0.15, 1.0)
                                             * np.ones(3))]
    rows += [(f"psi_{k}", lambda t, k=k: tinted(k, ns["psi"][t - 1, k])) for k in range(K)]
    rows += [("gamma\n(lit pixels)", lambda t: component_rgb(np.where(ns["frames"][t], winner[t - 1], -1),
                                                               9 * ns["gamma"][t - 1].max(axis=0))),
             ("prediction\nsum_k gamma psi_k", lambda t: np.repeat(1.0 - ns["prediction"][t - 1][..., None], 3, -1))]
    if ns["attention"] is not None:                                                     # a_ki as a K x K image, scaled up
        S, cmap = ns["size"], plt.get_cmap("viridis")
        grow = (np.arange(S) * K) // S                                                  # pixel -> matrix index

        def attention_rgb(t):
            rgb = cmap(ns["attention"][t - 1])[..., :3]                                # (K, K, 3)
            rgb[np.eye(K, dtype=bool)] = 1.0                                            # no a_kk: white
            return rgb[grow][:, grow]
        rows.append(("attention a_ki\n(row k, column i)", attention_rgb))
    # one image per row, the frames side by side with a grey gap: 1 axis a row, not 1 a frame
    S, gap = ns["size"], max(1, ns["size"] // 6)
    height = 1.2 * len(rows) + 0.8
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * len(columns) + 1.4, height), squeeze=False)
    for (label, image), ax in zip(rows, axes[:, 0]):
        strip = np.full((S + 2 * gap, len(columns) * (S + gap) + gap, 3), 0.7)         # grey around each frame
        for j, t in enumerate(columns):
            strip[gap:gap + S, gap + j * (S + gap):gap + j * (S + gap) + S] = image(t)
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    for j, t in enumerate(columns):
        axes[0, 0].text(gap + j * (S + gap) + S / 2, -2, f"t = {t}" + (" *" if ns["collisions"][t - 1].any() else ""),
                        ha="center", va="bottom", fontsize=9)
    curtain = "; pale red: the curtain (never seen), grey: what it hides" if not ns["visible"].all() else ""
    attention = "; attention 0 dark to 1 yellow" if ns["attention"] is not None else ""
    fig.suptitle(f"{title}\npsi_k and gamma in component k's colour; * = a collision between t - 1 and t{attention}"
                 f"{curtain}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height))            # 0.6 in above the axes: the title's two lines, t = ...
    return fig


def network_simulation_frames_figure(ns: dict, plt, title: str):
    """The paper's Figure 4 (left): the true frames and the network's simulation after the frames it saw."""
    obs = ns["observed"]
    shown = list(range(max(0, obs - 2), obs + len(ns["sim"])))            # the last 2 seen, then the simulated
    fig, axes = plt.subplots(2, len(shown), figsize=(1.0 * len(shown) + 1.2, 2.9), squeeze=False)
    for j, t in enumerate(shown):
        axes[0, j].imshow(np.where(ns["frames"][t], 0.15, 1.0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        sim = ns["frames"][t] if t < obs else ns["sim"][t - obs]
        axes[1, j].imshow(1.0 - sim, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"t = {t}" if t >= obs else f"t = {t} (seen)", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("truth", fontsize=8)
    axes[1, 0].set_ylabel("seen, then\nsimulated", fontsize=8)
    fig.suptitle(f"{title}: frames 0..{obs - 1} seen, then the network runs on its own predictions (clean "
                 "protocol: its max_k psi > 0.1 fed back)", fontsize=9)
    fig.tight_layout()
    return fig


def network_summary_figures(summary: dict, plt) -> dict:
    """Figure 3 of the paper (BCE relative to copying, relational BCE and ARI per model at the
    training number of balls and at 6-8 balls; bars: mean over seeds with the 95 % interval, dots:
    seeds) and Figure 4 (right: the BCE per simulated step)."""
    models = [m for m in NETWORK_MODELS if m in summary["models"]]
    colours = plt.get_cmap("tab10")
    panels = [("bce_max_over_copy", "next-frame BCE of max_k psi / copying (best\nflip rate); < 1 beats copying; the RNN: K = 1"),
              ("relational_bce_max", "relational BCE of max_k psi (nats on the\npixels of colliding balls, per frame)"),
              ("ari_last", "ARI (mean of the last 10 steps;\nthe RNN has one component: 0)")]

    def comparison():
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        for ax, (measure, label) in zip(axes, panels):
            for g, part in enumerate(("balls", "more_balls")):
                for i, m in enumerate(models):
                    entry = summary["models"][m]["measures"].get(f"{part}/{measure}")
                    if not entry or entry.get("mean") is None:
                        continue
                    x = g * (len(models) + 1) + i
                    ci = entry.get("ci95") or [entry["mean"]] * 2
                    ax.bar(x, entry["mean"], color=colours(i), label=NETWORK_MODELS[m] if g == 0 else None,
                           yerr=[[entry["mean"] - ci[0]], [ci[1] - entry["mean"]]], capsize=3)
                    ax.plot([x] * len(entry["per_seed"]), entry["per_seed"], "k.", ms=4)
            ax.set_xticks([(len(models) - 1) / 2, len(models) + 1 + (len(models) - 1) / 2])
            ax.set_xticklabels(["4 balls (as trained)", "6-8 balls, K = 8"])
            ax.set_title(label, fontsize=10)
            if measure == "bce_max_over_copy":
                ax.axhline(1.0, color="0.5", lw=0.8)
        axes[0].legend(fontsize=8, loc="upper left")
        fig.suptitle("the paper's network, trained on 4 balls: mean over seeds (bars, 95 % interval) and each seed "
                     "(dots)", fontsize=10)
        fig.tight_layout()
        return fig

    def simulation():
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for i, m in enumerate(models):
            if m in ("r_nem_k8",):
                continue
            per_step = summary["models"][m]["sim_bce_per_step"]
            ax.plot(range(1, len(per_step) + 1), per_step, "o-", color=colours(i), label=NETWORK_MODELS[m])
        ax.set_xlabel("simulated step (after the frames seen)")
        ax.set_ylabel("BCE of the simulated frame (nats per frame)")
        ax.set_title("simulation, clean protocol (clean input; max_k psi fed back as a binary\nframe), mean over test sequences and seeds", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig
    def dynamics():
        """Does the network know how the balls move: the headline simulation per step beside the two
        baselines (BCE; position error), the motion fraction beside what physics from two frames
        predicts (where the summary has it), the attention on real and empty
        components, and the attention between two balls' components around their collision."""
        fig, grid = plt.subplots(2, 3, figsize=(15, 8.4))
        axes = grid.ravel()
        baselines = None
        for i, m in enumerate(models):
            per_step = (summary["models"][m].get("simulation_per_step") or {}).get(HEADLINE_PROTOCOL)
            if per_step is None:
                continue
            steps = range(1, len(per_step["bce_real_per_step"]) + 1)
            axes[0].plot(steps, per_step["bce_real_per_step"], "o-", ms=3, color=colours(i), label=NETWORK_MODELS[m])
            axes[1].plot(steps, per_step["position_error_px_per_step"], "o-", ms=3, color=colours(i),
                         label=NETWORK_MODELS[m])
            baselines = baselines or (steps, per_step)
        if baselines:
            steps, per_step = baselines
            axes[0].plot(steps, per_step["bce_hold_per_step"], "k--", label="holding the last frame seen")
            axes[0].plot(steps, per_step["bce_grey_per_step"], ":", color="0.4", label="uniform grey, mean density")
            axes[1].plot(steps, per_step["hold_position_error_px_per_step"], "k--", label="holding the ball where seen")
        axes[0].set(xlabel="simulated step", ylabel="BCE of sum_k gamma psi_k (nats per frame)")
        axes[1].set(xlabel="simulated step", ylabel="position error of the owning component (px)")
        axes[0].set_title(f"simulation ({HEADLINE_PROTOCOL} protocol)", fontsize=10)
        axes[1].set_title("where the component puts its ball\n(the RNN's one component: the centroid of all balls)",
                          fontsize=9)
        for ax in axes[:2]:
            ax.legend(fontsize=7)
            ax.xaxis.get_major_locator().set_params(integer=True)
        for ax, keys, title in ((axes[2], (("balls/motion/slope", "clean input"), ("balls_noisy/motion/slope",
                                                                                   "noisy input")),
                                 "motion fraction, teacher-forced\n(1: moves each ball as it moves; 0: copies)"),
                                (axes[3], (("balls/attention/on_real", "on real components"),
                                           ("balls/attention/on_empty", "on empty components")),
                                 "mean attention a_ki, 4 balls (K as trained)")):
            for j, (key, label) in enumerate(keys):
                for i, m in enumerate(models):
                    entry = summary["models"][m]["measures"].get(key) or {}
                    if entry.get("mean") is None:
                        continue
                    x = i * (len(keys) + 1) + j
                    ci = entry.get("ci95") or [entry["mean"]] * 2
                    ax.bar(x, entry["mean"], color=colours(i), alpha=1.0 if j == 0 else 0.45,
                           yerr=[[entry["mean"] - ci[0]], [ci[1] - entry["mean"]]], capsize=3)
                    ax.plot([x] * len(entry["per_seed"]), entry["per_seed"], "k.", ms=4)
            ax.set_xticks([i * (len(keys) + 1) + (len(keys) - 1) / 2 for i in range(len(models))])
            ax.set_xticklabels([textwrap.fill(NETWORK_MODELS[m], 12) for m in models], fontsize=7)
            ax.set_title(title + f"\n(dark: {keys[0][1]}; light: {keys[1][1]})", fontsize=9)
        axes[2].axhline(1.0, color="0.5", lw=0.8)
        data = next((summary["models"][m]["measures"] for m in models if (summary["models"][m]["measures"].get(
            "balls/motion_references/simulator/slope") or {}).get("mean") is not None), None)   # the test data's
        if data:                                       # physics from the true centres (rnem.motion_references)
            for (name, label), style in zip(MOTION_REFERENCE_NAMES.items(), (":", "-.", "--", (0, (1, 4)))):
                axes[2].axhline(data[f"balls/motion_references/{name}/slope"]["mean"], ls=style, color="0.25",
                                lw=0.9, label=label)
            axes[2].set_ylim(0, 1.45)                  # room for the legend above the bars and lines
            axes[2].legend(fontsize=6, loc="upper left", framealpha=0.9)
        lags, drawn = None, False
        for i, m in enumerate(models):
            measures = summary["models"][m]["measures"]
            lags = lags or sorted((int(key.rsplit("/", 1)[1]) for key in measures
                                   if key.startswith("balls/attention/collisions/by_lag/")))
            entries = [measures.get(f"balls/attention/collisions/by_lag/{lag}") or {} for lag in lags]
            apart = measures.get("balls/attention/collisions/on_apart") or {}
            if not lags or any(e.get("mean") is None for e in entries) or apart.get("mean") is None:
                continue
            lo, hi = zip(*[e.get("ci95") or [e["mean"]] * 2 for e in entries])
            axes[4].plot(lags, [e["mean"] for e in entries], "o-", ms=3, color=colours(i), label=NETWORK_MODELS[m])
            axes[4].fill_between(lags, lo, hi, color=colours(i), alpha=0.2)
            drawn = True
            axes[4].axhline(apart["mean"], ls="--", color=colours(i), lw=0.9,
                            label=f"{NETWORK_MODELS[m]}: balls apart (no collision within "
                            f"{max(abs(lag) for lag in lags)} steps)")
        axes[4].axvline(0, color="0.6", lw=0.8)
        axes[4].set(xlabel="steps after the collision (0: the step that predicts the first frame after it)",
                    ylabel="mean a_ki between the two balls' components")
        axes[4].set_title("attention around a collision of two balls, 4 balls\n(mean over seeds, 95 % interval)",
                          fontsize=9)
        if drawn:
            axes[4].legend(fontsize=7, loc="upper left")
        else:                                          # no model with attention, or no collision in a step measured
            axes[4].text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes[4].transAxes)
        axes[5].axis("off")
        fig.suptitle("does the network know how the balls move? (mean over seeds, 95 % interval, dots: seeds)",
                     fontsize=10)
        fig.tight_layout()
        return fig
    figures = {"network_comparison.png": comparison, "network_simulation.png": simulation}
    if any(summary["models"][m].get("simulation_per_step") for m in models):
        figures["network_dynamics.png"] = dynamics
    return figures


def network_figures(path: str, out: str) -> list:
    """The figures of a relational_nem_network.py result (with --sample) or of its summary
    (--summarise) into out; returns the files written."""
    run = load_run(path, (), "--network")
    sources = provenance.record(path)
    summary = "models" in run and "orderings" in run
    ns = None if summary else network_sample(run, path)                         # checked before anything is drawn
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update(STYLE)
    if summary:
        figures = network_summary_figures(run, plt)
    else:
        cfg = current_names(run.get("config", {}))
        stem = os.path.splitext(os.path.basename(path))[0]
        kind = "rnn" if cfg.get("kind") == "rnn_em" and cfg.get("components") == 1 else cfg.get("kind")  # the paper's RNN
        title = (f"{NETWORK_NAMES.get(kind, kind)}, K = {cfg.get('components')}, "
                 f"{cfg.get('n_balls')} balls" + (", two ball types" if cfg.get("masses") else "")
                 + (f", curtain {cfg.get('curtain')}" if cfg.get("curtain") else "") + f", seed {cfg.get('seed')}")
        figures = {f"{stem}_frames.png": lambda: network_frames_figure(ns, plt, title),
                   f"{stem}_simulation.png": lambda: network_simulation_frames_figure(ns, plt, title)}
    drawn = draw_all(figures, plt, f"--network {path}: malformed {'summary' if summary else 'result'}")
    os.makedirs(out, exist_ok=True)                               # only once every figure is drawn
    for name, fig in drawn.items():
        provenance.save_png(fig, os.path.join(out, name), sources, DPI)
        plt.close(fig)
    return list(drawn)


def draw_all(figures: dict, plt, malformed: str) -> dict:
    """{name: figure} of every draw() in figures, or ConfigError (`malformed`, then what broke)
    when the data a figure reads has the wrong shape or lacks a key: nothing is written then."""
    drawn = {}
    try:
        for name, draw in figures.items():
            drawn[name] = draw()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        plt.close("all")
        raise ConfigError(f"{malformed} ({type(err).__name__}: {err})")
    return drawn


def interactions_figures(path: str, out: str) -> list:
    """The figure of a relational_nem_interactions.py result into out: of a summary (--seeds,
    results/interactions.json) interactions_horizon.png (interactions_horizon_figure), of one seed's
    result <name>_tracks.png (interactions_sample_figure); returns the files written."""
    data = load_run(path, (), "--interactions")
    sources = provenance.record(path)
    if "sample" in data:                                          # one seed's result: its sample sequence
        name = f"{os.path.splitext(os.path.basename(path))[0]}_tracks.png"
        draw = lambda plt: interactions_sample_figure(data, path, plt)                  # noqa: E731
    else:
        require_keys(data, ("rounds", "seeds", "oracle"), path, "--interactions")
        if not data["oracle"] or not os.path.isfile(data["oracle"]):
            raise ConfigError(f"--interactions {path}: the oracle-trained sweep it names ({data['oracle']}) is not there")
        oracle = load_run(data["oracle"], (), "--interactions", check_kind=False)   # a sweep of the main script
        sources = provenance.record(path, data["oracle"])
        name = "interactions_masses_horizon.png" if data["config"].get("masses") else "interactions_horizon.png"
        draw = lambda plt: interactions_horizon_figure(data, oracle, path, plt)        # noqa: E731
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update(STYLE)
    fig = draw(plt)                                               # checks what it reads before drawing
    os.makedirs(out, exist_ok=True)
    provenance.save_png(fig, os.path.join(out, name), sources, DPI)
    plt.close(fig)
    return [name]


def interactions_horizon_figure(summary: dict, oracle: dict, path: str, plt):
    """Per K the closed-loop horizon and the one-step ball-ball velocity MSE of the relational model,
    oracle-trained (the sweep the summary names) and frame-trained round by round, with the
    frame-trained per-ball model; means over seeds with 95 % intervals."""
    import matplotlib.ticker
    try:
        ks = sorted(summary["rounds"][0]["summary"], key=int)
        series = [("oracle-trained", oracle["summary"], "relational", "k", "-")]
        for entry in summary["rounds"]:
            series.append((f"frame-trained, round {entry['round']}", entry["summary"], "relational",
                           None, "--" if entry["round"] == 1 else "-"))
        series.append(("frame-trained per-ball (last round)", summary["rounds"][-1]["summary"], "non_relational",
                       "0.6", ":"))
        values = {label: [[part[k][m][name] for k in ks] for m in ("horizon", "one_step_vel_mse_ball")]
                  for label, part, name, _, _ in series}
    except (KeyError, TypeError, IndexError) as err:
        raise ConfigError(f"--interactions {path}: malformed summary ({type(err).__name__}: {err})")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.array([int(k) for k in ks])
    rounds = plt.get_cmap("viridis")
    for i, (label, _, _, colour, style) in enumerate(series):
        colour = colour or rounds(0.15 + 0.6 * (i - 1) / max(1, len(summary["rounds"]) - 1))
        for ax, entries in zip(axes, values[label]):
            mean = np.array([e["mean"] for e in entries])
            ci = np.array([e["ci95"] or [e["mean"]] * 2 for e in entries])
            ax.errorbar(x + 0.06 * (i - len(series) / 2), mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], ls=style,
                        color=colour, marker="o", ms=4, capsize=2, label=label)
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))   # 5, 10, 20, 50, ... steps
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel("steps until the mean position error reaches r")
    axes[0].set_title("closed-loop horizon (from the true first state)", fontsize=10)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("one-step velocity MSE on ball-ball steps")
    axes[1].set_title("a collision's outcome, one step ahead", fontsize=10)
    for ax in axes:
        ax.set_xlabel("balls K (trained on 4)")
        ax.set_xticks(x)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"the simulator recipe trained on the true states against trained on what the tracker saw in frames "
                 f"({'two ball types, ' if summary['config'].get('masses') else ''}{len(summary['seeds'])} seeds)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def interactions_sample_figure(result: dict, path: str, plt):
    """interactions_tracks.png: one training sequence of a seed's result: the tracked positions and
    the velocities inferred from them (coloured by component) over the true ones (grey lines), and
    the transitions kept as training windows (unshaded)."""
    try:
        sample = result["sample"]
        pos, vel = np.array(sample["positions"], float), np.array(sample["velocities"], float)   # (T, K, 2); None -> nan
        present, usable = np.array(sample["present"], bool), np.array(sample["usable"], bool)
        truth = np.array(sample["truth"], float)                                                  # (T, B, 4)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"--interactions {path}: malformed sample ({type(err).__name__}: {err})")
    T = len(pos)
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5), sharex=True)
    colours = plt.get_cmap("tab10")
    for axis, name in enumerate("xy"):
        for row, (values, true, label) in enumerate(((pos, truth[..., axis], f"{name} (box units)"),
                                                     (vel, truth[..., 2 + axis], f"v{name} (box units per unit time)"))):
            ax = axes[row, axis]
            ax.plot(range(T), true, color="0.75", lw=2.5, drawstyle="steps-post" if row else "default")
            for k in range(pos.shape[1]):
                shown = np.where(present[:, k], values[:, k, axis] if values.ndim == 3 else np.nan, np.nan)
                ax.plot(range(T), shown, ".", color=colours(k), ms=5)
            for t in np.nonzero(~usable)[0]:
                ax.axvspan(t, t + 1, color="0.9", lw=0, zorder=0)
            ax.set_ylabel(label)
    for ax in axes[1]:
        ax.set_xlabel("frame")
    cfg = result.get("config", {})
    fig.suptitle(f"training sequence {sample.get('index')} of seed {cfg.get('seed')}"
                 f"{', two ball types' if cfg.get('masses') else ''}: tracked positions and the velocities inferred from "
                 f"them (dots, one colour per component) over the truth (grey);\nshaded: transitions not kept as "
                 f"training windows (the tracker unsure, or a velocity undefined)", fontsize=10)
    fig.tight_layout()
    return fig
