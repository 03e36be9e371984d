"""Faults: a publish killed mid-transaction, a warehouse that is locked or refuses connections, a tracking
server that is down. Each leaves the data consistent, fails with a clear message, and is retryable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import types
from datetime import date

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nightshift.io import sql as sql_module
from nightshift.io.warehouse import DuckDBWarehouse

from . import harness

pytestmark = pytest.mark.reliability("faults")

TABLE = "CREDIT_DEFAULT_SCORES"
DAY, OTHER_DAY = date(2026, 2, 4), date(2026, 2, 3)


def rows(path) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {TABLE} ORDER BY APPLICATION_ID").df()


def day_rows(frame: pd.DataFrame, day: date) -> pd.DataFrame:
    return frame[pd.to_datetime(frame["PARTITION_DATE"]).dt.date == day].reset_index(drop=True)


@pytest.fixture
def published(tmp_path):
    """A warehouse with two days of old rows (version 1), and new staging files (version 2) for DAY."""
    path = tmp_path / "warehouse.duckdb"
    old = harness.staged_scores(tmp_path / "old", DAY, 25, "1", "run-old")
    other = harness.staged_scores(tmp_path / "other", OTHER_DAY, 10, "1", "run-other")
    warehouse = DuckDBWarehouse(str(path))
    schema = pq.read_schema(old[0])
    assert warehouse.publish(TABLE, schema, old, "credit_default", [DAY], 50) == 50
    assert warehouse.publish(TABLE, schema, other, "credit_default", [OTHER_DAY], 20) == 20
    new = harness.staged_scores(tmp_path / "new", DAY, 30, "2", "run-new")
    return {"path": path, "new": new, "schema": schema, "before": rows(path)}


@pytest.mark.parametrize("point,survivor", [
    ("before_begin", "old"), ("after_delete", "old"), ("after_insert", "old"), ("before_commit", "old"),
    ("after_commit", "new"),
])
def test_publish_killed_at_a_point_leaves_old_or_new_rows_and_the_retry_succeeds(published, point, survivor):
    path, new = published["path"], published["new"]
    child = harness.start_publish_child(warehouse=str(path), table=TABLE, files=new, model_name="credit_default",
                                        dates=[DAY.isoformat()], expected=60, pause_at=point)
    harness.wait_for_line(child, f"PAUSED {point}")
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL

    after = rows(path)
    today = day_rows(after, DAY)
    assert today["APPLICATION_ID"].is_unique, "duplicates after a kill"
    assert today["DAG_RUN_ID"].nunique() == 1, "a mix of old and new rows after a kill"
    expected = {"old": ("run-old", 50), "new": ("run-new", 60)}[survivor]
    assert (today["DAG_RUN_ID"].iloc[0], len(today)) == expected
    pd.testing.assert_frame_equal(day_rows(after, OTHER_DAY), day_rows(published["before"], OTHER_DAY))

    assert DuckDBWarehouse(str(path)).publish(TABLE, published["schema"], new, "credit_default", [DAY], 60) == 60
    final = rows(path)
    assert len(day_rows(final, DAY)) == 60 and set(day_rows(final, DAY)["DAG_RUN_ID"]) == {"run-new"}
    assert final["APPLICATION_ID"].is_unique
    pd.testing.assert_frame_equal(day_rows(final, OTHER_DAY), day_rows(published["before"], OTHER_DAY))


@pytest.fixture
def locked(published):
    """Another process holds the warehouse's write lock until the test ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('LOCKED', flush=True); "
         "time.sleep(600)", str(published["path"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harness.wait_for_line(holder, "LOCKED")
    yield holder
    holder.kill()
    holder.wait()


def record_sleeps(monkeypatch) -> list[float]:
    """Backoff waits as asked for, slept for 1% of their length so the test stays fast."""
    import time

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds / 100)

    monkeypatch.setattr(sql_module, "time", types.SimpleNamespace(sleep=sleep))  # only with_backoff's clock (io/sql.py)
    return waits


def test_locked_warehouse_is_retried_with_backoff_then_fails_clearly(published, locked, monkeypatch):
    waits = record_sleeps(monkeypatch)
    warehouse = DuckDBWarehouse(str(published["path"]), lock_retries=3, lock_wait_seconds=0.5)
    with pytest.raises(RuntimeError, match=r"warehouse .*warehouse\.duckdb is unavailable after 4 attempt\(s\): .*lock"):
        warehouse.publish(TABLE, published["schema"], published["new"], "credit_default", [DAY], 60)
    assert waits == [0.5, 1.0, 2.0]
    locked.kill()
    locked.wait()
    pd.testing.assert_frame_equal(rows(published["path"]), published["before"])
    assert warehouse.publish(TABLE, published["schema"], published["new"], "credit_default", [DAY], 60) == 60


def test_publish_task_on_a_locked_warehouse_fails_retryably(published, locked, monkeypatch):
    """Through the task function: a RuntimeError (Airflow retries it with backoff), not a fail-fast error."""
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift import render
    from nightshift.operators.publish import PublishOperator
    from nightshift.spec import find_spec

    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(published["path"]))
    waits = record_sleeps(monkeypatch)
    shards = [{"index": i, "uri": f, "rows": 30, "model_version": "2"} for i, f in enumerate(published["new"])]
    ctx = harness.context("locked", harness.at(DAY), harness.at(date(2026, 2, 5)))
    with pytest.raises(RuntimeError, match="is unavailable after 6 attempt") as caught:
        harness.execute(PublishOperator, "credit_default", ctx, shards=shards, ingested={"partition_dates": [DAY.isoformat()]},
                        model_ref={"model_name": "credit_default", "model_version": "2"})
    assert not isinstance(caught.value, AirflowFailException)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]
    args = render.dags.default_args(find_spec("credit_default"))
    assert args["retries"] >= 1 and args["retry_exponential_backoff"] >= 2.0
    locked.kill()
    locked.wait()
    pd.testing.assert_frame_equal(rows(published["path"]), published["before"])


SNOWFLAKE = {"conn_type": "snowflake", "login": "nightshift", "password": "placeholder", "schema": "SCORES",
             "extra": {"account": "test-account", "database": "ML", "warehouse": "WH"}}


@pytest.mark.snowflake
def test_refused_snowflake_is_retried_with_backoff_then_fails_clearly_and_keeps_rows(tmp_path, monkeypatch):
    import fakesnow
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook
    from snowflake.connector.errors import OperationalError

    from nightshift.io import snowflake
    from nightshift.spec import find_spec
    from nightshift.steps import publish

    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_TEST", json.dumps(SNOWFLAKE))
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_WAREHOUSE_CONN_ID", "snowflake_test")
    spec = find_spec("credit_default")
    model_ref = {"model_name": "credit_default", "model_version": "1"}
    old = harness.staged_scores(tmp_path / "old", DAY, 20, "1", "run-old")
    new = harness.staged_scores(tmp_path / "new", DAY, 30, "1", "run-new")

    def shards(files, n):
        return [{"index": i, "uri": f, "rows": n, "model_version": "1"} for i, f in enumerate(files)]

    def table() -> pd.DataFrame:
        cursor = snowflake.connect("snowflake_test").cursor()
        return cursor.execute("SELECT * FROM CREDIT_DEFAULT_SCORES ORDER BY APPLICATION_ID").fetch_pandas_all()

    with fakesnow.patch(db_path=None):
        assert publish.publish(spec, shards(old, 20), [DAY.isoformat()], model_ref)["rows"] == 40
        before = table()
        attempts = []
        real_get_conn = SnowflakeHook.get_conn

        def refuse(self):
            attempts.append(1)
            raise OperationalError("250001: Could not connect to Snowflake backend: Connection refused")

        monkeypatch.setattr(SnowflakeHook, "get_conn", refuse)
        waits = record_sleeps(monkeypatch)
        with pytest.raises(RuntimeError, match=r"Snowflake connection 'snowflake_test' is unavailable after 4 attempt\(s\): "
                                               r".*Connection refused"):
            publish.publish(spec, shards(new, 30), [DAY.isoformat()], model_ref)
        assert len(attempts) == 4 and waits == [1.0, 2.0, 4.0]
        monkeypatch.setattr(SnowflakeHook, "get_conn", real_get_conn)
        pd.testing.assert_frame_equal(table(), before)
        assert publish.publish(spec, shards(new, 30), [DAY.isoformat()], model_ref)["rows"] == 60


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_server_down_at_scoring_fails_clearly_and_writes_nothing(world, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    port = closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("NIGHTSHIFT_ARTIFACTS", str(tmp_path / "artifacts"))
    before = harness.warehouse_state()

    outcome = harness.run_score("credit_default", "tracking_down", date(2026, 2, 5))

    assert outcome.failed == "resolve_model", outcome.describe()
    assert isinstance(outcome.error, RuntimeError) and not isinstance(outcome.error, AirflowFailException)  # retried
    assert f"MLflow tracking server http://127.0.0.1:{port} is unavailable" in outcome.message
    assert "run credit_default_train first" not in outcome.message  # an outage is not "no champion"
    harness.assert_same_warehouse(before, harness.warehouse_state())
    assert not (tmp_path / "artifacts").exists()
