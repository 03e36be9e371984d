"""Guards before promotion: target leaks, implausible metrics, suspect labels, degenerate label windows.

Plain functions of frames, labels and numbers (no Airflow, no MLflow). Each guard's outcome becomes a gate
(`check_gates`), so promotion blocks through the same path as every metric gate:

- leak guard: a single feature whose own held-out score is near perfect (binary: ROC AUC, as max(auc, 1 - auc);
  regression: |Pearson correlation| with the label). Numeric and derived features score by their values (missing
  values rank as their own lowest value); categorical features by the mean label of their category, fitted on the
  training rows and applied to the held-out rows (a category unseen in training gets the training mean).
- plausibility: a held-out metric beyond the bound `evaluation.plausible` sets.
- label guard: the champion, scored on the new held-out rows, far below its own recorded held-out metric, or the
  window's label prevalence far from the champion's training prevalence. The gate is `approvable`: with
  `promotion.approval: required` the version waits for a person with that evidence instead of being refused.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nightshift.ml import metrics
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd

AUC_METRICS = {"roc_auc", "roc_auc_ovr"}
LEAK, PLAUSIBLE, LABELS = "leak", "plausibility", "label_sanity"


# --- degenerate windows --------------------------------------------------------------------------------------

def degenerate_labels(spec: Pipeline, y_train: Any, y_test: Any) -> str | None:
    """Why these labels cannot train and evaluate a model (one class, too few rows of a class in either split, a
    constant regression label), in words naming the counts; None when they can."""
    import numpy as np
    import pandas as pd

    column = spec.target.column
    train, test = pd.Series(np.asarray(y_train)), pd.Series(np.asarray(y_test))
    both = pd.concat([train, test], ignore_index=True)
    if spec.target.task == "regression":
        values = both.dropna()
        if values.nunique() <= 1:
            shown = f" ({values.iloc[0]:g})" if len(values) else ""
            return f"label column '{column}' is constant{shown} in all {len(values):,} labelled rows: nothing to learn"
        return None
    counts = both.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        return f"label column '{column}' has a single class ({only}, {len(both):,} rows): nothing to learn"
    need = spec.evaluation.min_class_rows
    short = []
    for cls in sorted(counts.index, key=str):
        in_train, in_test = int((train == cls).sum()), int((test == cls).sum())
        if in_train < need or in_test < need:
            total = int(counts[cls])
            short.append(f"class {cls}: {total:,} row{'' if total == 1 else 's'} (training {in_train:,}, held-out {in_test:,})")
    if short:
        return (f"label column '{column}' has too few rows of a class to train and evaluate: {'; '.join(short)}; each split "
                f"needs at least {need} (evaluation.min_class_rows)")
    return None


# --- leak guard ----------------------------------------------------------------------------------------------

def _numeric(values: Any) -> Any:
    """Float values with missing ones ranked as their own lowest value; None when nothing varies."""
    import numpy as np
    import pandas as pd

    x = pd.to_numeric(pd.Series(values), errors="coerce").astype("float64").to_numpy(copy=True)
    x[~np.isfinite(x)] = np.nan
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return None
    x = np.where(np.isnan(x), finite.min() - 1.0, x)
    return None if np.ptp(x) == 0 else x


def univariate_score(task: str, x: Any, y: Any) -> float | None:
    """Binary: max(auc, 1 - auc) of x as a score for y; regression: |corr(x, y)|. None when undefined."""
    import numpy as np

    if x is None:
        return None
    y = np.asarray(y, dtype="float64")
    if task == "binary":
        from sklearn.metrics import roc_auc_score

        if len(np.unique(y)) < 2:
            return None
        auc = float(roc_auc_score(y, x))
        return max(auc, 1.0 - auc)
    if np.ptp(y) == 0:
        return None
    corr = float(np.corrcoef(x, y)[0, 1])
    return None if corr != corr else abs(corr)


def category_means(train_values: Any, y_train: Any, test_values: Any) -> Any:
    """The held-out rows' categories replaced by their mean training label (unseen: the training mean)."""
    import numpy as np
    import pandas as pd

    def text(values: Any) -> pd.Series:
        series = pd.Series(values).reset_index(drop=True)
        return series.astype(object).where(series.notna(), "(missing)").astype(str)

    y_train = np.asarray(y_train, dtype="float64")
    means = pd.Series(y_train).groupby(text(train_values).to_numpy()).mean()
    return text(test_values).map(means).fillna(float(y_train.mean())).to_numpy(dtype="float64")


def leak_scan(spec: Pipeline, train: "pd.DataFrame", test: "pd.DataFrame", y_train: Any, y_test: Any) -> dict:
    """Each feature's own held-out score, highest first, with the flagged (unacknowledged, at or above the threshold)
    and acknowledged ones. Multiclass tasks are not scanned."""
    guard = spec.evaluation.leak_guard
    task = spec.target.task
    measure = "ROC AUC" if task == "binary" else "|correlation|"
    result = {"enabled": guard.enabled, "measure": measure, "threshold": guard.threshold, "scores": [], "flagged": [],
              "acknowledged": []}
    if not guard.enabled or task not in ("binary", "regression") or len(test) == 0:
        return result
    from nightshift.ml.transformers import DerivedColumns

    f = spec.features
    scores: dict[str, float | None] = {}
    for column in f.numeric.columns:
        if column in test.columns:
            scores[column] = univariate_score(task, _numeric(test[column]), y_test)
    if f.derived:
        derived = DerivedColumns(tuple((d.name, d.expr) for d in f.derived)).transform(test)
        for d in f.derived:
            scores[d.name] = univariate_score(task, _numeric(derived[d.name]), y_test)
    for column in f.categorical.columns:
        if column in test.columns and column in train.columns:
            scores[column] = univariate_score(task, _numeric(category_means(train[column], y_train, test[column])), y_test)
    ranked = sorted(((c, s) for c, s in scores.items() if s is not None), key=lambda pair: -pair[1])
    result["scores"] = [{"column": c, "score": s} for c, s in ranked]
    over = [{"column": c, "score": s} for c, s in ranked if s >= guard.threshold]
    result["flagged"] = [o for o in over if o["column"] not in guard.acknowledged]
    result["acknowledged"] = [o for o in over if o["column"] in guard.acknowledged]
    return result


def leak_text(scan: dict) -> str:
    """`utilization: ROC AUC 0.9980; debt: ...` for the flagged columns (the version tag nightshift.leak)."""
    return "; ".join(f"{o['column']}: {scan['measure']} {o['score']:.4f}" for o in scan.get("flagged") or [])


def check_leak_gate(scan: dict) -> dict | None:
    if not scan or not scan.get("enabled"):
        return None
    threshold, measure = scan["threshold"], scan["measure"]
    metric = "roc_auc" if measure == "ROC AUC" else "abs_corr"
    top = (scan.get("flagged") or scan.get("scores") or [None])[0]
    outcome = {"kind": LEAK, "metric": metric, "rule": "leak_max", "threshold": threshold,
               "value": top["score"] if top else None, "column": top["column"] if top else None}
    if scan.get("flagged"):
        said = "; ".join(f"column {o['column']} alone reaches {measure} {o['score']:.4f}" for o in scan["flagged"])
        return {**outcome, "passed": False, "leak": leak_text(scan),
                "reason": f"suspected target leak: {said} on the held-out rows (evaluation.leak_guard.threshold {threshold:g}; "
                          f"list a known-safe column in evaluation.leak_guard.acknowledged)"}
    known = scan.get("acknowledged") or []
    note = f" (acknowledged: {', '.join(o['column'] for o in known)})" if known else ""
    best = f" (highest: {top['column']} {top['score']:.4f})" if top else ""
    return {**outcome, "passed": True,
            "reason": f"no single feature reaches {measure} {threshold:g} alone on the held-out rows{best}{note}"}


# --- plausibility --------------------------------------------------------------------------------------------

def check_plausible_gates(spec: Pipeline, challenger: dict) -> list[dict]:
    gates = []
    for metric, bound in spec.evaluation.plausible.items():
        value = challenger.get(metric, float("nan"))
        higher = metrics.greater_is_better(metric)
        outcome = {"kind": PLAUSIBLE, "metric": metric, "rule": "plausible_max" if higher else "plausible_min",
                   "threshold": bound, "value": value}
        if value != value:
            gates.append({**outcome, "value": None, "passed": True, "reason": f"{metric} is undefined: no plausibility check"})
            continue
        beyond = value > bound if higher else value < bound
        word = "above" if higher else "below"
        gates.append({**outcome, "passed": not beyond, **({"leak": f"{metric} {value:.4f}"} if beyond else {}),
                      "reason": f"suspected target leak: held-out {metric} {value:.4f} is {word} the plausible bound {bound:g} "
                                f"(evaluation.plausible)" if beyond else
                                f"{metric} {value:.4f} within the plausible bound {bound:g}"})
    return gates


# --- label guard ---------------------------------------------------------------------------------------------

def label_stats(task: str, y: Any) -> dict:
    """What a version records about its training labels: positive rate (binary), mean and std (regression)."""
    import numpy as np

    y = np.asarray(y, dtype="float64") if task in ("binary", "regression") else None
    if y is None or y.size == 0:
        return {}
    if task == "binary":
        return {"prevalence": float(y.mean()), "rows": int(y.size)}
    return {"mean": float(y.mean()), "std": float(y.std()), "rows": int(y.size)}


def label_check(spec: Pipeline, champion_version: str | None, recorded: dict | None, now: dict | None,
                then_stats: dict | None, now_stats: dict) -> dict:
    """Whether the new labels look inverted or broken, with the evidence in words.

    `recorded`: the champion's own held-out metrics when it was trained; `now`: its metrics on this run's held-out
    rows; `then_stats`: its training label stats (version tags); `now_stats`: this window's."""
    guard = spec.evaluation.label_guard
    metric = guard.metric or spec.metrics[0]
    result = {"enabled": guard.enabled, "metric": metric, "champion_version": champion_version, "suspect": False,
              "reasons": [], "checked": [], "now_stats": now_stats, "then_stats": then_stats or {}}
    if not guard.enabled or champion_version is None:
        return result
    v = f"v{champion_version}"
    old, new = (recorded or {}).get(metric), (now or {}).get(metric)
    if _finite(old) and _finite(new):
        result.update(recorded=old, current=new)
        result["checked"].append(metric)
        if metrics.greater_is_better(metric):
            drop = old - new
            result["drop"] = drop
            inverted = metric in AUC_METRICS and new < 0.5 <= old - 0.1
            if drop > guard.max_drop or inverted:
                result["reasons"].append(f"labels look inverted or broken: the champion ({v}) scored {metric} {new:.2f} on these "
                                         f"rows vs {old:.2f} when it was trained (a drop of {drop:.2f}; at most "
                                         f"{guard.max_drop:g} expected)")
        elif old > 0:
            growth = (new - old) / old
            result["drop"] = growth
            if growth > guard.max_relative_increase:
                result["reasons"].append(f"labels look inverted or broken: the champion ({v}) has {metric} {new:.4g} on these rows "
                                         f"vs {old:.4g} when it was trained ({growth:+.0%}; at most "
                                         f"{guard.max_relative_increase:+.0%} expected)")
    then_stats = then_stats or {}
    if spec.target.task == "binary" and _finite(then_stats.get("prevalence")) and _finite(now_stats.get("prevalence")):
        before, after = then_stats["prevalence"], now_stats["prevalence"]
        result["checked"].append("prevalence")
        if abs(after - before) > guard.max_prevalence_change:
            result["reasons"].append(f"labels look inverted or broken: the positive rate of '{spec.target.column}' is {after:.1%} "
                                     f"in this window vs {before:.1%} in the champion's ({v}) training data (at most "
                                     f"{guard.max_prevalence_change:.0%} apart expected)")
    if spec.target.task == "regression" and all(_finite(then_stats.get(k)) for k in ("mean", "std")) \
            and _finite(now_stats.get("mean")) and then_stats["std"] > 0:
        shift = abs(now_stats["mean"] - then_stats["mean"]) / then_stats["std"]
        result["checked"].append("mean")
        if shift > guard.max_mean_shift_sd:
            result["reasons"].append(f"labels look inverted or broken: the mean of '{spec.target.column}' is {now_stats['mean']:.4g} "
                                     f"in this window vs {then_stats['mean']:.4g} in the champion's ({v}) training data "
                                     f"({shift:.1f} standard deviations; at most {guard.max_mean_shift_sd:g} expected)")
    result["suspect"] = bool(result["reasons"])
    return result


def check_label_gate(spec: Pipeline, check: dict | None) -> dict | None:
    if not check or not check.get("enabled") or not check.get("checked"):
        return None
    guard = spec.evaluation.label_guard
    higher = metrics.greater_is_better(check["metric"])
    outcome = {"kind": LABELS, "metric": check["metric"], "rule": "label_sanity",
               "threshold": guard.max_drop if higher else guard.max_relative_increase, "value": check.get("drop")}
    if check["suspect"]:
        approvable = spec.promotion.approval == "required"
        then = "a person must approve it (promotion.approval: required)" if approvable else "refused (promotion.approval is none)"
        return {**outcome, "passed": False, "approvable": approvable, "reason": f"{'; '.join(check['reasons'])}: {then}"}
    said = (f"the champion (v{check['champion_version']}) scored {check['metric']} {check['current']:.4f} on these rows vs "
            f"{check['recorded']:.4f} when it was trained" if "current" in check else "label prevalence in line with the champion's")
    return {**outcome, "passed": True, "reason": f"labels look sound: {said}"}


def check_gates(spec: Pipeline, evaluation: dict) -> list[dict]:
    """The guards' gates from an evaluation result (leak, plausibility, label sanity), in that order."""
    gates = [check_leak_gate(evaluation.get("leak_scan") or {}), *check_plausible_gates(spec, evaluation.get("challenger") or {}),
             check_label_gate(spec, evaluation.get("label_check"))]
    return [g for g in gates if g is not None]


def alerts(spec: Pipeline, evaluation: dict) -> list[str]:
    """Alert texts: suspect labels (someone must look at the labelling, whatever happens to the version)."""
    check = evaluation.get("label_check") or {}
    return list(check.get("reasons") or [])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
