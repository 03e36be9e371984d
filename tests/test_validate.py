"""The validation step: GX Core suites built from a spec, failures in plain words, Data Docs."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# `nightshift` lives in plugins/ (Airflow's plugins folder); make it importable without Airflow.
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))

from nightshift.spec import Expectation, load_spec, parse_spec  # noqa: E402
from nightshift.steps.validate import ValidationFailed, validate_frame  # noqa: E402

SOURCE = "data/landing/credit_applications (dt=2026-01-02)"
N = 20


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "include" / "pipelines" / "credit_default.yaml")


def clean_frame(n: int = N) -> pd.DataFrame:
    """Rows that satisfy credit_default.yaml, with pandas 3 default dtypes (strings are `str`)."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            "application_id": [f"A20260102-{k:05d}" for k in i],
            "application_date": pd.date_range("2026-01-02", periods=n, freq="h", tz="UTC"),
            "income": np.where(i % 7 == 3, np.nan, 30_000.0 + 1_000 * i),  # nullable
            "loan_amount": 5_000.0 + 100 * i,
            "debt": 1_000.0 + 10 * i,
            "utilization": np.where(i % 5 == 4, np.nan, (i % 10) / 10),
            "employment_years": (i % 30).astype("int64"),
            "age": (25 + i).astype("int64"),
            "grade": [list("ABCDEFG")[k % 7] for k in i],
            "region": [["north", "south", "east", "west", "central"][k % 5] for k in i],
            "home_ownership": [["rent", "own", "mortgage"][k % 3] for k in i],
            "defaulted": (i % 2).astype("int64"),
        }
    )


def failures_of(df: pd.DataFrame, spec, **kwargs) -> list[str]:
    kwargs.setdefault("include_target", True)
    with pytest.raises(ValidationFailed) as info:
        validate_frame(df, spec, source=SOURCE, **kwargs)
    exc = info.value
    assert exc.failures, "ValidationFailed without failures"
    for line in exc.failures:
        assert line.startswith(f"{SOURCE}: "), line
        assert line in str(exc)
    return exc.failures


def only_failure(failures: list[str], column: str, rule: str) -> str:
    """The single line naming `column` and containing `rule`; every line names source and column."""
    hits = [f for f in failures if f"column '{column}'" in f and rule in f]
    assert len(hits) == 1, (column, rule, failures)
    return hits[0]


# --- passing ----------------------------------------------------------------------------------


def test_clean_frame_passes(spec):
    summary = validate_frame(clean_frame(), spec, include_target=True, source=SOURCE)
    assert summary["success"] is True
    assert summary["rows"] == N
    assert summary["docs_dir"] is None
    assert summary["evaluated"] == len(summary["results"]) > 30
    assert all(r["success"] for r in summary["results"])
    assert {"expectation", "column", "success", "unexpected_count"} <= set(summary["results"][0])
    kinds = {r["expectation"] for r in summary["results"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_column_to_exist",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",  # no +/-inf
        "expect_column_unique_value_count_to_be_between",  # >= 2 classes
    } <= kinds
    import json

    json.dumps(summary)  # JSON-able for XCom


def test_pandas3_dtype_variants_pass(spec):
    """category, object strings, nullable Int64, float64 ints with nulls, naive timestamps."""
    df = clean_frame()
    df["grade"] = df["grade"].astype("category")
    df["region"] = df["region"].astype(object)
    df["home_ownership"] = df["home_ownership"].astype("string")
    df["age"] = df["age"].astype("Int64")
    df["employment_years"] = df["employment_years"].astype("float64")  # as read from CSV with nulls
    df["application_date"] = df["application_date"].dt.tz_convert(None)
    df["income"] = df["income"].astype("float32")
    assert validate_frame(df, spec, include_target=True, source=SOURCE)["success"]


def test_scoring_passes_without_target(spec):
    df = clean_frame().drop(columns="defaulted")
    summary = validate_frame(df, spec, include_target=False, source=SOURCE)
    assert summary["success"]
    assert all(r["column"] != "defaulted" for r in summary["results"])


def test_scoring_tolerates_target_present_and_skips_training_rules(spec):
    spec = spec.model_copy(
        update={
            "expectations": [
                Expectation(
                    expectation="expect_column_mean_to_be_between",
                    kwargs={"column": "defaulted", "min_value": 0.9},
                    applies_to="training",
                ),
                Expectation(expectation="expect_column_values_to_match_regex", kwargs={"column": "income", "regex": "x"}, applies_to="training"),
            ]
        }
    )
    df = clean_frame()
    df["defaulted"] = 0  # one class and a failing training-only rule: irrelevant when scoring
    assert validate_frame(df, spec, include_target=False, source=SOURCE)["success"]
    failures = failures_of(df, spec)
    only_failure(failures, "defaulted", "expect_column_mean_to_be_between")


# --- one failure each -------------------------------------------------------------------------


def test_missing_column(spec):
    failures = failures_of(clean_frame().drop(columns="debt"), spec)
    assert failures == [f"{SOURCE}: column 'debt': column must exist — it is missing from the data"]


def test_extra_column(spec):
    df = clean_frame().assign(secret_score=1.0)
    line = only_failure(failures_of(df, spec), "secret_score", "only declared columns")
    assert "not declared" in line


def test_string_in_numeric_column(spec):
    df = clean_frame()
    df["income"] = df["income"].astype(object)
    df.loc[2, "income"] = "n/a"
    df["income"] = df["income"].astype(str)  # what a CSV with a stray word gives: dtype str
    failures = failures_of(df, spec)
    line = only_failure(failures, "income", "values must be of type float")
    assert "dtype is str" in line and "'n/a'" in line
    # value rules on the column are skipped, not crashed
    assert len(failures) == 1, failures


def test_non_whole_float_in_integer_column(spec):
    df = clean_frame()
    df["age"] = df["age"].astype(float)
    df.loc[1, "age"] = 30.5
    line = only_failure(failures_of(df, spec), "age", "values must be of type integer")
    assert "30.5" in line


def test_null_in_non_nullable(spec):
    df = clean_frame()
    df.loc[4, "loan_amount"] = np.nan
    line = only_failure(failures_of(df, spec), "loan_amount", "must not be null")
    assert f"1 of {N} rows (5.00%)" in line


def test_duplicate_entity_key(spec):
    df = clean_frame()
    df.loc[5, "application_id"] = df.loc[6, "application_id"]
    line = only_failure(failures_of(df, spec), "application_id", "unique")
    assert "A20260102-00006" in line


def test_compound_entity_key(spec):
    # (a spec may not use a feature as a key; model_copy skips that cross-field check)
    app_id = spec.columns["application_id"].model_copy(update={"unique": False})
    compound = spec.model_copy(
        update={
            "source": spec.source.model_copy(update={"entity_key": ["application_id", "region"]}),
            "columns": {**spec.columns, "application_id": app_id},
        }
    )
    df = clean_frame()
    df.loc[5, "application_id"] = df.loc[6, "application_id"]
    assert validate_frame(df, compound, include_target=True, source=SOURCE)["success"]  # regions differ
    df.loc[5, "region"] = df.loc[6, "region"]
    failures = failures_of(df, compound)
    assert any("'application_id', 'region'" in f and "compound" in f for f in failures), failures


def test_out_of_range(spec):
    df = clean_frame()
    df.loc[[1, 2], "income"] = [-5.0, -3.2]
    line = only_failure(failures_of(df, spec), "income", "values must be ≥ 0")
    assert f"2 of {N} rows (10.00%) break it, e.g. [-5.0, -3.2]" in line


def test_unseen_category(spec):
    df = clean_frame()
    df.loc[3, "region"] = "atlantis"
    line = only_failure(failures_of(df, spec), "region", "values must be one of")
    assert "'atlantis'" in line


def test_inf_in_numeric(spec):
    df = clean_frame()
    df.loc[0, "debt"] = np.inf  # min 0, no max: only the finiteness rule can catch +inf
    line = only_failure(failures_of(df, spec), "debt", "finite")
    assert "inf" in line


def test_single_target_class(spec):
    df = clean_frame().assign(defaulted=0)
    line = only_failure(failures_of(df, spec), "defaulted", "at least 2 distinct classes")
    assert "observed 1" in line


def test_null_target(spec):
    df = clean_frame()
    df["defaulted"] = df["defaulted"].astype("Int64")
    df.loc[7, "defaulted"] = pd.NA
    failures = failures_of(df, spec)
    assert any("column 'defaulted'" in f and "must not be null" in f for f in failures), failures


def test_too_long_string(spec):
    region = spec.columns["region"].model_copy(update={"max_length": 5})
    short = spec.model_copy(update={"columns": {**spec.columns, "region": region}})
    line = only_failure(failures_of(clean_frame(), short), "region", "at most 5 characters")
    assert "'central'" in line


def test_custom_expectation_from_spec(spec):
    custom = spec.model_copy(
        update={
            "expectations": [
                Expectation(expectation="expect_column_values_to_match_regex", kwargs={"column": "application_id", "regex": r"^A2026"}),
                Expectation(expectation="ExpectColumnMaxToBeBetween", kwargs={"column": "age", "max_value": 100}),
            ]
        }
    )
    df = clean_frame()
    assert validate_frame(df, custom, include_target=True, source=SOURCE)["success"]
    df.loc[0, "application_id"] = "B-legacy-1"
    line = only_failure(failures_of(df, custom), "application_id", "expect_column_values_to_match_regex")
    assert "'B-legacy-1'" in line


def test_unknown_expectation_name_raises(spec):
    bad = spec.model_copy(update={"expectations": [Expectation(expectation="expect_column_to_be_awesome")]})
    with pytest.raises(ValueError, match="expect_column_to_be_awesome"):
        validate_frame(clean_frame(), bad, include_target=True, source=SOURCE)


def test_every_failure_names_source_column_and_rule(spec):
    df = clean_frame().drop(columns="debt").assign(extra=1)
    df.loc[0, "loan_amount"] = np.nan
    df.loc[1, "region"] = "atlantis"
    df.loc[2, "age"] = 7
    df["defaulted"] = 1
    failures = failures_of(df, spec)
    expected = {
        "debt": "column must exist",
        "extra": "only declared columns are allowed",
        "loan_amount": "values must not be null",
        "region": "values must be one of",
        "age": "values must be between 18 and 120",
        "defaulted": "target must have at least 2 distinct classes",
    }
    assert len(failures) == len(expected), failures
    for column, rule in expected.items():
        only_failure(failures, column, rule)


def test_data_docs_written_on_failure(spec, tmp_path):
    docs = tmp_path / "docs"
    df = clean_frame()
    df.loc[3, "region"] = "atlantis"
    with pytest.raises(ValidationFailed) as info:
        validate_frame(df, spec, include_target=True, source=SOURCE, docs_dir=docs)
    assert info.value.docs_dir == str(docs.resolve())
    assert (docs / "index.html").is_file()
    pages = list((docs / "validations").rglob("*.html"))
    assert pages and "atlantis" in pages[0].read_text(encoding="utf-8")
    assert str(docs / "index.html") in str(info.value)


def test_data_docs_written_on_success(spec, tmp_path):
    summary = validate_frame(clean_frame(), spec, include_target=True, source=SOURCE, docs_dir=tmp_path)
    assert summary["docs_dir"] == str(tmp_path.resolve())
    assert (tmp_path / "index.html").is_file()


def test_module_import_is_light():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import nightshift.steps.validate; "
        "heavy = [m for m in ('great_expectations', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "plugins")], check=True)


def test_date_column_accepts_python_dates(spec):
    raw = spec.model_dump(mode="json", by_alias=True)
    raw["schema"]["signup_day"] = {"type": "date", "nullable": False}
    with_date = parse_spec(raw)
    df = clean_frame()
    df["signup_day"] = [datetime.date(2025, 1, 1) + datetime.timedelta(days=int(k)) for k in range(N)]
    assert validate_frame(df, with_date, include_target=True, source=SOURCE)["success"]
    df["signup_day"] = df["signup_day"].astype(str)
    line = only_failure(failures_of(df, with_date), "signup_day", "values must be of type date")
    assert "dtype is str" in line
