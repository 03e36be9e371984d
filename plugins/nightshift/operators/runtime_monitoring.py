"""The bridge from Airflow tasks to the monitoring steps (imported only when a task runs).

- `after_train`: the train DAG saves the reference profile with the model it just logged.
- `score_monitor`: compare, write rows and reports, alert on warn/fail, fail the task on fail.
- `score_drift_event`: update the drift Asset (extra = the summary) when the verdict is fail.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from nightshift.operators import alerts
from nightshift.operators.assets import drift_asset
from nightshift.spec import Pipeline, find_spec
from nightshift.steps import monitor, profile

log = logging.getLogger(__name__)
XCOM_KEY = "drift"


def after_train(spec: Pipeline, ingested: dict, prepared: dict, trained: dict) -> dict:
    """Profile the held-out split with the new model; saved with the model's MLflow run."""
    return profile.save_reference(spec, trained["model_uri"], prepared["test_uri"], ingested["mlflow_run_id"], ingested["run_dir"])


def score_monitor(pipeline: str, context: dict, shards: list, ingested: dict, model_ref: dict) -> dict:
    """Monitor the run's dates; a warning alerts, a failure alerts and fails (without retries)."""
    from airflow.sdk.exceptions import AirflowFailException

    spec = find_spec(pipeline)
    dry_run = bool((context.get("params") or {}).get("dry_run"))
    monitored_at = context["dag_run"].start_date or datetime.now(timezone.utc)
    summary = monitor.monitor(spec, ingested, list(shards), model_ref, context["run_id"], monitored_at, write=not dry_run)
    summary = {**summary, "dag_run_id": context["run_id"], "dry_run": dry_run}
    context["ti"].xcom_push(key=XCOM_KEY, value=summary)
    if dry_run or summary["verdict"] not in ("warn", "fail"):
        log.info("drift verdict %s%s", summary["verdict"], " (dry run: no rows, alerts or failure)" if dry_run else "")
        return summary
    message = alerts.notify(spec, context, summary)
    if summary["verdict"] == "fail":
        raise AirflowFailException(f"drift failure: {message}")
    return summary


def score_drift_event(pipeline: str, context: dict) -> dict:
    """Emit the drift Asset event for a failed verdict (it schedules `<name>_train`); skip otherwise."""
    from airflow.sdk.exceptions import AirflowSkipException

    summary = context["ti"].xcom_pull(task_ids="monitor", key=XCOM_KEY)
    if not summary or summary.get("dry_run") or summary.get("verdict") != "fail":
        raise AirflowSkipException(f"no drift failure (verdict {summary and summary.get('verdict')}): nothing to retrain")
    extra = {k: summary[k] for k in ("pipeline", "model_version", "partition_dates", "verdict", "flagged", "dag_run_id", "report")}
    context["outlet_events"][drift_asset(pipeline)].extra = extra
    log.info("drift asset %s updated: %s", drift_asset(pipeline).uri, extra)
    return extra
