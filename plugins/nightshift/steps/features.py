"""Features: split the snapshot into training and held-out rows, saved to the run folder.

The transformer itself (nightshift.ml.transformers) is fitted with the model on the training split only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nightshift.io import storage
from nightshift.ml.transformers import DerivedColumns, build_transformer, model_input  # noqa: F401 - used by steps
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd


def split(spec: Pipeline, rows: "pd.DataFrame", fraction: float | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Training and held-out rows: the latest rows by event time, or a seeded random share."""
    fraction = fraction or spec.training.split.test_fraction
    if spec.training.split.method == "time" and spec.source.event_time:
        ordered = rows.sort_values([spec.source.event_time, *spec.source.entity_key], kind="stable")
        cut = int(round(len(ordered) * (1 - fraction)))
        return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    stratify = rows[spec.target.column] if spec.target.task != "regression" else None
    train, test = train_test_split(rows, test_size=fraction, random_state=spec.training.seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def cap_training_rows(spec: Pipeline, train: "pd.DataFrame") -> "pd.DataFrame":
    """At most `training.max_rows` training rows, drawn with the run's seed and kept in their original order (a time
    split stays ordered for tuning). Classification draws per class in proportion, each class keeping at least
    `evaluation.min_class_rows`, so a rare positive class is still there to learn from."""
    import pandas as pd

    cap, seed = spec.training.max_rows, spec.training.seed
    if not cap or len(train) <= cap:
        return train
    if spec.target.task == "regression":
        return train.sample(n=cap, random_state=seed).sort_index().reset_index(drop=True)
    labels = train[spec.target.column]
    labelled = int(labels.notna().sum())
    parts = []
    for cls, count in labels.value_counts().items():
        take = min(int(count), max(spec.evaluation.min_class_rows, round(cap * int(count) / labelled)))
        parts.append(train[labels == cls].sample(n=take, random_state=seed))
    return pd.concat(parts).sort_index().reset_index(drop=True)


def window_text(window: dict | None) -> str:
    """`window 2025-07-05 .. 2026-01-02` (or `the training snapshot` when the window is unknown)."""
    if not window or not window.get("start") or not window.get("end"):
        return "the training snapshot"
    return f"window {str(window['start'])[:10]} .. {str(window['end'])[:10]}"


def prepare(spec: Pipeline, snapshot_uri: str, run_dir: str, window: dict | None = None) -> dict:
    """Split the snapshot and save both halves to the run folder; the fit happens with the model.

    A degenerate window (one class, too few rows of a class in either split, a constant regression label) fails here,
    before training, with ingest.IngestError naming the window and the counts."""
    from nightshift.ml.guards import degenerate_labels
    from nightshift.steps.ingest import IngestError

    rows = storage.read_parquet(snapshot_uri)
    train, test = split(spec, rows)
    problem = degenerate_labels(spec, train[spec.target.column].dropna(), test[spec.target.column].dropna())
    if problem:
        raise IngestError(f"{window_text(window)} ({len(rows):,} rows: {len(train):,} training, {len(test):,} held-out): {problem}")
    if spec.target.task != "regression":
        missing = set(test[spec.target.column].unique()) - set(train[spec.target.column].unique())
        if missing:
            raise ValueError(f"column '{spec.target.column}': classes {sorted(missing)} appear only in the held-out rows")
    available = len(train)
    train = cap_training_rows(spec, train)
    return {
        "train_uri": storage.write_parquet(train, f"{run_dir}/features/train.parquet"),
        "test_uri": storage.write_parquet(test, f"{run_dir}/features/test.parquet"),
        "train_rows": len(train),
        "train_rows_available": available,
        "test_rows": len(test),
        "feature_columns": spec.feature_columns,
    }
