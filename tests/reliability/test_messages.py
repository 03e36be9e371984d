"""Messages that name their cause: every failure below comes from a real file (pyarrow-written parquet, a 1 MB
value, a garbage or locked mlflow.db), and its message must name the file, column or store and stay within
errors.MAX_MESSAGE characters. No world fixture: each case builds the little it needs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift.spec import errors, load_spec

pytestmark = pytest.mark.reliability("messages")

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 2, 4)
MEGABYTE = "x" * 1_000_000


def bounded(message: str) -> str:
    assert len(message) <= errors.MAX_MESSAGE, f"{len(message)} characters: {message[:300]}…"
    return message


@pytest.fixture
def credit(tmp_path, monkeypatch):
    """Two days of credit_applications partitions (dt=2026-02-03, dt=2026-02-04) and the spec reading them."""
    from nightshift_demo.generate import write_credit_applications

    root = tmp_path / "landing" / "credit_applications"
    write_credit_applications(root, date(2026, 2, 3), DAY, rows_per_day=20)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    return root, load_spec(ROOT / "include" / "pipelines" / "credit_default.yaml")


def read_day(spec, day: date = DAY):
    from nightshift.steps import ingest

    window = ingest.Window(datetime(day.year, day.month, day.day, tzinfo=timezone.utc),
                           datetime(day.year, day.month, day.day + 1, tzinfo=timezone.utc))
    return ingest.read_rows(spec, window, with_target=False, require_all=True)


def edit_parquet(path: Path, edit) -> None:
    pq.write_table(edit(pq.read_table(path)), path)


# --- validation: a 1 MB value ---------------------------------------------------------------------------------

def test_one_megabyte_category_value_is_shown_cut_and_kept_whole_in_the_run_folder(credit, tmp_path):
    from nightshift.steps.validate import ValidationFailed, validate_frame

    root, spec = credit
    frame = pd.read_parquet(root / f"dt={DAY}" / "part-0.parquet")
    frame.loc[3, "grade"] = MEGABYTE
    run_dir = tmp_path / "run"
    with pytest.raises(ValidationFailed) as caught:
        validate_frame(frame, spec, include_target=True, source="dt=2026-02-04/part-0.parquet", run_dir=str(run_dir))
    message = bounded(str(caught.value))
    assert "dt=2026-02-04/part-0.parquet: column 'grade': values must be one of" in message, message
    assert "'" + "x" * errors.MAX_VALUE + "…(1,000,000 chars)'" in message, message
    written = run_dir / "validate" / "failures.txt"
    assert f"Full text, values uncut: {written}" in message, message
    kept = written.read_text(encoding="utf-8")
    assert MEGABYTE in kept and "column 'grade'" in kept  # the full value, beside the run


def test_many_failures_with_huge_values_stay_bounded_and_name_the_full_list(credit, tmp_path):
    from nightshift.steps.validate import ValidationFailed, validate_frame

    root, spec = credit
    frame = pd.read_parquet(root / f"dt={DAY}" / "part-0.parquet")
    text_columns = [name for name, col in spec.columns.items() if col.type in ("category", "string")]
    for column in text_columns:
        frame.loc[[1, 2, 3, 4, 5], column] = [f"{MEGABYTE}{column}{k}" for k in range(5)]  # five long examples each
    for column, value in {"age": 150, "employment_years": 99, "utilization": 7.5, "loan_amount": -1.0}.items():
        frame.loc[[6, 7], column] = value
    run_dir = tmp_path / "run"
    with pytest.raises(ValidationFailed) as caught:
        validate_frame(frame, spec, include_target=True, source="many.parquet", run_dir=str(run_dir))
    failed = caught.value
    message = bounded(str(failed))
    assert len(failed.failures) >= len(text_columns) + 4, failed.failures
    assert message.startswith(f"{len(failed.failures)} data check(s) failed:"), message[:200]
    assert "many.parquet: column '" in message and " more\n" in message, message  # lines that did not fit are counted
    written = run_dir / "validate" / "failures.txt"
    assert message.endswith(f"Full text, values uncut: {written}"), message[-300:]
    kept = written.read_text(encoding="utf-8")
    assert all(line in kept for line in failed.failures) and f"{MEGABYTE}grade4" in kept


# --- ingest: what the reader saw, named by column --------------------------------------------------------------

def test_struct_column_names_the_column_its_type_and_the_declared_type(credit):
    from nightshift.steps.ingest import IngestError

    root, spec = credit
    part = root / f"dt={DAY}" / "part-0.parquet"

    def to_struct(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("grade")
        return table.set_column(index, "grade", pa.array([{"g": v} for v in table.column("grade").to_pylist()]))

    edit_parquet(part, to_struct)
    with pytest.raises(IngestError) as caught:
        read_day(spec)
    message = bounded(str(caught.value))
    assert str(part) in message and "column 'grade'" in message, message
    assert "struct<g: string>" in message and "the schema declares category" in message, message


def test_nested_undeclared_column_is_named_as_undeclared(credit):
    from nightshift.steps.ingest import IngestError

    root, spec = credit
    part = root / f"dt={DAY}" / "part-0.parquet"
    edit_parquet(part, lambda t: t.append_column("tags", pa.array([["a", "b"]] * t.num_rows)))
    with pytest.raises(IngestError) as caught:
        read_day(spec)
    message = bounded(str(caught.value))
    assert str(part) in message and "column 'tags'" in message and "list<" in message, message
    assert "not declared in schema" in message, message


def test_data_in_a_subfolder_of_a_partition_names_the_subfolder(credit):
    from nightshift.steps.ingest import IngestError

    root, spec = credit
    partition = root / f"dt={DAY}"
    (partition / "late").mkdir()
    shutil.move(partition / "part-0.parquet", partition / "late" / "part-0.parquet")
    with pytest.raises(IngestError) as caught:  # before: AttributeError: Can only use .dt accessor ...
        read_day(spec)
    message = bounded(str(caught.value))
    assert f"unexpected folder 'late' inside partition {partition}" in message, message
    assert "data files must sit directly in the partition folder" in message


def test_writer_work_folders_inside_a_partition_are_ignored(credit):
    root, spec = credit
    (root / f"dt={DAY}" / "_temporary").mkdir()
    rows, names = read_day(spec)
    assert len(rows) == len(pd.read_parquet(root / f"dt={DAY}" / "part-0.parquet")) > 0 and names == [f"{root}/dt={DAY}/part-0.parquet"]


def test_type_disagreement_between_files_names_both_files_and_the_declared_type(credit):
    from nightshift.steps import ingest

    root, spec = credit
    first, second = (root / f"dt={d}" / "part-0.parquet" for d in ("2026-02-03", "2026-02-04"))
    frame = pd.read_parquet(second)
    frame["age"] = frame["age"].astype(str)
    frame.to_parquet(second, index=False)
    window = ingest.Window(datetime(2026, 2, 3, tzinfo=timezone.utc), datetime(2026, 2, 5, tzinfo=timezone.utc))
    with pytest.raises(ingest.IngestError) as caught:
        ingest.read_rows(spec, window, with_target=False, require_all=True)
    message = bounded(str(caught.value))
    assert message.startswith(f"{second}: column 'age' is str here but int64 in {first}"), message
    assert "(the schema declares integer)" in message, message


def test_undeclared_column_with_a_megabyte_name_is_cut_and_named(credit):
    from nightshift.steps.ingest import IngestError

    root, spec = credit
    part = root / f"dt={DAY}" / "part-0.parquet"
    edit_parquet(part, lambda t: t.append_column(MEGABYTE, pa.array([1.0] * t.num_rows)))
    with pytest.raises(IngestError) as caught:
        read_day(spec)
    message = bounded(str(caught.value))
    assert str(part) in message and "x" * errors.MAX_VALUE + "…(1,000,000 chars)" in message, message
    assert "(double) is not declared in schema" in message or "(float64) is not declared in schema" in message, message
    assert len(caught.value.detail) <= len(message) or MEGABYTE in caught.value.detail


def test_unreadable_parquet_names_the_file_within_the_bound(credit):
    from nightshift.steps.ingest import IngestError

    root, spec = credit
    part = root / f"dt={DAY}" / "part-0.parquet"
    part.write_bytes(b"PAR1" + os.urandom(5000))
    with pytest.raises(IngestError) as caught:
        read_day(spec)
    message = bounded(str(caught.value))
    assert message.startswith(f"{part}: not a readable parquet file ("), message


def test_megabyte_value_in_a_csv_timestamp_column_is_cut_and_the_full_text_kept_in_the_run_folder(credit, tmp_path):
    import yaml

    from nightshift.spec import parse_spec
    from nightshift.steps import ingest

    root, _ = credit
    frame = pd.concat([pd.read_parquet(p) for p in sorted(root.glob("dt=*/part-0.parquet"))], ignore_index=True)
    frame["application_date"] = frame["application_date"].map(lambda t: t.isoformat()).astype(object)
    frame.loc[2, "application_date"] = MEGABYTE
    path = tmp_path / "applications.csv"
    frame.to_csv(path, index=False)
    doc = yaml.safe_load((ROOT / "include" / "pipelines" / "credit_default.yaml").read_text())
    doc["source"] = {**doc["source"], "uri": str(path), "format": "csv", "partitioning": "none"}
    spec = parse_spec(doc)
    run_dir = tmp_path / "run"
    with pytest.raises(ingest.IngestError) as caught:
        ingest.ingest_training(spec, datetime(2026, 2, 5, tzinfo=timezone.utc), str(run_dir))
    message = bounded(str(caught.value))
    written = run_dir / "ingest" / "failure.txt"
    assert message.startswith(f"{path}: column 'application_date': values are not ISO-8601 timestamps"), message[:300]
    assert f"(full text: {written})" in message, message
    assert MEGABYTE in written.read_text(encoding="utf-8")  # the reader's whole complaint, value included


# --- the tracking store ----------------------------------------------------------------------------------------

@pytest.fixture
def store(local_state) -> Path:
    """The embedded MLflow store of this test (sqlite:///<tmp>/local/mlflow.db), not created yet."""
    local_state.mkdir(parents=True, exist_ok=True)
    return local_state / "mlflow.db"


def assert_names_store(message: str, db: Path, words: str) -> None:
    bounded(message)
    assert f"MLflow tracking store sqlite:///{db} {words}" in message, message


def test_garbage_tracking_db_is_named_as_not_a_database(store):
    from nightshift.io import tracking

    store.write_bytes(b"not an sqlite file, just bytes " * 100)
    started = time.monotonic()
    with pytest.raises(tracking.TrackingStoreError) as caught:
        tracking.experiment_id("credit_default")
    assert_names_store(str(caught.value), store, "is not a database (corrupt?)")
    assert not isinstance(caught.value, tracking.TrackingStoreMissing) and time.monotonic() - started < 30


def test_tracking_db_corrupted_under_an_open_client_is_named(store):
    from nightshift.io import tracking

    mlflow_client = tracking.client()
    mlflow_client.create_experiment("before")
    store.write_bytes(b"\x00garbage" * 20_000)  # same file, overwritten while the client's engine has it open
    with pytest.raises(tracking.TrackingStoreError) as caught:
        mlflow_client.search_experiments()
    assert_names_store(str(caught.value), store, "is not a database (corrupt?)")
    assert caught.value.__cause__ is not None  # SQLite's own error stays attached for the log


def test_tracking_db_that_is_a_directory_cannot_be_opened(store):
    from nightshift.io import tracking

    store.mkdir()
    started = time.monotonic()
    with pytest.raises(tracking.TrackingStoreError) as caught:  # before: ~100 s of MLflow retries, then no file named
        tracking.client()
    assert_names_store(str(caught.value), store, "cannot be opened (it is a directory")
    assert time.monotonic() - started < 30


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file: the permission cannot bite")
def test_unreadable_tracking_db_cannot_be_opened(store):
    from nightshift.io import tracking

    tracking.client().create_experiment("before")
    store.chmod(0)
    try:
        with pytest.raises(tracking.TrackingStoreError) as caught:
            tracking.client()
        assert_names_store(str(caught.value), store, "cannot be opened (permission denied")
    finally:
        store.chmod(0o644)


def test_locked_tracking_db_is_named_as_locked_by_another_process(store):
    from nightshift.io import tracking

    mlflow_client = tracking.client()
    mlflow_client.create_experiment("before")
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write transaction, never committed
    try:
        with pytest.raises(tracking.TrackingStoreLocked) as caught:
            mlflow_client.create_experiment("while-locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_names_store(str(caught.value), store, "is locked by another process")
    assert isinstance(caught.value, tracking.TrackingStoreError)  # an outage: retried


def test_missing_tracking_db_is_refused_when_the_pipeline_has_history(store):
    from nightshift.io import tracking

    with pytest.raises(tracking.TrackingStoreMissing) as caught:
        tracking.check_store(expect_existing=True)
    assert_names_store(str(caught.value), store, "is missing")
    assert not store.exists()  # nothing created
    tracking.check_store(expect_existing=False)  # a first run may start an empty store
    tracking.client().create_experiment("first")
    tracking.check_store(expect_existing=True)  # and then it exists
