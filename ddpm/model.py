"""A fitted model as one object: architecture, schedule, training state, data normalisation, rng state.

``Model.save(path)`` / ``Model.load(path)`` map it to a checkpoint (``ddpm_ref.checkpoint``): arrays
for weights, EMA weights, Adam moments, β, the data's mean and scale and the loss history; JSON for
the configs, the step, the data's fingerprint and the training rng's exact state (so a resumed run
continues as an uninterrupted one would).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

import ddpm_ref
from ddpm_ref import CheckpointError, GeneralTrainConfig, MLPConfig, Schedule

__all__ = ["Model", "load_model", "data_fingerprint", "Normalizer", "param_shapes"]

_GROUPS = {"params": "params", "ema": "ema", "adam_m": ("opt", "m"), "adam_s": ("opt", "s")}
# Adam's second moment was stored as "adam_v" before it was renamed s (v is the v-target); such files still load.
_OLD_GROUPS = {"adam_v": "adam_s"}


def data_fingerprint(x: np.ndarray) -> str:
    """sha256 of the float64 bytes and shape of x: identifies the training data for resuming."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    h = hashlib.sha256(str(x.shape).encode())
    h.update(x.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Normalizer:
    """Per-coordinate standardisation u = (x − mean)/scale of the modelled columns; training and sampling
    happen in u. Columns that are constant over the whole data set (``keep`` False) are not modelled: the
    network never sees them and ``to_data`` writes their value (``const``) back into every sample."""

    mean: np.ndarray                 # (D_model,)
    scale: np.ndarray                # (D_model,)
    keep: np.ndarray | None = None   # (D,) bool: modelled columns (None: all)
    const: np.ndarray | None = None  # (D,) the constant columns' values (others unused)

    @classmethod
    def fit(cls, x: np.ndarray, isotropic: bool = False, whole: np.ndarray | None = None) -> "Normalizer":
        """Per-coordinate z-scoring of ``x`` (the training data), or (``isotropic``) centring and one scale
        for all coordinates, chosen so that the mean variance per coordinate is 1 (Sohl-Dickstein's "scaled
        to unit variance"). Which columns are constant is decided on ``whole`` (the whole data set, default
        x), never on a split: a column constant within x but not within ``whole`` is modelled, with the
        whole data's spread as its scale."""
        whole = x if whole is None else whole
        w_mean, w_std = whole.mean(axis=0), whole.std(axis=0)
        keep = ~(w_std <= CONSTANT_RTOL * np.abs(whole).max(axis=0))      # relative to the column's own size
        if not keep.any():
            raise ValueError(f"every one of the {x.shape[1]} data columns is constant: there is nothing to model")
        mean = x.mean(axis=0)[keep]
        scale = x.std(axis=0)[keep]
        flat = scale <= CONSTANT_RTOL * np.abs(x).max(axis=0)[keep]
        scale = np.where(flat, w_std[keep], scale)
        if isotropic:
            scale = np.full_like(scale, np.sqrt(np.mean(scale ** 2)))
        if keep.all():
            return cls(mean, scale)
        return cls(mean, scale, keep, np.where(keep, 0.0, w_mean))

    @property
    def data_dim(self) -> int:
        return len(self.mean) if self.keep is None else len(self.keep)

    @property
    def constant_columns(self) -> dict:
        """{column index: value} of the columns modelled as constants."""
        if self.keep is None:
            return {}
        return {int(i): float(self.const[i]) for i in np.flatnonzero(~self.keep)}

    def to_model(self, x: np.ndarray) -> np.ndarray:
        if self.keep is not None:
            x = x[..., self.keep]
        return (x - self.mean) / self.scale

    def to_data(self, u: np.ndarray) -> np.ndarray:
        x = u * self.scale + self.mean
        if self.keep is None:
            return x
        out = np.empty(u.shape[:-1] + (len(self.keep),))
        out[..., self.keep] = x
        out[..., ~self.keep] = self.const[~self.keep]
        return out


CONSTANT_RTOL = 1e-9      # a column whose sd is below this × its largest |value| is a constant


@dataclass
class Model:
    """Everything needed to sample from, evaluate or resume a fit."""

    cfg: MLPConfig
    tcfg: GeneralTrainConfig
    sched: Schedule
    state: dict                      # {"params", "opt": {"m", "s", "step"}, "ema", "lt_hist", "lt_count"}
    norm: Normalizer
    rng_state: dict                  # bit generator state of the training rng after `step` steps
    losses: np.ndarray               # L_simple per step so far
    info: dict = field(default_factory=dict)  # data source, fingerprint, seed, backend, ...

    @property
    def step(self) -> int:
        return int(self.state["opt"]["step"])

    def save(self, path) -> None:
        """Write this model to ``path`` (.npz) atomically."""
        arrays = {}
        for prefix, where in _GROUPS.items():
            d = self.state[where] if isinstance(where, str) else self.state[where[0]][where[1]]
            arrays.update({f"{prefix}.{k}": v for k, v in d.items()})
        arrays["lt_hist"] = self.state["lt_hist"]
        arrays["lt_count"] = self.state["lt_count"]
        arrays["beta"] = self.sched.beta[1:]
        arrays["data_mean"] = self.norm.mean
        arrays["data_scale"] = self.norm.scale
        if self.norm.keep is not None:
            arrays["data_keep"] = self.norm.keep.astype(np.int8)
            arrays["data_const"] = self.norm.const
        arrays["losses"] = np.asarray(self.losses, dtype=np.float64)
        config = {"model": self.cfg.to_dict(), "train": self.tcfg.to_dict(), "schedule": self.sched.to_config(),
                  "step": self.step, "rng_state": self.rng_state, "info": self.info}
        ddpm_ref.save_checkpoint(path, arrays, config)

    @classmethod
    def load(cls, path) -> "Model":
        """Read a model written by :meth:`save`; raises CheckpointError for a foreign or inconsistent file."""
        arrays, config = ddpm_ref.load_checkpoint(path)
        for old, new in _OLD_GROUPS.items():
            if not any(k.startswith(new + ".") for k in arrays):
                arrays = {(new + k[len(old):] if k.startswith(old + ".") else k): a for k, a in arrays.items()}
        try:
            for key in ("model", "train", "schedule", "rng_state"):
                if not isinstance(config[key], dict):
                    raise TypeError(f"config[{key!r}] is a {type(config[key]).__name__}, not an object")
            cfg = MLPConfig(**config["model"])
            tcfg = GeneralTrainConfig(**config["train"])
            sc = config["schedule"]
            if not isinstance(sc.get("params", {}), dict) or not isinstance(sc.get("name"), str):
                raise TypeError("config['schedule'] needs a name (string) and params (object)")
            step = config["step"]
            if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                raise TypeError(f"config['step'] must be a non-negative integer, got {step!r}")
            info = config.get("info", {})
            if not isinstance(info, dict):
                raise TypeError(f"config['info'] is a {type(info).__name__}, not an object")
            _check_shapes(path, cfg, arrays)                 # before anything is built from the arrays
            sched = ddpm_ref.schedule_from_betas(arrays["beta"], name=sc["name"], params=sc["params"], warn=False)
            state = {"params": {}, "ema": {}, "opt": {"m": {}, "s": {}, "step": step},
                     "lt_hist": np.array(arrays["lt_hist"], dtype=np.float64),
                     "lt_count": np.array(arrays["lt_count"], dtype=np.int64)}
            for key, arr in arrays.items():
                prefix, _, name = key.partition(".")
                if prefix in _GROUPS:
                    where = _GROUPS[prefix]
                    d = state[where] if isinstance(where, str) else state[where[0]][where[1]]
                    d[name] = np.array(arr, dtype=np.float64)
            keep = const = None
            if "data_keep" in arrays:
                keep = np.asarray(arrays["data_keep"]).astype(bool)
                const = np.asarray(arrays["data_const"], dtype=np.float64)
                if keep.ndim != 1 or const.shape != keep.shape or keep.sum() != cfg.dim or keep.all():
                    raise ValueError("data_keep / data_const do not match the model's dimension")
            norm = Normalizer(arrays["data_mean"].astype(np.float64), arrays["data_scale"].astype(np.float64),
                              keep, const)
            np.random.default_rng().bit_generator.state = config["rng_state"]       # a valid generator state
            losses = np.asarray(arrays["losses"], dtype=np.float64)
            model = cls(cfg, tcfg, sched, state, norm, config["rng_state"], losses, info)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
            raise CheckpointError(f"{path}: checkpoint is missing or has inconsistent fields ({e!r})") from None
        model._check(path)
        return model

    def _check(self, path) -> None:
        for name, arr in (("lt_hist", self.state["lt_hist"]), ("lt_count", self.state["lt_count"])):
            if arr.ndim < 1 or arr.shape[0] != self.sched.T + 1:
                raise CheckpointError(f"{path}: {name} does not match T = {self.sched.T}")
        if self.state["lt_hist"].shape != (self.sched.T + 1, ddpm_ref.HISTORY):
            raise CheckpointError(f"{path}: lt_hist must have shape {(self.sched.T + 1, ddpm_ref.HISTORY)}")
        if self.norm.mean.shape != (self.cfg.dim,) or self.norm.scale.shape != (self.cfg.dim,):
            raise CheckpointError(f"{path}: data normalisation does not match dimension {self.cfg.dim}")
        if not (np.all(np.isfinite(self.norm.mean)) and np.all(np.isfinite(self.norm.scale)) and np.all(self.norm.scale > 0)
                and (self.norm.const is None or np.all(np.isfinite(self.norm.const)))):
            raise CheckpointError(f"{path}: data normalisation holds non-finite or non-positive values")
        for group in (self.state["params"], self.state["ema"]):
            if not all(np.all(np.isfinite(v)) for v in group.values()):
                raise CheckpointError(f"{path}: weights hold NaN or infinite values")
        if self.losses.ndim != 1:
            raise CheckpointError(f"{path}: the loss history must be 1-D, got shape {self.losses.shape}")


def load_model(path) -> Model:
    """Load a fitted model from a checkpoint file (see :class:`ddpm.model.Model`)."""
    return Model.load(path)


def param_shapes(cfg: MLPConfig) -> dict:
    """The shape of every weight of the MLP ``cfg`` (as ``ddpm_ref.init_params`` makes them), computed
    without allocating anything — so a checkpoint's arrays are checked before a huge config is trusted."""
    widths = ddpm_ref.mlp.layer_widths(cfg)
    shapes = {}
    for l, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        shapes[f"W{l}"], shapes[f"b{l}"] = (fan_in, fan_out), (fan_out,)
    if cfg.n_classes:                          # a conditional network's class table, row C = ∅
        shapes["C"] = (cfg.n_classes + 1, cfg.emb_dim)
    return shapes


def _check_shapes(path, cfg: MLPConfig, arrays: dict) -> None:
    """Every weight group holds exactly the arrays the architecture needs, with their shapes."""
    shapes = param_shapes(cfg)
    for prefix in _GROUPS:
        got = {k.partition(".")[2]: a.shape for k, a in arrays.items() if k.partition(".")[0] == prefix}
        if got != shapes:
            raise CheckpointError(f"{path}: weight arrays '{prefix}.*' do not match the stored architecture {cfg}")
    expected = {"beta", "lt_hist", "lt_count", "data_mean", "data_scale", "losses"} | {
        f"{p}.{k}" for p in _GROUPS for k in shapes}
    optional = {"data_keep", "data_const"}                                 # constant columns, when there are
    extra, missing = set(arrays) - expected - optional, expected - set(arrays)
    if extra or missing:
        raise CheckpointError(f"{path}: unexpected arrays {sorted(extra)[:5]} / missing arrays {sorted(missing)[:5]}")
    if arrays["beta"].ndim != 1:
        raise CheckpointError(f"{path}: beta must be 1-D, got shape {arrays['beta'].shape}")
