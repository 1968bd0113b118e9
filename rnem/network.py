"""The paper's network (van Steenkiste et al. 2018, Appendix A), scaled down (docs/network.md
lists every difference): K copies of a recurrent encoder-decoder whose
hidden states theta_k become the objects, trained by back-propagating through unrolled
generalised EM on binary frames. Plain forward/backward pairs with caches; every backward pass
is checked by finite differences in float64 (tests/test_network.py).

One EM step for component k (B sequences, K components, D pixels, M hidden units):
    x~_k   = gamma_k (x_noisy - psi_k)                      the input: what k explains badly   (B, K, D)
    h_k    = enc(x~_k)                                      D -> 256 -> 64, ELU after layer norm
    U_k    = Upsilon_k(theta)                               RNN-EM: theta_k; R-NEM: below
    theta_k' = sigmoid(LN(h_k W + U_k R + b))               the recurrence                     (B, K, M)
    psi_k' = sigmoid(dec(theta_k'))                         M -> 256 (ReLU) -> D logits
R-NEM's Upsilon_k = [th_k ; sum_{i != k} a_ki e_ki] with th = MLP_enc(theta) (ReLU), the pair
embedding emb_ki = ReLU(LN(th_k W_f + th_i W_c + b)) (= MLP_emb([th_k; th_i]) without building
the K (K - 1) concatenations), e_ki = MLP_eff(emb_ki) (ReLU, width M) and the attention
a_ki = sigmoid(MLP_att(emb_ki) w + c) (tanh, width A, M / 2 unless given); without attention a_ki = 1.
A layer `block` is act(LN(x W + b)); its parameters are name.W, name.b, name.g, name.s.
"""
from __future__ import annotations

import math

import numpy as np

from rnem.mixture import e_step as mixture_e_step
from rnem.layers import (ParamBuffer, affine_backward, affine_forward, bernoulli_losses_backward,
                         bernoulli_losses_forward, elu_backward, elu_forward, layernorm_fast_backward,
                         layernorm_fast_forward, relu_backward, relu_forward, sigmoid, sigmoid_backward,
                         sigmoid_forward, tanh_backward, tanh_forward)

ACTIVATIONS = {"relu": (relu_forward, relu_backward), "elu": (elu_forward, elu_backward),
               "tanh": (tanh_forward, tanh_backward), "sigmoid": (sigmoid_forward, sigmoid_backward)}
KINDS = ("rnn_em", "r_nem", "r_nem_sum")        # Upsilon: theta_k; with attention; plain sum over i != k
ENCODER, DECODER = (256, 64), 256


# ----------------------------------------------------------------------------- blocks
def mm(x, W):
    """x (..., n) @ W (n, m) -> (..., m) as one product over the rows of all leading axes (numpy's
    stacked matmul of a 3-D or 4-D x would run one small product per leading index)."""
    return (x.reshape(-1, x.shape[-1]) @ W).reshape(x.shape[:-1] + (W.shape[1],))


def block_shapes(name: str, n_in: int, n_out: int) -> dict:
    return {f"{name}.W": (n_in, n_out), f"{name}.b": (n_out,), f"{name}.g": (n_out,), f"{name}.s": (n_out,)}


def block_forward(x, P: dict, name: str, act: str):
    """act(LN(x W + b)): x (..., n_in) -> (..., n_out)."""
    z, c_aff = affine_forward(x, P[f"{name}.W"], P[f"{name}.b"])
    n, c_ln = layernorm_fast_forward(z, P[f"{name}.g"], P[f"{name}.s"])
    y, c_act = ACTIVATIONS[act][0](n)
    return y, (c_aff, c_ln, c_act, act)


def add_weight_grad(G: dict, name: str, x, dz) -> None:
    """G[name] += x^T dz, summed over the leading axes of x (..., in) and dz (..., out) as rows of
    one product."""
    G[name] += x.reshape(-1, x.shape[-1]).T @ dz.reshape(-1, dz.shape[-1])


def block_backward(dy, cache, name: str, G: dict):
    """Accumulates name's parameter gradients into G; returns dx (..., n_in)."""
    c_aff, c_ln, c_act, act = cache
    dz, dg, ds = layernorm_fast_backward(ACTIVATIONS[act][1](dy, c_act), c_ln)
    dx, dW, db = affine_backward(dz, c_aff)
    G[f"{name}.W"] += dW
    G[f"{name}.b"] += db
    G[f"{name}.g"] += dg
    G[f"{name}.s"] += ds
    return dx


# ----------------------------------------------------------------------------- the network
class Network:
    """The parameters of one network (one flat vector, named views) and its step pairs.
    kind: one of KINDS; pixels: D; hidden: M; encoder, decoder: the layer widths (small in tests);
    attention: A, the width of MLP_att's tanh layer (R-NEM only; None: M // 2);
    dtype: of the parameters and of every activation (float32 to train, float64 for the gradient checks)."""

    def __init__(self, kind: str, pixels: int, hidden: int = 100, rng=None, encoder=ENCODER, decoder=DECODER,
                 attention: int | None = None, dtype=np.float64):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.kind, self.D, self.M = kind, pixels, hidden
        M = hidden
        shapes = {**block_shapes("enc0", pixels, encoder[0]), **block_shapes("enc1", encoder[0], encoder[1])}
        u_dim = M if kind == "rnn_em" else 2 * M
        shapes |= {"cell.W": (encoder[1], M), "cell.R": (u_dim, M), "cell.b": (M,), "cell.g": (M,), "cell.s": (M,)}
        if kind != "rnn_em":
            shapes |= block_shapes("renc", M, M)
            shapes |= {"emb.Wf": (M, M), "emb.Wc": (M, M), "emb.b": (M,), "emb.g": (M,), "emb.s": (M,)}
            shapes |= block_shapes("eff", M, M)
            if kind == "r_nem":
                A = attention or M // 2
                shapes |= block_shapes("att", M, A) | {"att.w": (A, 1), "att.c": (1,)}
        shapes |= block_shapes("dec0", M, decoder) | {"dec1.W": (decoder, pixels), "dec1.b": (pixels,)}
        self.layout = ParamBuffer(shapes)
        self.flat = np.zeros(self.layout.size, dtype)
        self.params = self.layout.views(self.flat)
        for name, value in self.params.items():                            # drawn in float64, then cast
            if value.ndim == 2:                                            # Glorot-normal weights
                value[...] = rng.standard_normal(value.shape) * math.sqrt(2.0 / sum(value.shape))
            elif name.endswith(".g"):
                value[...] = 1.0                                           # layer-norm gains; biases 0

    def zero_grads(self):
        """(flat gradient vector, its named views)."""
        grad = np.zeros_like(self.flat)
        return grad, self.layout.views(grad)

    # --------------------------------------------------------------- Upsilon
    def upsilon_forward(self, theta):
        """theta (B, K, M) -> (U (B, K, M) for RNN-EM or (B, K, 2M), cache)."""
        if self.kind == "rnn_em":
            return theta, None
        P, K = self.params, theta.shape[1]
        th, c_enc = block_forward(theta, P, "renc", "relu")                        # (B, K, M)
        focus, context = mm(th, P["emb.Wf"]), mm(th, P["emb.Wc"])                      # (B, K, M) each
        z = focus[:, :, None, :] + context[:, None, :, :] + P["emb.b"]              # (B, K, K, M): pair (k, i)
        n, c_ln = layernorm_fast_forward(z, P["emb.g"], P["emb.s"])
        emb, c_relu = relu_forward(n)
        e, c_eff = block_forward(emb, P, "eff", "relu")                             # (B, K, K, M) effects
        others = (1.0 - np.eye(K, dtype=theta.dtype))[:, :, None]                   # (K, K, 1): i != k
        if self.kind == "r_nem":
            a1, c_att = block_forward(emb, P, "att", "tanh")                        # (B, K, K, A)
            a = sigmoid(mm(a1, P["att.w"]) + P["att.c"])                               # (B, K, K, 1) attention
        else:
            a1 = c_att = None
            a = np.ones(e.shape[:-1] + (1,), e.dtype)
        agg = (others * a * e).sum(axis=2)                                          # (B, K, M) sum over i != k
        U = np.concatenate([th, agg], axis=-1)                                      # (B, K, 2M)
        return U, (th, c_enc, c_ln, c_relu, e, c_eff, a1, c_att, a, others)

    def upsilon_backward(self, dU, cache, G):
        """dU like U -> dtheta (B, K, M); parameter gradients into G."""
        if self.kind == "rnn_em":
            return dU
        P, M = self.params, self.M
        th, c_enc, c_ln, c_relu, e, c_eff, a1, c_att, a, others = cache
        dth, dagg = dU[..., :M], dU[..., M:]
        dpair = dagg[:, :, None, :]                                                 # (B, K, 1, M)
        demb = block_backward(others * a * dpair, c_eff, "eff", G)                  # through e
        if self.kind == "r_nem":
            dl = (others * e * dpair).sum(axis=-1, keepdims=True) * a * (1.0 - a)    # (B, K, K, 1) through a
            add_weight_grad(G, "att.w", a1, dl)
            G["att.c"] += dl.sum()
            demb = demb + block_backward(mm(dl, P["att.w"].T), c_att, "att", G)
        dz, dg, ds = layernorm_fast_backward(relu_backward(demb, c_relu), c_ln)          # (B, K, K, M)
        G["emb.g"] += dg
        G["emb.s"] += ds
        G["emb.b"] += dz.sum(axis=(0, 1, 2))
        dfocus, dcontext = dz.sum(axis=2), dz.sum(axis=1)                           # (B, K, M): over i, over k
        add_weight_grad(G, "emb.Wf", th, dfocus)
        add_weight_grad(G, "emb.Wc", th, dcontext)
        dth = dth + mm(dfocus, P["emb.Wf"].T) + mm(dcontext, P["emb.Wc"].T)
        return block_backward(dth, c_enc, "renc", G)

    def attention(self, cache):
        """(B, K, K) the attention a_ki of a step (component k's weight on component i) from
        step_forward's cache; None for a network without attention."""
        if self.kind != "r_nem":
            return None
        return cache[4][8][..., 0]                                                  # c_u's a (B, K, K, 1)

    # --------------------------------------------------------------- one step
    def step_forward(self, x_in, theta_prev):
        """x_in (B, K, D), theta_prev (B, K, M) -> (theta (B, K, M), logits (B, K, D), cache)."""
        P = self.params
        h0, c0 = block_forward(x_in, P, "enc0", "elu")                             # (B, K, 256)
        h, c1 = block_forward(h0, P, "enc1", "elu")                                # (B, K, 64)
        U, c_u = self.upsilon_forward(theta_prev)
        z = mm(h, P["cell.W"]) + mm(U, P["cell.R"]) + P["cell.b"]                       # (B, K, M)
        n, c_ln = layernorm_fast_forward(z, P["cell.g"], P["cell.s"])
        theta = sigmoid(n)
        d0, c_d = block_forward(theta, P, "dec0", "relu")                          # (B, K, 256)
        logits, c_out = affine_forward(d0, P["dec1.W"], P["dec1.b"])               # (B, K, D)
        return theta, logits, (c0, c1, h, U, c_u, c_ln, theta, c_d, c_out)

    def step_backward(self, dtheta, dlogits, cache, G):
        """dtheta (B, K, M) from later steps, dlogits (B, K, D) -> (dx_in, dtheta_prev); parameter
        gradients into G."""
        P, (c0, c1, h, U, c_u, c_ln, theta, c_d, c_out) = self.params, cache
        dd0, dW, db = affine_backward(dlogits, c_out)
        G["dec1.W"] += dW
        G["dec1.b"] += db
        dtheta = dtheta + block_backward(dd0, c_d, "dec0", G)
        dz, dg, ds = layernorm_fast_backward(sigmoid_backward(dtheta, theta), c_ln)     # (B, K, M)
        G["cell.g"] += dg
        G["cell.s"] += ds
        G["cell.b"] += dz.sum(axis=(0, 1))
        add_weight_grad(G, "cell.W", h, dz)
        add_weight_grad(G, "cell.R", U, dz)
        dtheta_prev = self.upsilon_backward(mm(dz, P["cell.R"].T), c_u, G)
        dh0 = block_backward(mm(dz, P["cell.W"].T), c1, "enc1", G)
        return block_backward(dh0, c0, "enc0", G), dtheta_prev


# ----------------------------------------------------------------------------- unrolled EM
GAMMA_FLOOR = 1e-6       # added to every component's likelihood in the E-step (the paper's)


def e_step(x, psi):
    """gamma (B, K, D): the posterior of each component for each pixel of the binary frame x
    (B, D) under Bernoulli likelihoods psi (B, K, D): the mixture's E-step (rnem.mixture) with
    GAMMA_FLOOR added to every likelihood, as the paper's."""
    return mixture_e_step(x, psi, GAMMA_FLOOR)


def initial_gamma(rng, batch: int, k: int, pixels: int):
    """gamma(0) (B, K, D): |N(0, 1)| normalised over K (the paper's start; psi(0) = 0, theta(0) = 0)."""
    g = np.abs(rng.standard_normal((batch, k, pixels)))
    return g / g.sum(axis=1, keepdims=True)


def em_forward(net: Network, noisy, clean, gamma0, gammas=None, own_from=None, own_noise=None):
    """The unrolled EM over T frames: noisy, clean (T, B, D) binary frames (the input sees the
    noisy ones, the E-step and the loss the clean next frame), gamma0 (B, K, D).
    Step t (0 .. T-2): x~ = gamma_t (noisy_t - psi_t), (theta, logits) = step(x~, theta),
    psi_{t+1} = sigmoid(logits), gamma_{t+1} = e_step(clean_{t+1}, psi_{t+1}) (held fixed, no
    gradient); loss_t = sum over k and pixels of bernoulli_losses(logits, clean_{t+1}, gamma_{t+1}).
    gammas, if given, replaces every E-step's gamma (what the gradient holds fixed: the test of
    em_backward differentiates this). own_from (a step, or None): from that step on the input is
    not the frame but the network's own prediction of it, sum_k gamma_{t-1} psi_t, flipped by
    bitflip(., *own_noise) if given, and held fixed like data (no gradient through it): training on
    its own predictions, as in simulation. Returns (loss: mean over sequences and steps, per-step
    caches, whose [t][4] is gamma_{t+1} and [t][3] psi_{t+1})."""
    T, B, D = clean.shape
    K = gamma0.shape[1]
    dtype = net.flat.dtype
    theta, psi, gamma = np.zeros((B, K, net.M), dtype), np.zeros((B, K, D), dtype), gamma0.astype(dtype)
    steps, total, own = [], 0.0, None
    for t in range(T - 1):
        if own_from is not None and t >= own_from:
            x = own if own_noise is None else bitflip(own, *own_noise)                 # (B, D) its own prediction
        else:
            x = noisy[t].astype(dtype)
        x_in = gamma * (x[:, None, :] - psi)                                          # (B, K, D)
        theta, logits, cache = net.step_forward(x_in, theta)
        psi = sigmoid(logits)
        target = clean[t + 1][:, None, :].astype(dtype)                              # (B, 1, D)
        gamma_in, gamma = gamma, (e_step(clean[t + 1], psi) if gammas is None else gammas[t])
        if own_from is not None:
            own = (gamma_in * psi).sum(axis=1)                                       # sum_k gamma_t psi_{t+1}
        loss, c_loss = bernoulli_losses_forward(logits, target, gamma, psi)
        total += float(loss.sum())
        steps.append((cache, c_loss, gamma_in, psi, gamma))
    return total / (B * (T - 1)), steps


def em_backward(net: Network, steps):
    """The gradient of em_forward's loss, as a flat vector laid out as net.flat: BPTT through every
    step, through theta and through psi in the next step's input (not through gamma)."""
    grad, G = net.zero_grads()
    B = steps[0][3].shape[0]
    scale = 1.0 / (B * len(steps))
    dtheta, dx_next, gamma_next = 0.0, None, None
    for cache, c_loss, gamma_in, psi, _ in reversed(steps):
        dlogits = bernoulli_losses_backward(scale, c_loss)                           # (B, K, D)
        if dx_next is not None:                                                      # x~_{t+1} = gamma (x - psi)
            dlogits = dlogits - gamma_next * dx_next * psi * (1.0 - psi)
        dx_in, dtheta = net.step_backward(dtheta, dlogits, cache, G)
        dx_next, gamma_next = dx_in, gamma_in
    return grad


SIM_THRESHOLD = 0.1      # simulation: the frame the model did not see is max_k psi > 0.1 (the paper's Appendix)


def bitflip(x, rng, p: float):
    """x (...) in [0, 1] with each pixel flipped with probability p: |x - f|, f ~ Bernoulli(p)
    (for a binary x, x XOR f; for a soft x, the probability of a lit pixel after the flip)."""
    if p == 0:
        return x
    f = rng.random(x.shape) < p
    return np.where(f, 1.0 - x, x) if x.dtype.kind == "f" else x ^ f


def em_simulate(net: Network, frames, gamma0, observed: int, feed: str = "binary", noise=None):
    """The model alone after `observed` frames, forward only: frames (T, B, D) bool, gamma0 (B, K, D).
    Frames 0 .. observed-1 are seen as in em_forward (input, and the E-step on the true frame).
    From then on the frame the model did not see is replaced in the E-step by its own max_k psi_{t+1}
    thresholded at SIM_THRESHOLD (the paper's appendix), and in the next input by that same binary
    frame (feed "binary") or by its real prediction p_{t+1} (feed "soft", the original code's).
    noise: None, or (rng, p) to flip every input pixel with probability p (bitflip), seen or not.
    Returns {"real": p_{t+1} = sum_k gamma_{t,k} psi_{t+1,k} (made before frame t + 1), "max":
    max_k psi_{t+1} (T - observed, B, D) for frames observed .. T-1, "psi": psi_{t+1} (T - observed,
    B, K, D), "gamma_seen": gamma after the E-step on the last seen frame (B, K, D)}."""
    if feed not in ("binary", "soft"):
        raise ValueError(f"feed must be binary or soft (got {feed!r})")
    T, B, D = frames.shape
    dtype = net.flat.dtype
    theta = np.zeros((B, gamma0.shape[1], net.M), dtype)
    psi, gamma = np.zeros(gamma0.shape, dtype), gamma0.astype(dtype)
    x = frames[0]
    out = {"real": [], "max": [], "psi": []}
    for t in range(T - 1):
        x_in = bitflip(x, *noise) if noise is not None else x
        theta, logits, _ = net.step_forward(gamma * (x_in[:, None, :].astype(dtype) - psi), theta)
        psi = sigmoid(logits)                                                        # psi_{t+1} (B, K, D)
        if t + 1 < observed:
            x = e_frame = frames[t + 1]
        else:
            if t + 1 == observed:
                out["gamma_seen"] = gamma
            real = (gamma * psi).sum(axis=1)                                         # p_{t+1} (B, D)
            e_frame = psi.max(axis=1) > SIM_THRESHOLD                                # the frame it imagines
            x = e_frame if feed == "binary" else real
            out["real"].append(real)
            out["max"].append(psi.max(axis=1))
            out["psi"].append(psi)
        gamma = e_step(e_frame, psi)
    return {key: (np.stack(value) if isinstance(value, list) else value) for key, value in out.items()}
