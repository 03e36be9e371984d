"""Modelling helpers: the label as the estimator sees it, the estimator, the fitted pipeline, its metrics.

Plain scikit-learn / XGBoost: training, evaluation, profiling and scoring share these so that every
step reads a model and its inputs the same way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nightshift.ml import metrics, transformers
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd


def target_values(spec: Pipeline, frame: "pd.DataFrame") -> Any:
    """The label as the estimator sees it: 0/1 for binary, numbers for regression."""
    y = frame[spec.target.column]
    if spec.target.task == "binary":
        return (y.astype(str) == str(spec.target.positive_class)).astype(int).to_numpy()
    if spec.target.task == "regression":
        return y.astype("float64").to_numpy()
    return y.to_numpy()


def make_estimator(spec: Pipeline, params: dict | None = None) -> Any:
    """XGBoost, or the scikit-learn estimator the spec names, with the spec's parameters."""
    params = {**spec.model.params, **(params or {})}
    if spec.model.flavor == "xgboost":
        import xgboost as xgb

        defaults = {"random_state": spec.training.seed, "n_jobs": 2, "tree_method": "hist"}
        if spec.target.task == "regression":
            return xgb.XGBRegressor(**{**defaults, **params})
        return xgb.XGBClassifier(**{**defaults, "eval_metric": "logloss", **params})
    module_name, _, class_name = spec.model.estimator.rpartition(".")
    estimator_class = getattr(importlib.import_module(module_name), class_name)
    if "random_state" in estimator_class().get_params():
        params.setdefault("random_state", spec.training.seed)
    return estimator_class(**params)


def fit_pipeline(spec: Pipeline, train: "pd.DataFrame", params: dict | None = None) -> Any:
    """Transformer + estimator as one Pipeline, fitted on the given rows only."""
    from sklearn.pipeline import Pipeline as SkPipeline

    model = SkPipeline([("features", transformers.build_transformer(spec)), ("model", make_estimator(spec, params))])
    model.fit(transformers.model_input(train, spec.feature_columns), target_values(spec, train))
    return model


def score_model(spec: Pipeline, model: Any, frame: "pd.DataFrame", names: list[str]) -> dict[str, float]:
    """Spec metrics of a fitted pipeline on labelled rows."""
    scores = metrics.predict_scores(model, transformers.model_input(frame, model_input_columns(model, spec)), spec.target.task)
    classes = getattr(model, "classes_", None)
    return metrics.compute(spec.target.task, names, target_values(spec, frame), scores, spec.evaluation.threshold, classes)


def model_input_columns(model: Any, spec: Pipeline) -> list[str]:
    """The raw columns a fitted pipeline reads (a champion may predate a spec change)."""
    names = getattr(model, "feature_names_in_", None)
    return list(names) if names is not None else spec.feature_columns


def feature_importance(model: Any) -> list[tuple[str, float]]:
    """(feature, importance) from the fitted estimator, largest first; empty when it has none."""
    import numpy as np

    estimator = model.named_steps["model"]
    values = getattr(estimator, "feature_importances_", None)
    if values is None and hasattr(estimator, "coef_"):
        values = np.abs(np.ravel(estimator.coef_)) if np.ndim(estimator.coef_) == 1 else np.abs(estimator.coef_).mean(axis=0)
    if values is None:
        return []
    names = model.named_steps["features"].named_steps["columns"].get_feature_names_out()
    return sorted(zip(map(str, names), map(float, values)), key=lambda pair: -pair[1])
