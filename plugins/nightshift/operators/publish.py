"""Publish operator: every shard's rows into the warehouse in one transaction; then the scores Asset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.assets import scores_asset
from nightshift.operators.base import NightshiftOperator, params
from nightshift.operators.lineage import LineageMixin, location_dataset, model_dataset, table_dataset


class PublishOperator(LineageMixin, NightshiftOperator):
    """Replace the run's partition dates' rows with the shards' rows (delete + insert, one transaction).

    Emits the `<name>_scores` Asset with the dates, model version and rows as its extra. A dry run
    publishes nothing and is skipped, so no asset event tells consumers about scores that do not exist."""

    template_fields: Sequence[str] = ("pipeline", "shards", "ingested", "model_ref")
    ui_color = "#e3f4e8"

    def __init__(self, *, shards: Any, ingested: Any, model_ref: Any, **kwargs: Any) -> None:
        pipeline = kwargs.get("pipeline")
        name = getattr(pipeline, "name", pipeline)
        kwargs.setdefault("outlets", [scores_asset(name)])
        super().__init__(**kwargs)
        self.shards, self.ingested, self.model_ref = shards, ingested, model_ref

    def run_step(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.steps import publish

        shards = list(self.shards)
        if params(context).get("dry_run"):
            raise AirflowSkipException(f"dry run: {sum(s['rows'] for s in shards)} scored rows left in "
                                       f"{self.ingested['run_dir']}/staging, warehouse untouched")
        spec, pinned = self.spec, self.model_ref
        result = publish.publish(spec, shards, self.ingested["partition_dates"], pinned)
        extra = {"table": spec.scoring.output_table, "partition_dates": self.ingested["partition_dates"],
                 "model_name": pinned["model_name"], "model_version": pinned["model_version"], "rows": result["rows"],
                 "dag_run_id": context["run_id"]}
        context["outlet_events"][scores_asset(spec.name)].extra = extra
        self.record_lineage([*(location_dataset(s["uri"]) for s in shards), model_dataset(pinned["model_name"], pinned["model_version"])],
                            [(*table_dataset(spec.scoring.output_table, spec.scoring.warehouse_conn_id), result["rows"])])
        return result
