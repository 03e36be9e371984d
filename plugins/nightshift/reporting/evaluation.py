"""The evaluation report: one self-contained HTML page per training run, from `templates/evaluation_report.html`.

The step (`nightshift.steps.report`) computes the numbers; this module arranges them for the template,
which escapes every value (spec text, category values, reasons) where it lands.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from nightshift.ml import governance
from nightshift.reporting import formatting, html
from nightshift.spec import Pipeline


def threshold_warning(threshold: float, scores: Any) -> str | None:
    """A warning when the binary threshold labels at most one held-out row positive, or every one."""
    import numpy as np

    values = np.asarray(scores, dtype="float64")
    rows = int(values.size)
    positive = int((values >= threshold).sum())
    if rows == 0 or 1 < positive < rows:
        return None
    what = "every held-out row" if positive == rows else "no held-out row" if positive == 0 else "only one held-out row"
    return (f"evaluation.threshold = {threshold} labels {what} positive ({positive} of {rows}; scores range from "
            f"{values.min():.4f} to {values.max():.4f}): the confusion matrix and the rates at this threshold (TPR, FPR, "
            "fairness gaps) are degenerate. Set `evaluation.threshold` in the spec inside the score range.")


def calibration_warning(evaluation: dict) -> str | None:
    """A warning when the held-out scores are too poorly calibrated for estimated (CBPE) performance to be trusted."""
    found = evaluation.get("calibration") or {}
    ece, bound = found.get("ece"), found.get("max_ece")
    if ece is None or bound is None or not ece > bound:
        return None
    return (f"expected calibration error on the held-out rows is {ece:.3f}, above monitoring.performance.max_ece = {bound}: the "
            "scores are not probabilities, so the estimated performance of scored days (before labels arrive) cannot be "
            "trusted; rely on realized performance, or calibrate the model.")


def confusion(y: Any, scores: Any, threshold: float, labels: tuple[str, str]) -> dict:
    """The binary confusion matrix at `threshold` as counts, rows actual and columns predicted (negative, positive)."""
    import numpy as np

    actual = np.asarray(y).astype(int)
    predicted = (np.asarray(scores, dtype="float64") >= threshold).astype(int)
    counts = [[int(((actual == a) & (predicted == p)).sum()) for p in (0, 1)] for a in (0, 1)]
    return {"threshold": threshold, "labels": list(labels), "rows": [(labels[a], counts[a]) for a in (0, 1)]}


def _validation(validation: dict | None) -> dict | None:
    if not validation:
        return None
    results = validation.get("results") or []
    return {
        "passed": bool(validation.get("success")), "evaluated": validation.get("evaluated", len(results)),
        "rows": validation.get("rows", "-"), "failed": sum(1 for r in results if not r.get("success")),
        "skipped": len(validation.get("skipped") or []),
        "results": [{"column": r.get("column") or "table", "rule": r.get("rule") or r.get("expectation"),
                     "passed": bool(r.get("success")), "unexpected": r.get("unexpected_count")} for r in results],
    }


def _facts(spec: Pipeline, data: dict) -> list[tuple[str, Any]]:
    window = data.get("window") or {}
    span = f"{window.get('start')} .. {window.get('end')}" if window else ("n/a" if spec.source.event_time else "whole source")
    return [("source", data.get("source", "-")), ("window", span), ("rows in window", data.get("rows")),
            ("training rows", formatting.training_rows(data)), ("held-out rows", data.get("test_rows")),
            ("data hash", data.get("data_hash", "-")),
            ("split", f"{spec.training.split.method}, {spec.training.split.test_fraction:.0%} held out")]


def _fairness(assessed: dict) -> list[dict]:
    least = assessed.get("min_slice_rows")
    return [{"attribute": attribute, "groups": groups,
             "gaps": [(rate, governance.gap(groups, rate, least)["value"]) for rate in governance.FAIRNESS_RATES]}
            for attribute, groups in (assessed.get("fairness") or {}).items()]


def page(spec: Pipeline, *, evaluation: dict, metric_rows: list[dict], gates: list[dict], assessed: dict, balance: dict,
         images: dict[str, str], data: dict, validation: dict | None, warnings: list[str] | tuple = (),
         confusion: dict | None = None) -> str:
    """The whole report as one HTML document."""
    failed = [g for g in gates if not g["passed"]]
    return html.render(
        "evaluation_report.html",
        spec=spec, spec_hash=spec.spec_hash(), generated=f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}", data=data,
        failed=bool(failed), verdict="every gate passed" if not failed else "blocked: " + "; ".join(g["reason"] for g in failed),
        warnings=list(warnings), facts=_facts(spec, data), balance=balance,
        positive=str(spec.target.positive_class) if spec.target.task == "binary" else None,
        validation=_validation(validation), evaluation=evaluation, metric_rows=metric_rows, confusion=confusion,
        gates=[{**g, "name": governance.gate_name(g)} for g in gates], images=images,
        slices=assessed.get("slices") or {}, fairness=_fairness(assessed), min_slice_rows=assessed.get("min_slice_rows"),
        extra=["positives"] if spec.target.task == "binary" else [], calibration=evaluation.get("calibration"),
    )
