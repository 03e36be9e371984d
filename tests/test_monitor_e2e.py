"""End to end: monitoring rows, reports, alerts, blocking and drift-triggered retraining, through dag.test()."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest
import yaml

from nightshift import config
from nightshift.io import tracking
from nightshift_demo.generate import write_credit_applications
from nightshift.render import build_score_dag, build_train_dag
from nightshift.spec import find_spec

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
SCORES, MONITORING = "CREDIT_DEFAULT_SCORES", "CREDIT_DEFAULT_SCORES_MONITORING"
DRIFT_DAY = date(2026, 2, 11)
DRIFT_URI = "nightshift://credit_default/drift"
SMTP = {"notifier": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
        "kwargs": {"to": "risk@example.com", "subject": "{{ drift.pipeline }} drift {{ drift.verdict }}",
                   "html_content": "{{ drift_message }}"}}


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def write_spec(folder: Path, **monitoring) -> None:
    """credit_default.yaml with its monitoring section overridden."""
    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())
    raw["monitoring"] = {"drift": raw["monitoring"]["drift"], **monitoring}
    (folder / "credit_default.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, airflow_db):
    """A champion trained with retrain_on_drift and an SMTP notifier configured; a drifted day after the data."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("monitor")
    landing, specs = root / "landing", root / "pipelines"
    write_credit_applications(landing, date(2025, 6, 1), date(2026, 2, 10), rows_per_day=40)
    write_credit_applications(landing, DRIFT_DAY, DRIFT_DAY, rows_per_day=40, drift_from=DRIFT_DAY)
    specs.mkdir()
    write_spec(specs, retrain_on_drift=True, notify=SMTP)
    for name, value in {"NIGHTSHIFT_CREDIT_SOURCE_URI": landing, "NIGHTSHIFT_PIPELINES_DIR": specs, "NIGHTSHIFT_LOCAL_DIR": root / "local",
                        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local' / 'mlflow.db'}"}.items():
        patch.setenv(name, str(value))
    dag_run = build_train_dag(find_spec("credit_default")).test(logical_date=at("2026-02-01"))
    assert dag_run.state == "success"
    yield {"specs": specs}
    patch.undo()


@pytest.fixture
def sent(monkeypatch):
    """Alerts that reached Airflow's SMTP notifier (rendered), instead of an SMTP server."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    messages = []
    monkeypatch.setattr(SmtpNotifier, "notify", lambda self, context: messages.append({"subject": self.subject, "body": self.html_content}))
    return messages


def run_score(interval_start: str, interval_end: str):
    dag = build_score_dag(find_spec("credit_default"))
    dag_run = dag.test(logical_date=at(interval_end), run_conf={"interval_start": interval_start, "interval_end": interval_end})
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index in (-1, 0)}


def query(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            return con.execute(sql).df()
        except duckdb.CatalogException:
            return pd.DataFrame()


def test_every_run_leaves_rows_and_reports_without_alarm_on_stable_days(trained, warehouse, sent):
    champion = tracking.champion("credit_default")
    assert "reference/profile.json" in {a.path for a in tracking.client().list_artifacts(champion.run_id, "reference")}

    dag_run, states = run_score("2026-01-20", "2026-02-03")  # 14 stable days in one run
    assert dag_run.state == "success", states
    assert states["monitor"] == "success" and states["drift_event"] == "skipped"
    rows = query(warehouse, f"SELECT * FROM {MONITORING}")
    assert len(rows) == 14 * 10 and rows.groupby("PARTITION_DATE").size().eq(10).all()
    assert set(rows["STATUS"]) == {"ok"} and not sent
    assert rows["PSI"].max() > 0.25  # raw PSI on 40-row days crosses `fail`; the noise floor explains it
    assert set(rows["MODEL_VERSION"]) == {str(champion.version)} and set(rows["MLFLOW_RUN_ID"]) == {champion.run_id}
    run_folder = Path(config.run_dir("credit_default", "score", dag_run.run_id))
    assert len(list(run_folder.glob("monitor/*/report.html"))) == 14
    logged = {Path(a.path).name for a in tracking.client().list_artifacts(champion.run_id, "monitoring")}
    assert {"2026-01-20", "2026-02-02"} <= logged
    types = dict(query(warehouse, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{MONITORING}'").values)
    assert (types["PARTITION_DATE"], types["PSI"], types["PARTITION_ROWS"], types["MONITORED_AT"]) == ("DATE", "DOUBLE", "BIGINT", "TIMESTAMP WITH TIME ZONE")

    rerun, _ = run_score("2026-02-02", "2026-02-03")  # a rerun replaces the date's rows, never adds
    after = query(warehouse, f"SELECT * FROM {MONITORING}")
    assert rerun.state == "success" and len(after) == 140
    assert set(after.loc[after["PARTITION_DATE"] == pd.Timestamp("2026-02-02"), "DAG_RUN_ID"]) == {rerun.run_id}
    assert set(after.loc[after["PARTITION_DATE"] != pd.Timestamp("2026-02-02"), "DAG_RUN_ID"]) == {dag_run.run_id}


def test_injected_drift_alerts_fails_monitor_keeps_scores_and_triggers_retraining(trained, warehouse, sent):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    def set_paused(paused: bool) -> None:
        with create_session() as session:
            session.execute(update(DagModel).where(DagModel.dag_id == "credit_default_train").values(is_paused=paused))

    set_paused(False)  # paused DAGs ignore asset events
    try:
        dag_run, states = run_score("2026-02-11", "2026-02-12")
        with create_session() as session:
            due, triggered = DagModel.dags_needing_dagruns(session)
            due.all()  # an unread cursor would keep SQLite locked for the next test
            events = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                     .where(AssetModel.uri == DRIFT_URI, AssetEvent.source_run_id == dag_run.run_id)).all()
            extras = [e.extra for e in events]
    finally:
        set_paused(True)
    assert dag_run.state == "failed"
    assert states["monitor"] == "failed" and states["summary"] == "upstream_failed"
    assert states["publish"] == "success" and len(query(warehouse, f"SELECT * FROM {SCORES}")) > 0  # scores stay published
    flagged = query(warehouse, f"SELECT FEATURE, STATUS FROM {MONITORING} WHERE STATUS = 'fail'")
    assert {"income", "utilization"} <= set(flagged["FEATURE"])
    assert len(sent) == 1 and sent[0]["subject"] == "credit_default drift fail" and "income fail (PSI" in sent[0]["body"]
    assert states["drift_event"] == "success" and len(extras) == 1
    assert extras[0]["verdict"] == "fail" and extras[0]["partition_dates"] == ["2026-02-11"]
    assert "credit_default_train" in triggered  # the scheduler's next loop creates the asset-triggered training run


def test_block_publish_on_fail_stops_publish(trained, warehouse, sent):
    write_spec(trained["specs"], block_publish_on="fail")
    try:
        dag_run, states = run_score("2026-02-11", "2026-02-12")
    finally:
        write_spec(trained["specs"], retrain_on_drift=True, notify=SMTP)
    assert dag_run.state == "failed" and states["monitor"] == "failed"
    assert states["publish"] == "upstream_failed" and "drift_event" not in states
    assert query(warehouse, f"SELECT * FROM {SCORES}").empty
    assert "fail" in set(query(warehouse, f"SELECT STATUS FROM {MONITORING}")["STATUS"])  # the reason is on record


def test_asset_triggered_training_windows_end_at_the_trigger_time(trained):
    from nightshift.operators.ingest import IngestTrainingOperator

    context = {"data_interval_end": None, "run_id": "asset_triggered__2026-02-12T00:00:00+00:00", "params": {},
               "dag_run": SimpleNamespace(run_after=at("2026-02-12"))}
    ingested = IngestTrainingOperator(task_id="ingest", pipeline="credit_default").execute(context)
    assert ingested["window"]["end"].startswith("2026-01-13")  # trigger time minus the 30-day label delay
