"""Evaluate: the challenger and the current champion on the SAME held-out rows.

Like TFX's evaluator, a candidate is judged against thresholds and against the baseline model on
identical data. Plots go to the run folder and to MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.ml import metrics
from nightshift.spec import Pipeline
from nightshift.steps.features import model_input
from nightshift.ml.modelling import feature_importance, model_input_columns, score_model, target_values

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def load_model(model_uri: str) -> Any:
    """A logged pipeline as the sklearn object itself (probabilities, feature names)."""
    return tracking.load_sklearn_model(model_uri)


def champion_metrics(spec: Pipeline, test: "pd.DataFrame") -> dict:
    """The champion's metrics on the held-out rows; an error is recorded, never hidden."""
    version = tracking.champion(spec.name)
    if version is None:
        return {"champion_version": None, "champion": None, "champion_error": None}
    try:
        model = load_model(f"models:/{spec.name}/{version.version}")
        values = score_model(spec, model, test, spec.metrics)
        return {"champion_version": version.version, "champion": values, "champion_error": None}
    except Exception as exc:  # a champion that cannot score these rows must not pass a regression gate
        log.warning("champion v%s could not be evaluated: %s", version.version, exc)
        return {"champion_version": version.version, "champion": None, "champion_error": f"{type(exc).__name__}: {exc}"}


def plot(spec: Pipeline, y_true: Any, scores: Any, importance: list[tuple[str, float]], out_dir: Path) -> list[Path]:
    """ROC and PR curves (binary) or residuals (regression), and feature importance, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        files.append(out_dir / name)

    if spec.target.task == "binary":
        fig, ax = plt.subplots(figsize=(5, 4))
        RocCurveDisplay.from_predictions(y_true, scores, ax=ax, name="challenger")
        save(fig, "roc_curve.png")
        fig, ax = plt.subplots(figsize=(5, 4))
        PrecisionRecallDisplay.from_predictions(y_true, scores, ax=ax, name="challenger")
        save(fig, "pr_curve.png")
    elif spec.target.task == "regression":
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(scores, y_true - scores, s=4, alpha=0.4)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
        save(fig, "residuals.png")
    if importance:
        top = importance[:20][::-1]
        fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(top))))
        ax.barh([n for n, _ in top], [v for _, v in top])
        ax.set(title="Feature importance")
        save(fig, "feature_importance.png")
    return files


def evaluate_once(spec: Pipeline, model_uri: str, prepared: dict, run_id: str, run_dir: str, data: dict,
                  validation: dict | None = None) -> dict:
    """The whole evaluation from ONE load of the challenger and ONE prediction of the held-out rows.

    Metrics, plots, slices and fairness, every gate, the HTML report and the reference profile that
    scoring's monitor compares with all use that prediction; `promote` reads the gates from the result.
    """
    import tempfile

    import mlflow

    from nightshift.steps import profile, report

    test = storage.read_parquet(prepared["test_uri"])
    model = load_model(model_uri)
    y = target_values(spec, test)
    scores = metrics.predict_scores(model, model_input(test, model_input_columns(model, spec)), spec.target.task)
    classes = getattr(model, "classes_", None)
    challenger = metrics.compute(spec.target.task, spec.metrics, y, scores, spec.evaluation.threshold, classes)
    result = {"challenger": challenger, "test_rows": len(test), **champion_metrics(spec, test)}
    importance = feature_importance(model)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in challenger.items() if v == v})
        if result["champion"]:
            mlflow.log_metrics({f"champion_test_{k}": v for k, v in result["champion"].items() if v == v})
        for png in plot(spec, y, scores, importance, Path(tmp)):
            mlflow.log_artifact(str(png), "evaluation")
            storage.put_file(png, f"{run_dir}/evaluate/{png.name}")
        mlflow.log_dict({"importance": importance[:50], **result}, "evaluation/summary.json")
    y_train = target_values(spec, storage.read_parquet(prepared["train_uri"], columns=[spec.target.column]))
    data = {**data, "test_rows": len(test)}
    html_text, assessed, gates = report.build(spec, model, test, y_train, result, data, validation,
                                              predicted=(y, scores, classes), importance=importance)
    uri = report.publish(html_text, {"evaluation": result, **assessed, "gates": gates, "data": data}, run_id, run_dir)
    reference = profile.save_profile(spec, test, profile.top_scores(spec, scores), run_id, run_dir)
    log.info("challenger %s; champion v%s %s", challenger, result["champion_version"], result["champion"])
    return {**result, **assessed, "gates": gates, "report_uri": uri, "reference": reference["reference"]}
