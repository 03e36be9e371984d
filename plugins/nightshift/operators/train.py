"""Train operator: fit the feature transformer and the estimator together, log one sklearn Pipeline to MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.base import NightshiftOperator, run_id
from nightshift.operators.lineage import LineageMixin, location_dataset


def lineage_tags(spec: Any, context: Any, ingested: dict) -> dict:
    """What the model version records about the data and code that made it."""
    from nightshift.io import tracking

    window = ingested.get("window") or {}
    return {
        "dag_run_id": run_id(context), "spec_hash": spec.spec_hash(), "git_commit": tracking.git_commit(),
        "data_hash": ingested["data_hash"], "window_start": window.get("start"), "window_end": window.get("end"),
        "train_source": ingested["source"],
    }


class TrainOperator(LineageMixin, NightshiftOperator):
    """Fit on `prepared`'s training split only (after optional tuning); the model goes to the run's MLflow run."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "prepared")
    ui_color = "#f3e8fd"

    def __init__(self, *, ingested: Any, prepared: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.prepared = ingested, prepared

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import train

        spec = self.spec
        try:
            trained = train.train(spec, self.prepared["train_uri"], self.ingested["mlflow_run_id"],
                                  lineage_tags(spec, context, self.ingested), self.prepared.get("train_rows_available"))
        except ValueError as exc:  # bad parameters or data the estimator refuses: no retry can fix it
            from nightshift.steps.ingest import IngestError

            raise IngestError(f"training failed: {exc}") from exc
        self.record_lineage([location_dataset(self.prepared["train_uri"])])
        return trained
