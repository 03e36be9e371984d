"""The bridge from Airflow tasks to the governance steps: report, model card, approval.

Like nightshift.operators.runtime, it only reads the context and upstream XComs and calls plain functions;
it is imported when a task runs, never at DAG parse time.
"""

from __future__ import annotations

import logging

from nightshift.io import storage
from nightshift.spec import Pipeline, find_spec
from nightshift.steps import approve, evaluate, model_card, report
from nightshift.steps.train import target_values

log = logging.getLogger(__name__)


def _validation(context: dict) -> dict | None:
    ti = context.get("ti")
    return ti.xcom_pull(task_ids="validate") if ti is not None else None


def after_evaluate(spec: Pipeline, context: dict, ingested: dict, prepared: dict, trained: dict, evaluation: dict) -> dict:
    """Slices, fairness and the evaluation report; returns what promote needs to check every gate."""
    model = evaluate.load_model(trained["model_uri"])
    test = storage.read_parquet(prepared["test_uri"])
    y_train = target_values(spec, storage.read_parquet(prepared["train_uri"], columns=[spec.target.column]))
    data = {**{k: ingested.get(k) for k in ("source", "rows", "window", "data_hash", "mlflow_run_id")},
            "train_rows": prepared.get("train_rows"), "test_rows": len(test), "dag_run_id": context.get("run_id")}
    html_text, assessed, gates = report.build(spec, model, test, y_train, evaluation, data, _validation(context))
    record = {"evaluation": evaluation, **assessed, "gates": gates, "data": data}
    uri = report.publish(html_text, record, ingested.get("mlflow_run_id"), ingested["run_dir"])
    return {**assessed, "report_uri": uri}


def _card_data(ingested: dict, trained: dict) -> dict:
    return {"source": ingested.get("source"), "rows": ingested.get("rows"), "train_rows": trained.get("train_rows")}


def after_promote(spec: Pipeline, ingested: dict, trained: dict, evaluation: dict, promotion: dict) -> dict:
    """Write the model card of the version promote registered (none for a dry run)."""
    if not promotion.get("version"):
        return promotion
    run_id = ingested["mlflow_run_id"]
    text = model_card.card_markdown(spec, promotion["version"], evaluation, promotion, _card_data(ingested, trained),
                                    model_card.lineage(run_id))
    return {**promotion, "model_card": model_card.publish(spec, promotion["version"], run_id, text)}


def approval_request(pipeline: str, context: dict) -> tuple[str, str] | None:
    """Subject and body for the approver, or None when there is nothing to approve (gates failed, dry run)."""
    ti = context["ti"]
    promotion, evaluation, ingested = (ti.xcom_pull(task_ids=t) for t in ("promote", "evaluate", "ingest"))
    if not (promotion or {}).get("awaiting_approval"):
        return None
    return approve.request(find_spec(pipeline), promotion, evaluation, ingested["mlflow_run_id"])


def apply_approval(pipeline: str, context: dict, ingested: dict, trained: dict, evaluation: dict, promotion: dict,
                   response: dict) -> dict:
    """Act on the approver's answer, then rewrite the model card with the approval record."""
    spec = find_spec(pipeline)
    record = approve.decision(spec, response)
    result = approve.apply(spec, promotion["version"], record)
    final = {**promotion, "alias": result["alias"]}
    text = model_card.card_markdown(spec, promotion["version"], evaluation, final, _card_data(ingested, trained),
                                    model_card.lineage(ingested["mlflow_run_id"]), record)
    model_card.publish(spec, promotion["version"], ingested["mlflow_run_id"], text)
    return result
