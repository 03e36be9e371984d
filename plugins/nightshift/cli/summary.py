"""What a run did, in the words a person checks: rows, window, metrics, gates, version, rows per date.

Read back from MLflow and the warehouse (the records that matter), not from the task logs; shared by
`nightshift run` and the demo.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from nightshift import config


def train_summary(pipeline: str, dag_run_id: str | None = None) -> str:
    """What the latest training run saw, measured and decided, read back from MLflow."""
    from nightshift.io import tracking

    client = tracking.client()
    run_id = tracking.find_run(pipeline, dag_run_id)
    if run_id is None:
        return f"no training run of {pipeline} found in {config.mlflow_tracking_uri()}"
    run = client.get_run(run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    lines = [
        f"training run {tags.get(tracking.DAG_RUN_TAG)} (MLflow run {run_id})",
        f"  window       {tags.get('nightshift.window_start', '-')} .. {tags.get('nightshift.window_end', '-')}",
        f"  rows         {params.get('rows_in_window', '-')} in window, data hash {tags.get('nightshift.data_hash', '-')}",
        "  metrics      " + ", ".join(f"{k[5:]}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("test_")),
        f"  report       {tags.get('nightshift.report', '-')}",
    ]
    versions = client.search_model_versions(f"name = '{pipeline}' and run_id = '{run_id}'")
    if versions:
        version = versions[0]
        gates = json.loads(version.tags.get("nightshift.gates", "[]"))
        for gate in gates:
            lines.append(f"  gate         {'PASS' if gate['passed'] else 'FAIL'}  {gate['reason']}")
        lines.append(f"  registered   {pipeline} version {version.version}: {version.tags.get('nightshift.promotion')}")
        lines.append(f"  model card   {version.tags.get('nightshift.model_card', '-')}")
    champion = tracking.champion(pipeline)
    lines.append(f"  champion     {pipeline}@champion -> version {champion.version if champion else 'none'}")
    return "\n".join(lines)


def partitions_summary(pipeline: str) -> str:
    """Rows per PARTITION_DATE and the model version that produced them, read from the warehouse."""
    from nightshift.io.warehouse import get_warehouse
    from nightshift.spec import find_spec

    spec = find_spec(pipeline)
    rows = get_warehouse(spec.scoring.warehouse_conn_id).rows_per_partition(spec.scoring.output_table, spec.name)
    lines = [f"{spec.scoring.output_table}: PARTITION_DATE  MODEL_VERSION  ROWS"]
    lines += [f"{'':{len(spec.scoring.output_table) + 2}}{day}  {version:>13}  {count:>4}" for day, version, count in rows]
    return "\n".join(lines)


def score_summary(spec: Any, conf: dict) -> str:
    """The days a scoring run covered, with the rows and model version now published for each."""
    from nightshift.io.warehouse import get_warehouse

    start, end = date.fromisoformat(conf["interval_start"]), date.fromisoformat(conf["interval_end"])
    days = {(start + timedelta(days=i)).isoformat() for i in range((end - start).days)}
    rows = get_warehouse(spec.scoring.warehouse_conn_id).rows_per_partition(spec.scoring.output_table, spec.name)
    lines = [f"scored {spec.name} for {', '.join(sorted(days))}{' (dry run: nothing published)' if conf.get('dry_run') else ''}",
             f"  {spec.scoring.output_table}: PARTITION_DATE  MODEL_VERSION  ROWS"]
    shown = [(day, version, count) for day, version, count in rows if str(day)[:10] in days]
    lines += [f"    {day}  {version:>13}  {count:>6}" for day, version, count in shown] or ["    no rows published for these days"]
    return "\n".join(lines)
