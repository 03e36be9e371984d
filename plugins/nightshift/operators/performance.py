"""Performance operators: estimated and realized performance of the published scores; the degradation Asset event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from nightshift.operators.assets import degradation_asset
from nightshift.operators.base import NightshiftOperator, params, run_id
from nightshift.operators.lineage import LineageMixin, table_dataset

XCOM_KEY = "performance"


class PerformanceOperator(LineageMixin, NightshiftOperator):
    """Estimated performance of the run's dates and realized performance of the dates whose labels matured, read from
    the published scores; rows to `<OUTPUT_TABLE>_PERFORMANCE` (one transaction per run), a report in the run folder,
    an alert when a realized value degrades. Runs after publish succeeded, also when monitor failed; a dry run is skipped."""

    template_fields: Sequence[str] = ("pipeline", "ingested")
    ui_color = "#eaf4ff"

    def __init__(self, *, ingested: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested

    def run_step(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.operators import alerts
        from nightshift.steps import performance

        if params(context).get("dry_run"):
            raise AirflowSkipException("dry run: nothing published, no performance rows")
        if not self.ingested:
            raise AirflowSkipException("nothing was ingested: no dates to evaluate")
        spec = self.spec
        computed_at = context["dag_run"].start_date or datetime.now(timezone.utc)
        summary = {**performance.performance(spec, self.ingested, run_id(context), computed_at), "dag_run_id": run_id(context)}
        context["ti"].xcom_push(key=XCOM_KEY, value=summary)
        if summary.get("rows_written"):
            self.record_lineage(outputs=[(*table_dataset(performance.performance_table(spec), spec.scoring.warehouse_conn_id),
                                          summary["rows_written"])])
        if summary["verdict"] == performance.DEGRADED:
            alerts.send(spec, context, performance.message(summary))
        return summary


class PerformanceEventOperator(NightshiftOperator):
    """Emit the degradation Asset event when realized performance degraded (it schedules `<name>_train`); skip otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        pipeline = kwargs.get("pipeline")
        kwargs.setdefault("outlets", [degradation_asset(getattr(pipeline, "name", pipeline))])
        super().__init__(**kwargs)

    def run_step(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        summary = context["ti"].xcom_pull(task_ids="performance", key=XCOM_KEY)
        if not summary or summary.get("verdict") != "degraded":
            raise AirflowSkipException(f"no degraded realized performance (verdict {summary and summary.get('verdict')})")
        extra = {k: summary[k] for k in ("pipeline", "metric", "degraded", "dag_run_id", "report")}
        asset = degradation_asset(self.spec.name)
        context["outlet_events"][asset].extra = extra
        self.log.info("degradation asset %s updated: %s", asset.uri, extra)
        return extra


class PromoteLiveOperator(NightshiftOperator):
    """After performance: move `champion` to a challenger waiting for live evidence once its realized metric on the same
    live rows clears `promotion.live` (nightshift.steps.live_promotion); a dry run or an empty run is skipped."""

    template_fields: Sequence[str] = ("pipeline", "ingested")
    ui_color = "#fde8e8"

    def __init__(self, *, ingested: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested

    def run_step(self, context: Any) -> dict:
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.steps import live_promotion

        if params(context).get("dry_run") or not self.ingested:
            raise AirflowSkipException("dry run or nothing ingested: no live evidence to weigh")
        last = max(date.fromisoformat(d) for d in self.ingested["partition_dates"])
        return live_promotion.promote_live(self.spec, last, run_id(context))
