"""Render layer for human approval: promote → approve (Airflow HITL) → apply_approval.

Added to `<name>_train` only when the spec says `promotion.approval: required`; other specs keep
their DAG shape. The request waits in the Airflow UI (Required Actions) in the `awaiting_input`
state, holding no worker slot; the scheduler applies `promotion.on_timeout` when nobody answers.
Parse-time imports stay light: Airflow's SDK and the standard provider only.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, task

from nightshift.spec import Pipeline
from nightshift.steps.approve import APPROVE, REJECT  # light at import: heavy libraries load inside functions


class PromotionApproval(HITLOperator):
    """Asks whether the gated challenger may become champion; skips itself when there is nothing to ask."""

    def __init__(self, *, pipeline: str, **kwargs) -> None:
        super().__init__(options=[APPROVE, REJECT], multiple=False, **kwargs)
        self.pipeline = pipeline

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.operators import runtime_governance

        found = runtime_governance.approval_request(self.pipeline, context)
        if found is None:
            raise AirflowSkipException("nothing to approve: a gate failed, or this is a dry run")
        self.subject, self.body = found
        return super().execute(context)


def add_approval(spec: Pipeline, ingested, trained, evaluated, promoted) -> None:
    """Wire the approval request and the task that acts on its answer after promote."""
    policy = spec.promotion
    ask = PromotionApproval(
        task_id="approve",
        pipeline=spec.name,
        subject=f"Promote {spec.name} to champion?",
        defaults=[APPROVE if policy.on_timeout == "approve" else REJECT],
        params={"reason": Param("", type="string", title="Reason", description="Why you approve or reject (kept on the version).")},
        response_timeout=timedelta(hours=policy.timeout_hours),
        assigned_users=[{"id": user, "name": user} for user in policy.approvers] or None,
        doc_md="Approve or reject the version `promote` registered; the body shows its metrics, gates and report.",
    )
    promoted >> ask

    @task(task_id="apply_approval")
    def apply_approval(ingested: dict, trained: dict, evaluated: dict, promoted: dict, response: dict, **context):
        from nightshift.operators import runtime_governance

        return runtime_governance.apply_approval(spec.name, context, ingested, trained, evaluated, promoted, response)

    apply_approval(ingested, trained, evaluated, promoted, ask.output)
