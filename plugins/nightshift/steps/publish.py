"""Publish: load every shard's staging file into the warehouse in one transaction.

The only task that writes the warehouse (DuckDB allows one writer). It deletes this pipeline's
rows for the run's partition dates and inserts the new ones, so reruns and backfills replace
instead of duplicating, and a failure part-way leaves the previous rows as they were.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date

from nightshift.io import storage
from nightshift.io.warehouse import get_warehouse
from nightshift.spec import Pipeline

log = logging.getLogger(__name__)


def publish(spec: Pipeline, shards: list[dict], partition_dates: list[str], model_ref: dict) -> dict:
    """Replace the partitions' rows with the shards' rows; return what was published."""
    import pyarrow.parquet as pq

    versions = {s["model_version"] for s in shards}
    if versions != {model_ref["model_version"]}:
        raise RuntimeError(f"shards were scored with versions {sorted(versions)}, expected only {model_ref['model_version']}")
    shards = sorted(shards, key=lambda s: s["index"])
    expected = sum(s["rows"] for s in shards)
    dates = [date.fromisoformat(d) for d in partition_dates]
    warehouse = get_warehouse(spec.scoring.warehouse_conn_id)
    with tempfile.TemporaryDirectory() as tmp:
        files = [storage.local_copy(s["uri"], tmp) for s in shards]
        schema = pq.read_schema(files[0])
        inserted = warehouse.publish(spec.scoring.output_table, schema, files, spec.name, dates, expected)
    log.info("published %d rows to %s for %s (model %s v%s)", inserted, spec.scoring.output_table,
             ", ".join(partition_dates), spec.name, model_ref["model_version"])
    return {"table": spec.scoring.output_table, "rows": inserted, "partition_dates": partition_dates,
            "model_version": model_ref["model_version"]}
