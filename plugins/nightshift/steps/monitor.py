"""Monitor: compare each scored partition with the model version's reference profile.

Per partition date and monitored column: PSI against the reference bins (plus the KS statistic for
numeric columns), the null rate against the reference's, and categories the reference never saw;
the same for the score distribution. Rows go to `<OUTPUT_TABLE>_MONITORING` under the same rules as
scores (one transaction replaces the dates' rows, so reruns never duplicate), and one HTML report
per date goes to the run folder and to the model version's MLflow run under
`monitoring/<partition_date>/`: next to the reference it was compared with, and a rerun of a date
overwrites its report instead of adding another.
"""

from __future__ import annotations

import base64
import html
import logging
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.io import storage, tracking
from nightshift.io.warehouse import get_warehouse
from nightshift.ml import drift
from nightshift.spec import Drift, Pipeline
from nightshift.steps import profile as profiles
from nightshift.steps.score import PARTITION_COLUMN

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)
TABLE_SUFFIX = "_MONITORING"
SCORE = profiles.SCORE
COLUMNS = [  # (name, arrow type name): the monitoring table, one row per column per partition date
    ("MODEL_NAME", "string"), ("MODEL_VERSION", "string"), ("MLFLOW_RUN_ID", "string"), ("PARTITION_DATE", "date32"),
    ("FEATURE", "string"), ("KIND", "string"), ("PARTITION_ROWS", "int64"), ("REFERENCE_ROWS", "int64"), ("PSI", "float64"),
    ("PSI_NOISE_FLOOR", "float64"), ("KS", "float64"), ("NULL_RATE", "float64"), ("REFERENCE_NULL_RATE", "float64"),
    ("NULL_RATE_CHANGE", "float64"), ("UNSEEN_CATEGORIES", "int64"), ("UNSEEN_EXAMPLES", "string"), ("STATUS", "string"),
    ("PSI_WARN", "float64"), ("PSI_FAIL", "float64"), ("DAG_RUN_ID", "string"), ("MONITORED_AT", "timestamp"),
]


def monitoring_table(spec: Pipeline) -> str:
    return f"{spec.scoring.output_table}{TABLE_SUFFIX}"


def table_schema() -> "pa.Schema":
    import pyarrow as pa

    types = {"string": pa.string(), "date32": pa.date32(), "int64": pa.int64(), "float64": pa.float64(),
             "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS])


# --- comparisons (plain pandas / numpy) ------------------------------------------------------

def _floats(values: Any) -> Any:
    import numpy as np
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _nulls(reference: dict, rows: int, nulls: int) -> dict:
    rate = nulls / rows if rows else None
    return {"partition_rows": rows, "reference_rows": reference["rows"], "null_rate": rate, "reference_null_rate": reference["null_rate"],
            "null_rate_change": None if rate is None else rate - reference["null_rate"]}


def compare_numeric(reference: dict, values: Any, config: Drift) -> dict:
    """PSI over the reference's quantile bins, its noise floor, and the KS statistic (nulls apart)."""
    import numpy as np

    array = _floats(values)
    present = array[~np.isnan(array)]
    counts = drift.bin_counts(present, reference["edges"])
    out = {**_nulls(reference, int(array.size), int(array.size - present.size)), "unseen_categories": None, "unseen_examples": None,
           "_labels": _bin_labels(reference["edges"]), "_expected": reference["counts"], "_actual": counts}
    if present.size == 0:
        return {**out, "psi": None, "psi_noise_floor": None, "ks": None}
    value = drift.psi(reference["counts"], counts)
    return {**out, "psi": value, "ks": drift.ks_statistic(reference["sample"], present),
            "psi_noise_floor": _floor(value, reference["counts"], int(present.size), config)}


def compare_categorical(reference: dict, values: Any, config: Drift) -> dict:
    """PSI over the reference's categories, plus one bin for categories it never saw (when present)."""
    import pandas as pd

    text = profiles.as_categories(pd.Series(values))
    current = text.dropna().value_counts()
    known = list(reference["counts"])
    unseen = current[~current.index.isin(known)]
    expected = [reference["counts"][k] for k in known]
    actual = [int(current.get(k, 0)) for k in known]
    labels = list(known)
    if len(unseen):
        expected, actual, labels = [*expected, 0], [*actual, int(unseen.sum())], [*labels, "(unseen)"]
    present = int(current.sum())
    out = {**_nulls(reference, int(len(text)), int(text.isna().sum())), "ks": None, "unseen_categories": int(unseen.sum()),
           "unseen_examples": ", ".join(map(str, unseen.index[:10])) or None, "_labels": labels, "_expected": expected, "_actual": actual}
    if present == 0:
        return {**out, "psi": None, "psi_noise_floor": None}
    value = drift.psi(expected, actual)
    return {**out, "psi": value, "psi_noise_floor": _floor(value, list(reference["counts"].values()), present, config)}


def _floor(value: float, expected: list[int], rows: int, config: Drift) -> float | None:
    """The noise floor, simulated only when the PSI crosses a threshold (the only time it decides anything)."""
    return drift.noise_floor(expected, rows, config.significance) if value >= config.warn else None


def _bin_labels(edges: list[float]) -> list[str]:
    """Short tick labels: each bin's upper edge, and '>' the last edge for the top bin."""
    return [*(f"≤{e:.3g}" for e in edges), f">{edges[-1]:.3g}" if edges else "all"]


def compare_partition(reference: dict, frame: "pd.DataFrame", scores: Any, config: Drift) -> list[dict]:
    """One result per monitored column present in the frame, then the score's; each with its status."""
    results = []
    for name, ref in reference["columns"].items():
        if name in frame.columns:
            compare = compare_numeric if ref["kind"] == "numeric" else compare_categorical
            results.append({"feature": name, "kind": ref["kind"], **compare(ref, frame[name], config)})
    results.append({"feature": SCORE, "kind": "score", **compare_numeric(reference["score"], scores, config)})
    for result in results:
        result["status"] = drift.status(result["psi"], result["psi_noise_floor"] or 0.0, config.warn, config.fail)
    return results


def compare_dates(spec: Pipeline, reference: dict, snapshot: "pd.DataFrame", scores: "pd.DataFrame", dates: list[date]) -> dict:
    """{partition date: results} for every date of the run, including empty ones."""
    return {
        day: compare_partition(reference, snapshot[snapshot[PARTITION_COLUMN] == day],
                               scores.loc[scores["PARTITION_DATE"] == day, "SCORE"], spec.monitoring.drift)
        for day in dates
    }


# --- rows, summary, report ---------------------------------------------------------------------

def table_rows(spec: Pipeline, by_date: dict, model_ref: dict, dag_run_id: str, monitored_at: datetime) -> list[dict]:
    """The monitoring table's rows (upper-case columns), lineage included."""
    config = spec.monitoring.drift
    rows = []
    for day, results in by_date.items():
        for r in results:
            rows.append({
                "MODEL_NAME": spec.name, "MODEL_VERSION": model_ref["model_version"], "MLFLOW_RUN_ID": model_ref["mlflow_run_id"],
                "PARTITION_DATE": day, "PSI_WARN": config.warn, "PSI_FAIL": config.fail, "DAG_RUN_ID": dag_run_id,
                "MONITORED_AT": monitored_at, **{k.upper(): v for k, v in r.items() if not k.startswith("_")},
            })
    return rows


def summarize(spec: Pipeline, by_date: dict, model_ref: dict) -> dict:
    """The verdict (worst status) and the flagged columns, small enough for XCom and an Asset event's extra."""
    flagged = [{"partition_date": day.isoformat(), "feature": r["feature"], "psi": round(r["psi"], 4), "status": r["status"]}
               for day, results in by_date.items() for r in results if r["status"] in (drift.WARN, drift.FAIL)]
    statuses = [r["status"] for results in by_date.values() for r in results]
    return {"pipeline": spec.name, "model": f"{spec.name} v{model_ref['model_version']}", "model_version": model_ref["model_version"],
            "partition_dates": [d.isoformat() for d in by_date], "verdict": drift.worst(statuses), "flagged": flagged}


STATUS_COLOURS = {drift.OK: "#e6f4ea", drift.WARN: "#fff4ce", drift.FAIL: "#fde0dc", drift.EMPTY: "#eeeeee"}
BAR_COLOURS = {drift.OK: "#5b8def", drift.WARN: "#f0ad4e", drift.FAIL: "#d9534f", drift.EMPTY: "#5b8def"}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def plot(results: list[dict], title: str, path: Path, config: Drift) -> Path:
    """PSI per column against the thresholds, then reference vs current bin shares for each flagged column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flagged = [r for r in results if r["status"] in (drift.WARN, drift.FAIL)][:9]
    rows = 1 + -(-len(flagged) // 3)
    fig = plt.figure(figsize=(11, 3.2 + 2.4 * (rows - 1)))
    grid = fig.add_gridspec(rows, 3, hspace=0.7, wspace=0.25, left=0.12, right=0.98, top=0.9, bottom=0.08)
    _psi_overview(fig.add_subplot(grid[0, :]), results, config)
    for i, r in enumerate(flagged):
        _shares_panel(fig.add_subplot(grid[1 + i // 3, i % 3]), r)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def _psi_overview(ax, results: list[dict], config: Drift) -> None:
    names = [r["feature"] for r in results]
    values = [r["psi"] or 0.0 for r in results]
    ax.barh(names, values, color=[BAR_COLOURS[r["status"]] for r in results])
    ax.axvline(config.warn, color="#f0ad4e", linestyle="--", linewidth=1)
    ax.axvline(config.fail, color="#d9534f", linestyle="--", linewidth=1)
    floors = [(r["psi_noise_floor"], i) for i, r in enumerate(results) if r["psi_noise_floor"] is not None]
    if floors:
        ax.scatter(*zip(*floors), marker="|", s=120, color="black", label="noise floor", zorder=3)
        ax.legend(fontsize=7, loc="lower right")
    ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    ax.set_xlabel("PSI vs training reference", fontsize=8)


def _shares_panel(ax, r: dict) -> None:
    import numpy as np

    x = np.arange(len(r["_labels"]))
    ax.bar(x - 0.2, drift.shares(r["_expected"]), 0.4, label="reference", color="#9aa5b1")
    ax.bar(x + 0.2, drift.shares(r["_actual"]), 0.4, label="this date", color=BAR_COLOURS[r["status"]])
    ax.set_title(f"{r['feature']}  PSI {_fmt(r['psi'])} ({r['status']})", fontsize=8)
    step = max(1, len(x) // 5)  # every label would overlap
    ax.set_xticks(x[::step], r["_labels"][::step], fontsize=6, rotation=20)
    ax.tick_params(axis="y", labelsize=6)
    ax.legend(fontsize=6)


def render_report(spec: Pipeline, day: date, results: list[dict], reference: dict, model_ref: dict, out_dir: Path) -> Path:
    """A self-contained HTML page (the plot is embedded) for one partition date."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = spec.monitoring.drift
    verdict = drift.worst([r["status"] for r in results])
    png = plot(results, f"{spec.name} {day} vs v{model_ref['model_version']} reference: {verdict.upper()}", out_dir / "drift.png", config)
    header = ["column", "kind", "rows", "PSI", "noise floor", "KS", "null rate", "reference null rate", "unseen", "status"]
    body = "".join(
        f"<tr style='background:{STATUS_COLOURS[r['status']]}'><td>{html.escape(r['feature'])}</td><td>{r['kind']}</td><td>{r['partition_rows']}</td>"
        f"<td>{_fmt(r['psi'])}</td><td>{_fmt(r['psi_noise_floor'])}</td><td>{_fmt(r['ks'])}</td><td>{_fmt(r['null_rate'])}</td>"
        f"<td>{_fmt(r['reference_null_rate'])}</td><td>{_fmt(r['unseen_examples'] or r['unseen_categories'])}</td><td><b>{r['status']}</b></td></tr>"
        for r in results
    )
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{spec.name} drift {day}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}</style>
</head><body><h2>{html.escape(spec.name)}: drift on {day} &mdash; {verdict.upper()}</h2>
<p>Model {html.escape(spec.name)} v{model_ref['model_version']} (MLflow run {model_ref['mlflow_run_id']}); reference: {reference['rows']} held-out rows
from training, {reference['bins']} quantile bins. PSI warns at {config.warn} and fails at {config.fail}, but only above the
<i>noise floor</i>: the PSI that this many rows drawn from the reference itself exceed with probability {config.significance}
(simulated when the PSI reaches a threshold; "-" otherwise).</p>
<table><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr>{body}</table>
<p><img alt="reference vs current shares" src="data:image/png;base64,{image}"></p></body></html>"""
    report = out_dir / "report.html"
    report.write_text(page, encoding="utf-8")
    return report


# --- the step ---------------------------------------------------------------------------------

def read_inputs(spec: Pipeline, reference: dict, snapshot_uri: str, shards: list[dict]) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """The monitored columns of the run's snapshot, and SCORE with PARTITION_DATE from the staged shards."""
    import pandas as pd

    columns = [c for c in reference["columns"] if c in spec.columns and c != spec.target.column]
    snapshot = storage.read_parquet(snapshot_uri, columns=[*columns, PARTITION_COLUMN])
    frames = [storage.read_parquet(s["uri"], columns=["SCORE", "PARTITION_DATE"]) for s in sorted(shards, key=lambda s: s["index"])]
    return snapshot, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"SCORE": [], "PARTITION_DATE": []})


def publish_rows(spec: Pipeline, rows: list[dict], dates: list[date]) -> int:
    """Replace the dates' monitoring rows in one transaction (the warehouse's publish, as for scores)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = table_schema()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/monitoring.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return get_warehouse(spec.scoring.warehouse_conn_id).publish(monitoring_table(spec), schema, [path], spec.name, dates, len(rows))


def save_reports(spec: Pipeline, by_date: dict, reference: dict, model_ref: dict, run_dir: str) -> str:
    """One report per date in the run folder and in the model version's MLflow run."""
    client = tracking.client()
    with tempfile.TemporaryDirectory() as tmp:
        for day, results in by_date.items():
            local = render_report(spec, day, results, reference, model_ref, Path(tmp) / day.isoformat())
            storage.put_dir(local.parent, f"{run_dir}/monitor/{day.isoformat()}")
            client.log_artifacts(model_ref["mlflow_run_id"], str(local.parent), f"monitoring/{day.isoformat()}")
    return f"{run_dir}/monitor"


def monitor(spec: Pipeline, ingested: dict, shards: list[dict], model_ref: dict, dag_run_id: str, monitored_at: datetime,
            write: bool = True) -> dict:
    """Compare, report, and (unless `write` is off, as in dry runs) replace the dates' monitoring rows."""
    dates = [date.fromisoformat(d) for d in ingested["partition_dates"]]
    reference = profiles.load_reference(model_ref["mlflow_run_id"])
    if reference is None:
        return {**summarize(spec, {d: [] for d in dates}, model_ref), "verdict": "no_reference", "report": None, "rows_written": 0}
    snapshot, scores = read_inputs(spec, reference, ingested["snapshot_uri"], shards)
    by_date = compare_dates(spec, reference, snapshot, scores, dates)
    rows = table_rows(spec, by_date, model_ref, dag_run_id, monitored_at)
    written = publish_rows(spec, rows, dates) if write else 0
    summary = {**summarize(spec, by_date, model_ref), "report": save_reports(spec, by_date, reference, model_ref, ingested["run_dir"]),
               "rows_written": written, "table": monitoring_table(spec)}
    log.info("drift %s for %s: %d monitoring rows; flagged %s", summary["verdict"], summary["partition_dates"], written, summary["flagged"])
    return summary
