"""A hand-written pair of DAGs on Nightshift's operators, with the pipeline built in Python (no YAML file).

Copy this file into your DAGs folder (with `plugins/` on the path) to use it. The `Pipeline` below says what a
small `include/pipelines/*.yaml` would say; every operator takes it as `pipeline=` instead of a spec name.
The task ids `ingest`, `validate` and `monitor` are the ones the operators pull XComs from (see docs/operators.md).

Note: `Pipeline.model_validate` checks the fields, but not the loader's extra rules (`${VAR}` substitution,
allowed roots, column references): build the values yourself, as `SOURCE_URI` does here.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from nightshift.operators.evaluate import EvaluateOperator
from nightshift.operators.features import FeaturesOperator
from nightshift.operators.ingest import IngestScoringOperator, IngestTrainingOperator
from nightshift.operators.monitor import MonitorOperator
from nightshift.operators.promote import PromoteOperator
from nightshift.operators.publish import PublishOperator
from nightshift.operators.score import PlanShardsOperator, ResolveModelOperator, ScoreShardOperator, SummaryOperator
from nightshift.operators.train import TrainOperator
from nightshift.operators.validate import ValidateOperator
from nightshift.spec import Pipeline

SOURCE_URI = os.environ.get("NIGHTSHIFT_CREDIT_SOURCE_URI", "data/landing/credit_applications")

PIPELINE = Pipeline.model_validate({
    "name": "credit_handwritten",
    "description": "Probability that a loan application defaults within 12 months (hand-written DAG example).",
    "owner": "risk-ml",
    "retries": 1,
    "schedule": {"train": "0 3 * * 0", "score": "0 2 * * *", "start_date": "2026-01-01"},
    "source": {"uri": SOURCE_URI, "format": "parquet", "partitioning": "daily", "event_time": "application_date",
               "entity_key": ["application_id"]},
    "target": {"column": "defaulted", "task": "binary"},
    "schema": {
        "application_id": {"type": "string", "nullable": False, "unique": True},
        "application_date": {"type": "timestamp", "nullable": False},
        "income": {"type": "float", "min": 0},
        "loan_amount": {"type": "float", "nullable": False, "min": 0},
        "debt": {"type": "float", "nullable": False, "min": 0},
        "utilization": {"type": "float", "min": 0, "max": 1},
        "employment_years": {"type": "integer", "nullable": False, "min": 0, "max": 70},
        "age": {"type": "integer", "nullable": False, "min": 18, "max": 120},
        "grade": {"type": "category", "nullable": False, "values": list("ABCDEFG")},
        "region": {"type": "category", "nullable": False, "values": ["north", "south", "east", "west", "central"]},
        "home_ownership": {"type": "category", "nullable": False, "values": ["rent", "own", "mortgage"]},
        "defaulted": {"type": "integer", "nullable": False, "values": [0, 1]},
    },
    "features": {
        "numeric": {"columns": ["income", "loan_amount", "utilization", "employment_years", "age"], "impute": "median"},
        "categorical": {"columns": ["grade", "region", "home_ownership"], "encode": "onehot", "unseen": "ignore"},
        "derived": [{"name": "debt_to_income", "expr": "debt / income"}],
        "drop": ["application_id", "application_date"],
    },
    "training": {"window_days": 120, "label_delay_days": 30, "split": {"method": "time", "test_fraction": 0.25},
                 "seed": 42, "min_rows": 500},
    "model": {"flavor": "xgboost", "params": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1}},
    "evaluation": {"metrics": ["roc_auc", "log_loss"], "threshold": 0.3, "gates": [{"metric": "roc_auc", "min": 0.6}]},
    "scoring": {"output_table": "CREDIT_HANDWRITTEN_SCORES", "shards": 2, "threshold": 0.3},
    "monitoring": {"drift": {"method": "psi", "warn": 0.1, "fail": 0.25}},
})

DEFAULTS = {"owner": PIPELINE.owner, "retries": PIPELINE.retries, "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": 2.0}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)

with DAG(
    dag_id="credit_handwritten_train",
    schedule=CronDataIntervalTimetable(PIPELINE.schedule.train, timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    params={"dry_run": Param(False, type="boolean"), "window_end": Param(None, type=["null", "string"], format="date")},
    tags=["nightshift", "example"],
) as train_dag:
    ingested = IngestTrainingOperator(task_id="ingest", pipeline=PIPELINE)
    validated = ValidateOperator(task_id="validate", pipeline=PIPELINE, ingested=ingested.output, include_target=True)
    prepared = FeaturesOperator(task_id="features", pipeline=PIPELINE, ingested=ingested.output)
    validated >> prepared
    trained = TrainOperator(task_id="train", pipeline=PIPELINE, ingested=ingested.output, prepared=prepared.output)
    evaluated = EvaluateOperator(task_id="evaluate", pipeline=PIPELINE, ingested=ingested.output, prepared=prepared.output,
                                 trained=trained.output)
    PromoteOperator(task_id="promote", pipeline=PIPELINE, ingested=ingested.output, trained=trained.output,
                    evaluated=evaluated.output)

with DAG(
    dag_id="credit_handwritten_score",
    schedule=CronDataIntervalTimetable(PIPELINE.schedule.score, timezone="UTC"),
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    params={"interval_start": Param(None, type=["null", "string"], format="date"),
            "interval_end": Param(None, type=["null", "string"], format="date"),
            "model": Param("champion", type="string"), "dry_run": Param(False, type="boolean")},
    tags=["nightshift", "example"],
) as score_dag:
    model_ref = ResolveModelOperator(task_id="resolve_model", pipeline=PIPELINE)
    to_score = IngestScoringOperator(task_id="ingest", pipeline=PIPELINE)
    model_ref >> to_score
    checked = ValidateOperator(task_id="validate", pipeline=PIPELINE, ingested=to_score.output, include_target=False)
    plan = PlanShardsOperator(task_id="plan_shards", pipeline=PIPELINE, ingested=to_score.output, validated=checked.output)
    scored = ScoreShardOperator.partial(task_id="score", pipeline=PIPELINE, ingested=to_score.output,
                                        model_ref=model_ref.output).expand(shard=plan.output)
    published = PublishOperator(task_id="publish", pipeline=PIPELINE, shards=scored.output, ingested=to_score.output,
                                model_ref=model_ref.output)  # outlets: the Asset nightshift://credit_handwritten/scores
    monitored = MonitorOperator(task_id="monitor", pipeline=PIPELINE, shards=scored.output, ingested=to_score.output,
                                model_ref=model_ref.output, trigger_rule="none_failed")
    summary = SummaryOperator(task_id="summary", pipeline=PIPELINE, ingested=to_score.output, model_ref=model_ref.output,
                              published=published.output, trigger_rule="none_failed")
    published >> monitored >> summary
