"""Features: split the snapshot into training and held-out rows, saved to the run folder.

The transformer itself (nightshift.ml.transformers) is fitted with the model on the training split only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nightshift.io import storage
from nightshift.ml.transformers import DerivedColumns, build_transformer, model_input  # noqa: F401 - used by steps
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def split_positions(spec: Pipeline, columns: "pd.DataFrame", fraction: float | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """Row positions of the training and held-out rows: the latest by (event time, key), or a seeded random share
    (stratified by class). `columns` needs only the event time, the entity key and the target, so a large snapshot
    is split without becoming one pandas frame."""
    import numpy as np

    fraction = fraction or spec.training.split.test_fraction
    if spec.training.split.method == "time" and spec.source.event_time:
        import pyarrow as pa
        import pyarrow.compute as pc

        by = [spec.source.event_time, *(k for k in spec.source.entity_key if k != spec.source.event_time)]
        keys = pa.Table.from_pandas(columns[by], preserve_index=False)
        order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in by]).to_numpy()  # stable, nulls last
        cut = int(round(len(order) * (1 - fraction)))
        return order[:cut], order[cut:]
    from sklearn.model_selection import train_test_split

    stratify = columns[spec.target.column].to_numpy() if spec.target.task != "regression" else None
    train, test = train_test_split(np.arange(len(columns)), test_size=fraction, random_state=spec.training.seed, stratify=stratify)
    return train, test


def split(spec: Pipeline, rows: "pd.DataFrame", fraction: float | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Training and held-out rows of a frame (tuning splits the training rows again the same way)."""
    train, test = split_positions(spec, rows, fraction)
    return rows.take(train).reset_index(drop=True), rows.take(test).reset_index(drop=True)


def cap_positions(spec: Pipeline, labels: "pd.Series") -> "np.ndarray | None":
    """Positions (ascending) of at most `training.max_rows` training rows, drawn with the run's seed; None when there
    is no cap or the rows fit under it. Classification draws per class in proportion, each class keeping at least
    `evaluation.min_class_rows`, so a rare positive class is still there to learn from. Ascending positions keep a
    time split ordered for tuning."""
    import numpy as np

    cap, seed = spec.training.max_rows, spec.training.seed
    if not cap or len(labels) <= cap:
        return None
    if spec.target.task == "regression":
        return np.sort(np.random.RandomState(seed).choice(len(labels), size=cap, replace=False))
    values = labels.to_numpy()
    labelled = int(labels.notna().sum())
    chosen = []
    for cls, count in labels.value_counts().items():
        members = np.flatnonzero(values == cls)
        take = min(int(count), max(spec.evaluation.min_class_rows, round(cap * int(count) / labelled)))
        chosen.append(members[np.random.RandomState(seed).choice(len(members), size=take, replace=False)])
    return np.sort(np.concatenate(chosen))


def window_text(window: dict | None) -> str:
    """`window 2025-07-05 .. 2026-01-02` (or `the training snapshot` when the window is unknown)."""
    if not window or not window.get("start") or not window.get("end"):
        return "the training snapshot"
    return f"window {str(window['start'])[:10]} .. {str(window['end'])[:10]}"


def prepare(spec: Pipeline, snapshot_uri: str, run_dir: str, window: dict | None = None) -> dict:
    """Split the snapshot and save both halves to the run folder; the fit happens with the model.

    The rows stay an Arrow table: only the event time, key and target become pandas (to split), and each half is
    taken from the table and written, so a 5M-row window costs the table and one half, not three pandas copies.
    A degenerate window (one class, too few rows of a class in either split, a constant regression label) fails here,
    before training, with ingest.IngestError naming the window and the counts."""
    from nightshift.ml.guards import degenerate_labels
    from nightshift.steps.ingest import IngestError

    table = storage.read_table(snapshot_uri)
    target = spec.target.column
    needed = [c for c in dict.fromkeys([spec.source.event_time, *spec.source.entity_key, target]) if c and c in table.column_names]
    columns = table.select(needed).to_pandas()
    train_pos, test_pos = split_positions(spec, columns)
    labels = columns[target]
    y_train, y_test = labels.take(train_pos).reset_index(drop=True), labels.take(test_pos).reset_index(drop=True)
    problem = degenerate_labels(spec, y_train.dropna(), y_test.dropna())
    if problem:
        raise IngestError(f"{window_text(window)} ({len(columns):,} rows: {len(train_pos):,} training, {len(test_pos):,} held-out): "
                          f"{problem}")
    if spec.target.task != "regression":
        missing = set(y_test.unique()) - set(y_train.unique())
        if missing:
            raise ValueError(f"column '{target}': classes {sorted(missing)} appear only in the held-out rows")
    available = len(train_pos)
    keep = cap_positions(spec, y_train)
    if keep is not None:
        train_pos = train_pos[keep]
    return {
        "train_uri": storage.write_table(table.take(train_pos), f"{run_dir}/features/train.parquet"),
        "test_uri": storage.write_table(table.take(test_pos), f"{run_dir}/features/test.parquet"),
        "train_rows": len(train_pos),
        "train_rows_available": available,
        "test_rows": len(test_pos),
        "feature_columns": spec.feature_columns,
    }
