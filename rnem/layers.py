"""Parameters and layers shared by the models: one flat parameter vector with named views
(parameters, gradients and Adam's moments share the names), plain forward/backward pairs
(affine, layer norm, ReLU, ELU, tanh, sigmoid) and the Bernoulli losses from logits, in-place
ReLU, per-step workspaces and the ReLU MLP of the stub's models, and the pair layer.

A pair is `x_forward(...) -> (out, cache)` and `x_backward(dout, cache) -> (dx, parameter
gradients...)`, on arrays of any leading shape (..., D); tests check each by finite differences."""
from __future__ import annotations

import functools
import math

import numpy as np


class ParamBuffer:
    """The layout of every parameter of a model in one flat vector.

    `views(flat)` names slices of any vector with this layout: the parameters, their gradients
    and Adam's moments share names, and Adam and clipping act on whole vectors. Every affine
    layer stores its bias right before its weight, so that `affine(flat, layer)` can also view
    the pair as one (1 + in, out) matrix [b; W]: x W + b = [1, x] @ [b; W], one product with the
    bias folded in (and one product for both gradients: [1, x]^T @ dz = [sum dz; x^T dz]).
    """

    def __init__(self, shapes: dict):
        self.shapes = dict(shapes)
        self.slices, size = {}, 0
        for name, shape in self.shapes.items():
            self.slices[name] = slice(size, size + math.prod(shape))
            size += math.prod(shape)
        self.size = size

    def views(self, flat: np.ndarray) -> dict:
        return {name: flat[self.slices[name]].reshape(shape) for name, shape in self.shapes.items()}

    def affine(self, flat: np.ndarray, layers) -> dict:
        """layer "name.l" -> the (1 + in, out) view [b; W] of parameters name.b{l}, name.W{l}."""
        out = {}
        for layer in layers:
            name, l = layer.rsplit(".", 1)
            b, W = self.slices[f"{name}.b{l}"], self.slices[f"{name}.W{l}"]
            if b.stop != W.start:
                raise ValueError(f"{name}.b{l} must be stored right before {name}.W{l}")
            n_in, n_out = self.shapes[f"{name}.W{l}"]
            out[layer] = flat[b.start:W.stop].reshape(1 + n_in, n_out)
        return out


def affine_shapes(layer: str, n_in: int, n_out: int) -> dict:
    """Parameter shapes of affine layer "name.l": the bias first, then the weight."""
    name, l = layer.rsplit(".", 1)
    return {f"{name}.b{l}": (n_out,), f"{name}.W{l}": (n_in, n_out)}


def init_affine(A: np.ndarray, rng, scale: float = 1.0) -> None:
    """He-normal weights (times scale) and a zero bias, in place in A = [b; W]."""
    A[0] = 0.0
    A[1:] = rng.standard_normal(A[1:].shape) * (scale * math.sqrt(2.0 / (len(A) - 1)))


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))                    # = 1 / (1 + exp(-z)), without overflow


def relu_(z: np.ndarray, on: np.ndarray) -> None:
    """ReLU in place, keeping its derivative: on = z > 0, z = z * on (masks the backward pass)."""
    np.greater(z, 0, out=on)
    np.multiply(z, on, out=z)


class Workspace(dict):
    """Preallocated per-step buffers of one model for n_steps steps of a (B, K) batch:
    name -> array (n_steps, ...). The forward pass of step t writes its activations into
    slot t, the backward pass its gradients; weight gradients are then one product per
    layer over all steps at once.

    `lead` names the buffers whose column 0 is a constant (the 1 of [1, x] that multiplies a
    bias; scale (K-1) before a scaled sum over K-1 partners) and gives its value: it is written
    here, once.
    """

    def __init__(self, n_steps, batch, k, shapes: dict, dtype, lead: dict | None = None):
        super().__init__((name, np.zeros((n_steps,) + shape, dtype)) for name, shape in shapes.items())
        self.n_steps, self.batch, self.k = n_steps, batch, k
        for name, value in (lead or {}).items():
            self[name][..., 0] = value
        self.scratch = {}                                 # buffers used within one step, shared by all slots
        # slot[t][name] = self[name][t], built once: the hot loops index many small views
        self.slot = [{name: array[t] for name, array in self.items()} for t in range(n_steps)]


class MLP:
    """ReLU MLP sizes[0] -> ... -> sizes[-1] with a linear output layer, on rows of a batch.

    Layer l ("name.l") has parameters `{name}.b{l}` (out,), `{name}.W{l}` (in, out), viewed as
    A_l = [b; W]; its input carries a leading 1, so z_l = [1, x_l] @ A_l. Workspace per step:
    `{name}.x{l}` (R, 1 + sizes[l]) = [1, x_l] for l >= 1 (x_0 is the caller's, with its 1),
    `{name}.on{l}` (R, sizes[l+1]) = the ReLU mask z_l > 0 of hidden layer l,
    `{name}.d{l}` (R, sizes[l+1]) = dL/dz_l, `{name}.out` (R, sizes[-1]).
    """

    def __init__(self, name: str, sizes):
        self.name, self.sizes = name, tuple(sizes)
        self.n_layers = L = len(sizes) - 1
        self.layers = [f"{name}.{l}" for l in range(L)]
        self.x = [None] + [f"{name}.x{l}" for l in range(1, L)]             # x[0] is the caller's
        self.z = [f"{name}.z{l}" for l in range(L - 1)] + [f"{name}.out"]   # z[l]: view of x[l+1][:, 1:]
        self.on = [f"{name}.on{l}" for l in range(L - 1)]
        self.d = [f"{name}.d{l}" for l in range(L)]

    def param_shapes(self) -> dict:
        shapes = {}
        for l, layer in enumerate(self.layers):
            shapes.update(affine_shapes(layer, self.sizes[l], self.sizes[l + 1]))
        return shapes

    def init_params(self, A: dict, rng, last_scale: float = 0.1) -> None:
        """He-normal weights, zero biases; the output layer scaled down so training starts near delta = 0."""
        for l, layer in enumerate(self.layers):
            init_affine(A[layer], rng, last_scale if l == self.n_layers - 1 else 1.0)

    def workspace_shapes(self, rows: int) -> dict:
        shapes = {self.x[l]: (rows, 1 + self.sizes[l]) for l in range(1, self.n_layers)}
        shapes.update({self.on[l]: (rows, self.sizes[l + 1]) for l in range(self.n_layers - 1)})
        shapes.update({self.d[l]: (rows, self.sizes[l + 1]) for l in range(self.n_layers)})
        shapes[self.z[-1]] = (rows, self.sizes[-1])
        return shapes

    def lead(self) -> dict:
        return {self.x[l]: 1.0 for l in range(1, self.n_layers)}

    def add_views(self, ws: Workspace) -> None:
        for slot in ws.slot:
            for l in range(self.n_layers - 1):
                slot[self.z[l]] = slot[self.x[l + 1]][:, 1:]                  # (R, sizes[l+1])

    def forward(self, A: dict, slot: dict, x0: np.ndarray) -> np.ndarray:
        """x0 (R, 1 + in) = [1, input] -> the output slot[out] (R, out)."""
        x = x0
        for l, layer in enumerate(self.layers[:-1]):
            z = np.matmul(x, A[layer], out=slot[self.z[l]])                      # (R, sizes[l+1])
            relu_(z, slot[self.on[l]])
            x = slot[self.x[l + 1]]                                              # [1, ReLU(z_l)]
        return np.matmul(x, A[self.layers[-1]], out=slot[self.z[-1]])

    def backward_input(self, A: dict, slot: dict, need_input_grad: bool = True, out=None):
        """Backpropagates the output gradient, which the caller wrote into slot[d{L-1}], to every
        pre-activation slot[d{l}]; returns the input gradient (R, in) (into `out` if given) or None."""
        d = slot[self.d[-1]]
        for l in range(self.n_layers - 1, 0, -1):
            d_in = np.matmul(d, A[self.layers[l]][1:].T, out=slot[self.d[l - 1]])  # dL/dx_l (R, sizes[l])
            np.multiply(d_in, slot[self.on[l - 1]], out=d_in)                      # ReLU'
            d = d_in
        return np.matmul(d, A[self.layers[0]][1:].T, out=out) if need_input_grad else None

    def weight_grads(self, ws: Workspace, steps: slice, x0: np.ndarray, G: dict) -> None:
        """G[layer] = dL/d[b; W] = sum over steps and rows of [1, x_l]^T dL/dz_l; x0 (steps*R, 1 + in)."""
        for l, layer in enumerate(self.layers):
            x = x0 if l == 0 else ws[self.x[l]][steps].reshape(-1, 1 + self.sizes[l])   # (steps*R, 1 + in)
            d = ws[self.d[l]][steps].reshape(-1, self.sizes[l + 1])                     # (steps*R, out)
            np.matmul(x.T, d, out=G[layer])


def affine_forward(x, W, b):
    """x (..., D) -> x W + b (..., M); cache (x, W). Leading axes are flattened into one product
    (numpy's stacked matmul would run one small product per leading index)."""
    return (x.reshape(-1, x.shape[-1]) @ W + b).reshape(x.shape[:-1] + (W.shape[1],)), (x, W)


def affine_backward(dout, cache):
    """dout (..., M) -> (dx (..., D), dW (D, M), db (M,)); the leading axes are summed over."""
    x, W = cache
    x2, d2 = x.reshape(-1, x.shape[-1]), dout.reshape(-1, dout.shape[-1])    # (N, D), (N, M)
    return (d2 @ W.T).reshape(x.shape), x2.T @ d2, d2.sum(axis=0)


def layernorm_forward(x, g, b, eps: float = 1e-5):
    """Layer norm over the last axis: x (..., D) -> g (x - mean) / sqrt(var + eps) + b; g, b (D,)."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu                                                          # (..., D) centred
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)   # (..., 1)
    xhat = xc * inv
    return g * xhat + b, (xhat, inv, g)


def layernorm_backward(dout, cache):
    """dout (..., D) -> (dx (..., D), dg (D,), db (D,)); dx = inv (dxhat - mean(dxhat)
    - xhat mean(dxhat xhat)), the means over the last axis."""
    xhat, inv, g = cache
    lead = tuple(range(dout.ndim - 1))
    dg, db = (dout * xhat).sum(axis=lead), dout.sum(axis=lead)
    dxhat = dout * g
    dx = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dg, db


def layernorm_fast_forward(x, g, b, eps: float = 1e-5):
    """The same as layernorm_forward (to rounding), in fewer passes over memory: the means over
    the last axis as products with a vector of 1/D (BLAS), the variance as a row-wise dot product,
    and the normalisation in place. x (..., D) -> (y (..., D), cache (xhat (N, D), inv (N,), g))."""
    D = x.shape[-1]
    x2 = x.reshape(-1, D)                                                # (N, D)
    xhat = x2 - (x2 @ np.full(D, 1.0 / D, x.dtype))[:, None]             # (N, D) centred
    inv = 1.0 / np.sqrt(np.einsum("ij,ij->i", xhat, xhat) * (1.0 / D) + eps)   # (N,)
    xhat *= inv[:, None]
    y = xhat * g
    y += b
    return y.reshape(x.shape), (xhat, inv, g)


def layernorm_fast_backward(dout, cache):
    """The same as layernorm_backward (to rounding): dout (..., D) -> (dx, dg, db), with the two
    means over the last axis, mean(dxhat) and mean(dxhat xhat), as products with g / D."""
    xhat, inv, g = cache
    D = xhat.shape[-1]
    d2 = dout.reshape(-1, D)                                             # (N, D)
    p = d2 * xhat
    dg, db = p.sum(axis=0), d2.sum(axis=0)
    w = g * (1.0 / D)
    mean_d, mean_dx = d2 @ w, p @ w                                      # (N,) mean(dxhat), mean(dxhat xhat)
    dx = d2 * g
    dx -= mean_d[:, None]
    dx -= xhat * mean_dx[:, None]
    dx *= inv[:, None]
    return dx.reshape(dout.shape), dg, db


def relu_forward(x):
    """max(x, 0); cache: the mask x > 0."""
    on = x > 0
    return x * on, on


def relu_backward(dout, on):
    return dout * on


def elu_forward(x):
    """x where x > 0, exp(x) - 1 elsewhere (ELU with alpha 1); cache (x > 0, exp(min(x, 0)))."""
    on, e = x > 0, np.exp(np.minimum(x, 0.0))
    return np.where(on, x, e - 1.0), (on, e)


def elu_backward(dout, cache):
    on, e = cache
    return dout * np.where(on, 1.0, e)


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dout, y):
    return dout * (1.0 - y * y)


def sigmoid_forward(x):
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dout, y):
    return dout * y * (1.0 - y)


def softplus(z):
    """log(1 + exp(z)) = max(z, 0) + log(1 + exp(-|z|)), without overflow (equal to
    np.logaddexp(0, z), which takes twice as long)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def bernoulli_losses_forward(logits, x, gamma, psi=None):
    """N-EM's per-pixel loss from the decoder's logits l (psi = sigmoid(l)), elementwise:
    gamma BCE(x, psi) + (1 - gamma) KL(Bernoulli(0) || psi) = gamma (softplus(l) - x l)
    + (1 - gamma) softplus(l); from logits, so no clipping is needed. gamma is held fixed
    (no gradient). logits, x, gamma broadcast to one shape; psi: sigmoid(l) if the caller has it
    already (it is kept for the backward pass). Returns (loss, cache)."""
    loss = softplus(logits)                          # = gamma (softplus(l) - x l) + (1 - gamma) softplus(l)
    loss -= gamma * x * logits
    return loss, (sigmoid(logits) if psi is None else psi, x, gamma)


def bernoulli_losses_backward(dout, cache):
    """dout (the loss's shape) -> dlogits = dout (sigmoid(l) - gamma x)."""
    psi, x, gamma = cache
    return dout * (psi - gamma * x)


# The pair layer of message passing: one affine map of every ordered pair (focus k, context j != k).
def context_index(k: int) -> np.ndarray:
    """(K-1, K) index of the context ball of every ordered pair j != k: ctx[d, k] = (k + 1 + d) mod K."""
    return (np.arange(k)[None, :] + 1 + np.arange(k - 1)[:, None]) % k


def context_view(doubled: np.ndarray) -> np.ndarray:
    """For doubled = [c; c] of shape (2K, B, H), the read-only (K-1, K, B, H) view
    v[d, k] = c[(k + 1 + d) mod K] = c[ctx[d, k]]: the context gather without a copy."""
    K2, B, H = doubled.shape
    s0, s1, s2 = doubled.strides
    return np.lib.stride_tricks.as_strided(doubled[1:], shape=(K2 // 2 - 1, K2 // 2, B, H),
                                           strides=(s0, s0, s1, s2), writeable=False)


@functools.lru_cache(maxsize=None)
def context_scatter(k: int, dtype: np.dtype) -> np.ndarray:
    """(K, (K-1) K) 0/1 matrix S with S[j, (d, k)] = 1 where ctx[d, k] = j: S @ pair rows sums
    every pair into its context ball (the transpose of the context gather)."""
    scatter = np.zeros((k, (k - 1) * k), dtype)
    scatter[context_index(k).ravel(), np.arange((k - 1) * k)] = 1.0
    scatter.flags.writeable = False
    return scatter


class PairLayer:
    """The first layer of a pair MLP on all ordered pairs j != k: pre[d, k] = W [u_k; u_j] + b with
    j = ctx[d, k], computed as [1, u_k] @ [b; A] + u_j @ B with A = W[:n], B = W[n:]: two (R, n)
    products and a strided context view instead of a tensor of concatenated pair inputs.

    Layer "name.0": parameters `{name}.b0` (H,), `{name}.W0` (2n, H), viewed as [b; A; B].
    Rows of u are ordered (k, b); pair tensors are (K-1, K, B, H). Gradient buffers per step:
    `{name}.dfocus` = sum over partners, `{name}.dcontext` = sum over the pairs whose context is j.
    """

    def __init__(self, name: str, n_in: int, n_out: int):
        self.name, self.n_in, self.n_out = name, n_in, n_out
        self.layer = f"{name}.0"
        self.focus, self.context, self.pairs = f"{name}.focus", f"{name}.context", f"{name}.pairs"
        self.dfocus, self.dcontext = f"{name}.dfocus", f"{name}.dcontext"

    def param_shapes(self) -> dict:
        return affine_shapes(self.layer, 2 * self.n_in, self.n_out)

    def workspace_shapes(self, rows: int) -> dict:
        return {self.dfocus: (rows, self.n_out), self.dcontext: (rows, self.n_out)}

    def add_scratch(self, ws: Workspace, dtype) -> None:
        K, B, H = ws.k, ws.batch, self.n_out
        ws.scratch[self.focus] = np.zeros((K * B, H), dtype)                    # b + A u_k
        context = np.zeros((2 * K * B, H), dtype)                               # B u_j, stored twice
        ws.scratch[self.context] = context
        ws.scratch[self.pairs] = context_view(context.reshape(2 * K, B, H))     # slow to build: once

    def forward(self, A: dict, ws: Workspace, u: np.ndarray, out: np.ndarray) -> np.ndarray:
        """u (R, 1 + n) = [1, u] -> out (K-1, K, B, H) pre-activations."""
        K, B, H, n, s = ws.k, ws.batch, self.n_out, self.n_in, ws.scratch
        bAB = A[self.layer]                                                      # (1 + 2n, H) = [b; A; B]
        focus = np.matmul(u, bAB[:1 + n], out=s[self.focus])                    # (R, H)
        doubled = s[self.context]
        np.matmul(u[:, 1:], bAB[1 + n:], out=doubled[:len(u)])                  # (R, H)
        doubled[len(u):] = doubled[:len(u)]
        return np.add(s[self.pairs], focus.reshape(K, B, H), out=out)

    def backward(self, A: dict, ws: Workspace, slot: dict, d_pre: np.ndarray, need_input_grad: bool = True):
        """d_pre (K-1, K, B, H) -> d_focus, d_context (into the slot); returns dL/du (R, n) or None."""
        K, B, H, n = ws.k, ws.batch, self.n_out, self.n_in
        d_focus, d_context = slot[self.dfocus], slot[self.dcontext]
        np.add.reduce(d_pre, axis=0, out=d_focus.reshape(K, B, H))
        np.matmul(context_scatter(K, d_pre.dtype), d_pre.reshape((K - 1) * K, B * H),
                  out=d_context.reshape(K, B * H))
        if not need_input_grad:
            return None
        bAB = A[self.layer]
        return d_focus @ bAB[1:1 + n].T + d_context @ bAB[1 + n:].T

    def weight_grads(self, ws: Workspace, steps: slice, u: np.ndarray, G: dict) -> None:
        """u (steps*R, 1 + n): the layer inputs [1, u] of those steps."""
        d_focus = ws[self.dfocus][steps].reshape(-1, self.n_out)
        d_context = ws[self.dcontext][steps].reshape(-1, self.n_out)
        G_bAB = G[self.layer]
        np.matmul(u.T, d_focus, out=G_bAB[:1 + self.n_in])                     # [b; A]
        np.matmul(u[:, 1:].T, d_context, out=G_bAB[1 + self.n_in:])            # B
