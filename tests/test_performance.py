"""Performance monitoring: CBPE and bootstrap maths against scikit-learn, then the step and the `performance` task of
`<name>_score` on generated credit data: estimated rows for the scored days, realized rows for the day whose labels
matured, one set of rows after a rerun, degradation from flipped labels."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nightshift import config
from nightshift.io import tracking
from nightshift.ml import metrics
from nightshift.ml import performance as perf
from nightshift.spec import find_spec
from nightshift.spec.model import Labels

PERFORMANCE = "CREDIT_DEFAULT_SCORES_PERFORMANCE"
BACKFILL, LATER = "2026-01-05", "2026-02-04"  # label_delay_days is 30: the run of LATER realizes BACKFILL


# --- maths -------------------------------------------------------------------------------------

def test_cbpe_matches_realized_metrics_when_scores_are_calibrated():
    rng = np.random.default_rng(7)
    p = rng.beta(2, 5, size=5000)
    y = (rng.random(p.size) < p).astype(int)  # labels drawn from the scores: calibrated by construction
    estimated = perf.estimate(["roc_auc", "pr_auc", "accuracy", "precision", "recall", "log_loss", "brier"], p, 0.3)
    realized = {"roc_auc": skm.roc_auc_score(y, p), "pr_auc": skm.average_precision_score(y, p),
                "accuracy": skm.accuracy_score(y, p >= 0.3), "precision": skm.precision_score(y, p >= 0.3),
                "recall": skm.recall_score(y, p >= 0.3), "log_loss": skm.log_loss(y, p), "brier": skm.brier_score_loss(y, p)}
    for name, value in realized.items():
        assert estimated[name] == pytest.approx(value, abs=0.025), name
    low, high = perf.estimate_interval(["roc_auc"], p, threshold=0.3, resamples=100, seed=1)["roc_auc"]
    assert low < realized["roc_auc"] < high and high - low < 0.05


def test_cbpe_on_breast_cancer_is_close_for_a_calibrated_model_and_flagged_by_ece_when_not():
    X, y = load_breast_cancer(return_X_y=True)
    X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    calibrated = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(X_fit, y_fit)
    p = calibrated.predict_proba(X_test)[:, 1]
    estimated = perf.estimate(["roc_auc", "accuracy", "precision", "recall"], p, 0.5)
    assert estimated["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, p), abs=0.02)  # tolerance: 0.02 on 285 rows
    assert estimated["accuracy"] == pytest.approx(skm.accuracy_score(y_test, p >= 0.5), abs=0.03)
    assert estimated["precision"] == pytest.approx(skm.precision_score(y_test, p >= 0.5), abs=0.03)
    assert perf.calibration(y_test, p)["ece"] < 0.05

    squeezed = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000)).fit(X_fit, y_fit)  # underconfident
    q = squeezed.predict_proba(X_test)[:, 1]
    found = perf.calibration(y_test, q)
    assert found["ece"] > 0.05  # the report says the estimate cannot be trusted ...
    assert abs(perf.estimate(["accuracy"], q, 0.5)["accuracy"] - skm.accuracy_score(y_test, q >= 0.5)) > 0.05  # ... rightly
    by_hand = sum(b["rows"] * abs(b["mean_score"] - b["observed"]) for b in found["bins"]) / len(q)
    assert found["ece"] == pytest.approx(by_hand) and sum(b["rows"] for b in found["bins"]) == len(q)


def test_bootstrap_is_seeded_and_covers_the_value():
    rng = np.random.default_rng(3)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    first = perf.bootstrap("binary", ["roc_auc", "log_loss"], y, p, resamples=200, confidence=0.9, seed=5)
    assert first == perf.bootstrap("binary", ["roc_auc", "log_loss"], y, p, resamples=200, confidence=0.9, seed=5)
    low, high = first["roc_auc"]
    assert low < skm.roc_auc_score(y, p) < high
    names = ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1"]
    fast, reference = perf.binary_metrics(names, y, np.round(p, 2), 0.3), metrics.compute("binary", names, y, np.round(p, 2), 0.3)
    assert fast == pytest.approx(reference, abs=1e-12)  # the resampling loops' numpy metrics are sklearn's (ties included)
    assert perf.status("roc_auc", 0.70, 0.80, 0.05, 100, 30) == "degraded"
    assert perf.status("roc_auc", 0.77, 0.80, 0.05, 100, 30) == "ok"
    assert perf.status("log_loss", 0.60, 0.50, 0.05, 100, 30) == "degraded"  # lower is better
    assert perf.status("roc_auc", 0.50, 0.80, 0.05, 10, 30) == "insufficient"


# --- the step and the DAG on generated data ------------------------------------------------------

def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, airflow_db):
    from nightshift.render import build_train_dag
    from nightshift_demo.generate import write_credit_applications

    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("performance")
    landing = root / "landing"
    write_credit_applications(landing, date(2025, 6, 1), date(2026, 2, 6), rows_per_day=40)
    for name, value in {"NIGHTSHIFT_CREDIT_SOURCE_URI": landing, "NIGHTSHIFT_LOCAL_DIR": root / "local",
                        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local' / 'mlflow.db'}",
                        "NIGHTSHIFT_WAREHOUSE": root / "warehouse.duckdb"}.items():
        patch.setenv(name, str(value))
    dag_run = build_train_dag(find_spec("credit_default")).test(logical_date=at("2026-02-01"))
    assert dag_run.state == "success"
    yield {"landing": landing, "warehouse": root / "warehouse.duckdb", "root": root}
    patch.undo()


def run_score(interval_start: str, interval_end: str):
    from nightshift.render import build_score_dag

    dag = build_score_dag(find_spec("credit_default"))
    dag_run = dag.test(logical_date=at(interval_end), run_conf={"interval_start": interval_start, "interval_end": interval_end})
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index in (-1, 0)}


def query(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).df()


def labels_of(landing: Path, day: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted((landing / f"dt={day}").glob("*.parquet"))])[["application_id", "defaulted"]]


@pytest.fixture(scope="module")
def scored(trained):
    """A backfill of BACKFILL, then the run of LATER (which realizes BACKFILL's labels), then LATER again."""
    first, first_states = run_score(BACKFILL, "2026-01-06")
    later, later_states = run_score(LATER, "2026-02-05")
    before = query(trained["warehouse"], f"SELECT * FROM {PERFORMANCE}")
    rerun, rerun_states = run_score(LATER, "2026-02-05")
    return {"runs": (first, later, rerun), "states": (first_states, later_states, rerun_states), "before": before}


def test_score_dag_writes_estimated_and_realized_rows_and_a_rerun_replaces_them(trained, scored):
    first, later, rerun = scored["runs"]
    assert [r.state for r in scored["runs"]] == ["success"] * 3, scored["states"]
    assert all(s["performance"] == "success" for s in scored["states"])
    rows = query(trained["warehouse"], f"SELECT * FROM {PERFORMANCE} ORDER BY PARTITION_DATE, KIND, METRIC")
    rows["PARTITION_DATE"] = rows["PARTITION_DATE"].dt.date.astype(str)
    kinds = rows.groupby("PARTITION_DATE")["KIND"].agg(lambda k: sorted(set(k))).to_dict()
    assert kinds == {BACKFILL: ["estimated", "realized"], LATER: ["estimated"]}
    assert len(rows) == len(scored["before"]) and set(rows["DAG_RUN_ID"]) == {rerun.run_id}  # one set of rows, the rerun's

    champion = tracking.champion("credit_default")
    run_metrics = tracking.client().get_run(champion.run_id).data.metrics
    realized = rows[(rows["KIND"] == "realized") & (rows["METRIC"] == "roc_auc")].iloc[0]
    assert realized["BASELINE"] == pytest.approx(run_metrics["test_roc_auc"])
    assert 0.0 <= run_metrics["calibration_ece"] <= 1.0  # evaluate logged the calibration check

    # the realized value, computed independently: published scores of BACKFILL joined with that day's labels
    scores = query(trained["warehouse"], f"SELECT APPLICATION_ID, SCORE FROM CREDIT_DEFAULT_SCORES WHERE PARTITION_DATE = '{BACKFILL}'")
    joined = scores.merge(labels_of(trained["landing"], BACKFILL), left_on="APPLICATION_ID", right_on="application_id")
    assert realized["ROWS"] == len(joined) == len(scores) > 0
    assert realized["VALUE"] == pytest.approx(skm.roc_auc_score(joined["defaulted"], joined["SCORE"]))
    assert realized["LOWER"] <= realized["VALUE"] <= realized["UPPER"]
    expected_status = "degraded" if realized["VALUE"] < realized["BASELINE"] - realized["MAX_DROP"] else "ok"
    assert realized["STATUS"] == expected_status
    estimated = rows[(rows["KIND"] == "estimated") & (rows["METRIC"] == "roc_auc") & (rows["PARTITION_DATE"] == LATER)].iloc[0]
    assert estimated["VALUE"] == pytest.approx(perf.expected_roc_auc(query(
        trained["warehouse"], f"SELECT SCORE FROM CREDIT_DEFAULT_SCORES WHERE PARTITION_DATE = '{LATER}'")["SCORE"]))
    from nightshift.cli.summary import performance_summary

    status_lines = [line for line in performance_summary("credit_default").splitlines() if line.strip().startswith(BACKFILL)]
    assert sorted(tuple(line.split()[2:4]) for line in status_lines) == [("served", "estimated"), ("served", "realized")]  # as printed
    report = Path(config.run_dir("credit_default", "score", rerun.run_id)) / "performance" / "report.html"
    assert "data:image/png;base64," in report.read_text() and BACKFILL in report.read_text()


def test_flipped_labels_degrade_and_alert(trained, scored, tmp_path):
    from nightshift.steps import performance

    labels = labels_of(trained["landing"], BACKFILL).assign(defaulted=lambda f: 1 - f["defaulted"])
    labels.to_parquet(tmp_path / "labels.parquet")
    spec = find_spec("credit_default")
    settings = spec.monitoring.performance.model_copy(update={"labels": Labels(uri=str(tmp_path / "labels.parquet"))})
    spec = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"performance": settings})})
    ingested = {"partition_dates": [LATER], "run_dir": str(tmp_path / "run")}
    summary = performance.performance(spec, ingested, "manual__flipped", datetime.now(timezone.utc))
    assert summary["verdict"] == "degraded" and summary["realized_dates"] == [BACKFILL]
    (entry,) = summary["degraded"]
    assert entry["metric"] == "roc_auc" and entry["value"] < entry["baseline"] - 0.05
    assert "DEGRADED" in performance.message(summary) and BACKFILL in performance.message(summary)
    rows = query(trained["warehouse"], f"SELECT * FROM {PERFORMANCE}")
    assert len(rows) == len(scored["before"]) and set(rows["DAG_RUN_ID"]) == {"manual__flipped"}  # replaced, not added


def test_intervals_of_a_large_day_are_rescaled_subsample_intervals_of_the_right_width():
    """Above INTERVAL_ROWS the intervals come from 50k-row resamples rescaled to the day's size (m-out-of-n bootstrap):
    their width must match the analytic standard error of ROC AUC (Hanley & McNeil 1982) for all the rows."""
    import numpy as np

    rows = 4 * perf.INTERVAL_ROWS
    rng = np.random.default_rng(3)
    scores = rng.beta(1.2, 6.0, size=rows)
    y = (rng.random(rows) < scores).astype(int)
    a = skm.roc_auc_score(y, scores)
    positives, negatives = int(y.sum()), int(rows - y.sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives))
    expected_width = 2 * 1.6449 * se  # a 90% normal interval

    low, high = perf.bootstrap("binary", ["roc_auc"], y, scores, resamples=200, confidence=0.9, seed=1)["roc_auc"]
    assert low < a < high
    assert 0.75 < (high - low) / expected_width < 1.33
    low, high = perf.estimate_interval(["roc_auc"], scores, resamples=200, confidence=0.9, seed=1)["roc_auc"]
    assert low < perf.expected_roc_auc(scores) < high
    assert 0.5 < (high - low) / expected_width < 2.0
