"""Models, BPTT and Adam: float64 finite-difference checks and fast paths against plain versions."""
import numpy as np
import pytest

from rnem import layers, optim, rollout_measures, state_config, state_models, state_training
from rnem.gradcheck import numerical_grad, rel_error

GRAD_TOL = 1e-7   # centred differences in float64 with h = 1e-6 agree to ~1e-9 on these smooth pieces


# every model: the non-relational one and the relational one with each aggregator
VARIANTS = ["non_relational"] + [f"relational-{agg}" for agg in state_models.AGGREGATORS]


def small_model(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "non_relational":
        model = state_models.NonRelationalDynamics(hidden=7, rng=rng)
    else:
        agg = kind.split("-")[1] if "-" in kind else "mean"
        model = state_models.RelationalDynamics(hidden=8, msg_dim=3, rng=rng, agg=agg)
    model.flat += rng.normal(0.0, 0.2, model.flat.shape)    # nonzero biases, off the initial scale
    return model


def test_mlp_gradients():
    """The MLP block alone: every weight, bias and the input, through two ReLU layers."""
    rng = np.random.default_rng(0)
    mlp = layers.MLP("m", (5, 6, 4, 3))
    layout = layers.ParamBuffer(mlp.param_shapes())
    flat = rng.normal(size=layout.size)
    p, A = layout.views(flat), layout.affine(flat, mlp.layers)
    ws = layers.Workspace(1, 1, 9, mlp.workspace_shapes(9), np.float64, mlp.lead())
    mlp.add_views(ws)
    x = np.ones((9, 6))                                      # [1, input]
    x[:, 1:] = rng.normal(size=(9, 5))
    upstream = rng.normal(size=(9, 3))

    def loss():
        return float(np.sum(mlp.forward(A, ws.slot[0], x) * upstream))

    loss()
    ws["m.d2"][0] = upstream
    dx = mlp.backward_input(A, ws.slot[0]).copy()
    g_flat = np.zeros(layout.size)
    mlp.weight_grads(ws, slice(0, 1), x, layout.affine(g_flat, mlp.layers))
    g = layout.views(g_flat)
    for name in p:
        assert rel_error(g[name], numerical_grad(loss, p[name])) < GRAD_TOL, name
    assert rel_error(dx, numerical_grad(loss, x)[:, 1:]) < GRAD_TOL


def test_affine_view_is_bias_then_weight():
    layout = layers.ParamBuffer(layers.affine_shapes("f.0", 3, 2))
    flat = np.arange(layout.size, dtype=float)
    p, A = layout.views(flat), layout.affine(flat, ["f.0"])["f.0"]
    x = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_array_equal(np.hstack([np.ones((1, 1)), x]) @ A, x @ p["f.W0"] + p["f.b0"])
    with pytest.raises(ValueError, match="right before"):
        layers.ParamBuffer({"f.W0": (3, 2), "f.b0": (2,)}).affine(flat, ["f.0"])


@pytest.mark.parametrize("kind", VARIANTS)
def test_model_gradients_every_parameter_and_input(kind):
    model = small_model(kind)
    rng = np.random.default_rng(1)
    S = rng.uniform(0, 1, (3, 4, 4))
    upstream = rng.normal(size=(3, 4, 4))

    def loss():
        return float(np.sum(model.forward(S)[0] * upstream))

    delta, cache = model.forward(S)
    grads, dS = model.backward(upstream, cache)
    assert set(grads) == set(model.params)
    for name, param in model.params.items():
        assert rel_error(grads[name], numerical_grad(loss, param)) < GRAD_TOL, name
    assert rel_error(dS, numerical_grad(loss, S)) < GRAD_TOL


@pytest.mark.parametrize("kind", VARIANTS)
def test_bptt_loss_gradients(kind):
    model = small_model(kind, seed=2)
    window = np.random.default_rng(3).uniform(0, 1, (4, 2, 3, 4))   # t_bptt = 3, B = 2, K = 3
    loss, grads = state_training.bptt_loss_and_grads(model, window)
    for name, param in model.params.items():
        numeric = numerical_grad(lambda: state_training.bptt_loss_and_grads(model, window)[0], param)
        assert rel_error(grads[name], numeric) < GRAD_TOL, name


@pytest.mark.parametrize("kind", VARIANTS)
def test_bptt_equals_plain_per_step_loop(kind):
    """The workspace BPTT (one weight-gradient matmul over all steps) against per-step
    forward/backward calls with gradients accumulated step by step."""
    model = small_model(kind, seed=4)
    window = np.random.default_rng(5).uniform(0, 1, (5, 3, 4, 4))
    T = len(window) - 1
    loss, grads = state_training.bptt_loss_and_grads(model, window)

    states, caches = [window[0]], []
    for t in range(T):
        delta, cache = model.forward(states[-1])
        states.append(states[-1] + delta)
        caches.append(cache)
    n = window[1:].size
    plain_loss = sum(float(np.sum((states[t + 1] - window[t + 1]) ** 2)) for t in range(T)) / n
    total = {name: np.zeros_like(p) for name, p in model.params.items()}
    ds_next = np.zeros_like(window[0])
    for t in reversed(range(T)):
        ds = ds_next + 2 * (states[t + 1] - window[t + 1]) / n       # dL/ds_{t+1}
        g, dS = model.backward(ds, caches[t])
        for name in total:
            total[name] += g[name]
        ds_next = ds + dS
    assert loss == pytest.approx(plain_loss, rel=1e-12)
    for name in total:
        np.testing.assert_allclose(grads[name], total[name], rtol=1e-10, atol=1e-13)


def relu(x):
    return np.maximum(x, 0)


def plain_interaction(p, agg, s_k, s_j, gates=None):
    """One ordered pair (k, j), written out: (message or effect, attention gate)."""
    if agg in ("mean", "sum"):
        return relu(np.concatenate([s_k, s_j]) @ p["msg.W0"] + p["msg.b0"]) @ p["msg.W1"] + p["msg.b1"], 1.0
    h_k, h_j = (relu(s @ p["enc.W0"] + p["enc.b0"]) for s in (s_k, s_j))
    xi = relu(np.concatenate([h_k, h_j]) @ p["emb.W0"] + p["emb.b0"])
    effect = relu(xi @ p["eff.W0"] + p["eff.b0"])
    gate = 1.0 / (1.0 + np.exp(-(np.tanh(xi @ p["att.W0"] + p["att.b0"]) @ p["att.W1"] + p["att.b1"])))
    return effect, float(gate[0]) if gates is None else gates


@pytest.mark.parametrize("agg", state_models.AGGREGATORS)
def test_relational_forward_equals_plain_pair_loop(agg):
    """Fast forward (split first layer, aggregation before the affine second layer, strided
    context view, vectorised gates) against the formula written per ordered pair j != k."""
    model = small_model(f"relational-{agg}", seed=6)
    p = model.params
    S = np.random.default_rng(7).uniform(0, 1, (2, 5, 4))
    ws = model.make_workspace(1, 2, 5)
    delta, _ = model.forward(S, ws, 0)
    gates = model.attention(ws) if agg == "attention" else None
    for b in range(2):
        for k in range(5):
            terms = []
            for j in range(5):
                if j != k:
                    value, gate = plain_interaction(p, agg, S[b, k], S[b, j])
                    terms.append(gate * value)
                    if gates is not None:
                        assert gates[b, k, j] == pytest.approx(gate, rel=1e-12)
            agg_k = np.mean(terms, axis=0) if agg == "mean" else np.sum(terms, axis=0)
            x = np.concatenate([S[b, k], agg_k])
            h = relu(relu(x @ p["dyn.W0"] + p["dyn.b0"]) @ p["dyn.W1"] + p["dyn.b1"])
            np.testing.assert_allclose(delta[b, k], h @ p["dyn.W2"] + p["dyn.b2"], rtol=1e-12, atol=1e-14)
    if gates is not None:
        assert (np.diagonal(gates, axis1=1, axis2=2) == 0).all()


def test_attention_with_gates_forced_to_one_is_the_plain_sum_of_effects():
    model = small_model("relational-attention", seed=12)
    S = np.random.default_rng(13).uniform(0, 1, (3, 4, 4))
    model.interaction.gate_override = 1.0
    forced, _ = model.forward(S)
    # the same network with the plain sum of effects written out per pair
    p = model.params
    for b in range(3):
        for k in range(4):
            E = sum(plain_interaction(p, "attention", S[b, k], S[b, j])[0] for j in range(4) if j != k)
            h = relu(relu(np.concatenate([S[b, k], E]) @ p["dyn.W0"] + p["dyn.b0"]) @ p["dyn.W1"] + p["dyn.b1"])
            np.testing.assert_allclose(forced[b, k], h @ p["dyn.W2"] + p["dyn.b2"], rtol=1e-12, atol=1e-14)
    model.interaction.gate_override = None
    assert not np.allclose(model.forward(S)[0], forced)      # the learned gates do matter


def test_context_view_equals_gather():
    c = np.random.default_rng(0).normal(size=(5, 2, 3))
    view = layers.context_view(np.concatenate([c, c]))
    np.testing.assert_array_equal(view, c[layers.context_index(5)])
    assert all(k not in layers.context_index(5)[:, k] for k in range(5))   # no diagonal pair


def test_parameter_counts_of_the_defaults():
    assert state_models.NonRelationalDynamics(64).n_params == 4740
    assert state_models.RelationalDynamics(64, 8).n_params == 6348
    assert state_models.RelationalDynamics(64, 8, agg="sum").n_params == 6348
    # enc 4*32+32, emb 64*32+32, eff 32*8+8, att 32*16+16 + 16+1, dyn 5252
    assert state_models.RelationalDynamics(64, 8, agg="attention").n_params == 160 + 2080 + 264 + 545 + 5252


def test_workspace_forward_equals_fresh_forward():
    for kind in VARIANTS:
        model = small_model(kind, seed=8)
        S = np.random.default_rng(9).uniform(0, 1, (3, 4, 4))
        ws = model.make_workspace(3, 3, 4)
        fresh, _ = model.forward(S)
        np.testing.assert_array_equal(model.forward(S, ws, 2)[0], fresh)


def test_adam_matches_hand_computed_steps():
    theta = np.array([1.0, -2.0])
    adam = optim.Adam(theta, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    g1, g2 = np.array([0.5, -0.1]), np.array([-0.2, 0.3])
    adam.step(g1)
    adam.step(g2)
    # by hand: m2 = 0.9 * 0.1 g1 + 0.1 g2, v2 = 0.999 * 0.001 g1^2 + 0.001 g2^2
    m1, v1 = 0.1 * g1, 0.001 * g1 ** 2
    start = np.array([1.0, -2.0]) - 0.1 * (m1 / 0.1) / (np.sqrt(v1 / 0.001) + 1e-8)
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 ** 2
    expected = start - 0.1 * (m2 / (1 - 0.9 ** 2)) / (np.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)


def test_clip_grad_norm():
    g = np.array([3.0, 4.0])
    assert optim.clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g, [0.6, 0.8])
    g = np.array([0.3, 0.4])
    assert optim.clip_grad_norm(g, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(g, [0.3, 0.4])


def test_permutation_of_balls_permutes_predictions():
    for kind in VARIANTS:
        model = small_model(kind, seed=10)
        S = np.random.default_rng(11).uniform(0, 1, (2, 5, 4))
        perm = np.array([3, 0, 4, 1, 2])
        np.testing.assert_allclose(model.forward(S[:, perm])[0], model.forward(S)[0][:, perm], rtol=1e-12)


def test_rollout_metrics_by_hand():
    truth = np.zeros((2, 1, 2, 4))
    pred = np.zeros((2, 1, 2, 4))
    pred[1, 0, 0] = [3.0, 4.0, 0.0, 1.0]          # ball 0: position off by (3, 4), velocity by (0, 1)
    m = rollout_measures.rollout_metrics(pred, truth)
    assert m["pos_err"] == [0.0, 2.5]               # mean over 2 balls of |(3, 4)| = 5 and 0
    assert m["pos_mse"] == [0.0, 25.0 / 4]          # (9 + 16) / 4 elements
    assert m["vel_err"] == [0.0, 0.5]
    assert m["vel_mse"] == [0.0, 0.25]
    assert m["mean_pos_err"] == 1.25                # step 0 included


def test_mixed_k_training_records_the_k_of_every_batch():
    cfg = state_config.Config(k_train=(2, 3, 5), n_train=12, n_val=6, epochs=2, batch=4, agg="attention", log_every=99)
    train, val, _, _ = state_training.make_data(state_config.Config(**{**cfg.__dict__, "eval_k": (3,), "n_eval": 2, "t_long": 30}))
    assert {k: v.shape[:1] + v.shape[2:3] for k, v in train.items()} == {2: (4, 2), 3: (4, 3), 5: (4, 5)}
    model, history, timing = state_training.train_model("relational", cfg, train, val, log=lambda *_: None)
    assert len(history["batch_k"]) == cfg.epochs * cfg.steps_per_epoch == timing["optimizer_steps"]
    assert set(history["batch_k"]) == {2, 3, 5}
    assert all(np.isfinite(history["val_mse_bptt"]))
    single = state_training.train_model("relational", state_config.Config(n_train=12, n_val=6, epochs=1, batch=4, log_every=99),
                           {4: train[3][:, :, :1].repeat(4, axis=2)}, {4: val[3][:, :, :1].repeat(4, axis=2)},
                           log=lambda *_: None)[1]
    assert "batch_k" not in single
