"""Performance: estimated (CBPE) and realized metrics of the published scores, per partition date and model version.

A scoring run covering dates D evaluates the set D ∪ {d - training.label_delay_days for d in D}: the scores published
in the warehouse for each of those dates are read back; every date gets its ESTIMATED rows (binary tasks: confidence-
based estimation from the scores alone), and a date whose labels have matured as of the run (d + label_delay_days
within the run's dates) gets its REALIZED rows too: the scores joined by source.entity_key with the labels (the source
rows of that date, or `monitoring.performance.labels`), the spec's metrics with a seeded bootstrap interval, against the
version's held-out value (MLflow `test_<metric>`) as BASELINE.

The rows of a date are a function of the scores published for it (and its labels), so they are written like scores:
one transaction replaces every evaluated date's rows in `<OUTPUT_TABLE>_PERFORMANCE` (MODEL_NAME + PARTITION_DATE),
and rerunning a run gives one set of rows, never two. Rescoring an old date replaces its scores, so its realized rows
(computed on the old scores) are replaced by estimated ones until the run `label_delay_days` later is rerun.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.io.warehouse import get_warehouse
from nightshift.ml import performance as perf
from nightshift.ml.modelling import target_values
from nightshift.spec import Pipeline
from nightshift.steps import ingest
from nightshift.steps.shadow import shadow_table

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)
TABLE_SUFFIX = "_PERFORMANCE"
REALIZED, ESTIMATED = "realized", "estimated"
SERVED, SHADOW = "served", "shadow"  # ROLE: scores of the main table (what consumers read) or of <OUTPUT_TABLE>_SHADOW
OK, DEGRADED, WARN, REPORTED, NO_LABELS = "ok", "degraded", "warn", "reported", "no_labels"
ECE_METRIC = "calibration_ece"
HISTORY_DAYS = 60
COLUMNS = [  # (name, arrow type name): one row per metric, kind, model version and partition date
    ("MODEL_NAME", "string"), ("MODEL_VERSION", "string"), ("ROLE", "string"), ("MLFLOW_RUN_ID", "string"), ("PARTITION_DATE", "date32"),
    ("METRIC", "string"), ("KIND", "string"), ("VALUE", "float64"), ("LOWER", "float64"), ("UPPER", "float64"),
    ("ROWS", "int64"), ("SCORED_ROWS", "int64"), ("BASELINE", "float64"), ("MAX_DROP", "float64"), ("STATUS", "string"),
    ("NOTE", "string"), ("DAG_RUN_ID", "string"), ("COMPUTED_AT", "timestamp"),
]


def performance_table(spec: Pipeline) -> str:
    return f"{spec.scoring.output_table}{TABLE_SUFFIX}"


def table_schema() -> "pa.Schema":
    import pyarrow as pa

    types = {"string": pa.string(), "date32": pa.date32(), "int64": pa.int64(), "float64": pa.float64(),
             "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS])


def supported(spec: Pipeline) -> bool:
    """Binary (estimated and realized) and regression (realized) tasks; multiclass scores keep no full probabilities."""
    return spec.target.task in ("binary", "regression")


def deciding_metric(spec: Pipeline) -> str:
    return spec.monitoring.performance.metric or spec.metrics[0]


def estimated_metrics(spec: Pipeline) -> list[str]:
    if spec.target.task != "binary":
        return []
    wanted = [*spec.metrics, deciding_metric(spec), "accuracy", "precision", "recall"]
    return [m for m in dict.fromkeys(wanted) if m in perf.ESTIMABLE]


def realized_metrics(spec: Pipeline) -> list[str]:
    return list(dict.fromkeys([*spec.metrics, deciding_metric(spec), *estimated_metrics(spec)]))


def matured_dates(spec: Pipeline, dates: list[date]) -> list[date]:
    """The dates whose labels have matured as of a run scoring `dates`: each minus training.label_delay_days."""
    return sorted({d - timedelta(days=spec.training.label_delay_days) for d in dates})


# --- inputs ------------------------------------------------------------------------------------

def _read_table(spec: Pipeline, table: str, dates: list[date], role: str, keyed: set[date]) -> "pd.DataFrame":
    """Scores and lineage of `dates`; the entity key only for the `keyed` dates (those joined with labels), so a large
    day that is only estimated never holds its keys in memory."""
    import numpy as np
    import pandas as pd

    keys = [k.upper() for k in spec.source.entity_key]
    lineage = ["SCORE", "MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE"]
    warehouse = get_warehouse(spec.scoring.warehouse_conn_id)
    with_keys, without = sorted(d for d in dates if d in keyed), sorted(d for d in dates if d not in keyed)
    coded = ("MODEL_VERSION", "MLFLOW_RUN_ID", "PARTITION_DATE")
    parts = [frame for frame in (warehouse.read_rows(table, spec.name, with_keys, [*keys, *lineage], coded) if with_keys else None,
                                 warehouse.read_rows(table, spec.name, without, lineage, coded) if without else None)
             if frame is not None and not frame.empty]
    if not parts:
        return pd.DataFrame(columns=[*keys, *lineage, "ROLE"])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _compact(frame).assign(ROLE=pd.Categorical.from_codes(np.zeros(len(frame), dtype="int8"), [role]))


def _compact(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Lineage columns as categoricals (a handful of values over millions of rows): a 2M-row day read for served and
    shadow scores held one Python date and two strings per row (+850 MiB for 4.3M rows)."""
    import pandas as pd

    day = frame["PARTITION_DATE"].astype("category")
    day = day.cat.rename_categories([pd.Timestamp(c).date() for c in day.cat.categories])
    version = frame["MODEL_VERSION"].astype("category")
    version = version.cat.rename_categories([str(c) for c in version.cat.categories])
    return frame.assign(PARTITION_DATE=day, MODEL_VERSION=version, MLFLOW_RUN_ID=frame["MLFLOW_RUN_ID"].astype("category"))


def read_scores(spec: Pipeline, dates: list[date], keyed: set[date] | None = None) -> "pd.DataFrame":
    """The scores of `dates` with their lineage (and keys for the `keyed` dates, default all), PARTITION_DATE as dates:
    the published (served) scores and, with `scoring.shadow`, the shadow versions' scores of the same rows, so
    challenger and champion are judged on the same rows."""
    import pandas as pd

    keyed = set(dates) if keyed is None else keyed
    served = _read_table(spec, spec.scoring.output_table, dates, SERVED, keyed)
    if not spec.scoring.shadow:
        return served
    shadow = _read_table(spec, shadow_table(spec), dates, SHADOW, keyed)
    shadow = shadow[~shadow["MODEL_VERSION"].isin(set(served["MODEL_VERSION"]))]  # a version served that day is judged once
    if shadow.empty:
        return served
    from pandas.api.types import union_categoricals

    columns = ["PARTITION_DATE", "MODEL_VERSION", "MLFLOW_RUN_ID", "ROLE"]
    merged = {c: union_categoricals([served[c].astype("category"), shadow[c].astype("category")]) for c in columns}
    both = pd.concat([served.drop(columns=columns), shadow.drop(columns=columns)], ignore_index=True)
    return both.assign(**merged)[[*served.columns]]


def _label_files(spec: Pipeline) -> "pd.DataFrame":
    """Every file of monitoring.performance.labels (one file or a flat folder), keys and target only."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    config = spec.monitoring.performance.labels
    root = storage.locate(config.uri)
    if not storage.exists(root):
        raise ingest.IngestError(f"{root.display}: labels not found (monitoring.performance.labels.uri)")
    files = [root.child(p.rsplit("/", 1)[-1]) for p, _ in storage.list_files(root)] if storage.is_dir(root) else [root]
    files = [f for f in files if f.path.endswith(f".{config.format}")]
    columns = [*spec.source.entity_key, spec.target.column]
    frames = []
    for loc in files:
        if config.format == "parquet":
            frames.append(pq.read_table(loc.path, filesystem=loc.fs, columns=columns).to_pandas())
        else:
            with loc.fs.open_input_stream(loc.path) as stream:
                frames.append(pd.read_csv(io.BytesIO(stream.read()), usecols=columns, sep=spec.source.csv.delimiter))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def read_labels(spec: Pipeline, day: date, cache: dict | None = None) -> tuple["pd.DataFrame | None", str | None]:
    """(keys + target of the rows labelled for `day`, None) or (None, why not): the source rows of that day, the
    whole source without event_time, or the separate labels files."""
    cache = {} if cache is None else cache
    columns = [*spec.source.entity_key, spec.target.column]
    try:
        if spec.monitoring.performance.labels is not None:
            if "files" not in cache:
                cache["files"] = _label_files(spec)
            rows = cache["files"]
        elif spec.source.event_time:
            start = ingest.utc(day)
            rows, _ = ingest.read_rows(spec, ingest.Window(start, start + timedelta(days=1)), with_target=True, require_all=False)
        else:
            if "source" not in cache:
                cache["source"] = ingest.read_rows(spec, None, with_target=True, require_all=False)[0]
            rows = cache["source"]
    except ingest.IngestError as exc:
        return None, f"labels unavailable: {exc}"
    if rows.empty or spec.target.column not in rows.columns:
        return None, "labels unavailable: no labelled rows for this date"
    return rows[columns].dropna(subset=[spec.target.column]), None


def join_labels(spec: Pipeline, scores: "pd.DataFrame", labels: "pd.DataFrame") -> tuple[Any, Any]:
    """(labels as the metrics see them, scores) of the scored rows that have a label, matched by entity key as text."""
    keys = list(spec.source.entity_key)
    left = scores.assign(**{f"__k{i}": scores[k.upper()].astype(str) for i, k in enumerate(keys)})
    right = labels.assign(**{f"__k{i}": labels[k].astype(str) for i, k in enumerate(keys)})
    right = right.drop_duplicates([f"__k{i}" for i in range(len(keys))], keep="last")
    joined = left.merge(right[[*(f"__k{i}" for i in range(len(keys))), spec.target.column]], on=[f"__k{i}" for i in range(len(keys))])
    return target_values(spec, joined), joined["SCORE"].to_numpy(dtype="float64")


def version_metrics(run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each version's MLflow run metrics (held-out `test_<metric>`, `calibration_ece`); {} for a run that cannot be read."""
    client = tracking.client()
    out = {}
    for run_id in run_ids:
        try:
            out[run_id] = dict(client.get_run(run_id).data.metrics)
        except Exception as exc:  # noqa: BLE001 - a missing baseline is reported on the rows, not a failed run
            log.warning("metrics of MLflow run %s unavailable: %s", run_id, exc)
            out[run_id] = {}
    return out


# --- rows --------------------------------------------------------------------------------------

def _clean(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _row(spec: Pipeline, base: dict, metric: str, kind: str, value: float | None, interval: tuple, rows: int, baseline: float | None,
         status: str, note: str | None) -> dict:
    return {**base, "METRIC": metric, "KIND": kind, "VALUE": _clean(value), "LOWER": _clean(interval[0]), "UPPER": _clean(interval[1]),
            "ROWS": int(rows), "BASELINE": _clean(baseline), "MAX_DROP": spec.monitoring.performance.max_drop, "STATUS": status,
            "NOTE": note}


def _status(spec: Pipeline, metric: str, kind: str, value: float | None, baseline: float | None, rows: int) -> str:
    config = spec.monitoring.performance
    if metric != deciding_metric(spec):
        return REPORTED
    found = perf.status(metric, value, baseline, config.max_drop, rows, config.min_rows)
    return WARN if kind == ESTIMATED and found == DEGRADED else found


def estimated_rows(spec: Pipeline, base: dict, scores: Any, run_metrics: dict, seed: int) -> list[dict]:
    """CBPE point estimate and interval of each estimable metric (binary tasks)."""
    names = estimated_metrics(spec)
    if not names:
        return []
    config = spec.monitoring.performance
    threshold = spec.evaluation.threshold
    values = perf.estimate(names, scores, threshold)
    intervals = perf.estimate_interval(names, scores, threshold=threshold, resamples=config.resamples,
                                       confidence=config.confidence, seed=seed)
    ece = run_metrics.get(ECE_METRIC)
    note = (f"held-out calibration error (ECE) {ece:.3f} is above max_ece {config.max_ece}: the estimate cannot be trusted"
            if ece is not None and ece > config.max_ece else None)
    return [_row(spec, base, m, ESTIMATED, values[m], intervals[m], len(scores), run_metrics.get(f"test_{m}"),
                 _status(spec, m, ESTIMATED, values[m], run_metrics.get(f"test_{m}"), len(scores)), note) for m in names]


def realized_rows(spec: Pipeline, base: dict, y: Any, scores: Any, run_metrics: dict, seed: int, scored: int) -> list[dict]:
    """The spec's metrics on the labelled rows, with a bootstrap interval and the version's held-out value."""
    from nightshift.ml import metrics

    config = spec.monitoring.performance
    names = realized_metrics(spec)
    values = metrics.compute(spec.target.task, names, y, scores, spec.evaluation.threshold) if len(y) else {m: None for m in names}
    intervals = perf.bootstrap(spec.target.task, names, y, scores, threshold=spec.evaluation.threshold, resamples=config.resamples,
                               confidence=config.confidence, seed=seed)
    note = f"{len(y)} of {scored} scored rows labelled" if len(y) < scored else None
    return [_row(spec, base, m, REALIZED, values[m], intervals[m], len(y), run_metrics.get(f"test_{m}"),
                 _status(spec, m, REALIZED, values[m], run_metrics.get(f"test_{m}"), len(y)), note) for m in names]


def evaluate(spec: Pipeline, scores: "pd.DataFrame", realize: set[date], dag_run_id: str, computed_at: datetime) -> list[dict]:
    """Every row for the published scores (one or more dates and versions); realized for the dates in `realize`."""
    rows, cache = [], {}
    run_metrics = version_metrics(sorted(scores["MLFLOW_RUN_ID"].dropna().unique()))
    for day in sorted(scores["PARTITION_DATE"].unique()):
        labels, why = read_labels(spec, day, cache) if day in realize else (None, None)
        for (version, role, run_id), frame in scores[scores["PARTITION_DATE"] == day].groupby(["MODEL_VERSION", "ROLE", "MLFLOW_RUN_ID"], observed=True):
            base = {"MODEL_NAME": spec.name, "MODEL_VERSION": str(version), "ROLE": role, "MLFLOW_RUN_ID": run_id, "PARTITION_DATE": day,
                    "SCORED_ROWS": len(frame), "DAG_RUN_ID": dag_run_id, "COMPUTED_AT": computed_at}
            seed = spec.training.seed + day.toordinal()
            values = frame["SCORE"].to_numpy(dtype="float64")
            rows += estimated_rows(spec, base, values, run_metrics[run_id], seed)
            if day not in realize:
                continue
            if labels is None:
                rows += [_row(spec, base, m, REALIZED, None, (None, None), 0, run_metrics[run_id].get(f"test_{m}"), NO_LABELS, why)
                         for m in realized_metrics(spec)]
                continue
            y, s = join_labels(spec, frame, labels)
            rows += realized_rows(spec, base, y, s, run_metrics[run_id], seed, len(frame))
    return rows


def publish_rows(spec: Pipeline, rows: list[dict], dates: list[date]) -> int:
    """Replace the dates' performance rows in one transaction (the warehouse's publish, as for scores)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = table_schema()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/performance.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return get_warehouse(spec.scoring.warehouse_conn_id).publish(performance_table(spec), schema, [path], spec.name, dates, len(rows))


def history(spec: Pipeline, last: date, days: int = HISTORY_DAYS) -> "pd.DataFrame":
    """The performance rows of the `days` dates up to `last`, for the report and `nightshift status`."""
    import pandas as pd

    dates = [last - timedelta(days=i) for i in range(days)]
    frame = get_warehouse(spec.scoring.warehouse_conn_id).read_rows(performance_table(spec), spec.name, dates)
    if not frame.empty:
        frame = frame.assign(PARTITION_DATE=pd.to_datetime(frame["PARTITION_DATE"]).dt.date)
    return frame


def live_comparison(spec: Pipeline, frame: "pd.DataFrame", after: dict[str, date] | None = None) -> list[dict]:
    """Each shadow version against the version served on the same dates: the realized deciding metric on the dates both
    have a value (after `after[version]`, e.g. its training window end), and the mean daily improvement of the shadow
    version (positive = better, in the metric's direction). Both were scored on the same rows, so this is a fair duel."""
    from nightshift.ml.metrics import improvement

    if frame is None or frame.empty or "ROLE" not in frame.columns:
        return []
    metric, after = deciding_metric(spec), after or {}
    realized = frame[(frame["METRIC"] == metric) & (frame["KIND"] == REALIZED) & frame["VALUE"].notna()]
    served = realized[realized["ROLE"] == SERVED].set_index("PARTITION_DATE")
    duels = []
    for version, shadow in realized[realized["ROLE"] == SHADOW].groupby("MODEL_VERSION"):
        since = after.get(str(version))
        paired = [(d, v, served.loc[[d]]) for d, v in zip(shadow["PARTITION_DATE"], shadow["VALUE"])
                  if d in served.index and (since is None or d > since)]
        days = [(d, float(v), float(s["VALUE"].iloc[0]), str(s["MODEL_VERSION"].iloc[0])) for d, v, s in paired]
        gains = [improvement(metric, mine, theirs) for _, mine, theirs, _ in days]
        duels.append({"shadow_version": str(version), "served_versions": sorted({v for *_, v in days}), "metric": metric,
                      "days": len(days), "dates": [d.isoformat() for d, *_ in days],
                      "shadow_mean": sum(m for _, m, _, _ in days) / len(days) if days else None,
                      "served_mean": sum(t for _, _, t, _ in days) / len(days) if days else None,
                      "improvement": sum(gains) / len(gains) if gains else None})
    return duels


def summarize(spec: Pipeline, rows: list[dict], dates: list[date], realize: set[date], scored: set[date]) -> dict:
    """Small enough for XCom and an Asset event's extra: what was evaluated, and the degraded realized values."""
    decide = deciding_metric(spec)
    degraded = [{"partition_date": r["PARTITION_DATE"].isoformat(), "model_version": r["MODEL_VERSION"], "metric": r["METRIC"],
                 "value": round(r["VALUE"], 4), "lower": r["LOWER"] and round(r["LOWER"], 4),
                 "upper": r["UPPER"] and round(r["UPPER"], 4), "baseline": round(r["BASELINE"], 4), "rows": r["ROWS"]}
                for r in rows if r["STATUS"] == DEGRADED]
    kinds = {k: sorted({r["PARTITION_DATE"].isoformat() for r in rows if r["KIND"] == k}) for k in (ESTIMATED, REALIZED)}
    return {"pipeline": spec.name, "metric": decide, "max_drop": spec.monitoring.performance.max_drop,
            "partition_dates": [d.isoformat() for d in dates], "estimated_dates": kinds[ESTIMATED], "realized_dates": kinds[REALIZED],
            "not_scored": sorted(d.isoformat() for d in realize - scored), "degraded": degraded,
            "verdict": DEGRADED if degraded else OK, "table": performance_table(spec)}


def message(summary: dict) -> str:
    """One readable alert paragraph for the degraded values."""
    parts = [f"{d['metric']} {d['value']:.3f} [{d['lower']}, {d['upper']}] on {d['partition_date']} (v{d['model_version']}, "
             f"{d['rows']} labelled rows) vs held-out {d['baseline']:.3f}" for d in summary["degraded"]]
    return (f"{summary['pipeline']}: realized performance DEGRADED (more than {summary['max_drop']} below the held-out value): "
            f"{'; '.join(parts)}. Report: {summary.get('report')}")


def performance(spec: Pipeline, ingested: dict, dag_run_id: str, computed_at: datetime, write: bool = True) -> dict:
    """Evaluate the run's dates (estimated) and the dates whose labels matured (realized); replace their rows; report."""
    from nightshift.reporting import performance as report

    run_dates = [date.fromisoformat(d) for d in ingested["partition_dates"]]
    realize = set(matured_dates(spec, run_dates))  # a long run's early dates may be matured too: realized as well
    dates = sorted(set(run_dates) | realize)
    scores = read_scores(spec, dates, keyed=realize)
    rows = evaluate(spec, scores, realize, dag_run_id, computed_at) if not scores.empty else []
    written = publish_rows(spec, rows, dates) if write else 0
    summary = summarize(spec, rows, dates, realize, set(scores["PARTITION_DATE"]))
    frame = history(spec, max(dates)) if write else None
    if frame is None or frame.empty:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=[c for c, _ in COLUMNS])
    with tempfile.TemporaryDirectory() as tmp:
        local = report.save(spec, frame, summary, Path(tmp), live_comparison(spec, frame))
        uri = storage.put_file(local, f"{ingested['run_dir']}/performance/report.html")
    summary = {**summary, "rows_written": written, "report": uri}
    log.info("performance %s: estimated %s, realized %s, %d rows; degraded %s", summary["verdict"], summary["estimated_dates"],
             summary["realized_dates"], written, summary["degraded"])
    return summary
