"""Evaluate operator: challenger and champion on the same held-out rows, every gate checked once, the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nightshift.operators.base import NightshiftOperator, run_id


class EvaluateOperator(NightshiftOperator):
    """Load the challenger once, predict the held-out rows once; metrics, slices, fairness, gates, plots,
    the report and the reference profile all come from that one prediction. `promote` reads the gates."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "prepared", "trained")
    ui_color = "#f3e8fd"

    def __init__(self, *, ingested: Any, prepared: Any, trained: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.prepared, self.trained = ingested, prepared, trained

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import evaluate

        ti = context.get("ti")
        validation = ti.xcom_pull(task_ids="validate") if ti is not None else None
        data = {**{k: self.ingested.get(k) for k in ("source", "rows", "window", "data_hash", "mlflow_run_id")},
                **{k: self.prepared.get(k) for k in ("train_rows", "train_rows_available")}, "dag_run_id": run_id(context)}
        result = evaluate.evaluate_once(self.spec, self.trained["model_uri"], self.prepared, self.ingested["mlflow_run_id"],
                                        self.ingested["run_dir"], data, validation)
        if result.get("alerts"):  # suspect labels: someone must look at the labelling (steps cannot reach Airflow's notifiers)
            from nightshift.operators import alerts

            for message in result["alerts"]:
                alerts.send(self.spec, context, message)
        return {**result, "dag_run_id": run_id(context)}
