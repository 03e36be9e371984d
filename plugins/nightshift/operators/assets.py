"""Airflow Assets a pipeline produces; light enough for DAG parse time (only airflow.sdk)."""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(pipeline: str) -> Asset:
    """Updated by `<name>_score` when drift fails; `<name>_train` is scheduled on it when retrain_on_drift is set."""
    return Asset(uri=f"nightshift://{pipeline}/drift", name=f"{pipeline}_drift")
