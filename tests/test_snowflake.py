"""The Snowflake connector path against fakesnow: publish, rollback, source reads, identifiers, auth."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import fakesnow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from nightshift.io import snowflake
from nightshift.io.snowflake import SnowflakeWarehouse
from nightshift.io.warehouse import identifier
from nightshift.spec import SpecError, find_spec, parse_spec
from nightshift.steps import ingest, score

pytestmark = pytest.mark.snowflake
CONN = {"conn_type": "snowflake", "login": "nightshift", "password": "placeholder", "schema": "SCORES",
        "extra": {"account": "test-account", "database": "ML", "warehouse": "WH"}}


@pytest.fixture
def snowflake_conn(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_TEST", json.dumps(CONN))
    with fakesnow.patch(db_path=None):
        yield "snowflake_test"


def staged_scores(tmp_path, day: date, n: int, version: str = "1") -> list[str]:
    """Two shard files in the output schema, as the score step writes them."""
    schema = score.output_schema(find_spec("credit_default"))
    files = []
    for shard in range(2):
        ids = [f"A{day:%Y%m%d}-{shard}{i:04d}" for i in range(n)]
        table = pa.table({
            "APPLICATION_ID": ids, "SCORE": [0.1 * (i % 10) for i in range(n)], "LABEL": [int(i % 10 >= 3) for i in range(n)],
            "MODEL_NAME": ["credit_default"] * n, "MODEL_VERSION": [version] * n, "MLFLOW_RUN_ID": ["run1"] * n,
            "PARTITION_DATE": [day] * n, "DAG_RUN_ID": [f"scheduled__{day}"] * n,
            "SCORED_AT": [datetime(2026, 2, 2, 2, tzinfo=timezone.utc)] * n,
        }, schema=schema)
        path = tmp_path / f"{day}-shard-{shard}-{version}.parquet"
        pq.write_table(table, path)
        files.append(str(path))
    return files


def table_rows(conn_id: str, where: str = "TRUE") -> pd.DataFrame:
    conn = snowflake.connect(conn_id)
    cursor = conn.cursor()
    cursor.execute(f"SELECT * FROM CREDIT_DEFAULT_SCORES WHERE {where} ORDER BY APPLICATION_ID")
    return cursor.fetch_pandas_all()


def publish(warehouse, files, day, expected):
    return warehouse.publish("credit_default_scores", pq.read_schema(files[0]), files, "credit_default", [day], expected)


def test_publish_twice_leaves_no_duplicates(snowflake_conn, tmp_path):
    warehouse = SnowflakeWarehouse(snowflake_conn)
    day = date(2026, 2, 1)
    files = staged_scores(tmp_path, day, 50)
    assert publish(warehouse, files, day, 100) == 100
    assert publish(warehouse, files, day, 100) == 100
    other = staged_scores(tmp_path, date(2026, 2, 2), 10)
    publish(warehouse, other, date(2026, 2, 2), 20)
    rows = table_rows(snowflake_conn)
    assert len(rows) == 120 and rows["APPLICATION_ID"].is_unique
    assert rows.groupby("PARTITION_DATE").size().to_dict() == {date(2026, 2, 1): 100, date(2026, 2, 2): 20}


def test_failure_inside_the_transaction_keeps_old_rows(snowflake_conn, tmp_path):
    warehouse = SnowflakeWarehouse(snowflake_conn)
    day = date(2026, 2, 1)
    publish(warehouse, staged_scores(tmp_path, day, 30), day, 60)
    before = table_rows(snowflake_conn)
    new_files = staged_scores(tmp_path, day, 40, version="2")
    with pytest.raises(RuntimeError, match="80 rows would be published .* expected 999"):
        publish(warehouse, new_files, day, 999)
    after = table_rows(snowflake_conn)
    pd.testing.assert_frame_equal(before, after)
    assert set(after["MODEL_VERSION"]) == {"1"}
    last_transaction = warehouse.executed[len(warehouse.executed) - 1 - warehouse.executed[::-1].index("BEGIN"):]
    assert "ROLLBACK" in last_transaction and "COMMIT" not in last_transaction
    leftovers = snowflake.connect(snowflake_conn).cursor().execute("SHOW TABLES LIKE '%__STAGE_%'").fetchall()
    assert leftovers == []


def test_emitted_sql_uses_upper_case_identifiers_and_bound_values(snowflake_conn, tmp_path):
    warehouse = SnowflakeWarehouse(snowflake_conn)
    day = date(2026, 2, 1)
    publish(warehouse, staged_scores(tmp_path, day, 5), day, 10)
    assert warehouse.executed, "no SQL recorded"
    for sql in warehouse.executed:
        without_placeholders = sql.replace("%s", "")
        assert not re.search(r"[a-z]", without_placeholders), sql  # fakesnow is case-insensitive: check ourselves
        assert "credit_default" not in sql and "2026-02-01" not in sql  # values travel as parameters
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS CREDIT_DEFAULT_SCORES (APPLICATION_ID VARCHAR, SCORE FLOAT")
               for s in warehouse.executed)
    assert any("SCORED_AT TIMESTAMP_TZ" in s and "PARTITION_DATE DATE" in s for s in warehouse.executed)


@pytest.mark.parametrize("name", ["scores; DROP TABLE x", "a b", "t--", "x\"y", "", "1abc"])
def test_hostile_identifiers_are_refused(name):
    with pytest.raises(ValueError, match="not a safe SQL identifier"):
        identifier(name)


def _snowflake_spec(monkeypatch, **source) -> dict:
    doc = yaml.safe_load(open("include/pipelines/credit_default.yaml"))
    doc["source"] = {"snowflake": {"conn_id": "snowflake_test", **source}, "event_time": "application_date",
                     "entity_key": ["application_id"]}
    return doc


@pytest.mark.parametrize("table", ["RAW.CREDIT; DROP TABLE X", "RAW.CREDIT --", "A.B.C.D", "RAW.'X'"])
def test_hostile_source_table_rejected_at_load(monkeypatch, table):
    with pytest.raises(SpecError) as caught:
        parse_spec(_snowflake_spec(monkeypatch, table=table))
    assert caught.value.problems[0][0] == "source.snowflake.table"


def test_source_query_must_bind_the_interval(monkeypatch):
    with pytest.raises(SpecError, match="bound placeholders"):
        parse_spec(_snowflake_spec(monkeypatch, query="SELECT * FROM RAW.CREDIT WHERE APPLICATION_DATE > '2020-01-01'"))


def load_source_table(conn_id: str, days: list[date]) -> pd.DataFrame:
    from nightshift_demo.generate import credit_applications_for_day
    from snowflake.connector.pandas_tools import write_pandas

    rows = pd.concat([credit_applications_for_day(d, rows=20) for d in days], ignore_index=True)
    upper = rows.rename(columns=str.upper)
    conn = snowflake.connect(conn_id)
    conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS RAW")
    write_pandas(conn, upper, "CREDIT_APPLICATIONS", schema="RAW", auto_create_table=True, quote_identifiers=False,
                 use_logical_type=True)
    return rows


@pytest.mark.parametrize("how", ["table", "query"])
def test_source_read_honours_interval_bounds(snowflake_conn, how):
    rows = load_source_table(snowflake_conn, [date(2026, 1, d) for d in range(1, 6)])
    source = {"table": "RAW.CREDIT_APPLICATIONS"} if how == "table" else {
        "query": "SELECT * FROM RAW.CREDIT_APPLICATIONS WHERE APPLICATION_DATE >= %(interval_start)s "
                 "AND APPLICATION_DATE < %(interval_end)s"}
    spec = parse_spec(_snowflake_spec(None, **source))
    window = ingest.Window(datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 4, tzinfo=timezone.utc))
    read, names = ingest.read_rows(spec, window, with_target=True, require_all=True)
    expected = rows[(rows.application_date >= window.start) & (rows.application_date < window.end)]
    assert names == ["snowflake://snowflake_test/" + ("RAW.CREDIT_APPLICATIONS" if how == "table" else "query")]
    assert sorted(read["application_id"]) == sorted(expected["application_id"])
    assert list(read.columns) == list(rows.columns)  # spec's lower-case names back
    assert read["application_date"].min() >= window.start and read["application_date"].max() < window.end
    assert str(read["income"].dtype) == "float64"


def test_source_sql_binds_values_and_checks_identifiers(monkeypatch):
    spec = parse_spec(_snowflake_spec(monkeypatch, table="ml.raw.credit_applications"))
    sql = snowflake.source_sql(spec)
    assert sql.startswith("SELECT APPLICATION_ID, APPLICATION_DATE, INCOME")
    assert "FROM ML.RAW.CREDIT_APPLICATIONS WHERE APPLICATION_DATE >= %(interval_start)s AND APPLICATION_DATE < %(interval_end)s" in sql


def test_refused_connection_retries_with_backoff_then_fails_clearly(monkeypatch):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook
    from snowflake.connector.errors import OperationalError

    attempts, sleeps = [], []

    def refuse(self):
        attempts.append(1)
        raise OperationalError("Connection refused by 127.0.0.1:443")

    monkeypatch.setattr(SnowflakeHook, "get_conn", refuse)
    monkeypatch.setattr("nightshift.io.sql.time.sleep", sleeps.append)
    with pytest.raises(RuntimeError, match=r"Snowflake connection 'snowflake_test' is unavailable after 4 attempt\(s\): .*refused"):
        snowflake.connect("snowflake_test", retries=3, wait_seconds=0.5)
    assert len(attempts) == 4 and sleeps == [0.5, 1.0, 2.0]


def _key_pair_conn(tmp_path) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return {"conn_type": "snowflake", "login": "nightshift", "schema": "SCORES",
            "extra": {"account": "test-account", "database": "ML", "warehouse": "WH", "private_key_content": pem}}


@pytest.mark.parametrize("auth", ["password", "key_pair"])
def test_password_and_key_pair_authentication(monkeypatch, tmp_path, auth):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    conn = CONN if auth == "password" else _key_pair_conn(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_AUTH", json.dumps(conn))
    params = SnowflakeHook(snowflake_conn_id="snowflake_auth")._get_conn_params()
    if auth == "password":
        assert params["password"] == "placeholder" and "private_key" not in params
    else:
        assert params.get("private_key") and not params.get("password")
    with fakesnow.patch():
        cursor = snowflake.connect("snowflake_auth").cursor()
        assert cursor.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("backend", ["duckdb", "snowflake"])
def test_categorical_read_holds_the_same_values_as_the_plain_read(snowflake_conn, tmp_path, backend):
    from nightshift.io.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb")) if backend == "duckdb" else SnowflakeWarehouse(snowflake_conn)
    days = [date(2026, 2, 1), date(2026, 2, 2)]
    for day, version in zip(days, ["1", "2"]):
        publish(warehouse, staged_scores(tmp_path, day, 30, version), day, 60)
    lineage = ["APPLICATION_ID", "SCORE", "MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE"]
    coded = ("MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE")
    plain = warehouse.read_rows("credit_default_scores", "credit_default", days, lineage)
    compact = warehouse.read_rows("credit_default_scores", "credit_default", days, lineage, coded)
    assert all(isinstance(compact[c].dtype, pd.CategoricalDtype) for c in coded)
    assert not isinstance(compact["SCORE"].dtype, pd.CategoricalDtype) and len(compact) == len(plain) == 120
    as_text = lambda frame: frame.astype(str).sort_values("APPLICATION_ID").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(as_text(compact.assign(PARTITION_DATE=pd.to_datetime(compact["PARTITION_DATE"].astype(str)))),
                                  as_text(plain.assign(PARTITION_DATE=pd.to_datetime(plain["PARTITION_DATE"].astype(str)))))
    assert sorted(compact["MODEL_VERSION"].cat.categories) == ["1", "2"]
