"""Ingest: read exactly the rows a run may see, and snapshot them into the run's folder.

Training reads `[interval_end - label_delay - window, interval_end - label_delay)`, so a backfilled
run for a past date sees only data (and matured labels) that existed then. Scoring reads the run's
data interval. Unreadable files fail here, naming the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from nightshift.io import storage
from nightshift.spec import Pipeline

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
IGNORED_FILE_PREFIXES = ("_", ".")  # _SUCCESS, .crc and other writer markers


class IngestError(Exception):
    """Raw data cannot be read as declared; the message names the file and the reason."""


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end) in UTC."""

    start: datetime
    end: datetime

    def days(self) -> list[date]:
        """Calendar days (UTC) that overlap the window: the partitions to read."""
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def utc(moment: datetime | date) -> datetime:
    """Airflow hands out pendulum datetimes; steps use plain aware UTC datetimes."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(moment.timestamp(), tz=timezone.utc)


def training_window(spec: Pipeline, interval_end: datetime, window_end: date | None = None) -> Window:
    """The rows a training run may use: labels must have matured by the interval's end."""
    end = utc(window_end) if window_end else utc(interval_end) - timedelta(days=spec.training.label_delay_days)
    end = end.replace(hour=0, minute=0, second=0, microsecond=0)  # whole days, like the partitions
    return Window(end - timedelta(days=spec.training.window_days), end)


def source_files(spec: Pipeline, window: Window | None, uri: str | None = None, *, require_all: bool) -> list[tuple[storage.Location, int]]:
    """The files to read: one folder per day for daily partitions, else the uri itself."""
    root = storage.locate(uri or spec.source.uri)
    if spec.source.partitioning == "daily" and uri is None:
        if window is None:
            raise IngestError(f"{root.display}: daily partitions need a time window")
        files, missing = [], []
        for day in window.days():
            folder = root.child(f"dt={day.isoformat()}")
            if not storage.is_dir(folder):
                missing.append(folder.display)
                continue
            files.extend(_partition_files(spec, folder))
        if missing and require_all:
            raise IngestError(f"{missing[0]}: partition folder is missing (data for that day has not landed)")
        if missing:
            log.warning("%d of %d partitions missing, e.g. %s", len(missing), len(window.days()), missing[0])
        return files
    if storage.is_dir(root):
        return _partition_files(spec, root)
    if not storage.exists(root):
        raise IngestError(f"{root.display}: file not found")
    return [(root, root.fs.get_file_info(root.path).size)]


def _partition_files(spec: Pipeline, folder: storage.Location) -> list[tuple[storage.Location, int]]:
    """Data files in a folder; an unexpected file is an error rather than silently skipped."""
    found = []
    for path, size in storage.list_files(folder):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(IGNORED_FILE_PREFIXES):
            continue
        if not name.endswith(f".{spec.source.format}"):
            raise IngestError(f"{folder.display}/{name}: unexpected file in partition (expected *.{spec.source.format})")
        found.append((folder.child(name), size))
    return found


def read_file(spec: Pipeline, loc: storage.Location, size: int) -> "pd.DataFrame":
    """Read one data file, turning every reader error into a message that names the file."""
    if size == 0:
        raise IngestError(f"{loc.display}: file is empty (0 bytes)")
    if spec.source.format == "parquet":
        return _read_parquet(loc)
    return _read_csv(spec, loc)


def _read_parquet(loc: storage.Location) -> "pd.DataFrame":
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(loc.path, filesystem=loc.fs).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{loc.display}: not a readable parquet file ({exc})") from None


def _read_csv(spec: Pipeline, loc: storage.Location) -> "pd.DataFrame":
    import pandas as pd

    with loc.fs.open_input_stream(loc.path) as stream:
        raw = stream.read()
    try:
        text = raw.decode(spec.source.csv.encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{loc.display}: not valid {spec.source.csv.encoding} text at byte {exc.start}") from None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=spec.source.csv.delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{loc.display}: not a readable CSV file ({exc})") from None
    delimiter = spec.source.csv.delimiter
    if len(frame.columns) == 1 and len(spec.columns) > 1:  # the whole header in one column: another separator
        header = str(frame.columns[0])
        found = [d for d in (",", ";", "\t", "|") if d != delimiter and d in header]
        if found:
            raise IngestError(f"{loc.display}: header {header[:80]!r} is one column: the file looks {found[0]!r}-separated, "
                              f"but source.csv.delimiter is {delimiter!r}")
    return _parse_csv_times(spec, frame, loc)


def _parse_csv_times(spec: Pipeline, frame: "pd.DataFrame", loc: storage.Location) -> "pd.DataFrame":
    """CSV has no types: parse the columns the schema declares as timestamps or dates."""
    import pandas as pd

    for name, column in spec.columns.items():
        if column.type in ("timestamp", "date") and name in frame.columns:
            try:
                frame[name] = pd.to_datetime(frame[name], format="ISO8601")
            except (ValueError, TypeError) as exc:
                raise IngestError(f"{loc.display}: column '{name}': values are not ISO-8601 timestamps ({exc})") from None
    return frame


def _check_columns(spec: Pipeline, frame: "pd.DataFrame", where: str, *, with_target: bool) -> None:
    """Every file must carry the declared columns, so one odd file cannot hide as nulls after concat."""
    declared = [c for c in spec.columns if with_target or c != spec.target.column]
    missing = [c for c in declared if c not in frame.columns]
    allowed = set(spec.columns)
    extra = [c for c in frame.columns if c not in allowed]
    if missing:
        raise IngestError(f"{where}: column '{missing[0]}' is missing (declared in schema); file has {list(frame.columns)}")
    if extra:
        raise IngestError(f"{where}: column '{extra[0]}' is not declared in schema")


def _check_event_times(spec: Pipeline, frame: "pd.DataFrame", where: str, day: date | None) -> None:
    """Event times must be time-zone aware and, in a daily partition, fall on the partition's day."""
    import pandas as pd

    column = spec.source.event_time
    if not column or frame.empty:
        return
    values = frame[column]
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise IngestError(
            f"{where}: column '{column}': event times must be time-zone aware timestamps "
            f"(got dtype {values.dtype}); write them in UTC with an offset"
        )
    missing = int(values.isna().sum())
    if missing:  # a row without an event time belongs to no window: never drop it silently
        raise IngestError(f"{where}: column '{column}': {missing} rows have no event time (null); every row needs one")
    if day is not None:
        outside = int(((values.dt.tz_convert("UTC").dt.date != day) & values.notna()).sum())
        if outside:
            raise IngestError(f"{where}: column '{column}': {outside} rows have event times outside partition dt={day}")


def _type_family(dtype) -> str | None:
    """number, boolean, text or time; None for object columns (all-null, mixed), which validation judges."""
    from pandas.api import types as pt

    if pt.is_bool_dtype(dtype):
        return "boolean"
    if pt.is_numeric_dtype(dtype):
        return "number"
    if pt.is_datetime64_any_dtype(dtype):
        return "time"
    if pt.is_string_dtype(dtype) and dtype != object:
        return "text"
    return None


def check_types_agree(frames: list["pd.DataFrame"], names: list[str]) -> None:
    """A column stored as text in one file and as numbers in another cannot be concatenated into one snapshot:
    name the file that disagrees with the first one (int64 next to float64 is fine: both are numbers)."""
    first: dict[str, tuple[str, str, object]] = {}
    for frame, name in zip(frames, names):
        for column in frame.columns:
            family = _type_family(frame[column].dtype)
            if family is None:
                continue
            seen = first.setdefault(column, (family, name, frame[column].dtype))
            if seen[0] != family:
                raise IngestError(f"{name}: column '{column}' is {frame[column].dtype} here but {seen[2]} in {seen[1]}: "
                                  "a column must have one type in every file")


def _partition_day(loc: storage.Location) -> date | None:
    folder = loc.path.rsplit("/", 2)[-2] if "/" in loc.path else ""
    return date.fromisoformat(folder[3:]) if folder.startswith("dt=") else None


def read_rows(spec: Pipeline, window: Window | None, uri: str | None = None, *, with_target: bool, require_all: bool,
              file_rows: list | None = None) -> tuple["pd.DataFrame", list[str]]:
    """All rows of the window (or of `uri`), checked file by file; returns the frame and file names.

    `file_rows`, when given, receives `[file, rows kept]` per file in row order, so a later check can
    name the file behind a bad row (see validate.validate_frame's `files`)."""
    import pandas as pd

    if spec.source.snowflake and uri is None:
        return _read_snowflake(spec, window, with_target=with_target)
    frames, names = [], []
    for loc, size in source_files(spec, window, uri, require_all=require_all):
        frame = read_file(spec, loc, size)
        _check_columns(spec, frame, loc.display, with_target=with_target)
        daily = spec.source.partitioning == "daily" and uri is None
        _check_event_times(spec, frame, loc.display, _partition_day(loc) if daily else None)
        frames.append(frame)
        names.append(loc.display)
    if not frames:
        columns = [c for c in spec.columns if with_target or c != spec.target.column]
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}), names
    check_types_agree(frames, names)
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    kept = [len(f) for f in frames]
    if window is not None and spec.source.event_time:
        times = rows[spec.source.event_time]
        inside = ((times >= window.start) & (times < window.end)).to_numpy()
        kept = [int(inside[end - n:end].sum()) for end, n in zip(itertools.accumulate(kept), kept)]
        rows = rows[inside].reset_index(drop=True)
    if file_rows is not None:
        file_rows.extend([name, n] for name, n in zip(names, kept))
    return rows, names


def _read_snowflake(spec: Pipeline, window: Window | None, *, with_target: bool) -> tuple["pd.DataFrame", list[str]]:
    """The interval's rows from a Snowflake table or query, checked like a file would be."""
    from nightshift.io import snowflake

    if window is None:
        raise IngestError(f"{spec.source.location}: a Snowflake source needs a time window")
    rows = snowflake.read_source(spec, window.start, window.end, with_target=with_target)
    _check_columns(spec, rows, spec.source.location, with_target=with_target)
    _check_event_times(spec, rows, spec.source.location, None)
    return rows, [spec.source.location]


def data_hash(frame: "pd.DataFrame") -> str:
    """Content hash of a frame, recorded with the model so its training data can be identified."""
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


def describe_files(names: list[str]) -> str:
    """Short description of the files read, for messages: the first, and how many more."""
    if not names:
        return "no files"
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more files"


def ingest_training(spec: Pipeline, interval_end: datetime, run_dir: str, window_end: date | None = None) -> dict:
    """Read the training window, enforce the minimum row count, snapshot it; return a small summary."""
    window = training_window(spec, interval_end, window_end)
    file_rows: list = []
    rows, names = read_rows(spec, window if spec.source.event_time else None, with_target=True, require_all=False,
                            file_rows=file_rows)
    if len(rows) < spec.training.min_rows:
        raise IngestError(
            f"{describe_files(names) if names else spec.source.location}: the training window "
            f"[{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) holds {len(rows)} rows; training.min_rows is {spec.training.min_rows}"
        )
    snapshot = storage.write_parquet(rows, f"{run_dir}/ingest/snapshot.parquet")
    summary = {
        "snapshot_uri": snapshot,
        "source": describe_files(names),
        "files": len(names),
        "file_rows": file_rows,
        "rows": len(rows),
        "window": window.as_dict() if spec.source.event_time else None,
        "data_hash": data_hash(rows),
    }
    log.info("ingested %(rows)d rows from %(source)s", summary)
    return summary
