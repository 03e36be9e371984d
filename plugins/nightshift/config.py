"""Where Nightshift keeps things, resolved from the environment with local defaults.

Every location has an embedded default under the project's `.local/` folder, and an
environment variable that points it elsewhere in production. Nothing here imports a heavy
library, so the DAG files can use it at parse time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")


def project_root() -> Path:
    """The repository root: `NIGHTSHIFT_HOME`, else two levels above this package."""
    configured = os.environ.get("NIGHTSHIFT_HOME")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[2]


def local_dir() -> Path:
    """All embedded state (Airflow home, MLflow, warehouse, run folders) lives here."""
    return Path(os.environ.get("NIGHTSHIFT_LOCAL_DIR", project_root() / ".local"))


def pipelines_dir() -> Path:
    """The folder of YAML specs that the DAG entry point renders."""
    return Path(os.environ.get("NIGHTSHIFT_PIPELINES_DIR", project_root() / "include" / "pipelines"))


def artifacts_root() -> str:
    """Root of per-run folders (snapshots, splits, reports): a local path or an s3:// URI."""
    return os.environ.get("NIGHTSHIFT_ARTIFACTS", str(local_dir() / "artifacts"))


def mlflow_tracking_uri() -> str:
    """MLflow tracking server; defaults to a SQLite file so a laptop needs no server."""
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{local_dir() / 'mlflow.db'}")


def mlflow_artifact_root() -> str:
    """Where new experiments store artifacts when the tracking URI is a local database."""
    return os.environ.get("NIGHTSHIFT_MLFLOW_ARTIFACTS", (local_dir() / "mlartifacts").as_uri())


def warehouse_path() -> Path:
    """The embedded DuckDB warehouse file."""
    return Path(os.environ.get("NIGHTSHIFT_WAREHOUSE", local_dir() / "warehouse.duckdb"))


def duckdb_memory_limit() -> str:
    """DuckDB's memory limit for the embedded warehouse (its default is 80% of RAM, used as cache by a 10M-row publish:
    458 -> 873 MiB for 10x the rows). Bounded, DuckDB spills to disk instead; measured 216 -> 260 MiB for 1M -> 4M rows."""
    return os.environ.get("NIGHTSHIFT_DUCKDB_MEMORY_LIMIT", "256MB")


def allowed_roots() -> list[Path]:
    """Folders local data may be read from and written to: the project's `data/` and `.local/`, the configured
    local folder and local artifacts root, plus `NIGHTSHIFT_ALLOWED_ROOTS` (os.pathsep-separated absolute paths).
    Absolute and normalised, not symlink-resolved (the io layer also compares real paths at read time)."""
    root = project_root()
    candidates = [root / "data", root / ".local", local_dir()]
    artifacts = artifacts_root()
    if "://" not in artifacts:
        candidates.append(Path(artifacts))
    candidates += [Path(p) for p in os.environ.get("NIGHTSHIFT_ALLOWED_ROOTS", "").split(os.pathsep) if p.strip()]
    roots: list[Path] = []
    for candidate in candidates:
        path = Path(os.path.normpath(os.path.abspath(candidate)))
        if path not in roots:
            roots.append(path)
    return roots


def safe_path_part(text: str) -> str:
    """Turn a run id such as `manual__2026-01-01T00:00:00+00:00` into a folder-safe name."""
    return _UNSAFE_PATH_CHARS.sub("_", text).strip("_") or "run"


def run_dir(pipeline: str, dag_kind: str, run_id: str) -> str:
    """The folder (or S3 prefix) that holds one DAG run's artifacts."""
    return f"{artifacts_root().rstrip('/')}/{pipeline}/{dag_kind}/{safe_path_part(run_id)}"


FAILURES_DIR_VAR = "NIGHTSHIFT_FAILURES_DIR"  # set by `nightshift run` for its one run: failed tasks leave their message there
