"""Snowflake: scored outputs (the production warehouse) and, optionally, the source of raw rows.

Connections come from Airflow (`SnowflakeHook`), so password and key-pair authentication
(`private_key_file` / `private_key_content` in the extras) work as the provider documents.
Publishing stages the rows first (write_pandas creates a stage and DDL commits implicitly in
Snowflake), then runs ONE transaction: delete the partitions' rows, insert from staging, check
the count, commit. Identifiers are upper-case and checked; values are always bound parameters.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING

from nightshift.io.sql import evolution_sql, identifier, sql_type, with_backoff

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from nightshift.spec import Pipeline

log = logging.getLogger(__name__)


def qualified_name(name: str) -> str:
    """`[DATABASE.][SCHEMA.]TABLE`, each part checked and upper-cased."""
    return ".".join(identifier(part) for part in name.split("."))


class AccessDenied(PermissionError):
    """Snowflake refused the credentials or the role's privileges: retrying would only lock the user out."""


# Connector error numbers for refused logins (bad password, key, token, locked or disabled user) and missing grants
AUTH_ERRNOS = {390100, 390101, 390102, 390103, 390104, 390111, 390113, 390144, 390190, 390191, 390318, 390422, 394304}
PERMISSION_ERRNOS = {3001, 3041, 2037}
_REFUSED_WORDS = ("incorrect username or password", "authentication", "jwt token", "user is locked", "user is disabled",
                  "insufficient privileges", "not authorized")


def is_access_denied(exc: BaseException) -> bool:
    """Authentication and permission errors: deterministic, never retried."""
    errno = getattr(exc, "errno", None)
    return errno in AUTH_ERRNOS | PERMISSION_ERRNOS or any(word in str(exc).lower() for word in _REFUSED_WORDS)


def connect(conn_id: str, retries: int = 3, wait_seconds: float = 1.0):
    """A connector connection from the Airflow connection, retried with backoff when refused by the network;
    an authentication or permission refusal fails at once (AccessDenied), so a locked service user stays one attempt."""
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    def open_connection():
        try:
            return SnowflakeHook(snowflake_conn_id=conn_id).get_conn()
        except Exception as exc:
            if is_access_denied(exc):
                raise AccessDenied(f"Snowflake connection '{conn_id}' was refused: {exc} (authentication or permission; "
                                   "not retried: check the connection's credentials and role)") from exc
            raise

    try:
        return with_backoff(open_connection, f"Snowflake connection '{conn_id}'", retries, wait_seconds,
                            transient=lambda exc: not isinstance(exc, (ValueError, KeyError, AccessDenied)))
    except RuntimeError as exc:
        if isinstance(exc.__cause__, AccessDenied):
            raise exc.__cause__ from None
        raise


class SnowflakeWarehouse:
    """Scored outputs in Snowflake; `executed` keeps the SQL sent, for audits and tests."""

    def __init__(self, conn_id: str, retries: int = 3, wait_seconds: float = 1.0):
        self.conn_id = conn_id
        self.retries = retries
        self.wait_seconds = wait_seconds
        self.executed: list[str] = []

    def _run(self, cursor, sql: str, params=None):
        self.executed.append(sql)
        return cursor.execute(sql, params) if params is not None else cursor.execute(sql)

    def publish(self, table: str, schema: "pa.Schema", files: list[str], model_name: str, dates: list[date], expected_rows: int) -> int:
        name = qualified_name(table)
        stage = f"{name}__STAGE_{uuid.uuid4().hex[:10].upper()}"  # in the target's schema, gone with the session
        columns = ", ".join(identifier(f.name) for f in schema)
        conn = connect(self.conn_id, self.retries, self.wait_seconds)
        try:
            cursor = conn.cursor()
            ddl = ", ".join(f"{identifier(f.name)} {sql_type(f.type, 'snowflake')}" for f in schema)
            for statement in evolution_sql(name, self._columns(cursor, name), schema, "snowflake"):
                self._run(cursor, statement)  # DDL commits implicitly in Snowflake: before the data transaction
            self._run(cursor, f"CREATE TABLE IF NOT EXISTS {name} ({ddl})")
            self._run(cursor, f"CREATE TEMPORARY TABLE {stage} ({ddl})")
            try:
                self._stage(conn, stage, files)
                return self._swap(cursor, name, stage, columns, model_name, dates, expected_rows)
            finally:
                self._run(cursor, f"DROP TABLE IF EXISTS {stage}")
        finally:
            conn.close()

    def _columns(self, cursor, name: str) -> dict[str, str]:
        """The table's columns and declared types; {} when it does not exist yet."""
        parts = name.split(".")
        where = ["TABLE_NAME = %s"] + (["TABLE_SCHEMA = %s"] if len(parts) > 1 else []) + (["TABLE_CATALOG = %s"] if len(parts) > 2 else [])
        params = [parts[-1], *reversed(parts[:-1])]
        catalog = f"{parts[0]}." if len(parts) > 2 else ""
        rows = self._run(cursor, f"SELECT COLUMN_NAME, DATA_TYPE FROM {catalog}INFORMATION_SCHEMA.COLUMNS WHERE {' AND '.join(where)}",
                         params).fetchall()
        return {str(c): str(t) for c, t in rows}

    def _stage(self, conn, stage: str, files: list[str]) -> None:
        """Load each shard file into the staging table (one shard in memory at a time)."""
        import pyarrow.parquet as pq
        from snowflake.connector.pandas_tools import write_pandas

        for path in files:
            frame = pq.read_table(path).to_pandas()
            if frame.empty:
                continue
            *where, table = stage.split(".")
            location = dict(zip(("schema", "database"), reversed(where)))
            ok, _, rows, _ = write_pandas(conn, frame, table, quote_identifiers=False, use_logical_type=True, auto_create_table=False,
                                          table_type="temporary", **location)
            if not ok or rows != len(frame):
                raise RuntimeError(f"staging {path} into {stage} loaded {rows} of {len(frame)} rows")

    def _swap(self, cursor, name: str, stage: str, columns: str, model_name: str, dates: list[date], expected: int) -> int:
        """The one transaction: delete the dates' rows, insert from staging, check the count."""
        placeholders = ", ".join(["%s"] * len(dates))
        where = f"MODEL_NAME = %s AND PARTITION_DATE IN ({placeholders})"
        params = [model_name, *[d.isoformat() for d in dates]]
        self._run(cursor, "BEGIN")
        try:
            self._run(cursor, f"DELETE FROM {name} WHERE {where}", params)
            self._run(cursor, f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {stage}")
            inserted = self._run(cursor, f"SELECT COUNT(*) FROM {name} WHERE {where}", params).fetchone()[0]
            if inserted != expected:
                raise RuntimeError(f"{name}: {inserted} rows would be published for {dates}, expected {expected}")
            self._run(cursor, "COMMIT")
        except BaseException:
            self._run(cursor, "ROLLBACK")
            raise
        return int(inserted)

    def rows_per_partition(self, table: str, model_name: str) -> list[tuple]:
        conn = connect(self.conn_id, self.retries, self.wait_seconds)
        try:
            cursor = conn.cursor()
            if not self._columns(cursor, qualified_name(table)):
                return []  # nothing published yet: the table is created by the first publish
            sql = (f"SELECT PARTITION_DATE, MODEL_VERSION, COUNT(*) FROM {qualified_name(table)} WHERE MODEL_NAME = %s "
                   "GROUP BY 1, 2 ORDER BY 1, 2")
            return [tuple(r) for r in self._run(cursor, sql, [model_name]).fetchall()]
        finally:
            conn.close()

    def read_rows(self, table: str, model_name: str, dates: list[date], columns: list[str] | None = None,
                  categorical: tuple[str, ...] = ()) -> "pd.DataFrame":
        """`model_name`'s rows of `dates`; an empty frame when the table does not exist or no date is asked for."""
        import pandas as pd

        if not dates:
            return pd.DataFrame(columns=columns or [])
        selected = ", ".join(identifier(c) for c in columns) if columns else "*"
        conn = connect(self.conn_id, self.retries, self.wait_seconds)
        try:
            cursor = conn.cursor()
            if not self._columns(cursor, qualified_name(table)):
                return pd.DataFrame(columns=columns or [])
            placeholders = ", ".join(["%s"] * len(dates))
            sql = f"SELECT {selected} FROM {qualified_name(table)} WHERE MODEL_NAME = %s AND PARTITION_DATE IN ({placeholders})"
            cursor = self._run(cursor, sql, [model_name, *[d.isoformat() for d in dates]])
            names = [d[0].upper() for d in cursor.description]
            frame = pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=names)
            return frame.astype({c: "category" for c in categorical if c in frame.columns})
        finally:
            conn.close()


def source_sql(spec: "Pipeline") -> str:
    """The SELECT for a Snowflake source; the interval always arrives as bound parameters."""
    source = spec.source.snowflake
    if source.query:
        return source.query
    columns = ", ".join(identifier(c) for c in spec.columns if c != spec.source.computed_key)  # row_key: ingest computes it
    event_time = identifier(spec.source.event_time)
    return (f"SELECT {columns} FROM {qualified_name(source.table)} "
            f"WHERE {event_time} >= %(interval_start)s AND {event_time} < %(interval_end)s")


def count_source_rows(spec: "Pipeline", start: datetime, end: datetime) -> int:
    """How many source rows [start, end) holds (the late-data sensor's question), counted in Snowflake."""
    conn = connect(spec.source.snowflake.conn_id)
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM ({source_sql(spec)})", {"interval_start": start, "interval_end": end})
        return int(cursor.fetchone()[0])
    finally:
        conn.close()


def read_source(spec: "Pipeline", start: datetime, end: datetime, *, with_target: bool) -> "pd.DataFrame":
    """The rows of [start, end) with the spec's column names (Snowflake returns them upper-case)."""
    import pandas as pd

    conn = connect(spec.source.snowflake.conn_id)
    try:
        cursor = conn.cursor()
        cursor.execute(source_sql(spec), {"interval_start": start, "interval_end": end})
        frame = cursor.fetch_pandas_all()  # arrow-typed: NUMBER stays numeric, not Decimal objects
    finally:
        conn.close()
    by_upper = {c.upper(): c for c in spec.columns}
    frame = frame.rename(columns={c: by_upper.get(c.upper(), c) for c in frame.columns})
    event_time = spec.source.event_time
    if event_time in frame and not isinstance(frame[event_time].dtype, pd.DatetimeTZDtype):
        frame[event_time] = pd.to_datetime(frame[event_time])  # TIMESTAMP_NTZ stays naive: ingest reads it in source.timezone
    if not with_target and spec.target.column in frame:
        frame = frame.drop(columns=[spec.target.column])
    log.info("read %d rows from %s for [%s, %s)", len(frame), spec.source.location, start, end)
    return frame
