"""End to end: the training DAG through Airflow's dag.test() on small generated data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from nightshift.io import tracking
from nightshift_demo.generate import write_house_listings
from nightshift.render import build_score_dag, build_train_dag
from nightshift.spec import find_spec

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
TRAIN_DATE = datetime(2026, 2, 1, tzinfo=timezone.utc)


def run_train(pipeline: str, **params):
    dag = build_train_dag(find_spec(pipeline))
    dag_run = dag.test(logical_date=TRAIN_DATE, run_conf=params or None)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run, states


def registry_state(name: str) -> tuple[list[str], dict]:
    client = tracking.client()
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    try:
        aliases = client.get_registered_model(name).aliases
    except Exception:
        aliases = {}
    return versions, {k: str(v) for k, v in aliases.items()}


def test_train_registers_champion_then_judges_next_run_against_it(airflow_db, local_state, credit_data):
    dag_run, states = run_train("credit_default")
    assert dag_run.state == "success", states
    versions, aliases = registry_state("credit_default")
    assert versions == ["1"] and aliases == {"champion": "1"}
    version = tracking.client().get_model_version("credit_default", "1")
    assert version.tags["nightshift.promotion"] == "promoted"
    run = tracking.client().get_run(version.run_id)
    assert run.data.metrics["test_roc_auc"] > 0.65
    for tag in ("spec_hash", "data_hash", "window_start", "window_end", "dag_run_id"):
        assert run.data.tags[f"nightshift.{tag}"], tag
    expected_end = (dag_run.data_interval_end - timedelta(days=30)).date().isoformat()
    assert run.data.tags["nightshift.window_end"].startswith(expected_end)  # interval end minus the label delay
    artifacts = {a.path for a in tracking.client().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/roc_curve.png", "evaluation/pr_curve.png", "evaluation/feature_importance.png"} <= artifacts
    assert {"evaluation/report.html", "evaluation/governance.json"} <= artifacts  # governance: report and model card
    assert version.tags["nightshift.model_card"] == f"runs:/{run.info.run_id}/model_card.html"
    assert version.tags["nightshift.gate.3.region.positive_rate_gap.max"] == "pass"
    assert tracking.client().list_artifacts(run.info.run_id, "validation/data_docs")

    dry_run, states = run_train("credit_default", dry_run=True)
    assert dry_run.state == "success", states
    assert registry_state("credit_default") == (["1"], {"champion": "1"})

    second, states = run_train("credit_default")
    assert second.state == "success", states
    versions, aliases = registry_state("credit_default")
    assert versions == ["1", "2"]
    second_run = tracking.client().get_run(tracking.client().get_model_version("credit_default", "2").run_id)
    assert "champion_test_roc_auc" in second_run.data.metrics  # the champion was scored on the same rows


def test_bad_data_stops_at_validate_and_leaves_registry_untouched(airflow_db, local_state, credit_data):
    part = credit_data / "dt=2025-10-01" / "part-0.parquet"
    rows = pd.read_parquet(part)
    rows.loc[rows.index[:3], "income"] = -500.0
    rows.to_parquet(part, index=False)
    dag_run, states = run_train("credit_default")
    assert dag_run.state == "failed"
    assert states["ingest"] == "success" and states["validate"] == "failed"
    assert states["train"] != "success" and states["promote"] != "success"
    assert registry_state("credit_default") == ([], {})


def test_second_spec_regression_from_csv_trains_and_scores_without_code_change(
    airflow_db, local_state, house_data, tmp_path, monkeypatch
):
    dag_run, states = run_train("house_prices")
    assert dag_run.state == "success", states
    versions, aliases = registry_state("house_prices")
    assert versions == ["1"] and aliases == {"champion": "1"}
    run = tracking.client().get_run(tracking.client().get_model_version("house_prices", "1").run_id)
    assert run.data.metrics["test_r2"] > 0.5
    assert tracking.client().list_artifacts(run.info.run_id, "tuning")
    artifacts = {a.path for a in tracking.client().list_artifacts(run.info.run_id)}
    assert {"model_card.md", "model_card.html"} <= artifacts  # the version's model card
    assert "evaluation/report.html" in {a.path for a in tracking.client().list_artifacts(run.info.run_id, "evaluation")}

    # scoring reads one CSV per day, named by the run's date (no event-time column)
    listings = tmp_path / "listings"
    write_house_listings(listings, date(2026, 2, 1), date(2026, 2, 2), rows_per_day=50)
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SCORE_URI", f"{listings}/{{ds}}.csv")
    score_run = build_score_dag(find_spec("house_prices")).test(logical_date=TRAIN_DATE + timedelta(days=2))
    assert score_run.state == "success"
    day = score_run.data_interval_start.date().isoformat()
    with duckdb.connect(str(local_state / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT PARTITION_DATE, COUNT(*), MIN(SCORE), COUNT(DISTINCT SALE_ID) FROM HOUSE_PRICE_SCORES GROUP BY 1").fetchall()
    expected = len(pd.read_csv(listings / f"{day}.csv"))
    assert [(str(d), n, n2) for d, n, _, n2 in rows] == [(day, expected, expected)]
    assert rows[0][2] > 0  # prices


def test_max_rows_fits_on_a_sample_of_the_training_split_and_says_so(airflow_db, local_state, credit_data, tmp_path, monkeypatch):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    doc = yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())
    doc["training"]["max_rows"] = 1500
    (folder / "credit_default.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))

    dag_run, states = run_train("credit_default")
    assert dag_run.state == "success", states
    client = tracking.client()
    run = client.get_run(client.get_model_version("credit_default", "1").run_id)

    # the training split, computed here from the landing files: the window's rows, the earliest 80% by time
    landed = pd.concat([pd.read_parquet(p) for p in sorted(credit_data.glob("dt=*/*.parquet"))], ignore_index=True)
    start, end = (pd.Timestamp(run.data.tags[f"nightshift.window_{k}"]) for k in ("start", "end"))
    in_window = landed[(landed["application_date"] >= start) & (landed["application_date"] < end)]
    split_rows = round(len(in_window) * (1 - doc["training"]["split"]["test_fraction"]))
    assert split_rows > 1500
    params = run.data.params
    assert params["training.max_rows"] == "1500" and params["train_rows_available"] == str(split_rows)
    assert abs(int(params["train_rows"]) - 1500) <= 2  # per-class rounding
    report = client.download_artifacts(run.info.run_id, "evaluation/report.html", str(tmp_path))
    card = client.download_artifacts(run.info.run_id, "model_card.md", str(tmp_path))
    expected = f"{int(params['train_rows'])} (a seeded sample of {split_rows}; training.max_rows)"
    assert expected in Path(report).read_text() and expected in Path(card).read_text()
    held_out = len(in_window) - split_rows  # the held-out rows stay whole
    assert f"<td>held-out rows</td><td>{held_out}</td>" in Path(report).read_text()
