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
- Null rate: a move of |rate - reference rate| past a bound alarms only when a Binomial(rows, p) count of
  nulls at least as far from the reference's is less likely than `alpha`, with p the reference's rate
  smoothed by half a row ((nulls + 0.5) / (rows + 1)); a column entirely null on a non-empty date warns at least.
- Constant within a partition: one value holds at least `share` of a partition's rows. A column is constant
  within partitions when at least half the reference's partitions (of 2+ rows) are, and far more of them than
  chance would make so if rows were drawn independently from the column's overall distribution (binomial
  tail below `alpha`).
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


def _binomial_tail(count: int, trials: int, p: float, upper: bool) -> float:
    """P(X >= count) (upper) or P(X <= count) for X ~ Binomial(trials, p)."""
    from scipy import stats

    return float(stats.binom.sf(count - 1, trials, p) if upper else stats.binom.cdf(count, trials, p))


def null_status(reference_rate: float, reference_rows: int, nulls: int, rows: int, warn: float, fail: float, alpha: float) -> str:
    """ok / warn / fail for a date's null count against the reference's null rate (see the module doc)."""
    if rows <= 0:
        return EMPTY
    rate = nulls / rows
    change = abs(rate - reference_rate)
    p = (reference_rate * reference_rows + PSEUDO_ROWS) / (reference_rows + 2 * PSEUDO_ROWS)
    chance = _binomial_tail(nulls, rows, p, upper=rate >= reference_rate)
    judged = OK if chance >= alpha else FAIL if change >= fail else WARN if change >= warn else OK
    if nulls == rows and reference_rate < 1.0 and judged == OK:
        return WARN  # all null where the reference was not: at least a warning
    return judged


def chance_constant(shares_: Sequence[float], sizes: Sequence[int], share: float) -> float:
    """Mean probability that a partition of each size is constant (one value >= share of it) by chance.

    Rows drawn independently with the given value shares; the events "value i holds >= share" are disjoint for
    share > 0.5, so the probability is the sum over values of P(Binomial(size, p_i) >= ceil(share * size)).
    """
    from scipy import stats

    p = np.asarray(shares_, dtype="float64")
    sizes = np.asarray(sizes, dtype="int64")
    if sizes.size == 0 or p.size == 0:
        return 0.0
    need = np.ceil(share * sizes - 1e-9).astype("int64")
    per_partition = stats.binom.sf(need[:, None] - 1, sizes[:, None], p[None, :]).sum(axis=1)
    return float(np.clip(per_partition, 0.0, 1.0).mean())


def constant_within_partitions(constant: int, partitions: int, chance: float, alpha: float) -> bool:
    """At least half the partitions constant, and more of them than chance explains (tail probability < alpha)."""
    if partitions < 2 or constant * 2 < partitions:
        return False
    return _binomial_tail(constant, partitions, min(chance, 1.0), upper=True) < alpha
