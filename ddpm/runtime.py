"""How a run executes: which compute backend (the numpy reference, numba on the CPU, cupy on a GPU) runs
a configuration, chosen by default or checked when named, and the optional tqdm progress bar of a long
loop (training steps, streamed samples)."""

from __future__ import annotations

import ddpm_fast
from ddpm_ref import TrainConfig

__all__ = ["BACKENDS", "choose_backend", "progress_bar"]

BACKENDS = ddpm_fast.BACKENDS


def choose_backend(backend: str | None, tcfg: TrainConfig | None = None) -> str:
    """The backend to run: the one asked for (checked), or by default numba when it is installed and
    implements the configuration, else the numpy reference."""
    if backend is None:
        backend = ddpm_fast.default_backend()
        if backend == "numba" and tcfg is not None and ddpm_fast.unsupported(tcfg):
            backend = "numpy"
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "cupy":
        from ddpm_fast.gpu import gpu_status
        if gpu_status():
            raise ValueError(f"backend 'cupy' cannot run here: {gpu_status()}")
    elif backend not in ddpm_fast.available_backends():
        raise ValueError(f"backend {backend!r} is not installed: pip install 'ddpm[cpu]' (or pip install numba)")
    reason = ddpm_fast.unsupported(tcfg) if backend in ("numba", "cupy") and tcfg is not None else None
    if reason:
        raise ValueError(reason)
    return backend


def progress_bar(total: int, initial: int, enabled: bool, desc: str = "training", unit: str = "step"):
    """A tqdm bar over ``total`` units starting at ``initial``, or None when disabled or tqdm is not installed."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
