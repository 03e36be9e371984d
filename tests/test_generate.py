"""Tests for the deterministic demo data generator."""

import argparse
import datetime as dt
from pathlib import Path


import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score

from nightshift_demo.generate import (
    add_generate_arguments,
    credit_applications_for_day,
    house_listings_for_day,
    house_sales,
    run_generate,
    write_credit_applications,
    write_house_listings,
    write_house_sales,
)

DAY = dt.date(2025, 3, 14)
CREDIT_COLUMNS = [
    "application_id", "application_date", "income", "loan_amount", "debt", "utilization",
    "employment_years", "age", "grade", "region", "home_ownership", "defaulted",
]
HOUSE_FEATURES = [
    "sqft", "bedrooms", "bathrooms", "year_built", "neighborhood", "condition", "lot_size",
]


def _days(n: int, start: dt.date = dt.date(2025, 1, 1)) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    """About 8,000 rows across 40 days: enough for stable rates and a model fit."""
    return pd.concat([credit_applications_for_day(d) for d in _days(40)], ignore_index=True)


# --- credit applications ----------------------------------------------------------


def test_credit_is_deterministic_per_day_and_seed():
    frame = credit_applications_for_day(DAY)
    pd.testing.assert_frame_equal(frame, credit_applications_for_day(DAY))
    other_day = credit_applications_for_day(DAY + dt.timedelta(days=1))
    other_seed = credit_applications_for_day(DAY, seed=8)
    first_rows = frame["loan_amount"].iloc[:100]
    assert not np.allclose(first_rows, other_day["loan_amount"].iloc[:100])
    assert not np.allclose(first_rows, other_seed["loan_amount"].iloc[:100])


def test_credit_row_count_varies_within_ten_percent(credit):
    counts = credit.groupby(credit["application_date"].dt.date).size()
    assert counts.between(180, 220).all()
    assert counts.nunique() > 1


def test_credit_columns_and_dtypes(credit):
    assert list(credit.columns) == CREDIT_COLUMNS
    assert str(credit["application_date"].dtype) == "datetime64[us, UTC]"
    for column in ["application_id", "grade", "region", "home_ownership"]:
        assert credit[column].dtype == "str"
    for column in ["income", "loan_amount", "debt", "utilization"]:
        assert credit[column].dtype == "float64"
    for column in ["employment_years", "age", "defaulted"]:
        assert credit[column].dtype == "int64"


def test_credit_ids_unique_across_days(credit):
    assert credit["application_id"].is_unique
    assert credit["application_id"].iloc[0] == "A20250101-00001"


def test_credit_timestamps_fall_within_their_day():
    frame = credit_applications_for_day(DAY)
    start = pd.Timestamp(DAY, tz="UTC")
    end = start + pd.Timedelta(days=1)
    assert frame["application_date"].between(start, end, inclusive="left").all()


def test_credit_value_ranges(credit):
    assert (credit["income"].dropna() > 0).all()
    assert (credit["loan_amount"] > 0).all()
    assert (credit["debt"] >= 0).all()
    assert credit["utilization"].dropna().between(0, 1).all()
    assert credit["employment_years"].between(0, 40).all()
    assert credit["age"].between(18, 80).all()
    assert set(credit["grade"]) == set("ABCDEFG")
    assert set(credit["region"]) == {"north", "south", "east", "west", "central"}
    assert set(credit["home_ownership"]) == {"rent", "own", "mortgage"}
    assert set(credit["defaulted"]) == {0, 1}
    assert 40_000 < credit["income"].median() < 70_000
    grade_share = credit["grade"].value_counts(normalize=True)
    assert grade_share[["B", "C"]].sum() > 0.45


def test_credit_null_rates(credit):
    nulls = credit.isna().mean()
    assert 0.01 < nulls["income"] < 0.035
    assert 0.015 < nulls["utilization"] < 0.045
    assert nulls.drop(["income", "utilization"]).eq(0).all()


def test_credit_base_rate(credit):
    assert 0.10 < credit["defaulted"].mean() < 0.20


def test_drift_shifts_income_utilization_and_grades():
    days = _days(10)
    normal = pd.concat([credit_applications_for_day(d) for d in days])
    drifted = pd.concat([credit_applications_for_day(d, drift=True) for d in days])
    assert drifted["income"].mean() < 0.7 * normal["income"].mean()
    assert drifted["utilization"].mean() > normal["utilization"].mean() + 0.1
    assert drifted["grade"].isin(list("EFG")).mean() > normal["grade"].isin(list("EFG")).mean()


def test_credit_label_is_learnable(credit):
    features = pd.DataFrame(
        {
            "debt_to_income": credit["debt"] / credit["income"],
            "utilization": credit["utilization"],
            "employment_years": credit["employment_years"],
        }
    )
    features = features.fillna(features.median())
    features = features.join(pd.get_dummies(credit["grade"], dtype=float))
    half = len(credit) // 2
    model = LogisticRegression(max_iter=2000).fit(features[:half], credit["defaulted"][:half])
    scores = model.predict_proba(features[half:])[:, 1]
    assert roc_auc_score(credit["defaulted"][half:], scores) > 0.7


# --- houses ---------------------------------------------------------------------------


def test_house_sales_shape_dtypes_and_determinism():
    sales = house_sales()
    pd.testing.assert_frame_equal(sales, house_sales())
    assert not sales["price"].equals(house_sales(seed=8)["price"])
    assert list(sales.columns) == ["sale_id", *HOUSE_FEATURES, "price"]
    assert len(sales) == 3000
    assert sales["sale_id"].iloc[0] == "H000001" and sales["sale_id"].is_unique
    for column in ["sale_id", "neighborhood", "condition"]:
        assert sales[column].dtype == "str"
    assert sales[["bedrooms", "year_built"]].dtypes.eq("int64").all()
    assert (sales["bathrooms"] * 2 % 1 == 0).all()
    assert sales["neighborhood"].nunique() == 6
    assert set(sales["condition"]) == {"poor", "fair", "good", "excellent"}
    assert 0.01 < sales["lot_size"].isna().mean() < 0.035
    assert (sales["price"] > 0).all() and (sales["sqft"] > 0).all()


def test_house_price_is_learnable():
    sales = house_sales()
    features = pd.get_dummies(sales[HOUSE_FEATURES], dtype=float)
    split = 2000
    model = HistGradientBoostingRegressor(random_state=0)
    model.fit(features[:split], sales["price"][:split])
    assert r2_score(sales["price"][split:], model.predict(features[split:])) > 0.6


def test_house_listings_match_sales_columns_and_are_unique():
    listings = pd.concat([house_listings_for_day(d) for d in _days(5)], ignore_index=True)
    assert list(listings.columns) == ["sale_id", *HOUSE_FEATURES]
    assert listings["sale_id"].is_unique
    assert listings["sale_id"].iloc[0] == "L20250101-0001"
    pd.testing.assert_frame_equal(house_listings_for_day(DAY), house_listings_for_day(DAY))


# --- writers and CLI ------------------------------------------------------------------


def test_write_credit_applications_partitions_and_roundtrip(tmp_path):
    start, end = dt.date(2025, 1, 1), dt.date(2025, 1, 3)
    paths = write_credit_applications(tmp_path, start, end, drift_from=dt.date(2025, 1, 3))
    assert paths == [tmp_path / f"dt=2025-01-0{i}" / "part-0.parquet" for i in (1, 2, 3)]
    back = pd.read_parquet(paths[0])
    pd.testing.assert_frame_equal(back, credit_applications_for_day(start))
    drifted = pd.read_parquet(paths[2])
    pd.testing.assert_frame_equal(drifted, credit_applications_for_day(end, drift=True))
    assert not list(tmp_path.rglob(".*"))  # no temp files left behind


def test_write_credit_applications_overwrites_or_skips(tmp_path):
    day = dt.date(2025, 1, 1)
    (path,) = write_credit_applications(tmp_path, day, day)
    path.write_bytes(b"stale")
    assert write_credit_applications(tmp_path, day, day, skip_existing=True) == []
    assert path.read_bytes() == b"stale"
    assert write_credit_applications(tmp_path, day, day) == [path]
    assert len(pd.read_parquet(path)) > 0


def test_write_rejects_reversed_range(tmp_path):
    with pytest.raises(ValueError):
        write_credit_applications(tmp_path, dt.date(2025, 1, 2), dt.date(2025, 1, 1))


def test_write_house_files(tmp_path):
    sales_path = write_house_sales(tmp_path / "house_sales.csv", rows=50)
    assert pd.read_csv(sales_path)["price"].notna().all()
    paths = write_house_listings(tmp_path / "listings", dt.date(2025, 1, 30), dt.date(2025, 2, 1))
    assert [p.name for p in paths] == ["2025-01-30.csv", "2025-01-31.csv", "2025-02-01.csv"]
    listing = pd.read_csv(paths[0])
    assert list(listing.columns) == ["sale_id", *HOUSE_FEATURES]


def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    return parser.parse_args(list(argv))


def test_run_generate_writes_everything_then_skips(tmp_path, capsys):
    argv = ["--start", "2025-01-01", "--end", "2025-01-03", "--root", str(tmp_path)]
    run_generate(_cli_args(*argv))
    assert len(list((tmp_path / "credit_applications").glob("dt=*/part-0.parquet"))) == 3
    assert (tmp_path / "house_sales.csv").exists()
    assert len(list((tmp_path / "house_listings").glob("*.csv"))) == 3
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 3
    assert first[0].startswith("credit_applications: 3 files written, 0 skipped")

    run_generate(_cli_args(*argv))
    second = capsys.readouterr().out
    assert "0 files written, 3 skipped, 0 rows" in second
    assert "house_sales: 0 files written, 1 skipped" in second

    run_generate(_cli_args(*argv, "--force"))
    assert "credit_applications: 3 files written, 0 skipped" in capsys.readouterr().out


def test_cli_defaults():
    args = _cli_args("--start", "2025-01-01", "--end", "2025-01-31")
    assert (args.seed, args.rows_per_day, args.drift_from, args.force) == (7, 200, None, False)
    assert args.root == Path("data/landing") and args.start == dt.date(2025, 1, 1)
