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
        f"  window       {tags['nightshift.window_start']} .. {tags.get('nightshift.window_end', '-')}" if tags.get("nightshift.window_start")
        else "  window       the whole source (no event_time column)",
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


def staged_rows(run_dir: str) -> tuple[int, int]:
    """(shard files, rows) the run's score shards staged under `<run_dir>/staging` (shadow files apart), local or S3."""
    import pyarrow.parquet as pq

    from nightshift.io import storage

    folder = storage.locate(f"{run_dir}/staging")
    if not storage.is_dir(folder):
        return 0, 0
    names = [path.rsplit("/", 1)[-1] for path, _ in storage.list_files(folder)]
    shards = [folder.child(n) for n in names if n.startswith("shard-") and n.endswith(".parquet")]
    return len(shards), sum(pq.read_metadata(loc.path, filesystem=loc.fs).num_rows for loc in shards)


def score_summary(spec: Any, conf: dict, run_dir: str | None = None) -> str:
    """The days a scoring run covered, with the rows and model version now published for each; for a dry run, the rows
    it scored into the run folder, and what the warehouse already held for those days (left untouched)."""
    from nightshift.io.warehouse import get_warehouse

    start, end = date.fromisoformat(conf["interval_start"]), date.fromisoformat(conf["interval_end"])
    days = {(start + timedelta(days=i)).isoformat() for i in range((end - start).days)}
    rows = get_warehouse(spec.scoring.warehouse_conn_id).rows_per_partition(spec.scoring.output_table, spec.name)
    dry = bool(conf.get("dry_run"))
    lines = [f"scored {spec.name} for {', '.join(sorted(days))}{' (dry run: nothing published)' if dry else ''}"]
    if dry and run_dir is not None:
        shards, staged = staged_rows(run_dir)
        lines.append(f"  {staged} rows scored into {shards} staging file(s) under {run_dir}/staging; the warehouse is untouched")
    lines.append(f"  {spec.scoring.output_table}{' (as before the run)' if dry else ''}: PARTITION_DATE  MODEL_VERSION  ROWS")
    shown = [(day, version, count) for day, version, count in rows if str(day)[:10] in days]
    lines += [f"    {day}  {version:>13}  {count:>6}" for day, version, count in shown] or ["    no rows published for these days"]
    return "\n".join(lines)


def _recent(spec: Any, table: str, days: int) -> Any:
    """The rows of the `days` latest partition dates present in a MODEL_NAME/PARTITION_DATE table."""
    import pandas as pd

    from nightshift.io.warehouse import get_warehouse

    warehouse = get_warehouse(spec.scoring.warehouse_conn_id)
    present = sorted({d if isinstance(d, date) else pd.Timestamp(d).date() for d, _, _ in warehouse.rows_per_partition(table, spec.name)})
    if not present:
        return pd.DataFrame()
    frame = warehouse.read_rows(table, spec.name, present[-days:])
    return frame.assign(PARTITION_DATE=pd.to_datetime(frame["PARTITION_DATE"]).dt.date) if not frame.empty else frame


def drift_summary(pipeline: str, days: int = 14) -> str:
    """The drift verdict per date (worst status of its gated rows) of the latest `days` dates, from `_MONITORING`."""
    from nightshift.ml import drift
    from nightshift.spec import find_spec
    from nightshift.steps.monitor import monitoring_table

    spec = find_spec(pipeline)
    frame = _recent(spec, monitoring_table(spec), days)
    lines = [f"{monitoring_table(spec)}: drift verdicts of the last {days} dates"]
    if frame.empty:
        return "\n".join([*lines, "  no monitoring rows"])
    for (day, version), part in frame.groupby(["PARTITION_DATE", "MODEL_VERSION"]):
        gated = part[part["MODE"].fillna("gate") == "gate"]
        flagged = gated[gated["STATUS"].isin([drift.WARN, drift.FAIL])]["FEATURE"].tolist()
        verdict = drift.worst(gated["STATUS"].tolist())
        lines.append(f"  {day}  v{version:<4} {verdict:<5} {', '.join(flagged[:6]) or ''}".rstrip())
    return "\n".join(lines)


def performance_summary(pipeline: str, days: int = 14) -> str:
    """Realized and estimated values of the deciding metric per date and version, from `_PERFORMANCE`."""
    from nightshift.spec import find_spec
    from nightshift.steps import performance

    spec = find_spec(pipeline)
    table, metric = performance.performance_table(spec), performance.deciding_metric(spec)
    frame = _recent(spec, table, days + spec.training.label_delay_days)
    if not frame.empty:  # the latest `days` dates of each kind: realized dates lag the estimated ones by the label delay
        latest = frame.groupby("KIND")["PARTITION_DATE"].transform(lambda d: d.isin(sorted(set(d))[-days:]))
        frame = frame[latest]
    lines = [f"{table}: {metric} of the last {days} dates of each kind (estimated before labels, realized after "
             f"{spec.training.label_delay_days} days; interval {spec.monitoring.performance.confidence:.0%})",
             f"  {'PARTITION_DATE':<14} {'VERSION':<7} {'ROLE':<7} {'KIND':<9} {'VALUE':>7} {'INTERVAL':<17} {'ROWS':>6} "
             f"{'HELD-OUT':>8}  STATUS"]
    if frame.empty:
        return "\n".join([*lines, "  no performance rows"])

    def num(value: Any, width: int = 6) -> str:
        return "-" if value is None or value != value else f"{value:.{3 if width <= 6 else 4}f}"

    shown = frame[frame["METRIC"] == metric].sort_values(["PARTITION_DATE", "MODEL_VERSION", "KIND"], ascending=[True, True, False])
    for r in shown.to_dict("records"):
        interval = f"[{num(r['LOWER'])}, {num(r['UPPER'])}]"
        role = r.get("ROLE") if isinstance(r.get("ROLE"), str) else performance.SERVED
        lines.append(f"  {str(r['PARTITION_DATE']):<14} v{r['MODEL_VERSION']:<6} {role:<7} {r['KIND']:<9} {num(r['VALUE']):>7} "
                     f"{interval:<17} {int(r['ROWS']):>6} {num(r['BASELINE']):>8}  {r['STATUS']}")
    for duel in performance.live_comparison(spec, frame):
        if duel["days"]:
            lines.append(f"  shadow v{duel['shadow_version']} vs served v{', v'.join(duel['served_versions'])} on the same rows, "
                         f"{duel['days']} realized date(s): {metric} {duel['shadow_mean']:.4f} vs {duel['served_mean']:.4f} "
                         f"(mean daily improvement {duel['improvement']:+.4f})")
    return "\n".join(lines)
