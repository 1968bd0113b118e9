"""The dynamics models on oracle ball states s_k = (x, y, vx, vy): non-relational
(delta_k = MLP(s_k)) and relational (messages over j != k aggregated by mean, sum or attention),
each a forward/backward pair over one flat parameter vector; the simulator recipe's model lives in
rnem/simulator_model.py. Also their files: save_models / load_models (.npz, no pickle)."""
from __future__ import annotations


import numpy as np

from rnem.cli import ConfigError, stored_config
from rnem.environment import code_sha256
from rnem.model_files import read_model_file, write_model_file
from rnem.layers import MLP, PairLayer, ParamBuffer, Workspace, affine_shapes, context_index, init_affine, relu_
from rnem.simulator_model import SimulatorModel
from rnem.state_config import MODEL_KINDS, Config, payload_config


# ----------------------------------------------------------------------------- models
class MessageAggregation:
    """m_kj = MLP_msg([s_k; s_j]) (8-hidden-msg_dim) aggregated over j != k by mean or sum.

    The second message layer is affine, so with scale = 1/(K-1) (mean) or 1 (sum):
    agg_k = scale sum_j (h_kj W1 + b1) = [c, scale sum_j h_kj] @ [b1; W1] with c = scale (K-1):
    one (R, H) x (H, M) product instead of one per pair. Per step the workspace keeps
    `msg.hbar` (R, 1 + H) = [c, scale sum_j h_kj] and `msg.on` (K-1, K, B, H), the bool ReLU
    mask of the pairs (not the pair activations: a process's workspace stays near L2 size).
    """

    def __init__(self, hidden: int, msg_dim: int, agg: str):
        self.hidden, self.msg_dim, self.agg = hidden, msg_dim, agg
        self.pair = PairLayer("msg", 4, hidden)
        self.layers = [self.pair.layer, "msg.1"]

    def param_shapes(self) -> dict:
        return {**self.pair.param_shapes(), **affine_shapes("msg.1", self.hidden, self.msg_dim)}

    def init_params(self, A: dict, rng) -> None:
        for layer in self.layers:
            init_affine(A[layer], rng)

    def scale(self, k: int) -> float:
        return 1.0 / (k - 1) if self.agg == "mean" else 1.0

    def workspace_shapes(self, batch: int, k: int) -> dict:
        R = batch * k
        return {"msg.hbar": (R, 1 + self.hidden), "msg.on": (k - 1, k, batch, self.hidden),
                **self.pair.workspace_shapes(R)}

    def lead(self, k: int) -> dict:
        return {"msg.hbar": self.scale(k) * (k - 1)}

    def add_views(self, ws: Workspace, dtype) -> None:
        K, B, H = ws.k, ws.batch, self.hidden
        self.pair.add_scratch(ws, dtype)
        ws.scratch["msg.pair"] = np.zeros((K - 1, K, B, H), dtype)      # pre-activations, then dL/dpre
        ws.scratch["msg.dhsum"] = np.zeros((K * B, H), dtype)
        for slot in ws.slot:
            slot["msg.hsum"] = slot["msg.hbar"].reshape(K, B, 1 + H)[..., 1:]   # (K, B, H) view

    def forward(self, A, ws, slot, u, agg) -> None:
        """u (R, 1 + 4) = [1, s_k] -> agg (R, M)."""
        h = self.pair.forward(A, ws, u, ws.scratch["msg.pair"])     # (K-1, K, B, H)
        relu_(h, slot["msg.on"])
        hsum = np.add.reduce(h, axis=0, out=slot["msg.hsum"])      # (K, B, H) sum over the K-1 partners
        if self.agg == "mean":
            hsum *= self.scale(ws.k)
        np.matmul(slot["msg.hbar"], A["msg.1"], out=agg)            # (R, M)

    def backward_input(self, A, ws, slot, d_agg, need_input_grad):
        K, B, H = ws.k, ws.batch, self.hidden
        d_hsum = np.matmul(d_agg, A["msg.1"][1:].T, out=ws.scratch["msg.dhsum"])   # (R, H)
        if self.agg == "mean":
            d_hsum *= self.scale(K)
        d_pre = np.multiply(slot["msg.on"], d_hsum.reshape(K, B, H), out=ws.scratch["msg.pair"])
        return self.pair.backward(A, ws, slot, d_pre, need_input_grad)

    def weight_grads(self, ws, steps, u, d_agg, G) -> None:
        self.pair.weight_grads(ws, steps, u, G)
        np.matmul(ws["msg.hbar"][steps].reshape(-1, 1 + self.hidden).T, d_agg, out=G["msg.1"])


class AttentionInteraction:
    """R-NEM's interaction function (van Steenkiste et al. 2018, eq. 5) with small sizes:

        h_k = MLP_enc(s_k)                       4 -> He, ReLU
        xi_kj = MLP_emb([h_k; h_j])              2 He -> Hm, ReLU (focus k, context j kept apart)
        e_kj = MLP_eff(xi_kj)                    Hm -> msg_dim, ReLU
        a_kj = sigmoid(MLP_att(xi_kj))           Hm -> Ha tanh -> 1, an independent gate per pair
        E_k = sum_{j != k} a_kj e_kj             (agg_k of the dynamics MLP)

    with He = Hm = hidden / 2 and Ha = hidden / 4. Setting `gate_override` to a number replaces
    every a_kj by it (a test hook: with 1, E_k is the plain sum of effects). Activations that
    feed a next layer are stored as [1, x] (`enc.h`, `emb.xi`, `att.t`); pair rows are (d, k, b).
    """

    def __init__(self, hidden: int, msg_dim: int):
        self.He = self.Hm = max(1, hidden // 2)
        self.Ha, self.msg_dim = max(1, hidden // 4), msg_dim
        self.emb = PairLayer("emb", self.He, self.Hm)
        self.sizes = {"enc.0": (4, self.He), "eff.0": (self.Hm, msg_dim), "att.0": (self.Hm, self.Ha),
                      "att.1": (self.Ha, 1)}
        self.layers = ["enc.0", self.emb.layer, "eff.0", "att.0", "att.1"]
        self.gate_override = None

    def param_shapes(self) -> dict:
        shapes = affine_shapes("enc.0", *self.sizes["enc.0"])
        shapes.update(self.emb.param_shapes())
        for layer in ("eff.0", "att.0", "att.1"):
            shapes.update(affine_shapes(layer, *self.sizes[layer]))
        return shapes

    def init_params(self, A: dict, rng) -> None:
        for layer in self.layers:
            init_affine(A[layer], rng)

    def workspace_shapes(self, batch: int, k: int) -> dict:
        R, P = batch * k, (k - 1) * k * batch
        return {"enc.h": (R, 1 + self.He), "enc.on": (R, self.He), "enc.dz": (R, self.He),
                **self.emb.workspace_shapes(R),
                "emb.xi": (P, 1 + self.Hm), "emb.on": (P, self.Hm),
                "eff.e": (P, self.msg_dim), "eff.on": (P, self.msg_dim), "eff.dz": (P, self.msg_dim),
                "att.t": (P, 1 + self.Ha), "att.dzt": (P, self.Ha), "att.a": (P, 1), "att.dza": (P, 1)}

    def lead(self, k: int) -> dict:
        return {"enc.h": 1.0, "emb.xi": 1.0, "att.t": 1.0}

    def add_views(self, ws: Workspace, dtype) -> None:
        K, B = ws.k, ws.batch
        self.emb.add_scratch(ws, dtype)
        ws.scratch["emb.dxi"] = np.zeros(((K - 1) * K * B, self.Hm), dtype)
        ws.scratch["att.pair"] = np.zeros(((K - 1) * K * B, self.msg_dim), dtype)
        for slot in ws.slot:
            slot["enc.z"] = slot["enc.h"][:, 1:]                                          # (R, He)
            slot["emb.z"] = slot["emb.xi"].reshape(K - 1, K, B, 1 + self.Hm)[..., 1:]    # (K-1, K, B, Hm)
            slot["att.z"] = slot["att.t"][:, 1:]                                          # (P, Ha)
            slot["emb.on4"] = slot["emb.on"].reshape(K - 1, K, B, self.Hm)               # (K-1, K, B, Hm)

    def forward(self, A, ws, slot, u, agg) -> None:
        """u (R, 1 + 4) = [1, s_k] -> agg (R, M)."""
        K, B, M = ws.k, ws.batch, self.msg_dim
        h = np.matmul(u, A["enc.0"], out=slot["enc.z"])            # (R, He)
        relu_(h, slot["enc.on"])
        xi = self.emb.forward(A, ws, slot["enc.h"], slot["emb.z"])  # (K-1, K, B, Hm)
        relu_(xi, slot["emb.on4"])
        xi = slot["emb.xi"]                                         # (P, 1 + Hm) = [1, xi_kj]
        e = np.matmul(xi, A["eff.0"], out=slot["eff.e"])           # (P, M)
        relu_(e, slot["eff.on"])
        np.tanh(np.matmul(xi, A["att.0"], out=slot["att.z"]), out=slot["att.z"])   # (P, Ha)
        a = np.matmul(slot["att.t"], A["att.1"], out=slot["att.a"])               # (P, 1)
        np.negative(a, out=a)                                       # sigmoid(z) = 1 / (1 + exp(-z))
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a)
        if self.gate_override is not None:
            a[...] = self.gate_override
        ae = np.multiply(a, e, out=ws.scratch["att.pair"])          # (P, M) a_kj e_kj
        np.add.reduce(ae.reshape(K - 1, K * B, M), axis=0, out=agg)  # E_k = sum_j a_kj e_kj

    def backward_input(self, A, ws, slot, d_agg, need_input_grad):
        K, B, M = ws.k, ws.batch, self.msg_dim
        R, e, a, t = K * B, slot["eff.e"], slot["att.a"], slot["att.z"]
        dz_e = slot["eff.dz"]                                                       # (P, M), rows (d, k, b)
        np.multiply(a.reshape(K - 1, R, 1), d_agg, out=dz_e.reshape(K - 1, R, M))  # dL/de_kj = a_kj dL/dE_k ...
        dz_e *= slot["eff.on"]                                                      # ... through the ReLU
        e_dE = np.multiply(e.reshape(K - 1, R, M), d_agg, out=ws.scratch["att.pair"].reshape(K - 1, R, M))
        np.add.reduce(e_dE, axis=2, out=slot["att.dza"].reshape(K - 1, R))         # dL/da_kj = e_kj . dL/dE_k
        dza = slot["att.dza"]                                                       # (P, 1)
        dza *= a * (1.0 - a)                                                        # sigmoid'
        dzt = np.multiply(dza, A["att.1"][1:].T, out=slot["att.dzt"])              # (P, 1) x (1, Ha) outer product
        dzt *= 1.0 - t * t                                                          # tanh'
        dxi = np.matmul(dz_e, A["eff.0"][1:].T, out=ws.scratch["emb.dxi"])         # (P, Hm)
        dxi += dzt @ A["att.0"][1:].T
        dxi *= slot["emb.on"]                                                       # ReLU of the embedding
        dh = self.emb.backward(A, ws, slot, dxi.reshape(K - 1, K, B, self.Hm))    # (R, He)
        dz_h = np.multiply(dh, slot["enc.on"], out=slot["enc.dz"])
        return dz_h @ A["enc.0"][1:].T if need_input_grad else None

    def weight_grads(self, ws, steps, u, d_agg, G) -> None:
        def stacked(name):
            return ws[name][steps].reshape(-1, ws[name].shape[-1])

        xi = stacked("emb.xi")
        for layer, inputs, grads in (("enc.0", u, stacked("enc.dz")),
                                     ("eff.0", xi, stacked("eff.dz")),
                                     ("att.0", xi, stacked("att.dzt")),
                                     ("att.1", stacked("att.t"), stacked("att.dza"))):
            np.matmul(inputs.T, grads, out=G[layer])
        self.emb.weight_grads(ws, steps, stacked("enc.h"), G)


AGGREGATORS = ("mean", "sum", "attention")


class DynamicsModel:
    """Shared machinery: flat parameters, workspaces, the forward/backward API.

    forward(S) -> (delta, cache) for S (B, K, 4); backward(d_delta, cache) -> (grads, dS).
    Inside, rows are ordered (k, b) and the input of step t of the dynamics MLP,
    `ws.inputs[t]` (R, 1 + 4 + ...) = [1, s_k, ...], holds the state: `ws.states[t]` (K, B, 4)
    is a view of it, so a closed-loop unroll writes s_{t+1} straight into step t+1's input.
    With a workspace `ws` and step `t`, forward writes its activations into slot t of ws and
    the returned delta is a view valid until slot t is written again.
    """

    kind = ""

    def _setup(self, blocks, dtype):
        shapes = {}
        for block in blocks:
            shapes.update(block.param_shapes())
        self.layers = [layer for block in blocks for layer in block.layers]
        self.layout = ParamBuffer(shapes)
        self.dtype = np.dtype(dtype)
        self.flat = np.zeros(self.layout.size, self.dtype)
        self.params = self.layout.views(self.flat)
        self.A = self.layout.affine(self.flat, self.layers)         # layer -> [b; W], views of flat

    @property
    def n_params(self) -> int:
        return self.layout.size

    def grads_like(self, flat: np.ndarray) -> dict:
        """Named views of a gradient vector (cached for the last vector asked for)."""
        self._grad_views(flat)
        return self._grads_views

    def _grad_views(self, flat: np.ndarray) -> dict:
        """[b; W] views of a gradient vector, by layer (cached with grads_like)."""
        if getattr(self, "_grads_flat", None) is not flat:
            self._grads_flat, self._grads_views = flat, self.layout.views(flat)
            self._grads_affine = self.layout.affine(flat, self.layers)
        return self._grads_affine

    def make_workspace(self, n_steps: int, batch: int, k: int) -> Workspace:
        ws = Workspace(n_steps, batch, k, self._workspace_shapes(batch, k), self.dtype, self._lead(k))
        n_in = self.dyn.sizes[0]
        ws.inputs = np.zeros((n_steps + 1, batch * k, 1 + n_in), self.dtype)    # [1, s_t, ...]; [n_steps]: s_T only
        ws.inputs[..., 0] = 1.0
        ws.states = ws.inputs.reshape(n_steps + 1, k, batch, 1 + n_in)[..., 1:5]   # (n_steps + 1, K, B, 4)
        ws.d_delta = ws[self.dyn.d[-1]].reshape(n_steps, k, batch, 4)           # dL/d delta_t (n_steps, K, B, 4)
        for t, slot in enumerate(ws.slot):
            slot["dyn.x0"] = ws.inputs[t]
        self.dyn.add_views(ws)
        self._add_views(ws)
        return ws

    def _lead(self, k: int) -> dict:
        return self.dyn.lead()

    def _add_views(self, ws: Workspace) -> None:
        """Buffers used only within one step (shared by all slots) and extra per-slot views."""

    def forward(self, S: np.ndarray, ws: Workspace | None = None, t: int = 0):
        B, K, _ = S.shape
        if ws is None:
            ws, t = self.make_workspace(1, B, K), 0
        np.copyto(ws.states[t], S.transpose(1, 0, 2))
        return self.step(ws, t).transpose(1, 0, 2), (ws, t)          # (B, K, 4)

    def backward_input(self, d_delta: np.ndarray, cache, need_input_grad: bool = True):
        """dL/dS (B, K, 4) of one forward call, from d_delta (B, K, 4); fills the slot's gradients."""
        ws, t = cache
        np.copyto(ws.d_delta[t], d_delta.transpose(1, 0, 2))
        dS = self.step_backward(ws, t, need_input_grad)
        return None if dS is None else dS.transpose(1, 0, 2)

    def backward(self, d_delta: np.ndarray, cache):
        """Gradients of sum(d_delta * delta) for one forward call: (grads keyed like params, dS)."""
        ws, t = cache
        dS = self.backward_input(d_delta, cache)
        grad_flat = np.zeros(self.layout.size, self.dtype)
        self.weight_grads(ws, slice(t, t + 1), grad_flat)
        return self.grads_like(grad_flat), dS

    def weight_grads(self, ws: Workspace, steps: slice, grad_flat: np.ndarray) -> None:
        """Writes into grad_flat the weight gradients of the forward/backward passes in those steps."""
        self._weight_grads(ws, steps, self._grad_views(grad_flat))


class NonRelationalDynamics(DynamicsModel):
    """delta_k = MLP_dyn(s_k): every slot updated alone (4-hidden-hidden-4)."""

    kind = "non_relational"

    def __init__(self, hidden: int = 64, rng: np.random.Generator | None = None, dtype=np.float64):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dyn = MLP("dyn", (4, hidden, hidden, 4))
        self._setup([self.dyn], dtype)
        self.dyn.init_params(self.A, rng)

    def _workspace_shapes(self, batch, k):
        return self.dyn.workspace_shapes(batch * k)

    def step(self, ws, t):
        """delta (K, B, 4) from the state in ws.inputs[t]."""
        return self.dyn.forward(self.A, ws.slot[t], ws.inputs[t]).reshape(ws.k, ws.batch, 4)

    def step_backward(self, ws, t, need_input_grad=True):
        """dL/ds_t (K, B, 4) through delta_t alone, from ws.d_delta[t]; or None."""
        dX = self.dyn.backward_input(self.A, ws.slot[t], need_input_grad)
        return None if dX is None else dX.reshape(ws.k, ws.batch, 4)

    def _weight_grads(self, ws, steps, G):
        self.dyn.weight_grads(ws, steps, ws.inputs[steps].reshape(-1, 5), G)


class RelationalDynamics(DynamicsModel):
    """delta_k = MLP_dyn([s_k; agg_k]) with agg_k from the other balls:

    agg="mean"       agg_k = mean_{j != k} MLP_msg([s_k; s_j])      message MLP 8-hidden-msg_dim
    agg="sum"        agg_k = sum_{j != k} MLP_msg([s_k; s_j])
    agg="attention"  agg_k = sum_{j != k} a_kj e_kj (AttentionInteraction)

    Dynamics MLP (4+msg_dim)-hidden-hidden-4. Pair functions are evaluated on the K(K-1) ordered
    off-diagonal pairs only. Rows are ordered (k, b) so that pair tensors are (K-1, K, B, .):
    pair (d, k) has context ball j = ctx[d, k]. The dynamics input [1, s_k, agg_k] is one
    buffer: the interaction reads [1, s_k] from it and writes agg_k into it.
    """

    kind = "relational"

    def __init__(self, hidden: int = 64, msg_dim: int = 8, rng: np.random.Generator | None = None,
                 dtype=np.float64, agg: str = "mean"):
        if agg not in AGGREGATORS:
            raise ValueError(f"agg must be one of {', '.join(AGGREGATORS)} (got {agg!r})")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.hidden, self.msg_dim, self.agg = hidden, msg_dim, agg
        self.interaction = (AttentionInteraction(hidden, msg_dim) if agg == "attention"
                            else MessageAggregation(hidden, msg_dim, agg))
        self.dyn = MLP("dyn", (4 + msg_dim, hidden, hidden, 4))
        self._setup([self.interaction, self.dyn], dtype)
        self.interaction.init_params(self.A, rng)
        self.dyn.init_params(self.A, rng)

    def _workspace_shapes(self, batch, k):
        shapes = self.dyn.workspace_shapes(batch * k)
        shapes["dyn.dx0"] = (batch * k, 4 + self.msg_dim)           # dL/d[s_k; agg_k]
        shapes.update(self.interaction.workspace_shapes(batch, k))
        return shapes

    def _lead(self, k):
        return {**self.dyn.lead(), **self.interaction.lead(k)}

    def _add_views(self, ws):
        self.interaction.add_views(ws, self.dtype)

    def step(self, ws, t):
        """delta (K, B, 4) from the state in ws.inputs[t]."""
        slot, x = ws.slot[t], ws.inputs[t]                          # x (R, 1 + 4 + M) = [1, s_k, agg_k]
        self.interaction.forward(self.A, ws, slot, x[:, :5], x[:, 5:])
        return self.dyn.forward(self.A, slot, x).reshape(ws.k, ws.batch, 4)

    def step_backward(self, ws, t, need_input_grad=True):
        """dL/ds_t (K, B, 4) through delta_t (directly and through every agg_k), from ws.d_delta[t]; or None."""
        slot = ws.slot[t]
        dx = self.dyn.backward_input(self.A, slot, out=slot["dyn.dx0"])         # (R, 4 + M)
        dS = self.interaction.backward_input(self.A, ws, slot, dx[:, 4:], need_input_grad)
        if not need_input_grad:
            return None
        dS += dx[:, :4]
        return dS.reshape(ws.k, ws.batch, 4)

    def _weight_grads(self, ws, steps, G):
        x = ws.inputs[steps].reshape(-1, 5 + self.msg_dim)         # (steps*R, 1 + 4 + M)
        self.dyn.weight_grads(ws, steps, x, G)
        d_agg = ws["dyn.dx0"][steps][..., 4:].reshape(-1, self.msg_dim)
        self.interaction.weight_grads(ws, steps, x[:, :5], d_agg, G)

    def attention(self, ws: Workspace, t: int = 0) -> np.ndarray:
        """The gates a_kj of the last forward pass in slot t as (B, K, K), zero on the diagonal."""
        K, B = ws.k, ws.batch
        a = ws.slot[t]["att.a"].reshape(K - 1, K, B)                # a[d, k, b] for j = ctx[d, k]
        out = np.zeros((B, K, K))
        ctx = context_index(K)
        for d in range(K - 1):
            out[:, np.arange(K), ctx[d]] = a[d].T
        return out


def make_model(kind: str, cfg: Config, rng: np.random.Generator, dtype=None):
    """The `kind` model of cfg's recipe."""
    dtype = dtype or cfg.dtype
    if cfg.recipe == "simulator":
        return SimulatorModel(kind, cfg.hidden, cfg.radius, cfg.dt, rng=rng, dtype=dtype)
    if kind == "non_relational":
        return NonRelationalDynamics(cfg.hidden, rng=rng, dtype=dtype)
    return RelationalDynamics(cfg.hidden, cfg.msg_dim, rng=rng, dtype=dtype, agg=cfg.agg)


# ----------------------------------------------------------------------------- output
MODEL_FILE_FORMAT = "relational-nem-bouncing-balls models 1"


def model_name(kind: str, recipe: str = "stub") -> str:
    """The name of a saved model: recipe.kind, e.g. stub.relational."""
    return f"{recipe}.{kind}"


def save_models(path: str, models: dict, cfg: Config, histories: dict, timings: dict, script: str,
                extra: dict | None = None) -> None:
    """Writes every model's parameter vector with the config, history and source sha256 (and
    `extra`, more metadata) to an .npz (numpy arrays only: the metadata is one JSON string,
    loadable without pickle); written to a temporary file and renamed into place."""
    meta = {"format": MODEL_FILE_FORMAT, **dict(zip(("source_sha256", "package_sha256"), code_sha256(script))),
            "config": payload_config(cfg),
            "models": {model_name(kind, cfg.recipe): {"kind": kind, "n_params": model.n_params,
                                                      "dtype": model.dtype.name}
                       for kind, model in models.items()},
            "history": histories, "timing": timings, **(extra or {})}
    arrays = {model_name(kind, cfg.recipe): model.flat for kind, model in models.items()}
    write_model_file(path, meta, arrays)


def read_model_meta(path: str) -> dict:
    return read_model_file(path, "--load-model", MODEL_FILE_FORMAT)[0]


def load_models(path: str) -> dict:
    """{name: model} of a file written by --save-model, e.g. {"stub.non_relational": ...,
    "stub.relational": ...}; each is ready for rollout(model, init, n_steps). Raises
    ConfigError (a ValueError) for a malformed file or one that does not match its config."""
    meta, arrays = read_model_file(path, "--load-model", MODEL_FILE_FORMAT)
    config = meta["config"]
    try:
        cfg = stored_config(Config, config, known_only=True)
    except TypeError as err:
        raise ConfigError(f"--load-model {path}: config does not fit this script ({err})")
    models = {}
    for name, info in meta["models"].items():
        kind = info.get("kind") if isinstance(info, dict) else None
        if kind not in MODEL_KINDS or name not in arrays:
            raise ConfigError(f"--load-model {path}: model {name!r} is missing or of unknown kind")
        flat = arrays[name]
        if flat.dtype.name not in ("float32", "float64"):
            raise ConfigError(f"--load-model {path}: {name} has dtype {flat.dtype}, expected float32 or float64")
        try:
            model = make_model(kind, cfg, np.random.default_rng(0), flat.dtype.name)
        except (ValueError, TypeError, MemoryError) as err:
            raise ConfigError(f"--load-model {path}: {name}: {type(err).__name__} {err}")
        if flat.shape != (model.n_params,):
            raise ConfigError(f"--load-model {path}: {name} has {flat.size} parameters, but its config "
                              f"(hidden {cfg.hidden}, msg_dim {cfg.msg_dim}, agg {cfg.agg}) needs {model.n_params}")
        if not np.isfinite(flat).all():
            raise ConfigError(f"--load-model {path}: {name} has non-finite parameters")
        model.flat[...] = flat
        models[name] = model
    return models
