"""Idempotency and concurrency: reruns and backfills replace rows, overlapping publishes serialize.

"Identical" means the same sha256 over every column except SCORED_AT and DAG_RUN_ID (which name the run),
in a fixed row order, and the same row count.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nightshift.io.warehouse import DuckDBWarehouse

from . import harness

pytestmark = pytest.mark.reliability("idempotency")

TABLE = "CREDIT_DEFAULT_SCORES"


@pytest.fixture
def own_warehouse(world, tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(path))
    return path


def source_rows(world, day: date) -> int:
    return len(pd.read_parquet(world.credit / f"dt={day.isoformat()}" / "part-0.parquet"))


def dag_run_ids(path, day: date | None = None) -> set[str]:
    where = f"WHERE PARTITION_DATE = DATE '{day.isoformat()}'" if day else ""
    with duckdb.connect(str(path), read_only=True) as con:
        return {r for (r,) in con.execute(f"SELECT DISTINCT DAG_RUN_ID FROM {TABLE} {where}").fetchall()}


def test_one_date_rerun_five_times_leaves_an_identical_table(world, own_warehouse):
    day = date(2026, 2, 5)
    hashes = []
    for attempt in range(5):
        outcome = harness.run_score("credit_default", f"rerun__{attempt}", day)
        assert outcome.failed is None, outcome.describe()
        hashes.append(harness.table_hash(TABLE))
        assert dag_run_ids(own_warehouse) == {f"rerun__{attempt}"}  # each rerun replaced the rows, none were kept
    assert len(set(hashes)) == 1, hashes
    assert hashes[0][1] == source_rows(world, day)


def test_ten_day_backfill_run_twice_leaves_an_identical_table(world, own_warehouse):
    first = date(2026, 2, 1)
    backfill = [first + timedelta(days=i) for i in range(10)]
    results = []
    for attempt in ("first", "second"):
        for day in backfill:  # one run per daily interval, as `airflow backfill create` makes them
            outcome = harness.run_score("credit_default", f"backfill_{attempt}__{day}", day)
            assert outcome.failed is None, outcome.describe()
        results.append(harness.table_hash(TABLE))
        assert all(dag_run_ids(own_warehouse, d) == {f"backfill_{attempt}__{d}"} for d in backfill)
    assert results[0] == results[1]
    assert results[0][1] == sum(source_rows(world, d) for d in backfill)


def test_overlapping_publishes_of_one_date_serialize_on_the_lock(tmp_path):
    """Two processes publish the same date at once: the second waits for the first's lock, then replaces its rows."""
    path = tmp_path / "warehouse.duckdb"
    day = date(2026, 2, 4)
    first = harness.staged_scores(tmp_path / "first", day, 40, "1", "run-first")
    second = harness.staged_scores(tmp_path / "second", day, 35, "2", "run-second")
    common = {"warehouse": str(path), "table": TABLE, "model_name": "credit_default", "dates": [day.isoformat()]}

    a = harness.start_publish_child(**common, files=first, expected=80, pause_at="after_insert", hold_seconds=6)
    harness.wait_for_line(a, "PAUSED after_insert")  # A holds the write lock mid-transaction
    b = harness.start_publish_child(**common, files=second, expected=70, lock_retries=7, lock_wait_seconds=0.25)
    harness.wait_for_line(b, "STARTED")
    assert harness.wait_for_line(a, "PUBLISHED") == "PUBLISHED 80"
    assert harness.wait_for_line(b, "PUBLISHED") == "PUBLISHED 70"
    assert a.wait(timeout=30) == 0 and b.wait(timeout=30) == 0
    waited = b.stderr.read()
    assert "unavailable" in waited and "lock" in waited.lower(), waited  # B met A's lock and retried

    with duckdb.connect(str(path), read_only=True) as con:
        final = con.execute(f"SELECT * FROM {TABLE}").df()
    assert len(final) == 70 and final["APPLICATION_ID"].is_unique
    assert set(final["DAG_RUN_ID"]) == {"run-second"}
    schema = pq.read_schema(second[0])
    assert DuckDBWarehouse(str(path)).publish(TABLE, schema, second, "credit_default", [day], 70) == 70  # and again
