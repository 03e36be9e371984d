"""Drift statistics: quantile bins, PSI, the KS statistic and the PSI that sampling noise alone reaches.

Plain numpy, no Airflow, no pandas. Definitions (the tests recompute them by hand):

- Bins of a numeric column are its reference quantiles: bin 0 is (-inf, e0], bin j is (e[j-1], e[j]],
  the last is (e[-1], inf). Edges are actual reference values, so no reference bin is empty.
- PSI = sum((a - e) * ln(a / e)) over bins, where e and a are the reference and current shares with
  half a row added to every bin (additive smoothing), so an empty bin costs a finite, modest amount
  instead of ln(1e-4)-sized jumps.
- KS = max |F_ref(x) - F_cur(x)| over both samples' values (two-sample Kolmogorov-Smirnov statistic).
- Noise floor: the PSI that a partition of n rows drawn from the reference distribution itself
  exceeds with probability `alpha` (simulated). On small partitions PSI is large by chance alone
  (about (bins - 1) / n on average: 0.2 for 10 bins and 40 rows), so a threshold crossing only
  alarms when it also exceeds this floor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PSEUDO_ROWS = 0.5
SIMULATIONS = 50_000
OK, WARN, FAIL, EMPTY = "ok", "warn", "fail", "empty"
SEVERITY = {EMPTY: 0, OK: 0, WARN: 1, FAIL: 2}


def quantile_edges(values: Sequence[float], bins: int) -> list[float]:
    """Inner bin edges at the reference's 1/bins, 2/bins, ... quantiles (actual values, deduplicated)."""
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    if values.size == 0:
        return []
    probs = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(values, probs, method="inverted_cdf"))
    if edges.size and np.all(values <= edges[-1]):  # the top bin would be empty (few distinct values)
        edges = edges[:-1]
    return edges.tolist()


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Rows per bin (nulls are not counted: null rates are reported separately)."""
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1).tolist()


def shares(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Smoothed shares: (count + 0.5) / (total + 0.5 * bins), along the last axis."""
    counts = np.asarray(counts, dtype="float64")
    return (counts + PSEUDO_ROWS) / (counts.sum(axis=-1, keepdims=True) + PSEUDO_ROWS * counts.shape[-1])


def psi(expected_counts: Sequence[float], actual_counts: Sequence[float]) -> float:
    """Population stability index of the actual counts against the expected (reference) counts."""
    e, a = shares(expected_counts), shares(actual_counts)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(reference: Sequence[float], current: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (nulls dropped); NaN when either side is empty."""
    ref = np.sort(np.asarray(reference, dtype="float64"))
    cur = np.sort(np.asarray(current, dtype="float64"))
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    points = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, points, side="right") / ref.size
    cdf_cur = np.searchsorted(cur, points, side="right") / cur.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def noise_floor(expected_counts: Sequence[int], rows: int, alpha: float, seed: int = 0) -> float:
    """The PSI that `rows` rows drawn from the reference distribution exceed with probability alpha.

    Simulated with the same smoothing as `psi` (exact for these bins, where a chi-square approximation
    fails on small counts), then scaled by (1 + rows / reference rows) because the reference is a
    sample too: PSI's sampling variance grows like 1/rows + 1/reference_rows.
    """
    expected = np.asarray(expected_counts, dtype="int64")
    total = int(expected.sum())
    if rows <= 0 or total <= 0 or expected.size < 2:
        return 0.0
    p = expected / total
    current = np.random.default_rng(seed).multinomial(rows, p, size=SIMULATIONS)
    e, a = shares(expected), shares(current)
    simulated = np.sum((a - e) * np.log(a / e), axis=1)
    return float(np.quantile(simulated, 1 - alpha)) * (1 + rows / total)


def status(value: float | None, floor: float, warn: float, fail: float) -> str:
    """fail / warn when PSI reaches the threshold AND exceeds the noise floor; ok otherwise."""
    if value is None or value != value:
        return EMPTY
    if value <= floor:
        return OK
    if value >= fail:
        return FAIL
    return WARN if value >= warn else OK


def worst(statuses: Sequence[str]) -> str:
    """The most severe status (ok when there is nothing to judge)."""
    ranked = [s for s in statuses if s != EMPTY]
    return max(ranked, key=SEVERITY.__getitem__) if ranked else OK
