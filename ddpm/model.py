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
from ddpm_ref import CheckpointError, MLPConfig, Schedule, TrainConfig

__all__ = ["Model", "data_fingerprint", "Normalizer"]

_GROUPS = {"params": "params", "ema": "ema", "adam_m": ("opt", "m"), "adam_v": ("opt", "v")}


def data_fingerprint(x: np.ndarray) -> str:
    """sha256 of the float64 bytes and shape of x: identifies the training data for resuming."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    h = hashlib.sha256(str(x.shape).encode())
    h.update(x.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Normalizer:
    """Per-coordinate standardisation u = (x − mean)/scale; training and sampling happen in u."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, isotropic: bool = False) -> "Normalizer":
        """Per-coordinate z-scoring, or (``isotropic``) centring and one scale for all coordinates,
        chosen so that the mean variance per coordinate is 1 (Sohl-Dickstein's "scaled to unit variance")."""
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        if isotropic:
            scale = np.full_like(scale, np.sqrt(np.mean(scale ** 2)))
        const = np.flatnonzero(scale <= 1e-12 * np.maximum(1.0, np.abs(mean)))
        if const.size:
            raise ValueError(f"data column(s) {const.tolist()} are constant: nothing to model there; drop them")
        return cls(mean, scale)

    def to_model(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale

    def to_data(self, u: np.ndarray) -> np.ndarray:
        return u * self.scale + self.mean


@dataclass
class Model:
    """Everything needed to sample from, evaluate or resume a fit."""

    cfg: MLPConfig
    tcfg: TrainConfig
    sched: Schedule
    state: dict                      # {"params", "opt": {"m", "v", "step"}, "ema", "lt_hist", "lt_count"}
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
        arrays["losses"] = np.asarray(self.losses, dtype=np.float64)
        config = {"model": self.cfg.to_dict(), "train": self.tcfg.to_dict(), "schedule": self.sched.to_config(),
                  "step": self.step, "rng_state": self.rng_state, "info": self.info}
        ddpm_ref.save_checkpoint(path, arrays, config)

    @classmethod
    def load(cls, path) -> "Model":
        """Read a model written by :meth:`save`; raises CheckpointError for a foreign or inconsistent file."""
        arrays, config = ddpm_ref.load_checkpoint(path)
        try:
            cfg = MLPConfig(**config["model"])
            tcfg = TrainConfig(**config["train"])
            sc = config["schedule"]
            sched = ddpm_ref.schedule_from_betas(arrays["beta"], name=sc["name"], params=sc["params"], warn=False)
            state = {"params": {}, "ema": {}, "opt": {"m": {}, "v": {}, "step": int(config["step"])},
                     "lt_hist": np.array(arrays["lt_hist"], dtype=np.float64),
                     "lt_count": np.array(arrays["lt_count"], dtype=np.int64)}
            for key, arr in arrays.items():
                prefix, _, name = key.partition(".")
                if prefix in _GROUPS:
                    where = _GROUPS[prefix]
                    d = state[where] if isinstance(where, str) else state[where[0]][where[1]]
                    d[name] = np.array(arr, dtype=np.float64)
            norm = Normalizer(arrays["data_mean"].astype(np.float64), arrays["data_scale"].astype(np.float64))
            model = cls(cfg, tcfg, sched, state, norm, config["rng_state"], arrays["losses"], config.get("info", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: checkpoint is missing or has inconsistent fields ({e!r})") from None
        model._check(path)
        return model

    def _check(self, path) -> None:
        ref = ddpm_ref.init_params(self.cfg, np.random.default_rng(0))
        for group in (self.state["params"], self.state["ema"], self.state["opt"]["m"], self.state["opt"]["v"]):
            if set(group) != set(ref) or any(group[k].shape != ref[k].shape for k in ref):
                raise CheckpointError(f"{path}: weight arrays do not match the stored architecture {self.cfg}")
        if self.state["lt_hist"].shape[0] != self.sched.T + 1:
            raise CheckpointError(f"{path}: loss history does not match T = {self.sched.T}")
        if self.norm.mean.shape != (self.cfg.dim,) or self.norm.scale.shape != (self.cfg.dim,):
            raise CheckpointError(f"{path}: data normalisation does not match dimension {self.cfg.dim}")
