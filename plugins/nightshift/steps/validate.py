"""Validation step: check a pandas frame against the spec with Great Expectations Core.

The expectation suite is built from the spec's declared columns (`schema:`), the entity key, the
target and the extra `expectations:`; it runs on an ephemeral GX context (no project folder, no
Airflow provider). Every failed rule becomes one plain-words line naming the data source, the
column and the rule, and `ValidationFailed` carries them all. When `docs_dir` is given, the GX Data
Docs HTML (index.html plus one page per validation) is written there, pass or fail.

pandas 3 / GX 1.24 notes (why the frame GX sees is a lightly normalised view):
- `ExpectColumnValuesToBeInTypeList` compares pandas dtypes with numpy dtypes, so it can never
  match the pandas 3 string dtype `str`, `category` or tz-aware `datetime64[..., tz]`. For string and
  category columns GX is given an object-dtype view, where it checks every value is a `str`;
  tz-aware timestamps are shown as naive UTC. Integer columns read with nulls from CSV are float64:
  when every value is integral GX sees them as nullable Int64, otherwise as float64 (which fails the
  integer type rule). Object columns holding `datetime.date` values (declared `date`) become
  datetime64. None of this changes the caller's frame.
- Value rules (range, allowed values, lengths, finiteness) are skipped for a column whose dtype
  already breaks its type rule: GX raises on e.g. a range check over text. The type failure is
  reported instead, with the offending values when pandas can name them.

Importing this module is cheap: great_expectations and pandas are imported inside functions.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightshift.reporting.formatting import bounds
from nightshift.spec import errors

if TYPE_CHECKING:
    import pandas as pd

    from nightshift.spec import Pipeline

log = logging.getLogger(__name__)

EXAMPLES_SHOWN = 5
_SITE = "nightshift"
_GX_LOGGERS = ("great_expectations", "great_expectations.core", "great_expectations.data_context")

_INT_TYPES = [
    "int",  # python int: GX checks object columns value by value
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"Int{b}Dtype" for b in (8, 16, 32, 64)),
    *(f"UInt{b}Dtype" for b in (8, 16, 32, 64)),
]
_FLOAT_TYPES = ["float", "float16", "float32", "float64", "Float32Dtype", "Float64Dtype", *_INT_TYPES]
_DATETIME_TYPES = [*(f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns")), "Timestamp"]
# Type lists handed to ExpectColumnValuesToBeInTypeList, judged on the normalised view (see above).
TYPE_LISTS: dict[str, list[str]] = {
    "string": ["str"],  # object view of str / string / object columns: every value is a str
    "category": ["str"],  # object view of str / string / object / category columns
    "integer": _INT_TYPES,
    "float": _FLOAT_TYPES,
    "boolean": ["bool", "BooleanDtype"],
    "timestamp": _DATETIME_TYPES,
    "date": _DATETIME_TYPES,
}
TYPE_WORDS = {
    "string": "string (dtype str, string or object)",
    "category": "category (dtype str, string, object or category)",
    "integer": "integer (an int dtype, or float64 holding only whole numbers)",
    "float": "float (a float or int dtype)",
    "boolean": "boolean (dtype bool or boolean)",
    "timestamp": "timestamp (datetime64, with or without time zone)",
    "date": "date (datetime64, or object holding dates)",
}


class ValidationFailed(errors.ReportedFailure):
    """Raised when data breaks the spec; str() lists the failures in plain words, at most `errors.MAX_MESSAGE`
    characters: each example value is cut to errors.MAX_VALUE characters, each line is bounded, and lines that do
    not fit are counted. `.failures` keeps every line; `.detail` (written to the run folder, named by `detail_at`)
    keeps every line and every example uncut."""

    def __init__(self, failures: list[str], docs_dir: str | None = None, summary: dict | None = None,
                 detail_at: str | None = None):
        self.failures = list(failures)
        self.docs_dir = docs_dir
        self.summary = summary or {}
        detail = "\n".join([self._head(), *(f"  - {line}" for line in self.failures), *self._tail(None)])
        super().__init__(self._fit(detail_at), detail=detail, detail_at=detail_at)

    def _head(self) -> str:
        return f"{len(self.failures)} data check(s) failed:"

    def _tail(self, detail_at: str | None) -> list[str]:
        tail = [f"Data Docs: {Path(self.docs_dir) / 'index.html'}"] if self.docs_dir else []
        return tail + ([f"Full text, values uncut: {detail_at}"] if detail_at else [])

    def _fit(self, detail_at: str | None) -> str:
        """The header, as many failure lines as fit in errors.MAX_MESSAGE (each bounded too), then the tail."""
        head, tail = self._head(), [errors.clip(t, 400) for t in self._tail(detail_at)]
        lines = [f"  - {errors.bounded(line, errors.MAX_MESSAGE // 4)}" for line in self.failures]
        kept: list[str] = []
        for i, line in enumerate(lines):
            rest = len(lines) - i - 1
            more = [f"  … and {rest} more"] if rest else []
            if len("\n".join([head, *kept, line, *more, *tail])) > errors.MAX_MESSAGE:
                kept.append(f"  … and {len(lines) - i} more")
                break
            kept.append(line)
        return errors.bounded("\n".join([head, *kept, *tail]))

    def with_detail_at(self, uri: str) -> "ValidationFailed":
        self.detail_at = uri
        self.full_message = self._fit(uri)
        self.args = (self.full_message,)
        return self


@dataclass
class _Rule:
    """One expectation plus the words used to report it."""

    expectation: Any
    column: str | None  # None for table-level rules; "a, b" for compound keys
    words: str
    kind: str = "value"  # exist | table | type | value | custom
    detail: str | None = None  # extra words for a failure (type rules: what pandas saw)


@dataclass
class _Plan:
    rules: list[_Rule] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    view: Any = None


def validate_frame(
    df: pd.DataFrame,
    spec: Pipeline,
    *,
    include_target: bool,
    source: str,
    docs_dir: str | Path | None = None,
    files: list | None = None,
    run_dir: str | None = None,
    docs_kept_at: str | None = None,
) -> dict:
    """Validate df against the suite built from the spec. Returns a small JSON-able summary
    {"success": True, "evaluated": n_expectations, "rows": len(df), "docs_dir": str|None, "results": [ {expectation, column, success, unexpected_count, ...} ]}.
    Raises ValidationFailed (after writing Data Docs when docs_dir is given) when any expectation fails.

    `include_target=False` (scoring) drops every rule on the target column (which may be absent)
    and the spec's `applies_to: training` expectations. A spec expectation whose name is not a GX
    expectation raises ValueError before any data is read.

    `files` (`[file, rows]` per source file, in df's row order, as ingest records them) lets a failure
    name the file(s) holding the offending rows instead of the whole source.

    On failure the full list (every line, every example uncut) is written to `{run_dir}/validate/failures.txt`
    when `run_dir` is given, else to `failures.txt` in `docs_dir` (uploaded with the Data Docs); the message,
    bounded to errors.MAX_MESSAGE characters, names that file when it had to leave something out.
    """
    plan = _plan(df, spec, include_target=include_target)
    mode = "training" if include_target else "scoring"
    results, docs_path = _run_suite(plan, spec, mode, source, docs_dir)
    reported = []
    for result in results:
        index = int((result.expectation_config.meta or {})["nightshift_rule"])
        reported.append((index, *_report(plan.rules[index], result, len(df), _located(source, result, files)), result))
    return _verdict(reported, len(df), source, mode, spec, docs_path, plan.skipped, run_dir, docs_kept_at)


class _Suites:
    """One ephemeral GX context for one validation: a suite per distinct rule set, Data Docs rendered once.

    A snapshot validated in batches runs the same rules on every batch, so the context, its suite and checkpoint are
    built once (not once per batch), and the Data Docs site is rendered only for the batch chosen to show
    (`build_docs`), instead of rendering every batch's page and keeping one."""

    def __init__(self, spec: Pipeline, mode: str, source: str, docs_dir: str | Path | None):
        _quiet_gx()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.spec, self.mode, self.source = spec, mode, source
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.docs_path: str | None = None
        if docs_dir is not None:
            self.docs_path = str(Path(docs_dir).resolve())
            Path(self.docs_path).mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(
                _SITE,
                {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": self.docs_path},
                },
            )
        self.batches = self.context.data_sources.add_pandas("nightshift").add_dataframe_asset(spec.name)
        self.checkpoints: dict[tuple, Any] = {}

    def _checkpoint(self, rules: list[_Rule], label: str | None) -> Any:
        """The checkpoint for this ordered rule set, built the first time it is seen (named `<spec>.<mode>`, and
        `<spec>.<mode>.<label>` for a later rule set: a batch that dropped rules the first batch decided or skipped)."""
        import great_expectations as gx

        key = tuple(_rule_key(rule) for rule in rules)
        if key in self.checkpoints:
            return self.checkpoints[key]
        name = f"{self.spec.name}.{self.mode}" + (f".{label or len(self.checkpoints)}" if self.checkpoints else "")
        suite = gx.ExpectationSuite(name=name, meta={"source": self.source})
        for index, rule in enumerate(rules):
            rule.expectation.meta = {**(rule.expectation.meta or {}), "nightshift_rule": index}
            suite.add_expectation(rule.expectation)
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=self.batches.add_batch_definition_whole_dataframe(name), suite=self.context.suites.add(suite)))
        self.checkpoints[key] = self.context.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[definition], actions=[],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20}))
        return self.checkpoints[key]

    def run(self, plan: _Plan, label: str | None = None) -> tuple[list, Any]:
        """(one result per rule of the plan, the checkpoint result to hand to build_docs)."""
        from great_expectations.core.run_identifier import RunIdentifier

        for index, rule in enumerate(plan.rules):  # rules equal by key to the suite's: same index, same meaning
            rule.expectation.meta = {**(rule.expectation.meta or {}), "nightshift_rule": index}
        run = self._checkpoint(plan.rules, label).run(batch_parameters={"dataframe": plan.view},
                                              run_id=RunIdentifier(run_name=_safe_run_name(self.source)))
        return list(next(iter(run.run_results.values())).results), run

    def build_docs(self, run: Any) -> str | None:
        """Render the Data Docs site for one checkpoint result; its folder (None without docs_dir)."""
        if self.docs_path is None:
            return None
        from great_expectations.checkpoint import UpdateDataDocsAction

        UpdateDataDocsAction(name="data_docs", site_names=[_SITE]).run(run)
        return self.docs_path


def _run_suite(plan: _Plan, spec: Pipeline, mode: str, source: str, docs_dir: str | Path | None) -> tuple[list, str | None]:
    """Run the plan's rules on its view with GX; (one result per rule, the Data Docs folder when docs_dir is given)."""
    suites = _Suites(spec, mode, source, docs_dir)
    results, run = suites.run(plan)
    return results, suites.build_docs(run)


def _verdict(reported: list, rows: int, source: str, mode: str, spec: Pipeline, docs_path: str | None, skipped: list,
             run_dir: str | None, docs_kept_at: str | None = None, extra: dict | None = None) -> dict:
    """The summary from `(rule index, entry, failure lines, result)` per rule; raises ValidationFailed on a failure.
    `extra`: more summary keys (a batched validation says which batch the Data Docs show, counting from 0)."""
    results: list[dict] = []
    failures: list[str] = []
    reported.sort(key=lambda item: item[0])  # suite order: table shape, then column by column
    for _, entry, lines, _result in reported:
        results.append(entry)
        failures.extend(lines)

    summary = {
        "success": not failures,
        "evaluated": len(reported),
        "rows": rows,
        "source": source,
        "mode": mode,
        "docs_dir": docs_path,
        "results": results,
        "skipped": skipped,
        **(extra or {}),
    }
    log.info(
        "validated %d rows from %s against %s (%s): %d expectations, %d failure(s), %d rule(s) skipped%s",
        rows, source, spec.name, mode, summary["evaluated"], len(failures), len(skipped),
        f"; Data Docs in {docs_path}" if docs_path else "",
    )
    if failures:
        failed = ValidationFailed(failures, docs_kept_at or docs_path, summary)  # name where the docs will still exist
        raise _detail_kept(failed, _full_lines(failures, reported), run_dir, docs_path)
    return summary


STREAM_ROWS = 500_000  # rows per Great Expectations batch when a snapshot is validated in batches
_PER_BATCH = ("ExpectTableColumnsToMatchSet", "ExpectColumnToExist", "ExpectColumnValuesToBeInTypeList")


def validate_snapshot(
    uri: str,
    spec: Pipeline,
    *,
    include_target: bool,
    source: str,
    docs_dir: str | Path | None = None,
    files: list | None = None,
    run_dir: str | None = None,
    docs_kept_at: str | None = None,
    drop: tuple[str, ...] = (),
    batch_rows: int = STREAM_ROWS,
) -> dict:
    """validate_frame on a parquet snapshot without holding it: the same verdict, summary and messages.

    A snapshot of at most `batch_rows` rows (or one whose spec has an expectation that is not row by row, such as a
    mean or a row count, which batches cannot decide) is read whole and given to validate_frame. A larger one is read
    in batches of row groups (at most about `batch_rows` rows, indexed by their position in the snapshot, so a failure
    still names the file behind its rows), and each rule is decided where it costs least, with the same answer:
    - the first batch runs every rule with Great Expectations (the Data Docs, and the rules the schema fixes);
    - rules over all rows (key uniqueness, distinct target classes) and the built-in row-by-row rules on columns whose
      parquet type fixes their pandas view are counted over the whole file with DuckDB (steps/row_rules.py);
    - what is left (custom expectations, a column whose type can break in any batch) runs with Great Expectations on
      every batch: per rule the batches' counts are summed, examples are the first batches' (at most 20), and a rule
      fails when any batch fails it.
    The Data Docs are one batch's: the first batch that broke a rule, else the first batch (`summary["docs_batch"]`,
    counting from 0); `summary["batches_in_gx"]` counts the batches Great Expectations read."""
    import tempfile

    import pyarrow.parquet as pq

    from nightshift.io import storage

    loc = storage.locate(uri)
    reader = pq.ParquetFile(loc.path, filesystem=loc.fs)
    columns = [c for c in reader.schema_arrow.names if c not in drop]
    rows = reader.metadata.num_rows
    if rows <= batch_rows or not _batchable(spec, include_target):
        frame = reader.read(columns=columns).to_pandas()
        return validate_frame(frame, spec, include_target=include_target, source=source, docs_dir=docs_dir, files=files,
                              run_dir=run_dir, docs_kept_at=docs_kept_at)
    with tempfile.TemporaryDirectory(prefix="nightshift-validate-") as folder:
        batched = _Batched(reader, columns, spec, include_target, source, storage.local_copy(uri, folder))
        return batched.verdict(batch_rows, docs_dir, files, run_dir, docs_kept_at)


class _Batched:
    """One batched validation of a parquet snapshot (see validate_snapshot); `snapshot` is its local path."""

    def __init__(self, reader: Any, columns: list[str], spec: Pipeline, include_target: bool, source: str,
                 snapshot: str):
        self.reader, self.columns, self.spec, self.include_target = reader, columns, spec, include_target
        self.source, self.snapshot, self.schema = source, snapshot, reader.schema_arrow
        self.mode = "training" if include_target else "scoring"
        self.merged: dict[tuple, dict] = {}  # rule key -> {"rule", "results"} in first-seen (suite) order
        self.skipped: dict[tuple, dict] = {}
        self.pushed: dict[tuple, Any] = {}  # rule key -> its result over all rows, from DuckDB

    def verdict(self, batch_rows: int, docs_dir: str | Path | None, files: list | None, run_dir: str | None,
                docs_kept_at: str | None) -> dict:
        import gc
        from types import SimpleNamespace

        from nightshift.steps import row_rules

        suites = _Suites(self.spec, self.mode, self.source, docs_dir)
        batches = list(_batches(self.reader, batch_rows))
        docs_batch, docs_run, docs_failed, left, failing_batch, in_gx = None, None, False, [], None, 0
        for number, (offset, groups) in enumerate(batches):
            if number and not left and number != failing_batch:
                continue  # every rule of this batch is decided already (by the schema, or over all rows by DuckDB)
            plan = self._plan(offset, groups)
            if number == 0:
                self.pushed = self._push_down(plan.rules)
                failing_batch = _batch_of(batches, self._first_pushed_failure())
                left = [r for r in plan.rules if self._left_to_gx(r)]
            shown = number in (0, failing_batch)  # a batch whose Data Docs may be shown runs every rule
            batch = _Plan([r for r in plan.rules if (shown or self._left_to_gx(r)) and _kind_of(r) not in row_rules.GLOBAL],
                          plan.skipped, plan.view)
            results, run = suites.run(batch, f"batch-{number}")
            in_gx += 1
            failed = self._merge(batch, results) or number == failing_batch
            if docs_dir is not None and (docs_batch is None or (failed and not docs_failed)):
                docs_batch, docs_run, docs_failed = number, run, failed
            del plan, batch, results, run
            gc.collect()  # GX's result objects form cycles that hold the batch frame: 4M rows peaked 1,644 -> 1,140 MiB
        docs_path = suites.build_docs(docs_run)
        del docs_run, suites
        rows = self.reader.metadata.num_rows
        reported = []
        for position, (key, item) in enumerate(self.merged.items()):
            rule = item["rule"]
            if _kind_of(rule) in row_rules.GLOBAL:
                result = row_rules.global_result(rule.expectation, self.snapshot)
            else:
                result = self.pushed.get(key) or _merge_results(item["results"], SimpleNamespace)
            reported.append((position, *_report(rule, result, rows, _located(self.source, result, files)), result))
        extra = {**({} if docs_batch is None else {"docs_batch": docs_batch}),
                 "batches_in_gx": in_gx, "rules_in_duckdb": len(self.pushed)}
        return _verdict(reported, rows, self.source, self.mode, self.spec, docs_path, list(self.skipped.values()), run_dir,
                        docs_kept_at, extra)

    def _plan(self, offset: int, groups: list[int]) -> _Plan:
        """The rules and GX's view of one batch, its rows indexed by their position in the snapshot."""
        frame = self.reader.read_row_groups(groups, columns=self.columns).to_pandas()
        frame.index = range(offset, offset + len(frame))  # GX reports example rows by snapshot position
        plan = _plan(frame, self.spec, include_target=self.include_target)
        for rule in plan.rules:
            self.merged.setdefault(_rule_key(rule), {"rule": rule, "results": []})
        for entry in plan.skipped:
            self.skipped.setdefault((entry["column"], entry["rule"]), entry)
        return plan

    def _push_down(self, rules: list[_Rule]) -> dict[tuple, Any]:
        """The built-in row rules DuckDB decides exactly as GX would, counted over the whole snapshot in one scan."""
        from nightshift.steps import row_rules

        chosen = []
        for rule in rules:
            if rule.kind == "value" and _type_fixed(rule.column, self.spec, self.schema):
                check = row_rules.unexpected_condition(rule.expectation, self.spec.columns[rule.column].type,
                                                       self.schema.field(rule.column).type)
                if check:
                    chosen.append((rule, check))
        results = row_rules.count_unexpected([(rule.expectation, check) for rule, check in chosen], self.snapshot)
        return {_rule_key(rule): result for (rule, _), result in zip(chosen, results)}

    def _first_pushed_failure(self) -> int | None:
        """The snapshot position of the first row that breaks a rule decided by DuckDB."""
        firsts = [r.result["partial_unexpected_index_list"][0] for r in self.pushed.values() if not r.success]
        return min(firsts) if firsts else None

    def _left_to_gx(self, rule: _Rule) -> bool:
        """Whether GX must run this rule on every batch: neither fixed by the schema nor decided over all rows."""
        from nightshift.steps import row_rules

        return not (_decided_by_schema(rule, self.spec, self.schema) or _rule_key(rule) in self.pushed
                    or _kind_of(rule) in row_rules.GLOBAL)

    def _merge(self, batch: _Plan, results: list) -> bool:
        """Add one batch's GX results to their rules (DuckDB's answers stand for the rules it decided); whether any of
        the merged ones failed."""
        failed = False
        for result in results:
            rule = batch.rules[int((result.expectation_config.meta or {})["nightshift_rule"])]
            key = _rule_key(rule)
            if key in self.pushed:
                continue
            item = self.merged[key]
            if not result.success and all(r.success for r in item["results"]):
                item["rule"] = rule  # the first failing batch's words (a type rule's detail says what that batch held)
            item["results"].append(result)
            failed = failed or not result.success
        return failed


def _kind_of(rule: _Rule) -> str:
    return type(rule.expectation).__name__


def _batch_of(batches: list[tuple[int, list[int]]], row: int | None) -> int | None:
    """The number of the batch holding snapshot row `row` (None for None)."""
    import bisect

    if row is None:
        return None
    return bisect.bisect_right([offset for offset, _ in batches], row) - 1


def _decided_by_schema(rule: _Rule, spec: Pipeline, schema: Any) -> bool:
    """Whether the snapshot's Arrow schema fixes this rule's outcome in every batch, so the first batch decides it: the
    column set, each column's presence, and the type rule of a column whose parquet type fixes its type (_type_fixed).
    GX checks text values one by one, which was a quarter of a large snapshot's validation time."""
    if rule.kind in ("table", "exist"):
        return True
    return rule.kind == "type" and _type_fixed(rule.column, spec, schema)


def _type_fixed(column: str | None, spec: Pipeline, schema: Any) -> bool:
    """Whether the column's parquet type guarantees the outcome of its type rule in every batch: text for a string or
    category column (GX sees str values), numbers for a category (the view turns codes to text), integers for an
    integer column (with nulls pandas reads float64 holding whole numbers, which the view passes), integers or floats
    for a float column, timestamps for a timestamp column."""
    from nightshift.steps.row_rules import arrow_kind

    if column not in schema.names or column not in spec.columns:
        return False
    kind = arrow_kind(schema.field(column).type)
    return kind in {
        "string": ("text",),
        "category": ("text", "int", "float", "bool"),
        "integer": ("int",),
        "float": ("int", "float"),
        "timestamp": ("time",),
    }.get(spec.columns[column].type, ())


def _batchable(spec: Pipeline, include_target: bool) -> bool:
    """Whether every rule can be decided batch by batch (row-by-row rules) or over the whole file (row_rules.GLOBAL)."""
    from great_expectations.expectations import expectation as base

    from nightshift.steps.row_rules import GLOBAL

    row_wise = (base.ColumnMapExpectation, base.ColumnPairMapExpectation, base.MulticolumnMapExpectation)
    for expectation, _columns, _words in _spec_expectations(spec, include_target=include_target):
        name = type(expectation).__name__
        if name not in GLOBAL and name not in _PER_BATCH and not isinstance(expectation, row_wise):
            return False
    return True


def _batches(reader: Any, batch_rows: int):
    """(first row, row groups) per batch: consecutive row groups up to about batch_rows rows."""
    groups, offset, start, size = [], 0, 0, 0
    for i in range(reader.metadata.num_row_groups):
        n = reader.metadata.row_group(i).num_rows
        if groups and size + n > batch_rows:
            yield start, groups
            groups, start, size = [], offset, 0
        groups.append(i)
        size += n
        offset += n
    if groups:
        yield start, groups


def _rule_key(rule: _Rule) -> tuple:
    expectation = rule.expectation
    return type(expectation).__name__, repr(sorted(expectation.configuration.kwargs.items(), key=str))


def _merge_results(results: list, namespace: Any) -> Any:
    """One rule's batch results as one: counts summed, the first 20 examples, failed when any batch failed; a rule
    judged on an observed value (a dtype, a column set) keeps the first failing batch's result."""
    failing = [r for r in results if not r.success]
    first = (failing or results)[0]
    with_counts = [dict(r.result or {}) for r in results if "unexpected_count" in (r.result or {})]
    if not with_counts or len(with_counts) != len(results):
        return first
    res = dict(first.result or {})
    for name in ("unexpected_count", "element_count", "missing_count"):
        if all(c.get(name) is not None for c in with_counts):
            res[name] = sum(int(c[name]) for c in with_counts)
    for name in ("partial_unexpected_list", "partial_unexpected_index_list"):
        values = [v for c in with_counts for v in (c.get(name) or [])]
        if any(name in c for c in with_counts):
            res[name] = values[:20]
    info = next((r.exception_info for r in results if _exception_message(r.exception_info)), first.exception_info)
    return namespace(expectation_config=first.expectation_config, result=res, exception_info=info,
                     success=not failing)


def _full_lines(failures: list[str], reported: list) -> str:
    """Every failed rule's example values uncut (the message shows each cut to errors.MAX_VALUE characters)."""
    out = ["example values of each failed rule, uncut:"]
    for _, entry, lines, result in reported:
        if lines:
            values = [_jsonable(v) for v in (result.result or {}).get("partial_unexpected_list") or []]
            out.append(f"- column {entry.get('column')!r}: {entry.get('rule')}: {values!r}")
    return "\n".join(out)


def _detail_kept(failed: ValidationFailed, full: str, run_dir: str | None, docs_path: str | None) -> ValidationFailed:
    """Write the full text beside the run (best effort: a failure to write never hides the data failure)."""
    failed.detail = f"{failed.detail}\n\n{full}" if full not in failed.detail else failed.detail
    try:
        if run_dir:
            from nightshift.io import storage

            uri = f"{run_dir.rstrip('/')}/validate/failures.txt"
            loc = storage.locate(uri)
            loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
            with loc.fs.open_output_stream(loc.path) as out:
                out.write(failed.detail.encode("utf-8"))
        elif docs_path:
            uri = str(Path(docs_path) / "failures.txt")
            Path(uri).write_text(failed.detail, encoding="utf-8")
        else:
            return failed
    except Exception as exc:  # noqa: BLE001 - reporting must not mask the validation failure
        log.warning("could not write the full validation failure text: %s", exc)
        return failed
    return failed.with_detail_at(uri)


def expectation_class(name: str) -> type:
    """`expect_column_values_to_match_regex` or `ExpectColumnValuesToMatchRegex` -> the GX class."""
    import great_expectations as gx

    class_name = name if name[:1].isupper() else "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(gx.expectations, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, gx.expectations.Expectation)):
        raise ValueError(f"unknown Great Expectations expectation '{name}' (looked for gx.expectations.{class_name})")
    return cls


# --- building the suite ---------------------------------------------------------------------


def _plan(df: pd.DataFrame, spec: Pipeline, *, include_target: bool) -> _Plan:
    """The rules to run and the frame view GX validates (see the module docstring)."""
    import great_expectations as gx

    E = gx.expectations
    target = spec.target.column
    extras = _spec_expectations(spec, include_target=include_target)
    declared = {name: col for name, col in spec.columns.items() if include_target or name != target}
    present = set(map(str, df.columns))
    plan = _Plan()
    rules = plan.rules
    seen: set[tuple] = set()
    type_failed: set[str] = set()
    missing = {name for name in declared if name not in present}

    def add(expectation: Any, column: str | None, words: str, kind: str = "value", detail: str | None = None) -> None:
        key = (type(expectation).__name__, repr(sorted(expectation.configuration.kwargs.items(), key=str)))
        if key not in seen:
            seen.add(key)
            rules.append(_Rule(expectation, column, words, kind, detail))

    def skip(column: str, words: str, reason: str) -> None:
        plan.skipped.append({"column": column, "rule": words, "reason": reason})

    # Table shape: every declared column exists, and nothing undeclared is present. The target
    # may be absent at scoring time, and is allowed (not required) then.
    allowed = list(declared)
    if not include_target and target in present and target in spec.columns:
        allowed.append(target)
    add(E.ExpectTableColumnsToMatchSet(column_set=allowed, exact_match=True), None, "only declared columns are allowed", "table")
    for name in declared:
        add(E.ExpectColumnToExist(column=name), name, "column must exist", "exist")

    view_columns: dict[str, Any] = {}
    for name, col in declared.items():
        if name in missing:
            skip(name, "all rules", "column is missing")
            continue
        series = df[name]
        view, ok, detail = _normalise(series, col.type)
        if view is not series:
            view_columns[name] = view
        add(
            E.ExpectColumnValuesToBeInTypeList(column=name, type_list=TYPE_LISTS[col.type]),
            name,
            f"values must be of type {TYPE_WORDS[col.type]}",
            "type",
            detail,
        )
        if not ok:
            type_failed.add(name)
        if not col.nullable:
            add(E.ExpectColumnValuesToNotBeNull(column=name), name, "values must not be null")
        if col.unique:
            add(E.ExpectColumnValuesToBeUnique(column=name), name, "values must be unique")
        value_rules = []
        if col.min is not None or col.max is not None:
            value_rules.append(
                (
                    E.ExpectColumnValuesToBeBetween(column=name, min_value=col.min, max_value=col.max),
                    f"values must be {bounds(col.min, col.max)}",
                )
            )
        if col.values is not None:
            allowed_values = [category_value(v) for v in col.values] if col.type == "category" else list(col.values)
            value_rules.append(
                (E.ExpectColumnValuesToBeInSet(column=name, value_set=allowed_values), f"values must be one of {_short_list(col.values)}")
            )
        if col.max_length is not None:
            value_rules.append(
                (
                    E.ExpectColumnValueLengthsToBeBetween(column=name, max_value=col.max_length),
                    f"text must be at most {col.max_length} characters long",
                )
            )
        if col.type == "float":
            value_rules.append(
                (
                    E.ExpectColumnValuesToNotBeInSet(column=name, value_set=[math.inf, -math.inf]),
                    "values must be finite (no +inf or -inf; nulls are governed by nullable)",
                )
            )
        for expectation, words in value_rules:
            if name in type_failed:
                skip(name, words, "the column breaks its type rule")
            else:
                add(expectation, name, words)

    # Entity key: present, not null, unique (compound when several columns).
    key = [c for c in spec.source.entity_key if include_target or c != target]
    for name in key:
        if name not in missing:
            add(E.ExpectColumnValuesToNotBeNull(column=name), name, "entity key values must not be null")
    if key and not (set(key) & missing):
        if len(key) == 1:
            add(E.ExpectColumnValuesToBeUnique(column=key[0]), key[0], "entity key values must be unique")
        else:
            add(
                E.ExpectCompoundColumnsToBeUnique(column_list=key),
                ", ".join(key),
                "entity key (compound) must be unique",
            )

    # Target: a classification window needs labels on every row and at least two classes.
    if include_target and target not in missing and target in declared:
        add(E.ExpectColumnValuesToNotBeNull(column=target), target, "target values must not be null")
        if spec.target.task in ("binary", "multiclass"):
            add(
                E.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2),
                target,
                f"target must have at least 2 distinct classes for a {spec.target.task} task",
            )

    # Extra expectations from the spec (resolved up front, before anything else).
    for expectation, columns, words in extras:
        blocked = [c for c in columns if c in missing or c in type_failed]
        column = ", ".join(columns) if columns else None
        if blocked:
            skip(column or "", words, f"column {', '.join(map(repr, blocked))} is missing or breaks its type rule")
        else:
            add(expectation, column, words, "custom")

    plan.view = df.assign(**view_columns) if view_columns else df
    return plan


def _spec_expectations(spec: Pipeline, *, include_target: bool) -> list[tuple[Any, list[str], str]]:
    """spec.expectations as (GX expectation, columns it reads, words); ValueError on a bad one."""
    target = spec.target.column
    out = []
    for i, extra in enumerate(spec.expectations):
        cls = expectation_class(extra.expectation)
        columns = _referenced_columns(extra.kwargs)
        if not include_target and (extra.applies_to == "training" or target in columns):
            continue
        try:
            expectation = cls(**extra.kwargs)
        except Exception as exc:  # pydantic validation of the kwargs
            raise ValueError(
                f"expectations[{i}] {extra.expectation}: invalid kwargs {extra.kwargs!r}: {exc}"
            ) from None
        out.append((expectation, columns, _custom_words(extra.expectation, extra.kwargs)))
    return out


def _normalise(series: pd.Series, logical: str) -> tuple[pd.Series, bool, str | None]:
    """(column as GX should see it, dtype fits the logical type, words on what pandas saw).

    The view only re-expresses dtypes GX 1.24 cannot recognise under pandas 3; when the dtype
    does not fit, the view is left as is so the GX type rule fails on it.
    """
    import pandas as pd
    from pandas.api import types as pt

    dtype = series.dtype
    if logical == "category" and (pt.is_numeric_dtype(dtype) or pt.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)):
        return category_text(series), True, None  # integer codes (or bools) as text; the spec's values are compared as text
    if logical in ("string", "category"):
        if isinstance(dtype, pd.CategoricalDtype) or pt.is_string_dtype(dtype) or dtype == object:
            # Object view: GX checks each non-null value is a str (it cannot match dtype "str").
            return series.astype(object), True, None
        return series, False, f"dtype is {dtype}"
    if logical in ("timestamp", "date"):
        if dtype == object:
            inferred = series.infer_objects()  # e.g. an object column of pd.Timestamp
            if inferred.dtype != object:
                return _normalise(inferred, logical)
        if isinstance(dtype, pd.DatetimeTZDtype):
            return series.dt.tz_convert(None), True, None
        if pt.is_datetime64_dtype(dtype):
            return series, True, None
        if logical == "date" and dtype == object:
            values = series.dropna()
            if all(isinstance(v, datetime.date) for v in values):
                return pd.Series(pd.to_datetime(series), index=series.index, name=series.name), True, None
        text = dtype == object or pt.is_string_dtype(dtype)
        return series, False, f"dtype is {dtype}{_non_matching(series, 'date') if text else ''}"
    if logical == "boolean":
        if pt.is_bool_dtype(dtype):
            return series, True, None
        return series, False, f"dtype is {dtype}"
    # integer / float
    if pt.is_bool_dtype(dtype) or not pt.is_numeric_dtype(dtype):
        if dtype == object:
            inferred = series.infer_objects()
            if pt.is_numeric_dtype(inferred.dtype) and not pt.is_bool_dtype(inferred.dtype):
                return _normalise(inferred, logical)
        text = dtype == object or pt.is_string_dtype(dtype)
        return series, False, f"dtype is {dtype}{_non_matching(series, 'number') if text else ''}"
    if logical == "integer" and pt.is_float_dtype(dtype):
        values = series.dropna().to_numpy(dtype="float64", na_value=float("nan"))
        fractional = values[~((values % 1) == 0)]
        if len(fractional) == 0:
            return series.astype("Int64"), True, None
        examples = _examples(list(dict.fromkeys(fractional.tolist())))
        return series, False, f"dtype is {dtype} with {len(fractional)} non-whole value(s), e.g. {examples}"
    return series, True, None


def category_value(value: Any) -> Any:
    """A category as text: `1`, `1.0` and `"1"` alike are "1", True is "True", other numbers their repr; text stays."""
    if value is None or isinstance(value, str):
        return value
    item = getattr(value, "item", None)
    if callable(item) and type(value) not in (bool, int, float):  # numpy scalars as Python values
        value = item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(float(value))
    return str(value)


def category_text(series: pd.Series) -> pd.Series:
    """A category column as an object column of text (None for nulls), whatever dtype the reader chose: integer codes
    read as int64, as float64 (nulls in a CSV) or as a pandas categorical compare equal to the spec's `values`."""
    import pandas as pd
    from pandas.api import types as pt

    if pt.is_numeric_dtype(series.dtype) and not pt.is_bool_dtype(series.dtype):
        from nightshift.steps.ingest import canonical_text

        text = canonical_text(series, "category")
    else:
        text = series.astype(object).map(category_value, na_action="ignore")
    return pd.Series(text.where(series.notna(), None), index=series.index, name=series.name, dtype=object)


def _non_matching(series: pd.Series, what: str) -> str:
    """`; 2 value(s) are not numbers, e.g. ['n/a']` for text in a numeric or date column."""
    import pandas as pd

    values = series.dropna()
    if values.empty:
        return ""
    try:
        if what == "number":
            parsed = pd.to_numeric(values, errors="coerce")
        else:
            parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        return ""
    bad = values[parsed.isna()]
    if bad.empty:
        return f" (every value parses as a {what}: convert the column before validating, e.g. {_examples(values.head(3).tolist())})"
    return f"; {len(bad)} value(s) are not {what}s, e.g. {_examples(list(dict.fromkeys(bad.head(200).tolist())))}"


# --- reporting ------------------------------------------------------------------------------


def _located(source: str, result: Any, files: list | None) -> str:
    """The file(s) behind a failure's example rows (GX's partial_unexpected_index_list), else the whole source."""
    import bisect
    import itertools

    indices = (result.result or {}).get("partial_unexpected_index_list") if not result.success else None
    if not files or not indices:
        return source
    ends = list(itertools.accumulate(int(n) for _, n in files))
    hit: list[str] = []
    for index in indices:
        try:
            k = bisect.bisect_right(ends, int(index))
        except (TypeError, ValueError):  # compound keys report dicts, not positions
            continue
        if k < len(ends) and files[k][0] not in hit:
            hit.append(files[k][0])
    if not hit:
        return source
    return hit[0] if len(hit) == 1 else f"{hit[0]} (and {len(hit) - 1} more file{'s' if len(hit) > 2 else ''})"


def _report(rule: _Rule, result: Any, rows: int, source: str) -> tuple[dict, list[str]]:
    """A JSON-able entry for the summary, and the failure lines (none when it passed)."""
    config = result.expectation_config
    res = dict(result.result or {})
    error = _exception_message(result.exception_info)
    entry = {
        "expectation": config.type,
        "column": rule.column,
        "rule": rule.words,
        "success": bool(result.success) and error is None,
        "unexpected_count": _jsonable(res.get("unexpected_count")),
    }
    if "observed_value" in res:
        entry["observed_value"] = _jsonable(res["observed_value"])
    if error:
        entry["error"] = error
    if entry["success"]:
        return entry, []

    where = f"{source}: column '{rule.column}'" if rule.column and "," not in rule.column else (
        f"{source}: columns {', '.join(repr(c) for c in rule.column.split(', '))}" if rule.column else f"{source}: table"
    )
    if error:
        return entry, [f"{where}: {rule.words} — could not be evaluated: {errors.clip(error, 300)}"]
    if rule.kind == "table":
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        extra = mismatched.get("unexpected") or []
        lines = [
            f"{source}: column '{name}': {rule.words} — '{name}' is not declared in the spec's schema" for name in extra
        ]
        # Missing columns are reported by their own "column must exist" rule.
        entry["unexpected_columns"] = list(extra)
        return entry, lines
    if rule.kind == "exist":
        return entry, [f"{where}: {rule.words} — it is missing from the data"]
    if rule.kind == "type":
        count = res.get("unexpected_count")
        if count:  # object column: GX checked value by value
            return entry, [f"{where}: {rule.words} — {_count_words(count, rows, res)}"]
        observed = res.get("observed_value")
        detail = rule.detail or (f"observed {errors.show(observed)}" if observed is not None else "type check failed")
        return entry, [f"{where}: {rule.words} — {detail}"]
    count = res.get("unexpected_count")
    if count is not None:
        return entry, [f"{where}: {rule.words} — {_count_words(count, rows, res)}"]
    observed = res.get("observed_value")
    return entry, [f"{where}: {rule.words} — observed {errors.show(_jsonable(observed))}"]


def _count_words(count: int, rows: int, res: dict) -> str:
    share = (100.0 * count / rows) if rows else 0.0
    text = f"{count} of {rows} rows ({share:.2f}%) break it"
    examples = [v for v in res.get("partial_unexpected_list") or [] if not _is_null(v)]
    if examples:
        text += f", e.g. {_examples(list(_unique(examples)))}"
    return text


def _examples(values: list) -> str:
    """The first EXAMPLES_SHOWN values, each cut to errors.MAX_VALUE characters."""
    return errors.examples([_jsonable(v) for v in values[:EXAMPLES_SHOWN]], EXAMPLES_SHOWN)


def _unique(values: list):
    seen = []
    for v in values:
        marker = repr(v)
        if marker not in seen:
            seen.append(marker)
            yield v


def _is_null(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like values (compound keys) are never null
        return False


def _exception_message(info: Any) -> str | None:
    """GX puts either one {raised_exception, exception_message} dict or one per metric."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    messages = [str(v.get("exception_message")) for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None


def _jsonable(value: Any) -> Any:
    """numpy / pandas scalars and containers -> plain JSON types (inf and NaN stay floats)."""
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, float):
        return float(value)  # np.float64 is a float subclass: drop it so repr() stays plain
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (datetime.date, datetime.datetime)) or hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _short_list(values: list, limit: int = 12) -> str:
    shown = ", ".join(errors.show(v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _referenced_columns(kwargs: dict) -> list[str]:
    cols: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            cols.append(kwargs[key])
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), (list, tuple)):
            cols.extend(c for c in kwargs[key] if isinstance(c, str))
    return list(dict.fromkeys(cols))


def _custom_words(name: str, kwargs: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("column",))
    return f"{name}({args})"


def _safe_run_name(source: str) -> str:
    """Run names become folder names in Data Docs: keep them path-safe and short."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", source).strip("_")[:120] or "run"


def _quiet_gx() -> None:
    for name in _GX_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
