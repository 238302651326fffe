"""Cached sampling floors of the built-in data sets (``fit``'s fast evaluation).

A statistic's floor is its expectation between two *independent* draws of the data at the sizes compared
(n samples against m held-out points): E[S(X_n, Y_m)] for X, Y from the generator. It depends on the data
set and on (n, m) only, not on the model, so for a built-in generator (``toy_data.NAMES``) it can be
computed once, over many more draws than a fit can afford, and read from ``floors.json``; a fit then solves
one exact W2 problem (the samples') instead of three, and sums no reference pairs.

``floors.json`` is written by ``python3 benchmarks/floor_table.py``: for each (data set, n, m) and each of
energy_distance, w2 and mmd2 (|MMD²|, as ``sample_statistics`` reports MMD's floor) the mean over R
independent (X, Y) draws, its standard error sd/√R and R. ``fresh_floors`` is the computation itself,
used by the script and by the test that checks the table.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

import toy_data

from .metrics import floor_terms, w2

__all__ = ["FLOOR_TABLE", "FLOOR_KEYS", "table_key", "cached_floors", "fresh_floors"]

FLOOR_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floors.json")
FLOOR_KEYS = ("energy_distance", "w2", "mmd2")       # the costly floors; sliced W2 and marginal W1 take ms


def table_key(n: int, m: int) -> str:
    return f"{int(n)}x{int(m)}"


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    try:
        with open(FLOOR_TABLE) as f:
            return json.load(f)["floors"]
    except FileNotFoundError:
        return {}


def cached_floors(dataset, n: int, m: int) -> dict | None:
    """{key: {"mean", "se", "draws"}} for a built-in ``dataset`` compared at n samples vs m held-out points,
    or None when the table has no such entry (another data set or size: the caller draws its floors)."""
    if not isinstance(dataset, str):
        return None
    entry = _table().get(dataset, {}).get(table_key(n, m))
    if entry is None or any(k not in entry for k in FLOOR_KEYS):
        return None
    return {k: dict(entry[k]) for k in FLOOR_KEYS}


def fresh_floors(dataset: str, n: int, m: int, draws: int, draws_w2: int, seed: int) -> dict:
    """The floors of ``cached_floors`` computed afresh: energy and |MMD²| over ``draws`` independent pairs
    (X_n, Y_m) of ``dataset``, exact W2 over the first ``draws_w2`` of them (k = min(n, m) points each, as
    ``sample_statistics``), each as {"mean", "se", "draws"}; MMD's bandwidths are relative to Y's scale."""
    if draws < 2 or draws_w2 < 2 or draws_w2 > draws:
        raise ValueError(f"need 2 ≤ draws_w2 ≤ draws, got draws = {draws}, draws_w2 = {draws_w2}")
    vals = {k: [] for k in FLOOR_KEYS}
    k = min(n, m)
    for i, ss in enumerate(np.random.SeedSequence([seed, n, m]).spawn(draws)):
        gx, gy = (np.random.default_rng(s) for s in ss.spawn(2))
        x, y = toy_data.draw(dataset, n, gx), toy_data.draw(dataset, m, gy)
        energy, mmd2 = floor_terms(x, y)
        vals["energy_distance"].append(energy)
        vals["mmd2"].append(mmd2)
        if i < draws_w2:
            vals["w2"].append(w2(x[:k], y[:k]))
    return {key: {"mean": float(np.mean(v)), "se": float(np.std(v, ddof=1) / np.sqrt(len(v))), "draws": len(v)}
            for key, v in vals.items()}
