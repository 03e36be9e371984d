"""Render layer for human approval: promote → approve (Airflow HITL) → apply_approval.

Added to `<name>_train` only when the spec says `promotion.approval: required`; other specs keep
their DAG shape. The request waits in the Airflow UI (Required Actions) in the `awaiting_input`
state, holding no worker slot; the scheduler applies `promotion.on_timeout` when nobody answers.
Parse-time imports stay light: Airflow's SDK and the standard provider only.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

from nightshift.spec import Pipeline
from nightshift.operators.approve import APPROVE, REJECT, ApplyApprovalOperator, PromotionApproval


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
    ApplyApprovalOperator(task_id="apply_approval", pipeline=spec.name, ingested=ingested.output, trained=trained.output,
                          evaluated=evaluated.output, promoted=promoted.output, response=ask.output)
