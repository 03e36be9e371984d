"""Evaluation report: one self-contained HTML file per training run, like an MLflow Recipes step card.

A reviewer (or the approver) opens one file and sees what the model was trained on, how it compares
with the champion on the same held-out rows, how it behaves per slice and across groups, and which
gates passed. Plots are embedded as base64 PNGs so the file travels alone: run folder and MLflow.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from nightshift.io import storage
from nightshift.ml import governance, metrics
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
REPORT_ARTIFACT = "evaluation/report.html"
GOVERNANCE_ARTIFACT = "evaluation/governance.json"


# --- numbers ---------------------------------------------------------------------------------

def target_summary(spec: Pipeline, y_train: Any, y_test: Any) -> dict:
    """Class balance (classifiers) or the target's distribution (regression), train vs held-out."""
    import pandas as pd

    frames = {"train": pd.Series(y_train), "held-out": pd.Series(y_test)}
    if spec.target.task == "regression":
        stats = {name: s.astype("float64").describe(percentiles=[0.25, 0.5, 0.75]) for name, s in frames.items()}
        return {"kind": "distribution", "rows": {k: {name: float(v) for name, v in s.items()} for k, s in stats.items()}}
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


# --- plots -------------------------------------------------------------------------------------

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(width: float = 4.5, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def binary_plots(y: Any, scores: Any, threshold: float) -> dict[str, str]:
    """ROC, precision-recall, calibration and the confusion matrix at the spec's threshold."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out = {}
    fig, ax = _axes()
    RocCurveDisplay.from_predictions(y, scores, ax=ax, name="challenger")
    out["ROC curve"] = _png(fig)
    fig, ax = _axes()
    PrecisionRecallDisplay.from_predictions(y, scores, ax=ax, name="challenger")
    out["Precision-recall curve"] = _png(fig)
    fig, ax = _axes()
    CalibrationDisplay.from_predictions(y, scores, n_bins=10, strategy="quantile", ax=ax, name="challenger")
    out["Calibration (quantile bins)"] = _png(fig)
    fig, ax = _axes()
    ConfusionMatrixDisplay.from_predictions(y, (scores >= threshold).astype(int), labels=[0, 1], ax=ax, colorbar=False)
    ax.set_title(f"threshold {threshold}")
    out[f"Confusion matrix at {threshold}"] = _png(fig)
    return out


def multiclass_plots(y: Any, scores: Any, classes: Any) -> dict[str, str]:
    """One-vs-rest ROC per class and the confusion matrix of the most probable class."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    classes = np.asarray(classes)
    y = np.asarray(y)
    out = {}
    fig, ax = _axes()
    for i, label in enumerate(classes):
        if 0 < (y == label).sum() < len(y):
            RocCurveDisplay.from_predictions(y == label, scores[:, i], ax=ax, name=str(label))
    ax.set_title("one-vs-rest")
    out["ROC curves (one-vs-rest)"] = _png(fig)
    fig, ax = _axes(5, 4.2)
    ConfusionMatrixDisplay.from_predictions(y, classes[np.argmax(scores, axis=1)], labels=classes, ax=ax, colorbar=False)
    out["Confusion matrix (most probable class)"] = _png(fig)
    return out


def regression_plots(y: Any, predicted: Any) -> dict[str, str]:
    """Residuals against predictions, and predicted against actual with the identity line."""
    import numpy as np

    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
    out = {}
    fig, ax = _axes()
    ax.scatter(predicted, y - predicted, s=5, alpha=0.4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
    out["Residuals"] = _png(fig)
    fig, ax = _axes()
    ax.scatter(y, predicted, s=5, alpha=0.4)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    out["Predicted vs actual"] = _png(fig)
    return out


def importance_plot(importance: list[tuple[str, float]], top: int = 20) -> dict[str, str]:
    if not importance:
        return {}
    shown = importance[:top][::-1]
    fig, ax = _axes(6, max(3.0, 0.28 * len(shown)))
    ax.barh([n for n, _ in shown], [v for _, v in shown])
    ax.set(title=f"Feature importance (top {len(shown)})")
    return {"Feature importance": _png(fig)}


def plots(spec: Pipeline, y: Any, scores: Any, classes: Any, importance: list[tuple[str, float]]) -> dict[str, str]:
    """Every plot of the report for the spec's task, as base64 PNGs keyed by title."""
    task = spec.target.task
    if task == "binary":
        found = binary_plots(y, scores, spec.evaluation.threshold)
    elif task == "multiclass":
        found = multiclass_plots(y, scores, classes)
    else:
        found = regression_plots(y, scores)
    return {**found, **importance_plot(importance)}


# --- HTML --------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.pass{color:#176f2c;font-weight:600}
.fail{color:#b42318;font-weight:600}.muted{color:#777}.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.9em;color:#555}.banner{padding:.6em 1em;border-radius:4px}
.banner.pass{background:#e7f6ea}.banner.fail{background:#fdecea}"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = f"<tr>{''.join(f'<th>{esc(h)}</th>' for h in headers)}</tr>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def outcome(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def data_section(spec: Pipeline, data: dict, balance: dict, validation: dict | None) -> str:
    window = data.get("window") or {}
    span = f"{window.get('start')} .. {window.get('end')}" if window else ("n/a" if spec.source.event_time else "whole source")
    facts = [
        ["source", esc(data.get("source", "-"))], ["window", esc(span)],
        ["rows in window", fmt(data.get("rows"))], ["training rows", fmt(data.get("train_rows"))],
        ["held-out rows", fmt(data.get("test_rows"))], ["data hash", esc(data.get("data_hash", "-"))],
        ["split", esc(f"{spec.training.split.method}, {spec.training.split.test_fraction:.0%} held out")],
    ]
    return "<h2>Data</h2>" + table([], facts) + _balance_html(spec, balance) + _validation_html(validation)


def _balance_html(spec: Pipeline, balance: dict) -> str:
    if balance["kind"] == "distribution":
        stats = list(next(iter(balance["rows"].values())))
        rows = [[esc(name), *(fmt(balance["rows"][part][name], 2) for part in balance["rows"])] for name in stats]
        return f"<h3>Target distribution: {esc(spec.target.column)}</h3>" + table(["statistic", *balance["rows"]], rows)
    parts = list(balance["rows"])
    rows = [[esc(label), *(f"{balance['rows'][p][label]['rows']} ({balance['rows'][p][label]['share']:.1%})" for p in parts)]
            for label in balance["labels"]]
    return f"<h3>Class balance: {esc(spec.target.column)}</h3>" + table(["class", *parts], rows)


def _validation_html(validation: dict | None) -> str:
    if not validation:
        return "<h3>Validation</h3><p class='muted'>no validation summary available</p>"
    results = validation.get("results") or []
    failed = [r for r in results if not r.get("success")]
    head = (f"<h3>Validation (Great Expectations)</h3><p>{outcome(bool(validation.get('success')))} "
            f"{validation.get('evaluated', len(results))} expectations on {validation.get('rows', '-')} rows, "
            f"{len(failed)} failed, {len(validation.get('skipped') or [])} rules skipped.</p>")
    rows = [[esc(r.get("column") or "table"), esc(r.get("rule") or r.get("expectation")), outcome(bool(r.get("success"))),
             fmt(r.get("unexpected_count"))] for r in results]
    return head + "<details><summary>expectations</summary>" + table(["column", "rule", "outcome", "unexpected"], rows) + "</details>"


def metrics_section(spec: Pipeline, evaluation: dict) -> str:
    version = evaluation.get("champion_version")
    label = f"champion v{version}" if version else "champion"
    note = ("<p class='muted'>no champion yet: nothing to compare with</p>" if version is None else
            f"<p class='fail'>champion could not be evaluated: {esc(evaluation.get('champion_error'))}</p>"
            if evaluation.get("champion_error") else
            f"<p class='muted'>both models scored the same {evaluation.get('test_rows', '')} held-out rows</p>")
    rows = [[esc(r["metric"]), fmt(r["challenger"]), fmt(r["champion"]),
             fmt(r["difference"]) + ("" if r["better"] is None else (" ▲" if r["better"] else " ▼"))]
            for r in metric_rows(spec, evaluation)]
    return "<h2>Metrics on held-out rows</h2>" + table(["metric", "challenger", label, "difference"], rows) + note


def gates_section(gates: list[dict]) -> str:
    if not gates:
        return "<h2>Gates</h2><p class='muted'>no gates declared</p>"
    rows = [[esc(governance.gate_name(g)), fmt(g.get("value")), fmt(g.get("threshold")), outcome(g["passed"]), esc(g["reason"])]
            for g in gates]
    return "<h2>Gates</h2>" + table(["gate", "value", "threshold", "outcome", "reason"], rows)


def slices_section(spec: Pipeline, assessed: dict) -> str:
    if not assessed.get("slices"):
        return ""
    parts = [f"<h2>Slices</h2><p class='muted'>groups with fewer than {assessed['min_slice_rows']} held-out rows are "
             "reported but never gate</p>"]
    extra = ["positives"] if spec.target.task == "binary" else []
    for column, groups in assessed["slices"].items():
        rows = [[esc(g["group"]), fmt(g["rows"]), *(fmt(g.get(e)) for e in extra), *(fmt(g["metrics"].get(m)) for m in spec.metrics),
                 "yes" if g["gated"] else "<span class='muted'>no (too few rows)</span>"] for g in groups]
        parts.append(f"<h3>{esc(column)}</h3>" + table(["group", "rows", *extra, *spec.metrics, "gates"], rows))
    return "".join(parts)


def fairness_section(spec: Pipeline, assessed: dict) -> str:
    if not assessed.get("fairness"):
        return ""
    parts = [f"<h2>Fairness</h2><p class='muted'>rates at threshold {spec.evaluation.threshold}; a group takes part in a gap "
             f"when the rate's denominator has at least {assessed['min_slice_rows']} rows</p>"]
    for attribute, groups in assessed["fairness"].items():
        rows = [[esc(g["group"]), fmt(g["rows"]), fmt(g["positives"]), fmt(g["tpr"]), fmt(g["fpr"]), fmt(g["positive_rate"])]
                for g in groups]
        gaps = [[esc(m), fmt(governance.gap(groups, m, assessed["min_slice_rows"])["value"])] for m in governance.FAIRNESS_RATES]
        parts.append(f"<h3>{esc(attribute)}</h3>" + table(["group", "rows", "positives", "TPR", "FPR", "positive rate"], rows)
                     + table(["gap", "value"], gaps))
    return "".join(parts)


def plots_section(images: dict[str, str]) -> str:
    figures = "".join(f"<figure><img alt='{esc(t)}' src='data:image/png;base64,{b64}'><figcaption>{esc(t)}</figcaption></figure>"
                      for t, b64 in images.items())
    return f"<h2>Plots</h2><div class='plots'>{figures}</div>"


def render(spec: Pipeline, *, evaluation: dict, gates: list[dict], assessed: dict, balance: dict, images: dict[str, str],
           data: dict, validation: dict | None) -> str:
    """The whole report as one HTML document."""
    failed = [g for g in gates if not g["passed"]]
    verdict = ("every gate passed" if not failed else "blocked: " + "; ".join(g["reason"] for g in failed))
    header = (f"<h1>{esc(spec.name)}: evaluation report</h1><p>{esc(spec.description)}</p>"
              f"<p class='muted'>{esc(spec.target.task)} on <code>{esc(spec.target.column)}</code> · DAG run "
              f"<code>{esc(data.get('dag_run_id', '-'))}</code> · MLflow run <code>{esc(data.get('mlflow_run_id', '-'))}</code> · "
              f"spec {esc(spec.spec_hash())} · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>"
              f"<p class='banner {'pass' if not failed else 'fail'}'>{esc(verdict)}</p>")
    body = (header + data_section(spec, data, balance, validation) + metrics_section(spec, evaluation) + gates_section(gates)
            + plots_section(images) + slices_section(spec, assessed) + fairness_section(spec, assessed))
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(spec.name)} evaluation</title>" \
           f"<style>{CSS}</style></head><body>{body}</body></html>"


# --- the step ----------------------------------------------------------------------------------

def predictions(spec: Pipeline, model: Any, frame: "pd.DataFrame") -> tuple[Any, Any, Any]:
    """Held-out labels, the model's scores and its classes, exactly as the metrics see them."""
    from nightshift.steps.features import model_input
    from nightshift.steps.train import model_input_columns, target_values

    scores = metrics.predict_scores(model, model_input(frame, model_input_columns(model, spec)), spec.target.task)
    return target_values(spec, frame), scores, getattr(model, "classes_", None)


def build(spec: Pipeline, model: Any, test: "pd.DataFrame", y_train: Any, evaluation: dict, data: dict,
          validation: dict | None = None) -> tuple[str, dict, list[dict]]:
    """Assess slices and fairness, check every gate, render the report: (html, assessed, gates)."""
    from nightshift.steps.evaluate import feature_importance
    from nightshift.steps.promote import check_gates

    y, scores, classes = predictions(spec, model, test)
    data = {"test_rows": len(test), **data}
    assessed = governance.assess(spec, test, y, scores, classes)
    gates = check_gates(spec, {**evaluation, **assessed})
    html_text = render(spec, evaluation=evaluation, gates=gates, assessed=assessed, balance=target_summary(spec, y_train, y),
                       images=plots(spec, y, scores, classes, feature_importance(model)), data=data, validation=validation)
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
