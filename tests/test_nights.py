"""Production nights (issue #14): late data waits, SCORED_AT is pinned, runs without an interval, the spec is
pinned to the run, dry runs leave nothing behind, the CLI scores the day you name."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from nightshift_demo.generate import write_credit_applications

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "include" / "pipelines" / "credit_default.yaml"
TABLE = "CREDIT_DEFAULT_SCORES"
LAST_DAY = date(2026, 2, 6)  # the landing zone holds days up to this one


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def write_spec(folder: Path, **changes) -> Path:
    """credit_default.yaml with nested changes, e.g. source={"wait": {...}}."""
    spec = yaml.safe_load(SPEC.read_text())
    for section, values in changes.items():
        spec[section] = {**spec.get(section, {}), **values}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "credit_default.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def night(tmp_path_factory, airflow_db):
    """A landing zone, a spec folder with short sensor waits and one trained champion, for the module."""
    from tests.reliability import harness

    root = tmp_path_factory.mktemp("nights")
    landing = root / "landing"
    write_credit_applications(landing, date(2025, 10, 1), LAST_DAY, rows_per_day=30)
    patch = pytest.MonkeyPatch()
    env = {"NIGHTSHIFT_CREDIT_SOURCE_URI": str(landing), "NIGHTSHIFT_LOCAL_DIR": str(root / "local"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local' / 'mlflow.db'}", "NIGHTSHIFT_WAREHOUSE": str(root / "wh.duckdb"),
           "NIGHTSHIFT_PIPELINES_DIR": str(root / "pipelines"), "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1"}
    for key, value in env.items():
        patch.setenv(key, value)
    write_spec(root / "pipelines", source={"wait": {"poke_minutes": 0.02, "timeout_hours": 0.05}})
    trained = harness.run_train("credit_default", "nights__train", interval_end=at(date(2026, 2, 1)))
    assert trained.failed is None, trained.describe()
    yield {"root": root, "landing": landing, "env": env, "harness": harness}
    patch.undo()


def scores(night, where: str = "TRUE"):
    with duckdb.connect(night["env"]["NIGHTSHIFT_WAREHOUSE"], read_only=True) as con:
        return con.execute(f"SELECT * FROM {TABLE} WHERE {where}").df()


@pytest.mark.e2e
def test_a_partition_that_lands_after_the_run_started_is_waited_for(night):
    """The day is missing when the run starts; the sensor reschedules until it lands; nobody touches the run."""
    from nightshift.render import build_score_dag
    from nightshift.spec import find_spec

    late = LAST_DAY + timedelta(days=1)
    folder = night["landing"] / f"dt={late.isoformat()}"
    assert not folder.exists()

    def land():
        time.sleep(4)
        write_credit_applications(night["landing"], late, late, rows_per_day=30)

    lander = threading.Thread(target=land)
    lander.start()
    try:
        conf = {"interval_start": late.isoformat(), "interval_end": (late + timedelta(days=1)).isoformat()}
        dag_run = build_score_dag(find_spec("credit_default")).test(logical_date=at(late + timedelta(days=1)), run_conf=conf)
    finally:
        lander.join()
    tries = {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success"
    published = scores(night, f"PARTITION_DATE = DATE '{late.isoformat()}'")
    landed = sum(pq.read_metadata(f).num_rows for f in folder.glob("*.parquet"))
    assert landed > 0 and len(published) == landed  # the whole late day, scored once it landed
    assert tries["ingest"] == 1  # ingest never ran (and failed) before the data was there


def test_data_that_never_lands_fails_with_what_was_looked_for_and_alerts(night, caplog):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators.wait import DataLandedSensor
    from nightshift.spec import find_spec

    spec = find_spec("credit_default")
    never = date(2027, 3, 1)
    sensor = DataLandedSensor(task_id="wait_for_data", pipeline=spec, mode="poke", poke_interval=0.2, timeout=1)
    context = night["harness"].context("never", at(never), at(never) + timedelta(days=1))
    with caplog.at_level("WARNING"), pytest.raises(AirflowFailException) as caught:
        sensor.execute(context)
    message = str(caught.value)
    assert message.startswith("data for 2027-03-01 has not landed after")
    assert f"dt=2027-03-01/*.parquet" in message and str(night["landing"]) in message
    assert any("ALERT credit_default" in r.getMessage() and "2027-03-01" in r.getMessage() for r in caplog.records)


def test_scored_at_is_the_time_of_the_run_and_survives_a_shard_retry(night):
    from nightshift.operators.publish import PublishOperator
    from nightshift.operators.score import ScoreShardOperator

    harness = night["harness"]
    before = datetime.now(timezone.utc)
    run = harness.run_score("credit_default", "nights__scored_at", date(2026, 2, 3))
    assert run.failed is None, run.describe()
    pinned = datetime.fromisoformat(run.results["resolve_model"]["scored_at"])
    assert before <= pinned <= datetime.now(timezone.utc)  # the time of scoring, not the logical date
    time.sleep(1.1)
    ctx = harness.context("nights__scored_at", at(date(2026, 2, 3)), at(date(2026, 2, 4)))  # a cleared shard, retried
    retried = harness.execute(ScoreShardOperator, "credit_default", ctx, shard=run.results["plan_shards"][0],
                              ingested=run.results["ingest"], model_ref=run.results["resolve_model"])
    shards = [retried, *run.results["score"][1:]]
    harness.execute(PublishOperator, "credit_default", ctx, shards=shards, ingested=run.results["ingest"],
                    model_ref=run.results["resolve_model"])
    rows = scores(night, "PARTITION_DATE = DATE '2026-02-03'")
    assert len(rows) == run.results["ingest"]["rows"] > 0 and rows["SCORED_AT"].nunique() == 1
    assert abs(rows["SCORED_AT"].iloc[0].to_pydatetime() - pinned) < timedelta(milliseconds=1)


def test_a_run_without_a_data_interval_scores_the_day_before_it_was_triggered(night):
    """API triggers without a logical date and asset-triggered runs have no interval: both DAGs still run."""
    from nightshift.operators.ingest import IngestScoringOperator, IngestTrainingOperator

    harness = night["harness"]
    ctx = {"run_id": "api__no_interval", "data_interval_start": None, "data_interval_end": None, "params": {},
           "dag_run": harness.FakeDagRun(datetime(2026, 2, 4, 13, 30, tzinfo=timezone.utc)), "outlet_events": {}}
    ingested = harness.execute(IngestScoringOperator, "credit_default", ctx)
    day = night["landing"] / "dt=2026-02-03"
    assert ingested["partition_dates"] == ["2026-02-03"]
    assert ingested["rows"] == sum(pq.read_metadata(f).num_rows for f in day.glob("*.parquet"))
    trained = harness.execute(IngestTrainingOperator, "credit_default", ctx)
    assert trained["window"]["end"].startswith("2026-01-05")  # trigger day minus the 30-day label delay


def test_every_task_of_a_run_sees_the_spec_it_started_with(night):
    """Editing the YAML mid-run changes nothing for that run: its first task pinned the resolved spec."""
    from nightshift.steps.run_spec import pinned_spec_uri

    harness = night["harness"]
    path = Path(night["env"]["NIGHTSHIFT_PIPELINES_DIR"]) / "credit_default.yaml"
    original = path.read_text()
    ctx = harness.context("nights__pinned", at(date(2026, 1, 25)), at(date(2026, 2, 1)))
    from nightshift.operators.ingest import IngestTrainingOperator

    ingested = harness.execute(IngestTrainingOperator, "credit_default", ctx)
    edited = yaml.safe_load(original)
    edited["evaluation"]["gates"] = [{"metric": "roc_auc", "min": 0.999}]  # would block any promotion
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        from nightshift.operators.evaluate import EvaluateOperator
        from nightshift.operators.features import FeaturesOperator
        from nightshift.operators.train import TrainOperator

        prepared = harness.execute(FeaturesOperator, "credit_default", ctx, ingested=ingested)
        trained = harness.execute(TrainOperator, "credit_default", ctx, ingested=ingested, prepared=prepared)
        evaluated = harness.execute(EvaluateOperator, "credit_default", ctx, ingested=ingested, prepared=prepared, trained=trained)
    finally:
        path.write_text(original)
    thresholds = {g["metric"]: g["threshold"] for g in evaluated["gates"] if g.get("rule") == "min"}
    assert thresholds["roc_auc"] == yaml.safe_load(original)["evaluation"]["gates"][0]["min"]
    record = json.loads(Path(pinned_spec_uri("credit_default", "adhoc_airflow", "nights__pinned")).read_text())
    pinned_gates = [{k: v for k, v in g.items() if v is not None} for g in record["spec"]["evaluation"]["gates"]]
    assert pinned_gates == yaml.safe_load(original)["evaluation"]["gates"]


def test_a_dry_run_leaves_no_artifact_in_mlflow_and_no_row_in_any_table(night):
    from nightshift.io import tracking
    from nightshift.operators.monitor import MonitorOperator

    harness = night["harness"]
    day = date(2026, 2, 5)
    run = harness.run_score("credit_default", "nights__dry", day, dry_run=True)
    assert run.failed == "publish"  # the skip: publish refuses to write on a dry run
    from airflow.sdk.exceptions import AirflowSkipException

    assert isinstance(run.error, AirflowSkipException)
    pinned = run.results["resolve_model"]
    client = tracking.client()
    before = [a.path for a in client.list_artifacts(pinned["mlflow_run_id"], "monitoring")]
    ctx = harness.context("nights__dry", at(day), at(day) + timedelta(days=1), dry_run=True)
    ctx["ti"] = type("TI", (), {"xcom_push": lambda self, key, value: None})()
    summary = harness.execute(MonitorOperator, "credit_default", ctx, shards=run.results["score"], ingested=run.results["ingest"],
                              model_ref=pinned)
    assert summary["dry_run"] and summary["rows_written"] == 0
    assert [a.path for a in client.list_artifacts(pinned["mlflow_run_id"], "monitoring")] == before
    assert scores(night, f"PARTITION_DATE = DATE '{day.isoformat()}'").empty
    with duckdb.connect(night["env"]["NIGHTSHIFT_WAREHOUSE"], read_only=True) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if f"{TABLE}_MONITORING" in tables:
            assert con.execute(f"SELECT COUNT(*) FROM {TABLE}_MONITORING WHERE DAG_RUN_ID = 'nights__dry'").fetchone()[0] == 0


@pytest.mark.e2e
def test_cli_in_a_fresh_shell_scores_exactly_the_day_named(tmp_path):
    """`env -i` shell, empty HOME: the CLI finds the project, migrates its own Airflow DB, scores day D only."""
    landing = tmp_path / "landing"
    write_credit_applications(landing, date(2025, 10, 1), date(2026, 2, 4), rows_per_day=30)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "NIGHTSHIFT_LOCAL_DIR": str(tmp_path / "local"),
           "NIGHTSHIFT_CREDIT_SOURCE_URI": str(landing), "NIGHTSHIFT_ALLOWED_ROOTS": str(tmp_path),
           "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1"}
    cli = str(ROOT / ".venv" / "bin" / "nightshift")
    train = subprocess.run([cli, "run", "credit_default", "--train", "--date", "2026-02-01"], env=env, capture_output=True,
                           text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "champion     credit_default@champion -> version 1" in train.stdout
    training = yaml.safe_load(SPEC.read_text())["training"]
    end = date(2026, 2, 1) - timedelta(days=training["label_delay_days"])  # D minus the label delay
    start = end - timedelta(days=training["window_days"])
    assert f"window       {start.isoformat()}T00:00:00+00:00 .. {end.isoformat()}T00:00:00+00:00" in train.stdout
    started = datetime.now(timezone.utc)
    scored = subprocess.run([cli, "run", "credit_default", "--score", "--date", "2026-02-03"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    assert "Traceback" not in scored.stdout + scored.stderr and len(scored.stdout.splitlines()) < 40  # Airflow's logs in a file
    with duckdb.connect(str(tmp_path / "local" / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT PARTITION_DATE, COUNT(*), MIN(SCORED_AT) FROM {TABLE} GROUP BY 1").fetchall()
    landed = sum(pq.read_metadata(f).num_rows for f in (landing / "dt=2026-02-03").glob("*.parquet"))
    assert [(str(d), n) for d, n, _ in rows] == [("2026-02-03", landed)]
    assert rows[0][2] >= started - timedelta(seconds=1)
    assert not (home / "airflow").exists() and (tmp_path / "local" / "airflow" / "airflow.db").exists()
    assert list((tmp_path / "local" / "logs" / "cli").glob("credit_default_score-2026-02-03.log"))
    shutil.rmtree(tmp_path / "local" / "artifacts", ignore_errors=True)


def test_anything_airflow_raises_while_building_one_spec_becomes_that_specs_placeholder(tmp_path, monkeypatch):
    """The loader passed both specs; Airflow refuses one's timetable: that spec alone becomes invalid_spec__<file>."""
    from airflow.sdk.exceptions import AirflowTimetableInvalid

    from nightshift.render import dags, render_pipelines

    folder = tmp_path / "pipelines"
    write_spec(folder)
    odd = yaml.safe_load(SPEC.read_text())
    odd["name"], odd["schedule"]["score"] = "credit_copy", "7 4 * * 3"
    (folder / "credit_copy.yaml").write_text(yaml.safe_dump(odd, sort_keys=False))
    real = dags._timetable

    def picky(cron):
        if cron == "7 4 * * 3":
            raise AirflowTimetableInvalid("refused by this Airflow (simulated)")
        return real(cron)

    monkeypatch.setattr(dags, "_timetable", picky)
    rendered = render_pipelines(folder)
    assert sorted(rendered) == ["credit_default_score", "credit_default_train", "invalid_spec__credit_copy"]
    assert "AirflowTimetableInvalid: refused by this Airflow" in rendered["invalid_spec__credit_copy"].doc_md


def test_a_tracking_store_gone_while_the_warehouse_holds_scores_is_an_outage_not_no_champion(night, tmp_path, monkeypatch):
    from nightshift.io import tracking
    from nightshift.operators.score import ResolveModelOperator

    harness = night["harness"]
    run = harness.run_score("credit_default", "nights__store_before", date(2026, 2, 2))
    assert run.failed is None, run.describe()
    moved = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{moved}")  # the store "moved away": this file does not exist
    tracking.client.cache_clear() if hasattr(tracking.client, "cache_clear") else None
    ctx = harness.context("nights__store_gone", at(date(2026, 2, 3)), at(date(2026, 2, 4)))
    with pytest.raises(tracking.TrackingStoreMissing) as caught:
        harness.execute(ResolveModelOperator, "credit_default", ctx)
    assert str(moved) in str(caught.value) and "no alias" not in str(caught.value)
    assert not moved.exists()  # not silently recreated empty


def one_day_landing(tmp_path, monkeypatch, day: date) -> Path:
    landing = tmp_path / "landing"
    write_credit_applications(landing, day, day, rows_per_day=30)
    monkeypatch.setenv("NIGHTSHIFT_CREDIT_SOURCE_URI", str(landing))
    return landing / f"dt={day.isoformat()}"


def test_an_empty_file_never_replaces_a_day_that_holds_rows(night, tmp_path, monkeypatch):
    harness = night["harness"]
    day = date(2026, 1, 20)
    folder = one_day_landing(tmp_path, monkeypatch, day)
    first = harness.run_score("credit_default", "nights__full_day", day)
    assert first.failed is None, first.describe()
    held = len(scores(night, f"PARTITION_DATE = DATE '{day.isoformat()}'"))
    assert held == first.results["publish"]["rows"] > 0
    frame = pq.read_table(next(folder.glob("*.parquet")))
    for path in folder.glob("*.parquet"):
        path.unlink()
    pq.write_table(frame.slice(0, 0), folder / "part-0.parquet")  # the day's file arrives again, with 0 rows
    again = harness.run_score("credit_default", "nights__empty_rerun", day)
    assert again.failed == "publish"
    assert f"{day} holds {held} published rows but this run has 0 rows" in again.message
    assert "scoring.allow_empty_days" in again.message
    assert len(scores(night, f"PARTITION_DATE = DATE '{day.isoformat()}'")) == held  # the day's rows stay


@pytest.mark.parametrize("name, expected", [
    ("_part-1.parquet", "a data file whose name starts with '_'"),
    (".part-1.parquet", "a data file whose name starts with '.'"),
    ("part-1.parquet.tmp", "unexpected file in partition"),
])
def test_unexpected_files_are_errors_naming_them(night, tmp_path, monkeypatch, name, expected):
    harness = night["harness"]
    day = date(2026, 1, 21)
    folder = one_day_landing(tmp_path, monkeypatch, day)
    shutil.copy(next(folder.glob("*.parquet")), folder / name)
    run = harness.run_score("credit_default", f"nights__odd_{name}", day)
    assert run.failed == "ingest" and expected in run.message and name in run.message


def test_writer_markers_are_ignored_and_an_empty_folder_fails_plainly(night, tmp_path, monkeypatch):
    harness = night["harness"]
    day = date(2026, 1, 22)
    folder = one_day_landing(tmp_path, monkeypatch, day)
    for marker in ("_SUCCESS", "_committed_4711", ".part-0.parquet.crc"):
        (folder / marker).write_text("")
    ok = harness.run_score("credit_default", "nights__markers", day)
    assert ok.failed is None, ok.describe()
    for path in folder.glob("*.parquet"):
        path.unlink()
    empty = harness.run_score("credit_default", "nights__empty_folder", day)
    assert empty.failed == "ingest"
    assert "partition folder holds no *.parquet files" in empty.message and "Traceback" not in empty.message
    assert "AttributeError" not in repr(empty.error)


def test_a_second_cli_run_of_the_same_dag_refuses_naming_the_running_one(tmp_path, monkeypatch, capsys):
    """While one `nightshift run` holds the DAG (here: this test holds its lock), another one refuses at once,
    with the holder in the message and no SQLAlchemy traceback."""
    from nightshift import cli
    from nightshift.cli import run as cli_run

    monkeypatch.setenv("NIGHTSHIFT_LOCAL_DIR", str(tmp_path / "local"))
    with cli_run.exclusive("credit_default_score", date(2026, 2, 3)):
        code = cli.main(["run", "credit_default", "--score", "--date", "2026-02-03"])
    err = capsys.readouterr().err
    assert code == 2
    assert "credit_default_score is already running here (nightshift run for 2026-02-03, pid" in err
    assert "Traceback" not in err and "IntegrityError" not in err
    with cli_run.exclusive("credit_default_score", date(2026, 2, 3)):  # released: the next run may take it
        pass


def test_a_backfill_from_a_to_b_scores_the_days_the_readme_says():
    """`airflow backfill create --from-date 2026-01-01 --to-date 2026-01-31` makes one run per logical date in
    [from, to]; through Airflow's own iteration and the scoring window, those runs score 01-01 .. 01-30."""
    from airflow.serialization.serialized_objects import DagSerialization

    from nightshift.render import build_score_dag
    from nightshift.spec import find_spec
    from nightshift.steps.score import scoring_window

    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_score_dag(find_spec("credit_default"))))
    infos = list(dag.iter_dagrun_infos_between(at(date(2026, 1, 1)), at(date(2026, 1, 31))))
    days = [d for info in infos for d in scoring_window(info.data_interval.start, info.data_interval.end).days()]
    assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]  # each day once, 01-31 not included
    readme = (ROOT / "README.md").read_text()
    assert "score **2026-01-01 to 2026-01-30**" in readme


def test_a_validation_failure_points_to_data_docs_that_still_exist(night, tmp_path, monkeypatch):
    import re

    harness = night["harness"]
    day = date(2026, 1, 23)
    folder = one_day_landing(tmp_path, monkeypatch, day)
    path = next(folder.glob("*.parquet"))
    frame = pq.read_table(path).to_pandas()
    frame.loc[0, "age"] = -5  # below the schema's minimum
    frame.to_parquet(path, index=False)
    run = harness.run_score("credit_default", "nights__bad_age", day)
    assert run.failed == "validate"
    shown = re.search(r"Data Docs: (\S+index\.html)", run.message)
    assert shown, run.message
    assert Path(shown.group(1)).is_file()  # the run folder's copy, not a deleted temporary folder


def test_a_renamed_spec_file_cannot_adopt_another_pipelines_registry_history(night, tmp_path, monkeypatch):
    """The spec file that registered `credit_default` owns it (tag on the registered model); the same `name` in a
    differently named file fails the training run at ingest, before anything is trained or registered."""
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.io import tracking
    from nightshift.operators.ingest import IngestTrainingOperator
    from nightshift.spec.loader import REGISTRY_OWNER_TAG

    harness = night["harness"]
    assert tracking.registered_model_tag("credit_default", REGISTRY_OWNER_TAG) == "credit_default.yaml"
    versions_before = harness.registry_state("credit_default")
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(Path(night["env"]["NIGHTSHIFT_PIPELINES_DIR"]) / "credit_default.yaml", folder / "credit_risk_v2.yaml")
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))
    ctx = harness.context("nights__adopt", at(date(2026, 1, 25)), at(date(2026, 2, 1)))
    with pytest.raises(AirflowFailException) as caught:
        harness.execute(IngestTrainingOperator, "credit_default", ctx)
    assert "belongs to spec 'credit_default.yaml'" in str(caught.value) and "credit_risk_v2.yaml" in str(caught.value)
    assert harness.registry_state("credit_default") == versions_before


def test_a_catch_up_runs_at_most_max_active_runs_score_runs_and_one_training(tmp_path, monkeypatch):
    """A scheduler catching up a week queues scoring runs beyond scoring.max_active_runs; training never overlaps."""
    from nightshift.render import build_score_dag, build_train_dag
    from nightshift.spec import parse_spec

    doc = yaml.safe_load((Path(__file__).parents[1] / "include/pipelines/credit_default.yaml").read_text())
    default = parse_spec(doc)
    doc["scoring"]["max_active_runs"] = 3
    assert build_score_dag(default).max_active_runs == default.scoring.max_active_runs == 2
    assert build_score_dag(parse_spec(doc)).max_active_runs == 3
    assert build_train_dag(default).max_active_runs == 1
    doc["scoring"]["max_active_runs"] = 0
    with pytest.raises(ValueError, match="max_active_runs"):
        parse_spec(doc)


def test_an_estimator_of_the_wrong_kind_fails_the_runs_first_task_before_any_read(night, tmp_path, monkeypatch):
    """`Ridge` for a binary target passes the cheap load checks (the class exists); the first task of the run imports
    it, sees a regressor, and fails without retries before it reads or writes anything."""
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift import config
    from nightshift.spec import find_spec

    folder = tmp_path / "pipelines"
    write_spec(folder, model={"flavor": "sklearn", "estimator": "sklearn.linear_model.Ridge", "params": {}})
    monkeypatch.setenv("NIGHTSHIFT_PIPELINES_DIR", str(folder))
    assert find_spec("credit_default").model.estimator == "sklearn.linear_model.Ridge"  # loads: only an import can tell
    run = night["harness"].run_train("credit_default", "nights__ridge", interval_end=at(date(2026, 2, 1)))
    assert run.failed == "ingest" and isinstance(run.error, AirflowFailException)
    assert "'sklearn.linear_model.Ridge' is not a classifier, but target.task is binary" in str(run.error)
    assert str(folder / "credit_default.yaml") in str(run.error)
    runs = Path(config.artifacts_root()) / "credit_default"
    assert list(runs.glob("train/nights__train*")) and list(runs.glob("pinned/*/nights__train*"))  # where a run writes
    assert not list(runs.glob("train/nights__ridge*")) and not list(runs.glob("pinned/*/nights__ridge*"))
