"""Monitor: compare each scored partition with the model version's reference profile.

Per partition date and monitored column: PSI against the reference bins (plus the KS statistic for
numeric columns), the null rate against the reference's, and categories the reference never saw;
the same for the score distribution. Rows go to `<OUTPUT_TABLE>_MONITORING` under the same rules as
scores (one transaction replaces the dates' rows, so reruns never duplicate), and one HTML report
per date goes to the run folder and to the model version's MLflow run under
`monitoring/<partition_date>/`: next to the reference it was compared with, and a rerun of a date
overwrites its report instead of adding another.

The snapshot and the staged score shards are read record batch by record batch (only the monitored columns),
and each date's statistics are counts that add up over batches (DateStats), judged once at the end exactly as
one in-memory frame of the date would be (compare_partition): memory does not grow with the day's rows.
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


VALUES_KEPT = 10_000  # distinct values counted per column and date beyond the reference's categories (ValueCounts)


class ValueCounts:
    """Rows per value, merged batch by batch in order of first appearance: `ranked()` is what one value_counts() over
    all the batches gives (most frequent first, ties in order of appearance), which names examples and main values.

    Bounded, since a date can hold any number of distinct values: past 2 * VALUES_KEPT of them beyond `keep` (the
    reference's categories) the rarest are dropped down to VALUES_KEPT and their rows added to `dropped`, so totals
    stay exact and only the order of rare values can differ from one in-memory value_counts().
    """

    def __init__(self, keep: Any = ()):
        self.counts: dict = {}
        self.keep, self.dropped = set(keep), 0

    def add(self, present: "pd.Series") -> None:
        self.add_counts(present.value_counts(sort=False).items())

    def add_counts(self, items: Any) -> None:
        """Add (value, rows) pairs, in order of first appearance."""
        counts = self.counts
        for value, count in items:
            counts[value] = counts.get(value, 0) + int(count)
        if len(counts) > len(self.keep) + 2 * VALUES_KEPT:
            self._prune()

    def _prune(self) -> None:
        extra = sorted(((k, c) for k, c in self.counts.items() if k not in self.keep), key=lambda kc: -kc[1])
        for key, count in extra[VALUES_KEPT:]:
            self.dropped += count
            del self.counts[key]

    def ranked(self) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda kc: -kc[1])  # stable: ties keep their first appearance

    def top(self, present: int) -> tuple[Any, int, int] | None:
        """(main value, its rows, rows with a value) as judge_main takes it; None without values."""
        ranked = self.ranked()
        return (ranked[0][0], ranked[0][1], present) if ranked and present else None


class NumericStats:
    """One numeric column (or the score) on one date, added batch by batch: rows, values present, counts in the
    reference's fixed bins, and for the KS statistic the values at or below / strictly below each distinct point of
    the reference sample (all additive, so a batch never needs another). `values` (ValueCounts) only when the column
    is judged by its value."""

    def __init__(self, reference: dict, by_value: bool = False):
        import numpy as np

        self.edges = np.asarray(reference["edges"], dtype="float64")
        self.sample = np.sort(np.asarray(reference.get("sample") or [], dtype="float64"))
        self.points = np.unique(self.sample)
        self.rows = self.present = 0
        self.counts = np.zeros(self.edges.size + 1, dtype="int64")
        self.at_or_below = np.zeros(self.points.size, dtype="int64")
        self.below = np.zeros(self.points.size, dtype="int64")
        self.values = ValueCounts() if by_value else None

    def add(self, values: Any) -> None:
        import numpy as np
        import pandas as pd

        array = _floats(values)
        present = array[~np.isnan(array)]
        ordered = np.sort(present)
        self.rows, self.present = self.rows + int(array.size), self.present + int(present.size)
        self.counts += np.bincount(np.searchsorted(self.edges, ordered, side="left"), minlength=self.edges.size + 1)
        self.at_or_below += np.searchsorted(ordered, self.points, side="right")
        self.below += np.searchsorted(ordered, self.points, side="left")
        if self.values is not None:
            self.values.add(pd.Series(present))  # unsorted: the order of appearance names the main value of a tie

    def ks(self) -> float:
        """Exactly drift.ks_statistic(reference sample, every value added).

        Both CDFs are steps, so the largest gap lies at a reference point p (current CDF: at_or_below / n) or just
        below one, at the current's last value under p (below / n, against the reference's CDF there): each pair
        is one the in-memory statistic compares, or repeats it, or is 0; the divisions are the same too.
        """
        import numpy as np

        if self.sample.size == 0 or self.present == 0:
            return float("nan")
        ref_at = np.searchsorted(self.sample, self.points, side="right") / self.sample.size
        ref_below = np.searchsorted(self.sample, self.points, side="left") / self.sample.size
        return float(max(np.max(np.abs(ref_at - self.at_or_below / self.present)),
                         np.max(np.abs(ref_below - self.below / self.present))))

    def top(self) -> tuple[Any, int, int] | None:
        return self.values.top(self.present) if self.values is not None else None

    def result(self, reference: dict, config: Drift) -> dict:
        """PSI over the reference's quantile bins, its noise floor, and the KS statistic (nulls apart)."""
        counts = self.counts.tolist()
        out = {**_nulls(reference, self.rows, self.rows - self.present), "unseen_categories": None, "unseen_examples": None,
               "_labels": _bin_labels(reference["edges"]), "_expected": reference["counts"], "_actual": counts}
        if self.present == 0:
            return {**out, "psi": None, "psi_noise_floor": None, "ks": None}
        value = drift.psi(reference["counts"], counts)
        return {**out, "psi": value, "ks": self.ks(), "psi_noise_floor": _floor(value, reference["counts"], self.present, config)}


class CategoryStats:
    """One categorical column on one date, added batch by batch: rows, nulls and rows per category (as text); the
    counts serve PSI, unseen categories and the main value alike, so `by_value` changes nothing here."""

    def __init__(self, reference: dict, by_value: bool = False):
        self.rows = self.nulls = 0
        self.values = ValueCounts(keep=reference["counts"])

    def add(self, values: Any) -> None:
        import pandas as pd

        series = pd.Series(values)
        if series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype):  # mixed values: text row by row
            text = profiles.as_categories(series)
            self.rows, self.nulls = self.rows + int(len(text)), self.nulls + int(text.isna().sum())
            self.values.add(text.dropna())
            return
        # One dtype: distinct values never share a text (str of a number is its shortest round-trip form), so count the
        # values first and make text of each distinct one, not of every row (2.7 of a 2M-row day's 4.4 s monitor).
        counts = series.value_counts(sort=False, dropna=True)
        self.rows, self.nulls = self.rows + int(len(series)), self.nulls + int(len(series) - counts.sum())
        self.values.add_counts(zip(map(str, counts.index), counts.to_numpy()))

    def top(self) -> tuple[Any, int, int] | None:
        return self.values.top(self.rows - self.nulls)

    def result(self, reference: dict, config: Drift) -> dict:
        """PSI over the reference's categories; categories it never saw are counted apart (own row), not in the PSI.

        The plot still shows them as one "(unseen)" bar next to the known categories.
        """
        known, counts = list(reference["counts"]), self.values.counts
        unseen = [key for key, _ in self.values.ranked() if key not in reference["counts"]]
        unseen_rows = sum(counts[key] for key in unseen) + self.values.dropped
        known_counts = [reference["counts"][k] for k in known]
        known_actual = [int(counts.get(k, 0)) for k in known]
        expected, actual, labels = known_counts, known_actual, list(known)
        if unseen_rows:
            expected, actual, labels = [*expected, 0], [*actual, unseen_rows], [*labels, "(unseen)"]
        present = sum(known_actual)
        out = {**_nulls(reference, self.rows, self.nulls), "ks": None, "unseen_categories": unseen_rows,
               "unseen_examples": ", ".join(map(str, unseen[:10])) or None, "_labels": labels, "_expected": expected, "_actual": actual}
        if present == 0:
            return {**out, "psi": None, "psi_noise_floor": None}
        value = drift.psi(known_counts, known_actual)
        return {**out, "psi": value, "psi_noise_floor": _floor(value, known_counts, present, config)}


def compare_numeric(reference: dict, values: Any, config: Drift) -> dict:
    """PSI over the reference's quantile bins, its noise floor, and the KS statistic (nulls apart), of values in memory."""
    stats = NumericStats(reference)
    stats.add(values)
    return stats.result(reference, config)


def compare_categorical(reference: dict, values: Any, config: Drift) -> dict:
    """PSI over the reference's categories, unseen ones counted apart (CategoryStats.result), of values in memory."""
    stats = CategoryStats(reference)
    stats.add(values)
    return stats.result(reference, config)


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
    """judge_main for values in memory: their main value, its rows and the rows with a value."""
    stats = (CategoryStats if kind == "categorical" else NumericStats)(reference, by_value=True)
    stats.add(values)
    return judge_main(reference, kind, stats.top(), psi, share)


def judge_main(reference: dict, kind: str, top: tuple[Any, int, int] | None, psi: float | None, share: float) -> tuple[str, str, bool]:
    """Status, note and whether the value was seen, for a column constant within partitions (see Drift.constant_share).

    A date of such a column carries one piece of information, its main value: it is judged by whether the reference
    holds that value and whether the date is as constant as the reference's partitions were, never by PSI against the
    whole reference (which mixes many partitions' values and which one date always fails). `top`: (main value, its
    rows, rows with a value), None when the date has no values: counts are all it takes, so it works on streamed dates.
    """
    info = reference.get("partition") or {}
    chance = "" if info.get("chance") is None else f" (chance alone: {info.get('chance'):.2g})"
    whole = "" if psi is None else f" (which is {psi:.3g})"
    basis = (f"constant within {info.get('constant', 0)} of {info.get('partitions', 0)} reference partitions{chance}: "
             f"judged on its value, not by PSI against the whole reference{whole}")
    if top is None:
        return drift.EMPTY, f"{basis}; no values on this date", True
    main, rows, present = top
    top_share = float(rows) / present
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


def _by_value(reference: dict, setting: ColumnMonitoring) -> bool:
    """Is an input column judged by its main value (judge_main) rather than by PSI? Decided before reading, so only
    such columns count their values."""
    partition = reference.get("partition") or {}
    return setting.compare == "value" or (setting.compare == "auto" and bool(partition.get("constant_within_partition")))


def _judge(result: dict, reference: dict, stats: Any, setting: ColumnMonitoring, config: Drift) -> list[dict]:
    """Fill status, mode and note of one column's comparison (`stats`: its NumericStats or CategoryStats); plus its
    unseen-categories row when it has one."""
    limits = setting.thresholds(config)
    partition = reference.get("partition") or {}
    by_value = result["kind"] != "score" and _by_value(reference, setting)
    mode, notes = setting.mode or GATE, []
    if by_value:
        psi_status, note, seen = judge_main(reference, result["kind"], stats.top(), result["psi"], config.constant_share)
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


class DateStats:
    """Everything one partition date's comparisons need, added batch by batch (inputs and scores apart): its rows
    and each read column's statistics; skipped columns are named in `names` but never read."""

    def __init__(self, reference: dict, names: list[str], columns: dict[str, ColumnMonitoring]):
        self.rows, self.names = 0, list(names)
        self.columns = {}
        for name in names:
            ref, setting = reference["columns"][name], columns.get(name) or ColumnMonitoring()
            if not setting.skip:
                kind = NumericStats if ref["kind"] == "numeric" else CategoryStats
                self.columns[name] = kind(ref, by_value=_by_value(ref, setting))
        self.score = NumericStats(reference["score"])

    def add_inputs(self, frame: "pd.DataFrame") -> None:
        self.rows += int(len(frame))
        for name, stats in self.columns.items():
            stats.add(frame[name])

    def add_scores(self, scores: Any) -> None:
        self.score.add(scores)


def judge_partition(reference: dict, stats: DateStats, config: Drift, columns: dict[str, ColumnMonitoring] | None = None) -> list[dict]:
    """One result per monitored column of the date's statistics, then the score's; each with its status, mode and note.

    `columns`: the spec's `monitoring.columns` (per-column skip, mode, comparison and thresholds). A column with
    categories the reference never saw gets a second row (kind `unseen`) with their count and examples.
    """
    columns = columns or {}
    results = []
    for name, ref in reference["columns"].items():
        if name not in stats.names:
            continue
        setting = columns.get(name) or ColumnMonitoring()
        if setting.skip:
            results.append(_skipped(name, ref["kind"], ref, stats.rows))
            continue
        limits = setting.thresholds(config)
        column_config = config.model_copy(update={"warn": limits["warn"], "fail": limits["fail"]})
        result = {"feature": name, "kind": ref["kind"], **stats.columns[name].result(ref, column_config)}
        results += _judge(result, ref, stats.columns[name], setting, config)
    score = {"feature": SCORE, "kind": "score", **stats.score.result(reference["score"], config)}
    results += _judge(score, reference["score"], stats.score, ColumnMonitoring(), config)
    return results


def compare_partition(reference: dict, frame: "pd.DataFrame", scores: Any, config: Drift,
                      columns: dict[str, ColumnMonitoring] | None = None) -> list[dict]:
    """judge_partition of one date held in memory: the monitored columns present in `frame`, and its scores."""
    columns = columns or {}
    stats = DateStats(reference, [name for name in reference["columns"] if name in frame.columns], columns)
    stats.add_inputs(frame)
    stats.add_scores(scores)
    return judge_partition(reference, stats, config, columns)


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

EPOCH = date(1970, 1, 1)  # date32 counts days from it


def _widened(reader: Any, columns: list[str]) -> set[str]:
    """Integer and boolean columns holding a null anywhere in the file. Read whole, pandas makes such a column float64
    (object for booleans) in every row, so a batch without nulls is widened alike: a category 3 then reads '3.0' in
    every batch, as in one frame of the file. Null counts come from the footer; a scan of the column only without."""
    import pyarrow as pa

    schema, meta = reader.schema_arrow, reader.metadata
    leaves = list(reader.schema.names)
    out = set()
    for name in columns:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            continue
        stats = [meta.row_group(g).column(leaves.index(name)).statistics for g in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in stats):
            nulls = sum(s.null_count for s in stats)
        else:
            nulls = sum(b.column(0).null_count for b in _batches(reader, [name], 65_536))
        if nulls:
            out.add(name)
    return out


def _frame(table: Any, widened: set[str]) -> "pd.DataFrame":
    """A batch as pandas, converted as the whole file would be (see _widened). Only numpy dtypes widen: a nullable
    Int64 or boolean (restored from pandas metadata in the file) holds nulls as it is, batch or file."""
    import numpy as np

    frame = table.to_pandas()
    for name in widened:
        kind = frame[name].dtype.kind if isinstance(frame[name].dtype, np.dtype) else None
        if kind == "b":
            frame[name] = frame[name].astype(object)
        elif kind in ("i", "u"):
            frame[name] = frame[name].astype("float64")
    return frame


def date_batches(uri: str, columns: list[str], partition: str, dates: list[date], batch_rows: int):
    """(date, frame of `columns`) for the rows of each run date in each record batch of a parquet file, in file order.

    Only `columns` and the partition column are read, one batch at a time: memory stays flat in the file's size.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    reader = _reader(uri)
    widened = _widened(reader, columns)
    ordinals = {day: (day - EPOCH).days for day in dates}
    for batch in _batches(reader, [*columns, partition], batch_rows):
        days = pc.fill_null(batch.column(partition).cast(pa.date32()).cast(pa.int32()), np.iinfo("int32").min).to_numpy()
        inputs = batch.select(columns)
        for day, ordinal in ordinals.items():
            mask = days == ordinal
            if mask.any():
                yield day, _frame(inputs.filter(pa.array(mask)), widened)


def _reader(uri: str) -> Any:
    """A parquet reader on the uri's filesystem (local or S3): footer read now, row groups only when iterated."""
    import pyarrow.parquet as pq

    loc = storage.locate(uri)
    return pq.ParquetFile(loc.path, filesystem=loc.fs)


def _batches(reader: Any, columns: list[str], batch_rows: int):
    """Record batches of `columns`, one reader call per row group: one call over the whole file keeps ~1.5 MiB per
    row group read until it ends (pyarrow 25), so memory grew with the file (as score_shard found)."""
    for group in range(reader.metadata.num_row_groups):
        yield from reader.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)


def accumulate(spec: Pipeline, reference: dict, snapshot_uri: str, shards: list[dict], dates: list[date]) -> dict[date, DateStats]:
    """Each run date's statistics from one streamed pass over the snapshot's monitored columns and one over the staged
    shards' scores (in shard order), instead of reading either whole: monitor's memory no longer grows with the day."""
    columns = spec.monitoring.columns
    names = [c for c in reference["columns"] if c in spec.columns and c != spec.target.column]
    read = [c for c in names if not (columns.get(c) or ColumnMonitoring()).skip]
    by_date = {day: DateStats(reference, names, columns) for day in dates}
    batch_rows = spec.scoring.batch_rows
    for day, frame in date_batches(snapshot_uri, read, PARTITION_COLUMN, dates, batch_rows):
        by_date[day].add_inputs(frame)
    for shard in sorted(shards, key=lambda s: s["index"]):
        for day, frame in date_batches(shard["uri"], ["SCORE"], "PARTITION_DATE", dates, batch_rows):
            by_date[day].add_scores(frame["SCORE"])
    return by_date


def stream_dates(spec: Pipeline, reference: dict, snapshot_uri: str, shards: list[dict], dates: list[date]) -> dict:
    """{partition date: results} for every date of the run (empty ones too), as compare_dates gives for the same rows."""
    by_date = accumulate(spec, reference, snapshot_uri, shards, dates)
    return {day: judge_partition(reference, stats, spec.monitoring.drift, spec.monitoring.columns) for day, stats in by_date.items()}


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
    by_date = stream_dates(spec, reference, ingested["snapshot_uri"], shards, dates)
    rows = table_rows(spec, by_date, model_ref, dag_run_id, monitored_at)
    written = publish_rows(spec, rows, dates) if write else 0
    summary = {**summarize(spec, by_date, model_ref), "report": save_reports(spec, by_date, reference, model_ref, ingested["run_dir"], to_mlflow=write),
               "rows_written": written, "table": monitoring_table(spec)}
    log.info("drift %s for %s: %d monitoring rows; flagged %s", summary["verdict"], summary["partition_dates"], written, summary["flagged"])
    return summary
