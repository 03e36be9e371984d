"""Output schema evolution (issue #14 item 9): a new output column is added to the existing table, outside the data
transaction, in DuckDB and in Snowflake (fakesnow); a changed column type fails naming the column and the fix."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import duckdb
import fakesnow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift.io import snowflake
from nightshift.io.snowflake import SnowflakeWarehouse
from nightshift.io.sql import SchemaMismatch
from nightshift.io.warehouse import DuckDBWarehouse

DAY, NEXT = date(2026, 2, 2), date(2026, 2, 3)
BASE = pa.schema([("APPLICATION_ID", pa.string()), ("SCORE", pa.float64()), ("MODEL_NAME", pa.string()),
                  ("MODEL_VERSION", pa.string()), ("PARTITION_DATE", pa.date32()),
                  ("SCORED_AT", pa.timestamp("us", tz="UTC"))])
WITH_LABEL = BASE.append(pa.field("LABEL", pa.int64()))  # scoring.threshold added to the spec later
SCORE_AS_TEXT = pa.schema([f if f.name != "SCORE" else pa.field("SCORE", pa.string()) for f in BASE])


def shard(tmp_path, schema: pa.Schema, day: date, n: int = 5) -> list[str]:
    columns = {"APPLICATION_ID": [f"{day}-{i}" for i in range(n)], "SCORE": [i / 10 for i in range(n)],
               "MODEL_NAME": ["credit_default"] * n, "MODEL_VERSION": ["1"] * n, "PARTITION_DATE": [day] * n,
               "SCORED_AT": [datetime(2026, 2, 4, tzinfo=timezone.utc)] * n, "LABEL": [i % 2 for i in range(n)]}
    if schema.field("SCORE").type == pa.string():
        columns["SCORE"] = [str(v) for v in columns["SCORE"]]
    path = tmp_path / f"{day}-{len(schema)}-{schema.field('SCORE').type}.parquet"
    pq.write_table(pa.table({f.name: columns[f.name] for f in schema}, schema=schema), path)
    return [str(path)]


def evolve(warehouse, tmp_path, read_columns):
    assert warehouse.publish("SCORES", BASE, shard(tmp_path, BASE, DAY), "credit_default", [DAY], 5) == 5
    assert "LABEL" not in read_columns()
    assert warehouse.publish("SCORES", WITH_LABEL, shard(tmp_path, WITH_LABEL, NEXT), "credit_default", [NEXT], 5) == 5
    assert "LABEL" in read_columns()
    with pytest.raises(SchemaMismatch) as caught:
        warehouse.publish("SCORES", SCORE_AS_TEXT, shard(tmp_path, SCORE_AS_TEXT, NEXT), "credit_default", [NEXT], 5)
    message = str(caught.value)
    assert "SCORES.SCORE" in message and "VARCHAR" in message and "scoring.output_table" in message


def test_duckdb_adds_new_output_columns_and_refuses_a_changed_type(tmp_path):
    path = tmp_path / "wh.duckdb"

    def columns():
        with duckdb.connect(str(path), read_only=True) as con:
            return [r[0] for r in con.execute("DESCRIBE SCORES").fetchall()]

    evolve(DuckDBWarehouse(str(path)), tmp_path, columns)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT PARTITION_DATE, COUNT(*), COUNT(LABEL) FROM SCORES GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(DAY, 5, 0), (NEXT, 5, 5)]  # older rows keep NULL in the new column; the refused publish changed nothing


@pytest.mark.snowflake
def test_snowflake_adds_new_output_columns_and_refuses_a_changed_type(tmp_path, monkeypatch):
    conn = {"conn_type": "snowflake", "login": "nightshift", "password": "placeholder", "schema": "SCORES",
            "extra": {"account": "test-account", "database": "ML", "warehouse": "WH"}}
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_TEST", json.dumps(conn))
    with fakesnow.patch(db_path=None):
        warehouse = SnowflakeWarehouse("snowflake_test")

        def columns():
            cursor = snowflake.connect("snowflake_test").cursor()
            cursor.execute("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'SCORES'")
            return [r[0] for r in cursor.fetchall()]

        evolve(warehouse, tmp_path, columns)
        alters = [sql for sql in warehouse.executed if sql.startswith("ALTER TABLE")]
        assert alters == ["ALTER TABLE SCORES ADD COLUMN LABEL NUMBER(38,0)"]
        before = warehouse.executed[:warehouse.executed.index(alters[0])]
        opened = max(i for i, sql in enumerate(before) if sql == "BEGIN")
        assert {"COMMIT", "ROLLBACK"} & set(before[opened:])  # DDL outside any data transaction
        after = warehouse.executed[warehouse.executed.index(alters[0]):]
        assert "BEGIN" in after and after.index("BEGIN") > 0
        staged = [sql for sql in warehouse.executed if "__STAGE_" in sql and sql.startswith("CREATE")]
        assert staged and all(sql.startswith("CREATE TEMPORARY TABLE") for sql in staged)
