"""SQL helpers every warehouse backend shares: safe identifiers, column types, retries.

Kept apart from the backends so that `warehouse` (the interface and DuckDB) and `snowflake`
both import downward from here and never from each other.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)
T = TypeVar("T")
SAFE_IDENTIFIER = re.compile(r"^[A-Z_][A-Z0-9_]{0,254}$")


def identifier(name: str) -> str:
    """Upper-case an identifier and refuse anything that is not a plain SQL name."""
    upper = str(name).upper()
    if not SAFE_IDENTIFIER.match(upper):
        raise ValueError(f"'{name}' is not a safe SQL identifier (letters, digits and _ only)")
    return upper


# Column types per warehouse dialect, keyed by the kind of arrow type an output column has.
SQL_TYPES = {
    "duckdb": {"timestamp_tz": "TIMESTAMP WITH TIME ZONE", "timestamp": "TIMESTAMP", "date": "DATE", "integer": "BIGINT",
               "float": "DOUBLE", "boolean": "BOOLEAN", "text": "VARCHAR"},
    "snowflake": {"timestamp_tz": "TIMESTAMP_TZ", "timestamp": "TIMESTAMP_NTZ", "date": "DATE", "integer": "NUMBER(38,0)",
                  "float": "FLOAT", "boolean": "BOOLEAN", "text": "VARCHAR"},
}


def sql_type(arrow_type: "pa.DataType", dialect: str = "duckdb") -> str:
    """The column type declared in the warehouse for an output column."""
    import pyarrow as pa

    kinds = [(pa.types.is_timestamp, "timestamp_tz" if getattr(arrow_type, "tz", None) else "timestamp"),
             (pa.types.is_date, "date"), (pa.types.is_integer, "integer"), (pa.types.is_floating, "float"),
             (pa.types.is_boolean, "boolean")]
    kind = next((name for test, name in kinds if test(arrow_type)), "text")
    return SQL_TYPES[dialect][kind]


def create_table_sql(table: str, schema: "pa.Schema") -> str:
    columns = ",\n  ".join(f"{identifier(f.name)} {sql_type(f.type)}" for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {identifier(table)} (\n  {columns}\n)"


def with_backoff(func: Callable[[], T], what: str, retries: int, wait_seconds: float, transient: Callable[[Exception], bool]) -> T:
    """Call func, retrying transient failures with exponential backoff, then fail with a clear message."""
    for attempt in range(retries + 1):
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - classified by `transient`
            if not transient(exc) or attempt == retries:
                raise RuntimeError(f"{what} is unavailable after {attempt + 1} attempt(s): {exc}") from exc
            wait = wait_seconds * 2**attempt
            log.warning("%s unavailable (%s); retrying in %.1fs", what, exc, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


# --- output schema evolution ----------------------------------------------------------------------

class SchemaMismatch(ValueError):
    """An existing warehouse column has another type than the pipeline now writes: a person must decide."""


_FAMILIES = (("TIMESTAMP_TZ", "timestamp_tz"), ("TIMESTAMP WITH TIME ZONE", "timestamp_tz"), ("TIMESTAMPTZ", "timestamp_tz"),
             ("TIMESTAMP", "timestamp"), ("DATE", "date"), ("BOOL", "boolean"), ("NUMBER", "integer"), ("DECIMAL", "integer"),
             ("INT", "integer"), ("FLOAT", "float"), ("DOUBLE", "float"), ("REAL", "float"), ("VARCHAR", "text"), ("CHAR", "text"), ("TEXT", "text"),
             ("STRING", "text"))


def type_family(declared: str) -> str:
    """The kind of a declared column type, whatever the dialect spells it (NUMBER(38,0), BIGINT, VARCHAR(16777216) ...)."""
    upper = str(declared).upper()
    if upper.startswith(("NUMBER", "DECIMAL", "NUMERIC")) and "," in upper and not upper.replace(" ", "").endswith(",0)"):
        return "float"
    return next((family for prefix, family in _FAMILIES if upper.startswith(prefix)), upper)


def evolution_sql(table: str, existing: dict[str, str], schema: "pa.Schema", dialect: str) -> list[str]:
    """`ALTER TABLE ... ADD COLUMN` for output columns the table lacks; a changed type fails naming the column and the fix.

    `existing` maps the table's column names (any case) to their declared types; an empty mapping means
    the table does not exist yet (CREATE TABLE handles it)."""
    if not existing:
        return []
    have = {name.upper(): kind for name, kind in existing.items()}
    statements = []
    for field in schema:
        column, wanted = identifier(field.name), sql_type(field.type, dialect)
        if column not in have:
            statements.append(f"ALTER TABLE {table} ADD COLUMN {column} {wanted}")
        elif type_family(have[column]) != type_family(wanted):
            raise SchemaMismatch(
                f"{table}.{column} is {have[column]} in the warehouse but the pipeline now writes {wanted}: "
                f"migrate the column yourself (e.g. ALTER TABLE {table} ALTER COLUMN {column} ... or a new column) "
                f"or point scoring.output_table at a new table; nothing was published")
    return statements
