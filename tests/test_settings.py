"""The airflow_settings.yaml loader: Astro format in, Airflow's own import commands, idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from nightshift.cli import settings

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def test_conversion_to_airflow_import_formats():
    files = settings.to_import_files(yaml.safe_load((ROOT / "airflow_settings.yaml").read_text()))
    assert files["pools"]["nightshift_warehouse"]["slots"] == 1
    assert files["connections"]["aws_default"]["conn_type"] == "aws"
    assert json.loads(files["connections"]["snowflake_default"]["extra"])["warehouse"] == "COMPUTE_WH"
    assert files["variables"] == {"nightshift_environment": "local"}
    assert all(c["password"] is None for c in files["connections"].values())  # placeholders only


STATE_PROBE = """
import json
from airflow.models import Connection, Pool, Variable
from airflow.utils.session import create_session
from sqlalchemy import select

with create_session() as session:
    print(json.dumps({
        "pools": {p.pool: [p.slots, p.description, p.include_deferred] for p in session.scalars(select(Pool))},
        "connections": {c.conn_id: [c.conn_type, c.host, c.schema, c.login, c.password, c.port, c.extra]
                        for c in session.scalars(select(Connection))},
        "variables": {v.key: v.val for v in session.scalars(select(Variable))},
    }))
"""


def _state() -> dict:
    """Pools, connections and variables as the metadata database holds them, decrypted, read by one
    Python process with the CLI's environment (three `airflow ... export` calls cost three CLI starts)."""
    done = subprocess.run([sys.executable, "-c", STATE_PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_apply_twice_changes_nothing(airflow_db):
    settings.apply(ROOT / "airflow_settings.yaml", AIRFLOW)
    first = _state()
    settings.apply(ROOT / "airflow_settings.yaml", AIRFLOW)
    second = _state()
    assert first == second
    assert first["pools"]["nightshift_warehouse"][0] == 1 and "snowflake_default" in first["connections"]
    assert first["variables"]["nightshift_environment"] == "local"
