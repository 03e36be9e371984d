"""Airflow Assets a pipeline produces; light enough for DAG parse time (only airflow.sdk).

- `<name>_scores`: updated by `publish` with the partition dates, model version and rows as the
  event's extra, so a downstream DAG can be scheduled on fresh scores.
- `<name>_drift`: updated by `drift_event` when drift fails; `<name>_train` is scheduled on it with
  `monitoring.retrain_on_drift`.
"""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(pipeline: str) -> Asset:
    return Asset(uri=f"nightshift://{pipeline}/drift", name=f"{pipeline}_drift")


def scores_asset(pipeline: str) -> Asset:
    return Asset(uri=f"nightshift://{pipeline}/scores", name=f"{pipeline}_scores")


def degradation_asset(pipeline: str) -> Asset:
    """Updated by `performance_event` when realized performance degrades; `<name>_train` is scheduled on it with
    `monitoring.performance.retrain_on_degradation`."""
    return Asset(uri=f"nightshift://{pipeline}/degradation", name=f"{pipeline}_degradation")
