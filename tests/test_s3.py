"""S3 paths against moto's real HTTP server: source reads, run artifacts, MLflow artifacts, and an
end-to-end run of both DAGs with an S3 landing zone and the Snowflake backend (fakesnow)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import boto3
import fakesnow
import pytest
from moto.server import ThreadedMotoServer

from nightshift.io import storage
from nightshift.io import s3, tracking
from nightshift_demo.generate import write_credit_applications
from nightshift.spec import find_spec
from nightshift.steps import ingest

pytestmark = pytest.mark.s3
BUCKET = "landing"


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """An Airflow connection `aws_test` pointing at the moto server, and a fresh bucket."""
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(conn))
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "MLFLOW_S3_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    s3.filesystem.cache_clear()
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    for bucket in (BUCKET, "artifacts"):
        if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
            client.create_bucket(Bucket=bucket)
    yield client
    s3.filesystem.cache_clear()


def upload_tree(client, local_root, bucket: str, prefix: str) -> int:
    files = [p for p in local_root.rglob("*") if p.is_file()]
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local_root).as_posix()}")
    return len(files)


def test_source_partitions_read_from_s3_through_the_connection(s3_env, tmp_path, monkeypatch):
    local = tmp_path / "credit"
    write_credit_applications(local, date(2026, 1, 1), date(2026, 1, 5), rows_per_day=20)
    upload_tree(s3_env, local, BUCKET, "raw/credit")
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", f"s3://aws_test@{BUCKET}/raw/credit")
    spec = find_spec("credit_default")
    window = ingest.Window(datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 4, tzinfo=timezone.utc))
    rows, names = ingest.read_rows(spec, window, with_target=True, require_all=True)
    assert names == [f"s3://aws_test@{BUCKET}/raw/credit/dt=2026-01-0{d}/part-0.parquet" for d in (2, 3)]
    assert rows["application_date"].min() >= window.start and rows["application_date"].max() < window.end
    with pytest.raises(ingest.IngestError, match=r"s3://aws_test@landing/raw/credit/dt=2026-01-09: partition folder is missing"):
        ingest.read_rows(spec, ingest.Window(datetime(2026, 1, 9, tzinfo=timezone.utc), datetime(2026, 1, 10, tzinfo=timezone.utc)),
                         with_target=True, require_all=True)


def test_run_artifacts_round_trip_on_s3(s3_env, tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2, 3]})
    uri = storage.write_parquet(frame, "s3://aws_test@artifacts/runs/x/snapshot.parquet")
    pd.testing.assert_frame_equal(storage.read_parquet(uri), frame)
    report = tmp_path / "report.html"
    report.write_text("<html>ok</html>")
    storage.put_file(report, "s3://aws_test@artifacts/runs/x/report.html")
    body = s3_env.get_object(Bucket="artifacts", Key="runs/x/report.html")["Body"].read()
    assert body == b"<html>ok</html>"
    local = storage.local_copy(uri, tmp_path)
    assert pd.read_parquet(local).equals(frame)


def test_mlflow_artifacts_go_to_s3(s3_env, local_state, monkeypatch, tmp_path):
    monkeypatch.setenv("NIGHTSHIFT_MLFLOW_ARTIFACTS", "s3://artifacts/mlflow")
    run_id = tracking.run_for_dag_run("s3_check", "manual__1")
    note = tmp_path / "note.txt"
    note.write_text("hello")
    tracking.client().log_artifact(run_id, str(note), "notes")
    keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="artifacts", Prefix="mlflow/")["Contents"]]
    assert any(k.endswith("/artifacts/notes/note.txt") for k in keys), keys


@pytest.mark.snowflake
@pytest.mark.e2e
def test_both_dags_with_s3_landing_and_snowflake_warehouse(s3_env, airflow_db, local_state, tmp_path, monkeypatch):
    from nightshift.io.snowflake import SnowflakeWarehouse
    from nightshift.render import build_score_dag, build_train_dag

    local = tmp_path / "credit"
    write_credit_applications(local, date(2025, 6, 1), date(2026, 2, 3), rows_per_day=30)
    upload_tree(s3_env, local, BUCKET, "e2e/credit")
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", f"s3://aws_test@{BUCKET}/e2e/credit")
    monkeypatch.setenv("NIGHTSHIFT_ARTIFACTS", "s3://aws_test@artifacts/runs")
    monkeypatch.setenv("NIGHTSHIFT_MLFLOW_ARTIFACTS", "s3://artifacts/mlflow-e2e")
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_WAREHOUSE_CONN_ID", "snowflake_e2e")
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_E2E", json.dumps(
        {"conn_type": "snowflake", "login": "nightshift", "password": "placeholder", "schema": "SCORES",
         "extra": {"account": "test-account", "database": "ML", "warehouse": "WH"}}))
    spec = find_spec("credit_default")
    assert spec.scoring.warehouse_conn_id == "snowflake_e2e"
    with fakesnow.patch():
        trained = build_train_dag(spec).test(logical_date=datetime(2026, 2, 1, tzinfo=timezone.utc))
        assert trained.state == "success"
        scored = build_score_dag(spec).test(logical_date=datetime(2026, 2, 3, tzinfo=timezone.utc))
        assert scored.state == "success"
        day = scored.data_interval_start.date()
        rows = SnowflakeWarehouse("snowflake_e2e").rows_per_partition("CREDIT_DEFAULT_SCORES", "credit_default")
    expected = len(__import__("pandas").read_parquet(local / f"dt={day}" / "part-0.parquet"))
    assert [(str(d)[:10], v, n) for d, v, n in rows] == [(day.isoformat(), "1", expected)]
    run_keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="artifacts", Prefix="runs/credit_default/")["Contents"]]
    assert any(k.endswith("ingest/snapshot.parquet") for k in run_keys)
    assert any("/staging/shard-" in k for k in run_keys)
    model_keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="artifacts", Prefix="mlflow-e2e/")["Contents"]]
    assert any("evaluation/roc_curve.png" in k for k in model_keys)


def test_a_named_connection_that_does_not_exist_is_an_error_not_ambient_credentials(s3_env, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AWS_MISSING", raising=False)
    with pytest.raises(s3.S3ConnectionMissing, match="Airflow connection 'aws_missing'.*is not defined"):
        storage.read_parquet("s3://aws_missing@artifacts/runs/x/snapshot.parquet")


def test_connection_credentials_come_through_the_amazon_provider_hook(s3_server, monkeypatch):
    """A session token in the connection (as an assumed role yields) reaches the filesystem with the keys and region."""
    conn = {"conn_type": "aws", "login": "AKIDEXAMPLE", "password": "placeholder",  # documented test placeholders
            "extra": {"aws_session_token": "testing", "region_name": "eu-central-1", "endpoint_url": s3_server}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_SESSION", json.dumps(conn))
    found = s3.settings("aws_session")
    assert (found["access_key"], found["secret_key"], found["session_token"]) == ("AKIDEXAMPLE", "placeholder", "testing")
    assert found["region"] == "eu-central-1" and found["endpoint_override"] == s3_server
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    assert s3.settings(None) == {"source": "the standard AWS credential chain"}  # plain s3://bucket without aws_default
