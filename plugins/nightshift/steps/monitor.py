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
from nightshift.reporting import html as pages
from nightshift.spec import Drift, Pipeline
from nightshift.spec.model import ColumnMonitoring
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
    ("MODE", "string"), ("NULL_RATE_STATUS", "string"), ("NOTE", "string"), ("PSI_WARN", "float64"), ("PSI_FAIL", "float64"), ("DAG_RUN_ID", "string"), ("MONITORED_AT", "timestamp"),
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
    """PSI over the reference's categories; categories it never saw are counted apart (own row), not in the PSI.

    The plot still shows them as one "(unseen)" bar next to the known categories.
    """
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
    known_counts = [reference["counts"][k] for k in known]
    known_actual = [int(current.get(k, 0)) for k in known]
    present = sum(known_actual)
    out = {**_nulls(reference, int(len(text)), int(text.isna().sum())), "ks": None, "unseen_categories": int(unseen.sum()),
           "unseen_examples": ", ".join(map(str, unseen.index[:10])) or None, "_labels": labels, "_expected": expected, "_actual": actual}
    if present == 0:
        return {**out, "psi": None, "psi_noise_floor": None}
    value = drift.psi(known_counts, known_actual)
    return {**out, "psi": value, "psi_noise_floor": _floor(value, known_counts, present, config)}


def _floor(value: float, expected: list[int], rows: int, config: Drift) -> float | None:
    """The noise floor, simulated only when the PSI crosses a threshold (the only time it decides anything)."""
    return drift.noise_floor(expected, rows, config.significance) if value >= config.warn else None


def _bin_labels(edges: list[float]) -> list[str]:
    """Short tick labels: each bin's upper edge, and '>' the last edge for the top bin."""
    return [*(f"≤{e:.3g}" for e in edges), f">{edges[-1]:.3g}" if edges else "all"]


GATE, REPORT, SKIP = "gate", "report", "skip"


def _num(value: float) -> str:
    return f"{value:.4g}"


def _value_label(key: str) -> str:
    """A profile value key ('3.0', 'winter') for people: integral floats without the '.0'."""
    try:
        number = float(key)
    except ValueError:
        return key
    return str(int(number)) if number.is_integer() else _num(number)


def _seen(reference: dict, kind: str, key: str, value: Any) -> tuple[bool, str]:
    """Is a date's main value one the reference holds (a category it saw, a number inside its range)? And what it held."""
    info = reference.get("partition") or {}
    if kind == "categorical":
        held = ", ".join(list(reference["counts"])[:12])
        return key in reference["counts"], f"reference values: {held}"
    low, high = info.get("range") or ([min(reference["sample"]), max(reference["sample"])] if reference.get("sample") else [None, None])
    if low is None:
        return False, "the reference has no values"
    return low <= float(value) <= high, f"reference range {_num(low)}..{_num(high)}"


def judge_value(reference: dict, kind: str, values: Any, psi: float | None, share: float) -> tuple[str, str, bool]:
    """Status, note and whether the value was seen, for a column constant within partitions (see Drift.constant_share).

    A date of such a column carries one piece of information, its main value: it is judged by whether the reference
    holds that value and whether the date is as constant as the reference's partitions were, never by PSI against the
    whole reference (which mixes many partitions' values and which one date always fails).
    """
    import pandas as pd

    info = reference.get("partition") or {}
    series = pd.Series(values)
    present = profiles.as_categories(series).dropna() if kind == "categorical" else pd.to_numeric(series, errors="coerce").dropna()
    chance = "" if info.get("chance") is None else f" (chance alone: {info.get('chance'):.2g})"
    whole = "" if psi is None else f" (which is {psi:.3g})"
    basis = (f"constant within {info.get('constant', 0)} of {info.get('partitions', 0)} reference partitions{chance}: "
             f"judged on its value, not by PSI against the whole reference{whole}")
    if present.empty:
        return drift.EMPTY, f"{basis}; no values on this date", True
    counts = present.value_counts()
    main, top_share = counts.index[0], float(counts.iloc[0]) / len(present)
    key = profiles.value_key(kind, main)
    seen, held = _seen(reference, kind, key, main)
    status, notes = drift.OK, [basis]
    partitions_with = int((info.get("values") or {}).get(key, 0))
    if seen:
        notes.append(f"value {_value_label(key)} is the main value of {partitions_with} reference partitions" if partitions_with
                     else f"value {_value_label(key)} is in the reference ({held})")
    else:
        status = drift.WARN
        notes.append(f"value {_value_label(key)} is not one the reference holds ({held})")
    lowest = info.get("min_top_share")
    if lowest is not None and top_share < min(lowest, share) - 1e-12:
        status = drift.WARN
        notes.append(f"only {top_share:.0%} of the date's rows hold its main value, less than in any reference partition "
                     f"(lowest {lowest:.0%})")
    return status, "; ".join(notes), seen


def _null_note(result: dict, status: str) -> str | None:
    rate, ref = result["null_rate"], result["reference_null_rate"]
    if status not in (drift.WARN, drift.FAIL) or rate is None:
        return None
    if rate == 1.0:
        return f"entirely null on this date (reference {ref:.1%} null)"
    return f"null rate {rate:.1%} vs {ref:.1%} in the reference ({(rate - ref) * 100:+.1f} points)"


def _judge(result: dict, reference: dict, values: Any, setting: ColumnMonitoring, config: Drift) -> list[dict]:
    """Fill status, mode and note of one column's comparison; plus its unseen-categories row when it has one."""
    limits = setting.thresholds(config)
    partition = reference.get("partition") or {}
    by_value = result["kind"] != "score" and (
        setting.compare == "value" or (setting.compare == "auto" and bool(partition.get("constant_within_partition"))))
    mode, notes = setting.mode or GATE, []
    if by_value:
        psi_status, note, seen = judge_value(reference, result["kind"], values, result["psi"], config.constant_share)
        notes.append(note)
        if not seen and setting.mode is None:
            mode = REPORT
            notes.append("reported, not gated: a value new to the reference is not drift of a column constant within partitions "
                         "(set mode: gate to gate it)")
        result.update(psi=None, psi_noise_floor=None, ks=None)
    else:
        psi_status = drift.status(result["psi"], result["psi_noise_floor"] or 0.0, limits["warn"], limits["fail"])
        if setting.compare == "distribution" and partition.get("constant_within_partition"):
            notes.append("constant within reference partitions, but compared by PSI against the whole reference "
                         "(monitoring.columns compare: distribution)")
    rows, nulls = result["partition_rows"], None if result["null_rate"] is None else round(result["null_rate"] * result["partition_rows"])
    null_status = drift.EMPTY if nulls is None else drift.null_status(
        result["reference_null_rate"], result["reference_rows"], nulls, rows, limits["null_warn"], limits["null_fail"], config.significance)
    judged = [s for s in (psi_status, null_status) if s != drift.EMPTY]
    if _null_note(result, null_status):
        notes.append(_null_note(result, null_status))
    if setting.mode == REPORT:
        notes.append("reported, not gated (monitoring.columns mode: report)")
    result.update(status=drift.worst(judged) if judged else drift.EMPTY, null_rate_status=null_status, mode=mode,
                  note="; ".join(notes) or None, psi_warn=limits["warn"], psi_fail=limits["fail"])
    out = [result]
    if result.get("unseen_categories"):
        unseen = {**result, "kind": "unseen", "psi": None, "psi_noise_floor": None, "ks": None, "status": drift.WARN,
                  "null_rate_status": None,
                  "note": f"{result['unseen_categories']} rows in categories the training reference never saw "
                          f"({result['unseen_examples']}); counted apart, not in the PSI"}
        out.append(unseen)
    return out


def _skipped(name: str, kind: str, reference: dict, rows: int) -> dict:
    return {"feature": name, "kind": kind, "partition_rows": rows, "reference_rows": reference["rows"], "psi": None,
            "psi_noise_floor": None, "ks": None, "null_rate": None, "reference_null_rate": reference["null_rate"],
            "null_rate_change": None, "unseen_categories": None, "unseen_examples": None, "status": drift.EMPTY, "mode": SKIP,
            "null_rate_status": None, "note": f"skipped: monitoring.columns.{name}.skip", "psi_warn": None, "psi_fail": None,
            "_labels": [], "_expected": [], "_actual": []}


def compare_partition(reference: dict, frame: "pd.DataFrame", scores: Any, config: Drift,
                      columns: dict[str, ColumnMonitoring] | None = None) -> list[dict]:
    """One result per monitored column present in the frame, then the score's; each with its status, mode and note.

    `columns`: the spec's `monitoring.columns` (per-column skip, mode, comparison and thresholds). A column with
    categories the reference never saw gets a second row (kind `unseen`) with their count and examples.
    """
    columns = columns or {}
    results = []
    for name, ref in reference["columns"].items():
        if name not in frame.columns:
            continue
        setting = columns.get(name) or ColumnMonitoring()
        if setting.skip:
            results.append(_skipped(name, ref["kind"], ref, int(len(frame))))
            continue
        compare = compare_numeric if ref["kind"] == "numeric" else compare_categorical
        limits = setting.thresholds(config)
        column_config = config.model_copy(update={"warn": limits["warn"], "fail": limits["fail"]})
        result = {"feature": name, "kind": ref["kind"], **compare(ref, frame[name], column_config)}
        results += _judge(result, ref, frame[name], setting, config)
    score = {"feature": SCORE, "kind": "score", **compare_numeric(reference["score"], scores, config)}
    results += _judge(score, reference["score"], scores, ColumnMonitoring(), config)
    return results


def day_verdict(results: list[dict]) -> str:
    """A date's verdict: the worst status of its gated rows (reported and skipped rows never count)."""
    return drift.worst([r["status"] for r in results if r.get("mode", GATE) == GATE])


def compare_dates(spec: Pipeline, reference: dict, snapshot: "pd.DataFrame", scores: "pd.DataFrame", dates: list[date]) -> dict:
    """{partition date: results} for every date of the run, including empty ones."""
    return {
        day: compare_partition(reference, snapshot[snapshot[PARTITION_COLUMN] == day],
                               scores.loc[scores["PARTITION_DATE"] == day, "SCORE"], spec.monitoring.drift,
                               spec.monitoring.columns)
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
    """The verdict (worst status of gated rows) and the flagged rows, small enough for XCom and an Asset event's extra.

    `flagged`: gated rows that warn or fail (they decide the verdict and the alerts); `reported`: report-mode rows
    that would have. `psi` is 0.0 for rows flagged on something else (null rate, a value, unseen categories): `reason` says.
    """
    def entry(day: date, r: dict) -> dict:
        return {"partition_date": day.isoformat(), "feature": r["feature"], "kind": r["kind"],
                "psi": 0.0 if r["psi"] is None else round(r["psi"], 4), "status": r["status"], "reason": r.get("note") or "PSI"}

    alarming = [(day, r) for day, results in by_date.items() for r in results if r["status"] in (drift.WARN, drift.FAIL)]
    flagged = [entry(day, r) for day, r in alarming if r.get("mode", GATE) == GATE]
    reported = [entry(day, r) for day, r in alarming if r.get("mode", GATE) == REPORT]
    statuses = [r["status"] for results in by_date.values() for r in results if r.get("mode", GATE) == GATE]
    return {"pipeline": spec.name, "model": f"{spec.name} v{model_ref['model_version']}", "model_version": model_ref["model_version"],
            "partition_dates": [d.isoformat() for d in by_date], "verdict": drift.worst(statuses), "flagged": flagged,
            "reported": reported}


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
    page = pages.render("drift_report.html", spec=spec, day=day, verdict=verdict, model_ref=model_ref, reference=reference,
                        config=config, header=header, results=results, colours=STATUS_COLOURS,
                        image=base64.b64encode(png.read_bytes()).decode())
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


def save_reports(spec: Pipeline, by_date: dict, reference: dict, model_ref: dict, run_dir: str, to_mlflow: bool = True) -> str:
    """One report per date in the run folder and (unless a dry run) in the model version's MLflow run."""
    client = tracking.client() if to_mlflow else None
    with tempfile.TemporaryDirectory() as tmp:
        for day, results in by_date.items():
            local = render_report(spec, day, results, reference, model_ref, Path(tmp) / day.isoformat())
            storage.put_dir(local.parent, f"{run_dir}/monitor/{day.isoformat()}")
            if client is not None:  # a dry run must not overwrite the real report of that date in the model's run
                client.log_artifacts(model_ref["mlflow_run_id"], str(local.parent), f"monitoring/{day.isoformat()}")
    return f"{run_dir}/monitor"


def monitor(spec: Pipeline, ingested: dict, shards: list[dict], model_ref: dict, dag_run_id: str, monitored_at: datetime,
            write: bool = True) -> dict:
    """Compare, report, and (unless `write` is off, as in dry runs) replace the dates' monitoring rows and
    log the reports to the model's MLflow run; a dry run keeps its reports in its own run folder only."""
    dates = [date.fromisoformat(d) for d in ingested["partition_dates"]]
    reference = profiles.load_reference(model_ref["mlflow_run_id"])
    if reference is None:
        return {**summarize(spec, {d: [] for d in dates}, model_ref), "verdict": "no_reference", "report": None, "rows_written": 0}
    snapshot, scores = read_inputs(spec, reference, ingested["snapshot_uri"], shards)
    by_date = compare_dates(spec, reference, snapshot, scores, dates)
    rows = table_rows(spec, by_date, model_ref, dag_run_id, monitored_at)
    written = publish_rows(spec, rows, dates) if write else 0
    summary = {**summarize(spec, by_date, model_ref), "report": save_reports(spec, by_date, reference, model_ref, ingested["run_dir"], to_mlflow=write),
               "rows_written": written, "table": monitoring_table(spec)}
    log.info("drift %s for %s: %d monitoring rows; flagged %s", summary["verdict"], summary["partition_dates"], written, summary["flagged"])
    return summary
