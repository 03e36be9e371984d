"""Unit tests of the training steps as plain functions (no Airflow)."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from nightshift.spec import expressions
from nightshift.ml import metrics
from nightshift_demo.generate import credit_applications_for_day, write_credit_applications
from nightshift.spec import find_spec
from nightshift.steps import features, ingest, promote, train


@pytest.fixture
def credit():
    return find_spec("credit_default")


# --- expressions ---------------------------------------------------------------------------

def test_expression_columns_and_safe_evaluation():
    assert expressions.referenced_columns("log1p(debt) / (income + 1)") == ["debt", "income"]
    out = expressions.evaluate("debt / income", {"debt": [1.0, 2.0, 3.0], "income": [2.0, 0.0, np.nan]})
    assert out[0] == 0.5 and math.isnan(out[1]) and math.isnan(out[2])


@pytest.mark.parametrize("expr", ["__import__('os')", "income.real", "x if y else z", "[1, 2]", "log", "open('f')", "a == b"])
def test_expression_rejects_anything_but_arithmetic(expr):
    with pytest.raises(ValueError):
        expressions.referenced_columns(expr)


# --- ingest ----------------------------------------------------------------------------------

def test_training_window_ends_label_delay_before_interval_end(credit):
    window = ingest.training_window(credit, datetime(2026, 2, 1, 3, 0, tzinfo=timezone.utc))
    assert window.end == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert (window.end - window.start).days == 180
    assert ingest.training_window(credit, datetime(2026, 2, 1, tzinfo=timezone.utc), date(2025, 12, 1)).end.date() == date(2025, 12, 1)


def test_ingest_reads_only_the_window(tmp_path, monkeypatch, credit):
    root = tmp_path / "credit"
    write_credit_applications(root, date(2025, 12, 1), date(2026, 1, 10), rows_per_day=20)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    spec = find_spec("credit_default")
    window = ingest.Window(datetime(2025, 12, 5, tzinfo=timezone.utc), datetime(2025, 12, 8, tzinfo=timezone.utc))
    rows, files = ingest.read_rows(spec, window, with_target=True, require_all=True)
    assert len(files) == 3
    assert rows["application_date"].min() >= window.start and rows["application_date"].max() < window.end
    expected = sum(len(credit_applications_for_day(date(2025, 12, d), rows=20)) for d in (5, 6, 7))
    assert len(rows) == expected


def _one_day(tmp_path, monkeypatch):
    root = tmp_path / "credit"
    write_credit_applications(root, date(2026, 1, 1), date(2026, 1, 1), rows_per_day=20)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    window = ingest.Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc))
    return find_spec("credit_default"), root / "dt=2026-01-01", window


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "part-0.parquet").write_bytes(b""), "file is empty (0 bytes)"),
        (lambda d: (d / "part-0.parquet").write_bytes((d / "part-0.parquet").read_bytes()[:200]), "not a readable parquet file"),
        (lambda d: (d / "notes.txt").write_text("hi"), "notes.txt: unexpected file in partition"),
        (lambda d: pd.read_parquet(d / "part-0.parquet").drop(columns=["income"]).to_parquet(d / "part-0.parquet"),
         "column 'income' is missing"),
        (lambda d: pd.read_parquet(d / "part-0.parquet").assign(bonus=1).to_parquet(d / "part-0.parquet"),
         "column 'bonus' (int64) is not declared in schema"),
        (lambda d: pd.read_parquet(d / "part-0.parquet").assign(
            application_date=lambda f: f.application_date.astype(str)).to_parquet(d / "part-0.parquet"),  # naive: source.timezone
         "must be time-zone aware"),
        (lambda d: pd.read_parquet(d / "part-0.parquet").assign(
            application_date=lambda f: f.application_date - pd.Timedelta(days=3)).to_parquet(d / "part-0.parquet"),
         "event times outside partition dt=2026-01-01"),
    ],
    ids=["zero-byte", "truncated", "extra-file", "missing-column", "extra-column", "text-times", "outside-partition"],
)
def test_unreadable_input_names_the_file(tmp_path, monkeypatch, damage, message):
    spec, folder, window = _one_day(tmp_path, monkeypatch)
    damage(folder)
    with pytest.raises(ingest.IngestError) as caught:
        ingest.read_rows(spec, window, with_target=True, require_all=True)
    assert message in str(caught.value)
    assert str(folder) in str(caught.value)


def test_missing_partition_is_an_error_only_when_required(tmp_path, monkeypatch):
    spec, folder, _ = _one_day(tmp_path, monkeypatch)
    two_days = ingest.Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 3, tzinfo=timezone.utc))
    rows, _ = ingest.read_rows(spec, two_days, with_target=True, require_all=False)
    assert len(rows) > 0
    with pytest.raises(ingest.IngestError, match="dt=2026-01-02: partition folder is missing"):
        ingest.read_rows(spec, two_days, with_target=True, require_all=True)


def test_too_few_rows_fails_with_counts(tmp_path, monkeypatch):
    spec, _, _ = _one_day(tmp_path, monkeypatch)
    with pytest.raises(ingest.IngestError, match=r"holds \d+ rows; training.min_rows is 500"):
        ingest.ingest_training(spec, datetime(2026, 2, 1, tzinfo=timezone.utc), str(tmp_path / "run"))


def test_csv_encoding_error_names_file(tmp_path, monkeypatch):
    bad = tmp_path / "sales.csv"
    bad.write_bytes("sale_id,sqft\nH1,caf\xe9\n".encode("latin-1"))
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SOURCE_URI", str(bad))
    with pytest.raises(ingest.IngestError, match=r"sales.csv: not valid utf-8 text at byte"):
        ingest.read_rows(find_spec("house_prices"), None, with_target=True, require_all=True)


# --- features --------------------------------------------------------------------------------

def test_transformer_fits_on_train_only_and_handles_unseen_categories(credit):
    rows = pd.concat([credit_applications_for_day(date(2026, 1, d), rows=50) for d in range(1, 8)], ignore_index=True)
    train_rows, test_rows = features.split(credit, rows)
    assert train_rows["application_date"].max() <= test_rows["application_date"].min()
    transformer = features.build_transformer(credit).fit(features.model_input(train_rows, credit.feature_columns))
    scaled = transformer.named_steps["columns"].named_transformers_["numeric"].named_steps["scale"]
    assert scaled.n_samples_seen_ == len(train_rows)
    odd = test_rows.head(3).copy()
    odd["grade"] = "Z"  # never seen in training
    matrix = transformer.transform(features.model_input(odd, credit.feature_columns))
    names = list(transformer.named_steps["columns"].get_feature_names_out())
    grade_cols = [i for i, n in enumerate(names) if n.startswith("categorical__grade_")]
    assert matrix[:, grade_cols].sum() == 0
    assert "numeric__debt_to_income" in names and "numeric__application_date_month" in names


def test_model_input_makes_mlflow_friendly_types(credit):
    rows = credit_applications_for_day(date(2026, 1, 1), rows=10)
    out = features.model_input(rows, credit.feature_columns)
    assert out["application_date"].dt.tz is None and out["age"].dtype == "float64"
    assert rows["application_date"].dt.tz is not None  # the caller's frame is untouched


# --- train and promote -----------------------------------------------------------------------

def test_estimator_from_import_path():
    spec = find_spec("house_prices")
    estimator = train.make_estimator(spec, {"max_depth": 3})
    assert type(estimator).__name__ == "HistGradientBoostingRegressor"
    assert estimator.max_depth == 3 and estimator.random_state == spec.training.seed


def _evaluation(challenger: float, champion: float | None, version="3", error=None):
    return {
        "challenger": {"roc_auc": challenger},
        "champion": None if champion is None else {"roc_auc": champion},
        "champion_version": version if (champion is not None or error) else None,
        "champion_error": error,
    }


def test_gates_min_and_non_regression(credit):
    credit = credit.model_copy(update={"evaluation": credit.evaluation.model_copy(update={"slice_gates": [], "fairness": []})})
    assert [g["passed"] for g in promote.check_gates(credit, _evaluation(0.80, None))] == [True, True]
    assert [g["passed"] for g in promote.check_gates(credit, _evaluation(0.60, None))] == [False, True]
    assert [g["passed"] for g in promote.check_gates(credit, _evaluation(0.80, 0.805))] == [True, True]  # within -0.01
    worse = promote.check_gates(credit, _evaluation(0.80, 0.83))
    assert worse[1]["passed"] is False and "roc_auc improvement over the champion (v3) -0.0300; at least -0.0100 required" in worse[1]["reason"]


def test_champion_that_cannot_be_evaluated_fails_closed(credit):
    gates = promote.check_gates(credit, _evaluation(0.9, None, version="2", error="KeyError: 'income'"))
    assert gates[1]["passed"] is False and "could not be compared" in gates[1]["reason"]


def test_relative_drop_gate_respects_lower_is_better():
    spec = find_spec("house_prices")
    ok = {"challenger": {"rmse": 102.0, "r2": 0.8}, "champion": {"rmse": 100.0, "r2": 0.8}, "champion_version": "1", "champion_error": None}
    assert [g["passed"] for g in promote.check_gates(spec, ok)] == [True, True]
    bad = {**ok, "challenger": {"rmse": 110.0, "r2": 0.8}}
    outcome = promote.check_gates(spec, bad)[1]
    assert outcome["passed"] is False and abs(outcome["value"] - 0.10) < 1e-9


def test_metrics_directions_and_values():
    assert metrics.improvement("log_loss", 0.2, 0.3) == pytest.approx(0.1)
    assert metrics.improvement("roc_auc", 0.7, 0.8) == pytest.approx(-0.1)
    values = metrics.compute("binary", ["roc_auc", "accuracy"], [0, 0, 1, 1], np.array([0.1, 0.4, 0.35, 0.8]))
    assert values == {"roc_auc": 0.75, "accuracy": 0.75}
    assert math.isnan(metrics.compute("binary", ["roc_auc"], [1, 1], np.array([0.2, 0.9]))["roc_auc"])


# --- training.max_rows ------------------------------------------------------------------------


def _capped(spec, rows: pd.DataFrame) -> pd.DataFrame:
    keep = features.cap_positions(spec, rows["defaulted"])
    return rows.take(keep).reset_index(drop=True)


def test_max_rows_draws_each_class_in_proportion_keeps_order_and_repeats(credit):
    rows = pd.concat([credit_applications_for_day(date(2026, 1, d), rows=400) for d in range(1, 11)], ignore_index=True)
    capped_spec = credit.model_copy(update={"training": credit.training.model_copy(update={"max_rows": 1000})})
    sample = _capped(capped_spec, rows)
    assert len(sample) == pytest.approx(1000, abs=2)  # per-class rounding
    share = rows["defaulted"].mean()
    assert sample["defaulted"].mean() == pytest.approx(share, abs=1 / 1000 + 1e-9)
    # rows keep their original order (a time split stays ordered) and the draw repeats with the seed
    positions = rows.reset_index().merge(sample, on=list(rows.columns))["index"]
    assert positions.is_monotonic_increasing and len(positions) == len(sample)
    pd.testing.assert_frame_equal(sample, _capped(capped_spec, rows))
    assert features.cap_positions(credit, rows["defaulted"]) is None  # no cap: the split as it is


def test_max_rows_keeps_a_rare_class_at_its_floor(credit):
    rows = pd.concat([credit_applications_for_day(date(2026, 1, d), rows=400) for d in range(1, 11)], ignore_index=True)
    rare = rows[rows["defaulted"] == 1].head(12)
    rows = pd.concat([rows[rows["defaulted"] == 0], rare], ignore_index=True)
    floor = 10
    capped_spec = credit.model_copy(update={"training": credit.training.model_copy(update={"max_rows": 1000}),
                                            "evaluation": credit.evaluation.model_copy(update={"min_class_rows": floor})})
    sample = _capped(capped_spec, rows)
    assert round(1000 * 12 / len(rows)) < floor  # a proportional draw alone would fall below the floor
    assert int((sample["defaulted"] == 1).sum()) == floor


def test_max_rows_below_min_rows_is_refused():
    from nightshift.spec.model import Training

    with pytest.raises(ValueError, match="max_rows .*below min_rows"):
        Training(min_rows=5000, max_rows=2000)


def test_prepare_splits_the_snapshot_as_a_plain_pandas_sort_would(credit, tmp_path):
    rows = pd.concat([credit_applications_for_day(date(2026, 1, d), rows=300) for d in range(1, 8)], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)  # the snapshot's order must not matter
    snapshot = tmp_path / "snapshot.parquet"
    rows.to_parquet(snapshot, index=False)
    prepared = features.prepare(credit, str(snapshot), str(tmp_path / "run"))

    ordered = rows.sort_values(["application_date", "application_id"]).reset_index(drop=True)
    cut = int(round(len(rows) * (1 - credit.training.split.test_fraction)))
    train_rows, test_rows = pd.read_parquet(prepared["train_uri"]), pd.read_parquet(prepared["test_uri"])
    pd.testing.assert_frame_equal(train_rows, ordered.iloc[:cut].reset_index(drop=True))
    pd.testing.assert_frame_equal(test_rows, ordered.iloc[cut:].reset_index(drop=True))
    assert prepared["train_rows"] == prepared["train_rows_available"] == cut and prepared["test_rows"] == len(rows) - cut


def test_prepare_random_split_is_sklearns_stratified_split(credit, tmp_path):
    from sklearn.model_selection import train_test_split

    spec = credit.model_copy(update={"training": credit.training.model_copy(
        update={"split": credit.training.split.model_copy(update={"method": "random"})})})
    rows = pd.concat([credit_applications_for_day(date(2026, 1, d), rows=300) for d in range(1, 8)], ignore_index=True)
    snapshot = tmp_path / "snapshot.parquet"
    rows.to_parquet(snapshot, index=False)
    prepared = features.prepare(spec, str(snapshot), str(tmp_path / "run"))
    expected_train, expected_test = train_test_split(rows, test_size=spec.training.split.test_fraction,
                                                     random_state=spec.training.seed, stratify=rows["defaulted"])
    pd.testing.assert_frame_equal(pd.read_parquet(prepared["train_uri"]), expected_train.reset_index(drop=True))
    pd.testing.assert_frame_equal(pd.read_parquet(prepared["test_uri"]), expected_test.reset_index(drop=True))
