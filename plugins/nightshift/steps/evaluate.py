"""Evaluate: the challenger and the current champion on the SAME held-out rows.

Like TFX's evaluator, a candidate is judged against thresholds and against the baseline model on
identical data. Plots go to the run folder and to MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.ml import guards, metrics
from nightshift.spec import Pipeline
from nightshift.steps.features import model_input
from nightshift.ml.modelling import feature_importance, model_input_columns, score_model, target_values

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def load_model(model_uri: str) -> Any:
    """A logged pipeline as the sklearn object itself (probabilities, feature names)."""
    return tracking.load_sklearn_model(model_uri)


def data_times(spec: Pipeline, test: "pd.DataFrame", window: dict | None) -> dict:
    """Where this run's data ends, where its held-out rows start, and the latest row its model could be fitted on.

    With a time split every training row is at or before the first held-out row; with a random split the model
    may have seen any row of its window. Without an event time nothing is known (all None)."""
    import pandas as pd

    window_end = (window or {}).get("end")
    column = spec.source.event_time
    if not window_end or not column or column not in test.columns or test.empty:
        return {"window_end": window_end, "heldout_start": None, "fit_end": window_end}
    times = pd.to_datetime(test[column], utc=True)
    heldout_start = tracking.moment(times.min().to_pydatetime()).isoformat()
    fit_end = heldout_start if spec.training.split.method == "time" else window_end
    return {"window_end": window_end, "heldout_start": heldout_start, "fit_end": fit_end}


def champion_metrics(spec: Pipeline, test: "pd.DataFrame", window: dict | None = None) -> dict:
    """The metrics, on the held-out rows, of the version that was champion as of this run's window end; an error is
    recorded, never hidden.

    For a run whose window ends at or after the current champion's, that is the current champion. A backfill (older
    window) is compared with the latest champion in the history whose window ended by then (none: nothing to regress
    against). A version fitted on rows later than this run's first held-out row has seen them: `not_comparable`."""
    times = data_times(spec, test, window)
    current = tracking.champion(spec.name)
    result = {"champion_version": None, "champion": None, "champion_error": None, "not_comparable": None,
              "current_champion_version": str(current.version) if current is not None else None, **times}
    if current is None:
        return result
    chosen = tracking.champion_as_of(spec.name, times["window_end"], current) if times["window_end"] else str(current.version)
    if chosen is None:
        return result
    compared = tracking.version_window(spec.name, current if chosen == str(current.version) else chosen)
    result.update(champion_version=chosen, champion_window_end=compared["window_end"], champion_fit_end=compared["fit_end"])
    fitted, first = tracking.moment(compared["fit_end"]), tracking.moment(times["heldout_start"])
    if fitted is not None and first is not None and fitted > first:
        reason = (f"champion v{chosen} was fitted on rows up to {fitted:%Y-%m-%d %H:%M}, after this run's first held-out row "
                  f"({first:%Y-%m-%d %H:%M}): it has seen the rows it would be judged on")
        log.warning("not comparable: %s", reason)
        return {**result, "not_comparable": reason, "champion_error": f"not comparable: {reason}"}
    try:
        model = load_model(f"models:/{spec.name}/{chosen}")
        values = score_model(spec, model, test, spec.metrics)
        return {**result, "champion": values}
    except Exception as exc:  # a champion that cannot score these rows must not pass a regression gate
        log.warning("champion v%s could not be evaluated: %s", chosen, exc)
        return {**result, "champion_error": f"{type(exc).__name__}: {exc}"}


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


def guard_results(spec: Pipeline, train: "pd.DataFrame", test: "pd.DataFrame", y_train: Any, y: Any, result: dict) -> dict:
    """Leak scan, this window's label stats, the label check against the champion, and the alerts they raise
    (nightshift.ml.guards; promote's gates read them from the evaluation)."""
    import numpy as np

    stats = guards.label_stats(spec.target.task, np.concatenate([np.asarray(y_train), np.asarray(y)]))
    version, recorded, then = result.get("champion_version"), {}, {}
    if version is not None and result.get("champion"):
        record = tracking.version_record(spec.name, version)
        recorded, tags = record["metrics"], record["tags"]
        then = {key: float(tags[tag]) for key, tag in (("prevalence", "nightshift.label_prevalence"), ("mean", "nightshift.label_mean"),
                                                       ("std", "nightshift.label_std")) if tags.get(tag)}
    scan = guards.leak_scan(spec, train, test, y_train, y)
    check = guards.label_check(spec, version if result.get("champion") else None, recorded, result.get("champion"), then, stats)
    out = {"leak_scan": scan, "label_stats": stats, "label_check": check}
    out["alerts"] = guards.alerts(spec, out)
    if scan["flagged"]:
        log.warning("suspected target leak: %s", guards.leak_text(scan))
    for text in out["alerts"]:
        log.warning("%s", text)
    return out


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
    result = {"challenger": challenger, "test_rows": len(test), **champion_metrics(spec, test, data.get("window"))}
    if spec.target.task == "binary":  # can the scores stand for probabilities? (estimated performance after deployment)
        from nightshift.ml.performance import calibration

        result["calibration"] = {**calibration(y, scores), "max_ece": spec.monitoring.performance.max_ece}
    importance = feature_importance(model)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in challenger.items() if v == v})
        if result.get("calibration") and result["calibration"]["ece"] == result["calibration"]["ece"]:
            mlflow.log_metric("calibration_ece", result["calibration"]["ece"])
        if result["champion"]:
            mlflow.log_metrics({f"champion_test_{k}": v for k, v in result["champion"].items() if v == v})
        for png in plot(spec, y, scores, importance, Path(tmp)):
            mlflow.log_artifact(str(png), "evaluation")
            storage.put_file(png, f"{run_dir}/evaluate/{png.name}")
        mlflow.log_dict({"importance": importance[:50], **result}, "evaluation/summary.json")
    train_columns = list(dict.fromkeys([spec.target.column, *spec.features.categorical.columns]))
    train = storage.read_parquet(prepared["train_uri"], columns=train_columns)
    y_train = target_values(spec, train)
    result.update(guard_results(spec, train, test, y_train, y, result))
    data = {**data, "test_rows": len(test)}
    html_text, assessed, gates = report.build(spec, model, test, y_train, result, data, validation,
                                              predicted=(y, scores, classes), importance=importance)
    uri = report.publish(html_text, {"evaluation": result, **assessed, "gates": gates, "data": data}, run_id, run_dir)
    reference = profile.save_profile(spec, test, profile.top_scores(spec, scores), run_id, run_dir)
    log.info("challenger %s; champion v%s %s", challenger, result["champion_version"], result["champion"])
    return {**result, **assessed, "gates": gates, "report_uri": uri, "reference": reference["reference"]}
