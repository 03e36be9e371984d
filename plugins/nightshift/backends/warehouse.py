"""Warehouses that hold scored outputs, behind one small interface.

`publish` replaces a pipeline's rows for a set of partition dates in ONE transaction: delete them,
insert the new ones. A rerun replaces, a failure leaves the previous rows, nothing duplicates.
The embedded default is a DuckDB file; the Snowflake backend is the same interface chosen by
connection, not a code fork. Identifiers are checked before they reach SQL; values are bound.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

from nightshift import config

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


class Warehouse(Protocol):
    """What the scoring DAG needs from a warehouse."""

    def publish(self, table: str, schema: "pa.Schema", files: list[str], model_name: str, dates: list[date], expected_rows: int) -> int:
        """Replace `model_name`'s rows for `dates` with the rows in the parquet `files`, in one transaction.

        Rolls back (leaving the previous rows) unless exactly `expected_rows` rows end up in those dates.
        Generic over any table keyed by MODEL_NAME and PARTITION_DATE: the scores and the monitoring
        table (`<OUTPUT_TABLE>_MONITORING`) both go through it, so neither duplicates the SQL."""

    def rows_per_partition(self, table: str, model_name: str) -> list[tuple]:
        """(PARTITION_DATE, MODEL_VERSION, rows) for a pipeline, for summaries."""


class DuckDBWarehouse:
    """The embedded warehouse: one DuckDB file, written only by the publish task."""

    def __init__(self, path: str | None = None, lock_retries: int = 5, lock_wait_seconds: float = 1.0):
        self.path = str(path or config.warehouse_path())
        self.lock_retries = lock_retries
        self.lock_wait_seconds = lock_wait_seconds

    def connect(self, read_only: bool = False):
        """Open the file, waiting with backoff while another process holds its write lock."""
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return with_backoff(lambda: duckdb.connect(self.path, read_only=read_only), f"warehouse {self.path}",
                            self.lock_retries, self.lock_wait_seconds, transient=lambda exc: "lock" in str(exc).lower())

    def publish(self, table: str, schema: "pa.Schema", files: list[str], model_name: str, dates: list[date], expected_rows: int) -> int:
        name = identifier(table)
        columns = ", ".join(identifier(f.name) for f in schema)
        with self.connect() as con:
            con.execute(create_table_sql(name, schema))  # DDL first: the transaction below is data only
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {name} WHERE MODEL_NAME = ? AND PARTITION_DATE IN (SELECT UNNEST(?::DATE[]))",
                            [model_name, dates])
                if files:
                    con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM read_parquet(?)", [files])
                inserted = con.execute(
                    f"SELECT COUNT(*) FROM {name} WHERE MODEL_NAME = ? AND PARTITION_DATE IN (SELECT UNNEST(?::DATE[]))",
                    [model_name, dates],
                ).fetchone()[0]
                if inserted != expected_rows:
                    raise RuntimeError(f"{name}: {inserted} rows would be published for {dates}, expected {expected_rows}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(inserted)

    def rows_per_partition(self, table: str, model_name: str) -> list[tuple]:
        import duckdb

        try:
            with self.connect(read_only=True) as con:
                return con.execute(
                    f"SELECT PARTITION_DATE, MODEL_VERSION, COUNT(*) FROM {identifier(table)} WHERE MODEL_NAME = ? "
                    "GROUP BY ALL ORDER BY 1, 2",
                    [model_name],
                ).fetchall()
        except (duckdb.CatalogException, RuntimeError):
            return []


def get_warehouse(conn_id: str | None = None) -> Warehouse:
    """The warehouse for a spec: embedded DuckDB unless a connection names another."""
    if conn_id is None:
        return DuckDBWarehouse()
    from nightshift.backends.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(conn_id)
