"""The public operators without a YAML spec: docs/examples/hand_written_dag.py, trained and scored with dag.test()."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nightshift.io import tracking
from nightshift_demo.generate import write_credit_applications
from nightshift.spec import Pipeline

from dag_bundles import add_bundle

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "hand_written_dag.py"


def load_example():
    """Import the example file as Airflow's DAG processor would: a module executed from its path."""
    spec = importlib.util.spec_from_file_location("hand_written_dag_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def landing(tmp_path, monkeypatch):
    root = tmp_path / "landing" / "credit_applications"
    write_credit_applications(root, date(2025, 9, 1), date(2026, 2, 4), rows_per_day=30)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    add_bundle(monkeypatch, "nightshift-examples", EXAMPLE.parent)  # dag.test() serializes the DAG from its bundle
    return root


def test_hand_written_dags_train_register_and_publish(airflow_db, local_state, landing):
    example = load_example()
    assert isinstance(example.PIPELINE, Pipeline) and example.PIPELINE.source.uri == str(landing)
    for dag in (example.train_dag, example.score_dag):  # every task got the Pipeline object, not a spec name
        kinds = {type(getattr(t, "pipeline", None) or t.partial_kwargs["pipeline"]) for t in dag.tasks}
        assert kinds == {Pipeline}, dag.dag_id

    train_run = example.train_dag.test(logical_date=datetime(2026, 2, 1, tzinfo=timezone.utc))
    states = {ti.task_id: ti.state for ti in train_run.get_task_instances()}
    assert train_run.state == "success", states
    assert set(states.values()) == {"success"} and set(states) == set(example.train_dag.task_ids)
    client = tracking.client()
    versions = client.search_model_versions("name = 'credit_handwritten'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(client.get_registered_model("credit_handwritten").aliases["champion"]) == "1"
    assert client.get_run(versions[0].run_id).data.metrics["test_roc_auc"] >= 0.6  # the spec's gate held

    score_run = example.score_dag.test(logical_date=datetime(2026, 2, 5, tzinfo=timezone.utc),
                                       run_conf={"interval_start": "2026-02-02", "interval_end": "2026-02-04"})
    states: dict[str, set[str]] = {}
    for ti in score_run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(ti.state)
    assert score_run.state == "success", states
    assert all(s == {"success"} for s in states.values()), states
    assert len([ti for ti in score_run.get_task_instances() if ti.task_id == "score"]) == example.PIPELINE.scoring.shards

    source = pd.concat([pd.read_parquet(landing / f"dt={d}" / "part-0.parquet") for d in ("2026-02-02", "2026-02-03")])
    with duckdb.connect(str(local_state / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT APPLICATION_ID, PARTITION_DATE, MODEL_NAME, MODEL_VERSION, SCORE "
                           "FROM CREDIT_HANDWRITTEN_SCORES").df()
    assert len(rows) == len(source) and set(rows["APPLICATION_ID"]) == set(source["application_id"])
    assert sorted(set(rows["PARTITION_DATE"].astype(str))) == ["2026-02-02", "2026-02-03"]
    assert set(rows["MODEL_NAME"]) == {"credit_handwritten"} and set(rows["MODEL_VERSION"]) == {"1"}
    assert rows["SCORE"].between(0, 1).all()
