"""The evaluation report's plots, as base64 PNGs keyed by title (matplotlib, Agg backend)."""

from __future__ import annotations

import base64
import io
from typing import Any

from nightshift.spec import Pipeline


def png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def axes(width: float = 4.5, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def confusion_figure(y: Any, scores: Any, threshold: float, labels: tuple[str, str] = ("0", "1")) -> Any:
    """The binary confusion matrix at `threshold`, its axes labelled with the data's (negative, positive) labels."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = axes()
    ConfusionMatrixDisplay.from_predictions(y, (scores >= threshold).astype(int), labels=[0, 1], display_labels=list(labels),
                                            ax=ax, colorbar=False)
    ax.set_title(f"threshold {threshold}")
    return fig


def binary_plots(y: Any, scores: Any, threshold: float, labels: tuple[str, str] = ("0", "1")) -> dict[str, str]:
    """ROC, precision-recall, calibration and the confusion matrix at the spec's threshold."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    out = {}
    fig, ax = axes()
    RocCurveDisplay.from_predictions(y, scores, ax=ax, name="challenger")
    out["ROC curve"] = png(fig)
    fig, ax = axes()
    PrecisionRecallDisplay.from_predictions(y, scores, ax=ax, name="challenger")
    out["Precision-recall curve"] = png(fig)
    fig, ax = axes()
    CalibrationDisplay.from_predictions(y, scores, n_bins=10, strategy="quantile", ax=ax, name="challenger")
    out["Calibration (quantile bins)"] = png(fig)
    out[f"Confusion matrix at {threshold}"] = png(confusion_figure(y, scores, threshold, labels))
    return out


def multiclass_plots(y: Any, scores: Any, classes: Any) -> dict[str, str]:
    """One-vs-rest ROC per class and the confusion matrix of the most probable class."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    classes = np.asarray(classes)
    y = np.asarray(y)
    out = {}
    fig, ax = axes()
    for i, label in enumerate(classes):
        if 0 < (y == label).sum() < len(y):
            RocCurveDisplay.from_predictions(y == label, scores[:, i], ax=ax, name=str(label))
    ax.set_title("one-vs-rest")
    out["ROC curves (one-vs-rest)"] = png(fig)
    fig, ax = axes(5, 4.2)
    ConfusionMatrixDisplay.from_predictions(y, classes[np.argmax(scores, axis=1)], labels=classes, ax=ax, colorbar=False)
    out["Confusion matrix (most probable class)"] = png(fig)
    return out


def regression_plots(y: Any, predicted: Any) -> dict[str, str]:
    """Residuals against predictions, and predicted against actual with the identity line."""
    import numpy as np

    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
    out = {}
    fig, ax = axes()
    ax.scatter(predicted, y - predicted, s=5, alpha=0.4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
    out["Residuals"] = png(fig)
    fig, ax = axes()
    ax.scatter(y, predicted, s=5, alpha=0.4)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    out["Predicted vs actual"] = png(fig)
    return out


def importance_plot(importance: list[tuple[str, float]], top: int = 20) -> dict[str, str]:
    if not importance:
        return {}
    shown = importance[:top][::-1]
    fig, ax = axes(6, max(3.0, 0.28 * len(shown)))
    ax.barh([n for n, _ in shown], [v for _, v in shown])
    ax.set(title=f"Feature importance (top {len(shown)})")
    return {"Feature importance": png(fig)}


def plots(spec: Pipeline, y: Any, scores: Any, classes: Any, importance: list[tuple[str, float]],
          labels: tuple[str, str] = ("0", "1")) -> dict[str, str]:
    """Every plot of the report for the spec's task, as base64 PNGs keyed by title."""
    task = spec.target.task
    if task == "binary":
        found = binary_plots(y, scores, spec.evaluation.threshold, labels)
    elif task == "multiclass":
        found = multiclass_plots(y, scores, classes)
    else:
        found = regression_plots(y, scores)
    return {**found, **importance_plot(importance)}
