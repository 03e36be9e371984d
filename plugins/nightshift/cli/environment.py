"""The CLI's own Airflow: found from the project, migrated on first use, no Makefile variables needed.

`nightshift run|status|rollback` work in a fresh shell: before Airflow is imported, the project's
local Airflow home (`.local/airflow`), DAG and plugin folders are set as defaults (an explicit
`AIRFLOW_HOME` etc. still wins), and an Airflow home without a metadata database is migrated and
given the project's settings (pools, connections) once, with the output in a log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nightshift import config


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or config.local_dir() / "airflow")


def set_defaults() -> None:
    """Point Airflow at this project unless the environment already says otherwise (call before importing Airflow)."""
    root = config.project_root()
    os.environ.setdefault("NIGHTSHIFT_HOME", str(root))
    os.environ.setdefault("AIRFLOW_HOME", str(airflow_home()))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(root / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(root / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")


def _uses_embedded_database() -> bool:
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    return not url or url.startswith("sqlite")


def ensure_metadata_database() -> None:
    """`airflow db migrate` (and the project's settings) the first time this Airflow home is used."""
    home = airflow_home()
    if not _uses_embedded_database() or (home / "airflow.db").exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    log = home / "migrate.log"
    print(f"first use of {home}: migrating Airflow's metadata database (log: {log})", flush=True)
    with log.open("w") as out:
        steps = [[sys.executable, "-m", "airflow", "db", "migrate"]]
        settings = config.project_root() / "airflow_settings.yaml"
        if settings.exists():
            airflow = str(Path(sys.executable).parent / "airflow")  # PATH may not hold the venv in a fresh shell
            steps.append([sys.executable, "-m", "nightshift.cli.settings", str(settings), "--airflow", airflow])
        for command in steps:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(command[1:])}` failed; see {log}")
