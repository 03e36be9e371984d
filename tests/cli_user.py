"""Run `nightshift` the way a person does: a subprocess in a fresh shell, inside a copy of the project.

Shared by the `realdata` tier (tests/test_realdata.py) and the tutorial test (tests/test_tutorial.py); not a test module.

The copy holds what a checkout has and a run writes to (`include/` with the specs, `airflow_settings.yaml`, and the
`data/` and `.local/` folders it creates); `.venv`, `dags` and `plugins` are symlinks to this checkout. The
environment is only HOME, PATH=/usr/bin:/bin, NIGHTSHIFT_HOME (the copy) and a short retry delay: no AIRFLOW_HOME,
no venv on PATH, no MLflow variable, so the CLI has to find its Airflow home, migrate it and pick its stores by itself. Nothing is
written to the checkout.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the venv the tests run in (.venv after `make install`)


def make_project(dest: Path) -> Path:
    """A copy of the project to run the CLI in; returns its root."""
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "include", dest / "include", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "airflow_settings.yaml", dest / "airflow_settings.yaml")
    for name, target in ((".venv", VENV), ("dags", ROOT / "dags"), ("plugins", ROOT / "plugins")):
        (dest / name).symlink_to(target, target_is_directory=True)
    return dest


def user_env(project: Path, home: Path) -> dict[str, str]:
    """A fresh shell's environment: nothing of the test process leaks in."""
    home.mkdir(parents=True, exist_ok=True)
    # NIGHTSHIFT_RETRY_DELAY_SECONDS only shortens the waits between a failing task's retries (as in conftest.py)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "NIGHTSHIFT_HOME": str(project), "NIGHTSHIFT_RETRY_DELAY_SECONDS": "1"}


def run(project: Path, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`.venv/bin/nightshift ARGS` in the project, as typed in a terminal there."""
    return subprocess.run([".venv/bin/nightshift", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)


def explain(done: subprocess.CompletedProcess, project: Path | None = None) -> str:
    """What a failed command printed, plus the end of the Airflow log it names (the failing task's message)."""
    text = f"$ {' '.join(map(str, done.args))}\nexit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    if project is not None:
        for line in done.stdout.splitlines():
            if "Airflow's log: " in line:
                log = Path(line.split("Airflow's log: ", 1)[1].rstrip(")"))
                if log.exists():
                    text += f"\n--- {log} (end)\n" + log.read_text(errors="replace")[-6000:]
    return text


def warehouse_rows(project: Path, table: str) -> pd.DataFrame:
    """Every row of a scores table in the project's embedded DuckDB warehouse (read-only)."""
    import duckdb

    with duckdb.connect(str(project / ".local" / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{table}"').df()


def mlflow_client(project: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.local' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)  # explicit: an earlier in-process test may have set the global one


def version_metrics(project: Path, model: str, version: str = "1") -> dict[str, float]:
    """The held-out metrics (`test_*`) MLflow recorded for the run behind a registered version."""
    client = mlflow_client(project)
    run_id = client.get_model_version(model, version).run_id
    return {k[len("test_"):]: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("test_")}


def documented_row_key(frame: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.Series:
    """The hashed row key as docs/spec.md defines it, written from the docs alone (numeric columns only): the first
    16 hex digits of SHA-1 over the row's columns sorted by name, joined by the unit separator, whole numbers without
    a decimal point, other numbers as their shortest repr; the n-th repeat of an identical row gets `-n`."""
    columns = sorted(c for c in frame.columns if c not in exclude)

    def text(value: float) -> str:
        if pd.isna(value):
            return "\x1e"
        value = float(value)
        return str(int(value)) if value.is_integer() else repr(value)

    keys, seen = [], {}
    for row in frame[columns].itertuples(index=False):
        digest = hashlib.sha1("\x1f".join(text(v) for v in row).encode("utf-8")).hexdigest()[:16]
        n = seen.get(digest, 0)
        seen[digest] = n + 1
        keys.append(digest if n == 0 else f"{digest}-{n}")
    return pd.Series(keys, index=frame.index)
