"""Take the README's screenshots with headless Chromium against `make up` (run `make up` first).

    .venv/bin/python docs/screenshots.py        # writes docs/img/*.png

Shows: the Airflow grid of both DAGs of credit_default, the scoring DAG's trigger form, and the
MLflow run of the champion with its evaluation artifacts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> int:
    sys.path.insert(0, str(ROOT / "plugins"))
    from nightshift.io import tracking

    airflow = os.environ.get("AIRFLOW_URL", "http://127.0.0.1:8080")
    mlflow = os.environ.get("MLFLOW_URL", "http://127.0.0.1:5000")
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".local" / "airflow"))
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    champion = tracking.champion("credit_default")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{airflow}/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/" not in url)
        page.wait_for_load_state("networkidle")
        for dag_id in ("credit_default_train", "credit_default_score"):
            page.goto(f"{airflow}/dags/{dag_id}")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / f"{dag_id}_grid.png"))
        page.get_by_role("button", name="Trigger").first.click()
        page.get_by_text("Run Parameters").wait_for()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "trigger_form.png"))
        if champion:
            experiment = tracking.experiment_id("credit_default")
            page.goto(f"{mlflow}/#/experiments/{experiment}/runs/{champion.run_id}/artifacts")
            # the MLflow UI keeps polling, so "networkidle" never comes: wait for the run's own files
            page.get_by_text("model_card.html").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(OUT / "mlflow_run.png"))
        browser.close()
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
