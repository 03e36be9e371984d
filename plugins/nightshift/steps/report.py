"""Evaluation report: one self-contained HTML file per training run, like an MLflow Recipes step card.

A reviewer (or the approver) opens one file and sees what the model was trained on, how it compares
with the champion on the same held-out rows, how it behaves per slice and across groups, and which
gates passed. Plots are embedded as base64 PNGs so the file travels alone: run folder and MLflow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nightshift.io import storage
from nightshift.ml import governance, metrics
from nightshift.reporting import evaluation as reporting
from nightshift.reporting.formatting import binary_labels
from nightshift.reporting.plots import plots
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
REPORT_ARTIFACT = "evaluation/report.html"
GOVERNANCE_ARTIFACT = "evaluation/governance.json"


# --- numbers ---------------------------------------------------------------------------------

def target_summary(spec: Pipeline, y_train: Any, y_test: Any, labels: tuple[str, str] | None = None) -> dict:
    """Class balance (classifiers) or the target's distribution (regression), train vs held-out.

    Binary targets arrive as 0/1; with `labels` (negative, positive) the classes are shown as the data
    spells them, negative first.
    """
    import pandas as pd

    frames = {"train": pd.Series(y_train), "held-out": pd.Series(y_test)}
    if spec.target.task == "regression":
        stats = {name: s.astype("float64").describe(percentiles=[0.25, 0.5, 0.75]) for name, s in frames.items()}
        return {"kind": "distribution", "rows": {k: {name: float(v) for name, v in s.items()} for k, s in stats.items()}}
    if spec.target.task == "binary" and labels is not None:
        names = {0: labels[0], 1: labels[1]}
        frames = {name: s.astype(int).map(names) for name, s in frames.items()}
        labels = list(labels)
    else:
        labels = sorted(set(map(str, frames["train"])) | set(map(str, frames["held-out"])))
    rows = {}
    for name, s in frames.items():
        counts = s.astype(str).value_counts()
        rows[name] = {label: {"rows": int(counts.get(label, 0)), "share": float(counts.get(label, 0)) / max(len(s), 1)} for label in labels}
    return {"kind": "classes", "labels": labels, "rows": rows}


def metric_rows(spec: Pipeline, evaluation: dict) -> list[dict]:
    """Challenger vs champion per metric, with the difference and whether it is an improvement."""
    champion = evaluation.get("champion") or {}
    out = []
    for name in spec.metrics:
        mine, theirs = evaluation["challenger"].get(name), champion.get(name)
        row = {"metric": name, "challenger": mine, "champion": theirs, "difference": None, "better": None}
        if mine is not None and theirs is not None and mine == mine and theirs == theirs:
            row["difference"] = mine - theirs
            row["better"] = metrics.improvement(name, mine, theirs) >= 0
        out.append(row)
    return out


# --- HTML (the reporting layer: autoescaped Jinja2 templates) -------------------------------------

def render(spec: Pipeline, *, evaluation: dict, gates: list[dict], assessed: dict, balance: dict, images: dict[str, str],
           data: dict, validation: dict | None, warnings: list[str] | tuple = (), confusion: dict | None = None) -> str:
    """The whole report as one HTML document."""
    return reporting.page(spec, evaluation=evaluation, metric_rows=metric_rows(spec, evaluation), gates=gates, assessed=assessed,
                          balance=balance, images=images, data=data, validation=validation, warnings=warnings, confusion=confusion)


# --- the step ----------------------------------------------------------------------------------

def predictions(spec: Pipeline, model: Any, frame: "pd.DataFrame") -> tuple[Any, Any, Any]:
    """Held-out labels, the model's scores and its classes, exactly as the metrics see them."""
    from nightshift.steps.features import model_input
    from nightshift.steps.train import model_input_columns, target_values

    scores = metrics.predict_scores(model, model_input(frame, model_input_columns(model, spec)), spec.target.task)
    return target_values(spec, frame), scores, getattr(model, "classes_", None)


def build(spec: Pipeline, model: Any, test: "pd.DataFrame", y_train: Any, evaluation: dict, data: dict,
          validation: dict | None = None, *, predicted: tuple | None = None,
          importance: list | None = None) -> tuple[str, dict, list[dict]]:
    """Assess slices and fairness, check every gate, render the report: (html, assessed, gates).

    `predicted` (labels, scores, classes) and `importance` come from evaluate's one prediction; without
    them the model predicts `test` here."""
    from nightshift.ml.modelling import feature_importance
    from nightshift.steps.promote import check_gates

    y, scores, classes = predicted if predicted is not None else predictions(spec, model, test)
    importance = importance if importance is not None else feature_importance(model)
    data = {"test_rows": len(test), **data}
    assessed = governance.assess(spec, test, y, scores, classes)
    gates = check_gates(spec, {**evaluation, **assessed})
    labels, warnings, confusion = None, [], None
    if spec.target.task == "binary":  # the data's own labels; a warning when the threshold makes the matrix degenerate
        threshold = spec.evaluation.threshold
        labels = binary_labels(spec, test[spec.target.column] if spec.target.column in test.columns else [])
        warnings = [w for w in [reporting.threshold_warning(threshold, scores), reporting.calibration_warning(evaluation)] if w]
        confusion = reporting.confusion(y, scores, threshold, labels)
    html_text = render(spec, evaluation=evaluation, gates=gates, assessed=assessed, balance=target_summary(spec, y_train, y, labels),
                       images=plots(spec, y, scores, classes, importance, labels or ("0", "1")), data=data, validation=validation,
                       warnings=warnings, confusion=confusion)
    return html_text, assessed, gates


def publish(html_text: str, record: dict, run_id: str | None, run_dir: str) -> str:
    """Save the report in the run folder and, with the governance record, in the MLflow run."""
    import tempfile
    from pathlib import Path

    from nightshift.io import tracking

    uri = f"{run_dir}/evaluate/report.html"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "report.html"
        local.write_text(html_text, encoding="utf-8")
        storage.put_file(local, uri)
    if run_id:
        client = tracking.client()
        client.log_text(run_id, html_text, REPORT_ARTIFACT)
        client.log_dict(run_id, record, GOVERNANCE_ARTIFACT)
        client.set_tag(run_id, "nightshift.report", uri)
    log.info("evaluation report: %s", uri)
    return uri
