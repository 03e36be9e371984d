"""Performance maths on numpy and scikit-learn: bootstrap intervals, confidence-based estimation (CBPE), calibration.

- **Realized** performance is a metric on labelled rows; its interval is a seeded percentile bootstrap.
- **Estimated** performance (binary tasks, before labels arrive) takes each score p as P(y = 1), the way NannyML's CBPE
  does: the expected confusion counts at a threshold are sums of p and 1 - p, so expected accuracy, precision, recall
  and F1 follow; at every threshold at once they give the expected ROC and precision-recall curves, hence expected
  ROC AUC and average precision; log loss and Brier have closed forms. Its interval comes from labels drawn as
  Bernoulli(p): where the realized value would fall if the model were calibrated on these rows.
- **Calibration** (expected calibration error and a reliability table) says on held-out rows whether that assumption
  holds: a miscalibrated model's estimate cannot be trusted.
"""

from __future__ import annotations

from typing import Any

from nightshift.ml import metrics

ESTIMABLE = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier")
EPS = 1e-15


def _arrays(scores: Any, y: Any = None) -> tuple[Any, Any]:
    import numpy as np

    p = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    return p, None if y is None else np.asarray(y).astype(int)


def expected_confusion(scores: Any, threshold: float) -> dict[str, float]:
    """Expected TP, FP, TN, FN at `threshold` when each score is the probability of the positive class."""
    p, _ = _arrays(scores)
    flagged = p >= threshold
    return {"tp": float(p[flagged].sum()), "fp": float((1 - p[flagged]).sum()),
            "fn": float(p[~flagged].sum()), "tn": float((1 - p[~flagged]).sum())}


def _expected_curve(scores: Any) -> tuple[Any, Any, Any]:
    """Expected cumulative TP and FP counts with every distinct score as the threshold (highest first), from (0, 0)."""
    import numpy as np

    p, _ = _arrays(scores)
    sorted_p = np.sort(p)[::-1]  # highest first (a view: one array of the day's size, not an argsort and a copy)
    last = np.flatnonzero(sorted_p[1:] != sorted_p[:-1])
    last = np.append(last, sorted_p.size - 1)  # the last row of each run of tied scores
    tp = np.cumsum(sorted_p)[last]  # the expected false positives up to row i are (i + 1) - tp: no second cumsum
    return np.r_[0.0, tp], np.r_[0.0, (last + 1) - tp], sorted_p[last]


def expected_roc_auc(scores: Any) -> float:
    """Area under the expected ROC curve (expected TPR against expected FPR over all thresholds)."""
    import numpy as np

    tp, fp, _ = _expected_curve(scores)
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


def expected_average_precision(scores: Any) -> float:
    """Average precision of the expected precision-recall curve (sklearn's step-wise definition)."""
    import numpy as np

    tp, fp, _ = _expected_curve(scores)
    if tp[-1] <= 0:
        return float("nan")
    recall, precision = tp[1:] / tp[-1], tp[1:] / np.maximum(tp[1:] + fp[1:], EPS)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def estimate(names: list[str], scores: Any, threshold: float) -> dict[str, float]:
    """CBPE point estimates of the named binary metrics (those in ESTIMABLE; others are left out)."""
    import numpy as np

    p, _ = _arrays(scores)
    if p.size == 0:
        return {n: float("nan") for n in names if n in ESTIMABLE}
    c = expected_confusion(p, threshold)
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] > 0 else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else 0.0
    q = np.clip(p, EPS, 1 - EPS)
    funcs = {
        "roc_auc": lambda: expected_roc_auc(p), "pr_auc": lambda: expected_average_precision(p),
        "accuracy": lambda: (c["tp"] + c["tn"]) / p.size, "precision": lambda: precision, "recall": lambda: recall,
        "f1": lambda: 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
        "log_loss": lambda: float(-np.mean(q * np.log(q) + (1 - q) * np.log(1 - q))),
        "brier": lambda: float(np.mean(p * (1 - p))),
    }
    return {n: float(funcs[n]()) for n in names if n in ESTIMABLE}


def binary_metrics(names: list[str], y: Any, scores: Any, threshold: float) -> dict[str, float]:
    """The binary metrics of ml.metrics.compute in plain numpy (same definitions, far less overhead in resampling loops)."""
    import numpy as np
    from scipy.stats import rankdata

    y, p = np.asarray(y).astype(int), np.asarray(scores, dtype="float64")
    positives, rows = int(y.sum()), int(y.size)
    flagged = p >= threshold
    tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0

    def roc_auc() -> float:
        if positives in (0, rows):
            return float("nan")
        return float((rankdata(p)[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (rows - positives)))

    def pr_auc() -> float:
        if not positives:
            return float("nan")
        order = np.argsort(-p, kind="mergesort")
        ranked, hits = p[order], y[order]
        last = np.r_[np.flatnonzero(np.diff(ranked)), rows - 1]
        tps, fps = np.cumsum(hits)[last], np.cumsum(1 - hits)[last]
        return float(np.sum(np.diff(np.r_[0.0, tps / positives]) * tps / (tps + fps)))

    q = np.clip(p, EPS, 1 - EPS)
    funcs = {"roc_auc": roc_auc, "pr_auc": pr_auc,
             "log_loss": lambda: float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))) if rows else float("nan"),
             "brier": lambda: float(np.mean((p - y) ** 2)) if rows else float("nan"),
             "accuracy": lambda: float((flagged == (y == 1)).mean()) if rows else float("nan"),
             "precision": lambda: precision, "recall": lambda: recall,
             "f1": lambda: 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    return {n: float(funcs[n]()) for n in names}


def _compute(task: str, names: list[str], y: Any, scores: Any, threshold: float) -> dict[str, float]:
    if task == "binary" and all(n in ESTIMABLE for n in names):
        return binary_metrics(names, y, scores, threshold)
    return metrics.compute(task, names, y, scores, threshold)


def _quantiles(values: list[dict[str, float]], names: list[str], confidence: float) -> dict[str, tuple[float, float]]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    out = {}
    for name in names:
        column = np.asarray([v[name] for v in values], dtype="float64")
        column = column[~np.isnan(column)]
        out[name] = (float(np.percentile(column, tail)), float(np.percentile(column, 100 - tail))) if column.size else (None, None)
    return out


INTERVAL_ROWS = 50_000  # above this, intervals come from resamples of this size, rescaled (m-out-of-n bootstrap)


def _rescaled(draws: list[dict[str, float]], center: dict[str, float], names: list[str], confidence: float,
              m: int, n: int) -> dict[str, tuple[float | None, float | None]]:
    """Percentile interval of statistics on resamples of m rows, as if they had n: center + sqrt(m / n) * deviation.
    The m-out-of-n bootstrap: a metric's spread shrinks as 1/sqrt(rows), so a 2M-row day costs what 50k rows cost."""
    scale = (m / n) ** 0.5
    raw = _quantiles(draws, names, confidence)
    out = {}
    for name in names:
        low, high = raw[name]
        mid = center.get(name)
        if low is None or mid is None or mid != mid:
            out[name] = (low, high)
        else:
            out[name] = (mid + scale * (low - mid), mid + scale * (high - mid))
    return out


def bootstrap(task: str, names: list[str], y: Any, scores: Any, *, threshold: float = 0.5, resamples: int = 200,
              confidence: float = 0.9, seed: int = 0) -> dict[str, tuple[float | None, float | None]]:
    """Percentile bootstrap interval of each realized metric: rows resampled with replacement, seeded. Above
    INTERVAL_ROWS rows, resamples of INTERVAL_ROWS rows rescaled to the day's size (_rescaled), one at a time."""
    import numpy as np

    y, scores = np.asarray(y), np.asarray(scores)
    if y.size == 0:
        return {n: (None, None) for n in names}
    rng = np.random.default_rng(seed)
    if y.size <= INTERVAL_ROWS:
        draws = [_compute(task, names, y[i], scores[i], threshold) for i in rng.integers(0, y.size, size=(resamples, y.size))]
        return _quantiles(draws, names, confidence)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, y.size, size=INTERVAL_ROWS)
        draws.append(_compute(task, names, y[i], scores[i], threshold))
    return _rescaled(draws, _compute(task, names, y, scores, threshold), names, confidence, INTERVAL_ROWS, int(y.size))


def estimate_interval(names: list[str], scores: Any, *, threshold: float = 0.5, resamples: int = 200, confidence: float = 0.9,
                      seed: int = 0) -> dict[str, tuple[float | None, float | None]]:
    """Where the realized metric falls if the scores are calibrated: labels drawn as Bernoulli(score), seeded. Above
    INTERVAL_ROWS rows, on resamples of INTERVAL_ROWS rows rescaled to the day's size around the point estimate."""
    import numpy as np

    p, _ = _arrays(scores)
    names = [n for n in names if n in ESTIMABLE]
    if p.size == 0:
        return {n: (None, None) for n in names}
    rng = np.random.default_rng(seed)
    if p.size <= INTERVAL_ROWS:
        draws = [binary_metrics(names, (rng.random(p.size) < p).astype(int), p, threshold) for _ in range(resamples)]
        return _quantiles(draws, names, confidence)
    draws = []
    for _ in range(resamples):
        q = p[rng.integers(0, p.size, size=INTERVAL_ROWS)]
        draws.append(binary_metrics(names, (rng.random(q.size) < q).astype(int), q, threshold))
    return _rescaled(draws, estimate(names, p, threshold), names, confidence, INTERVAL_ROWS, int(p.size))


def calibration(y: Any, scores: Any, bins: int = 10) -> dict:
    """Expected calibration error (equal-width bins, weighted by rows), the largest bin gap, and the reliability table."""
    import numpy as np

    p, y = _arrays(scores, y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    table, ece, worst = [], 0.0, 0.0
    for b in range(bins):
        inside = which == b
        rows = int(inside.sum())
        if not rows:
            continue
        mean_score, observed = float(p[inside].mean()), float(y[inside].mean())
        gap = abs(mean_score - observed)
        ece += rows / p.size * gap
        worst = max(worst, gap)
        table.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "rows": rows, "mean_score": mean_score,
                      "observed": observed, "gap": gap})
    return {"ece": float(ece) if p.size else float("nan"), "max_gap": float(worst), "bins": table, "rows": int(p.size)}


def status(metric: str, value: float | None, baseline: float | None, max_drop: float, rows: int, min_rows: int) -> str:
    """`degraded` when the value is worse than the baseline by more than max_drop (either direction of metric)."""
    if value is None or value != value or rows < min_rows:
        return "insufficient"
    if baseline is None or baseline != baseline:
        return "no_baseline"
    return "degraded" if metrics.improvement(metric, value, baseline) < -max_drop else "ok"
