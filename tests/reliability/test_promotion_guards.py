"""Promotion guards: a leaked feature, inverted labels and degenerate windows never produce a champion.

Each case trains credit_default (or house_prices) with the training DAG's operators on a private copy of the package's
landing data (45 days inside the window), rewritten the way the case needs, against the package's champion. The
expected numbers (a leaked column's univariate ROC AUC, the champion's score on inverted labels, the class counts)
are computed here with scikit-learn / pandas from the run's own files, not taken from the code under test.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from . import harness

pytestmark = pytest.mark.reliability("model-safety")

DAYS = harness.days(date(2025, 11, 18), date(2026, 1, 1))
PIPELINES = Path(__file__).resolve().parents[2] / "include" / "pipelines"


def landing(world, tmp_path, monkeypatch, rewrite=None) -> Path:
    """A copy of the window's partitions, each rewritten by `rewrite(frame, rng, day_index)`; wired in by env var."""
    root = harness.copy_partitions(world.credit, tmp_path / "credit", DAYS)
    if rewrite is not None:
        for i, part in enumerate(sorted(root.glob("dt=*/part-0.parquet"))):
            frame = pd.read_parquet(part)
            rewrite(frame, np.random.default_rng(i), i).to_parquet(part, index=False)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    return root


def spec_copy(tmp_path, monkeypatch, name: str, change) -> None:
    """The pipelines folder with `name`'s spec edited by `change(dict)` (same file names: the registry owner stays)."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for path in PIPELINES.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        if raw.get("name") == name:
            change(raw)
        (folder / path.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))


def champion() -> str:
    return harness.registry_state("credit_default")["credit_default"][1]["champion"]


def version_tags(version) -> dict:
    from nightshift.io import tracking

    return dict(tracking.client().get_model_version("credit_default", str(version)).tags)


def heldout(outcome: harness.Outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.results["features"]["test_uri"])


def univariate_auc(frame: pd.DataFrame, column: str) -> float:
    auc = roc_auc_score(frame["defaulted"], frame[column])
    return max(auc, 1 - auc)


def assert_refused(outcome: harness.Outcome, before: str) -> tuple[dict, dict]:
    """The run finished, the version is registered but rejected with alias `challenger`, the champion is unchanged."""
    assert outcome.failed is None, outcome.describe()
    promotion = outcome.results["promote"]
    assert promotion["passed"] is False and promotion["alias"] == "challenger", promotion
    assert champion() == before
    tags = version_tags(promotion["version"])
    assert tags["nightshift.promotion"] == "rejected", tags
    return promotion, tags


def leak_gate(promotion: dict) -> dict:
    return next(g for g in promotion["gates"] if g.get("kind") == "leak")


# --- target leaks ------------------------------------------------------------------------------------------------

def exact_copy(frame, rng, i):
    return frame.assign(utilization=frame["defaulted"].astype("float64"))


def noisy_copy(frame, rng, i):
    noisy = 0.25 + 0.5 * frame["defaulted"] + rng.normal(0.0, 0.13, len(frame))
    return frame.assign(utilization=np.clip(noisy, 0.0, 1.0))


@pytest.mark.parametrize("rewrite", [exact_copy, noisy_copy], ids=["exact_copy", "noisy_copy"])
def test_leaked_feature_blocks_promotion(world, tmp_path, monkeypatch, caplog, rewrite):
    """`utilization` carries the label (exactly, or with noise): the model scores near perfect, beats the champion on
    every metric gate, and still never becomes champion."""
    landing(world, tmp_path, monkeypatch, rewrite)
    before = champion()
    with caplog.at_level(logging.WARNING):
        outcome = harness.run_train("credit_default", f"guards__leak_{rewrite.__name__}")
    expected = univariate_auc(heldout(outcome), "utilization")
    assert expected >= 0.99  # the data really leaks (computed independently, on the run's held-out rows)
    if rewrite is noisy_copy:
        assert expected < 1.0  # and the noisy copy is not a perfect one
    promotion, tags = assert_refused(outcome, before)
    said = f"suspected target leak: column utilization alone reaches ROC AUC {expected:.4f}"
    gate = leak_gate(promotion)
    assert gate["passed"] is False and said in gate["reason"], gate
    assert gate["value"] == pytest.approx(expected)
    assert said in tags["nightshift.reason"], tags["nightshift.reason"]
    assert tags["nightshift.leak"] == f"utilization: ROC AUC {expected:.4f}"
    report = Path(outcome.results["evaluate"]["report_uri"]).read_text()
    assert said in report
    assert any(said in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    # the leak alone blocks it: without the guard this model would have been promoted
    others = [g for g in promotion["gates"] if not g["passed"] and g.get("kind") != "leak"]
    assert others == [], others


def test_acknowledged_column_is_reported_not_blocking(world, tmp_path, monkeypatch):
    """The same exact copy, with `utilization` acknowledged in the spec: the guard reports it and lets it through
    (dry run: the registry is left alone so the package's champion stays the honest one)."""
    landing(world, tmp_path, monkeypatch, exact_copy)
    spec_copy(tmp_path, monkeypatch, "credit_default",
              lambda raw: raw["evaluation"].update(leak_guard={"threshold": 0.99, "acknowledged": ["utilization"]}))
    before = harness.registry_state("credit_default")
    outcome = harness.run_train("credit_default", "guards__leak_acknowledged", dry_run=True)
    assert outcome.failed is None, outcome.describe()
    assert univariate_auc(heldout(outcome), "utilization") >= 0.99
    promotion = outcome.results["promote"]
    gate = leak_gate(promotion)
    assert gate["passed"] is True and "acknowledged: utilization" in gate["reason"], gate
    assert promotion["passed"] is True, [g["reason"] for g in promotion["gates"] if not g["passed"]]
    assert harness.registry_state("credit_default") == before


def test_metric_beyond_the_plausible_bound_blocks_promotion(world, tmp_path, monkeypatch):
    """`evaluation.plausible: {roc_auc: 0.995}` and a noisy leak whose model reaches more than that."""
    landing(world, tmp_path, monkeypatch, noisy_copy)
    spec_copy(tmp_path, monkeypatch, "credit_default", lambda raw: raw["evaluation"].update(
        plausible={"roc_auc": 0.995}, leak_guard={"acknowledged": ["utilization"]}))
    outcome = harness.run_train("credit_default", "guards__plausible", dry_run=True)
    assert outcome.failed is None, outcome.describe()
    from nightshift.io import tracking

    model = tracking.load_sklearn_model(outcome.results["train"]["model_uri"])
    test = heldout(outcome)
    from nightshift.spec import find_spec

    columns = find_spec("credit_default").feature_columns
    achieved = roc_auc_score(test["defaulted"], model.predict_proba(test[columns])[:, 1])
    assert achieved > 0.995
    promotion = outcome.results["promote"]
    gate = next(g for g in promotion["gates"] if g.get("kind") == "plausibility")
    assert gate["passed"] is False and promotion["passed"] is False
    assert f"suspected target leak: held-out roc_auc {achieved:.4f} is above the plausible bound 0.995" in gate["reason"]


# --- suspect labels ----------------------------------------------------------------------------------------------

def inverted(frame, rng, i):
    return frame.assign(defaulted=1 - frame["defaulted"])


def champion_scores(outcome: harness.Outcome, version: str) -> tuple[float, float]:
    """(the champion's ROC AUC on this run's held-out rows, its recorded held-out ROC AUC), computed here."""
    from nightshift.io import tracking
    from nightshift.spec import find_spec

    client = tracking.client()
    recorded = client.get_run(client.get_model_version("credit_default", version).run_id).data.metrics["test_roc_auc"]
    model = tracking.load_sklearn_model(f"models:/credit_default/{version}")
    test = heldout(outcome)
    now = roc_auc_score(test["defaulted"], model.predict_proba(test[find_spec("credit_default").feature_columns])[:, 1])
    return now, recorded


def test_inverted_labels_are_refused_with_an_alert(world, tmp_path, monkeypatch, caplog):
    landing(world, tmp_path, monkeypatch, inverted)
    before = champion()
    with caplog.at_level(logging.WARNING):
        outcome = harness.run_train("credit_default", "guards__inverted")
    now, recorded = champion_scores(outcome, before)
    assert recorded > 0.6 and now < 0.5  # the champion really collapses on these labels
    promotion, tags = assert_refused(outcome, before)
    said = f"labels look inverted or broken: the champion (v{before}) scored roc_auc {now:.2f} on these rows vs {recorded:.2f}"
    gate = next(g for g in promotion["gates"] if g.get("kind") == "label_sanity")
    assert gate["passed"] is False and said in gate["reason"], gate
    assert said in tags["nightshift.reason"]
    prevalence = float(version_tags(before)["nightshift.label_prevalence"])
    window = pd.concat([pd.read_parquet(outcome.results["features"][k]) for k in ("train_uri", "test_uri")])["defaulted"].mean()
    assert abs(window - (1 - prevalence)) < 0.05  # inverted: the positive rate flipped too
    assert f"is {window:.1%} in this window vs {prevalence:.1%}" in tags["nightshift.reason"]
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT credit_default:")]
    assert any(said in a for a in alerts), alerts
    # without the guard the challenger (fitted on the inverted labels) beats the champion: only the label gate blocks it
    others = [g for g in promotion["gates"] if not g["passed"] and g.get("kind") != "label_sanity"]
    assert others == [], others


def test_inverted_labels_wait_for_approval_when_approval_is_required(world, tmp_path, monkeypatch, caplog):
    landing(world, tmp_path, monkeypatch, inverted)
    spec_copy(tmp_path, monkeypatch, "credit_default", lambda raw: raw.update(promotion={"approval": "required"}))
    before = champion()
    with caplog.at_level(logging.WARNING):
        outcome = harness.run_train("credit_default", "guards__inverted_approval")
    assert outcome.failed is None, outcome.describe()
    now, recorded = champion_scores(outcome, before)
    promotion = outcome.results["promote"]
    assert promotion["awaiting_approval"] is True and promotion["alias"] == "challenger", promotion
    assert champion() == before
    tags = version_tags(promotion["version"])
    said = f"the champion (v{before}) scored roc_auc {now:.2f} on these rows vs {recorded:.2f}"
    assert tags["nightshift.promotion"] == "pending_approval" and said in tags["nightshift.label_check"], tags
    assert any(said in r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT credit_default:"))
    from nightshift.spec import find_spec
    from nightshift.steps import approve

    _, body = approve.request(find_spec("credit_default"), promotion, outcome.results["evaluate"], "run")
    assert "labels look suspect" in body and said in body
    # leave the package's registry as it was: this version is no challenger for the next tests
    from nightshift.io import tracking

    tracking.client().delete_registered_model_alias("credit_default", "challenger")


# --- degenerate windows ------------------------------------------------------------------------------------------

def single_positive(frame, rng, i):
    labels = np.zeros(len(frame), dtype="int64")
    if i == 0:
        labels[0] = 1
    return frame.assign(defaulted=labels)


def no_positive(frame, rng, i):
    return frame.assign(defaulted=np.zeros(len(frame), dtype="int64"))


def test_single_positive_window_fails_before_training(world, tmp_path, monkeypatch):
    """Before the guard this window crashed evaluate (`Out of range float values are not JSON compliant`)."""
    landing(world, tmp_path, monkeypatch, single_positive)
    before = harness.registry_state("credit_default")
    outcome = harness.run_train("credit_default", "guards__single_positive")
    assert outcome.failed == "features", outcome.describe()
    assert type(outcome.error).__name__ == "AirflowFailException"  # bad data: no retry
    rows = pd.read_parquet(outcome.results["ingest"]["snapshot_uri"])
    window = outcome.results["ingest"]["window"]
    assert int(rows["defaulted"].sum()) == 1
    assert f"window {window['start'][:10]} .. {window['end'][:10]} ({len(rows):,} rows" in outcome.message, outcome.message
    assert "class 1: 1 row (training 1, held-out 0)" in outcome.message, outcome.message
    assert "each split needs at least 2" in outcome.message
    assert harness.registry_state("credit_default") == before


def test_one_class_window_fails_before_training(world, tmp_path, monkeypatch):
    """Validation already refuses a window without positives; the features check says the same if it gets there."""
    from nightshift.ml import guards
    from nightshift.spec import find_spec

    landing(world, tmp_path, monkeypatch, no_positive)
    outcome = harness.run_train("credit_default", "guards__no_positive")
    assert outcome.failed == "validate" and "at least 2 distinct classes" in outcome.message, outcome.describe()
    rows = pd.read_parquet(outcome.results["ingest"]["snapshot_uri"])["defaulted"]
    problem = guards.degenerate_labels(find_spec("credit_default"), rows.iloc[:-100], rows.iloc[-100:])
    assert problem == f"label column 'defaulted' has a single class (0, {len(rows):,} rows): nothing to learn"


def test_constant_regression_label_fails_before_training(world, tmp_path, monkeypatch):
    frame = pd.read_csv(world.house_sales)
    frame["price"] = 250000.0
    path = tmp_path / "house_sales.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SOURCE_URI", str(path))
    outcome = harness.run_train("house_prices", "guards__constant_price")
    assert outcome.failed == "features", outcome.describe()
    assert f"label column 'price' is constant (250000) in all {len(frame):,} labelled rows" in outcome.message, outcome.message
    assert outcome.message.startswith("the training snapshot")  # no event time: no window to name


# --- the maths, on their own -------------------------------------------------------------------------------------

def test_categorical_leak_scores_by_training_category_means():
    """A category that determines the label: its per-category mean label (fitted on training rows) separates the
    held-out rows perfectly; an unrelated category does not."""
    from nightshift.ml import guards
    from nightshift.spec import find_spec

    spec = find_spec("credit_default")
    rng = np.random.default_rng(7)
    n = 2000
    y = (rng.random(n) < 0.2).astype(int)
    frame = pd.DataFrame({"grade": np.where(y == 1, "G", rng.choice(list("ABCDEF"), n)),
                          "region": rng.choice(["north", "south", "east", "west", "central"], n),
                          "home_ownership": rng.choice(["rent", "own", "mortgage"], n),
                          **{c: rng.random(n) for c in spec.features.numeric.columns}, "debt": rng.random(n),
                          "application_date": pd.Timestamp("2026-01-01", tz="UTC"), "defaulted": y})
    train, test = frame.iloc[:1500].reset_index(drop=True), frame.iloc[1500:].reset_index(drop=True)
    scan = guards.leak_scan(spec, train, test, train["defaulted"].to_numpy(), test["defaulted"].to_numpy())
    scores = {s["column"]: s["score"] for s in scan["scores"]}
    means = train.groupby("grade")["defaulted"].mean()
    expected = univariate_auc(test.assign(g=test["grade"].map(means)), "g")
    assert expected == pytest.approx(1.0) and scores["grade"] == pytest.approx(expected)
    assert [f["column"] for f in scan["flagged"]] == ["grade"]
    assert scores["region"] == pytest.approx(univariate_auc(test.assign(r=test["region"].map(
        train.groupby("region")["defaulted"].mean())), "r"))
    assert scores["region"] < 0.6
