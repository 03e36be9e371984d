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
from nightshift.ml import drift
from nightshift.spec import Pipeline

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


def partition_keys(spec: Pipeline, frame: "pd.DataFrame") -> "pd.Series | None":
    """Each row's partition as scoring assigns it (the UTC date of source.event_time); None without event times."""
    import pandas as pd

    column = spec.source.event_time
    if not column or column not in frame.columns:
        return None
    values = frame[column]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC")
    return pd.to_datetime(values).dt.date


def value_key(kind: str, value: Any) -> str:
    """How a column's value is named in the profile: categories as text, numbers as their float's repr."""
    return str(value) if kind == "categorical" else repr(float(value))


def within_partition(kind: str, values: "pd.Series", partitions: "pd.Series | None", share: float, alpha: float) -> dict:
    """How the column behaves inside one partition: is one value (nearly) all of it, more often than chance explains?

    `partitions` (None: unknown) for each row. Only partitions with 2+ non-null values count. `values` maps each
    partition's main value to how many partitions it was the main value of (at most 200 kept); `range` is the
    column's reference range (numeric).
    """
    import numpy as np
    import pandas as pd

    keyed = as_categories(values) if kind == "categorical" else pd.to_numeric(values, errors="coerce")
    numeric = keyed.dropna().astype("float64") if kind == "numeric" else None
    out = {"range": None if numeric is None or numeric.empty else [float(numeric.min()), float(numeric.max())]}
    unknown = {"partitions": 0, "constant": 0, "chance": None, "constant_within_partition": False, "min_top_share": None, "values": {}}
    if partitions is None:
        return {**out, **unknown, "why": "the held-out rows have no event times"}
    frame = pd.DataFrame({"p": np.asarray(partitions, dtype=object), "v": keyed.to_numpy(dtype=object)}).dropna()
    counts = frame.groupby(["p", "v"], sort=False).size()
    sizes = counts.groupby(level=0).sum()
    sizes = sizes[sizes >= 2]
    counts = counts[counts.index.get_level_values(0).isin(sizes.index)]
    if sizes.empty:
        return {**out, **unknown, "why": "no reference partition has 2 or more rows"}
    top = counts.groupby(level=0).max().reindex(sizes.index)
    main = counts.groupby(level=0).idxmax().reindex(sizes.index).map(lambda pair: value_key(kind, pair[1]))
    top_share = top / sizes
    constant = int((top_share >= share - 1e-12).sum())
    overall = counts.groupby(level=1).sum().sort_values(ascending=False).head(100) / int(sizes.sum())  # shares in those partitions
    chance = drift.chance_constant(overall.to_numpy(), sizes.to_numpy(), share)
    return {**out, "partitions": int(len(sizes)), "constant": constant, "chance": chance, "min_top_share": float(top_share.min()),
            "constant_within_partition": drift.constant_within_partitions(constant, int(len(sizes)), chance, alpha),
            "values": {str(k): int(v) for k, v in main.value_counts().head(200).items()}, "why": None}


def build_profile(spec: Pipeline, frame: "pd.DataFrame", scores: Any, partitions: Any = None) -> dict:
    """Every monitored column's profile (with its within-partition behaviour) plus the score distribution's.

    `partitions`: each row's partition; by default the UTC date of `source.event_time`, as scoring assigns it.
    """
    import pandas as pd

    config = spec.monitoring.drift
    bins = config.bins
    keys = partition_keys(spec, frame) if partitions is None else pd.Series(partitions, index=frame.index)
    columns = {
        name: numeric_profile(frame[name], bins) if kind == "numeric" else categorical_profile(frame[name])
        for name, kind in monitored_columns(spec).items()
        if name in frame.columns
    }
    for name, column in columns.items():
        column["partition"] = within_partition(column["kind"], frame[name], keys, config.constant_share, config.significance)
    return {"format": 2, "pipeline": spec.name, "rows": int(len(frame)), "bins": bins, "source": "held-out split",
            "partitions": None if keys is None else int(keys.nunique()), "constant_share": config.constant_share,
            "columns": columns, "score": numeric_profile(scores, bins)}


def top_scores(spec: Pipeline, scores: Any) -> Any:
    """The SCORE column as scoring writes it, from the model's scores: the top class's probability for multiclass."""
    return scores.max(axis=1) if spec.target.task == "multiclass" else scores


def save_profile(spec: Pipeline, frame: "pd.DataFrame", scores: Any, run_id: str, run_dir: str) -> dict:
    """Profile the held-out rows and the scores they got; log it to the training run and the run folder."""
    import tempfile

    profile = build_profile(spec, frame, scores)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(json.dumps(profile))
        tracking.client().log_artifact(run_id, str(path), ARTIFACT_DIR)
        storage.put_file(path, f"{run_dir}/{ARTIFACT}")
    log.info("reference profile of %d held-out rows (%d columns + score) saved to run %s", len(frame), len(profile["columns"]), run_id)
    return {"reference": f"runs:/{run_id}/{ARTIFACT}", "rows": len(frame)}


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
