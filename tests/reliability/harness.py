"""Drive the task functions the DAGs run, in DAG order, and snapshot what a failed run must not change.

A full `dag.test()` costs 10-20 s; executing the DAG's own operators (nightshift.operators) in the same order with a
minimal context exercises the same code (every DAG task is one of them) in a second or two. Failures
are recorded, not raised: which step failed, its exception (AirflowFailException for the fail-fast errors)
and its message.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

TRAIN_END = datetime(2026, 2, 1, tzinfo=timezone.utc)  # credit_default reads [2025-07-05, 2026-01-02) for this run
TRAIN_STEPS = ("ingest", "validate", "features", "train", "evaluate", "promote")
SCORE_STEPS = ("resolve_model", "ingest", "validate", "plan_shards", "score", "publish")
LINEAGE_RUN_COLUMNS = ("SCORED_AT", "DAG_RUN_ID")  # differ between reruns by design


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


class FakeDagRun:
    """The two attributes of the DagRun the steps read."""

    def __init__(self, moment: datetime):
        self.start_date = moment
        self.run_after = moment


class FakeOutletEvents(dict):
    """`context["outlet_events"][asset].extra = ...` as publish sets it; the events are kept for assertions."""

    def __missing__(self, asset):
        self[asset] = event = type("AssetEvent", (), {"extra": None})()
        return event


def context(run_id: str, start: datetime, end: datetime, **params) -> dict:
    return {"run_id": run_id, "data_interval_start": start, "data_interval_end": end, "params": params,
            "dag_run": FakeDagRun(end), "outlet_events": FakeOutletEvents()}


@dataclass
class Outcome:
    """What a driven run did: the steps that finished, the step that raised (if any) and why."""

    done: list[str] = field(default_factory=list)
    failed: str | None = None
    error: BaseException | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error)

    def describe(self) -> str:
        return f"done={self.done} failed={self.failed} error={type(self.error).__name__ if self.error else None}: {self.message[:2000]}"


def _drive(steps: list[tuple[str, Callable[[dict], Any]]]) -> Outcome:
    outcome = Outcome()
    for name, call in steps:
        try:
            outcome.results[name] = call(outcome.results)
        except Exception as exc:  # noqa: BLE001 - the point is to record it
            outcome.failed, outcome.error = name, exc
            return outcome
        outcome.done.append(name)
    return outcome


def execute(operator_class: type, pipeline: str, ctx: dict, task_id: str = "step", **upstream) -> Any:
    """Execute one of the DAG's operators outside a DAG, as its task would (upstream XComs passed in)."""
    return operator_class(task_id=task_id, pipeline=pipeline, **upstream).execute(ctx)


def run_train(pipeline: str, run_id: str, interval_end: datetime = TRAIN_END, **params) -> Outcome:
    """`<pipeline>_train`: ingest → validate → features → train → evaluate → promote."""
    from nightshift.operators.evaluate import EvaluateOperator
    from nightshift.operators.features import FeaturesOperator
    from nightshift.operators.ingest import IngestTrainingOperator
    from nightshift.operators.train import TrainOperator
    from nightshift.operators.validate import ValidateOperator

    ctx = context(run_id, interval_end - timedelta(days=7), interval_end, **params)
    return _drive([
        ("ingest", lambda r: execute(IngestTrainingOperator, pipeline, ctx)),
        ("validate", lambda r: execute(ValidateOperator, pipeline, ctx, ingested=r["ingest"], include_target=True)),
        ("features", lambda r: execute(FeaturesOperator, pipeline, ctx, ingested=r["ingest"])),
        ("train", lambda r: execute(TrainOperator, pipeline, ctx, ingested=r["ingest"], prepared=r["features"])),
        ("evaluate", lambda r: execute(EvaluateOperator, pipeline, ctx, ingested=r["ingest"], prepared=r["features"],
                                       trained=r["train"])),
        ("promote", lambda r: promote(pipeline, ctx, r)),
    ])


def promote(pipeline: str, ctx: dict, r: dict) -> Any:
    """The promote task of a driven training run (also what a retry of it executes)."""
    from nightshift.operators.promote import PromoteOperator

    return execute(PromoteOperator, pipeline, ctx, ingested=r["ingest"], trained=r["train"], evaluated=r["evaluate"])


def run_score(pipeline: str, run_id: str, day: date, days: int = 1, **params) -> Outcome:
    """`<pipeline>_score` for the whole UTC days [day, day + days): resolve_model → ingest → validate →
    plan_shards → score (every shard) → publish."""
    from nightshift.operators.ingest import IngestScoringOperator
    from nightshift.operators.publish import PublishOperator
    from nightshift.operators.score import PlanShardsOperator, ResolveModelOperator, ScoreShardOperator
    from nightshift.operators.validate import ValidateOperator

    ctx = context(run_id, at(day), at(day) + timedelta(days=days), **params)
    return _drive([
        ("resolve_model", lambda r: execute(ResolveModelOperator, pipeline, ctx)),
        ("ingest", lambda r: execute(IngestScoringOperator, pipeline, ctx)),
        ("validate", lambda r: execute(ValidateOperator, pipeline, ctx, ingested=r["ingest"], include_target=False)),
        ("plan_shards", lambda r: execute(PlanShardsOperator, pipeline, ctx, ingested=r["ingest"], validated=r["validate"])),
        ("score", lambda r: [execute(ScoreShardOperator, pipeline, ctx, shard=s, ingested=r["ingest"], model_ref=r["resolve_model"])
                             for s in r["plan_shards"]]),
        ("publish", lambda r: execute(PublishOperator, pipeline, ctx, shards=r["score"], ingested=r["ingest"],
                                      model_ref=r["resolve_model"])),
    ])


# --- snapshots ----------------------------------------------------------------------------------

def warehouse_state(path: str | Path | None = None) -> dict:
    """Every table of the DuckDB warehouse, rows sorted: {table: DataFrame}; {} before the file exists."""
    import duckdb

    from nightshift import config

    path = Path(path or config.warehouse_path())
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').df() for t in tables}


def assert_same_warehouse(before: dict, after: dict) -> None:
    import pandas as pd

    assert sorted(before) == sorted(after), f"tables changed: {sorted(before)} -> {sorted(after)}"
    for table in before:
        pd.testing.assert_frame_equal(before[table], after[table], obj=table)


def table_hash(table: str, path: str | Path | None = None, exclude: tuple[str, ...] = LINEAGE_RUN_COLUMNS) -> tuple[str, int]:
    """(sha256 over every column except `exclude`, row count) of a warehouse table, in a fixed row order."""
    import duckdb
    import pandas as pd

    from nightshift import config

    with duckdb.connect(str(path or config.warehouse_path()), read_only=True) as con:
        frame = con.execute(f"SELECT * EXCLUDE ({', '.join(exclude)}) FROM {table} ORDER BY ALL").df()
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(",".join(frame.columns).encode())
    return digest.hexdigest(), len(frame)


def registry_state(*names: str) -> dict:
    """{model: (versions with their run and promotion tag, aliases)}: what 'the registry is unchanged' means."""
    from mlflow.exceptions import MlflowException

    from nightshift.io import tracking

    client = tracking.client()
    state = {}
    for name in names:
        versions = sorted((int(v.version), v.run_id, v.tags.get("nightshift.promotion"))
                          for v in client.search_model_versions(f"name = '{name}'"))
        try:
            aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
        except MlflowException:
            aliases = {}
        state[name] = (versions, aliases)
    return state


# --- landing data -------------------------------------------------------------------------------

def copy_partitions(source: Path, target: Path, days: list[date]) -> Path:
    """A private landing zone holding copies of some daily partitions of `source`."""
    target.mkdir(parents=True, exist_ok=True)
    for day in days:
        shutil.copytree(source / f"dt={day.isoformat()}", target / f"dt={day.isoformat()}")
    return target


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --- publish in another process (fault and concurrency tests) ------------------------------------------

CHILD = Path(__file__).with_name("publish_child.py")


def staged_scores(folder: Path, day: date, rows: int, version: str, dag_run_id: str, shards: int = 2) -> list[str]:
    """Shard files in credit_default's output schema, as the score step writes them: `rows` per shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nightshift.spec import find_spec
    from nightshift.steps import score

    schema = score.output_schema(find_spec("credit_default"))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for shard in range(shards):
        ids = [f"A{day:%Y%m%d}-{shard}{i:04d}" for i in range(rows)]
        table = pa.table({
            "APPLICATION_ID": ids, "SCORE": [((i * 7 + int(version)) % 100) / 100 for i in range(rows)],
            "LABEL": [int(i % 3 == 0) for i in range(rows)], "MODEL_NAME": ["credit_default"] * rows,
            "MODEL_VERSION": [version] * rows, "MLFLOW_RUN_ID": [f"mlflow-{version}"] * rows,
            "PARTITION_DATE": [day] * rows, "DAG_RUN_ID": [dag_run_id] * rows,
            "SCORED_AT": [datetime(2026, 2, 5, 2, tzinfo=timezone.utc)] * rows,
        }, schema=schema)
        path = folder / f"shard-{shard:03d}.parquet"
        pq.write_table(table, path)
        files.append(str(path))
    return files


def start_publish_child(**cfg):
    """`publish_child.py` with a JSON config; stdout and stderr are pipes (text)."""
    import json
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, str(CHILD), json.dumps(cfg, default=str)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc, prefix: str, timeout: float = 60.0) -> str:
    """Read the child's stdout until a line starts with `prefix`; fail with its stderr if it ends first."""
    import selectors
    import time

    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
    proc.kill()
    raise AssertionError(f"child never printed {prefix!r}: exit {proc.wait()}, stderr: {proc.stderr.read()[-3000:]}")
