"""Monitoring as plain functions: PSI and KS by hand, bins, the noise floor, comparisons, alerts, rendering."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nightshift.operators import alerts
from nightshift.ml import drift
from nightshift_demo.generate import credit_applications_for_day
from nightshift.spec import Drift, Notify, find_spec
from nightshift.steps import monitor, profile

REFERENCE_DAYS = [date(2025, 11, 27) + timedelta(days=d) for d in range(36)]  # like the held-out split of a 180-day window


# --- statistics against hand-computed values -------------------------------------------------

def test_psi_matches_the_hand_computed_value():
    # shares with half a row per bin: (50.5, 30.5, 20.5) / 101.5 against (20.5, 30.5, 50.5) / 101.5;
    # the middle bin contributes 0, the outer two (50.5 - 20.5) / 101.5 * ln(50.5 / 20.5) each
    expected = 2 * (30 / 101.5) * math.log(50.5 / 20.5)
    assert drift.psi([50, 30, 20], [20, 30, 50]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.53294, abs=1e-5)
    assert drift.psi([500, 500], [500, 500]) == 0.0
    # large counts: smoothing is negligible, PSI = (0.4 - 0.5) ln(0.8) + (0.6 - 0.5) ln(1.2)
    assert drift.psi([50_000, 50_000], [40_000, 60_000]) == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8), abs=1e-5)


def test_empty_bin_costs_a_finite_amount():
    # reference shares 20.5/41 = 0.5 each; current 0.5/41 (the empty bin) and 40.5/41
    value = drift.psi([20, 20], [0, 40])
    empty, full = 0.5 / 41, 40.5 / 41
    assert value == pytest.approx((empty - 0.5) * math.log(empty / 0.5) + (full - 0.5) * math.log(full / 0.5), abs=1e-12)
    assert value == pytest.approx(2.14363, abs=1e-5)  # with 1e-4 for empty shares it would be 4.6


def test_ks_statistic_by_hand_and_against_scipy():
    assert drift.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5  # at x=2: F_ref 0.5, F_cur 0
    assert drift.ks_statistic([1, 2, 2, 3, 10], [2, 2, 4]) == pytest.approx(0.2)  # x=1: 0.2 vs 0; x=4: 0.8 vs 1
    assert drift.ks_statistic([1.0, np.nan, 2.0], [1.0, 2.0]) == 0.0
    assert math.isnan(drift.ks_statistic([1.0], []))
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.4, 1.2, size=70)
    assert drift.ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_quantile_bins_use_actual_values_and_never_leave_a_reference_bin_empty():
    values = np.arange(1, 101, dtype=float)
    edges = drift.quantile_edges(values, 10)
    assert edges == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert drift.bin_counts(values, edges) == [10] * 10
    binary = [0.0] * 70 + [1.0] * 30 + [np.nan] * 5  # few distinct values: (-inf, 0], (0, inf)
    assert drift.quantile_edges(binary, 10) == [0.0]
    assert drift.bin_counts(binary, [0.0]) == [70, 30]


def test_noise_floor_is_what_chance_alone_reaches_on_small_samples():
    uniform = [144] * 10
    small, large = drift.noise_floor(uniform, 40, 1e-4), drift.noise_floor(uniform, 100_000, 1e-4)
    # chi-square sanity check: PSI is about chi2(9) * (1/n + 1/N); its 1 - 1e-4 quantile is 33.7, so ~0.86 for 40 rows,
    # and a huge partition is still limited by the 1440-row reference: ~0.024
    assert 0.6 < small < 1.0
    assert 0.015 < large < 0.03
    assert drift.noise_floor([100_000] * 10, 100_000, 1e-4) < 0.001
    assert drift.noise_floor(uniform, 40, 1e-4) == small  # seeded: reproducible
    assert drift.status(0.5, small, 0.1, 0.25) == drift.OK  # over both thresholds, but chance explains it
    assert drift.status(1.2, small, 0.1, 0.25) == drift.FAIL
    assert drift.status(0.15, 0.01, 0.1, 0.25) == drift.WARN
    assert drift.status(None, 0.0, 0.1, 0.25) == drift.EMPTY
    assert drift.worst([drift.OK, drift.EMPTY, drift.WARN]) == drift.WARN and drift.worst([drift.EMPTY]) == drift.OK


# --- profile and comparisons on generated data -------------------------------------------------

@pytest.fixture(scope="module")
def credit():
    return find_spec("credit_default")


def _days(days, rows=40, drift_=False) -> pd.DataFrame:
    return pd.concat([credit_applications_for_day(d, rows=rows, drift=drift_) for d in days], ignore_index=True)


@pytest.fixture(scope="module")
def reference(credit):
    held_out = _days(REFERENCE_DAYS)
    scores = np.random.default_rng(0).beta(2, 8, len(held_out))  # stands in for model scores
    return profile.build_profile(credit, held_out, scores)


def test_profile_holds_bins_categories_null_rates_and_score(credit, reference):
    assert set(reference["columns"]) == {"income", "loan_amount", "utilization", "employment_years", "age", "debt",
                                         "grade", "region", "home_ownership"}  # application_date (time) is not monitored
    income = reference["columns"]["income"]
    assert income["kind"] == "numeric" and len(income["counts"]) == len(income["edges"]) + 1 == 10
    assert sum(income["counts"]) == pytest.approx(income["rows"] * (1 - income["null_rate"]))
    assert 0.005 < income["null_rate"] < 0.05 and len(income["sample"]) == profile.SAMPLE_SIZE
    grade = reference["columns"]["grade"]
    assert grade["kind"] == "categorical" and set(grade["counts"]) == set("ABCDEFG") and grade["null_rate"] == 0
    assert reference["score"]["kind"] == "numeric" and reference["rows"] > 1000


def test_no_alarm_on_stable_seeded_data_over_14_days(credit, reference):
    """40 rows a day: PSI averages about 0.2 by chance with 10 bins, so only the noise floor keeps this quiet."""
    rng = np.random.default_rng(1)
    biggest = {}
    for day in [date(2026, 2, 1) + timedelta(days=d) for d in range(14)]:
        frame = credit_applications_for_day(day, rows=40)
        results = monitor.compare_partition(reference, frame, rng.beta(2, 8, len(frame)), credit.monitoring.drift)
        assert {r["status"] for r in results} == {drift.OK}, [(r["feature"], r["psi"], r["psi_noise_floor"]) for r in results]
        for r in results:
            biggest[r["feature"]] = max(biggest.get(r["feature"], 0), r["psi"])
    assert max(biggest.values()) > credit.monitoring.drift.fail  # raw PSI alone would have alarmed


def test_injected_drift_is_detected_with_40_rows(credit, reference):
    frame = credit_applications_for_day(date(2026, 2, 11), rows=40, drift=True)
    results = {r["feature"]: r for r in monitor.compare_partition(reference, frame, np.full(len(frame), 0.1), credit.monitoring.drift)}
    assert results["income"]["status"] == results["utilization"]["status"] == drift.FAIL
    assert results["income"]["psi"] > results["income"]["psi_noise_floor"] > credit.monitoring.drift.fail
    assert results["income"]["ks"] > 0.3 and results["region"]["status"] == drift.OK
    assert drift.worst([r["status"] for r in results.values()]) == drift.FAIL


def test_null_rates_unseen_categories_and_empty_partitions(credit, reference):
    config = Drift()
    out = monitor.compare_categorical(reference["columns"]["grade"], pd.Series(["A", "Z", "Z", None]), config)
    assert out["unseen_categories"] == 2 and out["unseen_examples"] == "Z" and out["_labels"][-1] == "(unseen)"
    assert out["null_rate"] == 0.25 and out["null_rate_change"] == 0.25
    numeric = monitor.compare_numeric(reference["columns"]["income"], pd.Series([np.nan, np.nan]), config)
    assert numeric["psi"] is None and numeric["null_rate"] == 1.0
    nothing = credit_applications_for_day(date(2026, 2, 1)).head(0)
    empty = monitor.compare_partition(reference, nothing, [], credit.monitoring.drift)
    assert {r["status"] for r in empty} == {drift.EMPTY} and all(r["partition_rows"] == 0 for r in empty)


def test_table_rows_and_summary(credit, reference):
    frame = credit_applications_for_day(date(2026, 2, 11), rows=40, drift=True).assign(
        **{monitor.PARTITION_COLUMN: date(2026, 2, 11)})
    scores = pd.DataFrame({"SCORE": np.full(len(frame), 0.1), "PARTITION_DATE": date(2026, 2, 11)})
    by_date = monitor.compare_dates(credit, reference, frame, scores, [date(2026, 2, 11), date(2026, 2, 12)])
    model_ref = {"model_version": "3", "mlflow_run_id": "r1"}
    rows = monitor.table_rows(credit, by_date, model_ref, "run-1", pd.Timestamp("2026-02-12", tz="UTC").to_pydatetime())
    assert len(rows) == 2 * 10 and {c for c, _ in monitor.COLUMNS} == set(rows[0])
    import pyarrow as pa

    pa.Table.from_pylist(rows, schema=monitor.table_schema())  # every value fits the declared types
    summary = monitor.summarize(credit, by_date, model_ref)
    assert summary["verdict"] == "fail" and summary["partition_dates"] == ["2026-02-11", "2026-02-12"]
    assert {"feature": "income", "partition_date": "2026-02-11"}.items() <= next(f for f in summary["flagged"] if f["feature"] == "income").items()


# --- alerts ---------------------------------------------------------------------------------

SUMMARY = {"pipeline": "credit_default", "verdict": "warn", "partition_dates": ["2026-02-11"], "model": "credit_default v1",
           "flagged": [{"feature": "income", "status": "warn", "psi": 0.17, "partition_date": "2026-02-11"}], "report": "r/"}


def test_alert_renders_templates_into_a_real_airflow_notifier(credit, monkeypatch):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    sent = []
    monkeypatch.setattr(SmtpNotifier, "notify", lambda self, context: sent.append((self.to, self.subject, self.html_content)))
    spec = credit.model_copy(update={"monitoring": credit.monitoring.model_copy(update={"notify": Notify(
        notifier="airflow.providers.smtp.notifications.smtp.SmtpNotifier",
        kwargs={"to": "risk@example.com", "subject": "{{ drift.pipeline }} drift {{ drift.verdict }}", "html_content": "{{ drift_message }}"},
    )})})
    message = alerts.notify(spec, {}, SUMMARY)
    assert sent == [("risk@example.com", "credit_default drift warn", message)]
    assert "income warn (PSI 0.170) on 2026-02-11" in message


def test_default_alert_only_logs(credit, caplog):
    with caplog.at_level("WARNING", logger="nightshift.operators.alerts"):
        alerts.notify(credit, {}, SUMMARY)
    assert "DRIFT ALERT credit_default: drift WARN" in caplog.text


@pytest.mark.parametrize("path", ["os.system", "subprocess.Popen", "builtins.Exec"])
def test_notifier_must_be_an_airflow_or_nightshift_class(path):
    with pytest.raises(ValueError):
        Notify(notifier=path)
    with pytest.raises(TypeError, match="not an Airflow BaseNotifier"):
        alerts.notifier_class("nightshift.spec.Pipeline")


# --- render ----------------------------------------------------------------------------------

def test_render_places_monitor_and_schedules_training_on_the_drift_asset(credit):
    from airflow.sdk import AssetOrTimeSchedule

    from nightshift.render import build_score_dag, build_train_dag

    dag = build_score_dag(credit)
    assert dag.get_task("monitor").upstream_task_ids == {"publish", "score", "ingest", "resolve_model"}
    assert "drift_event" not in dag.task_ids and "monitor" in dag.get_task("summary").upstream_task_ids
    assert type(build_train_dag(credit).timetable).__name__ == "CronDataIntervalTimetable"

    configured = credit.monitoring.model_copy(update={"block_publish_on": "fail", "retrain_on_drift": True})
    spec = credit.model_copy(update={"monitoring": configured})
    dag = build_score_dag(spec)
    assert "monitor" in dag.get_task("publish").upstream_task_ids  # the check runs before publish
    event = dag.get_task("drift_event")
    assert event.trigger_rule == "all_done" and [a.uri for a in event.outlets] == ["nightshift://credit_default/drift"]
    timetable = build_train_dag(spec).timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert [a.uri for a in timetable.asset_condition.objects] == ["nightshift://credit_default/drift"]


# --- null-rate drift, unseen categories, modes (issue #15, #19) ---------------------------------

def test_null_rate_jumps_warn_or_fail_and_an_all_null_column_warns(credit, reference):
    config = credit.monitoring.drift
    income = reference["columns"]["income"]
    base = credit_applications_for_day(date(2026, 2, 3), rows=200)
    n = len(base)

    def judged(frame):
        scores = np.random.default_rng(5).beta(2, 8, len(frame))  # as the reference's scores
        return {r["feature"]: r for r in monitor.compare_partition(reference, frame, scores, config)}

    # 30% of income blanked: +28 points over a ~2% reference; Binomial(n, 0.02) reaching that is astronomically unlikely
    warn_frame = base.assign(income=base["income"].where(np.arange(n) % 10 >= 3))
    moved = warn_frame["income"].isna().mean() - income["null_rate"]
    assert config.null_warn <= moved < config.null_fail
    row = judged(warn_frame)["income"]
    assert row["null_rate_status"] == row["status"] == drift.WARN and "points" in row["note"]
    assert monitor.day_verdict(list(judged(warn_frame).values())) == drift.WARN  # warn never fails the date
    fail_frame = base.assign(income=base["income"].where(np.arange(n) % 10 >= 7))
    assert fail_frame["income"].isna().mean() - income["null_rate"] >= config.null_fail
    assert judged(fail_frame)["income"]["status"] == drift.FAIL
    # all null on a 2-row date: too few rows for the null rate to decide by chance, but all-null warns at least
    tiny = base.head(2).assign(income=np.nan)
    smoothed = (income["null_rate"] * income["rows"] + 0.5) / (income["rows"] + 1)
    assert 1.0 - income["null_rate"] > config.null_fail and smoothed ** 2 > config.significance  # 2 nulls by chance: likely enough
    row = judged(tiny)["income"]
    assert row["status"] == drift.WARN and row["psi"] is None and row["note"].startswith("entirely null")


def test_unseen_categories_get_their_own_row_and_stay_out_of_the_psi(credit, reference):
    frame = credit_applications_for_day(date(2026, 2, 3), rows=200)
    unseen = frame.assign(region=frame["region"].where(np.arange(len(frame)) % 5 != 0, "atlantis"))
    results = monitor.compare_partition(reference, unseen, np.full(len(frame), 0.1), credit.monitoring.drift)
    rows = [r for r in results if r["feature"] == "region"]
    assert [r["kind"] for r in rows] == ["categorical", "unseen"]
    count = int((unseen["region"] == "atlantis").sum())
    assert rows[1]["unseen_categories"] == count and rows[1]["unseen_examples"] == "atlantis" and rows[1]["status"] == drift.WARN
    known = unseen.loc[unseen["region"] != "atlantis", "region"].value_counts()
    expected = drift.psi(list(reference["columns"]["region"]["counts"].values()),
                         [int(known.get(k, 0)) for k in reference["columns"]["region"]["counts"]])
    assert rows[0]["psi"] == pytest.approx(expected)  # the PSI of the known categories only


# --- streamed statistics (issue #16): record batches of parquet files, never one frame ----------

STREAM_DAYS = [date(2026, 2, 11), date(2026, 2, 12), date(2026, 2, 13)]
NO_ROWS_DAY = date(2026, 2, 14)


@pytest.fixture(scope="module")
def stream_rows():
    """Three dates interleaved in one snapshot (one drifted; one with null incomes and an unseen region) and scores."""
    frames = []
    for i, day in enumerate(STREAM_DAYS):
        frame = credit_applications_for_day(day, rows=150, drift=i == 1)
        if i == 2:
            n = np.arange(len(frame))
            frame = frame.assign(income=frame["income"].where(n % 4 != 0), region=frame["region"].where(n % 6 != 0, "atlantis"))
        frames.append(frame.assign(**{monitor.PARTITION_COLUMN: day}))
    snapshot = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)
    scores = pd.DataFrame({"SCORE": np.random.default_rng(2).beta(2, 8, len(snapshot)), "PARTITION_DATE": snapshot[monitor.PARTITION_COLUMN]})
    return snapshot, scores


def _write(tmp_path, name: str, snapshot: pd.DataFrame, scores: pd.DataFrame, group_rows: int, shards: int) -> tuple[str, list[dict]]:
    """The snapshot as ingest writes it (no pandas metadata) in row groups of `group_rows`, the scores in `shards` files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / name
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(snapshot, preserve_index=False).replace_schema_metadata(None), folder / "snapshot.parquet",
                   row_group_size=group_rows)
    staged = []
    for i, part in enumerate(np.array_split(np.arange(len(scores)), shards)):
        pq.write_table(pa.Table.from_pandas(scores.iloc[part], preserve_index=False), folder / f"shard-{i}.parquet", row_group_size=group_rows)
        staged.append({"index": i, "uri": str(folder / f"shard-{i}.parquet")})
    return str(folder / "snapshot.parquet"), staged[::-1]  # shard order comes from "index", not from the list


def _small_batches(spec):
    """The spec with record batches of 32 rows (below the validated minimum: many batches from a small file)."""
    return spec.model_copy(update={"scoring": spec.scoring.model_copy(update={"batch_rows": 32})})


def _by_hand(ref: dict, values: pd.Series) -> tuple[list[int], int, float]:
    """Bin counts on the reference's right-closed bins ((-inf, e0], (e0, e1], ..., (e_last, inf)), nulls, and KS (scipy)."""
    array = pd.to_numeric(values).to_numpy(dtype="float64")
    present = array[~np.isnan(array)]
    at_or_below = [int((present <= edge).sum()) for edge in ref["edges"]]
    counts = np.diff([0, *at_or_below, present.size]).tolist()
    return counts, int(array.size - present.size), float(stats.ks_2samp(ref["sample"], present).statistic)


def test_streamed_statistics_equal_those_of_one_frame(credit, reference, stream_rows, tmp_path):
    import pyarrow.parquet as pq

    snapshot, scores = stream_rows
    uri, shards = _write(tmp_path, "many", snapshot, scores, group_rows=70, shards=3)
    assert pq.ParquetFile(uri).metadata.num_row_groups == 7
    by_date = monitor.accumulate(_small_batches(credit), reference, uri, shards, [*STREAM_DAYS, NO_ROWS_DAY])
    for day in STREAM_DAYS:
        rows, day_scores = snapshot[snapshot[monitor.PARTITION_COLUMN] == day], scores.loc[scores["PARTITION_DATE"] == day, "SCORE"]
        stats_ = by_date[day]
        assert stats_.rows == len(rows) > 100
        for name, ref in reference["columns"].items():
            got = stats_.columns[name]
            if ref["kind"] == "numeric":
                counts, nulls, ks = _by_hand(ref, rows[name])
                assert (got.counts.tolist(), got.rows - got.present) == (counts, nulls), (day, name)
                assert got.ks() == pytest.approx(ks, abs=1e-12), (day, name)
            else:
                assert got.nulls == int(rows[name].isna().sum()) and got.values.dropped == 0
                assert got.values.counts == rows[name].dropna().astype(str).value_counts().to_dict(), (day, name)
        counts, nulls, ks = _by_hand(reference["score"], day_scores)
        assert (stats_.score.counts.tolist(), stats_.score.rows, nulls) == (counts, len(day_scores), 0)
        assert stats_.score.ks() == pytest.approx(ks, abs=1e-12)
    empty = by_date[NO_ROWS_DAY]
    assert empty.rows == 0 and empty.score.rows == 0 and all(s.rows == 0 for s in empty.columns.values())


def test_several_row_groups_give_the_results_of_one_and_of_the_frame(credit, reference, stream_rows, tmp_path):
    snapshot, scores = stream_rows
    days = [*STREAM_DAYS, NO_ROWS_DAY]
    spec = _small_batches(credit)
    many = monitor.stream_dates(spec, reference, *_write(tmp_path, "many", snapshot, scores, group_rows=45, shards=4), days)
    one = monitor.stream_dates(credit, reference, *_write(tmp_path, "one", snapshot, scores, group_rows=len(snapshot), shards=1), days)
    in_memory = monitor.compare_dates(credit, reference, snapshot, scores, days)
    assert many == one == in_memory  # every row: statistics, statuses, modes, notes, plot data
    verdicts = {day: monitor.day_verdict(results) for day, results in many.items()}
    assert verdicts[STREAM_DAYS[1]] == drift.FAIL and verdicts[NO_ROWS_DAY] == drift.OK
    unseen = [r for r in many[STREAM_DAYS[2]] if r["kind"] == "unseen"]
    atlantis = int((snapshot["region"] == "atlantis").sum())
    assert [(r["feature"], r["unseen_categories"], r["unseen_examples"]) for r in unseen] == [("region", atlantis, "atlantis")]
    model_ref = {"model_version": "3", "mlflow_run_id": "r1"}
    assert monitor.summarize(credit, many, model_ref) == monitor.summarize(credit, in_memory, model_ref)


def test_batches_convert_like_the_whole_file(tmp_path):
    """An integer column with a null in one row group only is float64 in every batch, as in the whole file read at
    once: a category 3 reads '3.0' throughout, never '3' in some batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    day = date(2026, 2, 11)
    path = tmp_path / "snapshot.parquet"
    pq.write_table(pa.table({"n": pa.array([1, 2, 3, 3, None], pa.int64()), "b": pa.array([True, False, True, True, None]),
                             "p": pa.array([day] * 5, pa.date32())}), path, row_group_size=2)
    whole = pq.read_table(path).to_pandas()
    frames = [frame for _, frame in monitor.date_batches(str(path), ["n", "b"], "p", [day], 2)]
    assert len(frames) == 3 and all(f.dtypes.equals(whole.dtypes.drop("p")) for f in frames)
    text = profile.as_categories(pd.concat(frames)["n"])
    assert text.iloc[:4].tolist() == ["1.0", "2.0", "3.0", "3.0"] and text.isna().tolist() == [False] * 4 + [True]


def test_category_counts_stay_bounded_and_the_unseen_total_exact(reference, monkeypatch):
    monkeypatch.setattr(monitor, "VALUES_KEPT", 5)
    region = reference["columns"]["region"]
    stats_ = monitor.CategoryStats(region)
    for start in range(0, 250, 25):  # 10 batches, each with 25 categories never seen before
        stats_.add(pd.Series(["north"] * 10 + ["atlantis"] * 5 + [f"new{i}" for i in range(start, start + 25)]))
        assert len(stats_.values.counts) <= len(region["counts"]) + 2 * 5
    result = stats_.result(region, Drift())
    assert result["unseen_categories"] == 10 * 30 and result["unseen_examples"].startswith("atlantis, ")
    assert result["_actual"][list(region["counts"]).index("north")] == 100 and result["_actual"][-1] == 300


@pytest.mark.parametrize("values", [
    pd.Series(["x", None, "y", "x", "z", None, "y", "x"], dtype="str"),
    pd.Series([3, 1, 3, 2, 7, 1, 3]),
    pd.Series([2.0, np.nan, 0.5, 2.0, 1e-7, np.nan]),
    pd.Series([True, False, True, True]),
    pd.Series(pd.array([1, None, 3, 3, 2], dtype="Int64")),
    pd.Series(["b", 1, None, "1", 2.0], dtype=object),  # mixed values: text row by row, "1" and 1 alike
], ids=["str", "int", "float", "bool", "Int64", "object"])
def test_category_counts_are_the_counts_of_the_values_as_text(values):
    """CategoryStats counts distinct values before making text of them: the same rows per text, in the order of first
    appearance, as the whole column turned to text and counted."""
    stats = monitor.CategoryStats({"counts": {}})
    half = len(values) // 2
    stats.add(values.iloc[:half])
    stats.add(values.iloc[half:])
    text = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
    expected = text.dropna().value_counts(sort=False)
    assert (stats.rows, stats.nulls) == (len(values), int(text.isna().sum()))
    assert dict(stats.values.counts) == expected.to_dict()
    assert list(stats.values.counts) == list(dict.fromkeys(text.dropna()))
