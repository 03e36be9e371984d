"""`make up` / `make down`: Airflow standalone and the MLflow UI on 127.0.0.1, started and stopped by pid.

Only the runs you trigger execute (`[scheduler] use_job_schedule = False`): the sample data covers
a fixed date range, so the nightly schedule would otherwise queue runs for days that have no data.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from nightshift import config


def _pid_dir() -> Path:
    folder = config.local_dir() / "pids"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", config.local_dir() / "airflow"))


def _start(name: str, command: list[str], env: dict) -> int:
    """Start a component in its own process group; remember its pid."""
    log = open(config.local_dir() / "logs" / f"{name}.log", "a")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (_pid_dir() / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _wait(url: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            time.sleep(1)
    return False


def up(airflow_port: int, mlflow_port: int, timeout: float = 180) -> dict:
    """Start both UIs (unless running), wait until they answer, return URLs and the admin login."""
    (config.local_dir() / "logs").mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",  # standalone spawns `airflow ...` subprocesses
        "AIRFLOW_HOME": str(_airflow_home()),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(airflow_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{airflow_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{airflow_port}/execution/",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }
    if not running("airflow"):
        _start("airflow", [f"{bin_dir}/airflow", "standalone"], env)
    if not running("mlflow"):
        _start("mlflow", [f"{bin_dir}/mlflow", "ui", "--backend-store-uri", config.mlflow_tracking_uri(),
                          "--host", "127.0.0.1", "--port", str(mlflow_port)], env)
    urls = {"airflow": f"http://127.0.0.1:{airflow_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}"}
    for name, url in urls.items():
        if not _wait(url, timeout):
            raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f}s; see {config.local_dir() / 'logs' / name}.log")
    return {**urls, "user": "admin", "password": admin_password()}


def admin_password() -> str | None:
    generated = _airflow_home() / "simple_auth_manager_passwords.json.generated"
    for _ in range(30):
        if generated.exists():
            return json.loads(generated.read_text()).get("admin")
        time.sleep(1)
    return None


def running(name: str) -> bool:
    pid_file = _pid_dir() / f"{name}.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
        return True
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False


def down(timeout: float = 30) -> list[str]:
    """Stop exactly the process groups `up` started, by their recorded pids."""
    stopped = []
    for pid_file in sorted(_pid_dir().glob("*.pid")):
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink()
            continue
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(pid):
            time.sleep(0.5)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
        stopped.append(f"{pid_file.stem} (pid {pid})")
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nightshift.cli.devserver", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--airflow-port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", 5000)))
    args = parser.parse_args(argv)
    if args.action == "down":
        stopped = down()
        print("stopped " + (", ".join(stopped) if stopped else "nothing (no recorded pids)"))
        return 0
    info = up(args.airflow_port, args.mlflow_port)
    print(f"Airflow UI  {info['airflow']}   login {info['user']} / {info['password']}")
    print(f"MLflow UI   {info['mlflow']}")
    print("Only triggered runs execute here. Stop both with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
