"""Data rules decided over every row of a parquet snapshot with DuckDB, answered in Great Expectations' result shape.

A large snapshot is validated in batches (steps/validate.py). Two kinds of rules need not go through Great
Expectations batch by batch:
- rules over all rows at once (key uniqueness, distinct target classes), which batches cannot decide;
- the built-in row-by-row rules (not null, a range, a value set, text length, finiteness) on a column whose parquet
  type already guarantees what GX's pandas view would hold, which are one condition per row. Counting them in one
  DuckDB scan of the file costs a fraction of GX's per-batch cost (a pandas view, a batch hash, one metric graph
  per batch), and the counts, the first 20 examples and their row positions are what GX would report over the same
  rows (tests/test_streaming.py compares the two on planted failures).

Each answer is a `SimpleNamespace(expectation_config, result, exception_info, success)`, read by the same reporting
code as GX's own results. pandas' view of a parquet float column shows nulls and NaN alike as missing, and GX skips
missing values in every rule but "not null": the conditions below treat NaN the same way.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

MEMORY_LIMIT = "256MB"  # DuckDB's memory limit: 10M keys hashed in memory take ~1.3 GiB; within it DuckDB spills to disk
EXAMPLES = 20  # GX's partial_unexpected_count, as validate.py asks for it
GLOBAL = ("ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique", "ExpectColumnUniqueValueCountToBeBetween")

# The kwargs each pushed-down rule may carry: anything else (mostly, strict bounds, parse options) stays with GX.
_KWARGS = {
    "ExpectColumnValuesToNotBeNull": {"column"},
    "ExpectColumnValuesToBeBetween": {"column", "min_value", "max_value"},
    "ExpectColumnValuesToBeInSet": {"column", "value_set"},
    "ExpectColumnValuesToNotBeInSet": {"column", "value_set"},
    "ExpectColumnValueLengthsToBeBetween": {"column", "min_value", "max_value"},
}


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def arrow_kind(arrow_type: Any) -> str | None:
    """'int', 'float', 'text', 'bool' or 'time' for a parquet column's type (a dictionary by its values); else None.
    validate.py decides from it whether a column's type rule holds in every batch."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "text"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_timestamp(arrow_type):
        return "time"  # only "not null" is decided for it: nulls are NaT in pandas
    return None


@dataclass(frozen=True)
class RowCheck:
    """One rule as SQL over the view `snap`: `condition` is true on exactly the rows GX would count as unexpected, with
    `params` bound to its `?` in order; `shown` is the value GX would show for such a row. Only identifiers (quoted by
    _q) and `?` are ever written into the text: the spec's bounds and value sets are bound parameters."""

    condition: str
    params: tuple
    shown: str


def _plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN: no comparison


def unexpected_condition(expectation: Any, logical: str, arrow_type: Any) -> RowCheck | None:
    """The rule as a RowCheck, or None when it is not one DuckDB can decide the same way as GX (an unknown rule, extra
    kwargs, a type whose pandas view differs, a bound that is not a plain number).

    `logical` is the spec's column type: a category column of integer codes is compared and shown as text ("1"), as
    the validation view shows it; an integer or float column is compared as numbers."""
    name = type(expectation).__name__
    kwargs = {k: v for k, v in expectation.configuration.kwargs.items() if v is not None}
    kind = arrow_kind(arrow_type)
    if name not in _KWARGS or not set(kwargs) <= _KWARGS[name] or kind not in ("int", "float", "text", "time"):
        return None
    column = _q(kwargs["column"])
    # NaN as "neither finite nor infinite": DuckDB 2.0 skips row groups for a pushed-down isnan() by parquet min/max
    # statistics, which leave NaN out, and so found no NaN row that a count had counted (tests/test_streaming.py).
    missing = f"{column} IS NULL" + (f" OR (NOT isfinite({column}) AND NOT isinf({column}))" if kind == "float" else "")
    if name == "ExpectColumnValuesToNotBeNull":
        return RowCheck(missing, (), column)
    numeric = kind in ("int", "float") and logical in ("integer", "float")
    if name == "ExpectColumnValuesToBeBetween":
        bounds = [(op, kwargs[key]) for op, key in (("<", "min_value"), (">", "max_value")) if key in kwargs]
        if not numeric or not bounds or not all(_plain_number(v) for _, v in bounds):
            return None
        broken = " OR ".join(f"{column} {op} CAST(? AS DOUBLE)" for op, _ in bounds)
        return RowCheck(f"NOT ({missing}) AND ({broken})", tuple(float(v) for _, v in bounds), column)
    if name in ("ExpectColumnValuesToBeInSet", "ExpectColumnValuesToNotBeInSet"):
        values = list(kwargs.get("value_set") or [])
        if numeric and values and all(_plain_number(v) for v in values):
            subject, params, cast = column, tuple(float(v) for v in values), "DOUBLE"
        elif ((kind == "text" and logical in ("string", "category")) or (kind == "int" and logical == "category")) \
                and values and all(isinstance(v, str) for v in values):
            subject = column if kind == "text" else f"CAST({column} AS VARCHAR)"  # integer codes as text: 1 -> '1'
            params, cast = tuple(values), "VARCHAR"
        else:
            return None
        test = "NOT IN" if name == "ExpectColumnValuesToBeInSet" else "IN"
        placeholders = ", ".join([f"CAST(? AS {cast})"] * len(params))
        return RowCheck(f"NOT ({missing}) AND {subject} {test} ({placeholders})", params, subject)
    if name == "ExpectColumnValueLengthsToBeBetween" and kind == "text":
        bounds = [(op, kwargs[key]) for op, key in (("<", "min_value"), (">", "max_value")) if key in kwargs]
        if not bounds or not all(isinstance(v, int) and not isinstance(v, bool) for _, v in bounds):
            return None
        broken = " OR ".join(f"length({column}) {op} ?" for op, _ in bounds)
        return RowCheck(f"NOT ({missing}) AND ({broken})", tuple(v for _, v in bounds), column)
    return None


@contextlib.contextmanager
def _snapshot(path: str):
    """A DuckDB connection with the view `snap` (every column and `__row`, the row's position in the file), its
    memory bounded and its spill folder removed afterwards."""
    import duckdb

    with duckdb.connect() as con, tempfile.TemporaryDirectory(prefix="nightshift-duckdb-") as spill:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET temp_directory = {_text(spill)}")
        con.execute(f"CREATE VIEW snap AS SELECT *, file_row_number AS __row FROM read_parquet({_text(str(path))}, "
                    "file_row_number = true)")
        yield con


def _result(expectation: Any, res: dict, success: bool) -> SimpleNamespace:
    config = SimpleNamespace(type=expectation.configuration.type, meta={})
    return SimpleNamespace(expectation_config=config, result=res, exception_info=None, success=success)


def count_unexpected(rules: list[tuple[Any, RowCheck]], path: str) -> list[SimpleNamespace]:
    """GX-shaped results for `(expectation, check)` pairs (checks from unexpected_condition): every count in one scan
    of the file, then the first EXAMPLES unexpected values and row positions of each failed rule."""
    if not rules:
        return []
    with _snapshot(path) as con:
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {check.condition})" for _, check in rules)
                             + " FROM snap", [p for _, check in rules for p in check.params]).fetchone()
        out = []
        for (expectation, check), count in zip(rules, counts):
            res: dict = {"unexpected_count": int(count), "partial_unexpected_list": [], "partial_unexpected_index_list": []}
            if count:
                rows = con.execute(f"SELECT {check.shown}, __row FROM snap WHERE {check.condition} ORDER BY __row "
                                   f"LIMIT {EXAMPLES}", list(check.params)).fetchall()
                res["partial_unexpected_list"] = [value for value, _ in rows]
                res["partial_unexpected_index_list"] = [int(row) for _, row in rows]
            out.append(_result(expectation, res, success=count == 0))
    return out


def global_result(expectation: Any, path: str) -> SimpleNamespace:
    """Uniqueness and distinct-class rules over every row of the file, in GX's result shape."""
    kwargs = expectation.configuration.kwargs
    name = type(expectation).__name__
    with _snapshot(path) as con:
        if name == "ExpectColumnUniqueValueCountToBeBetween":
            (observed,) = con.execute(f"SELECT count(DISTINCT {_q(kwargs['column'])}) FROM snap").fetchone()
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            success = (low is None or observed >= low) and (high is None or observed <= high)
            return _result(expectation, {"observed_value": int(observed)}, success)
        cols = [kwargs["column"]] if name == "ExpectColumnValuesToBeUnique" else list(kwargs["column_list"])
        keys = ", ".join(_q(c) for c in cols)
        present = f"{_q(cols[0])} IS NOT NULL" if len(cols) == 1 else "NOT (" + " AND ".join(f"{_q(c)} IS NULL" for c in cols) + ")"
        dup = f"SELECT {keys} FROM snap WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
        among = f"{_q(cols[0])} IN ({dup})" if len(cols) == 1 else f"({keys}) IN ({dup})"
        (count,) = con.execute(f"SELECT count(*) FROM snap WHERE {present} AND {among}").fetchone()
        examples = con.execute(f"SELECT {keys}, __row FROM snap WHERE {among} ORDER BY __row LIMIT {EXAMPLES}").fetchall()
    values = [row[0] if len(cols) == 1 else dict(zip(cols, row[:-1])) for row in examples]
    res = {"unexpected_count": int(count), "partial_unexpected_list": values,
           "partial_unexpected_index_list": [int(row[-1]) for row in examples] if len(cols) == 1 else values}
    return _result(expectation, res, success=count == 0)
