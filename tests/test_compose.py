"""Static checks of the compose deployment (no Docker engine runs here): services, dependencies,
volumes, environment, and the image built from requirements.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_every_component_is_there(compose):
    assert set(compose["services"]) >= {"postgres", "redis", "minio", "minio-init", "mlflow", *AIRFLOW_SERVICES}


def test_airflow_components_share_the_image_mounts_and_celery_settings(compose):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        mounts = {m.split(":")[1] for m in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://") and "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], "components started separately need one shared JWT secret"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["NIGHTSHIFT_ARTIFACTS"].startswith("s3://")


def test_dependencies_wait_for_health_and_init(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy" and depends["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2
    for name, service in services.items():
        if name not in ("minio-init", "airflow-init"):
            assert "healthcheck" in service, name


def test_init_migrates_and_applies_settings(compose):
    command = " ".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in command and "nightshift.cli.settings" in command


def test_mlflow_uses_postgres_and_s3(compose):
    command = compose["services"]["mlflow"]["command"]
    assert "--backend-store-uri postgresql" in command and "--artifacts-destination s3://" in command
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql
    assert "./docker/postgres-init.sql:/docker-entrypoint-initdb.d/10-mlflow.sql:ro" in compose["services"]["postgres"]["volumes"]


def test_minio_buckets_created_at_start(compose):
    entry = compose["services"]["minio-init"]["entrypoint"]
    assert "mc mb --ignore-existing local/nightshift" in entry and "mc mb --ignore-existing local/mlflow" in entry


def test_named_volumes_are_declared(compose):
    used = {m.split(":")[0] for s in compose["services"].values() for m in s.get("volumes", []) if not m.startswith((".", "/"))}
    assert used <= set(compose["volumes"])


def test_image_is_official_airflow_with_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == "FROM apache/airflow:3.3.2-python3.11"
    assert "pip install --no-cache-dir -r /opt/nightshift/requirements.txt" in dockerfile
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert "apache-airflow==3.3.2" in requirements
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert all("==" in line for line in pins), [line for line in pins if "==" not in line]


def test_workers_start_warm_with_airflows_celery_defaults(compose):
    """The compose workers' Celery config is Airflow's own plus one import list (see celery_config)."""
    import importlib
    import subprocess
    import sys

    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    target = compose["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
    module_name, _, attribute = target.rpartition(".")
    config = getattr(importlib.import_module(module_name), attribute)
    assert {k: v for k, v in config.items() if k != "imports"} == DEFAULT_CELERY_CONFIG
    assert "nightshift.deploy.warm_imports" in config["imports"]
    # importing the warm list opens no thread, so the forks that follow are safe
    probe = "import threading, nightshift.deploy.warm_imports; print(threading.active_count())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "1"
