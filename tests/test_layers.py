"""The forward/backward pairs of rnem.layers: float64 finite differences against every backward
pass, on arrays with leading dimensions, and the losses against their plain formulas."""
import numpy as np
import pytest

from rnem import layers
from rnem.gradcheck import numerical_grad, rel_error

TOL = 1e-7   # centred differences in float64 with h = 1e-6 agree to ~1e-9 on these smooth pieces


def check(forward, backward, inputs: dict, seed=0):
    """forward(**inputs) -> (out, cache); backward(dout, cache) -> the gradient of every input, in
    the order of `inputs`. Compares each with centred differences of sum(dout * out)."""
    rng = np.random.default_rng(seed)
    out, cache = forward(**inputs)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for (name, value), analytic in zip(inputs.items(), grads):
        numeric = numerical_grad(lambda: float((forward(**inputs)[0] * dout).sum()), value)
        assert rel_error(analytic, numeric) < TOL, name


def test_layernorm_gradients_and_normalisation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6)) * 3 + 1
    g, b = rng.standard_normal(6), rng.standard_normal(6)
    check(layers.layernorm_forward, layers.layernorm_backward, {"x": x, "g": g, "b": b})
    y, _ = layers.layernorm_forward(x, np.ones(6), np.zeros(6))
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-5)                  # var / (var + eps)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-4)])   # float32: its rounding
def test_fast_layernorm_is_the_plain_one(dtype, rtol):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 4, 5, 7)) * 2 + 0.5).astype(dtype)
    g, b = rng.standard_normal(7).astype(dtype), rng.standard_normal(7).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    y, cache = layers.layernorm_forward(x, g, b)
    y_fast, cache_fast = layers.layernorm_fast_forward(x, g, b)
    assert y_fast.dtype == dtype and y_fast.shape == x.shape
    np.testing.assert_allclose(y_fast, y, rtol=rtol, atol=rtol)
    for fast, plain in zip(layers.layernorm_fast_backward(dout, cache_fast), layers.layernorm_backward(dout, cache)):
        assert fast.dtype == dtype and fast.shape == plain.shape
        np.testing.assert_allclose(fast, plain, rtol=rtol, atol=rtol * np.abs(plain).max())
    check(layers.layernorm_fast_forward, layers.layernorm_fast_backward,
          {"x": x[0].astype(float), "g": g.astype(float), "b": b.astype(float)})


@pytest.mark.parametrize("name", ["relu", "elu", "tanh", "sigmoid"])
def test_activation_gradients(name):
    x = np.random.default_rng(2).standard_normal((4, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5                                             # no kink within h of ReLU's / ELU's 0
    check(getattr(layers, f"{name}_forward"), getattr(layers, f"{name}_backward"), {"x": x})


def test_activations_by_hand():
    x = np.array([-2.0, 0.0, 3.0])
    assert layers.elu_forward(x)[0].tolist() == [np.exp(-2.0) - 1.0, 0.0, 3.0]
    assert layers.relu_forward(x)[0].tolist() == [0.0, 0.0, 3.0]
    np.testing.assert_allclose(layers.sigmoid_forward(x)[0], 1 / (1 + np.exp(-x)), rtol=1e-15)
    assert np.isfinite(layers.softplus(np.array([1000.0, -1000.0]))).all()


def test_bernoulli_losses_against_plain_formula_and_gradient():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 3, 8)) * 3
    x = (rng.random((2, 1, 8)) < 0.4).astype(float)                       # one frame, K components
    gamma = rng.dirichlet(np.ones(3), size=(2, 8)).transpose(0, 2, 1)     # (2, 3, 8), sums to 1 over K
    loss, _ = layers.bernoulli_losses_forward(logits, x, gamma)
    psi = 1 / (1 + np.exp(-logits))
    plain = -gamma * (x * np.log(psi) + (1 - x) * np.log(1 - psi)) - (1 - gamma) * np.log(1 - psi)
    np.testing.assert_allclose(loss, plain, rtol=1e-12)

    def forward(logits):
        return layers.bernoulli_losses_forward(logits, x, gamma)
    check(forward, layers.bernoulli_losses_backward, {"logits": logits})


def test_softplus_is_logaddexp():
    z = np.concatenate([np.linspace(-50, 50, 2001), [-800.0, 800.0, 0.0]])
    np.testing.assert_allclose(layers.softplus(z), np.logaddexp(0.0, z), rtol=1e-15, atol=0)
