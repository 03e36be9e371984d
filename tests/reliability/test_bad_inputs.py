"""Bad-input catalogue: every case runs on its own copy of the landing data, through the DAGs' task functions.

For each case, all three must hold:
1. the run stops at the step that should catch it (ingest or validate, never later), fail-fast
   (AirflowFailException: no retries for data that a retry cannot fix), with a message naming the file,
   the column (when the problem has one) and the rule;
2. the warehouse's rows are unchanged (every table, every row);
3. the registry's versions and aliases are unchanged.

The champions and one published day come from the package's `world` fixture. Two cases also run as real
`dag.test()` runs to show the DAG stops at the same task.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from . import harness

pytestmark = pytest.mark.reliability("bad-inputs")

SCORE_DAY = date(2026, 2, 4)
TRAIN_DAYS = harness.days(date(2025, 12, 13), date(2026, 1, 1))  # ~800 rows inside the training window
DAMAGED_DAY = date(2025, 12, 20)
MODELS = ("credit_default", "house_prices")


@dataclass(frozen=True)
class Case:
    id: str
    pipeline: str  # credit_default (parquet, daily partitions) or house_prices (CSV)
    mode: str  # train | score
    damage: Callable[[Path], Path | None]  # gets the file the case targets; returns what the message must name instead
    step: str  # ingest | validate
    column: str | None
    rule: str  # regex the message must match


# --- damage helpers ----------------------------------------------------------------------------------

def parquet(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        edit(pd.read_parquet(path)).to_parquet(path, index=False)
    return apply


def csv(edit: Callable[[pd.DataFrame], pd.DataFrame], **to_csv) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        edit(pd.read_csv(path)).to_csv(path, index=False, **to_csv)
    return apply


def at_rows(column: str, value, rows=(1, 5, 9), dtype=None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if dtype is not None:
            frame[column] = frame[column].astype(dtype)
        frame.loc[list(rows), column] = value
        return frame
    return edit


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def text_edit(edit: Callable[[str], str], encoding: str = "utf-8") -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        path.write_bytes(edit(path.read_text(encoding="utf-8")).encode(encoding))
    return apply


def remove_folder(path: Path) -> Path:
    shutil.rmtree(path.parent)
    return path.parent


def remove_file(path: Path) -> Path:
    path.unlink()
    return path


def extra_file(path: Path) -> Path:
    notes = path.parent / "notes.txt"
    notes.write_text("loaded by hand\n")
    return notes


def second_copy(path: Path) -> Path:
    shutil.copy(path, path.parent / "part-1.parquet")
    return path


def shift_event_times(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[[0, 1], "application_date"] += pd.Timedelta(days=2)
    return frame


def text_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Event times written as text: naive timestamps are read in source.timezone now, text is still refused."""
    return frame.assign(application_date=frame["application_date"].dt.strftime("%d/%m/%Y %H:%M"))


def null_event_time(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[3, "application_date"] = pd.NaT
    return frame


def one_class(path: Path) -> Path:
    """Every partition of the window: no defaults at all."""
    for part in sorted(path.parents[1].glob("dt=*/part-0.parquet")):
        parquet(lambda f: f.assign(defaulted=0))(part)
    return sorted(path.parents[1].glob("dt=*/part-0.parquet"))[0]  # the rule is about the window: the source is named


def duplicates_from_previous_day(path: Path) -> Path:
    """Three applications of the day before show up again (with this day's times) in this partition."""
    previous = path.parents[1] / "dt=2025-12-19" / "part-0.parquet"
    copied = pd.read_parquet(previous).head(3)
    frame = pd.read_parquet(path)
    copied["application_date"] = frame["application_date"].iloc[:3].to_numpy()
    pd.concat([frame, copied], ignore_index=True).to_parquet(path, index=False)
    return previous


def empty_window(path: Path) -> Path:
    root = path.parents[1]
    shutil.rmtree(root)
    root.mkdir()
    return root


def header_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines()[0] + "\n")


def ragged_row(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[4] += ",surprise"
    path.write_text("\n".join(lines) + "\n")


def duplicate_header(path: Path) -> None:
    frame = pd.read_csv(path)
    frame.insert(2, "sqft_copy", frame["sqft"])
    text = frame.to_csv(index=False).replace("sqft_copy", "sqft", 1)
    path.write_text(text)


def latin1(column: str, value: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        frame = pd.read_csv(path)
        frame.loc[2, column] = value
        path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    return apply


ALL_NULL = parquet(lambda f: f.assign(debt=np.nan))
TEXT_AGE = parquet(at_rows("age", "forty", rows=(5,), dtype=str))

CASES = [
    # credit_default scoring: one daily parquet partition
    Case("score-missing-column", "credit_default", "score", parquet(lambda f: f.drop(columns=["income"])), "ingest", "income",
         r"is missing \(declared in schema\)"),
    Case("score-extra-column", "credit_default", "score", parquet(lambda f: f.assign(bonus=1.0)), "ingest", "bonus",
         r"is not declared in schema"),
    Case("score-renamed-column", "credit_default", "score", parquet(lambda f: f.rename(columns={"loan_amount": "loan_amt"})),
         "ingest", "loan_amount", r"is missing .*'loan_amt'"),
    Case("score-string-in-numeric", "credit_default", "score", TEXT_AGE, "validate", "age",
         r"values must be of type integer .*not numbers, e\.g\. \['forty'\]"),
    Case("score-numbers-as-text", "credit_default", "score", parquet(lambda f: f.assign(income=f["income"].astype(str))),
         "validate", "income", r"values must be of type float"),
    Case("score-fractional-integer", "credit_default", "score", parquet(at_rows("employment_years", 3.5, dtype=float)),
         "validate", "employment_years", r"non-whole value"),
    Case("score-all-null-column", "credit_default", "score", ALL_NULL, "validate", "debt", r"values must not be null .*100\.00%"),
    Case("score-null-entity-key", "credit_default", "score", parquet(at_rows("application_id", None)), "validate",
         "application_id", r"values must not be null"),
    Case("score-duplicate-keys", "credit_default", "score", parquet(lambda f: pd.concat([f, f.head(3)], ignore_index=True)),
         "validate", "application_id", r"must be unique"),
    Case("score-duplicates-in-second-file", "credit_default", "score", second_copy, "validate", "application_id",
         r"must be unique"),
    Case("score-out-of-range", "credit_default", "score", parquet(at_rows("age", 150)), "validate", "age",
         r"between 18 and 120 .*\[150\]"),
    Case("score-ratio-above-one", "credit_default", "score", parquet(at_rows("utilization", 1.7)), "validate", "utilization",
         r"between 0 and 1"),
    Case("score-unseen-category", "credit_default", "score", parquet(at_rows("grade", "Q")), "validate", "grade",
         r"must be one of .*\['Q'\]"),
    Case("score-nan-in-required", "credit_default", "score", parquet(at_rows("loan_amount", np.nan)), "validate",
         "loan_amount", r"must not be null"),
    Case("score-inf", "credit_default", "score", parquet(at_rows("income", np.inf)), "validate", "income", r"must be finite"),
    Case("score-minus-inf", "credit_default", "score", parquet(at_rows("debt", -np.inf)), "validate", "debt",
         r"must be finite|≥ 0"),
    Case("score-very-long-string", "credit_default", "score", parquet(at_rows("application_id", "A" * 100_000, rows=(2,))),
         "validate", "application_id", r"at most 64 characters"),
    Case("score-zero-byte-file", "credit_default", "score", zero_bytes, "ingest", None, r"file is empty \(0 bytes\)"),
    Case("score-truncated-parquet", "credit_default", "score", truncate, "ingest", None, r"not a readable parquet file"),
    Case("score-event-time-outside-interval", "credit_default", "score", parquet(shift_event_times), "ingest",
         "application_date", r"2 rows have event times outside partition dt=2026-02-04"),
    Case("score-event-time-as-text", "credit_default", "score", parquet(text_times), "ingest", "application_date",
         r"event times must be time-zone aware timestamps \(got dtype str\)"),
    Case("score-null-event-time", "credit_default", "score", parquet(null_event_time), "ingest", "application_date",
         r"1 rows have no event time"),
    Case("score-missing-partition-folder", "credit_default", "score", remove_folder, "ingest", None,
         r"partition folder is missing"),
    Case("score-unexpected-file-in-partition", "credit_default", "score", extra_file, "ingest", None,
         r"unexpected file in partition"),
    # credit_default training: one damaged partition (dt=2025-12-20) among 20 in the window
    Case("train-missing-target", "credit_default", "train", parquet(lambda f: f.drop(columns=["defaulted"])), "ingest",
         "defaulted", r"is missing"),
    Case("train-null-target", "credit_default", "train", parquet(at_rows("defaulted", None, dtype=float)), "validate",
         "defaulted", r"must not be null"),
    Case("train-target-outside-classes", "credit_default", "train", parquet(at_rows("defaulted", 2)), "validate", "defaulted",
         r"must be one of \[0, 1\]"),
    Case("train-one-target-class", "credit_default", "train", one_class, "validate", "defaulted",
         r"at least 2 distinct classes"),
    Case("train-duplicate-keys-across-partitions", "credit_default", "train", duplicates_from_previous_day, "validate",
         "application_id", r"must be unique"),
    Case("train-unseen-category", "credit_default", "train", parquet(at_rows("region", "atlantis")), "validate", "region",
         r"must be one of"),
    Case("train-out-of-range", "credit_default", "train", parquet(at_rows("employment_years", -3)), "validate",
         "employment_years", r"between 0 and 70"),
    Case("train-string-in-numeric", "credit_default", "train", TEXT_AGE, "ingest", "age",
         r"is str here but int64 in .*dt=2025-12-13.*: a column must have one type in every file"),
    Case("train-event-time-as-text-partition", "credit_default", "train", parquet(text_times), "ingest", "application_date",
         r"event times must be time-zone aware timestamps \(got dtype str\)"),
    Case("train-truncated-parquet", "credit_default", "train", truncate, "ingest", None, r"not a readable parquet file"),
    Case("train-empty-window", "credit_default", "train", empty_window, "ingest", None, r"holds 0 rows; training\.min_rows is 500"),
    # house_prices training: one CSV
    Case("train-csv-wrong-delimiter", "house_prices", "train", csv(lambda f: f, sep=";"), "ingest", None,
         r"looks ';'-separated, but source\.csv\.delimiter is ','"),
    Case("train-csv-not-utf8", "house_prices", "train", latin1("neighborhood", "caf\xe9 quarter"), "ingest", None,
         r"not valid utf-8 text at byte \d+"),
    Case("train-csv-zero-byte", "house_prices", "train", zero_bytes, "ingest", None, r"file is empty \(0 bytes\)"),
    Case("train-csv-header-only", "house_prices", "train", header_only, "ingest", None, r"holds 0 rows; training\.min_rows is 200"),
    Case("train-csv-ragged-row", "house_prices", "train", ragged_row, "ingest", None, r"not a readable CSV file"),
    Case("train-csv-duplicate-header", "house_prices", "train", duplicate_header, "ingest", "sqft.1", r"not declared in schema"),
    Case("train-csv-null-target", "house_prices", "train", csv(at_rows("price", np.nan)), "validate", "price", r"must not be null"),
    Case("train-csv-string-in-numeric", "house_prices", "train", csv(at_rows("sqft", "twelve hundred", dtype=object)),
         "validate", "sqft", r"must be of type float .*'twelve hundred'"),
    # house_prices scoring: one CSV per day
    Case("score-csv-missing-file", "house_prices", "score", remove_file, "ingest", None, r"file not found"),
    Case("score-csv-wrong-delimiter", "house_prices", "score", csv(lambda f: f, sep="\t"), "ingest", None,
         r"looks '\\t'-separated"),
    Case("score-csv-not-utf8", "house_prices", "score", latin1("condition", "gr\xfcn"), "ingest", None, r"not valid utf-8 text"),
    Case("score-csv-very-long-string", "house_prices", "score", csv(at_rows("neighborhood", "x" * 5000, rows=(3,))),
         "validate", "neighborhood", r"at most 64 characters"),
    Case("score-csv-out-of-range", "house_prices", "score", csv(at_rows("bedrooms", 99)), "validate", "bedrooms",
         r"between 0 and 20"),
    Case("score-csv-unseen-category", "house_prices", "score", csv(at_rows("condition", "ruined")), "validate", "condition",
         r"must be one of"),
]


# --- running a case ------------------------------------------------------------------------------------

def prepare(case: Case, world, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the landing data the case needs, wired in by env var; returns the file to damage."""
    if case.pipeline == "credit_default":
        days = [SCORE_DAY] if case.mode == "score" else TRAIN_DAYS
        root = harness.copy_partitions(world.credit, tmp_path / "credit", days)
        monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
        return root / f"dt={(SCORE_DAY if case.mode == 'score' else DAMAGED_DAY).isoformat()}" / "part-0.parquet"
    if case.mode == "train":
        target = Path(shutil.copy(world.house_sales, tmp_path / "house_sales.csv"))
        monkeypatch.setenv("NIGHTSHIFT_HOUSE_SOURCE_URI", str(target))
        return target
    (tmp_path / "listings").mkdir()
    target = Path(shutil.copy(world.listings / f"{SCORE_DAY}.csv", tmp_path / "listings" / f"{SCORE_DAY}.csv"))
    monkeypatch.setenv("NIGHTSHIFT_HOUSE_SCORE_URI", f"{tmp_path / 'listings'}/{{ds}}.csv")
    return target


def run_case(case: Case, run_id: str) -> harness.Outcome:
    if case.mode == "train":
        return harness.run_train(case.pipeline, run_id)
    return harness.run_score(case.pipeline, run_id, SCORE_DAY)


def assert_stopped_as_expected(case: Case, outcome: harness.Outcome, named: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    assert outcome.failed == case.step, outcome.describe()
    assert isinstance(outcome.error, AirflowFailException), f"not fail-fast: {outcome.describe()}"
    message = outcome.message
    assert str(named) in message, f"message does not name {named}: {message}"
    if case.column:
        assert f"column '{case.column}'" in message, message
    assert re.search(case.rule, message, re.S), f"rule {case.rule!r} not in: {message}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_stops_early_and_changes_nothing(case, world, tmp_path, monkeypatch):
    target = prepare(case, world, tmp_path, monkeypatch)
    warehouse, registry = harness.warehouse_state(), harness.registry_state(*MODELS)
    named = case.damage(target) or target

    outcome = run_case(case, f"bad__{case.id}")

    assert_stopped_as_expected(case, outcome, named)
    harness.assert_same_warehouse(warehouse, harness.warehouse_state())
    assert harness.registry_state(*MODELS) == registry


# --- the same stops through Airflow -------------------------------------------------------------------

def _states(dag_run) -> dict:
    states: dict = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id, ti.state)
    return states


CASES_BY_ID = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES), "two bad-input cases share an id"  # checked at collection, not a test


@pytest.mark.parametrize("case_id", ["score-unseen-category", "train-null-target"])
def test_dag_stops_at_the_same_task(case_id, world, airflow_db, tmp_path, monkeypatch):
    from nightshift.render import build_score_dag, build_train_dag
    from nightshift.spec import find_spec

    case = CASES_BY_ID[case_id]
    case.damage(prepare(case, world, tmp_path, monkeypatch))
    warehouse, registry = harness.warehouse_state(), harness.registry_state(*MODELS)
    spec = find_spec(case.pipeline)
    if case.mode == "score":
        conf = {"interval_start": SCORE_DAY.isoformat(), "interval_end": "2026-02-05"}
        dag_run = build_score_dag(spec).test(logical_date=harness.at(SCORE_DAY), run_conf=conf)
        before, later = ["resolve_model", "ingest"], ["plan_shards", "score", "publish", "monitor", "summary"]
    else:
        dag_run = build_train_dag(spec).test(logical_date=harness.TRAIN_END)
        before, later = ["ingest"], ["features", "train", "evaluate", "promote"]
    states = _states(dag_run)
    assert dag_run.state == "failed", states
    assert states[case.step] == "failed" and all(states[t] == "success" for t in before), states
    assert not any(states.get(t) == "success" for t in later), states
    harness.assert_same_warehouse(warehouse, harness.warehouse_state())
    assert harness.registry_state(*MODELS) == registry
