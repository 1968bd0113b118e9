"""The simulator recipe's models (--recipe simulator): a learned simulator built on free flight."""
from __future__ import annotations

import math

import numpy as np

from rnem.balls import HEAVY_RADIUS, mirror_into_box
from rnem.layers import ParamBuffer, affine_backward, affine_forward

# A learned simulator built on free flight. Each step starts from x~ = x + dt v and adds
# corrections whose form is physics and whose timing is learned:
#   walls (both kinds): per ball and axis, a gate q = sigmoid(MLP_wall(gap features)) mirrors
#       the centre at the wall the ball heads to and reverses that velocity component:
#       dpos = 2 q g sign(v), dv = -2 q v, with g the look-ahead gap to that wall
#       (q = 1 exactly when g < 0 is the simulator's wall pass);
#   pairs (relational only): per ordered pair within reach (rho < r_k + r_j + r0, the others
#       contribute exactly zero), a gate p = sigmoid(MLP_pair(pair features)) scales the elastic
#       impulse along the line of centres n_kj: J_kj = 2 p u_kj / (w_k + w_j) with u_kj the
#       approach speed, dv_k = -sum_j J_kj w_k n_kj, and pushes the pair apart by p times half
#       their overlap. The features are symmetric in k and j, so p_kj = p_jk, J_kj = J_jk and
#       momentum sum_k v_k / w_k is conserved by construction; energy too wherever p is 0 or 1;
#   the box (rollouts, hard gates only): a centre still outside [r, 1 - r] after the gated wall
#       pass gets the simulator's exact wall pass, so rollouts never leave the box;
#   masses: inverse masses w_k = exp(alpha (r_k - r0) / (0.25 r0)) of the visible radius, alpha
#       learned (the true -ln 6 for the heavy type, 1.25 r0; equal radii: w = 1, no gradient).
# The non-relational model is the same design without the pair term.
SIM_WALL_FEATURES = 3   # look-ahead gap, current gap, |v| dt; in units of r0
SIM_PAIR_FEATURES = 4   # look-ahead gap rho - c, current gap, approach speed u dt, c - 2 r0; in units of r0
SIM_GATE_BIAS = -4.0    # gates start near 0: training starts from free flight


def gate_mlp_forward(P: dict, name: str, x: np.ndarray, n_layers: int):
    """sigmoid(MLP(x)): ReLU hidden layers, one linear output unit. x (N, D) -> (gate (N,), cache)."""
    caches, h = [], x
    for l in range(n_layers):
        z, cache = affine_forward(h, P[f"{name}.W{l}"], P[f"{name}.b{l}"])
        caches.append(cache)
        h = np.maximum(z, 0.0) if l < n_layers - 1 else z          # (N, H) ... (N, 1)
        if l < n_layers - 1:
            caches.append(z > 0)
    # 1 / (1 + exp(-h)), not rnem.layers.sigmoid: the two differ in the last bit, and with that
    # form a gate flipped within the first 20 steps of a rollout under a second BLAS kernel
    # (benchmarks/kernel_check.py, masses, seeds 0-9), which this form does not
    gate = 1.0 / (1.0 + np.exp(-h[:, 0]))                          # (N,)
    return gate, (caches, gate)


def gate_mlp_backward(dgate: np.ndarray, cache, name: str, n_layers: int, G: dict) -> np.ndarray:
    """Accumulates into G the parameter gradients of sum(dgate * gate); returns dL/dx (N, D)."""
    caches, gate = cache
    d = (dgate * gate * (1.0 - gate))[:, None]                     # (N, 1) through the sigmoid
    for l in reversed(range(n_layers)):
        if l < n_layers - 1:
            d = d * caches[2 * l + 1]                              # ReLU'
        d, dW, db = affine_backward(d, caches[2 * l])
        G[f"{name}.W{l}"] += dW
        G[f"{name}.b{l}"] += db
    return d


class SimulatorModel:
    """The simulator recipe's non-relational (kind "non_relational") or relational model: one step
    S (B, K, D) -> S' with D = 4 (x, y, vx, vy; radius `radius` for every ball) or D = 5 (the
    radius as fifth component, copied). The comment at the top of this module has the maths.

    forward(S) -> (S' - S, cache) and rollout() work as for the stub's models;
    loss_and_grads(S, target) gives the one-step loss and its gradient (plain forward/backward).
    """

    recipe = "simulator"

    def __init__(self, kind: str, hidden: int, radius: float, dt: float, rng=None, dtype=np.float64,
                 layers: int = 3):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.kind, self.r0, self.dt, self.n_layers = kind, radius, dt, layers
        self.dtype = np.dtype(dtype)
        shapes = {}
        blocks = [("wall", SIM_WALL_FEATURES)] + ([("pair", SIM_PAIR_FEATURES)] if kind == "relational" else [])
        for name, n_in in blocks:
            sizes = (n_in,) + (hidden,) * (layers - 1) + (1,)
            for l in range(layers):
                shapes[f"{name}.W{l}"] = (sizes[l], sizes[l + 1])
                shapes[f"{name}.b{l}"] = (sizes[l + 1],)
        if kind == "relational":
            shapes["mass.alpha"] = (1,)
        self.blocks = [name for name, _ in blocks]
        self.layout = ParamBuffer(shapes)
        self.flat = np.zeros(self.layout.size, self.dtype)
        self.params = self.layout.views(self.flat)
        for name, n_in in blocks:
            for l in range(layers):
                W = self.params[f"{name}.W{l}"]
                W[...] = rng.standard_normal(W.shape) * math.sqrt(2.0 / W.shape[0])
            self.params[f"{name}.b{layers - 1}"][...] = SIM_GATE_BIAS
        self.loss_scale = np.ones(2)                               # 1 / sigma^2 of position, velocity residuals
        self.hard_gates = True      # every gate rounded to 0 or 1 (evaluation); training sets it False

    @property
    def n_params(self) -> int:
        return self.layout.size

    def make_workspace(self, n_steps, batch, k):
        return None                                                # plain passes: nothing preallocated

    def radii(self, S: np.ndarray) -> np.ndarray:
        """(B, K) radius of every ball: the fifth state component, or r0."""
        return S[..., 4] if S.shape[-1] == 5 else np.full(S.shape[:2], self.r0, S.dtype)

    # --- walls
    def walls_forward(self, x, r, x1, v1):
        """The simulator's wall pass, gated: per ball and axis, at the wall nearest to x1, a gate
        q = sigmoid(MLP_wall(gap of x1, gap of x, inward speed of v1)) mirrors x1 at that wall and
        points v1 inwards; x1, v1 (B, K, 2): after free flight and the pair impulses, r (B, K):
            x' = x1 - 2 q (x1 - wall),  v' = v1 + q (inward |v1| - v1)
        (q = 1 exactly when x1 is beyond the wall is the simulator's rule). Returns (x', v', cache)."""
        lo, hi = r[..., None], 1.0 - r[..., None]
        low = x1 < 0.5                                             # nearest wall: the low one
        inward = np.where(low, 1.0, -1.0)
        wall = np.where(low, lo, hi)                               # (B, K, 2) its coordinate
        feats = np.stack([inward * (x1 - wall) / self.r0, inward * (x - wall) / self.r0,
                          -inward * v1 * self.dt / self.r0], axis=-1)   # gaps (< 0: beyond), speed towards it
        q, gate_cache = gate_mlp_forward(self.params, "wall", feats.reshape(-1, SIM_WALL_FEATURES), self.n_layers)
        q = q.reshape(x1.shape)                                    # (B, K, 2)
        if self.hard_gates:
            q = (q > 0.5).astype(q.dtype)
        x_out = x1 - 2.0 * q * (x1 - wall)                         # mirror at the wall
        v_out = v1 + q * (inward * np.abs(v1) - v1)                # point inwards
        if self.hard_gates:
            # the box, enforced in rollouts: a centre the gates leave outside [r, 1 - r] (a gate
            # that missed a wall, or fired early and mirrored a centre out) gets the simulator's
            # own wall pass, so no predicted centre is ever outside the box
            x_out, v_out, _ = mirror_into_box(x_out, v_out, lo, hi)
        return x_out, v_out, (gate_cache, q, x1, v1, wall, inward)

    def walls_backward(self, d_x, d_v, cache, G):
        """Accumulates the gate parameters' gradients into G; returns (dL/dx1, dL/dv1)."""
        gate_cache, q, x1, v1, wall, inward = cache
        dq = d_x * -2.0 * (x1 - wall) + d_v * (inward * np.abs(v1) - v1)   # (B, K, 2)
        d_feats = gate_mlp_backward(dq.reshape(-1), gate_cache, "wall", self.n_layers, G).reshape(x1.shape + (3,))
        d_x1 = d_x * (1.0 - 2.0 * q) + d_feats[..., 0] * inward / self.r0
        d_v1 = d_v * (1.0 - q + q * inward * np.sign(v1)) - d_feats[..., 2] * inward * self.dt / self.r0
        return d_x1, d_v1

    # --- pairs
    def pairs_forward(self, x, v, xf, r):
        """Impulses and pushes of every ordered pair within reach -> (dpos, dv (B, K, 2), cache)."""
        B, K, _ = x.shape
        off = xf[:, None, :, :] - xf[:, :, None, :]                # (B, K, K, 2) [b, k, j] = xf_j - xf_k
        rho = np.sqrt((off ** 2).sum(-1))                          # (B, K, K)
        diag = np.eye(K, dtype=bool)
        rho_safe = np.where(diag, 1.0, rho)
        n = off / rho_safe[..., None]                              # unit k -> j
        c = r[:, :, None] + r[:, None, :]                          # r_k + r_j
        u = ((v[:, :, None, :] - v[:, None, :, :]) * n).sum(-1)    # (v_k - v_j).n_kj > 0: approaching
        near = ~diag & (rho < c + self.r0)                         # pairs within reach; the rest give 0
        dist_now = np.sqrt(((x[:, None, :, :] - x[:, :, None, :]) ** 2).sum(-1))
        feats = np.stack([(rho - c) / self.r0, (dist_now - c) / self.r0, u * self.dt / self.r0,
                          (c - 2.0 * self.r0) / self.r0], axis=-1)[near]      # (P, 4), symmetric in k, j
        p = np.zeros((B, K, K), x.dtype)
        gate_cache = None
        if near.any():
            p_near, gate_cache = gate_mlp_forward(self.params, "pair", feats, self.n_layers)
            p[near] = (p_near > 0.5) if self.hard_gates else p_near
        size = (r - self.r0) / ((HEAVY_RADIUS - 1.0) * self.r0)   # 0 for the base radius, 1 for the heavy type
        w = np.exp(self.params["mass.alpha"][0] * size)            # (B, K) inverse masses
        S = w[:, :, None] + w[:, None, :]                          # w_k + w_j
        phi = w[:, :, None] / S                                    # w_k / (w_k + w_j)
        overlap = np.maximum(c - rho, 0.0)
        dv = -((2.0 * p * u * phi)[..., None] * n).sum(axis=2)     # -sum_j J_kj w_k n_kj
        dpos = -((0.5 * p * overlap)[..., None] * n).sum(axis=2)   # -sum_j p (c - rho)+ / 2 n_kj
        return dpos, dv, (gate_cache, near, p, u, phi, w, S, overlap, n, r)

    def pairs_backward(self, d_dpos, d_dv, cache, G):
        gate_cache, near, p, u, phi, w, S, overlap, n, r = cache
        dv_n = (d_dv[:, :, None, :] * n).sum(-1)                   # (B, K, K) d_dv_k . n_kj
        dpos_n = (d_dpos[:, :, None, :] * n).sum(-1)
        dp = -2.0 * u * phi * dv_n - 0.5 * overlap * dpos_n
        if gate_cache is not None:
            gate_mlp_backward(dp[near], gate_cache, "pair", self.n_layers, G)
        d_phi = -2.0 * p * u * dv_n                                # dL/d phi_kj
        # phi_kj = w_k / S_kj: d phi_kj / d w_k = w_j / S^2, d phi_jk / d w_k = -w_j / S^2
        d_w = ((d_phi - d_phi.transpose(0, 2, 1)) * w[:, None, :] / S ** 2).sum(axis=2)   # (B, K)
        G["mass.alpha"] += (d_w * w * (r - self.r0) / ((HEAVY_RADIUS - 1.0) * self.r0)).sum()

    def restore_energy(self, v, v1, pair_cache):
        """With hard gates each pair impulse is elastic, but impulses applied at once to a ball in
        contact with two others are not. Per sequence, the velocities of the balls that received
        an impulse are scaled about their centre-of-mass velocity so that their kinetic energy is
        what it was: momentum unchanged, and a no-op (lambda = 1) for single collisions."""
        p, w = pair_cache[2], pair_cache[5]
        hit = (p > 0).any(axis=2)                                  # (B, K) received an impulse
        m = np.where(hit, 1.0 / w, 0.0)                            # masses of those balls
        M = m.sum(axis=1, keepdims=True)                           # (B, 1)
        v_cm = (m[..., None] * v1).sum(axis=1) / np.maximum(M, 1e-12)            # (B, 2)
        e_before = (m * (v ** 2).sum(-1)).sum(axis=1)              # 2 x kinetic energy
        rel = v1 - v_cm[:, None, :]
        e_rel = (m * (rel ** 2).sum(-1)).sum(axis=1)
        e_cm = M[:, 0] * (v_cm ** 2).sum(-1)
        lam = np.sqrt(np.maximum(e_before - e_cm, 0.0) / np.where(e_rel > 0, e_rel, 1.0))   # (B,)
        return np.where(hit[..., None], v_cm[:, None, :] + lam[:, None, None] * rel, v1)

    # --- one step
    def step_forward(self, S: np.ndarray):
        """S (B, K, D) -> (S' (B, K, D), cache): free flight, pair impulses, then walls."""
        x, v, r = S[..., :2], S[..., 2:4], self.radii(S)
        xf = x + self.dt * v                                       # free flight
        x1, v1, pair_cache = xf, v, None
        if self.kind == "relational":
            dpos, dv, pair_cache = self.pairs_forward(x, v, xf, r)
            x1, v1 = xf + dpos, v + dv                             # after the pair impulses and pushes
            if self.hard_gates:
                v1 = self.restore_energy(v, v1, pair_cache)
        out = S.copy()
        out[..., :2], out[..., 2:4], wall_cache = self.walls_forward(x, r, x1, v1)
        return out, (wall_cache, pair_cache)

    def step_backward(self, d_out: np.ndarray, cache) -> np.ndarray:
        """Gradient vector (like flat) of sum(d_out * S') for one step_forward."""
        wall_cache, pair_cache = cache
        grad = np.zeros_like(self.flat)
        G = self.layout.views(grad)
        d_x1, d_v1 = self.walls_backward(d_out[..., :2], d_out[..., 2:4], wall_cache, G)
        if pair_cache is not None:
            self.pairs_backward(d_x1, d_v1, pair_cache, G)
        return grad

    def forward(self, S, ws=None, t=0):
        """(S' - S (B, K, D), cache): the stub models' interface, for rollout() and the baselines."""
        out, cache = self.step_forward(np.asarray(S, self.dtype))
        return out - S, cache

    def loss_and_grads(self, S: np.ndarray, target: np.ndarray):
        """One-step loss: per-element mean of e_x^2 / sigma_x^2 and e_v^2 / sigma_v^2 over
        S (B, K, D) -> target (B, K, D); returns (loss, gradient vector)."""
        out, cache = self.step_forward(S)
        err = out[..., :4] - target[..., :4]                      # (B, K, 4)
        scale = np.repeat(self.loss_scale, 2)                      # (4,) position, position, velocity, velocity
        loss = float((err ** 2 * scale).sum()) / err.size
        d_out = np.zeros_like(out)
        d_out[..., :4] = 2.0 * err * scale / err.size
        return loss, self.step_backward(d_out, cache)
