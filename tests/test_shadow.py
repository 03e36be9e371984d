"""Shadow scoring (issue #15 item 4): the challenger scores the same live rows as the champion, pinned, into
<OUTPUT_TABLE>_SHADOW; the main table never sees shadow rows; a rerun leaves one set of shadow rows per date."""

from __future__ import annotations

from datetime import date, datetime, timezone

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
    """Version 1 is champion; version 2, trained later but held back by a gate, holds the alias `challenger`."""
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
    (root / "pipelines").mkdir()
    path = root / "pipelines" / "credit_default.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    first = harness.run_train("credit_default", "shadow__v1", interval_end=at(date(2026, 1, 25)))
    assert first.results["promote"]["alias"] == "champion", first.describe()
    spec["evaluation"]["gates"] = [{"metric": "roc_auc", "min_delta_vs_champion": 0.5}]  # no model improves that much
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    second = harness.run_train("credit_default", "shadow__v2", interval_end=at(date(2026, 2, 1)))
    assert second.results["promote"]["alias"] == "challenger", second.describe()
    spec["evaluation"]["gates"] = yaml.safe_load(SPEC.read_text())["evaluation"]["gates"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
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
