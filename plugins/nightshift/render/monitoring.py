"""Render side of monitoring: the score DAG's monitor (and drift_event) tasks, the train DAG's schedule.

Parse-time light (airflow.sdk only): the operators load the monitoring step inside `execute`.

- `monitor` runs after publish, or before it when `monitoring.block_publish_on: fail` (a drift
  failure then stops publishing). A failure fails `monitor`; `summary` depends on it, so the run
  fails too, while scores already published stay published.
- With `monitoring.retrain_on_drift`, `drift_event` (trigger rule all_done, since `monitor` may have
  failed) updates the Asset `nightshift://<name>/drift` when the verdict is fail, and skips
  otherwise. `<name>_train` is scheduled on cron OR that asset (AssetOrTimeSchedule): the idiomatic
  Airflow 3 way, visible in the UI's asset graph, with the drift summary as the event's extra.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, AssetOrTimeSchedule

from nightshift.operators.assets import drift_asset
from nightshift.operators.monitor import DriftEventOperator, MonitorOperator
from nightshift.render import performance
from nightshift.spec import Pipeline


def train_schedule(spec: Pipeline, timetable):
    """The train DAG's schedule: its cron timetable, OR the drift asset when retrain_on_drift is set."""
    assets = performance.retraining_assets(spec)
    if not assets:
        return timetable
    condition = assets if len(assets) == 1 else AssetAny(*assets)  # either event retrains
    if timetable is None:
        return condition
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


def add_monitor(spec: Pipeline, scored, ingested, model_ref, published, summary) -> None:
    """Wire monitor (and drift_event) into `<name>_score` around publish and summary."""
    monitored = MonitorOperator(task_id="monitor", pipeline=spec.name, shards=scored.output, ingested=ingested.output,
                                model_ref=model_ref.output, pool=spec.scoring.pool, trigger_rule="none_failed")
    if spec.monitoring.block_publish_on == "fail":
        monitored >> published
    else:
        published >> monitored
    monitored >> summary
    if spec.monitoring.retrain_on_drift:
        monitored >> DriftEventOperator(task_id="drift_event", pipeline=spec.name)


def score_doc(spec: Pipeline) -> str:
    """The monitoring paragraph of `<name>_score`'s docs."""
    d = spec.monitoring.drift
    where = "before publish (a failure stops it)" if spec.monitoring.block_publish_on == "fail" else "after publish"
    retrain = (f" A failure updates the Asset `{drift_asset(spec.name).uri}`, which schedules `{spec.train_dag_id}`."
               if spec.monitoring.retrain_on_drift else "")
    return (f"\n**Monitoring** ({where}): PSI per input column and for the score against the model version's training "
            f"reference; warn at {d.warn}, fail at {d.fail} (above the noise floor at significance {d.significance}). Rows go "
            f"to `{spec.scoring.output_table}_MONITORING`, reports to the run folder and MLflow "
            f"`monitoring/<date>/`; alerts to {spec.monitoring.notify.notifier or 'the task log'}.{retrain}"
            f"{performance.score_doc(spec)}")
