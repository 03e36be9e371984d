"""Score: resolve the model once, split the day into shards, stream each shard through the model.

The champion alias is resolved to a concrete version at run start and every shard loads that
version, so one run never mixes models even if `champion` moves mid-run. Each shard reads its
row groups in record batches and appends scored batches to its own staging parquet file, so its
memory does not grow with the partition's size.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.ml import metrics
from nightshift.spec import Pipeline
from nightshift.steps import features, ingest, snapshot

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)
PARTITION_COLUMN = "__nightshift_partition_date"
LINEAGE_COLUMNS = ["MODEL_NAME", "MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE", "DAG_RUN_ID", "SCORED_AT"]
_VERSION = re.compile(r"^[0-9]{1,9}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ModelNotFound(Exception):
    """No model to score with: the message says what to do."""


# --- interval and ingest ---------------------------------------------------------------------

def scoring_window(interval_start: datetime, interval_end: datetime) -> ingest.Window:
    """The whole UTC days a run scores: a 02:00-to-02:00 nightly interval scores the day it covers."""
    start = ingest.utc(interval_start).replace(hour=0, minute=0, second=0, microsecond=0)
    end = ingest.utc(interval_end).replace(hour=0, minute=0, second=0, microsecond=0)
    return ingest.Window(start, max(end, start + timedelta(days=1)))


def read_scoring_rows(spec: Pipeline, window: ingest.Window, file_rows: list | None = None) -> tuple["pd.DataFrame", list[str]]:
    """The window's rows with their partition date: by event time, or one templated file per day."""
    import pandas as pd

    if spec.source.event_time:
        rows, names = ingest.read_rows(spec, window, with_target=False, require_all=True, file_rows=file_rows)
        dates = rows[spec.source.event_time].dt.tz_convert("UTC").dt.date
        return rows.assign(**{PARTITION_COLUMN: pd.to_datetime(dates).dt.date}), names
    frames, names, labels = [], [], []
    for day in window.days():
        uri = spec.source.score_uri.format(ds=day.isoformat(), ds_nodash=day.strftime("%Y%m%d"))
        rows, read = ingest.read_rows(spec, None, uri, with_target=False, require_all=True, file_rows=file_rows)
        frames.append(rows.assign(**{PARTITION_COLUMN: day}))
        names += read
        labels.append(ingest.describe_files(read))
    ingest.check_types_agree(frames, labels, spec)  # one day's CSV with text where the others have numbers
    return pd.concat(frames, ignore_index=True), names


def _stream_scoring_rows(spec: Pipeline, window: ingest.Window, run_dir: str, file_rows: list) -> tuple[int, list[str], str]:
    """The event-time path of read_scoring_rows plus the snapshot write, one checked chunk at a time (parquet)."""
    import pandas as pd
    import pyarrow as pa

    files = ingest.source_files(spec, window, require_all=True)
    hints, upper = snapshot.source_hints(files)
    group_rows = max(1, min(spec.scoring.batch_rows, -(-upper // spec.scoring.shards)))  # every shard gets work
    uri = f"{run_dir}/ingest/snapshot.parquet"
    writer = snapshot.SnapshotWriter(uri, group_rows, hints)
    names: list[str] = []
    for frame in ingest.stream_rows(spec, window, with_target=False, require_all=True, file_rows=file_rows, names=names,
                                    batch_rows=group_rows, files=files):
        times = frame[spec.source.event_time].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        writer.write(frame, {PARTITION_COLUMN: pa.array(times.astype("datetime64[D]"), type=pa.date32())})
    columns = [c for c in spec.columns if c != spec.target.column]  # no file at all: read_rows' empty frame
    empty = pd.DataFrame({c: pd.Series(dtype="str" if c == spec.source.computed_key else "float64") for c in columns})
    return writer.close(empty.assign(**{PARTITION_COLUMN: pd.Series(dtype=object)})), names, uri


def ingest_scoring(spec: Pipeline, interval_start: datetime, interval_end: datetime, run_dir: str) -> dict:
    """Snapshot the interval's rows in row groups (at most `batch_rows`), the unit that shards split and stream.

    Parquet sources with an event time are copied chunk by chunk (ingest.stream_rows → SnapshotWriter), never holding
    the day; CSV, Snowflake and templated `score_uri` sources are read into one frame (read_scoring_rows) first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    window = scoring_window(interval_start, interval_end)
    file_rows: list = []  # [file, rows] in snapshot order: validation names the file behind a bad row
    uri = f"{run_dir}/ingest/snapshot.parquet"
    if spec.source.event_time and ingest.streams(spec):
        with ingest.detail_kept(run_dir):
            count, names, uri = _stream_scoring_rows(spec, window, run_dir, file_rows)
        _check_min_rows(spec, window, count, names)
        if not count:
            log.warning("no rows to score in [%s, %s): the run publishes zero rows for it", window.start.date(), window.end.date())
        return _ingested(uri, count, names, file_rows, window)
    with ingest.detail_kept(run_dir):
        rows, names = read_scoring_rows(spec, window, file_rows)
    _check_min_rows(spec, window, len(rows), names)
    loc = storage.locate(uri)
    loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
    group_rows = max(1, min(spec.scoring.batch_rows, -(-len(rows) // spec.scoring.shards)))  # every shard gets work
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), loc.path, filesystem=loc.fs, row_group_size=group_rows)
    if rows.empty:
        log.warning("no rows to score in [%s, %s): the run publishes zero rows for it", window.start.date(), window.end.date())
    return _ingested(uri, len(rows), names, file_rows, window)


def _check_min_rows(spec: Pipeline, window: ingest.Window, rows: int, names: list[str]) -> None:
    if rows < spec.scoring.min_rows:
        raise ingest.IngestError(
            f"{ingest.describe_files(names)}: {rows} rows to score in [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}); "
            f"scoring.min_rows is {spec.scoring.min_rows}"
        )


def _ingested(uri: str, rows: int, names: list[str], file_rows: list, window: ingest.Window) -> dict:
    return {
        "snapshot_uri": uri,
        "rows": rows,
        "source": ingest.describe_files(names),
        "file_rows": file_rows,
        "window": window.as_dict(),
        "partition_dates": [d.isoformat() for d in window.days()],
    }


# --- model resolution ------------------------------------------------------------------------

class InvalidModelReference(ModelNotFound, ValueError):
    """The form's `model` is not a version number or an alias (a path, a URI, SQL): refused before any I/O."""


def check_model_reference(reference: str | None) -> str:
    """The trigger form's `model`: a registry version number or an alias, never a path or URI (checked before any I/O)."""
    reference = str(reference or tracking.CHAMPION).strip()
    if not (_VERSION.match(reference) or _ALIAS.match(reference)):
        raise InvalidModelReference(f"model '{reference}' must be a registry version number or an alias name, not a path or URI")
    return reference


def resolve_model(spec: Pipeline, reference: str | None = None) -> dict:
    """Turn `champion` (or a version number or another alias) into one concrete registry version."""
    from mlflow.exceptions import MlflowException

    reference = check_model_reference(reference)
    client = tracking.client()
    try:
        if _VERSION.match(reference):
            version = client.get_model_version(spec.name, reference)
        else:
            version = client.get_model_version_by_alias(spec.name, reference)
    except MlflowException as exc:
        if not tracking.is_missing(exc):  # an outage is retried, never reported as "no champion"
            raise tracking.unavailable(exc, f"resolving {spec.name} '{reference}'") from exc
        hint = f"run {spec.train_dag_id} first" if reference == tracking.CHAMPION else "check the version or alias"
        raise ModelNotFound(f"registered model '{spec.name}' has no {'version' if _VERSION.match(reference) else 'alias'} "
                            f"'{reference}': {hint}") from None
    log.info("scoring with %s version %s (resolved from '%s')", spec.name, version.version, reference)
    return {
        "model_name": spec.name,
        "model_version": str(version.version),
        "mlflow_run_id": version.run_id,
        "model_uri": f"models:/{spec.name}/{version.version}",
        "resolved_from": reference,
    }


# --- sharding and scoring --------------------------------------------------------------------

def plan_shards(spec: Pipeline, snapshot_uri: str) -> list[dict]:
    """Spread the snapshot's row groups round-robin over `scoring.shards` shards."""
    import pyarrow.parquet as pq

    loc = storage.locate(snapshot_uri)
    groups = pq.ParquetFile(loc.path, filesystem=loc.fs).metadata.num_row_groups
    return [{"index": i, "row_groups": list(range(i, groups, spec.scoring.shards))} for i in range(spec.scoring.shards)]


def output_schema(spec: Pipeline, classes: list | None = None) -> "pa.Schema":
    """Columns of the output table: entity key, scores, lineage (upper-case, Snowflake style)."""
    import pyarrow as pa

    key_types = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "date": pa.date32(),
                 "timestamp": pa.timestamp("us", tz="UTC")}
    fields = [pa.field(k.upper(), key_types.get(spec.columns[k].type, pa.string())) for k in spec.source.entity_key]
    fields.append(pa.field("SCORE", pa.float64()))
    if spec.target.task == "multiclass":
        fields.append(pa.field("LABEL", pa.string()))
        fields += [pa.field(f"PROBA_{_safe_upper(c)}", pa.float64()) for c in classes or []]
    elif spec.scoring.threshold is not None:
        fields.append(pa.field("LABEL", pa.int64()))
    fields += [
        pa.field("MODEL_NAME", pa.string()), pa.field("MODEL_VERSION", pa.string()), pa.field("MLFLOW_RUN_ID", pa.string()),
        pa.field("PARTITION_DATE", pa.date32()), pa.field("DAG_RUN_ID", pa.string()),
        pa.field("SCORED_AT", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)


def _safe_upper(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(value)).upper()


def score_batch(spec: Pipeline, model: Any, batch: "pd.DataFrame", lineage: dict, schema: "pa.Schema") -> "pa.Table":
    """Scores and lineage for one record batch, as an arrow table in the output schema."""
    import numpy as np
    import pyarrow as pa

    columns = {k.upper(): batch[k] for k in spec.source.entity_key}  # a Series converts to arrow without an object array
    inputs = features.model_input(batch, list(getattr(model, "feature_names_in_", spec.feature_columns)))
    scores = metrics.predict_scores(model, inputs, spec.target.task) if len(batch) else np.empty((0,))
    if spec.target.task == "multiclass":
        classes = list(model.classes_)
        proba = scores.reshape(len(batch), len(classes))
        columns["SCORE"] = proba.max(axis=1)
        columns["LABEL"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str)
        columns.update({f"PROBA_{_safe_upper(c)}": proba[:, i] for i, c in enumerate(classes)})
    else:
        columns["SCORE"] = np.asarray(scores, dtype="float64")
        if spec.scoring.threshold is not None:
            columns["LABEL"] = (columns["SCORE"] >= spec.scoring.threshold).astype("int64")
    n = len(batch)
    for name in ("MODEL_NAME", "MODEL_VERSION", "MLFLOW_RUN_ID", "DAG_RUN_ID", "SCORED_AT"):  # constants: no n-item lists
        columns[name] = pa.repeat(pa.scalar(lineage[name], type=schema.field(name).type), n)
    columns["PARTITION_DATE"] = batch[PARTITION_COLUMN]
    return pa.table({f.name: v if isinstance(v := columns[f.name], pa.Array) else pa.array(v, type=f.type) for f in schema},
                    schema=schema)


def score_shard(spec: Pipeline, snapshot_uri: str, shard: dict, model_ref: dict, dag_run_id: str, scored_at: datetime, run_dir: str,
                staging_name: str | None = None) -> dict:
    """Stream one shard's row groups through the pinned model into its staging parquet file
    (`staging/shard-NNN.parquet`, or `staging/<staging_name>` for shadow models)."""
    import pyarrow.parquet as pq

    model = tracking.load_sklearn_model(model_ref["model_uri"])  # skops, against our trusted types only
    schema = output_schema(spec, list(model.classes_) if spec.target.task == "multiclass" else None)
    lineage = {"MODEL_NAME": model_ref["model_name"], "MODEL_VERSION": model_ref["model_version"],
               "MLFLOW_RUN_ID": model_ref["mlflow_run_id"], "DAG_RUN_ID": dag_run_id, "SCORED_AT": ingest.utc(scored_at)}
    source = storage.locate(snapshot_uri)
    out_uri = f"{run_dir}/staging/" + (staging_name or f"shard-{shard['index']:03d}.parquet")
    out = storage.locate(out_uri)
    out.fs.create_dir(out.path.rsplit("/", 1)[0], recursive=True)
    rows = 0
    with pq.ParquetWriter(out.path, schema, filesystem=out.fs) as writer:
        if shard["row_groups"]:
            reader = pq.ParquetFile(source.path, filesystem=source.fs)
            for group in shard["row_groups"]:  # one reader call per row group: one call over all of them keeps
                # ~2 MiB per group read until it ends (pyarrow 25), so memory grew with the shard's size
                for batch in reader.iter_batches(batch_size=spec.scoring.batch_rows, row_groups=[group]):
                    writer.write_table(score_batch(spec, model, batch.to_pandas(), lineage, schema))
                    rows += batch.num_rows
    log.info("shard %d: %d rows scored with %s v%s", shard["index"], rows, model_ref["model_name"], model_ref["model_version"])
    return {"index": shard["index"], "uri": out_uri, "rows": rows, "model_version": model_ref["model_version"]}
