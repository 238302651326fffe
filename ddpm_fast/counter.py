"""The counter-based random numbers of the compiled backends, in NumPy (a mirror for tests and hosts).

Every number is a pure function of (seed, step, index): SplitMix64 of a key, two uniforms, Box–Muller.
The same functions exist in the Numba kernels (``cpu.counter_normal_pair``, ``cpu.train_draw``) and
the CUDA kernels (``ddpm_normal_pair``, ``ddpm_train_draw`` in ``cuda/ddpm_common.cuh``), so a seed
gives the same noise on every backend and on any number of threads.
"""

from __future__ import annotations

import numpy as np


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _normal_pairs(seed, step, index):
    """Two standard normals per index (cpu.counter_normal_pair, ddpm_normal_pair), vectorised over index."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed) ^ _splitmix64(np.uint64(step) * np.uint64(0x100000001B3)
                                                        + np.asarray(index, dtype=np.uint64)))
    k2 = _splitmix64(key)
    u1 = ((key >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)
    u2 = (k2 >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    r = np.sqrt(-2.0 * np.log(u1))
    return r * np.cos(2.0 * np.pi * u2), r * np.sin(2.0 * np.pi * u2)


def counter_draws(seed: int, step: int, B: int, n_data: int, T: int, D: int):
    """The training draws the kernels make for a step (cpu.train_draw, ddpm_train_draw): data rows
    (B,) uniform over n_data, t (B,) uniform over 1..T and ε (B, D) float32, pure functions of
    (seed, step, row)."""
    rows = np.arange(B, dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = np.uint64(step) * np.uint64(0x100000001B3)
        idx = _splitmix64(np.uint64(seed) ^ _splitmix64(base + np.uint64(2) * rows)) % np.uint64(n_data)
        t = _splitmix64(np.uint64(seed) ^ _splitmix64(base + np.uint64(2) * rows + np.uint64(1))) % np.uint64(T)
        eseed = _splitmix64(np.array([seed], dtype=np.uint64) + np.uint64(0xD1B54A32D192ED03))[0]
    half = (D + 1) // 2
    eps = np.empty((B, D), dtype=np.float32)
    for d in range(0, D, 2):
        z0, z1 = _normal_pairs(eseed, step, rows * np.uint64(half) + np.uint64(d // 2))
        eps[:, d] = z0
        if d + 1 < D:
            eps[:, d + 1] = z1
    return idx.astype(np.int64), t.astype(np.int64) + 1, eps
