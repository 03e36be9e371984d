"""Governance: metrics per slice, fairness gaps between groups, and the gates built on them.

Everything here is a plain function of held-out labels and scores, so it runs (and is tested)
without Airflow or MLflow. Groups smaller than `evaluation.min_slice_rows` are reported but never
gate: a metric measured on a handful of rows is noise, and noise must not block (or pass) a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nightshift.ml import metrics
from nightshift.spec import FairnessGate, Pipeline, SliceGate

if TYPE_CHECKING:
    import pandas as pd

MISSING = "(missing)"
# For each fairness metric: the per-group rate and the rows that form its denominator.
FAIRNESS_RATES = {"tpr_gap": ("tpr", "positives"), "fpr_gap": ("fpr", "negatives"), "positive_rate_gap": ("positive_rate", "rows")}


def group_labels(frame: "pd.DataFrame", column: str) -> Any:
    """Group names as text, with missing values as their own group."""
    values = frame[column]
    return values.astype(object).where(values.notna(), MISSING).astype(str).to_numpy()


def slice_table(spec: Pipeline, frame: "pd.DataFrame", column: str, y_true: Any, scores: Any, classes: Any = None) -> list[dict]:
    """One row per group of `column`: row count, whether it may gate, and the spec's metrics."""
    import numpy as np

    groups = group_labels(frame, column)
    y_true = np.asarray(y_true)
    rows = []
    for group in sorted(set(groups)):
        mask = groups == group
        values = metrics.compute(spec.target.task, spec.metrics, y_true[mask], scores[mask], spec.evaluation.threshold, classes)
        entry = {"group": group, "rows": int(mask.sum()), "gated": bool(mask.sum() >= spec.evaluation.min_slice_rows),
                 "metrics": {k: _finite(v) for k, v in values.items()}}
        if spec.target.task == "binary":
            entry["positives"] = int(y_true[mask].sum())
        rows.append(entry)
    return rows


def group_rates(spec: Pipeline, frame: "pd.DataFrame", attribute: str, y_true: Any, scores: Any) -> list[dict]:
    """Per group at the spec's threshold: true-positive, false-positive and positive-prediction rates."""
    import numpy as np

    groups = group_labels(frame, attribute)
    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(scores) >= spec.evaluation.threshold).astype(int)
    out = []
    for group in sorted(set(groups)):
        y, p = y_true[groups == group], predicted[groups == group]
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        out.append({
            "group": group, "rows": int(len(y)), "positives": positives, "negatives": negatives,
            "tpr": _ratio(int((p & y).sum()), positives), "fpr": _ratio(int((p & (1 - y)).sum()), negatives),
            "positive_rate": _ratio(int(p.sum()), len(y)),
        })
    return out


def gap(rates: list[dict], metric: str, min_rows: int) -> dict:
    """Largest minus smallest rate over the groups whose denominator has at least `min_rows` rows."""
    rate, denominator = FAIRNESS_RATES[metric]
    eligible = [r for r in rates if r[denominator] >= min_rows and r[rate] is not None]
    if len(eligible) < 2:
        return {"value": None, "high": None, "low": None, "groups": len(eligible)}
    high, low = max(eligible, key=lambda r: r[rate]), min(eligible, key=lambda r: r[rate])
    return {"value": high[rate] - low[rate], "high": high["group"], "low": low["group"], "groups": len(eligible)}


def assess(spec: Pipeline, frame: "pd.DataFrame", y_true: Any, scores: Any, classes: Any = None) -> dict:
    """Slice metrics for `evaluation.slices` and group rates for every fairness attribute (JSON-able)."""
    slices = {col: slice_table(spec, frame, col, y_true, scores, classes) for col in spec.evaluation.slices}
    attributes = dict.fromkeys(g.attribute for g in spec.evaluation.fairness)
    fairness = {col: group_rates(spec, frame, col, y_true, scores) for col in attributes} if spec.target.task == "binary" else {}
    return {"slices": slices, "fairness": fairness, "min_slice_rows": spec.evaluation.min_slice_rows}


# --- gates -------------------------------------------------------------------------------------

def check_slice_gate(gate: SliceGate, evaluation: dict, min_rows: int) -> dict:
    """Every group with enough rows must meet the bound; the worst such group is the gate's value."""
    rule, threshold = ("min", gate.min) if gate.min is not None else ("max", gate.max)
    outcome = {"kind": "slice", "slice": gate.slice, "metric": gate.metric, "rule": f"slice_{rule}", "threshold": threshold}
    table = (evaluation.get("slices") or {}).get(gate.slice)
    if table is None:
        return {**outcome, "value": None, "passed": False, "reason": f"no slice metrics for '{gate.slice}' (fail closed)"}
    gated = [r for r in table if r["gated"] and r["metrics"].get(gate.metric) is not None]
    if not gated:
        return {**outcome, "value": None, "passed": True,
                "reason": f"{gate.slice}: no group has {min_rows}+ rows with a defined {gate.metric}: nothing to gate"}
    ok = (lambda v: v >= threshold) if rule == "min" else (lambda v: v <= threshold)
    worst = (min if rule == "min" else max)(gated, key=lambda r: r["metrics"][gate.metric])
    failing = [f"{r['group']} {r['metrics'][gate.metric]:.4f}" for r in gated if not ok(r["metrics"][gate.metric])]
    sign = ">=" if rule == "min" else "<="
    reason = (f"{gate.slice}: {gate.metric} below bound in {', '.join(failing)} (need {sign} {threshold})" if failing else
              f"{gate.slice}: worst {gate.metric} {worst['metrics'][gate.metric]:.4f} ({worst['group']}) {sign} {threshold} "
              f"over {len(gated)} groups")
    return {**outcome, "value": worst["metrics"][gate.metric], "group": worst["group"], "passed": not failing, "reason": reason}


def check_fairness_gate(gate: FairnessGate, evaluation: dict, min_rows: int) -> dict:
    """The largest gap of the rate between eligible groups must stay at or below `max`."""
    outcome = {"kind": "fairness", "attribute": gate.attribute, "metric": gate.metric, "rule": "max", "threshold": gate.max}
    rates = (evaluation.get("fairness") or {}).get(gate.attribute)
    if rates is None:
        return {**outcome, "value": None, "passed": False, "reason": f"no group rates for '{gate.attribute}' (fail closed)"}
    found = gap(rates, gate.metric, min_rows)
    if found["value"] is None:
        return {**outcome, "value": None, "passed": True,
                "reason": f"{gate.attribute}: fewer than two groups with {min_rows}+ {FAIRNESS_RATES[gate.metric][1]}: nothing to compare"}
    passed = found["value"] <= gate.max
    reason = (f"{gate.attribute}: {gate.metric} {found['value']:.4f} ({found['high']} vs {found['low']}) "
              f"{'<=' if passed else 'exceeds'} {gate.max}")
    return {**outcome, "value": found["value"], "groups": [found["high"], found["low"]], "passed": passed, "reason": reason}


def check_gates(spec: Pipeline, evaluation: dict) -> list[dict]:
    """Slice and fairness gates of the spec, in declaration order."""
    min_rows = spec.evaluation.min_slice_rows
    return [*(check_slice_gate(g, evaluation, min_rows) for g in spec.evaluation.slice_gates),
            *(check_fairness_gate(g, evaluation, min_rows) for g in spec.evaluation.fairness)]


def gate_name(gate: dict) -> str:
    """`roc_auc.min`, `region.roc_auc.slice_min`, `region.tpr_gap.max`: stable, tag-safe names."""
    scope = gate.get("slice") or gate.get("attribute") or gate.get("column")
    return f"{scope}.{gate['metric']}.{gate['rule']}" if scope else f"{gate['metric']}.{gate['rule']}"


def gate_tags(gates: list[dict]) -> dict[str, str]:
    """Registry tags: each gate's outcome, value and threshold, readable without parsing JSON."""
    tags = {}
    for i, g in enumerate(gates):
        key = f"nightshift.gate.{i}.{gate_name(g)}"
        tags[key] = "pass" if g["passed"] else "fail"
        tags[f"{key}.value"] = "n/a" if g.get("value") is None else f"{g['value']:.6g}"
        tags[f"{key}.threshold"] = "n/a" if g.get("threshold") is None else f"{g['threshold']:.6g}"
    return tags


def _finite(value: float) -> float | None:
    return None if value != value else float(value)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
