"""The render layer: specs in, Airflow DAGs out (like astronomer-cosmos does for dbt).

Parse time stays light: this module imports Airflow's SDK, pydantic and YAML, never pandas,
scikit-learn, MLflow or Great Expectations. Each task body imports `nightshift.operators.runtime` lazily.
A spec that fails to load becomes a visible placeholder DAG instead of hiding the others.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from nightshift import config
from nightshift.render import monitoring
from nightshift.spec import Pipeline, SpecError, load_all

BASE_TAG = "nightshift"


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


def _step(task_id: str, runtime_func: str, pipeline: str, **task_kwargs):
    """A TaskFlow task that calls `nightshift.operators.runtime.<runtime_func>` with the context and upstream XComs."""

    @task(task_id=task_id, **task_kwargs)
    def run(*upstream, **context):
        from nightshift.operators import runtime

        return getattr(runtime, runtime_func)(pipeline, context, *upstream)

    return run


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
    }


def score_params() -> dict:
    """The trigger form of `<name>_score`."""
    return {
        "interval_start": Param(None, type=["null", "string"], format="date", title="Score from",
                                description="First day to score (YYYY-MM-DD); empty = the run's data interval."),
        "interval_end": Param(None, type=["null", "string"], format="date", title="Score until (exclusive)",
                              description="Day after the last day to score; empty = the run's data interval."),
        "model": Param("champion", type="string", pattern=r"^([0-9]{1,9}|[A-Za-z][A-Za-z0-9_-]{0,63})$", title="Model",
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
    """`<name>_score`: resolve_model → ingest → validate → plan_shards → score ×N → publish → summary."""
    with DAG(
        dag_id=spec.score_dag_id,
        description=f"Score {spec.name} nightly: {spec.description}"[:200],
        schedule=_timetable(spec.schedule.score),
        doc_md=score_doc(spec),
        params=score_params(),
        **_pipeline_dag_args(spec, "score"),
    ) as dag:
        model_ref = _step("resolve_model", "score_resolve_model", spec.name)()
        ingested = _step("ingest", "score_ingest", spec.name)()
        model_ref >> ingested
        validated = _step("validate", "score_validate", spec.name)(ingested)
        plan = _step("plan_shards", "score_plan", spec.name)(ingested, validated)

        @task(task_id="score")
        def score_shard(shard: dict, ingested: dict, model_ref: dict, **context):
            from nightshift.operators import runtime

            return runtime.score_shard(spec.name, context, shard, ingested, model_ref)

        scored = score_shard.partial(ingested=ingested, model_ref=model_ref).expand(shard=plan)
        published = _step("publish", "score_publish", spec.name, pool=spec.scoring.pool)(scored, ingested, model_ref)
        summary = _step("summary", "score_summary", spec.name)(ingested, model_ref, published)
        monitoring.add_monitor(spec, scored, ingested, model_ref, published, summary)
    return dag


def build_train_dag(spec: Pipeline) -> DAG:
    """`<name>_train`: ingest → validate → features → train → evaluate → promote."""
    with DAG(
        dag_id=spec.train_dag_id,
        description=f"Train {spec.name}: {spec.description}"[:200],
        schedule=monitoring.train_schedule(spec, _timetable(spec.schedule.train)),
        doc_md=train_doc(spec),
        params=train_params(),
        max_active_runs=1,
        **_pipeline_dag_args(spec, "train"),
    ) as dag:
        ingested = _step("ingest", "train_ingest", spec.name)()
        validated = _step("validate", "train_validate", spec.name)(ingested)
        prepared = _step("features", "train_features", spec.name)(ingested)
        validated >> prepared
        trained = _step("train", "train_fit", spec.name)(ingested, prepared)
        evaluated = _step("evaluate", "train_evaluate", spec.name)(ingested, prepared, trained)
        promoted = _step("promote", "train_promote", spec.name)(ingested, trained, evaluated)
        if spec.promotion.approval == "required":
            from nightshift.render.approval import add_approval  # Airflow's HITL operator, only for specs that ask

            add_approval(spec, ingested, trained, evaluated, promoted)
    return dag


def broken_spec_dag(path: Path, error: SpecError) -> DAG:
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

        @task(task_id="report_spec_error")
        def report(message: str):
            from nightshift.operators import runtime

            runtime.report_spec_error(message)

        report(str(error))
    return dag


def render_pipelines(folder: str | Path | None = None) -> dict[str, DAG]:
    """Every DAG for every spec in the folder, keyed by dag_id."""
    specs, errors = load_all(folder or config.pipelines_dir())
    dags: dict[str, DAG] = {}
    for spec in specs.values():
        for dag in (build_train_dag(spec), build_score_dag(spec)):
            dags[dag.dag_id] = dag
    for path, error in errors.items():
        dag = broken_spec_dag(path, error)
        dags[dag.dag_id] = dag
    return dags
