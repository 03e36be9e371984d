"""The bridge from an Airflow task to a step: read the context, call the plain function.

Imported only when a task runs, never at DAG parse time. Each function takes the pipeline name,
the Airflow context and the upstream tasks' small XCom dicts (URIs and summaries, never data).
Errors that no retry can fix (bad spec, bad data) fail the task at once; others are retried.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from nightshift import config
from nightshift.io import storage, tracking
from nightshift.spec import Pipeline, SpecError, find_spec
from nightshift.steps import evaluate, features, ingest, promote, publish, score, train, validate

log = logging.getLogger(__name__)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Deterministic failures (bad spec, unreadable or invalid data) skip the retries."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (SpecError, ingest.IngestError, validate.ValidationFailed, score.ModelNotFound) as exc:
        raise AirflowFailException(str(exc)) from exc


def _run_id(context: dict) -> str:
    return context["run_id"]


def _params(context: dict) -> dict:
    return context.get("params") or {}


def _param_date(context: dict, name: str) -> date | None:
    value = _params(context).get(name)
    return date.fromisoformat(str(value)) if value else None


def _lineage(spec: Pipeline, context: dict, ingested: dict) -> dict:
    window = ingested.get("window") or {}
    return {
        "dag_run_id": _run_id(context),
        "spec_hash": spec.spec_hash(),
        "git_commit": tracking.git_commit(),
        "data_hash": ingested["data_hash"],
        "window_start": window.get("start"),
        "window_end": window.get("end"),
        "train_source": ingested["source"],
    }


def train_ingest(pipeline: str, context: dict) -> dict:
    """Snapshot the training window and open the DAG run's MLflow run."""
    with fail_fast():
        spec = find_spec(pipeline)
        run_dir = config.run_dir(spec.name, "train", _run_id(context))
        end = context["data_interval_end"] or context["dag_run"].run_after  # asset-triggered runs (drift) have no interval
        summary = ingest.ingest_training(spec, end, run_dir, _param_date(context, "window_end"))
    run_id = tracking.run_for_dag_run(spec.name, _run_id(context), tags={"nightshift.pipeline": spec.name})
    tracking.client().log_param(run_id, "rows_in_window", summary["rows"])
    return {**summary, "run_dir": run_dir, "mlflow_run_id": run_id}


def train_validate(pipeline: str, context: dict, ingested: dict) -> dict:
    """Great Expectations gate before any fitting; the Data Docs go to MLflow either way."""
    spec = find_spec(pipeline)
    rows = storage.read_parquet(ingested["snapshot_uri"])
    with tempfile.TemporaryDirectory() as docs, _docs_kept(ingested, Path(docs)), fail_fast():
        return validate.validate_frame(rows, spec, include_target=True, source=ingested["source"], docs_dir=docs,
                                       files=ingested.get("file_rows"))


@contextmanager
def _docs_kept(ingested: dict, docs: Path) -> Iterator[None]:
    """Keep the Data Docs in the run folder (and the MLflow run, when there is one), pass or fail."""
    try:
        yield
    finally:
        if any(docs.iterdir()):
            storage.put_dir(docs, f"{ingested['run_dir']}/validate/data_docs")
            if ingested.get("mlflow_run_id"):
                tracking.client().log_artifacts(ingested["mlflow_run_id"], str(docs), "validation/data_docs")


def train_features(pipeline: str, context: dict, ingested: dict) -> dict:
    with fail_fast():
        return features.prepare(find_spec(pipeline), ingested["snapshot_uri"], ingested["run_dir"])


def train_fit(pipeline: str, context: dict, ingested: dict, prepared: dict) -> dict:
    spec = find_spec(pipeline)
    trained = train.train(spec, prepared["train_uri"], ingested["mlflow_run_id"], _lineage(spec, context, ingested))
    from nightshift.operators import runtime_monitoring  # the reference profile that scoring's monitor compares with

    return {**trained, **runtime_monitoring.after_train(spec, ingested, prepared, trained)}


def train_evaluate(pipeline: str, context: dict, ingested: dict, prepared: dict, trained: dict) -> dict:
    spec = find_spec(pipeline)
    result = evaluate.evaluate(spec, trained["model_uri"], prepared["test_uri"], ingested["mlflow_run_id"], ingested["run_dir"])
    from nightshift.operators import runtime_governance  # slices, fairness and the evaluation report

    result = {**result, **runtime_governance.after_evaluate(spec, context, ingested, prepared, trained, result)}
    return {**result, "dag_run_id": _run_id(context)}


def train_promote(pipeline: str, context: dict, ingested: dict, trained: dict, evaluated: dict) -> dict:
    spec = find_spec(pipeline)
    dry_run = bool(_params(context).get("dry_run"))
    promoted = promote.promote(spec, trained["model_uri"], ingested["mlflow_run_id"], evaluated, dry_run=dry_run)
    from nightshift.operators import runtime_governance  # the version's model card

    return runtime_governance.after_promote(spec, ingested, trained, evaluated, promoted)


def _score_interval(context: dict) -> tuple:
    """The run's data interval, or the trigger form's override of it."""
    start, end = _param_date(context, "interval_start"), _param_date(context, "interval_end")
    return (start or context["data_interval_start"]), (end or context["data_interval_end"])


def score_resolve_model(pipeline: str, context: dict) -> dict:
    """Pin the model version once, before any shard runs."""
    with fail_fast():
        try:
            return score.resolve_model(find_spec(pipeline), _params(context).get("model"))
        except ValueError as exc:
            raise score.ModelNotFound(str(exc)) from exc


def score_ingest(pipeline: str, context: dict) -> dict:
    with fail_fast():
        spec = find_spec(pipeline)
        run_dir = config.run_dir(spec.name, "score", _run_id(context))
        start, end = _score_interval(context)
        return {**score.ingest_scoring(spec, start, end, run_dir), "run_dir": run_dir}


def score_validate(pipeline: str, context: dict, ingested: dict) -> dict:
    """The training suite minus the target; nothing reaches the warehouse unless it passes."""
    if ingested["rows"] == 0:
        log.info("no rows to validate")
        return {"success": True, "rows": 0}
    spec = find_spec(pipeline)
    rows = storage.read_parquet(ingested["snapshot_uri"]).drop(columns=[score.PARTITION_COLUMN])
    with tempfile.TemporaryDirectory() as docs, _docs_kept(ingested, Path(docs)), fail_fast():
        return validate.validate_frame(rows, spec, include_target=False, source=ingested["source"], docs_dir=docs,
                                       files=ingested.get("file_rows"))


def score_plan(pipeline: str, context: dict, ingested: dict, validated: dict) -> list[dict]:
    return score.plan_shards(find_spec(pipeline), ingested["snapshot_uri"])


def score_shard(pipeline: str, context: dict, shard: dict, ingested: dict, model_ref: dict) -> dict:
    scored_at = context["dag_run"].start_date or context["data_interval_end"]
    return score.score_shard(find_spec(pipeline), ingested["snapshot_uri"], shard, model_ref, _run_id(context), scored_at,
                             ingested["run_dir"])


def score_publish(pipeline: str, context: dict, shards: list, ingested: dict, model_ref: dict) -> dict:
    if _params(context).get("dry_run"):
        log.info("dry run: %d scored rows left in %s/staging, warehouse untouched", sum(s["rows"] for s in shards), ingested["run_dir"])
        return {"dry_run": True, "rows": 0}
    return publish.publish(find_spec(pipeline), list(shards), ingested["partition_dates"], model_ref)


def score_summary(pipeline: str, context: dict, ingested: dict, model_ref: dict, published: dict) -> dict:
    summary = {
        "partition_dates": ingested["partition_dates"], "rows_read": ingested["rows"], "rows_published": published["rows"],
        "dry_run": published.get("dry_run", False), "model": f"{model_ref['model_name']} v{model_ref['model_version']}",
        "resolved_from": model_ref["resolved_from"],
    }
    log.info("scoring summary: %s", summary)
    return summary


def report_spec_error(message: str, context: Any = None) -> None:
    """The only task of a broken spec's placeholder DAG: fail with the loader's message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)
