"""Distributed tier: Airflow as separate processes on the machine's real Postgres and Redis, with
two Celery workers. Runs train then score through the REST API (as the UI does), then a 7-day
backfill with max active runs 3, and checks every run, both workers, and the warehouse.

The warehouse here is the embedded DuckDB file shared by both workers; its single-writer rule is
kept by the one-slot pool `nightshift_warehouse` that every publish task runs in (applied from
airflow_settings.yaml by the settings loader), so the tier also proves the pool does its job.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import psycopg2
import pytest
import requests

from nightshift_demo.generate import write_credit_applications

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgres@127.0.0.1:5432"
# Backfill covers the runs whose data intervals start on 02-01 .. 02-07: seven days to score.
BACKFILL_FROM, BACKFILL_TO = "2026-02-01", "2026-02-08"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_sql(statement: str) -> None:
    conn = psycopg2.connect(f"postgresql://{PG}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(statement)
    conn.close()


class Cluster:
    """Airflow components as child processes; each is started and stopped by its pid."""

    def __init__(self, home: Path):
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        suffix = f"{os.getpid()}_{int(time.time())}"
        self.airflow_db, self.mlflow_db = f"nightshift_af_{suffix}", f"nightshift_ml_{suffix}"
        self.queue = f"nightshift_{suffix}"  # its own Celery queue: no other cluster's worker can take its tasks
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        hooks = home / "hooks"
        hooks.mkdir(exist_ok=True)
        (hooks / "nightshift_test_hostname.py").write_text(
            "import os, socket\n\ndef hostname():\n    return os.environ.get('NIGHTSHIFT_WORKER_NAME') or socket.getfqdn()\n"
        )
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYTHONPATH": f"{hooks}:{ROOT / 'plugins'}",
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "nightshift_test_hostname.hostname",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG}/{self.airflow_db}",
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/7",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG}/{self.airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "nightshift.deploy.celery_config.CELERY_CONFIG",  # warm workers, as in compose
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "30",  # a loaded 2-core box can take >1 s to hand a task to Redis
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",  # a task whose message got lost is retried, not stuck
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs this test asks for
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "NIGHTSHIFT_LOCAL_DIR": str(home / "local"),
            "NIGHTSHIFT_RETRY_DELAY_SECONDS": "5",
            "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://{PG}/{self.mlflow_db}",
            "NIGHTSHIFT_MLFLOW_ARTIFACTS": (home / "mlartifacts").as_uri(),
            "NIGHTSHIFT_CREDIT_SOURCE_URI": str(home / "landing" / "credit_applications"),
        }
        self.env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)

    def run(self, *args: str, timeout: int = 300) -> str:
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        log = open(self.logs / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            [str(BIN / "airflow"), *args], env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def assert_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"components exited: {dead}; logs in {self.logs}"

    # --- REST API, with a token from the login endpoint like the UI ---------------------------

    def token(self) -> str:
        passwords = json.loads((self.home / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        reply = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30)
        reply.raise_for_status()
        return reply.json()["access_token"]

    def api(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self._token}"}
        reply = requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)
        assert reply.ok, f"{method} {path}: {reply.status_code} {reply.text[:500]}"
        return reply.json()

    def wait_until(self, what: str, check, timeout: float, every: float = 3.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assert_alive()
            result = check()
            if result:
                return result
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.logs}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        def finished():
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return self.wait_until(f"{dag_id} {run_id}", finished, timeout)

    def trigger(self, dag_id: str, logical_date: str) -> str:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": f"{logical_date}T00:00:00Z", "conf": {}})
        return run["dag_run_id"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster")
    c = Cluster(home)
    admin_sql(f"CREATE DATABASE {c.airflow_db}")
    admin_sql(f"CREATE DATABASE {c.mlflow_db}")
    write_credit_applications(home / "landing" / "credit_applications", date(2025, 6, 1), date(2026, 2, 9), rows_per_day=40)
    c.run("db", "migrate")
    c.run("pools", "list")
    subprocess.run([str(BIN / "python"), "-m", "nightshift.cli.settings", str(ROOT / "airflow_settings.yaml"), "--airflow",
                    str(BIN / "airflow")], env=c.env, check=True, capture_output=True)
    # create MLflow's tables once, before two workers race to do it
    subprocess.run([str(BIN / "python"), "-c", "from nightshift.io import tracking; tracking.experiment_id('credit_default')"],
                   env=c.env, check=True, capture_output=True)
    c.start("api-server", "api-server")
    c.start("scheduler", "scheduler")
    c.start("dag-processor", "dag-processor")
    for i in (1, 2):
        c.start(f"worker{i}", "celery", "worker", "--celery-hostname", f"worker{i}@%h", "--concurrency", "2", "--queues", c.queue,
                NIGHTSHIFT_WORKER_NAME=f"worker{i}", AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
    failed = True
    try:
        c.wait_until("the API server", lambda: _reachable(c.url), timeout=120, every=2)
        c._token = c.token()
        c.wait_until("DAGs parsed", lambda: {"credit_default_train", "credit_default_score"}
                     <= {d["dag_id"] for d in c.api("GET", "/dags")["dags"]}, timeout=180)
        yield c
        failed = False
    finally:
        c.stop()
        if failed:
            for log in sorted(c.logs.glob("*.log")):
                print(f"\n===== {log} (last lines) =====\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        else:
            admin_sql(f"DROP DATABASE IF EXISTS {c.airflow_db} WITH (FORCE)")
            admin_sql(f"DROP DATABASE IF EXISTS {c.mlflow_db} WITH (FORCE)")


def _reachable(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v2/version", timeout=5).status_code in (200, 401, 403)
    except requests.RequestException:
        return False


def test_train_score_and_backfill_on_celery_workers(cluster):
    train_run = cluster.trigger("credit_default_train", "2026-02-01")
    assert cluster.wait_for_run("credit_default_train", train_run, timeout=600) == "success"
    score_run = cluster.trigger("credit_default_score", "2026-02-03")  # manual interval: the day 02-01
    assert cluster.wait_for_run("credit_default_score", score_run, timeout=600) == "success"

    cluster.run("backfill", "create", "--dag-id", "credit_default_score", "--from-date", BACKFILL_FROM, "--to-date", BACKFILL_TO,
                "--max-active-runs", "3", "--reprocess-behavior", "completed")

    def backfill_done():
        runs = [r for r in cluster.runs("credit_default_score") if r["run_type"] == "backfill"]
        return runs if len(runs) == 7 and all(r["state"] in ("success", "failed") for r in runs) else None

    backfill = cluster.wait_until("the 7-day backfill", backfill_done, timeout=900, every=5)
    all_runs = cluster.runs("credit_default_score") + cluster.runs("credit_default_train")
    assert {r["state"] for r in all_runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in all_runs]

    hosts: dict[str, int] = {}
    for run in backfill + [{"dag_run_id": score_run}]:
        tis = cluster.api("GET", f"/dags/credit_default_score/dagRuns/{run['dag_run_id']}/taskInstances", params={"limit": 100})
        for ti in tis["task_instances"]:
            hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
    assert set(hosts) == {"worker1", "worker2"}, hosts

    with duckdb.connect(str(cluster.home / "local" / "warehouse.duckdb"), read_only=True) as con:
        partitions = con.execute("SELECT PARTITION_DATE, COUNT(*) FROM CREDIT_DEFAULT_SCORES GROUP BY 1 ORDER BY 1").fetchall()
        duplicates = con.execute(
            "SELECT COUNT(*) FROM (SELECT APPLICATION_ID FROM CREDIT_DEFAULT_SCORES GROUP BY 1 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        versions = con.execute("SELECT DISTINCT MODEL_VERSION FROM CREDIT_DEFAULT_SCORES").fetchall()
    # the backfill's 7 days, which include the triggered run's day (02-01, rescored by the backfill)
    assert [str(d) for d, _ in partitions] == [f"2026-02-0{i}" for i in range(1, 8)]
    assert sorted(r["data_interval_start"][:10] for r in backfill) == [f"2026-02-0{i}" for i in range(1, 8)]
    assert duplicates == 0 and versions == [("1",)]
