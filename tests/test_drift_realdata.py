"""Drift monitoring on real daily data: calendar columns constant within a partition must not fail ordinary dates.

The data: Google's daily trading record 2004-08-19 .. 2008-10-14 (1,047 trading days; open, high, low, close,
volume) that matplotlib ships as `sample_data/goog.npz` (matplotlib is pinned in requirements.txt). ISLP's `NYSE`
would need torch and a pandas/scipy downgrade, so it is not used.

Partitions are calendar months (`source.event_time` = the month's first day, so the real profile step places each
row in its month as scoring would): ~21 rows each, where `month` and `quarter` are constant. Weekly partitions
(5 rows) are checked for the recognition too, but 5 rows cannot beat the default 1e-4 noise floor of a 10-bin PSI
(all 5 rows in one bin has chance ~10 x 0.1^5 = 1e-4), so the shift is tested on months.

Every expectation is computed here from the data (shares, PSI by hand, chance of constant partitions by hand).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nightshift.ml import drift
from nightshift.spec import find_spec, parse_spec
from nightshift.steps import features, monitor, profile

SCORE_INPUTS = ["log_volume", "log_return", "log_range"]
CALENDAR = ["month", "quarter"]
CONTINUOUS = ["log_volume", "log_return", "log_range"]


def goog_rows(partition: str) -> pd.DataFrame:
    import matplotlib

    prices = np.load(Path(matplotlib.get_data_path()) / "sample_data" / "goog.npz")["price_data"]
    raw = pd.DataFrame({name: prices[name] for name in prices.dtype.names})
    when = pd.to_datetime(raw["date"]).dt.tz_localize("UTC")
    if partition == "month":
        start = pd.to_datetime(when.dt.strftime("%Y-%m-01")).dt.tz_localize("UTC")
    else:  # the week's Monday
        start = (when - pd.to_timedelta(when.dt.day_of_week, unit="D")).dt.normalize()
    rows = pd.DataFrame({
        "trade_day": when.dt.strftime("%Y-%m-%d"), "period_start": start,
        "log_volume": np.log(raw["volume"].astype("float64")), "log_return": np.log(raw["adj_close"] / raw["adj_close"].shift()),
        "log_range": np.log(raw["high"] / raw["low"]), "day_of_week": when.dt.day_name().str[:3],
        "month": when.dt.month.astype("int64"), "quarter": when.dt.quarter.astype("int64"),
        "week_of_year": when.dt.isocalendar().week.astype("int64").to_numpy(),
    })
    rows["up_next"] = (rows["log_return"].shift(-1) > 0).astype("int64")
    return rows.iloc[1:-1].reset_index(drop=True)  # the first has no return, the last no next day


def goog_spec(monitoring: dict | None = None):
    numeric = {"type": "float"}
    return parse_spec({
        "name": "goog_up", "description": "Will GOOG close higher on the next trading day?",
        "schedule": {"train": "0 3 1 * *", "score": "0 2 1 * *", "start_date": "2008-01-01"},
        "source": {"uri": "data/landing/goog", "event_time": "period_start", "entity_key": ["trade_day"]},
        "target": {"column": "up_next", "task": "binary"},
        "schema": {
            "trade_day": {"type": "string"}, "period_start": {"type": "timestamp"}, "log_volume": numeric, "log_return": numeric,
            "log_range": numeric, "day_of_week": {"type": "category", "values": ["Mon", "Tue", "Wed", "Thu", "Fri"]},
            "month": {"type": "integer"}, "quarter": {"type": "integer"}, "week_of_year": {"type": "integer"},
            "up_next": {"type": "integer", "values": [0, 1]},
        },
        "features": {"numeric": {"columns": [*CONTINUOUS, *CALENDAR, "week_of_year"]}, "categorical": {"columns": ["day_of_week"]},
                     "drop": ["trade_day"]},
        "training": {"split": {"method": "time", "test_fraction": 0.5}},
        "scoring": {"output_table": "GOOG_UP_SCORES"},
        "monitoring": monitoring or {},
    })


class Model:
    """A real classifier for the score column: logistic regression on the day's volume, return and range."""

    def __init__(self, train: pd.DataFrame):
        from sklearn.linear_model import LogisticRegression

        self.fitted = LogisticRegression().fit(train[SCORE_INPUTS], train["up_next"])

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fitted.predict_proba(frame[SCORE_INPUTS])[:, 1]


@pytest.fixture(scope="module")
def monthly():
    """Two years of months, split by the real step: the latest half (12 months) is the held-out reference.

    week_of_year is skipped: within a month it is not constant but confined to 4-5 of its 52 values, which PSI
    against a year also always fails (a case this check does not recognise yet; the spec's remedy is `skip`).
    """
    spec = goog_spec({"columns": {"week_of_year": {"skip": True}}})
    rows = goog_rows("month")
    window = rows[(rows["period_start"] >= "2005-07-01") & (rows["period_start"] < "2007-07-01")]
    train, held_out = features.split(spec, window)
    model = Model(train)
    return spec, rows, held_out, model, profile.build_profile(spec, held_out, model(held_out))


def chance_constant_by_hand(values: pd.Series, sizes: list[int], share: float) -> float:
    """Mean over partitions of P(one value holds >= share of n rows) when rows are drawn independently."""
    p = values.value_counts(normalize=True).to_numpy()
    total = 0.0
    for n in sizes:
        need = math.ceil(share * n - 1e-9)
        total += sum(sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(need, n + 1)) for q in p)
    return total / len(sizes)


def test_the_profile_recognises_calendar_columns_from_the_held_out_partitions(monthly):
    spec, _, held_out, _, reference = monthly
    sizes = held_out.groupby("period_start").size()
    assert reference["partitions"] == len(sizes) >= 12  # the time split's cut may leave part of a 13th month
    counted = held_out[held_out["period_start"].isin(sizes[sizes >= 2].index)]  # only partitions of 2+ rows count
    months, n = counted.groupby("period_start"), int((sizes >= 2).sum())
    for name in [*CALENDAR, *CONTINUOUS, "day_of_week", "week_of_year"]:
        top_share = months[name].agg(lambda v: v.value_counts(normalize=True).iloc[0])
        constant = int((top_share >= 0.95).sum())
        chance = chance_constant_by_hand(counted[name], months.size().tolist(), 0.95)
        info = reference["columns"][name]["partition"]
        assert (info["partitions"], info["constant"]) == (n, constant), name
        assert info["chance"] == pytest.approx(chance, rel=1e-6, abs=1e-12), name
        assert info["min_top_share"] == pytest.approx(top_share.min()), name
        expected = constant * 2 >= n and float(sum(math.comb(n, k) * chance ** k * (1 - chance) ** (n - k) for k in range(constant, n + 1))) < 1e-4
        assert info["constant_within_partition"] is expected, name
    flags = {name: c["partition"]["constant_within_partition"] for name, c in reference["columns"].items()}
    assert {n for n, f in flags.items() if f} == set(CALENDAR)  # the month and quarter of a month; week_of_year varies


def test_weekly_partitions_recognise_week_month_and_quarter_but_not_weekday():
    spec = goog_spec()
    rows = goog_rows("week")
    _, held_out = features.split(spec, rows[(rows["period_start"] >= "2005-07-04") & (rows["period_start"] < "2007-07-02")])
    reference = profile.build_profile(spec, held_out, np.zeros(len(held_out)))
    weeks = held_out.groupby("period_start")
    flags = {name: c["partition"]["constant_within_partition"] for name, c in reference["columns"].items()}
    for name, flag in flags.items():
        share_constant = (weeks[name].agg(lambda v: v.value_counts(normalize=True).iloc[0]) >= 0.95).mean()
        assert flag is (name in {"month", "quarter", "week_of_year"}), (name, share_constant)
        if name in {"quarter", "week_of_year"}:
            assert share_constant == 1.0  # a trading week never spans two ISO weeks; quarters turn on weekends here
    assert reference["columns"]["month"]["partition"]["min_top_share"] < 0.95  # weeks across a month end are mixed


def _psi_by_hand(reference_values: np.ndarray, current_values: np.ndarray, bins: int = 10) -> float:
    """Decile bins of the reference (actual values), half a row of smoothing per bin, PSI = sum((a - e) ln(a / e))."""
    ref = np.sort(reference_values[~np.isnan(reference_values)])
    edges = np.unique([ref[max(0, math.ceil(q * len(ref)) - 1)] for q in np.arange(1, bins) / bins])
    if np.all(ref <= edges[-1]):
        edges = edges[:-1]
    e = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) + 0.5
    a = np.bincount(np.searchsorted(edges, current_values, side="left"), minlength=len(edges) + 1) + 0.5
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def test_ordinary_months_do_not_fail_though_the_calendar_columns_are_constant(monthly):
    """Leave-one-month-out over the held-out year: each month against a reference of the other eleven."""
    spec, _, held_out, model, _ = monthly
    config = spec.monitoring.drift
    months = sorted(held_out["period_start"].unique())[-7:]  # seven whole months (the cut is at the start)
    for month in months:
        rest, today = held_out[held_out["period_start"] != month], held_out[held_out["period_start"] == month]
        reference = profile.build_profile(spec, rest, model(rest))
        results = monitor.compare_partition(reference, today, model(today), config, spec.monitoring.columns)
        by_feature = {r["feature"]: r for r in results if r["kind"] != "unseen"}
        # whole-reference PSI of a constant month: all rows in the bin(s) of one month value out of eleven: huge
        whole = _psi_by_hand(rest["month"].to_numpy(float), today["month"].to_numpy(float))
        assert whole > config.fail, month
        assert monitor.day_verdict(results) != drift.FAIL, [(r["feature"], r["status"], r["note"]) for r in results]
        for name in CALENDAR:
            row = by_feature[name]
            assert row["psi"] is None and "judged on its value" in row["note"], row
            assert row["status"] != drift.FAIL
        # a number is "held" when inside the reference's range: December and January left out fall outside the
        # other eleven months' range, so they are new, reported rather than gated
        outside = not rest["month"].min() <= today["month"].iloc[0] <= rest["month"].max()
        assert by_feature["month"]["mode"] == (monitor.REPORT if outside else monitor.GATE)
        assert ("not one the reference holds" in by_feature["month"]["note"]) is outside
        assert by_feature["week_of_year"]["mode"] == monitor.SKIP
        assert by_feature["quarter"]["mode"] == monitor.GATE and by_feature["quarter"]["status"] == drift.OK


def test_a_month_with_volume_shifted_by_three_standard_deviations_fails_on_log_volume(monthly):
    spec, rows, held_out, model, reference = monthly
    config = spec.monitoring.drift
    july = rows[rows["period_start"] == pd.Timestamp("2007-07-01", tz="UTC")]
    shifted = july.assign(log_volume=july["log_volume"] + 3 * held_out["log_volume"].std())
    expected_psi = _psi_by_hand(held_out["log_volume"].to_numpy(float), shifted["log_volume"].to_numpy(float))
    assert expected_psi > config.fail
    results = {r["feature"]: r for r in monitor.compare_partition(reference, shifted, model(shifted), config, spec.monitoring.columns)}
    volume = results["log_volume"]
    assert volume["psi"] == pytest.approx(expected_psi, rel=1e-9)
    assert volume["status"] == drift.FAIL and volume["mode"] == monitor.GATE and volume["psi"] > volume["psi_noise_floor"]
    assert monitor.day_verdict(list(results.values())) == drift.FAIL
    for name in CALENDAR:
        assert results[name]["status"] != drift.FAIL
    for name in ("log_return", "log_range", "day_of_week"):  # untouched columns: the same month unshifted judges them alike
        assert results[name]["status"] != drift.FAIL


def test_per_column_settings_skip_report_and_thresholds_on_real_data(monthly):
    _, rows, held_out, model, _ = monthly
    spec = goog_spec({"columns": {"week_of_year": {"skip": True}, "log_volume": {"mode": "report"},
                                  "log_range": {"warn": 5.0, "fail": 9.0}, "month": {"compare": "distribution"}}})
    reference = profile.build_profile(spec, held_out, model(held_out))
    july = rows[rows["period_start"] == pd.Timestamp("2007-07-01", tz="UTC")]
    shifted = july.assign(log_volume=july["log_volume"] + 3 * held_out["log_volume"].std())
    results = monitor.compare_partition(reference, shifted, model(shifted), spec.monitoring.drift, spec.monitoring.columns)
    by_feature = {r["feature"]: r for r in results}
    assert by_feature["week_of_year"]["mode"] == monitor.SKIP and by_feature["week_of_year"]["psi"] is None
    assert by_feature["log_volume"]["status"] == drift.FAIL and by_feature["log_volume"]["mode"] == monitor.REPORT
    assert (by_feature["log_range"]["psi_warn"], by_feature["log_range"]["psi_fail"]) == (5.0, 9.0)
    month_psi = _psi_by_hand(held_out["month"].to_numpy(float), july["month"].to_numpy(float))
    assert by_feature["month"]["psi"] == pytest.approx(month_psi) and "compare: distribution" in by_feature["month"]["note"]
    gated = [r["status"] for r in results if r["mode"] == monitor.GATE]
    assert monitor.day_verdict(results) == drift.worst(gated)
    summary = monitor.summarize(spec, {date(2007, 7, 1): results}, {"model_version": "1", "mlflow_run_id": "r"})
    assert "log_volume" in {f["feature"] for f in summary["reported"]} and "log_volume" not in {f["feature"] for f in summary["flagged"]}


# --- the demo's data at the step level ------------------------------------------------------------

def test_demo_ordinary_days_pass_and_the_drift_day_fails(tmp_path):
    """Days written by the demo's generator (the drift day with drift_from), split and profiled by the real steps."""
    from nightshift_demo.generate import write_credit_applications
    from sklearn.linear_model import LogisticRegression

    spec = find_spec("credit_default")
    start, drift_day = date(2025, 10, 1), date(2026, 2, 8)
    paths = write_credit_applications(tmp_path / "credit", start, drift_day, drift_from=drift_day)
    frames = {p.parent.name[3:]: pd.read_parquet(p) for p in paths}
    window = pd.concat([f for d, f in frames.items() if d < "2026-02-01"], ignore_index=True)
    train, held_out = features.split(spec, window)
    inputs = ["loan_amount", "debt", "employment_years", "age"]
    model = LogisticRegression(max_iter=500).fit(train[inputs], train["defaulted"])
    reference = profile.build_profile(spec, held_out, model.predict_proba(held_out[inputs])[:, 1])
    assert not any(c["partition"]["constant_within_partition"] for c in reference["columns"].values())
    days = [date(2026, 2, 1) + timedelta(days=d) for d in range(8)]
    snapshot = pd.concat([frames[d.isoformat()].assign(**{monitor.PARTITION_COLUMN: d}) for d in days], ignore_index=True)
    scores = pd.DataFrame({"SCORE": model.predict_proba(snapshot[inputs])[:, 1], "PARTITION_DATE": snapshot[monitor.PARTITION_COLUMN]})
    by_date = monitor.compare_dates(spec, reference, snapshot, scores, days)
    verdicts = {d: monitor.day_verdict(r) for d, r in by_date.items()}
    assert all(v != drift.FAIL for d, v in verdicts.items() if d != drift_day), verdicts
    assert verdicts[drift_day] == drift.FAIL
    failing = {r["feature"] for r in by_date[drift_day] if r["status"] == drift.FAIL}
    assert {"income", "utilization"} <= failing  # the generator lowers income and raises utilization on drift days
    summary = monitor.summarize(spec, by_date, {"model_version": "1", "mlflow_run_id": "r"})
    assert summary["verdict"] == drift.FAIL and {f["partition_date"] for f in summary["flagged"] if f["status"] == drift.FAIL} == {"2026-02-08"}
