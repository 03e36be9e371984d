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
        """With `categorical`, rows come grouped by those columns' values (in the table's order within a group; see
        _read_grouped), so a 2M-row day's lineage never exists as one string per row."""
        import duckdb
        import pandas as pd

        if not Path(self.path).exists():
            return pd.DataFrame(columns=columns or [])
        where = f"FROM {identifier(table)} WHERE MODEL_NAME = ? AND PARTITION_DATE IN (SELECT UNNEST(?::DATE[]))"
        params = [model_name, list(dates)]
        try:
            with self.connect(read_only=True) as con:
                grouped = [c for c in columns or [] if c in categorical]
                if grouped:
                    return _read_grouped(con, where, params, columns, grouped)
                selected = ", ".join(identifier(c) for c in columns) if columns else "*"
                return con.execute(f"SELECT {selected} {where}", params).df()
        except (duckdb.CatalogException, duckdb.IOException):
            return pd.DataFrame(columns=columns or [])


def _read_grouped(con, where: str, params: list, columns: list[str], grouped: list[str]) -> "pd.DataFrame":
    """The rows, one group of `grouped` values at a time: each group's other columns read on their own, its `grouped`
    values kept once as pandas categorical codes. A handful of values over millions of rows (model version, run id,
    date) read as text cost ~300 MiB per 2M rows in DuckDB's result and Arrow's strings, before any encoding."""
    import numpy as np
    import pandas as pd

    keys = ", ".join(identifier(c) for c in grouped)
    groups = con.execute(f"SELECT {keys}, count(*) {where} GROUP BY ALL ORDER BY ALL", params).fetchall()
    if not groups:
        return pd.DataFrame(columns=columns)
    sizes = [g[-1] for g in groups]
    others = [c for c in columns if c not in grouped]
    same = " AND ".join(f"{identifier(c)} IS NOT DISTINCT FROM ?" for c in grouped)
    selected = ", ".join(identifier(c) for c in others)
    parts = [con.execute(f"SELECT {selected} {where} AND {same}", [*params, *group[:-1]]).df()
             for group in groups] if others else [pd.DataFrame(index=range(sum(sizes)))]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for i, name in enumerate(grouped):
        categories = list(dict.fromkeys(g[i] for g in groups if g[i] is not None))
        codes = [categories.index(g[i]) if g[i] is not None else -1 for g in groups]
        frame[name] = pd.Categorical.from_codes(np.repeat(np.asarray(codes, dtype="int32"), sizes), categories=categories)
    return frame[columns]


def get_warehouse(conn_id: str | None = None) -> Warehouse:
    """The warehouse for a spec: embedded DuckDB unless a connection names another."""
    if conn_id is None:
        return DuckDBWarehouse()
    from nightshift.io.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(conn_id)
