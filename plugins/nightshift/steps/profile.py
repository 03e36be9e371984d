"""Reference profile: what the model's inputs and scores looked like when it was trained.

Saved with each model version (MLflow artifact `reference/profile.json` of the training run) so the
scoring DAG's monitor compares every partition with the exact population that version was judged
on. The profile is built from the held-out split: the latest rows of the window (time split) and
the only rows whose scores are out-of-sample, so the score distribution is the one production sees.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.ml import drift, metrics
from nightshift.spec import Pipeline
from nightshift.steps import features

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
ARTIFACT_DIR = "reference"
ARTIFACT = f"{ARTIFACT_DIR}/profile.json"
SCORE = "__score__"
SAMPLE_SIZE = 1000
NUMERIC_TYPES = ("integer", "float", "boolean")


def monitored_columns(spec: Pipeline) -> dict[str, str]:
    """Raw input columns the model reads, by kind; datetime inputs are left out (time always 'drifts')."""
    categorical = list(spec.features.categorical.columns)
    kinds = {c: "categorical" for c in categorical}
    for column in spec.feature_columns:
        if column not in kinds and spec.columns[column].type in NUMERIC_TYPES:
            kinds[column] = "numeric"
    return kinds


def as_categories(values: "pd.Series") -> "pd.Series":
    """Categories as text (nulls stay null), so integer and string categories compare alike."""
    return values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))


def numeric_profile(values: Any, bins: int, seed: int = 0) -> dict:
    """Quantile bins with their counts, the null rate, and a sorted sample for the KS statistic."""
    import numpy as np

    array = np.asarray(values, dtype="float64")
    present = array[~np.isnan(array)]
    edges = drift.quantile_edges(present, bins)
    sample = present if present.size <= SAMPLE_SIZE else np.random.default_rng(seed).choice(present, SAMPLE_SIZE, replace=False)
    return {
        "kind": "numeric", "rows": int(array.size), "null_rate": _rate(array.size - present.size, array.size),
        "edges": edges, "counts": drift.bin_counts(present, edges), "sample": np.sort(sample).tolist(),
    }


def categorical_profile(values: "pd.Series") -> dict:
    """Category counts and the null rate."""
    text = as_categories(values)
    counts = text.dropna().value_counts().sort_index()
    return {"kind": "categorical", "rows": int(len(text)), "null_rate": _rate(int(text.isna().sum()), len(text)),
            "counts": {str(k): int(v) for k, v in counts.items()}}


def _rate(part: int, total: int) -> float:
    return float(part) / total if total else 0.0


def score_values(spec: Pipeline, model: Any, frame: "pd.DataFrame") -> Any:
    """The SCORE column as scoring writes it: probability, value, or the top class's probability."""
    from nightshift.steps.train import model_input_columns

    scores = metrics.predict_scores(model, features.model_input(frame, model_input_columns(model, spec)), spec.target.task)
    return scores.max(axis=1) if spec.target.task == "multiclass" else scores


def build_profile(spec: Pipeline, frame: "pd.DataFrame", scores: Any) -> dict:
    """Every monitored column's profile plus the score distribution's."""
    bins = spec.monitoring.drift.bins
    columns = {
        name: numeric_profile(frame[name], bins) if kind == "numeric" else categorical_profile(frame[name])
        for name, kind in monitored_columns(spec).items()
        if name in frame.columns
    }
    return {"format": 1, "pipeline": spec.name, "rows": int(len(frame)), "bins": bins, "source": "held-out split",
            "columns": columns, "score": numeric_profile(scores, bins)}


def save_reference(spec: Pipeline, model_uri: str, test_uri: str, run_id: str, run_dir: str) -> dict:
    """Profile the held-out rows with the trained model; log it to the training run and the run folder."""
    import tempfile

    from nightshift.steps.evaluate import load_model

    test = storage.read_parquet(test_uri)
    profile = build_profile(spec, test, score_values(spec, load_model(model_uri), test))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(json.dumps(profile))
        tracking.client().log_artifact(run_id, str(path), ARTIFACT_DIR)
        storage.put_file(path, f"{run_dir}/{ARTIFACT}")
    log.info("reference profile of %d held-out rows (%d columns + score) saved to run %s", len(test), len(profile["columns"]), run_id)
    return {"reference": f"runs:/{run_id}/{ARTIFACT}", "rows": len(test)}


def load_reference(run_id: str) -> dict | None:
    """The profile saved with a model's training run; None for versions trained before profiles existed."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.client()
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT}")
    except (MlflowException, OSError) as exc:
        log.warning("run %s has no %s (%s): trained before reference profiles existed?", run_id, ARTIFACT, exc)
        return None
