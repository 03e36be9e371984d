"""The render layer: specs in, Airflow DAGs out (like astronomer-cosmos does for dbt).

Parse time stays light: this module imports Airflow's SDK, pydantic and YAML, never pandas,
scikit-learn, MLflow or Great Expectations. Every task is one of the project's operators (nightshift.operators),
which load their step's libraries inside `execute`.
A spec that fails to load becomes a visible placeholder DAG instead of hiding the others.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from nightshift import config
from nightshift.operators.evaluate import EvaluateOperator
from nightshift.operators.features import FeaturesOperator
from nightshift.operators.ingest import IngestScoringOperator, IngestTrainingOperator
from nightshift.operators.promote import PromoteOperator
from nightshift.operators.publish import PublishOperator
from nightshift.operators.score import PlanShardsOperator, ResolveModelOperator, ScoreShardOperator, SummaryOperator
from nightshift.operators.shadow import ShadowScoreOperator
from nightshift.operators.spec_error import SpecErrorOperator
from nightshift.operators.train import TrainOperator
from nightshift.operators.validate import ValidateOperator
from nightshift.operators.wait import DataLandedSensor
from nightshift.render import monitoring, performance
from nightshift.spec import Pipeline, SpecError, load_all
from nightshift.spec.model import MODEL_REFERENCE

BASE_TAG = "nightshift"
log = logging.getLogger(__name__)


def default_args(spec: Pipeline) -> dict:
    """Owner and retries with exponential backoff for every task."""
    return {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": timedelta(seconds=float(os.environ.get("NIGHTSHIFT_RETRY_DELAY_SECONDS", "30"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    }


def _timetable(cron: str | None) -> CronDataIntervalTimetable | None:
    return CronDataIntervalTimetable(cron, timezone="UTC") if cron else None


def _start(spec: Pipeline) -> datetime:
    d = spec.schedule.start_date
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _pipeline_dag_args(spec: Pipeline, kind: str) -> dict:
    """What the train and score DAGs of one spec share: start, catchup, tags, task defaults."""
    return {
        "start_date": _start(spec),
        "catchup": spec.schedule.catchup,
        "tags": [BASE_TAG, spec.name, kind, *spec.tags],
        "default_args": default_args(spec),
    }


def train_doc(spec: Pipeline) -> str:
    """The DAG's doc_md: what it trains, on what data, which gates."""
    gates = "\n".join([*(f"- `{g.metric}` {_gate_text(g)}" for g in spec.evaluation.gates), *_governance_gate_lines(spec)])
    gates = gates or "- none declared"
    window = (
        f"{spec.training.window_days} days ending {spec.training.label_delay_days} days before the run's interval end"
        if spec.source.event_time
        else "the whole source (no event_time column)"
    )
    return f"""### {spec.name}: training
{spec.description}

| | |
|---|---|
| owner | {spec.owner} |
| task | {spec.target.task} on `{spec.target.column}` |
| source | `{spec.source.location}` ({spec.source.format}, partitioning {spec.source.partitioning}) |
| window | {window} |
| features | {', '.join(f'`{c}`' for c in spec.feature_columns)}{_derived_text(spec)} |
| model | {spec.model.estimator or 'xgboost'} {dict(spec.model.params) or ''}{' with tuning' if spec.model.tuning else ''} |
| metrics | {', '.join(spec.metrics)} |
| registered model | `{spec.name}` (alias `champion` moves only when every gate passes) |

**Gates**
{gates}

Steps: ingest → validate (Great Expectations) → features → train → evaluate → promote{_approval_text(spec)}.
Each run leaves an evaluation report (`evaluate/report.html`) and each registered version a model card.
Trigger with `dry_run` to evaluate without touching the registry, or `window_end` to train on a past window.
Spec hash `{spec.spec_hash()}`.
"""


def _gate_text(gate) -> str:
    for rule in ("min", "max", "min_delta_vs_champion", "max_relative_drop_vs_champion"):
        if getattr(gate, rule) is not None:
            return f"{rule.replace('_', ' ')} {getattr(gate, rule)}"
    return ""


def _governance_gate_lines(spec: Pipeline) -> list[str]:
    ev = spec.evaluation
    lines = [f"- `{g.metric}` {'min' if g.min is not None else 'max'} {g.min if g.min is not None else g.max} in every "
             f"`{g.slice}` group with {ev.min_slice_rows}+ rows" for g in ev.slice_gates]
    return lines + [f"- `{g.metric}` across `{g.attribute}` groups at most {g.max}" for g in ev.fairness]


def _approval_text(spec: Pipeline) -> str:
    p = spec.promotion
    if p.approval == "none":
        return ""
    return (f" → approve (a person decides in Required Actions; {p.timeout_hours:g} h, then {p.on_timeout})"
            " → apply_approval")


def _derived_text(spec: Pipeline) -> str:
    derived = ", ".join(f"`{d.name} = {d.expr}`" for d in spec.features.derived)
    return f"; derived {derived}" if derived else ""


def train_params() -> dict:
    """The trigger form of `<name>_train`."""
    return {
        "dry_run": Param(False, type="boolean", title="Dry run", description="Evaluate and report gates; leave the registry untouched."),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Training window end",
            description="Train on the window ending on this date (YYYY-MM-DD) instead of the run's interval end.",
        ),
        "promote_backfill": Param(
            False, type="boolean", title="Promote a backfill",
            description="A run whose window ends before the current champion's is a backfill: it is registered and tagged, "
            "but moves `champion` only when this is set and every gate passes.",
        ),
        "as_challenger": Param(
            False, type="boolean", title="Register as challenger",
            description="A version that passes every gate gets alias `challenger` instead of `champion`: scoring.shadow scores it "
            "next to the champion on live rows, and the champion stays.",
        ),
    }


def score_params() -> dict:
    """The trigger form of `<name>_score`."""
    return {
        "interval_start": Param(None, type=["null", "string"], format="date", title="Score from",
                                description="First day to score (YYYY-MM-DD); empty = the run's data interval."),
        "interval_end": Param(None, type=["null", "string"], format="date", title="Score until (exclusive)",
                              description="Day after the last day to score; empty = the run's data interval."),
        "model": Param("champion", type="string", pattern=MODEL_REFERENCE, title="Model",
                       description="Registry version number or alias to score with (default: the champion)."),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Score into staging but do not publish."),
    }


def score_doc(spec: Pipeline) -> str:
    source = f"`{spec.source.location}` by `{spec.source.event_time}`" if spec.source.event_time else f"`{spec.source.score_uri}`"
    return f"""### {spec.name}: nightly scoring
{spec.description}

| | |
|---|---|
| owner | {spec.owner} |
| input | {source}, the whole UTC days of the run's data interval |
| model | `models:/{spec.name}@champion`, pinned to one version at run start (form: `model`) |
| shards | {spec.scoring.shards} (dynamic task mapping), streaming {spec.scoring.batch_rows:,}-row batches |
| output | `{spec.scoring.output_table}` in {spec.scoring.warehouse_conn_id or 'the embedded DuckDB warehouse'} |

Steps: resolve_model → ingest → validate (training suite minus `{spec.target.column}`) → plan_shards → score ×N →
publish (one transaction: delete the partition's rows, insert the new ones) → summary.
Reruns and backfills replace a date's rows; they never duplicate them.
{monitoring.score_doc(spec)}
"""


def build_score_dag(spec: Pipeline) -> DAG:
    """`<name>_score`: resolve_model → wait_for_data → ingest → validate → plan_shards → score ×N → publish → monitor → summary."""

    with DAG(
        dag_id=spec.score_dag_id,
        description=f"Score {spec.name} nightly: {spec.description}"[:200],
        schedule=_timetable(spec.schedule.score),
        doc_md=score_doc(spec),
        params=score_params(),
        max_active_runs=spec.scoring.max_active_runs,
        **_pipeline_dag_args(spec, "score"),
    ) as dag:
        name = spec.name
        model_ref = ResolveModelOperator(task_id="resolve_model", pipeline=name)
        landed = DataLandedSensor(task_id="wait_for_data", pipeline=name, wait=spec.source.wait)
        ingested = IngestScoringOperator(task_id="ingest", pipeline=name)
        model_ref >> landed >> ingested
        validated = ValidateOperator(task_id="validate", pipeline=name, ingested=ingested.output, include_target=False)
        plan = PlanShardsOperator(task_id="plan_shards", pipeline=name, ingested=ingested.output, validated=validated.output)
        scored = ScoreShardOperator.partial(task_id="score", pipeline=name, ingested=ingested.output,
                                            model_ref=model_ref.output).expand(shard=plan.output)
        published = PublishOperator(task_id="publish", pipeline=name, shards=scored.output, ingested=ingested.output,
                                    model_ref=model_ref.output, pool=spec.scoring.pool)
        summary = SummaryOperator(task_id="summary", pipeline=name, ingested=ingested.output, model_ref=model_ref.output,
                                  published=published.output, trigger_rule="none_failed")
        monitoring.add_monitor(spec, scored, ingested, model_ref, published, summary)
        shadow = None
        if spec.scoring.shadow:
            shadow = ShadowScoreOperator(task_id="shadow", pipeline=name, ingested=ingested.output, model_ref=model_ref.output,
                                         pool=spec.scoring.pool)
            published >> shadow
        performance.add_performance(spec, ingested, published, shadow)
    return dag


def build_train_dag(spec: Pipeline) -> DAG:
    """`<name>_train`: ingest → validate → features → train → evaluate → promote (→ approve → apply_approval)."""

    with DAG(
        dag_id=spec.train_dag_id,
        description=f"Train {spec.name}: {spec.description}"[:200],
        schedule=monitoring.train_schedule(spec, _timetable(spec.schedule.train)),
        doc_md=train_doc(spec),
        params=train_params(),
        max_active_runs=1,
        **_pipeline_dag_args(spec, "train"),
    ) as dag:
        name = spec.name
        ingested = IngestTrainingOperator(task_id="ingest", pipeline=name)
        validated = ValidateOperator(task_id="validate", pipeline=name, ingested=ingested.output, include_target=True)
        prepared = FeaturesOperator(task_id="features", pipeline=name, ingested=ingested.output)
        validated >> prepared
        trained = TrainOperator(task_id="train", pipeline=name, ingested=ingested.output, prepared=prepared.output)
        evaluated = EvaluateOperator(task_id="evaluate", pipeline=name, ingested=ingested.output, prepared=prepared.output,
                                     trained=trained.output)
        promoted = PromoteOperator(task_id="promote", pipeline=name, ingested=ingested.output, trained=trained.output,
                                   evaluated=evaluated.output)
        if spec.promotion.approval == "required":
            from nightshift.render.approval import add_approval  # Airflow's HITL operator, only for specs that ask

            add_approval(spec, ingested, trained, evaluated, promoted)
    return dag


def broken_spec_dag(path: Path, error: Exception) -> DAG:
    """A clearly marked placeholder for an invalid spec: its doc and its one task show the error."""

    stem = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in path.stem)
    with DAG(
        dag_id=f"invalid_spec__{stem}",
        description=f"INVALID SPEC {path.name}: fix the file to get its DAGs back",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        tags=[BASE_TAG, "invalid-spec"],
        default_args={"owner": BASE_TAG, "retries": 0},
        doc_md=f"## Invalid pipeline spec `{path.name}`\n\nThe other pipelines are unaffected.\n\n```\n{error}\n```\n",
    ) as dag:
        SpecErrorOperator(task_id="report_spec_error", message=str(error))
    return dag


def _spec_dags(path: Path, spec: Pipeline) -> list[DAG]:
    """Both DAGs of one spec, or its placeholder when Airflow refuses to build them (each spec in its own guard)."""
    try:
        return [build_train_dag(spec), build_score_dag(spec)]
    except Exception as exc:  # noqa: BLE001 - anything Airflow raises for one spec must not hide the others
        log.warning("spec %s could not be rendered: %s", path, exc)
        return [broken_spec_dag(path, SpecError(path, [("", f"Airflow could not build its DAGs: {type(exc).__name__}: {exc}")],
                                                spec.name))]


def render_pipelines(folder: str | Path | None = None) -> dict[str, DAG]:
    """Every DAG for every spec in the folder, keyed by dag_id."""
    specs, errors = load_all(folder or config.pipelines_dir())
    dags: dict[str, DAG] = {}
    for path, spec in specs.items():
        for dag in _spec_dags(path, spec):
            dags[dag.dag_id] = dag
    for path, error in errors.items():
        dag = broken_spec_dag(path, error)
        dags[dag.dag_id] = dag
    return dags
