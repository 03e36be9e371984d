"""Render side of performance monitoring: the score DAG's `performance` (and `performance_event`) tasks.

Parse-time light (airflow.sdk only). `performance` runs after publish, and only when publish succeeded (data that failed
validation writes no row anywhere), in parallel with monitor (a drift failure must not hide it); with `monitoring.performance.retrain_on_degradation`, `performance_event` updates
the Asset `nightshift://<name>/degradation` when a realized value degraded, and `<name>_train` is scheduled on it too.
"""

from __future__ import annotations

from nightshift.operators.assets import degradation_asset, drift_asset
from nightshift.operators.performance import PerformanceEventOperator, PerformanceOperator, PromoteLiveOperator
from nightshift.spec import Pipeline


def retraining_assets(spec: Pipeline) -> list:
    """The Assets `<name>_train` is scheduled on besides its cron: drift and/or degradation."""
    performance = spec.monitoring.performance
    return [*([drift_asset(spec.name)] if spec.monitoring.retrain_on_drift else []),
            *([degradation_asset(spec.name)] if performance.enabled and performance.retrain_on_degradation else [])]


def add_performance(spec: Pipeline, ingested, published, shadow=None) -> None:
    """Wire performance (and performance_event, promote_live) into `<name>_score` after publish and the shadow scores."""
    if not spec.monitoring.performance.enabled or spec.target.task not in ("binary", "regression"):
        return
    evaluated = PerformanceOperator(task_id="performance", pipeline=spec.name, ingested=ingested.output, pool=spec.scoring.pool)
    published >> evaluated  # not after monitor: a drift failure must not hide performance
    if shadow is not None:
        shadow >> evaluated  # shadow versions are judged on the same rows, in the same run
    if spec.promotion.live is not None:
        evaluated >> PromoteLiveOperator(task_id="promote_live", pipeline=spec.name, ingested=ingested.output)
    if spec.monitoring.performance.retrain_on_degradation:
        evaluated >> PerformanceEventOperator(task_id="performance_event", pipeline=spec.name)


def score_doc(spec: Pipeline) -> str:
    p = spec.monitoring.performance
    if not p.enabled or spec.target.task not in ("binary", "regression"):
        return ""
    metric = p.metric or spec.metrics[0]
    retrain = (f" A degraded value updates the Asset `{degradation_asset(spec.name).uri}`, which schedules `{spec.train_dag_id}`."
               if p.retrain_on_degradation else "")
    return (f"\n**Performance** (after publish): estimated{' (CBPE)' if spec.target.task == 'binary' else ''} for the run's dates, "
            f"realized for the dates {spec.training.label_delay_days} days earlier (labels matured), with "
            f"{p.confidence:.0%} bootstrap intervals; `{metric}` more than {p.max_drop} below the version's held-out value is "
            f"degraded and alerts. Rows go to `{spec.scoring.output_table}_PERFORMANCE`.{retrain}")
