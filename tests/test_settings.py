"""The airflow_settings.yaml loader: Astro format in, Airflow's own import commands, idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from nightshift import settings

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def test_conversion_to_airflow_import_formats():
    files = settings.to_import_files(yaml.safe_load((ROOT / "airflow_settings.yaml").read_text()))
    assert files["pools"]["nightshift_warehouse"]["slots"] == 1
    assert files["connections"]["aws_default"]["conn_type"] == "aws"
    assert json.loads(files["connections"]["snowflake_default"]["extra"])["warehouse"] == "COMPUTE_WH"
    assert files["variables"] == {"nightshift_environment": "local"}
    assert all(c["password"] is None for c in files["connections"].values())  # placeholders only


def _export(kind: str, tmp_path: Path) -> str:
    target = tmp_path / f"{kind}.json"
    done = subprocess.run([AIRFLOW, kind, "export", str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return target.read_text()


def test_apply_twice_changes_nothing(airflow_db, tmp_path):
    settings.apply(ROOT / "airflow_settings.yaml", AIRFLOW)
    first = {k: _export(k, tmp_path) for k in ("pools", "connections", "variables")}
    settings.apply(ROOT / "airflow_settings.yaml", AIRFLOW)
    second = {k: _export(k, tmp_path) for k in ("pools", "connections", "variables")}
    assert first == second
    assert "nightshift_warehouse" in first["pools"] and "snowflake_default" in first["connections"]
