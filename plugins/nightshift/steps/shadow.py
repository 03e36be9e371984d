"""Shadow scoring: score other registry versions (e.g. `challenger`) on the run's own rows, into `<table>_SHADOW`.

A challenger proves itself on live data before promotion: it scores the same snapshot as the champion,
pinned to one version per run like the champion, with the same lineage columns, in its own table, so
the main table and its consumers never see shadow rows. The shadow set of a date is replaced as a
whole (one transaction), so reruns and backfills leave one set per date.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date, datetime

from nightshift.io import storage
from nightshift.io.warehouse import get_warehouse
from nightshift.spec import Pipeline
from nightshift.steps import score

log = logging.getLogger(__name__)
TABLE_SUFFIX = "_SHADOW"


def shadow_table(spec: Pipeline) -> str:
    return f"{spec.scoring.output_table}{TABLE_SUFFIX}"


def resolve_shadows(spec: Pipeline, champion_version: str) -> list[dict]:
    """Each `scoring.shadow` reference pinned to one version; unresolved references and the champion itself are skipped."""
    pinned, seen = [], {str(champion_version)}
    for reference in spec.scoring.shadow:
        try:
            model_ref = score.resolve_model(spec, reference)
        except score.ModelNotFound as exc:
            log.warning("shadow '%s' skipped: %s", reference, exc)
            continue
        if model_ref["model_version"] in seen:
            log.info("shadow '%s' is version %s, already scored in this run: skipped", reference, model_ref["model_version"])
            continue
        seen.add(model_ref["model_version"])
        pinned.append(model_ref)
    return pinned


def score_shadows(spec: Pipeline, ingested: dict, champion: dict, dag_run_id: str, scored_at: datetime) -> dict:
    """Score every shadow version over the whole snapshot (streamed) and replace the dates' shadow rows."""
    import pyarrow.parquet as pq

    shadows = resolve_shadows(spec, champion["model_version"])
    dates = [date.fromisoformat(d) for d in ingested["partition_dates"]]
    plan = score.plan_shards(spec, ingested["snapshot_uri"])
    every_group = {"index": 0, "row_groups": sorted(g for shard in plan for g in shard["row_groups"])}
    staged = [score.score_shard(spec, ingested["snapshot_uri"], every_group, ref, dag_run_id, scored_at, ingested["run_dir"],
                                staging_name=f"shadow-v{ref['model_version']}.parquet") for ref in shadows]
    if not staged:
        return {"table": shadow_table(spec), "versions": [], "rows": 0}
    with tempfile.TemporaryDirectory() as tmp:
        files = [storage.local_copy(s["uri"], tmp) for s in staged]
        schemas = {pq.read_schema(f).remove_metadata() for f in files}
        if len(schemas) > 1:
            raise ValueError(f"shadow versions {[s['model_version'] for s in staged]} write different columns (classes?): "
                             "score them in separate runs")
        rows = get_warehouse(spec.scoring.warehouse_conn_id).publish(shadow_table(spec), pq.read_schema(files[0]), files, spec.name,
                                                                     dates, sum(s["rows"] for s in staged))
    versions = [s["model_version"] for s in staged]
    log.info("shadow: %d rows of versions %s into %s for %s", rows, versions, shadow_table(spec), ingested["partition_dates"])
    return {"table": shadow_table(spec), "versions": versions, "rows": rows, "partition_dates": ingested["partition_dates"]}
