"""Monitoring operators: drift of the scored days against the model's reference; the drift Asset event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from nightshift.operators.assets import drift_asset
from nightshift.operators.base import NightshiftOperator, params, run_id
from nightshift.operators.lineage import LineageMixin, table_dataset

XCOM_KEY = "drift"


class MonitorOperator(LineageMixin, NightshiftOperator):
    """Compare each scored day with the pinned version's training reference; write the monitoring rows and
    reports; alert on warn, alert and fail (without retries) on fail. A dry run writes and alerts nothing."""

    template_fields: Sequence[str] = ("pipeline", "shards", "ingested", "model_ref")
    ui_color = "#fff4d6"

    def __init__(self, *, shards: Any, ingested: Any, model_ref: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shards, self.ingested, self.model_ref = shards, ingested, model_ref

    def run_step(self, context: Any) -> dict:
        from nightshift.operators import alerts
        from nightshift.steps import monitor

        spec = self.spec
        dry_run = bool(params(context).get("dry_run"))
        monitored_at = context["dag_run"].start_date or datetime.now(timezone.utc)
        summary = monitor.monitor(spec, self.ingested, list(self.shards), self.model_ref, run_id(context), monitored_at,
                                  write=not dry_run)
        summary = {**summary, "dag_run_id": run_id(context), "dry_run": dry_run}
        context["ti"].xcom_push(key=XCOM_KEY, value=summary)
        if summary.get("rows_written"):
            self.record_lineage(outputs=[(*table_dataset(monitor.monitoring_table(spec), spec.scoring.warehouse_conn_id),
                                          summary["rows_written"])])
        if dry_run or summary["verdict"] not in ("warn", "fail"):
            self.log.info("drift verdict %s%s", summary["verdict"], " (dry run: no rows, alerts or failure)" if dry_run else "")
            return summary
        message = alerts.notify(spec, context, summary)
        if summary["verdict"] == "fail":
            raise alerts.AlertedFailure(f"drift failure: {message}")
        return summary


class DriftEventOperator(NightshiftOperator):
    """Emit the drift Asset event for a failed verdict (it schedules `<name>_train`); skip otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        pipeline = kwargs.get("pipeline")
        kwargs.setdefault("outlets", [drift_asset(getattr(pipeline, "name", pipeline))])
        kwargs.setdefault("trigger_rule", "all_done")  # monitor fails on drift: this must still run
        super().__init__(**kwargs)

    def run_step(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        summary = context["ti"].xcom_pull(task_ids="monitor", key=XCOM_KEY)
        if not summary or summary.get("dry_run") or summary.get("verdict") != "fail":
            raise AirflowSkipException(f"no drift failure (verdict {summary and summary.get('verdict')}): nothing to retrain")
        keys = ("pipeline", "model_version", "partition_dates", "verdict", "flagged", "dag_run_id", "report")
        extra = {k: summary[k] for k in keys}
        asset = drift_asset(self.spec.name)
        context["outlet_events"][asset].extra = extra
        self.log.info("drift asset %s updated: %s", asset.uri, extra)
        return extra
