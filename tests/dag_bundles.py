"""Let dag.test() run DAGs that live outside dags/: Airflow 3 serializes a DAG from its bundle before running it.

`dag.test()` syncs the configured DAG bundles to the metadata DB and refuses a DAG it cannot find in one, so a
test that runs (or schedules) a DAG defined elsewhere adds that folder as a second LocalDagBundle for its duration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LOCAL = "airflow.dag_processing.bundles.local.LocalDagBundle"


def add_bundle(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> None:
    """Configure `dags-folder` (the project's dags/) plus `name` at `folder`, read by Airflow on its next sync."""
    bundles = [{"name": "dags-folder", "classpath": LOCAL, "kwargs": {}},
               {"name": name, "classpath": LOCAL, "kwargs": {"path": str(folder), "refresh_interval": 0}}]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
