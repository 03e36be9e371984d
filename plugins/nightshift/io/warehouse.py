"""Warehouses that hold scored outputs, behind one small interface.

`publish` replaces a pipeline's rows for a set of partition dates in ONE transaction: delete them,
insert the new ones. A rerun replaces, a failure leaves the previous rows, nothing duplicates.
The embedded default is a DuckDB file; the Snowflake backend is the same interface chosen by
connection, not a code fork. Identifiers are checked before they reach SQL; values are bound.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nightshift import config
from nightshift.io.sql import create_table_sql, evolution_sql, identifier, sql_type, with_backoff  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)


class Warehouse(Protocol):
    """What the scoring DAG needs from a warehouse."""

    def publish(self, table: str, schema: "pa.Schema", files: list[str], model_name: str, dates: list[date], expected_rows: int) -> int:
        """Replace `model_name`'s rows for `dates` with the rows in the parquet `files`, in one transaction.

        Rolls back (leaving the previous rows) unless exactly `expected_rows` rows end up in those dates.
        Generic over any table keyed by MODEL_NAME and PARTITION_DATE: the scores and the monitoring
        table (`<OUTPUT_TABLE>_MONITORING`) both go through it, so neither duplicates the SQL."""

    def rows_per_partition(self, table: str, model_name: str) -> list[tuple]:
        """(PARTITION_DATE, MODEL_VERSION, rows) for a pipeline, for summaries."""

    def read_rows(self, table: str, model_name: str, dates: list[date], columns: list[str] | None = None,
                  categorical: tuple[str, ...] = ()) -> "pd.DataFrame":
        """`model_name`'s rows of `dates` (all columns, or `columns`); an empty frame when the table does not exist.
        The `categorical` columns come back as pandas categoricals (lineage columns: a few values over millions of rows)."""


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
        settings = {"memory_limit": config.duckdb_memory_limit()}
        return with_backoff(lambda: duckdb.connect(self.path, read_only=read_only, config=settings), f"warehouse {self.path}",
                            self.lock_retries, self.lock_wait_seconds, transient=lambda exc: "lock" in str(exc).lower())

    def publish(self, table: str, schema: "pa.Schema", files: list[str], model_name: str, dates: list[date], expected_rows: int) -> int:
        name = identifier(table)
        columns = ", ".join(identifier(f.name) for f in schema)
        with self.connect() as con:
            existing = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                                        [name]).fetchall())
            for statement in evolution_sql(name, existing, schema, "duckdb"):  # new output columns, before any data moves
                log.info("%s", statement)
                con.execute(statement)
            con.execute(create_table_sql(name, schema))  # DDL first: the transaction below is data only
            con.execute("SET preserve_insertion_order = false")  # lets the INSERT stream without buffering row order
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {name} WHERE MODEL_NAME = ? AND PARTITION_DATE IN (SELECT UNNEST(?::DATE[]))",
                            [model_name, dates])
                for path in files:  # one staged shard at a time: DuckDB's buffers hold one shard, not the day
                    con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM read_parquet(?)", [path])
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


    def read_rows(self, table: str, model_name: str, dates: list[date], columns: list[str] | None = None,
                  categorical: tuple[str, ...] = ()) -> "pd.DataFrame":
        """With `categorical`, read through Arrow: those columns are dictionary-encoded before pandas sees them, so a
        2M-row day's lineage never exists as one Python string per row (about 300 MiB per 2M rows through .df())."""
        import duckdb
        import pandas as pd
        import pyarrow.compute as pc

        selected = ", ".join(identifier(c) for c in columns) if columns else "*"
        if not Path(self.path).exists():
            return pd.DataFrame(columns=columns or [])
        try:
            query = f"SELECT {selected} FROM {identifier(table)} WHERE MODEL_NAME = ? AND PARTITION_DATE IN (SELECT UNNEST(?::DATE[]))"
            with self.connect(read_only=True) as con:
                if not categorical:
                    return con.execute(query, [model_name, list(dates)]).df()
                rows = con.sql(query, params=[model_name, list(dates)]).to_arrow_table()  # no extra copy (DB-API arrow copies)
        except (duckdb.CatalogException, duckdb.IOException):
            return pd.DataFrame(columns=columns or [])
        for name in categorical:
            if name in rows.column_names:
                rows = rows.set_column(rows.column_names.index(name), name, pc.dictionary_encode(rows[name]))
        return rows.to_pandas()


def get_warehouse(conn_id: str | None = None) -> Warehouse:
    """The warehouse for a spec: embedded DuckDB unless a connection names another."""
    if conn_id is None:
        return DuckDBWarehouse()
    from nightshift.io.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(conn_id)
