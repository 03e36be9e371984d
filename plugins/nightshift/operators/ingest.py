"""Ingest operators: snapshot the rows a run may see into its run folder (training window or scoring days)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift import config
from nightshift.operators.base import NightshiftOperator, check_tracking_store, interval, param_date, run_id, scoring_interval
from nightshift.operators.lineage import LineageMixin, location_dataset, source_datasets


class IngestTrainingOperator(LineageMixin, NightshiftOperator):
    """Snapshot the point-in-time training window ending at the run's interval end (or the form's `window_end`),
    and open the DAG run's MLflow run. Returns the snapshot URI, row count, window, data hash and MLflow run id."""

    ui_color = "#fdf0d5"

    def run_step(self, context: Any) -> dict:
        from nightshift.io import tracking
        from nightshift.steps import ingest

        from nightshift.steps import promote

        spec = self.spec
        check_tracking_store(spec)
        promote.check_owner(spec, self.spec_owner())  # before any training: another spec's registered model is refused
        folder = config.run_dir(spec.name, "train", run_id(context))
        summary = ingest.ingest_training(spec, interval(context)[1], folder, param_date(context, "window_end"))
        mlflow_run = tracking.run_for_dag_run(spec.name, run_id(context), tags={"nightshift.pipeline": spec.name})
        tracking.client().log_param(mlflow_run, "rows_in_window", summary["rows"])
        self.record_lineage(source_datasets(spec, summary.get("file_rows")),
                            [(*location_dataset(summary["snapshot_uri"]), summary["rows"])])
        return {**summary, "run_dir": folder, "mlflow_run_id": mlflow_run}


class IngestScoringOperator(LineageMixin, NightshiftOperator):
    """Snapshot the whole UTC days of the run's data interval (or the form's `interval_start`/`interval_end`)
    in row groups that the score shards stream."""

    ui_color = "#fdf0d5"

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import score

        spec = self.spec
        folder = config.run_dir(spec.name, "score", run_id(context))
        summary = score.ingest_scoring(spec, *scoring_interval(context), folder)
        self.record_lineage(source_datasets(spec, summary.get("file_rows")),
                            [(*location_dataset(summary["snapshot_uri"]), summary["rows"])])
        return {**summary, "run_dir": folder}


__all__: Sequence[str] = ("IngestScoringOperator", "IngestTrainingOperator")
