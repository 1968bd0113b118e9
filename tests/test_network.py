"""The paper's network (rnem.network): every backward pass against float64 finite differences,
Upsilon's symmetry over components, and RNN-EM as R-NEM with the interaction switched off."""
import numpy as np
import pytest

from rnem import network
from rnem.gradcheck import numerical_grad, rel_error

TOL = 1e-6          # float64 centred differences through layer norms and sigmoids: ~1e-8 expected
SMALL = dict(pixels=8, hidden=6, encoder=(6, 4), decoder=6)   # hidden 6: attention width 3 (LN of 2 values is +-1)


def make(kind, seed=0, attention=None):
    net = network.Network(kind, rng=np.random.default_rng(seed), attention=attention, **SMALL)
    rng = np.random.default_rng(seed + 1)
    net.flat[...] += 0.1 * rng.standard_normal(net.flat.shape)           # biases and gains off their start
    return net


def check_params(net, loss, grad, names=None):
    """Every parameter's analytic gradient (views of grad) against centred differences of loss()."""
    views = net.layout.views(grad)
    for name in names or views:
        numeric = numerical_grad(loss, net.params[name])
        assert rel_error(views[name], numeric) < TOL, name


@pytest.mark.parametrize("kind", network.KINDS)
def test_upsilon_gradients(kind):
    check_upsilon(make(kind))


def test_upsilon_gradients_at_another_attention_width():
    check_upsilon(make("r_nem", attention=5))          # A = 5, not M / 2 = 3


def check_upsilon(net):
    """Upsilon's dtheta and its parameters' gradients against centred differences."""
    rng = np.random.default_rng(2)
    theta = rng.random((2, 3, SMALL["hidden"]))
    U, _ = net.upsilon_forward(theta)
    dU = rng.standard_normal(U.shape)

    def loss():
        return float((net.upsilon_forward(theta)[0] * dU).sum())
    grad, G = net.zero_grads()
    dtheta = net.upsilon_backward(dU, net.upsilon_forward(theta)[1], G)
    assert rel_error(dtheta, numerical_grad(loss, theta)) < TOL
    upsilon_params = [n for n in net.params if n.split(".")[0] in ("renc", "emb", "eff", "att")]
    check_params(net, loss, grad, upsilon_params)


@pytest.mark.parametrize("kind", network.KINDS)
def test_step_gradients(kind):
    net = make(kind, seed=3)
    rng = np.random.default_rng(4)
    x_in, theta_prev = rng.standard_normal((2, 3, SMALL["pixels"])), rng.random((2, 3, SMALL["hidden"]))
    theta, logits, _ = net.step_forward(x_in, theta_prev)
    dtheta, dlogits = rng.standard_normal(theta.shape), rng.standard_normal(logits.shape)

    def loss():
        t, l, _ = net.step_forward(x_in, theta_prev)
        return float((t * dtheta).sum() + (l * dlogits).sum())
    grad, G = net.zero_grads()
    dx, dprev = net.step_backward(dtheta, dlogits, net.step_forward(x_in, theta_prev)[2], G)
    assert rel_error(dx, numerical_grad(loss, x_in)) < TOL
    assert rel_error(dprev, numerical_grad(loss, theta_prev)) < TOL
    check_params(net, loss, grad)


@pytest.mark.parametrize("kind", ["r_nem", "r_nem_sum"])
def test_upsilon_is_equivariant_over_components(kind):
    net = make(kind)
    theta = np.random.default_rng(5).random((2, 4, SMALL["hidden"]))
    order = np.array([2, 0, 3, 1])
    np.testing.assert_allclose(net.upsilon_forward(theta[:, order])[0], net.upsilon_forward(theta)[0][:, order],
                               rtol=1e-12, atol=1e-12)


def test_upsilon_without_others_is_the_component_alone():
    # one component: no pair, the interaction part is 0 and R-NEM's Upsilon is [MLP_enc(theta); 0]
    net = make("r_nem")
    U, _ = net.upsilon_forward(np.random.default_rng(6).random((2, 1, SMALL["hidden"])))
    assert np.all(U[..., SMALL["hidden"]:] == 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        network.Network("lstm", 4)


@pytest.mark.parametrize("kind", ["rnn_em", "r_nem"])       # r_nem_sum's Upsilon: test_upsilon_gradients
def test_unrolled_em_gradient(kind):
    """The whole unrolled loss (T = 3 frames: through theta and through psi in the next input)
    against finite differences, with the E-step's gammas held fixed as the gradient holds them."""
    net = make(kind, seed=7)
    rng = np.random.default_rng(8)
    clean = rng.random((3, 2, SMALL["pixels"])) < 0.3                       # (T, B, D)
    noisy = clean ^ (rng.random(clean.shape) < 0.2)
    gamma0 = network.initial_gamma(rng, 2, 3, SMALL["pixels"])
    _, steps = network.em_forward(net, noisy, clean, gamma0)
    gammas = [step[4] for step in steps]
    np.testing.assert_allclose(sum(g.sum(axis=1) for g in gammas), len(gammas), rtol=1e-12)   # gamma sums to 1

    def loss():
        return network.em_forward(net, noisy, clean, gamma0, gammas)[0]
    grad = network.em_backward(net, steps)
    check_params(net, loss, grad)


def test_training_on_its_own_predictions_holds_them_as_data():
    # from step own_from on, the input is sum_k gamma_{t-1} psi_t: the loss and the gradient are those
    # of the unrolled EM whose input frames are those predictions given as data (whose gradient the
    # test above checks by finite differences)
    net = make("r_nem", seed=14)
    rng = np.random.default_rng(15)
    clean = rng.random((5, 2, SMALL["pixels"])) < 0.3
    noisy = clean ^ (rng.random(clean.shape) < 0.2)
    gamma0 = network.initial_gamma(rng, 2, 3, SMALL["pixels"])
    loss, steps = network.em_forward(net, noisy, clean, gamma0, own_from=2)
    given = noisy.astype(float)
    for t in range(2, 5):
        given[t] = (steps[t - 1][2] * steps[t - 1][3]).sum(axis=1)                 # gamma_{t-1} psi_t
    loss_given, steps_given = network.em_forward(net, given, clean, gamma0)
    assert loss == loss_given
    np.testing.assert_array_equal(network.em_backward(net, steps), network.em_backward(net, steps_given))
    assert loss != network.em_forward(net, noisy, clean, gamma0)[0]                 # it did change the input


def test_simulation_predicts_the_first_unseen_frame_as_the_unrolled_em_does():
    # until frame `observed` is due, the model has seen exactly what em_forward shows it: the first
    # simulated prediction is em_forward's real prediction sum_k gamma psi of that frame
    net = make("r_nem", seed=10)
    rng = np.random.default_rng(11)
    frames = rng.random((6, 2, SMALL["pixels"])) < 0.3
    gamma0 = network.initial_gamma(rng, 2, 3, SMALL["pixels"])
    _, steps = network.em_forward(net, frames, frames, gamma0)
    for observed in (2, 4):
        p = network.em_simulate(net, frames, gamma0, observed)["real"]
        assert p.shape == (6 - observed, 2, SMALL["pixels"]) and ((0 <= p) & (p <= 1)).all()
        real = (steps[observed - 1][2] * steps[observed - 1][3]).sum(axis=1)
        np.testing.assert_allclose(p[0], real, rtol=1e-12)


def test_simulation_protocols_agree_until_the_first_unseen_frame():
    # the fed-back input differs only from the first simulated step on: the first prediction of
    # every protocol is the same; the second differs between the binary and the soft input
    net = make("r_nem", seed=12)
    rng = np.random.default_rng(13)
    frames = rng.random((6, 2, SMALL["pixels"])) < 0.3
    gamma0 = network.initial_gamma(rng, 2, 3, SMALL["pixels"])
    binary = network.em_simulate(net, frames, gamma0, 3, "binary")
    soft = network.em_simulate(net, frames, gamma0, 3, "soft")
    quiet = network.em_simulate(net, frames, gamma0, 3, "soft", (np.random.default_rng(0), 0.0))
    np.testing.assert_array_equal(binary["real"][0], soft["real"][0])
    assert not np.allclose(binary["real"][1], soft["real"][1])
    np.testing.assert_array_equal(quiet["real"], soft["real"])                  # flipping with p = 0: no noise
    assert soft["psi"].shape == (3, 2, 3, SMALL["pixels"]) and soft["gamma_seen"].shape == gamma0.shape
    np.testing.assert_array_equal(soft["max"], soft["psi"].max(axis=2))
    with pytest.raises(ValueError, match="feed must be binary or soft"):
        network.em_simulate(net, frames, gamma0, 3, "grey")


def test_bitflip_of_a_soft_frame_is_the_xor_of_a_binary_one():
    x = np.random.default_rng(1).random((50, 40)) < 0.3
    flipped = network.bitflip(x, np.random.default_rng(2), 0.2)
    soft = network.bitflip(x.astype(float), np.random.default_rng(2), 0.2)
    np.testing.assert_array_equal(soft, flipped.astype(float))
    assert abs((flipped != x).mean() - 0.2) < 0.02                              # 2 000 pixels: 0.2 +- 0.02
    p = np.full(4000, 0.3)                                                      # a soft pixel: P(lit) after the flip
    assert network.bitflip(p, np.random.default_rng(3), 0.2).mean() == pytest.approx(0.3 * 0.8 + 0.7 * 0.2, abs=0.01)


def test_float32_network_follows_the_float64_one():
    # the training dtype: the same weights in float32 give the loss and gradient of float64 to
    # float32 rounding (every activation stays float32: no silent upcast)
    net64 = make("r_nem", seed=12)
    net32 = network.Network("r_nem", dtype=np.float32, **SMALL)
    net32.flat[...] = net64.flat
    rng = np.random.default_rng(13)
    frames = rng.random((4, 2, SMALL["pixels"])) < 0.3
    gamma0 = network.initial_gamma(rng, 2, 3, SMALL["pixels"])
    (l64, s64), (l32, s32) = (network.em_forward(n, frames, frames, gamma0) for n in (net64, net32))
    g64, g32 = network.em_backward(net64, s64), network.em_backward(net32, s32)
    assert g32.dtype == np.float32 and s32[-1][3].dtype == np.float32
    assert abs(l32 - l64) < 1e-5 * abs(l64)
    assert np.abs(g32 - g64).max() < 1e-4 * np.abs(g64).max()


def test_attention_width():
    """--attention A sets the width of MLP_att's tanh layer; M // 2 when not given, with the same
    initial weights as a network built without the argument."""
    wide = network.Network("r_nem", rng=np.random.default_rng(0), attention=5, **SMALL)
    assert wide.params["att.W"].shape == (SMALL["hidden"], 5) and wide.params["att.w"].shape == (5, 1)
    default = network.Network("r_nem", rng=np.random.default_rng(0), **SMALL)
    half = network.Network("r_nem", rng=np.random.default_rng(0), attention=SMALL["hidden"] // 2, **SMALL)
    assert default.params["att.W"].shape == (SMALL["hidden"], SMALL["hidden"] // 2)
    assert np.array_equal(default.flat, half.flat)
