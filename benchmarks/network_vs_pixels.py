"""Side by side on the same test frames: the paper's network (relational_nem_network.py, learned
end to end) and the structured pipeline (relational_nem_pixels.py: the known disk renderer and
the simulator recipe's relational model, or constant velocity, between frames).

    python3 benchmarks/network_vs_pixels.py      # the saved R-NEM networks models/network/r_nem_seed<N>.npz

For each seed whose network is saved: the network's 256 test sequences of 4 balls (24 px, 20
frames), tracked by both, with the same measures computed the same way for both:
- ARI after seeing frame t (the network: its E-step on the frame; the pipeline: after its EM),
  mean over the last 10 frames;
- next-frame BCE of max_k psi predicted before the frame (nats per frame, frames 2..19, clipped to
  [1e-3, 1 - 1e-3] as the pixel script's BCE), and of copying the frame with the best flip rate.
Writes benchmarks/network_vs_pixels.json (a measurement, like kernel_check.json).
"""
import glob
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import numpy as np  # noqa: E402

import relational_nem_network as N  # noqa: E402
import relational_nem_pixels as P  # noqa: E402
from rnem import tracker  # noqa: E402
from rnem.cli import stored_config  # noqa: E402
from rnem.environment import code_sha256, environment  # noqa: E402
from rnem.files import write_json_atomic  # noqa: E402
from rnem.measures import BCE_CLIP  # noqa: E402
from rnem.sweeps import mean_interval  # noqa: E402

for _script in (N.__file__, P.__file__):   # their sha256 as imported, before any work
    code_sha256(_script)

OUT = os.path.join(ROOT, "benchmarks", "network_vs_pixels.json")
LAST = 10
PIPELINES = ("simulator.relational", "constant_velocity")


def one_seed(model_path: str) -> dict:
    net, meta = N.load_network(model_path)
    cfg = stored_config(N.NetworkConfig, meta["config"])
    scenes = N.make_scenes(cfg, cfg.n_eval, "network/test")
    frames = N.flat_frames(scenes)
    t0 = time.perf_counter()
    run = N.run_network(net, scenes, cfg.components, cfg.seed, "network/test")            # ari: frames 1..T-1
    out = {"network": {"ari_last": float(run["ari"][-LAST:].mean()),
                       "bce_max": float(N.frame_bces(frames[2:], run["max"][1:], clip=BCE_CLIP).mean()),
                       "seconds": time.perf_counter() - t0}}
    q = N.best_flip_rate(frames)
    out["copy_best_flip"] = float(N.frame_bces(frames[2:], frames[1:-1], clip=q).mean())
    pcfg = P.PixelConfig(seed=cfg.seed, size=cfg.size, t_frames=cfg.t_frames, components=cfg.components,
                         n_balls=str(cfg.n_balls), n_eval=cfg.n_eval)
    models = P.load_dynamics(pcfg, PIPELINES)
    for name in PIPELINES:
        t0 = time.perf_counter()
        tracked = P.track(scenes, pcfg, tracker.make_step(name, models), tracker.KnownRenderer(pcfg.size, pcfg.softness))
        out[name] = {"ari_last": float(np.mean(tracked["ari_after_em"][-LAST:])),
                     "bce_max": float(np.mean(tracked["next_frame_bce"][1:])), "seconds": time.perf_counter() - t0}
    return out


def main() -> int:
    paths = sorted(glob.glob(os.path.join(ROOT, "models", "network", "r_nem_seed*.npz")))
    if not paths:
        print("error: no models/network/r_nem_seed<N>.npz: run bash regenerate.sh network first", file=sys.stderr)
        return 2
    per_seed = {os.path.basename(p)[:-4]: one_seed(p) for p in paths}
    summary = {}
    for who in ("network",) + PIPELINES:
        for key in ("ari_last", "bce_max"):
            summary[f"{who}/{key}"] = mean_interval([s[who][key] for s in per_seed.values()])
    summary["copy_best_flip"] = mean_interval([s["copy_best_flip"] for s in per_seed.values()])
    env = {**environment("float32", __file__), "dtype": "float32 (the network), float64 (the pipeline)",
           "network_source_sha256": code_sha256(N.__file__)[0], "pixels_source_sha256": code_sha256(P.__file__)[0]}
    write_json_atomic(OUT, {"per_seed": per_seed, "summary": summary, "measures": __doc__.split("\n\n")[2],
                            "env": env})
    for key, value in summary.items():
        print(f"{key:32s} {value['mean']:.4f}  {value['ci95']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
