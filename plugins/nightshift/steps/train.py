"""Train: fit the feature transformer and the estimator together on the training split only.

The result is ONE scikit-learn Pipeline (features + model), logged to MLflow with its signature,
the data window, row counts, data hash, spec hash and git commit, so any version can be traced
back to the data and code that made it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from nightshift.io import storage, tracking
from nightshift.ml import metrics
from nightshift.ml.modelling import fit_pipeline, make_estimator, model_input_columns, score_model, target_values  # noqa: F401
from nightshift.spec import Pipeline
from nightshift.steps import features

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
MODEL_ARTIFACT = "model"


def tune(spec: Pipeline, train: "pd.DataFrame") -> tuple[dict, list[dict]]:
    """Random search within the trial budget, scored on the latest (or a random) fifth of the training rows."""
    from sklearn.model_selection import ParameterSampler

    tuning = spec.model.tuning
    metric = tuning.metric or spec.metrics[0]
    fit_rows, check_rows = features.split(spec, train, fraction=0.2)
    trials = []
    for params in ParameterSampler(tuning.space, n_iter=tuning.trials, random_state=spec.training.seed):
        model = fit_pipeline(spec, fit_rows, params)
        value = score_model(spec, model, check_rows, [metric])[metric]
        trials.append({"params": params, metric: value})
        log.info("tuning trial %d: %s -> %s=%.5f", len(trials), params, metric, value)
    finite = [t for t in trials if t[metric] == t[metric]]
    if not finite:
        raise ValueError(f"tuning: every trial gave an undefined {metric}")
    best = (max if metrics.greater_is_better(metric) else min)(finite, key=lambda t: t[metric])
    return best["params"], trials


MODEL_PACKAGES = ("scikit-learn", "xgboost", "skops", "pandas", "numpy", "scipy", "pyarrow")


def model_requirements() -> list[str]:
    """The pinned packages a logged model needs, read from this environment. Declaring them skips MLflow's
    requirement inference, which re-imports the model in a subprocess (4-10 s per training on 2 cores)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in MODEL_PACKAGES:
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return found


def train(spec: Pipeline, train_uri: str, run_id: str, lineage: dict, rows_available: int | None = None) -> dict:
    """Fit (after optional tuning), log params, lineage and the model to the DAG run's MLflow run.

    `rows_available` is the training split's size before `training.max_rows` sampled it (None: not sampled)."""
    import mlflow
    from mlflow.models import infer_signature

    tracking.client()
    rows = storage.read_parquet(train_uri)
    best_params, trials = tune(spec, rows) if spec.model.tuning else ({}, [])
    model = fit_pipeline(spec, rows, best_params)
    sample = features.model_input(rows.head(5), spec.feature_columns)
    signature = infer_signature(sample, metrics.predict_scores(model, sample, spec.target.task))
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({**{f"model.{k}": v for k, v in {**spec.model.params, **best_params}.items()}, "flavor": spec.model.flavor,
                           "training.max_rows": spec.training.max_rows, "train_rows": len(rows),
                           "train_rows_available": rows_available or len(rows)})
        mlflow.set_tags({f"nightshift.{k}": str(v) for k, v in lineage.items() if v is not None})
        if trials:
            mlflow.log_dict({"trials": trials, "best": best_params}, "tuning/trials.json")
        info = mlflow.sklearn.log_model(
            model, name=MODEL_ARTIFACT, signature=signature, input_example=sample, serialization_format="skops",
            skops_trusted_types=tracking.trusted_model_types(),  # loading checks against our own list, not this copy
            pip_requirements=model_requirements(),
        )
    log.info("trained %s on %d rows; model %s", spec.model.estimator or "xgboost", len(rows), info.model_uri)
    return {"model_uri": info.model_uri, "train_rows": len(rows), "train_rows_available": rows_available or len(rows),
            "best_params": json.loads(json.dumps(best_params, default=str))}
