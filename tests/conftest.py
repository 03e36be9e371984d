"""Test isolation: every session gets its own Airflow home, MLflow store, warehouse and run folders.

Environment variables are set before anything imports Airflow, so tests never touch the
developer's `.local/` folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="nightshift-tests-"))

os.environ.update(
    {
        "NIGHTSHIFT_HOME": str(ROOT),
        "NIGHTSHIFT_LOCAL_DIR": str(SESSION_DIR / "local"),
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow' / 'airflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
        "NIGHTSHIFT_RETRY_DELAY_SECONDS": "1",  # retries stay on, their waits get short
        # tests keep their data in tmp folders (pytest's tmp_path, SESSION_DIR): let specs and storage read there
        "NIGHTSHIFT_ALLOWED_ROOTS": os.pathsep.join(dict.fromkeys([str(SESSION_DIR), tempfile.gettempdir()])),
    }
)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("NIGHTSHIFT_PIPELINES_DIR", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database for dag.test(), made once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


@pytest.fixture
def local_state(tmp_path, monkeypatch) -> Path:
    """A fresh MLflow store, warehouse and run folder for one test."""
    local = tmp_path / "local"
    monkeypatch.setenv("NIGHTSHIFT_LOCAL_DIR", str(local))
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI; pin it per test so stores never leak
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{local / 'mlflow.db'}")
    return local


@pytest.fixture
def credit_data(tmp_path, monkeypatch) -> Path:
    """A small credit_applications landing zone (40 rows a day), wired into the spec by env var."""
    from nightshift_demo.generate import write_credit_applications

    root = tmp_path / "landing" / "credit_applications"
    write_credit_applications(root, date(2025, 6, 1), date(2026, 2, 5), rows_per_day=40)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    return root


@pytest.fixture
def house_data(tmp_path, monkeypatch) -> Path:
    """The house_sales CSV (regression example), wired into the spec by env var."""
    from nightshift_demo.generate import write_house_sales

    path = tmp_path / "landing" / "house_sales.csv"
    write_house_sales(path, rows=1200)
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SOURCE_URI", str(path))
    return path


@pytest.fixture
def warehouse(trained, tmp_path, monkeypatch) -> Path:
    """A fresh DuckDB warehouse for one test, after the module's `trained` champion exists
    (every module that asks for this fixture defines `trained`)."""
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(path))
    return path
