"""Approval operators: ask a person (Airflow's HITL operator), then act on the answer.

Used only when the spec says `promotion.approval: required`. The request waits in the Airflow UI
(Required Actions) in the `awaiting_input` state, holding no worker slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

from nightshift.operators.base import NightshiftOperator, fail_fast
from nightshift.operators.promote import card_data
from nightshift.spec import Pipeline

from nightshift.steps.approve import APPROVE, REJECT  # light at import: heavy libraries load inside functions


class PromotionApproval(HITLOperator):
    """Asks whether the gated challenger may become champion; skips itself when there is nothing to ask."""

    def __init__(self, *, pipeline: str | Pipeline, **kwargs: Any) -> None:
        super().__init__(options=[APPROVE, REJECT], multiple=False, **kwargs)
        self.pipeline = pipeline

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.steps import approve

        ti = context["ti"]
        promotion, evaluation, ingested = (ti.xcom_pull(task_ids=t) for t in ("promote", "evaluate", "ingest"))
        if not (promotion or {}).get("awaiting_approval"):
            raise AirflowSkipException("nothing to approve: a gate failed, or this is a dry run")
        if isinstance(self.pipeline, Pipeline):
            spec = self.pipeline
        else:
            from nightshift.steps.run_spec import run_spec

            spec = run_spec(self.pipeline, context["dag_run"].dag_id, context["run_id"])
        with fail_fast():
            self.subject, self.body = approve.request(spec, promotion, evaluation, ingested["mlflow_run_id"])
        return super().execute(context)


class ApplyApprovalOperator(NightshiftOperator):
    """Move the alias per the approver's answer and rewrite the model card with who decided and why."""

    template_fields: Sequence[str] = ("pipeline", "ingested", "trained", "evaluated", "promoted", "response")

    def __init__(self, *, ingested: Any, trained: Any, evaluated: Any, promoted: Any, response: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested, self.trained, self.evaluated, self.promoted, self.response = ingested, trained, evaluated, promoted, response

    def run_step(self, context: Any) -> dict:
        from nightshift.steps import approve, model_card

        spec, ingested = self.spec, self.ingested
        record = approve.decision(spec, self.response)
        result = approve.apply(spec, self.promoted["version"], record)
        final = {**self.promoted, "alias": result["alias"]}
        text = model_card.card_markdown(spec, self.promoted["version"], self.evaluated, final, card_data(ingested, self.trained),
                                        model_card.lineage(ingested["mlflow_run_id"]), record)
        model_card.publish(spec, self.promoted["version"], ingested["mlflow_run_id"], text)
        return result
