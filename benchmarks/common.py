"""Shared helpers for the benchmark scripts: isolation, data, a throwaway model, output.

Every benchmark prints ONE line of JSON (its figures) on stdout and writes only into a temporary
folder (under $NIGHTSHIFT_BENCH_TMP, default the system temp dir), removed at the end. Nothing
here is imported by Nightshift itself, and nothing here needs a profiler.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = ROOT / "include" / "pipelines" / "credit_default.yaml"
PIPELINE = "credit_default"
SCORE_DAY = date(2026, 2, 2)
HEAVY = ["pandas", "numpy", "sklearn", "xgboost", "mlflow", "great_expectations", "pyarrow"]

if str(ROOT / "plugins") not in sys.path:  # the package is installed editable; this keeps a bare checkout working
    sys.path.insert(0, str(ROOT / "plugins"))


# --- isolation --------------------------------------------------------------------------------

@contextlib.contextmanager
def workdir(name: str, keep: bool = False):
    """A fresh temporary folder for one benchmark, removed afterwards (unless keep)."""
    base = os.environ.get("NIGHTSHIFT_BENCH_TMP") or None
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"nightshift-bench-{name}-", dir=base))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def isolate(work: Path, pipelines: bool = True) -> dict[str, str]:
    """Point every Nightshift, MLflow and Airflow location into `work`; return the variables set.

    The spec is copied into `work/pipelines` so concurrent edits of other specs never matter."""
    env = {
        "NIGHTSHIFT_HOME": str(ROOT),
        "NIGHTSHIFT_LOCAL_DIR": str(work / "local"),
        "NIGHTSHIFT_WAREHOUSE": str(work / "local" / "warehouse.duckdb"),
        "NIGHTSHIFT_ARTIFACTS": str(work / "local" / "artifacts"),
        "NIGHTSHIFT_ALLOWED_ROOTS": str(work),  # the landing data lives in the work folder
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'local' / 'mlflow.db'}",
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GIT_PYTHON_REFRESH": "quiet",
        "NIGHTSHIFT_RETRY_DELAY_SECONDS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",  # no network calls from a measurement
    }
    if pipelines:
        folder = work / "pipelines"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(SPEC_FILE, folder / SPEC_FILE.name)
        env["NIGHTSHIFT_PIPELINES_DIR"] = str(folder)
    (work / "local").mkdir(parents=True, exist_ok=True)
    (work / "airflow").mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def quiet_logs() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("mlflow", "alembic", "nightshift", "great_expectations", "airflow", "py.warnings"):
        logging.getLogger(name).setLevel(logging.WARNING)


def spec():
    from nightshift.spec import load_spec

    return load_spec(Path(os.environ.get("NIGHTSHIFT_PIPELINES_DIR", SPEC_FILE.parent)) / SPEC_FILE.name)


# --- data -------------------------------------------------------------------------------------

def training_rows(rows: int, seed: int = 7):
    """Labelled credit applications (demo generator), spread over as many days as it takes."""
    import pandas as pd

    from nightshift_demo.generate import credit_applications_for_day

    per_day = max(50, min(2000, rows // 60 + 1))
    frames, total, day = [], 0, date(2025, 6, 1).toordinal()
    while total < rows:
        frame = credit_applications_for_day(date.fromordinal(day), seed, per_day)
        frames.append(frame)
        total += len(frame)
        day += 1
    return pd.concat(frames, ignore_index=True).head(rows)


class RowFactory:
    """Scoring rows fast: demo-generator rows for one day, tiled, with fresh unique ids."""

    def __init__(self, day: date = SCORE_DAY, base_rows: int = 50_000, seed: int = 11):
        from nightshift_demo.generate import credit_applications_for_day

        base = credit_applications_for_day(day, seed, base_rows).drop(columns=["defaulted"])
        self.day = day
        self.base = base.drop(columns=["application_id"]).reset_index(drop=True)

    def frame(self, start: int, stop: int):
        """Rows number start .. stop-1 (ids A<day>-<number>), with the snapshot's partition column."""
        import numpy as np
        import pandas as pd

        from nightshift.steps.score import PARTITION_COLUMN

        n = stop - start
        take = np.arange(start, stop) % len(self.base)
        out = self.base.take(take).reset_index(drop=True)
        ids = pd.Series(np.arange(start, stop)).astype(str).str.zfill(10)
        out.insert(0, "application_id", f"A{self.day:%Y%m%d}-" + ids)
        out[PARTITION_COLUMN] = pd.Series([self.day] * n, dtype=object)  # datetime.date objects, as ingest makes them
        return out


def write_snapshot(path: Path, rows: int, batch_rows: int, shards: int, chunk_rows: int = 1_000_000, factory=None) -> Path:
    """A scoring snapshot laid out as `ingest_scoring` lays it out, written chunk by chunk.

    Row groups hold min(batch_rows, ceil(rows / shards)) rows, like the ingest step; never more
    than `chunk_rows` rows are in memory at once, so 10M rows need no 10M-row frame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    factory = factory or RowFactory()
    group_rows = max(1, min(batch_rows, -(-rows // shards)))
    chunk_rows = max(group_rows, chunk_rows // group_rows * group_rows)  # chunks are whole row groups
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    for start in range(0, rows, chunk_rows):
        table = pa.Table.from_pandas(factory.frame(start, min(rows, start + chunk_rows)), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=group_rows)
    if writer is not None:
        writer.close()
    return path


# --- a throwaway champion ----------------------------------------------------------------------

def train_champion(spec, rows: int, pyfunc_predict_fn: str = "predict_proba") -> dict:
    """Fit the spec's pipeline on `rows` generated rows, log it to the (isolated) MLflow store,
    register it and make it the champion, as the train DAG would; return resolve_model's answer.

    `pyfunc_predict_fn="predict_proba"` makes the pyfunc flavour return probabilities, so the
    naive peer computes the same numbers Nightshift publishes (the sklearn flavour ignores it)."""
    import mlflow
    from mlflow.models import infer_signature

    from nightshift.ml import metrics
    from nightshift.io import tracking
    from nightshift.steps import features, score, train

    frame = training_rows(rows)
    model = train.fit_pipeline(spec, frame)
    client = tracking.client()
    sample = features.model_input(frame.head(5), spec.feature_columns)
    signature = infer_signature(sample, metrics.predict_scores(model, sample, spec.target.task))
    experiment = tracking.experiment_id(spec.name)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=sample,
                                        serialization_format="skops", pyfunc_predict_fn=pyfunc_predict_fn,
                                        skops_trusted_types=tracking.trusted_model_types())  # as the train step logs it
    version = mlflow.register_model(info.model_uri, spec.name)
    client.set_registered_model_alias(spec.name, tracking.CHAMPION, version.version)
    return {**score.resolve_model(spec), "fitted": model}


# --- measuring and reporting ------------------------------------------------------------------

class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    import platform

    import psutil

    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


def emit(name: str, figures: dict) -> None:
    """The one JSON line a benchmark prints (the runner reads the last line starting with '{')."""
    figures = {"benchmark": name, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **figures}
    sys.stdout.write(json.dumps(figures, default=_plain) + "\n")
    sys.stdout.flush()


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (date, datetime, Path)):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else float("nan")
