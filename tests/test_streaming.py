"""Streamed ingest (issue #16): the snapshot copied chunk by chunk equals the one read_rows' single frame gives,
and its messages are read_rows' messages."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from nightshift.spec import find_spec, parse_spec
from nightshift.steps import ingest, score, validate
from nightshift_demo.generate import credit_applications_for_day, write_credit_applications

DAY = date(2026, 2, 4)
WINDOW = score.scoring_window(datetime(2026, 2, 4, tzinfo=timezone.utc), datetime(2026, 2, 5, tzinfo=timezone.utc))


def _frame_snapshot(spec, window) -> pd.DataFrame:
    rows, _ = score.read_scoring_rows(spec, window, [])
    return rows


def _streamed(spec, tmp_path, name="run") -> tuple[dict, pd.DataFrame]:
    ingested = score.ingest_scoring(spec, WINDOW.start, WINDOW.end, str(tmp_path / name))
    return ingested, pq.read_table(ingested["snapshot_uri"]).to_pandas()


def _assert_same(streamed: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert list(streamed.columns) == list(frame.columns)
    assert len(streamed) == len(frame) > 0
    for column in frame.columns:
        a, b = streamed[column], frame[column]
        if pd.api.types.is_datetime64_any_dtype(b):
            assert (a.dt.tz_convert("UTC") == b.dt.tz_convert("UTC")).all(), column
        else:
            pd.testing.assert_series_equal(a.astype(object), b.astype(object), check_names=False, obj=column)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    root = tmp_path / "credit"
    write_credit_applications(root, DAY, DAY, rows_per_day=3000)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    return root / f"dt={DAY.isoformat()}"


def _split(folder, parts=3, edit=None) -> None:
    """The day as several files (the way many writers land it), optionally edited per part."""
    (only,) = [p for p in folder.iterdir() if p.suffix == ".parquet"]
    frame = pd.read_parquet(only)
    only.unlink()
    for i, at in enumerate(np.array_split(np.arange(len(frame)), parts)):
        part = frame.iloc[at].reset_index(drop=True)
        (edit(i, part) if edit else part).to_parquet(folder / f"part-{i}.parquet", index=False, row_group_size=700)


def test_streamed_snapshot_equals_the_frame_path_in_row_groups_of_batch_rows(landing, tmp_path):
    def edit(i, part):  # int in one file, float with nulls in the next: pd.concat makes float64
        if i == 1:
            part["employment_years"] = part["employment_years"].astype("float64")
            part.loc[[0, 4], "employment_years"] = np.nan
        return part

    _split(landing, edit=edit)
    spec = find_spec("credit_default")
    spec.scoring.batch_rows = 1000
    ingested, streamed = _streamed(spec, tmp_path)
    frame = _frame_snapshot(spec, WINDOW)
    _assert_same(streamed, frame)
    meta = pq.ParquetFile(ingested["snapshot_uri"]).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert max(sizes) <= 750 and sum(sizes) == len(frame) and all(s == sizes[0] for s in sizes[:-1])  # ceil(3000/4)
    assert ingested["rows"] == len(frame)
    assert [n for _, n in ingested["file_rows"]] == [len(p) for p in np.array_split(np.arange(len(frame)), 3)]
    assert streamed["employment_years"].dtype == frame["employment_years"].dtype == np.float64


def test_row_keys_number_repeats_across_chunks_and_files(tmp_path, monkeypatch):
    doc = yaml.safe_load((Path(__file__).parents[1] / "include/pipelines/credit_default.yaml").read_text())
    doc["schema"].pop("application_id")
    doc["schema"]["row_id"] = {"type": "string", "nullable": False, "unique": True}
    doc["source"].update(entity_key=["row_id"], row_key="hash")
    doc["features"]["drop"] = ["row_id"]
    folder = tmp_path / "credit" / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True)
    day = credit_applications_for_day(DAY, rows=1500).drop(columns=["application_id"])
    repeated = pd.concat([day, day.head(5), day.head(5)], ignore_index=True)  # the 2nd and 3rd copies: -1, -2
    repeated.iloc[:800].to_parquet(folder / "a.parquet", index=False, row_group_size=300)
    pd.concat([repeated.iloc[800:], day.head(5)]).to_parquet(folder / "b.parquet", index=False, row_group_size=300)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(tmp_path / "credit"))
    spec = parse_spec(doc)
    spec.scoring.batch_rows = 1000
    _, streamed = _streamed(spec, tmp_path)
    frame = _frame_snapshot(spec, WINDOW)
    _assert_same(streamed, frame)
    assert streamed["row_id"].is_unique and streamed["row_id"].str.endswith("-3").sum() == 5


def test_training_window_streams_into_the_same_snapshot_and_hash_as_one_frame(tmp_path, monkeypatch):
    from nightshift.steps import snapshot

    root = tmp_path / "credit"
    write_credit_applications(root, date(2026, 1, 1), date(2026, 1, 6), rows_per_day=900)
    for day in ("2026-01-02", "2026-01-04"):  # several files a day, int in one and float with nulls in the next
        _split(root / f"dt={day}", edit=lambda i, part: part.assign(
            employment_years=part["employment_years"].astype("float64").where(part.index % 7 != 0)) if i == 1 else part)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(root))
    monkeypatch.setattr(ingest, "TRAINING_GROUP_ROWS", 500)  # many row groups, cut inside files and days
    spec = find_spec("credit_default")
    window = ingest.Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 7, tzinfo=timezone.utc))
    monkeypatch.setattr(ingest, "training_window", lambda *args: window)
    ingested = ingest.ingest_training(spec, window.end, str(tmp_path / "run"))
    streamed = pq.read_table(ingested["snapshot_uri"]).to_pandas()
    frame, _ = ingest.read_rows(spec, window, with_target=True, require_all=False)
    _assert_same(streamed, frame)
    assert ingested["rows"] == len(frame) and pq.ParquetFile(ingested["snapshot_uri"]).metadata.num_row_groups > 5
    assert ingested["data_hash"] == snapshot.data_hash(frame) == snapshot.data_hash(streamed)
    assert snapshot.data_hash(frame.assign(income=frame["income"] + 1)) != ingested["data_hash"]


@pytest.mark.parametrize("damage", ["missing-column", "null-event-times", "outside-partition", "text-in-second-file"])
def test_streamed_messages_are_read_rows_messages(landing, tmp_path, damage):
    def edit(i, part):
        if i != 1:
            return part
        if damage == "missing-column":
            return part.drop(columns=["income"])
        if damage == "null-event-times":  # rows in two row groups of the file: the message counts them all
            part.loc[[3, 10, 900], "application_date"] = pd.NaT
        if damage == "outside-partition":
            part.loc[[3, 850], "application_date"] = part.loc[[3, 850], "application_date"] + pd.Timedelta(days=1)
        if damage == "text-in-second-file":
            part["age"] = part["age"].astype(str)
        return part

    _split(landing, edit=edit)
    spec = find_spec("credit_default")
    spec.scoring.batch_rows = 1000
    with pytest.raises(ingest.IngestError) as frame_error:
        _frame_snapshot(spec, WINDOW)
    with pytest.raises(ingest.IngestError) as streamed_error:
        _streamed(spec, tmp_path)
    assert str(streamed_error.value) == str(frame_error.value)
    assert "part-1.parquet" in str(streamed_error.value)


# --- validation in batches ---------------------------------------------------------------------

def _snapshot(tmp_path, edit) -> tuple[str, pd.DataFrame]:
    day = credit_applications_for_day(DAY, rows=5000)
    day = edit(day.copy())
    path = tmp_path / "snapshot.parquet"
    day.to_parquet(path, index=False, row_group_size=700)
    return str(path), pd.read_parquet(path)


def _verdict(call):
    try:
        return "pass", call()
    except validate.ValidationFailed as exc:
        return str(exc), exc.summary


def _comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("docs_dir", "docs_batch", "batches_in_gx", "rules_in_duckdb")}


@pytest.mark.parametrize("include_target", [True, False])
def test_validation_in_batches_gives_the_whole_frame_verdict(tmp_path, include_target):
    def edit(day):
        day.loc[[10, 1500, len(day) - 50], "age"] = 150  # out of range in three batches: counts summed, examples in row order
        day.loc[len(day) - 900, "grade"] = "Q"  # only in a late batch
        day.loc[[20, 3333], "loan_amount"] = np.nan
        day.loc[len(day) - 600, "application_id"] = day.loc[12, "application_id"]  # duplicate key across batches
        return day

    uri, frame = _snapshot(tmp_path, edit)
    files = [["a.parquet", 2500], ["b.parquet", len(frame) - 2500]]
    spec = find_spec("credit_default")
    kwargs = dict(include_target=include_target, source="the day", files=files)
    whole_message, whole = _verdict(lambda: validate.validate_frame(frame, spec, **kwargs, docs_dir=tmp_path / "docs-whole"))
    batched_message, batched = _verdict(lambda: validate.validate_snapshot(uri, spec, **kwargs, docs_dir=tmp_path / "docs",
                                                                             batch_rows=1500))
    assert whole_message != "pass" and batched_message == whole_message.replace("/docs-whole/", "/docs/")
    assert "b.parquet" in whole_message and "a.parquet (and 1 more file)" in whole_message
    assert _comparable(batched) == _comparable(whole)
    assert (tmp_path / "docs" / "index.html").exists()


def test_validation_in_batches_passes_a_clean_snapshot_and_counts_classes_over_all_rows(tmp_path):
    def edit(day):
        day["defaulted"] = 0
        day.loc[len(day) - 1, "defaulted"] = 1  # the second class only in the last batch
        return day

    uri, frame = _snapshot(tmp_path, edit)
    spec = find_spec("credit_default")
    batched = validate.validate_snapshot(uri, spec, include_target=True, source="the day", batch_rows=1500)
    whole = validate.validate_frame(frame, spec, include_target=True, source="the day")
    assert batched["success"] and _comparable(batched) == _comparable(whole)
    classes = next(r for r in batched["results"] if r["expectation"] == "expect_column_unique_value_count_to_be_between")
    assert classes["observed_value"] == 2


def test_a_type_break_in_a_late_batch_is_found_though_text_types_are_decided_by_the_first_batch(tmp_path):
    """Text columns' type rules run on the first batch only (the Arrow schema fixes them); a column whose values can
    still break its type in any batch (a float column declared integer) is checked batch by batch."""
    def edit(day):
        day["age"] = day["age"].astype("float64")
        day.loc[len(day) - 300, "age"] = 40.5  # a non-whole age only in the last batch
        return day

    uri, frame = _snapshot(tmp_path, edit)
    spec = find_spec("credit_default")
    kwargs = dict(include_target=True, source="the day")
    whole_message, _ = _verdict(lambda: validate.validate_frame(frame, spec, **kwargs, docs_dir=tmp_path / "docs-whole"))
    batched_message, batched = _verdict(lambda: validate.validate_snapshot(uri, spec, **kwargs, docs_dir=tmp_path / "docs",
                                                                             batch_rows=1500))
    assert "column 'age': values must be of type integer" in whole_message and "40.5" in whole_message
    assert batched_message == whole_message.replace("/docs-whole/", "/docs/")
    assert batched["docs_batch"] == 3  # the Data Docs show the batch that broke the rule (rows 4,200..4,999)
    types = [r for r in batched["results"] if r["rule"].startswith("values must be of type")]
    assert {r["column"] for r in types} >= {"application_id", "grade", "region", "home_ownership", "age"}
    assert [r["column"] for r in types if not r["success"]] == ["age"]


def _credit_doc() -> dict:
    return yaml.safe_load((Path(__file__).parents[1] / "include/pipelines/credit_default.yaml").read_text())


def test_rules_counted_in_duckdb_give_what_great_expectations_gives_batch_by_batch(tmp_path):
    """The built-in row rules on columns whose parquet type fixes their view are counted over the whole snapshot in
    DuckDB; every kind of them, broken in late batches, reads as the whole-frame GX verdict, words and examples alike."""
    doc = _credit_doc()
    doc["schema"]["grade"] = {"type": "category", "nullable": False, "values": [1, 2, 3, 4, 5, 6, 7]}  # integer codes
    doc["schema"]["region"]["max_length"] = 7
    doc["schema"]["home_ownership"]["values"].append("co-op') OR TRUE OR ('")  # a value is a bound parameter, not SQL
    spec = parse_spec(doc)

    def edit(day):
        day["grade"] = day["grade"].map({g: i + 1 for i, g in enumerate("ABCDEFG")}).astype("int64")
        day.loc[4100, "grade"] = 9  # a code outside the set, shown as text like GX's view shows it
        day.loc[[3000, 4400], "income"] = [np.nan, np.inf]  # NaN is missing (allowed); inf breaks finiteness
        day.loc[3100, "utilization"] = 1.5
        day.loc[[3200, 3201], "debt"] = np.nan  # not nullable: one stays a NaN in the file, one becomes a null
        day.loc[3300, "employment_years"] = 71  # integer column, above its max
        day.loc[3400, "region"] = "central-east"  # not in the set and longer than 7 characters
        day.loc[3500, "home_ownership"] = "öwn"  # not in the set
        day.loc[len(day) - 1, "application_id"] = "é" * 65  # 65 characters (130 bytes): one too many
        return day

    uri, _ = _snapshot(tmp_path, edit)
    table = pq.read_table(uri)
    for name in ("income", "debt"):  # other writers keep NaN as a value (pandas writes it as a null)
        values = table[name].to_numpy()
        if name == "debt":
            values[3201] = np.nan
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, from_pandas=False))
    pq.write_table(table, uri, row_group_size=700)
    assert pq.read_table(uri)["income"].null_count == 0 and pq.read_table(uri)["debt"].null_count == 0
    frame = pd.read_parquet(uri)
    kwargs = dict(include_target=True, source="the day")
    whole_message, whole = _verdict(lambda: validate.validate_frame(frame, spec, **kwargs, docs_dir=tmp_path / "docs-whole"))
    pushed_message, pushed = _verdict(lambda: validate.validate_snapshot(uri, spec, **kwargs, docs_dir=tmp_path / "docs",
                                                                          batch_rows=1500))
    assert whole_message != "pass" and pushed_message == whole_message.replace("/docs-whole/", "/docs/")
    assert _comparable(pushed) == _comparable(whole)
    detail = (tmp_path / "docs" / "failures.txt").read_text()  # every example uncut, nulls and NaN as GX shows them
    assert detail == (tmp_path / "docs-whole" / "failures.txt").read_text().replace("/docs-whole/", "/docs/")
    broken = {(r["column"], r["expectation"].removeprefix("expect_column_"), r["unexpected_count"])
              for r in whole["results"] if not r["success"]}
    assert broken == {("grade", "values_to_be_in_set", 1), ("income", "values_to_not_be_in_set", 1),
                      ("utilization", "values_to_be_between", 1), ("debt", "values_to_not_be_null", 2),
                      ("employment_years", "values_to_be_between", 1), ("region", "values_to_be_in_set", 1),
                      ("region", "value_lengths_to_be_between", 1), ("home_ownership", "values_to_be_in_set", 1),
                      ("application_id", "value_lengths_to_be_between", 1)}
    assert "e.g. ['9']" in whole_message and "e.g. ['central-east']" in whole_message
    # GX read two of the four batches: the first, and the first one holding a broken row (rows 2,800..4,199)
    assert pushed["rules_in_duckdb"] >= 20 and pushed["batches_in_gx"] == 2 and pushed["docs_batch"] == 2
    assert (tmp_path / "docs" / "index.html").exists()


def test_a_clean_snapshot_is_read_by_great_expectations_once(tmp_path):
    uri, frame = _snapshot(tmp_path, lambda day: day)
    spec = find_spec("credit_default")
    batched = validate.validate_snapshot(uri, spec, include_target=True, source="the day", batch_rows=1500)
    whole = validate.validate_frame(frame, spec, include_target=True, source="the day")
    assert batched["success"] and _comparable(batched) == _comparable(whole)
    assert batched["batches_in_gx"] == 1 and batched["docs_batch"] if "docs_batch" in batched else True


def test_lineage_read_as_categories_holds_the_same_rows_as_a_plain_read(tmp_path):
    """warehouse.read_rows(categorical=...) reads each (date, version, run) group's scores on their own and keeps the
    lineage once per group; the rows of every group are the plain read's, in the table's order."""
    from nightshift.io.warehouse import DuckDBWarehouse

    rng = np.random.default_rng(3)
    n = 3000
    rows = pa.table({
        "MODEL_NAME": ["m"] * n,
        "MODEL_VERSION": rng.choice(["1", "2", "10"], n),
        "MLFLOW_RUN_ID": rng.choice(["run-a", "run-b"], n),
        "PARTITION_DATE": pa.array(rng.choice([date(2026, 2, 1), date(2026, 2, 2), date(2026, 2, 3)], n), pa.date32()),
        "APPLICATION_ID": [f"A{i}" for i in range(n)],
        "SCORE": rng.random(n),
    })
    path = tmp_path / "scores.parquet"
    pq.write_table(rows, path)
    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    warehouse.publish("SCORES", rows.schema, [str(path)], "m", [date(2026, 2, 1), date(2026, 2, 2), date(2026, 2, 3)], n)
    lineage = ("MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE")
    columns = ["APPLICATION_ID", "SCORE", *lineage]
    dates = [date(2026, 2, 1), date(2026, 2, 3)]
    coded = warehouse.read_rows("SCORES", "m", dates, columns, categorical=lineage)
    plain = warehouse.read_rows("SCORES", "m", dates, columns)
    assert all(isinstance(coded[c].dtype, pd.CategoricalDtype) for c in lineage)
    assert len(coded) == len(plain) == int(np.isin(rows["PARTITION_DATE"].to_numpy(), np.array(dates, dtype="datetime64[D]")).sum())
    expected = plain.assign(PARTITION_DATE=pd.to_datetime(plain["PARTITION_DATE"]).dt.date)
    for (version, run, day), group in coded.groupby(list(lineage), observed=True):
        same = expected[(expected["MODEL_VERSION"] == version) & (expected["MLFLOW_RUN_ID"] == run)
                        & (expected["PARTITION_DATE"] == day)]
        assert group["APPLICATION_ID"].tolist() == same["APPLICATION_ID"].tolist()
        assert group["SCORE"].tolist() == same["SCORE"].tolist()
    assert warehouse.read_rows("SCORES", "m", [date(2026, 3, 1)], columns, categorical=lineage).empty
