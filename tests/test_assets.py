"""The scores Asset: publish updates `nightshift://<name>/scores`, which queues a DAG scheduled on it; a dry run does not.

A consumer DAG (`schedule=[scores_asset("credit_default")]`) lives in a temporary DAG bundle and is serialized into
the test's metadata DB as the DAG processor would; after a scoring run, Airflow's own tables must show the asset
event with its extra and the consumer in the asset queue, and the scheduler's query must find it due.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from textwrap import dedent

import duckdb
import pytest
from sqlalchemy import delete, select

from nightshift.operators.assets import scores_asset
from nightshift.render import build_score_dag, build_train_dag
from nightshift.spec import find_spec

from dag_bundles import add_bundle

pytestmark = pytest.mark.e2e
TRAIN_AT = datetime(2026, 2, 1, tzinfo=timezone.utc)
CONSUMER = "credit_default_scores_consumer"
CONSUMER_FILE = f'''
from datetime import datetime, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from nightshift.operators.assets import scores_asset

with DAG("{CONSUMER}", schedule=[scores_asset("credit_default")], start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
    EmptyOperator(task_id="read_fresh_scores")
'''


def serialize_consumer(folder) -> None:
    """Parse the consumer's bundle and write it to the metadata DB (what the DAG processor does), unpaused."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="consumers")
    assert CONSUMER in bag.dags, bag.import_errors
    sync_bag_to_db(bag, "consumers", None)
    with create_session() as session:
        session.get(DagModel, CONSUMER).is_paused = False  # paused DAGs are never queued by asset events


def asset_state(run_id: str):
    """This run's events of the scores asset, and the consumer's queue row (or None)."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == scores_asset("credit_default").uri))
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == run_id)).all()
        queued = session.scalar(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id,
                                                               AssetDagRunQueue.target_dag_id == CONSUMER))
        return [(e.source_dag_id, e.source_task_id, dict(e.extra)) for e in events], queued is not None


def consumer_is_due() -> bool:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        _, triggered = DagModel.dags_needing_dagruns(session)
        return CONSUMER in triggered


def test_publish_updates_scores_asset_and_queues_consumer_but_dry_run_does_not(
    airflow_db, local_state, credit_data, tmp_path, monkeypatch
):
    spec = find_spec("credit_default")
    assert build_train_dag(spec).test(logical_date=TRAIN_AT).state == "success"
    folder = tmp_path / "consumers"
    folder.mkdir()
    (folder / "consumer_dag.py").write_text(dedent(CONSUMER_FILE))
    add_bundle(monkeypatch, "consumers", folder)
    serialize_consumer(folder)

    score = build_score_dag(spec).test(logical_date=TRAIN_AT + timedelta(days=2))
    assert score.state == "success"
    events, queued = asset_state(score.run_id)
    assert len(events) == 1, events
    source_dag, source_task, extra = events[0]
    assert (source_dag, source_task) == (spec.score_dag_id, "publish")
    with duckdb.connect(str(local_state / "warehouse.duckdb"), read_only=True) as con:
        dates, rows = con.execute(f"SELECT LIST(DISTINCT CAST(PARTITION_DATE AS VARCHAR)), COUNT(*) FROM {spec.scoring.output_table}").fetchone()
    assert extra == {"table": spec.scoring.output_table, "partition_dates": dates, "model_name": "credit_default",
                     "model_version": "1", "rows": rows, "dag_run_id": score.run_id}
    assert rows > 0 and dates == [score.data_interval_start.date().isoformat()]
    assert queued and consumer_is_due()

    # a dry run scores into staging only: publish is skipped, so no event and nothing queued
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == CONSUMER))
    dry = build_score_dag(spec).test(logical_date=TRAIN_AT + timedelta(days=3), run_conf={"dry_run": True})
    assert dry.state == "success" and dry.get_task_instance("publish").state == "skipped"
    assert asset_state(dry.run_id) == ([], False)
    assert not consumer_is_due()
