"""End to end: nightly scoring after training, through dag.test(), on small generated data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest

from nightshift import config
from nightshift.io import tracking
from nightshift.io.warehouse import DuckDBWarehouse
from nightshift_demo.generate import write_credit_applications
from nightshift.render import build_score_dag, build_train_dag
from nightshift.spec import find_spec
from nightshift.steps import publish, score

pytestmark = pytest.mark.e2e
TABLE = "CREDIT_DEFAULT_SCORES"
LINEAGE_FREE = ["APPLICATION_ID", "SCORE", "LABEL", "MODEL_NAME", "MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE"]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, airflow_db):
    """One trained champion for the module: data, MLflow store and a registered version 1."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("score")
    landing = root / "landing"
    write_credit_applications(landing, date(2025, 6, 1), date(2026, 2, 10), rows_per_day=40)
    patch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(landing))
    patch.setenv("NIGHTSHIFT_LOCAL_DIR", str(root / "local"))
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'local' / 'mlflow.db'}")
    dag_run = build_train_dag(find_spec("credit_default")).test(logical_date=at("2026-02-01"))
    assert dag_run.state == "success"
    yield {"landing": landing, "root": root}
    patch.undo()


def run_score(logical_day: str, **params):
    dag = build_score_dag(find_spec("credit_default"))
    dag_run = dag.test(logical_date=at(logical_day), run_conf=params or None)
    states = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id, ti.state)
    return dag_run, states


def table(path, where: str = "TRUE") -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            return con.execute(f"SELECT * FROM {TABLE} WHERE {where} ORDER BY APPLICATION_ID").df()
        except duckdb.CatalogException:
            return pd.DataFrame()


def test_scores_the_interval_with_lineage_and_declared_types(trained, warehouse):
    dag_run, states = run_score("2026-02-03")
    assert dag_run.state == "success", states
    day = (dag_run.data_interval_start).date()  # the UTC day the interval starts in
    source = pd.read_parquet(trained["landing"] / f"dt={day}" / "part-0.parquet")
    rows = table(warehouse)
    assert len(rows) == len(source) and set(rows["APPLICATION_ID"]) == set(source["application_id"])
    assert set(rows["PARTITION_DATE"].astype(str)) == {day.isoformat()}
    assert set(rows["MODEL_NAME"]) == {"credit_default"} and set(rows["MODEL_VERSION"]) == {"1"}
    champion = tracking.champion("credit_default")
    assert set(rows["MLFLOW_RUN_ID"]) == {champion.run_id}
    assert rows["SCORE"].between(0, 1).all() and set(rows["LABEL"]) <= {0, 1}
    assert (rows["LABEL"] == (rows["SCORE"] >= 0.3)).all()
    assert rows["DAG_RUN_ID"].nunique() == 1 and rows["SCORED_AT"].notna().all()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        types = dict(con.execute(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{TABLE}'").fetchall())
    assert types == {
        "APPLICATION_ID": "VARCHAR", "SCORE": "DOUBLE", "LABEL": "BIGINT", "MODEL_NAME": "VARCHAR", "MODEL_VERSION": "VARCHAR",
        "MLFLOW_RUN_ID": "VARCHAR", "PARTITION_DATE": "DATE", "DAG_RUN_ID": "VARCHAR", "SCORED_AT": "TIMESTAMP WITH TIME ZONE",
    }
    shard_counts = [ti for ti in dag_run.get_task_instances() if ti.task_id == "score"]
    assert len(shard_counts) == 4


def test_rerun_of_a_date_replaces_rows_identically(trained, warehouse):
    first, _ = run_score("2026-02-04")
    before = table(warehouse)
    second, _ = run_score("2026-02-04")
    after = table(warehouse)
    assert first.state == second.state == "success"
    assert len(after) == len(before) and after["APPLICATION_ID"].is_unique
    pd.testing.assert_frame_equal(before[LINEAGE_FREE], after[LINEAGE_FREE])
    assert set(after["DAG_RUN_ID"]) == {second.run_id}


def test_dry_run_scores_but_does_not_publish(trained, warehouse):
    dag_run, states = run_score("2026-02-05", dry_run=True)
    # publish is skipped (not "success"), so the scores Asset gets no event for rows that were never published
    assert dag_run.state == "success" and states["publish"] == "skipped"
    assert states["monitor"] == "success" and states["summary"] == "success"
    assert table(warehouse).empty


def test_interval_override_scores_several_days(trained, warehouse):
    dag_run, _ = run_score("2026-02-05", interval_start="2026-02-06", interval_end="2026-02-09")
    assert dag_run.state == "success"
    counts = table(warehouse).groupby("PARTITION_DATE").size()
    assert [str(d)[:10] for d in counts.index] == ["2026-02-06", "2026-02-07", "2026-02-08"]


def test_one_run_never_mixes_versions_when_champion_moves_mid_run(trained, warehouse, tmp_path):
    spec = find_spec("credit_default")
    run_dir = str(tmp_path / "run")
    model_ref = score.resolve_model(spec)
    ingested = score.ingest_scoring(spec, at("2026-02-02"), at("2026-02-03"), run_dir)
    shards = score.plan_shards(spec, ingested["snapshot_uri"])
    done = [score.score_shard(spec, ingested["snapshot_uri"], shards[0], model_ref, "run-x", at("2026-02-03"), run_dir)]
    # a second training run promotes a new champion while the scoring run is half-way
    second = build_train_dag(spec).test(logical_date=at("2026-02-08"))
    assert second.state == "success"
    client = tracking.client()
    client.set_registered_model_alias("credit_default", "champion", "2")
    try:
        assert tracking.champion("credit_default").version in (2, "2")
        done += [score.score_shard(spec, ingested["snapshot_uri"], s, model_ref, "run-x", at("2026-02-03"), run_dir) for s in shards[1:]]
        publish.publish(spec, done, ingested["partition_dates"], model_ref)
        assert set(table(warehouse)["MODEL_VERSION"]) == {model_ref["model_version"]} == {"1"}
        with pytest.raises(RuntimeError, match="scored with versions"):
            publish.publish(spec, [*done[:1], {**done[1], "model_version": "2"}], ingested["partition_dates"], model_ref)
    finally:
        client.set_registered_model_alias("credit_default", "champion", "1")


def test_failure_inside_publish_keeps_previous_rows(trained, warehouse, tmp_path):
    ok, _ = run_score("2026-02-03")
    before = table(warehouse)
    staging = sorted((config.local_dir() / "artifacts" / "credit_default" / "score").glob("*/staging/shard-000.parquet"))
    import pyarrow.parquet as pq

    schema = pq.read_schema(staging[-1])
    with pytest.raises(RuntimeError, match="expected 999999"):
        DuckDBWarehouse(str(warehouse)).publish(TABLE, schema, [str(staging[-1])], "credit_default",
                                                [pd.Timestamp(before["PARTITION_DATE"].iloc[0]).date()], 999_999)
    pd.testing.assert_frame_equal(before, table(warehouse))


def test_an_empty_partition_never_replaces_published_rows(trained, warehouse, tmp_path, monkeypatch):
    """A 0-row file for a day that already holds rows fails publish and keeps them (issue #14: no silent empty
    publish); scoring.allow_empty_days lets it through for data where empty days are real."""
    landing = tmp_path / "landing"
    write_credit_applications(landing, date(2026, 2, 1), date(2026, 2, 1), rows_per_day=40)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(landing))
    assert run_score("2026-02-03")[0].state == "success" and len(table(warehouse)) > 0
    before = table(warehouse)
    part = landing / "dt=2026-02-01" / "part-0.parquet"
    pd.read_parquet(part).head(0).to_parquet(part, index=False)
    dag_run, states = run_score("2026-02-03")
    assert dag_run.state == "failed" and states["publish"] == "failed", states
    pd.testing.assert_frame_equal(before, table(warehouse))


def test_bad_scoring_data_stops_before_publish(trained, warehouse, tmp_path, monkeypatch):
    assert run_score("2026-02-03")[0].state == "success"
    before = table(warehouse)
    landing = tmp_path / "landing"
    write_credit_applications(landing, date(2026, 2, 1), date(2026, 2, 1), rows_per_day=40)
    part = landing / "dt=2026-02-01" / "part-0.parquet"
    pd.read_parquet(part).assign(grade="Q").to_parquet(part, index=False)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(landing))
    dag_run, states = run_score("2026-02-03")
    assert dag_run.state == "failed"
    assert states["validate"] == "failed" and states["publish"] != "success"
    pd.testing.assert_frame_equal(before, table(warehouse))


def test_missing_champion_fails_first_with_a_hint(airflow_db, local_state, credit_data, tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_WAREHOUSE", str(tmp_path / "w.duckdb"))
    with pytest.raises(score.ModelNotFound, match="has no alias 'champion': run credit_default_train first"):
        score.resolve_model(find_spec("credit_default"))
    dag_run, states = run_score("2026-02-03")
    assert dag_run.state == "failed" and states["resolve_model"] == "failed"
    assert states.get("ingest") != "success"
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize("reference", ["../../etc/passwd", "s3://bucket/model.pkl", "runs:/abc/model", "1; DROP"])
def test_model_param_accepts_registry_references_only(trained, reference):
    with pytest.raises(ValueError, match="must be a registry version number or an alias name"):
        score.resolve_model(find_spec("credit_default"), reference)


def test_scoring_window_is_whole_days():
    window = score.scoring_window(at("2026-02-01") + timedelta(hours=2), at("2026-02-02") + timedelta(hours=2))
    assert (window.start, window.end) == (at("2026-02-01"), at("2026-02-02"))
    hourly = score.scoring_window(at("2026-02-01") + timedelta(hours=5), at("2026-02-01") + timedelta(hours=6))
    assert (hourly.start, hourly.end) == (at("2026-02-01"), at("2026-02-02"))
