"""The `realdata` tier: real public data sets that ship inside PyPI packages, through the public interface only.

Each data set goes through what a user types in a fresh shell (see tests/cli_user.py): draft a spec with
`nightshift new` (or write one where drafting cannot express the data: daily partitions), `nightshift validate
--deep`, `nightshift run --train`, `nightshift run --score --date D`, the same again (a rerun), `nightshift status`.
The checks read what a user would read afterwards, the warehouse (DuckDB) and MLflow, and compare the metrics with
baselines computed here, independently, with plain scikit-learn on the same data: never numbers copied from a run.

- breast_cancer (binary), diabetes (regression), wine (multiclass): scikit-learn's bundled sets, written to CSV.
  A random 20% are the "new arrivals" scored on one day (without the label); the rest is the training file.
- nyse_volume (regression, daily partitions): ISLP's `NYSE` (NYSE daily trading 1962-12-03 .. 1986-12-31, 6,051
  days; ISLP is installed with --no-deps by `make install`, its CSV is read without importing ISLP). One folder per
  trading day; the model predicts the day's detrended log volume from the five previous days (the ISLP lab's
  autoregression). It is trained on two years, scored nightly, rerun, and backfilled.

Where real data trips the defaults, the test does what the user has to, in the open: renames headers that are not
identifiers, removes drafted ceilings that fresh rows exceed, acknowledges the columns the leak guard names (after
checking them), and docs/realdata.md lists each of these findings with the figures of one run.

The four pipelines run two at a time (each in its own project copy, with its own Airflow home, MLflow store and
warehouse): every `nightshift run` pays about 15 s of imports and Airflow start-up, so the runs, not the data, set
the tier's time.
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

import cli_user

pytestmark = pytest.mark.realdata

TRAIN_DATE = "2026-03-01"  # the sklearn sets have no time: any day trains on the whole file
SCORE_DATE = "2026-03-02"
ARRIVALS = 0.2  # share of a sklearn set held back as the scoring day's new rows

NYSE_TRAIN_DATE = "1986-11-01"  # window [1984-10-31, 1986-10-31): label_delay_days 1, window_days 730
NYSE_NIGHTLY = "1986-11-03"  # Monday: the first trading day after the window
NYSE_BACKFILL = ["1986-11-04", "1986-11-05"]
NYSE_SERIES = ["DJ_return", "log_volume", "log_volatility"]
NYSE_LAGS = [f"{s.lower()}_lag{k}" for s in NYSE_SERIES for k in range(1, 6)]


@dataclass
class Case:
    """One data set's pipeline: what was run, what it printed, and the warehouse after each scoring run."""

    name: str
    project: Path
    env: dict[str, str]
    flow: Callable[["Case"], None]
    data: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    failure: str | None = None
    seconds: float = 0.0
    timings: list = field(default_factory=list)

    def cli(self, *args: str) -> str:
        started = time.monotonic()
        done = cli_user.run(self.project, self.env, *args)
        self.outputs.append(done)
        self.timings.append((" ".join(args[:2] + args[2:3]), time.monotonic() - started))
        if done.returncode != 0:
            raise RuntimeError(cli_user.explain(done, self.project))
        return done.stdout

    def score(self, day: str, label: str) -> str:
        out = self.cli("run", self.name, "--score", "--date", day)
        self.tables[label] = cli_user.warehouse_rows(self.project, f"{self.name.upper()}_SCORES")
        return out

    def output(self, *args: str, last: bool = False) -> str:
        """stdout of the first (or last) command run with these arguments."""
        found = [d.stdout for d in self.outputs if list(d.args[1:len(args) + 1]) == list(args)]
        return found[-1 if last else 0]


def _execute(case: Case) -> Case:
    started = time.monotonic()
    try:
        case.flow(case)
    except Exception as exc:  # noqa: BLE001 - reported by the data set's test, with what the CLI printed
        case.failure = f"{type(exc).__name__}: {exc}"
    case.seconds = time.monotonic() - started
    return case


# --- scikit-learn's bundled sets -------------------------------------------------------------------------------

def sklearn_frame(loader: Callable) -> pd.DataFrame:
    """A bundled set as a table with a `target` column. Spec column names are identifiers (docs/spec.md), so headers
    such as 'mean radius' or 'od280/od315_of_diluted_wines' are renamed, as a user has to before `nightshift new`."""
    frame = loader(as_frame=True).frame
    frame.columns = [re.sub(r"[^A-Za-z0-9_]", "_", str(c)) for c in frame.columns]
    return frame


def split_arrivals(frame: pd.DataFrame, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    arrivals = frame.sample(frac=ARRIVALS, random_state=seed)
    return frame.drop(arrivals.index).reset_index(drop=True), arrivals.reset_index(drop=True)


def sklearn_flow(edit: Callable[[str], str] | None = None) -> Callable[[Case], None]:
    def flow(case: Case) -> None:
        history, arrivals = case.data["history"], case.data["arrivals"]
        landing = case.project / "data" / "landing"
        (landing / case.name).mkdir(parents=True)
        history.to_csv(landing / f"{case.name}.csv", index=False)
        # the drafted score_uri is data/landing/NAME/{ds}.csv: the day's new rows, without the label and without an id
        arrivals.drop(columns="target").to_csv(landing / case.name / f"{SCORE_DATE}.csv", index=False)
        case.cli("new", case.name, "--from", f"data/landing/{case.name}.csv", "--target", "target")
        spec_file = case.project / "include" / "pipelines" / f"{case.name}.yaml"
        case.data["drafted"] = yaml.safe_load(spec_file.read_text())
        if edit is not None:  # the review a user does after drafting
            spec_file.write_text(edit(spec_file.read_text()))
        case.data["spec"] = yaml.safe_load(spec_file.read_text())
        case.cli("validate", "--deep", f"include/pipelines/{case.name}.yaml")
        trained = case.cli("run", case.name, "--train", "--date", TRAIN_DATE)
        case.data["version"] = "1"
        if "suspected target leak" in trained:
            # the leak guard refused the champion: a single column predicts the held-out labels almost perfectly. The
            # user checks the named columns (here: measurements taken before the diagnosis, so no leak), acknowledges
            # them in the spec and trains again; the check of that judgement is in the data set's test.
            flagged = re.findall(r"column (\w+) alone reaches", trained)
            assert flagged, trained
            text = spec_file.read_text()
            spec_file.write_text(text.replace("evaluation:\n", f"evaluation:\n  leak_guard: {{acknowledged: [{', '.join(flagged)}]}}\n", 1))
            case.data["acknowledged"] = flagged
            case.cli("run", case.name, "--train", "--date", TRAIN_DATE)
            case.data["version"] = "2"
        case.score(SCORE_DATE, "first")
        case.score(SCORE_DATE, "rerun")
        case.cli("status", case.name)

    return flow


def no_drafted_ceilings(text: str) -> str:
    """The review of the drafted bounds: `max` of a feature drafted from the file is the training file's range plus a
    10% margin, which fresh rows of these measurements exceed (1 to 3 of 114 new breast_cancer rows did, failing the
    day's validation); the measurements have no physical ceiling, so the reviewed spec keeps only `min: 0`."""
    reviewed, count = re.subn(r"(\{type: (?:float|integer), nullable: false, min: [^,}]+), max: [^}]+\}(  # drafted from data: review)",
                              r"\1}\2", text)
    assert count, "no drafted ceiling found; update this edit"
    return reviewed


def ridge_instead_of_xgboost(text: str) -> str:
    text = no_drafted_ceilings(text)
    drafted = "model:\n  flavor: xgboost\n  params: {n_estimators: 200, max_depth: 4, learning_rate: 0.05}\n"
    assert drafted in text, "the drafted model block changed; update this edit"
    return text.replace(drafted, "model:\n  flavor: sklearn\n  estimator: sklearn.linear_model.Ridge\n  params: {alpha: 1.0}\n")


# --- ISLP's NYSE ---------------------------------------------------------------------------------------------------

def nyse_csv() -> Path:
    """ISLP/data/NYSE.csv from the installed wheel, found without importing ISLP (whose own imports need torch)."""
    found = importlib.util.find_spec("ISLP")
    if found is None or not found.submodule_search_locations:
        pytest.fail("ISLP is not installed: `make install` installs it (--no-deps, for its data files)")
    return Path(found.submodule_search_locations[0]) / "data" / "NYSE.csv"


def nyse_rows() -> pd.DataFrame:
    """One row per trading day: the day's detrended log volume and, as inputs, the five previous trading days'
    DJ return, log volume and log volatility (known when the day's session opens), and the weekday."""
    raw = pd.read_csv(nyse_csv())
    rows = pd.DataFrame({"trade_date": raw["date"], "day_of_week": raw["day_of_week"], "log_volume": raw["log_volume"]})
    # the session opens at 09:30 New York time: naive wall-clock times, localised by source.timezone
    rows["session_open"] = pd.to_datetime(raw["date"]) + pd.Timedelta(hours=9, minutes=30)
    for series in NYSE_SERIES:
        for k in range(1, 6):
            rows[f"{series.lower()}_lag{k}"] = raw[series].shift(k)
    return rows.iloc[5:].reset_index(drop=True)


def nyse_spec() -> dict:
    lag_column = {"type": "float", "nullable": False}
    return {
        "name": "nyse_volume",
        "description": "Detrended log trading volume of the New York Stock Exchange for a trading day, from the "
                       "five previous trading days (ISLP's NYSE data).",
        "schedule": {"train": "0 3 * * 0", "score": "0 2 * * 2-6", "start_date": "1986-11-01"},
        "source": {"uri": "data/landing/nyse", "format": "parquet", "partitioning": "daily", "event_time": "session_open",
                   "timezone": "America/New_York", "entity_key": ["trade_date"]},
        "target": {"column": "log_volume", "task": "regression"},
        "schema": {
            "trade_date": {"type": "string", "nullable": False, "unique": True},
            "session_open": {"type": "timestamp", "nullable": False},
            "day_of_week": {"type": "category", "nullable": False, "values": ["mon", "tues", "wed", "thur", "fri"]},
            **{c: lag_column for c in NYSE_LAGS},
            "log_volume": {"type": "float", "nullable": False},
        },
        "features": {"numeric": {"columns": NYSE_LAGS}, "categorical": {"columns": ["day_of_week"]}, "drop": ["trade_date"]},
        "training": {"window_days": 730, "label_delay_days": 1, "split": {"method": "time", "test_fraction": 0.2},
                     "min_rows": 300},
        "model": {"flavor": "xgboost", "params": {"n_estimators": 150, "max_depth": 2, "learning_rate": 0.05}},
        "evaluation": {"metrics": ["r2", "rmse", "mae"], "gates": [{"metric": "r2", "min": 0.0}]},
        "scoring": {"output_table": "NYSE_VOLUME_SCORES", "shards": 1},
    }


def nyse_flow(case: Case) -> None:
    rows = case.data["rows"]
    landing = case.project / "data" / "landing" / "nyse"
    for day, part in rows.groupby("trade_date"):  # one folder per trading day (none on weekends and holidays)
        folder = landing / f"dt={day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    spec_file = case.project / "include" / "pipelines" / "nyse_volume.yaml"
    spec_file.write_text("# yaml-language-server: $schema=../pipeline.schema.json\n" + yaml.safe_dump(nyse_spec(), sort_keys=False))
    case.cli("validate", "--deep", "include/pipelines/nyse_volume.yaml")
    case.cli("run", "nyse_volume", "--train", "--date", NYSE_TRAIN_DATE)
    case.score(NYSE_NIGHTLY, "nightly")
    case.score(NYSE_NIGHTLY, "rerun")
    for day in NYSE_BACKFILL:
        case.score(day, f"backfill {day}")
    case.cli("status", "nyse_volume")


# --- the runs --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    def case(name: str, flow: Callable, **data) -> Case:
        root = tmp_path_factory.mktemp(name)
        project = cli_user.make_project(root / "project")
        return Case(name, project, cli_user.user_env(project, root / "home"), flow, data)

    prepared = [case("nyse_volume", nyse_flow, rows=nyse_rows())]
    for name, loader, edit in (("breast_cancer", load_breast_cancer, no_drafted_ceilings),
                               ("diabetes", lambda **kw: load_diabetes(scaled=False, **kw), ridge_instead_of_xgboost),
                               ("wine", load_wine, no_drafted_ceilings)):
        history, arrivals = split_arrivals(sklearn_frame(loader))
        prepared.append(case(name, sklearn_flow(edit), history=history, arrivals=arrivals))
    with ThreadPoolExecutor(max_workers=2) as pool:  # the longest (nyse_volume) first: two workers finish together
        list(pool.map(_execute, prepared))
    return {c.name: c for c in prepared}


def ran(cases: dict[str, Case], name: str) -> Case:
    case = cases[name]
    assert case.failure is None, f"{name} failed after {case.seconds:.0f}s:\n{case.failure}"
    return case


def figure(case: Case, text: str) -> None:
    steps = ", ".join(f"{what} {seconds:.0f}s" for what, seconds in case.timings)
    drafted = f"; {case.data['outside_draft']} new rows outside the drafted bounds" if "outside_draft" in case.data else ""
    print(f"\n[realdata] {case.name}: {text}{drafted} ({case.seconds:.0f}s: {steps})")


# --- shared checks ---------------------------------------------------------------------------------------------

def check_fresh_shell(case: Case) -> None:
    """The first `run` of a project migrates its own Airflow home, found without any Airflow variable."""
    first_run = next(d for d in case.outputs if d.args[1] == "run")
    assert f"first use of {case.project / '.local' / 'airflow'}: migrating" in first_run.stdout
    assert (case.project / ".local" / "airflow" / "airflow.db").exists()
    assert (case.project / ".local" / "mlflow.db").exists() and (case.project / ".local" / "warehouse.duckdb").exists()


def check_published(rows: pd.DataFrame, case: Case, key: str, day: str, expected: int, version: str = "1") -> pd.DataFrame:
    """One day's rows: the expected count, each key once, every row naming the model version that scored it."""
    day_rows = rows[pd.to_datetime(rows["PARTITION_DATE"]).dt.date == date.fromisoformat(day)]
    assert len(day_rows) == expected
    assert day_rows[key].is_unique and day_rows[key].notna().all()
    assert day_rows["MODEL_VERSION"].notna().all() and set(day_rows["MODEL_VERSION"].astype(str)) == {version}
    assert set(day_rows["MODEL_NAME"]) == {case.name}
    assert day_rows["MLFLOW_RUN_ID"].notna().all() and day_rows["SCORE"].notna().all()
    return day_rows


def check_rerun(case: Case, key: str, first: str, again: str) -> None:
    """A rerun replaces the day's rows: same keys and scores once each, from a new DAG run, nothing else touched."""
    before, after = case.tables[first], case.tables[again]
    assert len(after) == len(before) and after[key].is_unique
    merged = before.merge(after, on=key, suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    assert np.allclose(merged["SCORE_before"], merged["SCORE_after"])
    assert set(after["DAG_RUN_ID"]).isdisjoint(before["DAG_RUN_ID"])


def check_sklearn_case(case: Case) -> pd.DataFrame:
    """Draft, publish and rerun checks shared by the three scikit-learn sets; returns the published day."""
    check_fresh_shell(case)
    drafted = case.output("new", case.name)
    assert "no unique id column" in drafted and "source.row_key: hash" in drafted  # none of these sets has an id
    assert case.data["spec"]["source"]["row_key"] == "hash"
    version, arrivals = case.data["version"], case.data["arrivals"]
    assert f"ok       include/pipelines/{case.name}.yaml" in case.output("validate")
    trained = case.output("run", case.name, "--train", last=True)
    assert f"{case.name}_train success" in trained and f"registered   {case.name} version {version}: promoted" in trained
    published = case.tables["first"]
    key = key_column(published, case.data["spec"]["source"]["entity_key"][0])
    assert set(published["PARTITION_DATE"].astype(str).str[:10]) == {SCORE_DATE}
    day = check_published(published, case, key, SCORE_DATE, len(arrivals), version)
    registered = cli_user.mlflow_client(case.project).get_model_version(case.name, version)
    assert set(day["MLFLOW_RUN_ID"]) == {registered.run_id}  # each row names the run of the version that scored it
    check_rerun(case, key, "first", "rerun")
    case.data["outside_draft"] = outside_drafted_bounds(case)
    status = case.output("status", case.name)
    assert f"{case.name}: champion version {version}" in status and f"{SCORE_DATE}  version {version}  {len(arrivals)} rows" in status
    return day


def outside_drafted_bounds(case: Case) -> int:
    """New rows the unreviewed draft would refuse: a value outside a drafted feature's [min, max]."""
    arrivals, schema = case.data["arrivals"], case.data["drafted"]["schema"]
    outside = pd.Series(False, index=arrivals.index)
    for column, rule in schema.items():
        if column != "target" and column in arrivals and "max" in rule:
            outside |= (arrivals[column] < rule.get("min", -np.inf)) | (arrivals[column] > rule["max"])
    return int(outside.sum())


def key_column(frame: pd.DataFrame, key: str) -> str:
    return next(c for c in frame.columns if c.lower() == key.lower())


def scores_by_arrival(case: Case, day: pd.DataFrame) -> pd.DataFrame:
    """The published rows joined to the arrivals' true labels through the row key, recomputed from docs/spec.md."""
    key = key_column(day, case.data["spec"]["source"]["entity_key"][0])
    arrivals = case.data["arrivals"].assign(_key=lambda f: cli_user.documented_row_key(f, exclude=("target",)))
    joined = day.merge(arrivals, left_on=key, right_on="_key", how="inner")
    assert len(joined) == len(arrivals), "published keys differ from the documented row key of the scored rows"
    return joined


# --- the tests -------------------------------------------------------------------------------------------------

def test_breast_cancer_binary(cases):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    case = ran(cases, "breast_cancer")
    day = check_sklearn_case(case)
    history, arrivals = case.data["history"], case.data["arrivals"]
    x, y = history.drop(columns="target"), history["target"]
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    cv_auc = cross_val_score(baseline, x, y, cv=5, scoring="roc_auc").mean()
    arrivals_auc = roc_auc_score(arrivals["target"], baseline.fit(x, y).predict_proba(arrivals.drop(columns="target"))[:, 1])

    for column in case.data.get("acknowledged", []):  # the user's judgement, checked: a strong measurement, not a leak
        alone = roc_auc_score(y, x[column])
        assert max(alone, 1 - alone) >= 0.9, f"{column} alone: ROC AUC {alone:.4f} on the training file"
    metrics = cli_user.version_metrics(case.project, case.name, case.data["version"])
    # 91 held-out rows in the pipeline's own split: an AUC within 0.03 of a 5-fold logistic regression
    assert metrics["roc_auc"] >= cv_auc - 0.03
    assert metrics["pr_auc"] > y.mean()  # a random score's PR-AUC is the prevalence
    joined = scores_by_arrival(case, day)
    published_auc = roc_auc_score(joined["target"], joined["SCORE"])
    assert published_auc >= arrivals_auc - 0.03  # the published scores rank the 114 new rows as well as the baseline
    figure(case, f"{len(history)} training rows, {len(arrivals)} scored; roc_auc {metrics['roc_auc']:.4f} (held out), "
                 f"{published_auc:.4f} (published scores); logistic regression {cv_auc:.4f} (5-fold), {arrivals_auc:.4f} (new rows); "
                 f"leak guard acknowledged: {case.data.get('acknowledged', 'none')}")


def test_diabetes_regression(cases):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    case = ran(cases, "diabetes")
    assert case.data["spec"]["model"]["estimator"] == "sklearn.linear_model.Ridge"
    day = check_sklearn_case(case)
    history, arrivals = case.data["history"], case.data["arrivals"]
    x, y = history.drop(columns="target"), history["target"]
    baseline = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    cv_r2 = cross_val_score(baseline, x, y, cv=5, scoring="r2").mean()
    arrivals_r2 = r2_score(arrivals["target"], baseline.fit(x, y).predict(arrivals.drop(columns="target")))

    metrics = cli_user.version_metrics(case.project, case.name, case.data["version"])
    # 71 held-out rows: R² moves by about ±0.1 between such splits (the 5-fold spread), so 0.1 below the 5-fold mean
    assert metrics["r2"] >= cv_r2 - 0.1
    assert metrics["rmse"] < y.std(ddof=0)  # better than always predicting the mean
    joined = scores_by_arrival(case, day)
    published_r2 = r2_score(joined["target"], joined["SCORE"])
    # the same estimator on 80% of the same history: within 0.05 of the baseline fitted on all of it
    assert published_r2 >= arrivals_r2 - 0.05
    figure(case, f"{len(history)} training rows, {len(arrivals)} scored; r2 {metrics['r2']:.4f} (held out), rmse "
                 f"{metrics['rmse']:.2f}, {published_r2:.4f} (published scores); ridge {cv_r2:.4f} (5-fold), {arrivals_r2:.4f} "
                 f"(new rows); mean predictor rmse {y.std(ddof=0):.2f}")


def test_wine_multiclass(cases):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    case = ran(cases, "wine")
    day = check_sklearn_case(case)
    history, arrivals = case.data["history"], case.data["arrivals"]
    x, y = history.drop(columns="target"), history["target"]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    linear_cv = cross_val_score(linear, x, y, cv=folds, scoring="accuracy").mean()
    arrivals_accuracy = accuracy_score(arrivals["target"], linear.fit(x, y).predict(arrivals.drop(columns="target")))
    # the drafted estimator (XGBoost with the drafted params), fitted here directly: what it reaches on 142 rows
    drafted = XGBClassifier(**case.data["spec"]["model"]["params"])
    drafted_cv = cross_val_score(drafted, x, y, cv=folds, scoring="accuracy").mean()
    majority = y.value_counts(normalize=True).iloc[0]

    metrics = cli_user.version_metrics(case.project, case.name, case.data["version"])
    held_out = math.ceil(len(history) * 0.2)  # train_test_split rounds the held-out share up

    def slack(p: float, n: int) -> float:  # three binomial standard errors of an accuracy p measured on n rows
        return 3 * np.sqrt(p * (1 - p) / n)

    # 29 held-out rows: the pipeline's accuracy within three standard errors of the drafted model's 5-fold accuracy
    assert metrics["accuracy"] >= drafted_cv - slack(drafted_cv, held_out) and metrics["accuracy"] > majority
    joined = scores_by_arrival(case, day)
    classes = sorted(y.unique())
    assert {f"PROBA_{c}" for c in classes} <= set(day.columns)
    assert np.allclose(day[[f"PROBA_{c}" for c in classes]].sum(axis=1), 1.0)
    published_accuracy = accuracy_score(joined["target"].astype(str), joined["LABEL"].astype(str))
    # the 36 new rows: the published labels within three standard errors of a logistic regression on the same rows
    assert published_accuracy >= arrivals_accuracy - slack(max(arrivals_accuracy, 0.9), len(arrivals))
    figure(case, f"{len(history)} training rows, {len(arrivals)} scored; accuracy {metrics['accuracy']:.4f} (held out, "
                 f"{held_out} rows), {published_accuracy:.4f} (published labels); drafted XGBoost {drafted_cv:.4f} (5-fold); "
                 f"logistic regression {linear_cv:.4f} (5-fold), {arrivals_accuracy:.4f} (new rows); majority class {majority:.4f}")


def test_nyse_daily_partitions_nightly_rerun_and_backfill(cases):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    case = ran(cases, "nyse_volume")
    check_fresh_shell(case)
    rows = case.data["rows"]
    assert "ok       include/pipelines/nyse_volume.yaml" in case.output("validate")
    train_out = case.output("run", "nyse_volume", "--train")
    assert "registered   nyse_volume version 1: promoted" in train_out

    # the training window, computed from the spec's semantics: [E - delay - window, E - delay) in UTC event time
    window_end = date.fromisoformat(NYSE_TRAIN_DATE) - timedelta(days=1)
    window_start = window_end - timedelta(days=730)
    opens = rows["session_open"].dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    window = rows[(opens >= pd.Timestamp(window_start, tz="UTC")) & (opens < pd.Timestamp(window_end, tz="UTC"))]
    assert f"rows         {len(window)} in window" in train_out
    # independent baseline: the ISLP lab's linear autoregression on the same time split (the latest 20% held out)
    ordered = window.sort_values("session_open")
    cut = len(ordered) - int(round(len(ordered) * 0.2))
    inputs = pd.get_dummies(ordered[[*NYSE_LAGS, "day_of_week"]], columns=["day_of_week"], dtype=float)
    fit, held = slice(0, cut), slice(cut, None)
    linear = LinearRegression().fit(inputs.iloc[fit], ordered["log_volume"].iloc[fit])
    linear_r2 = r2_score(ordered["log_volume"].iloc[held], linear.predict(inputs.iloc[held]))
    persistence_r2 = r2_score(ordered["log_volume"].iloc[held], ordered["log_volume_lag1"].iloc[held])
    metrics = cli_user.version_metrics(case.project, "nyse_volume")
    # ~100 held-out days: the boosted trees within 0.1 of the linear autoregression, and better than the mean
    assert metrics["r2"] >= linear_r2 - 0.1 and metrics["r2"] > 0

    key = key_column(case.tables["nightly"], "trade_date")
    for label, days in (("nightly", [NYSE_NIGHTLY]), ("rerun", [NYSE_NIGHTLY]),
                        (f"backfill {NYSE_BACKFILL[-1]}", [NYSE_NIGHTLY, *NYSE_BACKFILL])):
        published = case.tables[label]
        assert sorted(set(published["PARTITION_DATE"].astype(str).str[:10])) == days  # one set of rows per date
        for day in days:
            assert list(check_published(published, case, key, day, expected=1)[key]) == [day]
    check_rerun(case, key, "nightly", "rerun")
    final = case.tables[f"backfill {NYSE_BACKFILL[-1]}"].set_index(key)
    truth = rows.set_index("trade_date").loc[[NYSE_NIGHTLY, *NYSE_BACKFILL]]
    # a real prediction of the day, not a constant: within the range of the window's volumes
    assert final["SCORE"].between(window["log_volume"].min(), window["log_volume"].max()).all()
    status = case.output("status", "nyse_volume")
    assert all(f"{day}  version 1  1 rows" in status for day in [NYSE_NIGHTLY, *NYSE_BACKFILL])
    errors = (final["SCORE"] - truth["log_volume"]).abs()
    figure(case, f"{len(rows)} trading days, {len(window)} in the training window, {len(final)} days scored; "
                 f"r2 {metrics['r2']:.4f} (held out, {len(ordered) - cut} days), rmse {metrics['rmse']:.4f}; linear "
                 f"autoregression {linear_r2:.4f}, yesterday's volume {persistence_r2:.4f}; scored days' abs error "
                 f"{errors.mean():.4f}")
