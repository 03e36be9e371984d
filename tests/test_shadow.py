"""Shadow scoring (issue #15 item 4): the challenger scores the same live rows as the champion, pinned, into
<OUTPUT_TABLE>_SHADOW; the main table never sees shadow rows; a rerun leaves one set of shadow rows per date."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest
import yaml

from nightshift_demo.generate import write_credit_applications
from tests.test_nights import SPEC

pytestmark = pytest.mark.e2e
TABLE = "CREDIT_DEFAULT_SCORES"
DAY = date(2026, 2, 3)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, airflow_db):
    """Version 1 is champion; version 2, trained later and registered `as_challenger` (the train form's Param), holds the
    alias `challenger` and waits for live evidence: the spec asks for one realized date at least as good as the champion's."""
    from tests.reliability import harness

    root = tmp_path_factory.mktemp("shadow")
    write_credit_applications(root / "landing", date(2025, 10, 1), DAY, rows_per_day=30)
    patch = pytest.MonkeyPatch()
    for key, value in {"NIGHTSHIFT_CREDIT_SOURCE_URI": str(root / "landing"), "NIGHTSHIFT_LOCAL_DIR": str(root / "local"),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local' / 'mlflow.db'}",
                       "NIGHTSHIFT_WAREHOUSE": str(root / "wh.duckdb"), "NIGHTSHIFT_PIPELINES_DIR": str(root / "pipelines"),
                       "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1"}.items():
        patch.setenv(key, value)
    spec = yaml.safe_load(SPEC.read_text())
    spec["scoring"]["shadow"] = ["challenger"]
    spec["promotion"] = {"live": {"min_days": 1, "min_delta_vs_champion": 0.0}}
    (root / "pipelines").mkdir()
    path = root / "pipelines" / "credit_default.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    first = harness.run_train("credit_default", "shadow__v1", interval_end=at(date(2026, 1, 25)))
    assert first.results["promote"]["alias"] == "champion", first.describe()
    second = harness.run_train("credit_default", "shadow__v2", interval_end=at(date(2026, 2, 1)), as_challenger=True)
    assert second.results["promote"]["alias"] == "challenger", second.describe()
    assert second.results["promote"]["live_hold"], second.describe()
    yield root
    patch.undo()


def rows(root, table: str) -> list[tuple]:
    with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT MODEL_VERSION, PARTITION_DATE, COUNT(*), COUNT(DISTINCT APPLICATION_ID), "
                           f"MIN(DAG_RUN_ID), MIN(SCORED_AT) FROM {table} GROUP BY 1, 2 ORDER BY 1").fetchall()


def keys(root, table: str) -> set[str]:
    with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as con:
        return {r[0] for r in con.execute(f"SELECT APPLICATION_ID FROM {table}").fetchall()}


def test_the_challenger_scores_the_same_rows_into_its_own_table(two_versions):
    from nightshift.render import build_score_dag
    from nightshift.spec import find_spec

    dag = build_score_dag(find_spec("credit_default"))
    assert "shadow" in dag.task_dict
    conf = {"interval_start": DAY.isoformat(), "interval_end": "2026-02-04"}
    first = dag.test(logical_date=at(date(2026, 2, 4)), run_conf=conf)
    assert first.state == "success"
    main, shadow = rows(two_versions, TABLE), rows(two_versions, f"{TABLE}_SHADOW")
    assert [r[0] for r in main] == ["1"] and [r[0] for r in shadow] == ["2"]  # neither table sees the other's version
    assert main[0][1:5] == shadow[0][1:5]  # same date, same rows, same keys, same DAG run
    assert main[0][5] == shadow[0][5]  # pinned once: one SCORED_AT for the run
    assert keys(two_versions, TABLE) == keys(two_versions, f"{TABLE}_SHADOW")

    again = dag.test(logical_date=at(date(2026, 2, 5)), run_conf=conf)  # rerun of the same day
    assert again.state == "success"
    rerun = rows(two_versions, f"{TABLE}_SHADOW")
    assert [(r[0], r[1], r[2]) for r in rerun] == [(r[0], r[1], r[2]) for r in shadow]  # one set per date, not two
    assert rerun[0][4] != shadow[0][4]  # and it is the rerun's set


def test_an_unresolvable_shadow_reference_is_skipped_not_fatal(two_versions, monkeypatch):
    from nightshift.spec import find_spec
    from nightshift.steps import shadow

    spec = find_spec("credit_default")
    spec = spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"shadow": ["no_such_alias", "challenger", "1"]})})
    pinned = shadow.resolve_shadows(spec, champion_version="1")
    assert [p["model_version"] for p in pinned] == ["2"]  # unknown alias skipped, the champion itself not scored twice


def registry():
    import os

    from mlflow import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_challenger_that_failed_a_gate_is_never_promoted_live(two_versions):
    from nightshift.spec import find_spec
    from nightshift.steps import live_promotion

    client = registry()
    assert client.get_model_version("credit_default", "2").tags["nightshift.promotion"] == "pending_live"
    client.set_model_version_tag("credit_default", "2", "nightshift.promotion", "rejected")  # what a failed gate writes
    try:
        decision = live_promotion.promote_live(find_spec("credit_default"), date(2026, 2, 3), "manual__check")
    finally:
        client.set_model_version_tag("credit_default", "2", "nightshift.promotion", "pending_live")
    assert decision["decision"] == "not_pending"
    assert str(client.get_model_version_by_alias("credit_default", "champion").version) == "1"


def labelled(root, table: str, day: date):
    """(labels, scores) of `table`'s rows of `day`, joined with the landing zone's labels by application id."""
    import pandas as pd

    with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as con:
        scores = con.execute(f"SELECT APPLICATION_ID, SCORE FROM {table} WHERE PARTITION_DATE = ?", [day]).df()
    landing = pd.read_parquet(root / "landing" / f"dt={day.isoformat()}")
    joined = scores.merge(landing[["application_id", "defaulted"]], left_on="APPLICATION_ID", right_on="application_id")
    return joined["defaulted"].to_numpy(), joined["SCORE"].to_numpy()


def test_champion_and_shadow_are_judged_on_the_same_live_rows_and_the_better_one_is_promoted(two_versions):
    from sklearn.metrics import roc_auc_score

    from nightshift.io import tracking
    from nightshift.render import build_score_dag
    from nightshift.spec import find_spec

    spec = find_spec("credit_default")
    live_day = DAY - timedelta(days=spec.training.label_delay_days)  # realized by the run for DAY
    assert tracking.moment(tracking.version_window("credit_default", "2")["window_end"]).date() < live_day  # unseen by v2
    dag = build_score_dag(spec)
    assert {"shadow", "performance", "promote_live"} <= set(dag.task_dict)
    assert "shadow" in dag.task_dict["performance"].upstream_task_ids
    for day in (live_day, DAY):
        conf = {"interval_start": day.isoformat(), "interval_end": (day + timedelta(days=1)).isoformat()}
        assert dag.test(logical_date=at(day + timedelta(days=2)), run_conf=conf).state == "success"

    with duckdb.connect(str(two_versions / "wh.duckdb"), read_only=True) as con:
        found = con.execute(f"SELECT MODEL_VERSION, ROLE, PARTITION_DATE, KIND, VALUE, ROWS FROM {TABLE}_PERFORMANCE "
                            "WHERE METRIC = 'roc_auc' ORDER BY 3, 1, 4").fetchall()
    kinds = {(v, role, d, kind) for v, role, d, kind, _, _ in found}
    for version, role in (("1", "served"), ("2", "shadow")):
        assert (version, role, live_day, "realized") in kinds and (version, role, live_day, "estimated") in kinds
        assert (version, role, DAY, "estimated") in kinds
    realized = {v: (value, n) for v, _, d, kind, value, n in found if d == live_day and kind == "realized"}
    champion_auc = roc_auc_score(*labelled(two_versions, TABLE, live_day))
    shadow_auc = roc_auc_score(*labelled(two_versions, f"{TABLE}_SHADOW", live_day))
    assert realized["1"][0] == pytest.approx(champion_auc, abs=1e-9)
    assert realized["2"][0] == pytest.approx(shadow_auc, abs=1e-9)
    assert realized["1"][1] == realized["2"][1] == len(labelled(two_versions, TABLE, live_day)[0])  # same rows

    expected = "2" if shadow_auc - champion_auc >= 0.0 else "1"  # promotion.live: one date, min_delta_vs_champion 0.0
    assert str(registry().get_model_version_by_alias("credit_default", "champion").version) == expected
