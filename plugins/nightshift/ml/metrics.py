"""Metric names a spec may use, how to compute them, and which direction is better."""

from __future__ import annotations

from typing import Any

LOWER_IS_BETTER = {"log_loss", "brier", "rmse", "mae", "mape"}


def greater_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    return challenger - champion if greater_is_better(metric) else champion - challenger


def predict_scores(model: Any, frame: Any, task: str) -> Any:
    """Binary: positive-class probability; multiclass: the probability matrix; regression: values."""
    if task == "regression":
        return model.predict(frame)
    proba = model.predict_proba(frame)
    return proba[:, 1] if task == "binary" else proba


def compute(task: str, names: list[str], y_true: Any, scores: Any, threshold: float = 0.5, classes: Any = None) -> dict[str, float]:
    """The requested metrics for held-out labels and the model's scores."""
    import numpy as np
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    if task == "regression":
        funcs = {
            "rmse": lambda: m.root_mean_squared_error(y_true, scores),
            "mae": lambda: m.mean_absolute_error(y_true, scores),
            "r2": lambda: m.r2_score(y_true, scores),
            "mape": lambda: m.mean_absolute_percentage_error(y_true, scores),
        }
    elif task == "binary":
        labels = (scores >= threshold).astype(int)
        funcs = {
            "roc_auc": lambda: m.roc_auc_score(y_true, scores),
            "pr_auc": lambda: m.average_precision_score(y_true, scores),
            "log_loss": lambda: m.log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]),
            "brier": lambda: m.brier_score_loss(y_true, scores),
            "accuracy": lambda: m.accuracy_score(y_true, labels),
            "f1": lambda: m.f1_score(y_true, labels, zero_division=0),
            "precision": lambda: m.precision_score(y_true, labels, zero_division=0),
            "recall": lambda: m.recall_score(y_true, labels, zero_division=0),
        }
    else:
        predicted = np.asarray(classes)[np.argmax(scores, axis=1)]
        funcs = {
            "accuracy": lambda: m.accuracy_score(y_true, predicted),
            "f1_macro": lambda: m.f1_score(y_true, predicted, average="macro", zero_division=0),
            "log_loss": lambda: m.log_loss(y_true, scores, labels=classes),
            "roc_auc_ovr": lambda: m.roc_auc_score(y_true, scores, multi_class="ovr", labels=classes),
        }
    return {name: _safe(funcs[name]) for name in names}


def _safe(func) -> float:
    """A metric that is undefined on these rows (e.g. one class only) is NaN, not a crash."""
    try:
        return float(func())
    except ValueError:
        return float("nan")
