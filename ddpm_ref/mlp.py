"""The noise-prediction network ε_θ(x_t, t): a small MLP with hand-written backprop.

Input: the features γ(x_t) (B, F) of x_t concatenated with a sinusoidal embedding of t (B, E)
(Vaswani et al. 2017, as in Ho et al. 2020's U-Net). γ(x) is x itself followed, when ``fourier`` = K > 0,
by sin(2^k x_d) and cos(2^k x_d) for k = 0..K−1 (Fourier features, Tancik et al. 2020: an MLP on x alone
learns fine detail slowly, "spectral bias"), so F = D(1 + 2K). Then ``depth`` hidden layers of width H
with a pointwise activation, and a linear read-out of D numbers (ε_θ has the shape of x). Parameters are
a plain dict of float64 arrays:

    W0 (F+E, H), b0 (H,),  W1 (H, H), b1 (H,),  ...,  W{depth} (H, D), b{depth} (D,)

A class-conditional ε_θ(x_t, t, y) (``n_classes`` = C > 0) adds a learned class embedding to the time
embedding, emb(t) + E_y, as improved-diffusion's ``label_emb``: a table ``"C"`` (C + 1, E) whose row C is
the "no class" ∅ that classifier-free guidance needs (Ho & Salimans 2022); y = None means ∅.

Each layer's forward sits beside its backward (llm.c style): ``linear_forward``/``linear_backward``,
``act_forward``/``act_backward``, ``input_features``/``input_features_backward``; ``forward(params, x, t, cfg)
-> (out, cache)`` runs them in order and ``backward(params, cache, dout, cfg) -> grads``, the one backward
entry point, in reverse. Gradient names mirror the forward names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import expit  # σ(a) = 1/(1 + e^(−a)) without overflow

__all__ = ["MLPConfig", "ACTIVATIONS", "timestep_embedding", "input_features", "init_params", "layer_widths", "forward",
           "backward", "backward_with_dx", "param_count", "flops_per_point", "Denoiser", "network", "linear_forward",
           "linear_backward", "act_forward", "act_backward", "input_features_backward", "class_index"]


@dataclass(frozen=True)
class MLPConfig:
    """Architecture of ε_θ. Defaults are sized for 2-D toy data (fits in about a minute on 2 cores)."""

    dim: int = 2                 # D: data dimension (input and output width)
    hidden: int = 128            # H: enough capacity for the sharp toy densities (checkerboard, rolls)
    depth: int = 3               # number of hidden layers
    activation: str = "silu"     # smooth activations fit the smooth score of noised data better than relu
    emb_dim: int = 32            # E: width of the sinusoidal time embedding (16 frequencies)
    max_period: float = 10000.0  # longest period of the embedding, as in Transformer/Ho et al.
    out_dim: int | None = None   # output width: None means D (ε_θ); 2D for learned variances
    fourier: int = 0             # K: octaves of input Fourier features sin/cos(2^k x_d), k < K; 0: x alone
    n_classes: int = 0           # C: classes of a conditional ε_θ(x_t, t, y); 0: unconditional (no table "C")

    @property
    def n_out(self) -> int:
        return self.dim if self.out_dim is None else self.out_dim

    @property
    def n_in(self) -> int:
        """F: the width of the input features γ(x) = [x, sin(2^k x), cos(2^k x)]."""
        return self.dim * (1 + 2 * self.fourier)

    def __post_init__(self):
        for name in ("dim", "hidden", "depth", "emb_dim"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MLPConfig.{name} must be a positive integer, got {v!r}")
        if self.emb_dim % 2:
            raise ValueError(f"MLPConfig.emb_dim must be even (sin and cos pairs), got {self.emb_dim}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        if self.out_dim is not None and (not isinstance(self.out_dim, (int, np.integer)) or self.out_dim < 1):
            raise ValueError(f"MLPConfig.out_dim must be a positive integer or None, got {self.out_dim!r}")
        # ≤ 8: the compiled backends' float32 γ(x) stays within their documented tolerance (the Numba
        # kernels' double-angle recurrence doubles its rounding error per octave: 1e-5 at K = 8)
        if not isinstance(self.fourier, (int, np.integer)) or isinstance(self.fourier, bool) or not 0 <= self.fourier <= 8:
            raise ValueError(f"MLPConfig.fourier must be an integer in 0..8 (octaves 2^0..2^(K-1)), got {self.fourier!r}")
        if not isinstance(self.n_classes, (int, np.integer)) or isinstance(self.n_classes, bool) or self.n_classes < 0:
            raise ValueError(f"MLPConfig.n_classes must be an integer >= 0 (0: unconditional), got {self.n_classes!r}")
        if not (self.max_period > 1):
            raise ValueError(f"MLPConfig.max_period must be > 1, got {self.max_period!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# --- activations: (f, f') pairs; f' takes the pre-activation a and the output h = f(a) -------------

def _relu(a):
    return np.maximum(a, 0.0)


def _drelu(a, h):
    return (a > 0).astype(a.dtype)


def _silu(a):
    return a * expit(a)


def _dsilu(a, h):
    s = expit(a)                                                    # σ(a)
    return s * (1.0 + a * (1.0 - s))                                # d/da a·σ(a)


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu(a):
    # tanh approximation (Hendrycks & Gimpel 2016), the form most MLP codebases use.
    return 0.5 * a * (1.0 + np.tanh(_GELU_C * (a + 0.044715 * a ** 3)))


def _dgelu(a, h):
    u = _GELU_C * (a + 0.044715 * a ** 3)
    th = np.tanh(u)
    du = _GELU_C * (1.0 + 3 * 0.044715 * a ** 2)
    return 0.5 * (1.0 + th) + 0.5 * a * (1.0 - th ** 2) * du


def _tanh(a):
    return np.tanh(a)


def _dtanh(a, h):
    return 1.0 - h ** 2


ACTIVATIONS = {"relu": (_relu, _drelu), "silu": (_silu, _dsilu), "gelu": (_gelu, _dgelu), "tanh": (_tanh, _dtanh)}


def timestep_embedding(t, emb_dim: int, max_period: float = 10000.0) -> np.ndarray:
    """Sinusoidal embedding of the step t: [sin(t·ω_k), cos(t·ω_k)], ω_k = max_period^(−k/(E/2)), k = 0..E/2−1.

    Returns (B, E) for t of shape (B,) (a scalar t gives (1, E)).
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))                     # (B,)
    half = emb_dim // 2
    omega = np.exp(-math.log(max_period) * np.arange(half) / half)        # (E/2,)
    arg = t[:, None] * omega[None, :]                                      # (B, E/2)
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=1)              # (B, E)


def input_features(x: np.ndarray, fourier: int) -> np.ndarray:
    """γ(x) (B, D(1+2K)): [x, sin(ω_k x_d), cos(ω_k x_d)] with ω_k = 2^k, k = 0..K−1 (K = ``fourier``).

    Column order: x_d at d; sin(ω_k x_d) at D + kD + d; cos(ω_k x_d) at D + KD + kD + d. K = 0 gives x.
    """
    if fourier == 0:
        return x
    B, D = x.shape
    arg = x[:, None, :] * (2.0 ** np.arange(fourier))[None, :, None]       # (B, K, D): ω_k x_d
    return np.concatenate([x, np.sin(arg).reshape(B, -1), np.cos(arg).reshape(B, -1)], axis=1)


def layer_widths(cfg: MLPConfig) -> list:
    """The widths w_0..w_L of the MLP's layers: [F + E, H (depth times), n_out], F = D(1 + 2K)."""
    return [cfg.n_in + cfg.emb_dim] + [cfg.hidden] * cfg.depth + [cfg.n_out]


def init_params(cfg: MLPConfig, rng: np.random.Generator) -> dict:
    """Weights drawn U(−1/√fan_in, 1/√fan_in) (the common default for linear layers), biases 0; a conditional
    network's class table C (C + 1, E) drawn N(0, 1), as an embedding layer's default, after the layers."""
    widths = layer_widths(cfg)
    params = {}
    for l, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / math.sqrt(fan_in)
        params[f"W{l}"] = rng.uniform(-bound, bound, size=(fan_in, fan_out))
        params[f"b{l}"] = np.zeros(fan_out)
    if cfg.n_classes:
        params["C"] = rng.standard_normal((cfg.n_classes + 1, cfg.emb_dim))
    return params


def param_count(params: dict) -> int:
    return int(sum(v.size for v in params.values()))


def flops_per_point(cfg: MLPConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass for one point."""
    widths = layer_widths(cfg)
    return int(sum(2 * a * b for a, b in zip(widths[:-1], widths[1:])))


def _n_layers(params: dict) -> int:
    return sum(1 for k in params if k.startswith("W"))


def class_index(y, B: int, n_classes: int) -> np.ndarray:
    """The rows of the class table for a batch of B points: y an integer or (B,) integers in 0..C − 1, or C
    (∅); None is ∅ for every point. Returns (B,) int64."""
    if y is None:
        return np.full(B, n_classes, dtype=np.int64)
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.ndim > 1 or (y.ndim == 1 and y.shape[0] != B):
        raise ValueError(f"y must be an integer or {B} integers (class indices), got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > n_classes):
        raise ValueError(f"class indices must lie in 0..{n_classes} ({n_classes} = no class), got "
                         f"{int(y.min())}..{int(y.max())}")
    return np.broadcast_to(y, (B,)).astype(np.int64)


# --- layers: each forward beside its backward (llm.c style) ----------------------------------------------

def linear_forward(h: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a = h W + b for a batch h (B, fan_in), W (fan_in, fan_out), b (fan_out,)."""
    return h @ W + b


def linear_backward(da: np.ndarray, h: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given ∂loss/∂a (B, fan_out) of a = h W + b: (∂loss/∂h = da Wᵀ, ∂loss/∂W = hᵀ da, ∂loss/∂b = Σ_rows da)."""
    return da @ W.T, h.T @ da, da.sum(axis=0)


def act_forward(a: np.ndarray, activation: str) -> np.ndarray:
    """h = f(a), element-wise (``ACTIVATIONS``)."""
    return ACTIVATIONS[activation][0](a)


def act_backward(dh: np.ndarray, a: np.ndarray, h: np.ndarray, activation: str) -> np.ndarray:
    """Given ∂loss/∂h of h = f(a): ∂loss/∂a = ∂loss/∂h · f'(a) (f' may use h = f(a))."""
    return dh * ACTIVATIONS[activation][1](a, h)


def input_features_backward(dgamma: np.ndarray, x: np.ndarray, fourier: int) -> np.ndarray:
    """Given ∂loss/∂γ(x) (B, F): ∂loss/∂x (B, D), by ∂ sin(ω x)/∂x = ω cos(ω x), ∂ cos(ω x)/∂x = −ω sin(ω x)."""
    B, D = x.shape
    dx = dgamma[:, :D].copy()
    if fourier:
        omega = (2.0 ** np.arange(fourier))[None, :, None]                 # (1, K, 1)
        arg = x[:, None, :] * omega                                        # (B, K, D)
        d_sin = dgamma[:, D:D + fourier * D].reshape(B, fourier, D)
        d_cos = dgamma[:, D + fourier * D:D * (1 + 2 * fourier)].reshape(B, fourier, D)
        dx += (omega * (d_sin * np.cos(arg) - d_cos * np.sin(arg))).sum(axis=1)
    return dx


# --- the network: the layers in order, then the same layers backwards ----------------------------------------

def forward(params: dict, x: np.ndarray, t, cfg: MLPConfig, y=None) -> tuple[np.ndarray, dict]:
    """The network on a batch: x (B, D), t int or (B,); a conditional network's class y (``class_index``;
    ignored by an unconditional one). Returns out (B, n_out) and the cache for backward."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != cfg.dim:
        raise ValueError(f"x must have shape (B, {cfg.dim}), got {x.shape}")
    B = x.shape[0]
    t = np.broadcast_to(np.asarray(t), (B,))
    L = _n_layers(params)                                                  # depth + 1 linear layers

    emb = timestep_embedding(t, cfg.emb_dim, cfg.max_period)               # (B, E)
    if cfg.n_classes:
        y = class_index(y, B, cfg.n_classes)
        emb = emb + params["C"][y]                                         # emb(t) + E_y
    h = np.concatenate([input_features(x, cfg.fourier), emb], axis=1)     # h_0 = [γ(x), emb(t)] (B, F+E)
    hs, as_ = [h], []
    for l in range(L - 1):
        a = linear_forward(h, params[f"W{l}"], params[f"b{l}"])            # (B, H)
        h = act_forward(a, cfg.activation)                                 # (B, H)
        as_.append(a)
        hs.append(h)
    out = linear_forward(h, params[f"W{L - 1}"], params[f"b{L - 1}"])      # (B, out_dim)
    return out, {"hs": hs, "as": as_, "x": x, "y": y}


def backward(params: dict, cache: dict, dout: np.ndarray, cfg: MLPConfig, wrt_x: bool = False):
    """Gradients of a scalar loss w.r.t. every parameter (same keys as params), given dout = ∂loss/∂out
    (B, out_dim): forward's layers in reverse order. With ``wrt_x``, returns (grads, ∂loss/∂x (B, D)), the
    input gradient through γ(x) (the embedding columns of h_0 are not inputs)."""
    hs, as_ = cache["hs"], cache["as"]
    L = _n_layers(params)
    grads = {}
    l = L - 1
    dh, grads[f"W{l}"], grads[f"b{l}"] = linear_backward(dout, hs[l], params[f"W{l}"])   # read-out
    for l in range(L - 2, -1, -1):
        da = act_backward(dh, as_[l], hs[l + 1], cfg.activation)           # (B, H)
        dh, grads[f"W{l}"], grads[f"b{l}"] = linear_backward(da, hs[l], params[f"W{l}"])  # dh: (B, fan_in)
    if cfg.n_classes:                          # ∂loss/∂E_c = Σ over the points of class c of ∂loss/∂emb
        grads["C"] = np.zeros_like(params["C"])
        np.add.at(grads["C"], cache["y"], dh[:, cfg.n_in:])
    if not wrt_x:
        return grads
    return grads, input_features_backward(dh[:, :cfg.n_in], cache["x"], cfg.fourier)


def backward_with_dx(params: dict, cache: dict, dout: np.ndarray, cfg: MLPConfig) -> tuple[dict, np.ndarray]:
    """``backward(..., wrt_x=True)``: the gradients and ∂loss/∂x (B, D)."""
    return backward(params, cache, dout, cfg, wrt_x=True)


class Denoiser:
    """The MLP as the one network convention of every sampler, bound and ODE function: a callable
    ``denoise_fn(x_t, t) -> out`` (as in Ho et al.'s code), t an int or (B,) array; ``network(params, cfg)``
    makes one. It keeps ``params`` and ``cfg``, so the compiled backends can run the same weights, and it
    gives the ODE's exact likelihood its input Jacobian trace (``divergence``). A conditional network's
    class ``y`` is fixed here (None: ∅), so the samplers need not know about classes."""

    def __init__(self, params: dict, cfg: MLPConfig, y=None):
        self.params, self.cfg, self.y = params, cfg, y

    def __call__(self, xt, t) -> np.ndarray:
        return forward(self.params, xt, t, self.cfg, self.y)[0]

    def divergence(self, xt, t) -> np.ndarray:
        """Σ_d ∂out_d/∂x_d over the first D outputs (B,): D backward passes, one per output coordinate."""
        full, cache = forward(self.params, xt, t, self.cfg, self.y)
        div = np.zeros(full.shape[0])
        for d in range(self.cfg.dim):
            dout = np.zeros_like(full)
            dout[:, d] = 1.0
            _, dx = backward_with_dx(self.params, cache, dout, self.cfg)          # row d of ∂out/∂x
            div += dx[:, d]
        return div


def network(params: dict, cfg: MLPConfig, y=None) -> Denoiser:
    """The MLP with weights ``params`` as ``denoise_fn(x_t, t) -> out`` (a :class:`Denoiser`); a conditional
    network's class ``y`` (None: ∅)."""
    return Denoiser(params, cfg, y)
