"""Every committed result is what the committed code computes: a cheap, exact slice of each is
recomputed here and compared, so a change that moves a number fails until its results are
regenerated, and a pure refactor needs no regeneration.

- seed-0 runs (run.json, results/run_*.json): their saved models (models/) evaluated on the first evaluation K give
  the committed closed-loop, one-step and long-horizon figures, and one epoch of training gives
  the committed first history entry;
- sweeps (results/sweep*.json): their seed-0 values are those of the seed-0 runs (the same config);
- pixel runs with a sample sequence: tracking that sequence again gives the committed positions,
  presence and maps, frame by frame; pixel ten-seed files: their seed-0 values are the seed-0 file's.

Tolerances: the figures agree to 1e-8 relative on any kernel; a long rollout's curve only over
its first LONG_EXACT steps (later steps are chaotic, docs/reproducibility.md), and chaotic
measures (sweeps.CHAOTIC_METRICS) of a sweep are compared when the sweep and the run were made on the
same BLAS kernel.
"""
import dataclasses
import functools
import json
import os
import subprocess
import sys
import traceback

import numpy as np
import pytest

from rnem import environment, simulator, state_config, state_evaluation, state_models, state_training, sweeps, tracker
from rnem.cli import current_names, stored_config
from conftest import ROOT

RTOL = 1e-8
LONG_EXACT = 20          # steps of a long rollout that reproduce on every kernel (docs/reproducibility.md)

RUNS = {"run.json": "models/stub_seed0.npz", "results/run_attention.json": "models/stub_attention_seed0.npz",
        "results/run_simulator.json": "models/simulator_seed0.npz",
        "results/run_simulator_masses.json": "models/simulator_masses_seed0.npz"}
# sweep -> variant -> (its seed-0 run, the measures of that run that move between BLAS kernels:
# compared only when the sweep and the run were written on the same kernel; measured by
# benchmarks/kernel_check.py: the stub's seed-0 mean training reproduces, its attention training does not)
SWEEPS = {"results/sweep_simulator.json": {"simulator": ("results/run_simulator.json",
                                                        sweeps.CHAOTIC_METRICS["simulator"])},
          "results/sweep_simulator_masses.json": {"simulator": ("results/run_simulator_masses.json",
                                                               sweeps.CHAOTIC_METRICS["simulator"])},
          "results/sweep.json": {"mean": ("run.json", sweeps.LONG_ROLLOUT_METRICS),
                                 "attention": ("results/run_attention.json", tuple(sweeps.SWEEP_METRICS))}}
COMMITTED_JSON = sorted(name for name in subprocess.run(["git", "ls-files", "*.json"], cwd=ROOT, capture_output=True,
                                                        text=True).stdout.split()
                        if not name.startswith("benchmarks/"))    # kernel_check.json: a measurement, not a result


def refuse_constant(constant):
    raise ValueError(f"{constant} is not JSON")


@functools.lru_cache(maxsize=None)
def load(name):
    """A committed JSON file, parsed once per session (many tests read the same files): read-only,
    no test changes what it returns. Strict: NaN and Infinity, which json writes but JSON does not
    have, raise ValueError."""
    with open(os.path.join(ROOT, name)) as f:
        return json.load(f, parse_constant=refuse_constant)


def config_of(payload) -> state_config.Config:
    return stored_config(state_config.Config, payload["config"], known_only=True)


def close(committed, recomputed, where):
    """Every number of `committed` equals its counterpart in `recomputed` to RTOL (same structure)."""
    if isinstance(committed, dict):
        assert set(committed) <= set(recomputed), where
        for key in committed:
            close(committed[key], recomputed[key], f"{where}.{key}")
    elif isinstance(committed, list):
        assert len(committed) == len(recomputed), where
        for i, (a, b) in enumerate(zip(committed, recomputed)):
            close(a, b, f"{where}[{i}]")
    elif isinstance(committed, float) or isinstance(recomputed, float):
        assert recomputed == pytest.approx(committed, rel=RTOL, abs=1e-12), where
    else:
        assert committed == recomputed, where


def test_every_committed_result_has_a_slice_test():
    assert set(COMMITTED_JSON) == (set(RUNS) | set(SWEEPS) | set(PIXEL_RESULTS) | set(NETWORK_RESULTS) | set(NETWORK_SUMMARIES)
                                   | set(INTERACTIONS) | set(INTERACTIONS_SUMMARIES))


def test_every_committed_result_records_the_same_provenance():
    # the code that made it (the script's and the package's sha256) and the machine, under the same
    # env fields in every file (a sweep of several variants: in each variant, each its own sweep)
    fields = None
    for name in COMMITTED_JSON:
        payload = load(name)
        envs = [payload["env"]] if "env" in payload else [v["env"] for v in payload.get("variants", {}).values()]
        assert envs, f"{name} records no env"
        for env in envs:
            assert env.get("source_sha256") and env.get("package_sha256"), f"{name} lacks the sha256 of its code"
            fields = fields or set(env)
            assert set(env) == fields, f"{name}: env fields {sorted(set(env) ^ fields)} differ from the other results'"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_seed0_models_give_the_committed_evaluation(name, slow_slices_result):
    run = load(name)
    assert run["env"]["dtype"] == "float64" and run["config"]["seed"] == 0 and not run["config"]["quick"]
    same_evaluation(run, slow_slices_result[name]["evaluation"], name)

def test_a_result_records_its_script_as_it_was_when_the_run_started(tmp_path):
    # a script that edits itself mid-run (as a developer may during a long training) still records
    # the sha256 of the code that ran; source_sha256 reads the file as it is now
    script = tmp_path / "edits_itself.py"
    script.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\n"
                      "from rnem import environment\n"
                      "open(__file__, 'a').write('# edited\\n')\n"
                      "print(environment.environment('float64', __file__)['source_sha256'], "
                      "environment.source_sha256(__file__))\n")
    before = environment.source_sha256(str(script))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    recorded, now = done.stdout.split()
    assert recorded == before != now == environment.source_sha256(str(script))



def evaluation_again(model_file: str, cfg: state_config.Config) -> dict:
    """The models of model_file evaluated on cfg's first evaluation K: that K's rollout, one_step and
    long_horizon figures (a long curve's first LONG_EXACT steps), as JSON (the slow slices' process)."""
    by_kind = {model.kind: model for model in state_models.load_models(os.path.join(ROOT, model_file)).values()}
    k = cfg.eval_k[0]
    sections = state_evaluation.evaluate(by_kind, {k: state_training.test_set(cfg, k, "eval")},
                                         {k: state_training.test_set(cfg, k, "long")}, cfg)
    rollout, one_step, long_horizon = sections["rollout"], sections["one_step"], sections["long_horizon"]
    long_k = {kind: {key: (list(value[:LONG_EXACT]) if isinstance(value, list) else value)
                     for key, value in curves.items()}
              for kind, curves in long_horizon[str(k)].items() if isinstance(curves, dict)}
    return json.loads(json.dumps({"K": k, "rollout": rollout[str(k)], "one_step": one_step[str(k)],
                                  "long_horizon": long_k}))


def same_evaluation(run: dict, again: dict, name: str) -> None:
    """run's rollout, one_step and long_horizon figures at again's K are again's (evaluation_again)."""
    k = str(again["K"])
    close(run["rollout"][k], again["rollout"], f"{name} rollout K={k}")
    close(run["one_step"][k], again["one_step"], f"{name} one_step K={k}")
    for kind, curves in run["long_horizon"][k].items():
        if not isinstance(curves, dict):
            continue
        for key, value in curves.items():
            if isinstance(value, list):
                close(value[:LONG_EXACT], again["long_horizon"][kind][key], f"{name} long_horizon K={k} {kind} {key}")
            elif key == "horizon":
                assert again["long_horizon"][kind][key] == value, f"{name} long_horizon K={k} {kind} horizon"


# the simulator recipe's training with masses is its training without them plus the radius input
FIRST_EPOCH = sorted(set(RUNS) - {"results/run_simulator.json"})


def first_epoch_again(name: str) -> dict:
    """{kind: the first history entry} of one epoch of training with the run's config (slow slices)."""
    run = load(name)
    cfg = config_of(run)
    train, val, _, _ = state_training.make_data(dataclasses.replace(cfg, eval_k=(cfg.eval_k[0],), n_eval=1, t_long=cfg.t_eval))
    kinds = state_config.MODEL_KINDS if cfg.recipe == "stub" else ("non_relational",)    # the simulator's relational: 3 s
    out = {}
    for kind in kinds:
        _, history, _ = state_training.train_model(kind, cfg, train, val, log=lambda *_: None, stop_after=1)
        out[kind] = {key: values[0] for key, values in history.items() if key != "batch_k"}
    return json.loads(json.dumps(out))


@pytest.mark.parametrize("name", FIRST_EPOCH)
def test_first_epoch_of_training_gives_the_committed_history(name, slow_slices_result):
    run = load(name)
    for kind, again in slow_slices_result[name]["first_epoch"].items():
        first = {key: values[0] for key, values in run["history"][kind].items() if key != "batch_k"}
        close(first, again, f"{name} {kind} epoch 1")


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweeps_seed0_is_the_seed0_run(name):
    sweep = load(name)
    variants = sweep["variants"] if "variants" in sweep else {"simulator": sweep}
    for variant, (run_name, moving) in SWEEPS[name].items():
        one, run = variants[variant], load(run_name)
        assert one["seeds"][0] == 0 and not one["failed"]
        same_kernel = one["env"]["blas"].get("kernel") == run["env"]["blas"].get("kernel")
        compared = 0
        for k, per_metric in one["summary"].items():
            for metric, per_predictor in per_metric.items():
                for predictor, entry in per_predictor.items():
                    assert len(entry["per_seed"]) == one["n_seeds"]
                    assert entry["mean"] == pytest.approx(np.mean(entry["per_seed"]), rel=1e-12)
                    if k not in run["rollout"] or predictor == "truth" or (metric in moving and not same_kernel):
                        continue
                    value = sweeps.SWEEP_METRICS[metric](run, k, predictor)
                    assert entry["per_seed"][0] == pytest.approx(value, rel=RTOL, abs=1e-12), \
                        f"{name} {variant} K={k} {metric} {predictor}"
                    compared += 1
        assert compared > 0 or variant == "attention", f"{name} {variant}: nothing of seed 0 compared"


PIXEL_RESULTS = sorted(f"results/{f}" for f in os.listdir(os.path.join(ROOT, "results"))
                       if f.startswith("pixels") and f.endswith(".json"))
PIXEL_SAMPLES = [f for f in PIXEL_RESULTS if not f.endswith("_seeds.json")]
PIXEL_FRAMES = 2         # frames of a pixel run tracked again


def test_every_pixel_result_is_regenerated_by_the_script():
    import relational_nem_pixels as P
    with open(os.path.join(ROOT, "regenerate.sh")) as f:
        script = f.read()
    written = {w for w in script.split() if w.startswith("results/pixels") and w.endswith(".json")}
    assert set(PIXEL_RESULTS) == written
    assert P.PixelConfig.out.startswith("runs/")              # a user's run never writes into results/


@pytest.mark.parametrize("name", PIXEL_RESULTS)
def test_a_pixel_result_was_made_with_the_committed_models(name):
    result = load(name)
    if result.get("models") is None:                          # constant velocity only: no model read
        return
    assert "models_sha256" in result, f"{name} does not record the sha256 of the models it read: regenerate it"
    assert environment.source_sha256(os.path.join(ROOT, result["models"])) == result["models_sha256"], \
        f"{name} was made with another version of {result['models']}: regenerate it"


def track_sample(name) -> dict:
    """The sample payload of pixel file `name` tracked again over its first PIXEL_FRAMES frames."""
    import relational_nem_pixels as P
    result = load(name)
    cfg = stored_config(P.PixelConfig, result["config"])
    sample = result["sample"]
    k, n = P.group_sizes(cfg, cfg.n_eval)[0]
    # the first PIXEL_FRAMES frames of the first ball-count group, all its sequences (EM's discovery
    # rounds run while any sequence of the batch discovers, so a sequence alone would differ); a
    # shorter simulation has the same first frames (the generator draws only the first state)
    cfg = dataclasses.replace(cfg, t_frames=PIXEL_FRAMES)
    first = P.make_frames(cfg, k, n, "pixels/data")
    if cfg.renderer == "learned":
        renderer = P.LearnedRenderer(cfg.size, cfg.hidden, simulator.rng_for(cfg.seed, "pixels/renderer-init"))
        for key, value in result["renderer_training"]["parameters"].items():
            renderer.params[key][...] = value
    else:
        renderer = tracker.KnownRenderer(cfg.size, cfg.softness)
    names = P.DYNAMICS if cfg.dynamics == "all" else (cfg.dynamics,)
    step = tracker.make_step(sample["dynamics"], P.load_dynamics(cfg, names), cfg.masses)
    shots = P.track(first, cfg, step, renderer, sample=sample["index"])["sample"]
    return P.sample_payload(shots, first, cfg.size, renderer.name, sample["dynamics"])


def same_sample(name, again) -> None:
    sample = load(name)["sample"]
    for key in ("truth", "frames", "positions", "present", "prediction_component", "gamma_component"):
        assert again[key] == sample[key][:len(again[key])], f"{name} sample {key}"
    assert len(again["positions"]) == PIXEL_FRAMES


@pytest.mark.parametrize("name", [f for f in PIXEL_SAMPLES if load(f)["config"]["renderer"] == "known"])
def test_pixel_sample_sequence_tracks_as_committed(name):
    same_sample(name, track_sample(name))


def seed0_file(name):
    return name.replace("_seeds.json", ".json")


@pytest.mark.parametrize("name", [f for f in PIXEL_RESULTS if f.endswith("_seeds.json")])
def test_pixel_seeds_seed0_is_the_seed0_file(name):
    seeds, first = load(name), load(seed0_file(name))
    assert seeds["seeds"][0] == 0 and first["config"]["seed"] == 0
    differ = {key for key in seeds["config"] if seeds["config"][key] != first["config"][key]}
    assert differ <= {"seeds", "out"}, differ
    for dynamics in (d for d in seeds if d in first and isinstance(first[d], dict) and "ari_after_em" in first[d]):
        for measure, entry in seeds[dynamics].items():
            if isinstance(entry, dict) and "per_seed" in entry and measure != "seconds":
                assert entry["per_seed"][0] == pytest.approx(first[dynamics][measure], rel=RTOL, abs=1e-12), \
                    f"{name} {dynamics} {measure}"


def test_committed_json_is_strict():
    for name in COMMITTED_JSON:
        load(name)                                     # raises on NaN or Infinity
    with pytest.raises(ValueError, match="NaN is not JSON"):
        json.loads('{"a": NaN}', parse_constant=refuse_constant)



# The slow slices, computed by slow_slices() in a second process that conftest starts as soon as the
# tests are collected, so that they run beside the other tests (about 50 s on one core):
# - the seed-0 runs' models evaluated again (RUNS, and the last round of INTERACTIONS) and one epoch
#   of training (FIRST_EPOCH);
# - one pixel file tracked whole, for one dynamics: a change of the tracker (an EM constant, the
#   discovery, the duplicate rule, the curtain's hidden components) that leaves the first frames
#   alone still moves these measures; constant velocity needs no model and is the cheapest;
# - the learned renderer's first two training losses, per learned file (the second comes after one
#   Adam step; the cosine schedule's first rate does not depend on the number of iterations), and
#   its sample sequence's first frames tracked again (as for the known renderer above).
# - the paper's network: for every result file the untrained network's loss on the first
#   validation sequences (the seed's data and initial weights), and for every committed model
#   (models/network/*_seed0.npz) the first test sequences' ARI and BCE (relational_nem_network.result_slice);
# - interactions learned from frames: round 1's windows of the first frames of the first chunk.
PIXEL_WHOLE = ("results/pixels_curtain.json", "constant_velocity")
PIXEL_LEARNED = [f for f in PIXEL_SAMPLES if load(f)["config"]["renderer"] == "learned"]


def pixel_whole_again() -> dict:
    """The measures of PIXEL_WHOLE, tracked again."""
    import relational_nem_pixels as P
    name, dynamics = PIXEL_WHOLE
    cfg = stored_config(P.PixelConfig, load(name)["config"])
    assert cfg.renderer == "known" and len(P.group_sizes(cfg, cfg.n_eval)) == 1
    (k, n), = P.group_sizes(cfg, cfg.n_eval)
    return P.pool([P.track(P.make_frames(cfg, k, n, "pixels/data"), cfg, tracker.make_step(dynamics, {}, cfg.masses),
                           tracker.KnownRenderer(cfg.size, cfg.softness))])


def renderer_start_again(name) -> dict:
    """The first two renderer training losses of a PIXEL_LEARNED file and its sample tracked again."""
    import relational_nem_pixels as P
    result = load(name)
    cfg, trainer = stored_config(P.PixelConfig, result["config"]), result["renderer_training"]["dynamics"]
    step = tracker.make_step(trainer, P.load_dynamics(cfg, (trainer,)), cfg.masses)
    return {"losses": P.train_renderer(dataclasses.replace(cfg, train_steps=2), step, log=lambda *_: None)[1],
            "sample": track_sample(name)}


def run_again(name, model) -> dict:
    out = {"evaluation": evaluation_again(model, config_of(load(name)))}
    if name in FIRST_EPOCH:
        out["first_epoch"] = first_epoch_again(name)
    return out


def interactions_again(name, model) -> dict:
    return {"first_chunk": interactions_first_chunk(name),
            "evaluation": evaluation_again(model, config_of({"config": load(name)["simulator_config"]}))}


def network_again(name) -> dict:
    import relational_nem_network as N
    from rnem.blas import one_blas_thread
    with one_blas_thread():                                   # as the script measures (float32 sums)
        result = load(name)
        cfg = stored_config(N.NetworkConfig, result["config"])
        model = network_model(name)
        out = {"untrained_val_loss": N.untrained_slice(cfg)}
        if model:                                             # the test sequences, where the model is committed
            out |= N.trained_slice(N.load_network(os.path.join(ROOT, model))[0], cfg)
    if "motion_references_slope" in result["slice"]:          # the test data's part: once per data (seeds share it)
        out["motion_references_slope"] = references_slice_of(**{key: getattr(cfg, key) for key in NETWORK_DATA})
    return out


NETWORK_DATA = ("seed", "size", "n_balls", "t_frames", "frame_steps", "curtain", "masses", "n_eval")


@functools.lru_cache(maxsize=None)
def references_slice_of(**data) -> dict:
    import relational_nem_network as N
    return N.references_slice(N.NetworkConfig(**data))


def slow_slice_jobs() -> dict:
    """name -> the function that recomputes that slice (each test of a slow slice reads its name)."""
    jobs = {"whole": pixel_whole_again}
    jobs |= {name: functools.partial(renderer_start_again, name) for name in PIXEL_LEARNED}
    jobs |= {name: functools.partial(run_again, name, model) for name, model in RUNS.items()}
    jobs |= {name: functools.partial(interactions_again, name, model) for name, model in INTERACTIONS.items()}
    jobs |= {name: functools.partial(network_again, name) for name in NETWORK_RESULTS}
    return jobs


def slow_slices(out_path: str) -> None:
    """Writes to out_path {name: the slice recomputed, or {"error": its traceback}} for every
    slow slice: one slice that fails fails only the tests that read it."""
    out = {}
    for name, job in slow_slice_jobs().items():
        try:
            out[name] = job()
        except Exception:                                     # recorded for the tests of this slice
            out[name] = {"error": traceback.format_exc()}
    with open(out_path, "w") as f:
        json.dump(out, f)


def test_pixel_run_tracked_whole_gives_the_committed_measures(slow_slices_result):
    name, dynamics = PIXEL_WHOLE
    committed = {key: value for key, value in load(name)[dynamics].items() if key != "seconds"}
    close(committed, {key: slow_slices_result["whole"][key] for key in committed}, f"{name} {dynamics}")


@pytest.mark.parametrize("name", PIXEL_LEARNED)
def test_renderer_training_starts_as_committed(name, slow_slices_result):
    committed = load(name)["renderer_training"]["loss_per_lit_pixel"][:2]
    assert slow_slices_result[name]["losses"] == pytest.approx(committed, abs=1e-6), name   # committed: 1e-6
    same_sample(name, slow_slices_result[name]["sample"])


# The paper's network (relational_nem_network.py): float32, so its slices agree to float32 rounding
# across BLAS kernels (measured: docs/network.md), not to RTOL.
NETWORK_RESULTS = [f for f in COMMITTED_JSON if f.startswith(("results/network/", "results/network_long/",
                                                              "results/network_long_select6000/"))]
NETWORK_SUMMARIES = {name: folder for name, folder in (("results/network_summary.json", "results/network"),
                                                       ("results/network_long_summary.json", "results/network_long"),
                                                       ("results/network_long_select6000_summary.json",
                                                        "results/network_long_select6000"))
                     if name in COMMITTED_JSON}
NETWORK_RTOL = 1e-4      # float32 losses and BCEs summed in another order by another kernel
NETWORK_ARI_ATOL = 0.01  # an ARI moves by ~1e-3 when one pixel's argmax flips between near-equal components


def network_model(name: str):
    """The committed model a network result was measured from (models/<its folder>/<name>.npz), or None."""
    model = os.path.join("models", os.path.basename(os.path.dirname(name)), os.path.basename(name)[:-5] + ".npz")
    return model if os.path.isfile(os.path.join(ROOT, model)) else None


@pytest.mark.parametrize("name", NETWORK_RESULTS)
def test_network_result_slices_are_recomputed(name, slow_slices_result):
    committed, again = load(name)["slice"], slow_slices_result[name]
    assert again["untrained_val_loss"] == pytest.approx(committed["untrained_val_loss"], rel=NETWORK_RTOL), name
    if network_model(name):
        assert again["test_bce_real"] == pytest.approx(committed["test_bce_real"], rel=NETWORK_RTOL), name
        assert again["test_ari_last"] == pytest.approx(committed["test_ari_last"], abs=NETWORK_ARI_ATOL), name
    if "motion_references_slope" in committed:                # float64 physics and pixels: the same everywhere
        assert again["motion_references_slope"] == pytest.approx(committed["motion_references_slope"], rel=1e-9), name


def test_every_long_network_result_records_the_physics_references():
    # the motion fraction's references (rnem.motion_references) are in every result of the long training,
    # in full and in the slice the test above recomputes
    for name in NETWORK_RESULTS:
        if name.startswith("results/network_long/"):
            result = load(name)
            assert set(result["test"]["balls"]["motion_references"]) == set(result["slice"]["motion_references_slope"])


def test_network_models_are_the_seed0_results():
    # every seed-0 result has its model committed (the slices above measure it), and the model
    # file's training record is the result's
    import relational_nem_network as N
    for name in NETWORK_RESULTS:
        if name.endswith("_seed0.json"):
            model = network_model(name)
            assert model, f"{name}: models/network/ has no model for it"
            meta = N.load_network(os.path.join(ROOT, model))[1]
            assert meta["selected"] == load(name)["selected"] and meta["history"] == load(name)["history"], name


def test_network_results_were_selected_by_the_rule_they_record():
    # the selection replayed on each committed history picks the recorded check and stops where
    # training stopped (what the summary relies on when it replays another select_from)
    import relational_nem_network as N
    for name in NETWORK_RESULTS:
        result = load(name)
        cfg, history = current_names(result["config"]), result["history"]
        picked, stopped_at = N.selection(history["iteration"], history["val_loss"], cfg.get("select_from", 0),
                                         cfg.get("patience", 0))
        assert (picked, stopped_at or cfg["steps"]) == (result["selected"]["iteration"],
                                                        result.get("trained_steps", cfg["steps"])), name


@pytest.mark.parametrize("name", sorted(NETWORK_SUMMARIES))
def test_network_summary_is_the_summary_of_the_committed_files(name):
    import relational_nem_network as N
    committed = load(name)
    again = json.loads(json.dumps(N.summarise(os.path.join(ROOT, NETWORK_SUMMARIES[name]))))
    for key in ("models", "orderings", "beats_baselines", "selection"):
        assert again[key] == committed[key], f"{name}: {key}"


# Interactions learned from frames (relational_nem_interactions.py): the seed-0 file's last round is
# what its committed models give on the first evaluation K; its round-1 windows of the first chunk
# of sequences come out of the committed tracker again (a slow slice: seconds of tracking); the
# summary's seed-0 values are the seed-0 file's, round by round.
INTERACTIONS = {"results/interactions_seed0.json": "models/interactions_seed0.npz",
                "results/interactions_masses_seed0.json": "models/interactions_masses_seed0.npz"}
INTERACTIONS_SUMMARIES = {"results/interactions.json": "results/interactions_seed0.json",
                          "results/interactions_masses.json": "results/interactions_masses_seed0.json"}


@pytest.mark.parametrize("name", sorted(INTERACTIONS))
def test_interactions_models_give_the_last_rounds_evaluation(name, slow_slices_result):
    result = load(name)
    assert result["config"]["seed"] == 0 and result["simulator_config"]["seed"] == 0
    same_evaluation(result["rounds"][-1], slow_slices_result[name]["evaluation"], name)


@pytest.mark.parametrize("name", sorted(INTERACTIONS))
def test_interactions_first_chunk_is_tracked_again(name, slow_slices_result):
    close(load(name)["first_chunk"], slow_slices_result[name]["first_chunk"], f"{name} first_chunk")


def interactions_first_chunk(name: str) -> dict:
    """Round 1 of the seed-0 file tracked again on the first SLICE_FRAMES frames of its first TRACK_CHUNK
    training sequences."""
    import relational_nem_interactions as I
    cfg = stored_config(I.InteractionsConfig, load(name)["config"])
    states, radii = I.scenes(cfg, cfg.n_train, "interactions/train")
    n, frames = I.TRACK_CHUNK, I.SLICE_FRAMES
    tracked = I._track_job((states[:frames, :n, :, :2], radii[:n], cfg.size, cfg.components, cfg.em_iters, None))
    return I.first_chunk_slice(tracked, cfg)


@pytest.mark.parametrize("name", sorted(INTERACTIONS_SUMMARIES))
def test_interactions_summary_seed0_is_the_seed0_file(name):
    import relational_nem_interactions as I
    summary, first = load(name), load(INTERACTIONS_SUMMARIES[name])
    assert summary["seeds"][0] == 0
    assert summary["config"] == {k: v for k, v in first["config"].items() if k not in I.OUTPUT_FIELDS}
    compared = 0
    for r, entry in enumerate(summary["rounds"], start=1):
        run = I.round_payload(first, r)
        for k, per_metric in entry["summary"].items():
            for metric, per_predictor in per_metric.items():
                for predictor, values in per_predictor.items():
                    if predictor == "truth":
                        continue
                    assert values["per_seed"][0] == pytest.approx(sweeps.SWEEP_METRICS[metric](run, k, predictor),
                                                                  rel=RTOL, abs=1e-12), f"{name} round {r} {k} {metric}"
                    compared += 1
        assert entry["windows_fraction"]["per_seed"][0] == first["rounds"][r - 1]["windows_fraction"]
    assert compared > 0
