"""OpenLineage: a training and a scoring run (dag.test) with the provider's listener and the client's file transport.

The COMPLETE events must name what the runs read and wrote: the landing partitions, the registered model version
(`models/<name>/<version>`) and the warehouse table with its row count.

How the listener is enabled: the OpenLineage provider's plugin decides at import time whether to register its
listener (only when a transport is configured), and the plugin list is cached for the process. In a test session
Airflow's plugins are loaded before this module can configure a transport, so the fixture configures the file
transport the documented way (`[openlineage] transport`) and registers the provider's own listener on the Task SDK
listener manager that dag.test's in-process task runner calls, removing it afterwards. Nothing else is stubbed:
events go through the listener, the extractor (our operators' `get_openlineage_facets_on_complete`), the adapter
and the OpenLineage client to the file.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from nightshift.io import tracking
from nightshift.render import build_score_dag, build_train_dag
from nightshift.spec import find_spec

pytestmark = pytest.mark.e2e
TRAIN_AT = datetime(2026, 2, 1, tzinfo=timezone.utc)


@pytest.fixture
def lineage_file(tmp_path, monkeypatch):
    """OpenLineage events of this test, one JSON document a line."""
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener, get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager

    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "nightshift-test")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    manager = get_listener_manager()
    added = None
    if not any(isinstance(p, OpenLineageListener) for p in manager.pm.get_plugins()):
        added = get_openlineage_listener()
        manager.add_listener(added)
    yield path
    if added is not None:
        manager.pm.unregister(added)


def completed(path) -> dict[str, dict]:
    """COMPLETE run events by job name (`<dag_id>.<task_id>`); mapped tasks keep a list."""
    events: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE":
            events.setdefault(event["job"]["name"], []).append(event)
    return events


def names(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def test_train_and_score_runs_emit_partitions_model_version_and_table(airflow_db, local_state, credit_data, lineage_file):
    spec = find_spec("credit_default")
    train = build_train_dag(spec).test(logical_date=TRAIN_AT)
    assert train.state == "success"
    events = completed(lineage_file)

    # ingest read exactly the partitions of the training window, each by its file under the landing folder
    run = tracking.client().get_run(tracking.client().get_model_version("credit_default", "1").run_id)
    start = datetime.fromisoformat(run.data.tags["nightshift.window_start"]).date()
    end = datetime.fromisoformat(run.data.tags["nightshift.window_end"]).date()
    read = names(events["credit_default_train.ingest"][0]["inputs"])
    assert read and {ns for ns, _ in read} == {"file"}
    assert all(name.startswith(f"{credit_data}/dt=") and name.endswith(".parquet") for _, name in read)
    days = {date.fromisoformat(name.split("dt=")[1][:10]) for _, name in read}
    assert days == {start + timedelta(days=i) for i in range((end - start).days)}  # [window_start, window_end), one file a day
    snapshot = events["credit_default_train.ingest"][0]["outputs"][0]
    assert snapshot["facets"]["outputStatistics"]["rowCount"] == int(run.data.params["rows_in_window"])

    # promote wrote the registered version, named under the tracking URI
    promoted = names(events["credit_default_train.promote"][0]["outputs"])
    assert promoted == {(os.environ["MLFLOW_TRACKING_URI"], "models/credit_default/1")}

    score = build_score_dag(spec).test(logical_date=TRAIN_AT + timedelta(days=2))
    assert score.state == "success"
    events = completed(lineage_file)
    day = score.data_interval_start.date().isoformat()
    assert {n for _, n in names(events["credit_default_score.ingest"][0]["inputs"])} == {f"{credit_data}/dt={day}/part-0.parquet"}

    published = events["credit_default_score.publish"][0]
    assert "models/credit_default/1" in {n for _, n in names(published["inputs"])}
    (table,) = published["outputs"]
    assert table["name"] == spec.scoring.output_table and table["namespace"].startswith("duckdb://")
    with duckdb.connect(str(local_state / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT COUNT(*) FROM {spec.scoring.output_table}").fetchone()[0]
    assert rows > 0 and table["facets"]["outputStatistics"]["rowCount"] == rows
    shards = events["credit_default_score.score"]
    assert len(shards) == spec.scoring.shards
    assert sum(e["outputs"][0]["facets"]["outputStatistics"]["rowCount"] for e in shards) == rows
