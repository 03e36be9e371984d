"""`nightshift new`: drafts that respect the data (row keys, integer codes, bounds, gate floors) and the
data rules they rely on at ingest and validation (time zones, computed row keys, integer categories).

Real data: scikit-learn's bundled breast-cancer (binary) and diabetes (regression) tables, written as CSV
files in tmp_path; no network.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes

from nightshift import cli
from nightshift.cli import draft
from nightshift.spec import parse_spec
from nightshift.steps import ingest
from nightshift.steps.validate import ValidationFailed, validate_frame


@pytest.fixture(autouse=True)
def _allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_ALLOWED_ROOTS", str(tmp_path))


def breast_cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]  # spec identifiers have no spaces
    return frame


def diabetes_with_codes() -> pd.DataFrame:
    """The diabetes table plus integer code columns derived from its own values (one with nulls)."""
    frame = load_diabetes(as_frame=True).frame
    n = len(frame)
    season = (pd.qcut(frame["bmi"], 4, labels=False) + 1).astype("float64")
    season[::17] = np.nan  # an integer column with nulls is float64 in a CSV
    frame["season"] = season
    frame["hour"] = (np.arange(n) * 7) % 24
    frame["store_id"] = 100 + (np.arange(n) * 13) % 40  # 40 values: more than MAX_INTEGER_LEVELS, but named like a code
    frame["visits"] = (frame["target"] // 3).astype("int64")  # a count with many values: numeric
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def load(spec: dict):
    return parse_spec(yaml.safe_load(draft.to_yaml(spec)))


def test_no_id_column_keeps_every_feature_and_uses_the_row_key(tmp_path):
    frame = breast_cancer()
    csv = write(frame, tmp_path / "cancer.csv")
    lines: list[str] = []
    spec = draft.draft_spec("cancer", csv, "target", echo=lines.append)
    features = [c for c in frame.columns if c != "target"]
    assert spec["features"]["numeric"]["columns"] == features  # no feature became the key
    assert spec["source"]["entity_key"] == [draft.ROW_KEY] and spec["source"]["row_key"] == "hash"
    assert spec["schema"][draft.ROW_KEY] == {"type": "string", "nullable": False, "unique": True}
    assert not any(spec["schema"][c].get("unique") for c in features)
    assert "for each row" in spec["description"]
    assert any("source.row_key: hash" in line for line in lines)
    loaded = load(spec)
    assert loaded.source.computed_key == draft.ROW_KEY and set(loaded.feature_columns) == set(features)
    assert "# no id column" in draft.to_yaml(spec)


def test_cli_new_without_key_writes_a_loadable_row_key_spec(tmp_path, capsys):
    csv = write(breast_cancer(), tmp_path / "cancer.csv")
    out = tmp_path / "cancer.yaml"
    assert cli.main(["new", "cancer", "--from", str(csv), "--target", "target", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "row_key" in printed and "baseline pr_auc" in printed
    assert yaml.safe_load(out.read_text())["source"]["row_key"] == "hash"


def test_explicit_key_must_exist_and_be_unique(tmp_path, capsys):
    frame = breast_cancer().assign(clinic_id=lambda f: np.arange(len(f)) % 50)
    csv = write(frame, tmp_path / "cancer.csv")
    assert cli.main(["new", "cancer", "--from", str(csv), "--target", "target", "--key", "row_id",
                     "--out", str(tmp_path / "a.yaml")]) == 2
    err = capsys.readouterr().err
    assert "'row_id' is not in the file" in err and "mean_radius" in err and "clinic_id" in err
    with pytest.raises(ValueError) as info:
        draft.draft_spec("cancer", csv, "target", key="clinic_id", echo=None)
    counts = frame["clinic_id"].value_counts()
    top_value, top_count = counts.index[0].item(), int(counts.iloc[0])
    message = str(info.value)
    assert "'clinic_id' is not unique" in message and f"{int((counts > 1).sum())} value(s) repeat" in message
    assert f"{top_value!r} ({top_count} rows)" in message
    unique = frame.assign(patient_code=[f"P{i:04d}" for i in range(len(frame))])
    spec = draft.draft_spec("cancer", write(unique, tmp_path / "u.csv"), "target", key="patient_code", echo=None)
    assert spec["source"]["entity_key"] == ["patient_code"] and "row_key" not in spec["source"]
    assert spec["schema"]["patient_code"] == {"type": "string", "nullable": False, "unique": True}


def test_named_id_column_is_the_key_but_a_unique_feature_is_not(tmp_path):
    frame = breast_cancer()
    frame.insert(0, "patient_id", np.arange(len(frame)) + 1000)
    spec = draft.draft_spec("cancer", write(frame, tmp_path / "c.csv"), "target", echo=None)
    assert spec["source"]["entity_key"] == ["patient_id"]
    assert "row_key" not in spec["source"]
    assert "mean_area" in spec["features"]["numeric"]["columns"]  # unique floats stay features
    load(spec)


def test_integer_code_columns_are_categories_with_their_values(tmp_path):
    frame = diabetes_with_codes()
    spec = draft.draft_spec("diab", write(frame, tmp_path / "d.csv"), "target", echo=None)
    schema = spec["schema"]
    for column in ("season", "hour", "store_id"):
        assert schema[column]["type"] == "category", column
        assert schema[column]["values"] == sorted(int(v) for v in frame[column].dropna().unique())
        assert column in spec["features"]["categorical"]["columns"]
    assert schema["season"]["nullable"] is True
    assert schema["visits"]["type"] == "integer" and "visits" in spec["features"]["numeric"]["columns"]
    text = draft.to_yaml(spec)
    assert "integer codes as categories" in text
    load(spec)


def test_numeric_bounds_are_drafted_with_a_margin(tmp_path):
    frame = diabetes_with_codes()
    spec = draft.draft_spec("diab", write(frame, tmp_path / "d.csv"), "target", echo=None)
    read = pd.read_csv(tmp_path / "d.csv")
    bmi = spec["schema"]["bmi"]
    low, high = read["bmi"].min(), read["bmi"].max()
    span = high - low
    assert low < 0  # scaled values: a real lower bound
    margin = draft.BOUND_MARGIN  # the documented share of the range added on each side
    assert margin >= 0.5  # wide enough that ordinary new values pass (a bound catches unit errors)
    assert low - margin * span - 1e-3 * span <= bmi["min"] <= low - margin * span
    assert high + margin * span <= bmi["max"] <= high + margin * span + 1e-3 * span
    visits = spec["schema"]["visits"]
    assert visits["min"] == 0  # non-negative column: 0 stays the floor
    assert visits["max"] == int(np.ceil(read["visits"].max() + margin * (read["visits"].max() - read["visits"].min())))
    assert "max" not in spec["schema"]["target"]  # no ceiling on the label
    lines = [line for line in draft.to_yaml(spec).splitlines() if line.strip().startswith("bmi:")]
    assert lines and lines[0].endswith("# drafted from data: review")


def test_binary_gate_floor_is_the_measured_prevalence_plus_margin(tmp_path, capsys):
    frame = breast_cancer()
    csv = write(frame, tmp_path / "cancer.csv")
    spec = draft.draft_spec("cancer", csv, "target")
    prevalence = float(np.mean(frame["target"].to_numpy() == 1))
    gates = {(g["metric"], next(k for k in g if k != "metric")): g for g in spec["evaluation"]["gates"]}
    floor = gates[("pr_auc", "min")]["min"]
    assert floor == pytest.approx(prevalence + 0.1 * (1 - prevalence), abs=1e-4)
    assert floor >= prevalence + 0.1 * (1 - prevalence) - 1e-12  # rounded towards the stricter side
    assert gates[("roc_auc", "min")]["min"] == pytest.approx(0.55)
    assert gates[("roc_auc", "min_delta_vs_champion")]["min_delta_vs_champion"] == 0.0
    assert f"baseline pr_auc {prevalence:.4f}" in capsys.readouterr().out
    load(spec)


def test_regression_gate_floor_is_below_the_mean_predictor(tmp_path):
    frame = load_diabetes(as_frame=True).frame
    spec = draft.draft_spec("diab", write(frame, tmp_path / "d.csv"), "target", echo=None)
    std = float(np.std(frame["target"].to_numpy()))
    gates = spec["evaluation"]["gates"]
    rmse = next(g for g in gates if g["metric"] == "rmse" and "max" in g)["max"]
    assert rmse == pytest.approx(0.9 * std, rel=1e-3) and rmse <= 0.9 * std
    assert next(g for g in gates if g["metric"] == "r2" and "min" in g)["min"] == pytest.approx(0.1)
    assert {"metric": "rmse", "min_delta_vs_champion": 0.0} in gates


# --- ingest and validation of what the drafts declare ----------------------------------------------


def _timed_spec(tmp_path: Path, zone: str | None) -> tuple[dict, Path]:
    frame = load_diabetes(as_frame=True).frame.head(60).copy()
    frame["visit_time"] = [f"2026-{1 + 6 * (i % 2):02d}-15T10:{i:02d}:00" for i in range(len(frame))]  # January / July
    csv = write(frame, tmp_path / "visits.csv")
    spec = draft.draft_spec("visits", csv, "target", echo=None)
    assert spec["source"]["event_time"] == "visit_time" and spec["source"]["timezone"] == "UTC"
    if zone:
        spec["source"]["timezone"] = zone
    return spec, csv


def test_naive_event_times_are_localised_with_source_timezone(tmp_path):
    spec_doc, csv = _timed_spec(tmp_path, "Europe/Paris")
    spec = load(spec_doc)
    rows, _ = ingest.read_rows(spec, None, with_target=True, require_all=False)
    times = rows["visit_time"]
    assert isinstance(times.dtype, pd.DatetimeTZDtype)
    raw = pd.read_csv(csv)["visit_time"]
    expected = pd.to_datetime(raw).dt.tz_localize("Europe/Paris").dt.tz_convert("UTC")
    assert (times.dt.tz_convert("UTC") == expected).all()
    assert times.dt.tz_convert("UTC").iloc[0].hour == 9 and times.dt.tz_convert("UTC").iloc[1].hour == 8  # CET, CEST
    window = ingest.Window(datetime(2026, 7, 1, tzinfo=timezone.utc), datetime(2026, 8, 1, tzinfo=timezone.utc))
    july, _ = ingest.read_rows(spec, window, with_target=True, require_all=False)
    assert len(july) == int((raw.str[5:7] == "07").sum())


def test_naive_times_default_to_utc_and_impossible_local_times_are_refused(tmp_path):
    spec_doc, csv = _timed_spec(tmp_path, None)
    rows, _ = ingest.read_rows(load(spec_doc), None, with_target=True, require_all=False)
    assert (rows["visit_time"] == pd.to_datetime(pd.read_csv(csv)["visit_time"]).dt.tz_localize("UTC")).all()
    frame = pd.read_csv(csv)
    frame.loc[0, "visit_time"] = "2026-03-29T02:30:00"  # clocks jump from 02:00 to 03:00 in Paris
    write(frame, csv)
    spec_doc["source"]["timezone"] = "Europe/Paris"
    with pytest.raises(ingest.IngestError, match="column 'visit_time': naive times cannot be read in source.timezone Europe/Paris"):
        ingest.read_rows(load(spec_doc), None, with_target=True, require_all=False)


def _expected_key(row: pd.Series, columns: list[str]) -> str:
    """The documented row key, recomputed by hand for one row of whole numbers and floats."""
    def text(v):
        if pd.isna(v):
            return "\x1e"
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return hashlib.sha1("\x1f".join(text(row[c]) for c in columns).encode()).hexdigest()[:16]


def test_row_key_is_the_same_at_training_and_at_scoring(tmp_path):
    frame = diabetes_with_codes()
    frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)  # an exact duplicate row
    csv = write(frame, tmp_path / "d.csv")
    spec = load(draft.draft_spec("diab", csv, "target", echo=None))
    train, _ = ingest.read_rows(spec, None, with_target=True, require_all=False)
    columns = ingest.row_key_columns(spec)
    assert columns == sorted(c for c in frame.columns if c != "target")
    assert train[draft.ROW_KEY].is_unique
    assert train.loc[0, draft.ROW_KEY] == _expected_key(frame.iloc[0], columns)
    assert train[draft.ROW_KEY].iloc[-1] == train.loc[3, draft.ROW_KEY] + "-1"
    # scoring: no target, and a file without nulls reads `season` as int64 instead of float64
    scoring = frame.drop(columns=["target"]).iloc[:-1]
    scoring = scoring[scoring["season"].notna()].astype({"season": "int64"})
    score_csv = write(scoring, tmp_path / "score.csv")
    scored, _ = ingest.read_rows(spec, None, str(score_csv), with_target=False, require_all=True)
    assert scored["season"].dtype.kind == "i"
    by_index = train.set_index(train.index)[draft.ROW_KEY]
    assert scored[draft.ROW_KEY].tolist() == by_index.loc[scoring.index].tolist()
    summary = validate_frame(scored, spec, include_target=False, source=str(score_csv))
    assert summary["success"]
    with pytest.raises(ingest.IngestError, match="computed by ingest"):
        ingest.read_rows(spec, None, str(write(scored, tmp_path / "keyed.csv")), with_target=False, require_all=True)


def test_integer_categories_pass_validation_and_the_transformer(tmp_path):
    from nightshift.ml.transformers import build_transformer, model_input

    frame = diabetes_with_codes()
    spec = load(draft.draft_spec("diab", write(frame, tmp_path / "d.csv"), "target", echo=None))
    assert spec.columns["season"].type == "category" and spec.columns["season"].values == [1, 2, 3, 4]
    rows, _ = ingest.read_rows(spec, None, with_target=True, require_all=False)
    assert rows["season"].dtype == "float64" and rows["hour"].dtype == "int64"
    assert validate_frame(rows, spec, include_target=True, source="d.csv")["success"]
    as_category = rows.astype({"hour": "category"})
    assert validate_frame(as_category, spec, include_target=True, source="d.csv")["success"]
    bad = rows.copy()
    bad.loc[5, "season"] = 7
    with pytest.raises(ValidationFailed) as info:
        validate_frame(bad, spec, include_target=True, source="d.csv")
    assert any("column 'season': values must be one of [1, 2, 3, 4]" in line and "7" in line for line in info.value.failures)

    transformer = build_transformer(spec).fit(model_input(rows, spec.feature_columns))
    names = list(transformer.named_steps["columns"].get_feature_names_out())
    season_columns = [i for i, n in enumerate(names) if n.startswith("categorical__season_")]
    assert len(season_columns) == rows["season"].nunique() + 1  # the four seasons and the missing category
    scoring = rows[rows["season"].notna()].astype({"season": "int64"}).head(20)
    from_int = transformer.transform(model_input(scoring, spec.feature_columns))
    from_float = transformer.transform(model_input(scoring.astype({"season": "float64"}), spec.feature_columns))
    assert (from_int == from_float).all()  # int64 at scoring encodes like float64 (nulls) at training
    seasons = from_int[:, season_columns]
    assert (seasons.sum(axis=1) == 1).all()  # every integer season is a known category
    known = [n.removeprefix("categorical__season_") for n in (names[i] for i in season_columns)]
    assert [float(known[k]) for k in seasons.argmax(axis=1)] == scoring["season"].astype(float).tolist()
