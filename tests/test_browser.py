"""Browser tier: Debian's Chromium, driven by Playwright, against `make up` (Airflow standalone + MLflow UI).

Logs in, sees both DAGs of the example pipeline, opens the scoring DAG's trigger form, changes its
parameters, triggers a run, and watches it succeed; the warehouse then holds that day's rows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from nightshift_demo.generate import write_credit_applications

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A trained champion and `make up`'s two servers, in a throwaway .local folder."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    home = tmp_path_factory.mktemp("browser")
    local = home / "local"
    landing = home / "landing" / "credit_applications"
    write_credit_applications(landing, date(2025, 6, 1), date(2026, 2, 5), rows_per_day=40)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NIGHTSHIFT_LOCAL_DIR": str(local),
           "AIRFLOW_HOME": str(local / "airflow"), "NIGHTSHIFT_CREDIT_SOURCE_URI": str(landing),
           "MLFLOW_TRACKING_URI": f"sqlite:///{local / 'mlflow.db'}"}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)

    def run(*cmd):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    run(str(BIN / "airflow"), "db", "migrate")
    run(str(BIN / "python"), "-m", "nightshift.cli.settings", str(ROOT / "airflow_settings.yaml"))
    run(str(BIN / "nightshift"), "run", "credit_default", "--date", "2026-02-01", "--train")
    ports = {"airflow": free_port(), "mlflow": free_port()}
    try:
        out = run(str(BIN / "python"), "-m", "nightshift.cli.devserver", "up", "--airflow-port", str(ports["airflow"]),
                  "--mlflow-port", str(ports["mlflow"]))
        password = json.loads((local / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        assert f"login admin / {password}" in out
        yield {"url": f"http://127.0.0.1:{ports['airflow']}", "mlflow": f"http://127.0.0.1:{ports['mlflow']}",
               "password": password, "local": local, "home": home}
    finally:
        stopped = run(str(BIN / "python"), "-m", "nightshift.cli.devserver", "down")
        assert "airflow (pid" in stopped and "mlflow (pid" in stopped


@pytest.fixture
def page(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)  # generous: CI machines have 2 cores and the stack is cold
        yield page
        page.screenshot(path=str(stack["home"] / "last-page.png"))  # kept in pytest's tmp folder for debugging
        browser.close()


def test_trigger_form_runs_a_scoring_run_with_changed_parameters(stack, page):
    url = stack["url"]
    page.goto(f"{url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(stack["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda current: "/auth/" not in current)
    page.wait_for_load_state("networkidle")

    page.goto(f"{url}/dags")
    page.get_by_text("credit_default_train", exact=True).first.wait_for()
    page.get_by_text("credit_default_score", exact=True).first.wait_for()

    page.goto(f"{url}/dags/credit_default_score")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    for label in ("Score from", "Score until (exclusive)"):
        dialog.get_by_text(label, exact=True).wait_for()
    for description in ("First day to score", "Day after the last day to score", "Registry version number or alias",
                        "Score into staging but do not publish"):  # every Param of the form, by its help text
        dialog.get_by_text(description).first.wait_for()
    dialog.locator("input[type=date]").nth(0).fill("2026-02-02")
    dialog.locator("input[type=date]").nth(1).fill("2026-02-03")
    model = dialog.locator("input[value=champion]")
    model.fill("1")
    dialog.get_by_role("button", name="Trigger").last.click()
    page.get_by_text("Dag Run Triggered").first.wait_for(timeout=180_000)

    run = wait_for_latest_run(url, stack["password"], "credit_default_score", timeout=420)
    assert run["conf"] == {"interval_start": "2026-02-02", "interval_end": "2026-02-03", "model": "1", "dry_run": False}
    assert run["state"] == "success", run
    page.goto(f"{url}/dags/credit_default_score/runs/{run['dag_run_id']}")
    page.get_by_text("Success", exact=True).first.wait_for()  # the run's state badge in the UI

    warehouse = stack["local"] / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT PARTITION_DATE, MODEL_VERSION, COUNT(*) FROM CREDIT_DEFAULT_SCORES GROUP BY 1, 2").fetchall()
    assert [(str(d), v) for d, v, _ in rows] == [("2026-02-02", "1")] and rows[0][2] > 0


def wait_for_latest_run(url: str, password: str, dag_id: str, timeout: float) -> dict:
    """Poll the REST API (with a login token, as the UI does) until the newest run finishes."""
    import time

    import requests

    token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = requests.get(f"{url}/api/v2/dags/{dag_id}/dagRuns", headers=headers, timeout=30,
                            params={"order_by": "-run_after", "limit": 1}).json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(3)
    raise AssertionError(f"no finished run of {dag_id} within {timeout:.0f}s")
