"""Failures are classified once (issue #14 item 8): what no retry can fix fails at once, outages are retried,
and a refused Snowflake login is tried exactly once (a locked service user must not be hammered)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from nightshift.io import snowflake, sql, storage, tracking
from nightshift.operators.base import fail_fast
from nightshift.spec import SpecError
from nightshift.steps import ingest, score, validate


def refused_login():
    from snowflake.connector.errors import DatabaseError

    return DatabaseError(msg="Incorrect username or password was specified.", errno=390100)


def test_a_refused_snowflake_login_is_tried_once_and_fails_without_retries(monkeypatch):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    attempts, sleeps = [], []

    def refuse(self):
        attempts.append(1)
        raise refused_login()

    monkeypatch.setattr(SnowflakeHook, "get_conn", refuse)
    monkeypatch.setattr("nightshift.io.sql.time.sleep", sleeps.append)
    with pytest.raises(snowflake.AccessDenied, match="Snowflake connection 'snowflake_test' was refused: .*Incorrect username"):
        snowflake.connect("snowflake_test", retries=5, wait_seconds=0.5)
    assert attempts == [1] and sleeps == []


def test_missing_grants_are_not_retried_either(monkeypatch):
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook
    from snowflake.connector.errors import ProgrammingError

    attempts = []

    def no_grant(self):
        attempts.append(1)
        raise ProgrammingError(msg="SQL access control error: Insufficient privileges to operate on schema 'SCORES'", errno=3001)

    monkeypatch.setattr(SnowflakeHook, "get_conn", no_grant)
    monkeypatch.setattr("nightshift.io.sql.time.sleep", lambda seconds: None)
    with pytest.raises(snowflake.AccessDenied):
        snowflake.connect("snowflake_test", retries=3)
    assert attempts == [1]


@pytest.mark.parametrize("error", [
    SpecError("credit_default.yaml", [("schedule.train", "not a valid cron expression")]),
    ingest.IngestError("dt=2026-02-03/part-0.parquet: column 'income' is text"),
    validate.ValidationFailed("income: 3 values below 0"),
    score.ModelNotFound("registered model 'credit_default' has no alias 'champion'"),
    sql.SchemaMismatch("SCORES.SCORE is DOUBLE in the warehouse but the pipeline now writes VARCHAR"),
    snowflake.AccessDenied("Snowflake connection 'prod' was refused"),
    storage.OutsideRoots("/etc/passwd is outside the allowed roots"),
], ids=lambda e: type(e).__name__)
def test_deterministic_failures_fail_the_task_at_once(error):
    with pytest.raises(AirflowFailException) as caught, fail_fast():
        raise error
    assert str(caught.value) == str(error)


@pytest.mark.parametrize("error", [
    RuntimeError("warehouse /x.duckdb is unavailable after 6 attempt(s): lock held"),
    ConnectionError("S3 endpoint reset the connection"),
    tracking.TrackingStoreError("MLflow tracking store sqlite:///x/mlflow.db is locked by another process"),
], ids=lambda e: type(e).__name__)
def test_outages_pass_through_for_airflow_to_retry(error):
    with pytest.raises(type(error)) as caught, fail_fast():
        raise error
    assert not isinstance(caught.value, AirflowFailException)
