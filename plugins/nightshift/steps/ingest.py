"""Ingest: read exactly the rows a run may see, and snapshot them into the run's folder.

Training reads `[interval_end - label_delay - window, interval_end - label_delay)`, so a backfilled
run for a past date sees only data (and matured labels) that existed then. Scoring reads the run's
data interval. Unreadable files fail here, naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Iterator

from nightshift.io import storage
from nightshift.spec import Pipeline, errors

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
# Files and folders that writers (Spark, Hadoop, Delta, pyarrow, macOS) leave next to data files: ignored by name.
# Anything else that is not a data file is an error naming it, so a day is never published from half its files.
WRITER_MARKER_FILES = ("_SUCCESS", "_metadata", "_common_metadata", ".DS_Store")
WRITER_MARKER_PREFIXES = ("_committed_", "_started_")
WRITER_MARKER_SUFFIXES = (".crc",)
WRITER_WORK_FOLDERS = ("_temporary", "_delta_log", ".spark-staging")


def is_writer_marker(name: str) -> bool:
    """A known marker such as `_SUCCESS`, `_committed_123` or `.part-0.parquet.crc` (never data)."""
    return name in WRITER_MARKER_FILES or name.startswith(WRITER_MARKER_PREFIXES) or name.endswith(WRITER_MARKER_SUFFIXES)


def is_writer_work_folder(name: str) -> bool:
    return name.startswith(WRITER_WORK_FOLDERS)


class IngestError(errors.ReportedFailure):
    """Raw data cannot be read as declared; the message names the file (and the column) and the reason,
    bounded to errors.MAX_MESSAGE characters (`.detail` keeps the full text)."""


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
            found = _partition_files(spec, folder)
            if not found and require_all:
                raise IngestError(f"{folder.display}: partition folder holds no *.{spec.source.format} files "
                                  "(only writer markers, or nothing): the day's data has not been written")
            files.extend(found)
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
    for sub in storage.list_folders(folder):
        name = sub.rsplit("/", 1)[-1]
        if not is_writer_work_folder(name):  # _temporary/, .spark-staging-*/: writers' work folders
            raise IngestError(f"{folder.display}/{name}: unexpected folder '{errors.clip(name)}' inside partition "
                              f"{folder.display}; data files must sit directly in the partition folder")
    found = []
    for path, size in storage.list_files(folder):
        name = path.rsplit("/", 1)[-1]
        if is_writer_marker(name):
            continue
        if not name.endswith(f".{spec.source.format}"):
            raise IngestError(f"{folder.display}/{errors.clip(name)}: unexpected file in partition (expected *.{spec.source.format})")
        if name.startswith(("_", ".")):
            raise IngestError(f"{folder.display}/{errors.clip(name)}: a data file whose name starts with '{name[0]}' is how writers "
                              "mark files in progress or hidden; rename it (or remove it) so the day is read whole")
        found.append((folder.child(name), size))
    return found


def read_file(spec: Pipeline, loc: storage.Location, size: int) -> "pd.DataFrame":
    """Read one data file, turning every reader error into a message that names the file."""
    if size == 0:
        raise IngestError(f"{loc.display}: file is empty (0 bytes)")
    if spec.source.format == "parquet":
        return _read_parquet(spec, loc)
    return _read_csv(spec, loc)


PARQUET_TYPES = {  # the schema's types in the words a parquet reader's failure is explained with
    "string": "text (parquet string)",
    "category": "text (parquet string or dictionary of strings)",
    "integer": "whole numbers (parquet int)",
    "float": "numbers (parquet float or int)",
    "boolean": "true/false (parquet bool)",
    "timestamp": "timestamps (parquet timestamp, with a time zone)",
    "date": "dates (parquet date or timestamp)",
}


def _read_parquet(spec: Pipeline, loc: storage.Location) -> "pd.DataFrame":
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(loc.path, filesystem=loc.fs)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{loc.display}: not a readable parquet file ({errors.clip(exc, 300)})", detail=str(exc)) from None
    _check_nested(spec, loc, table.schema)
    return _to_pandas(spec, loc, table)


def _check_nested(spec: Pipeline, loc: storage.Location, schema) -> None:
    import pyarrow as pa

    for field in schema:  # nested values (struct, list, map) fit no schema type: name the column
        if pa.types.is_nested(field.type):
            raise IngestError(_column_type_problem(spec, loc, field.name, field.type, "nested values"))


def _to_pandas(spec: Pipeline, loc: storage.Location, table) -> "pd.DataFrame":
    """A parquet table (or record batch) as pandas; a column pandas cannot take is named."""
    import pyarrow as pa

    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        for name in table.column_names:  # find the column pandas cannot take, to name it
            try:
                table.select([name]).to_pandas()
            except (pa.ArrowException, ValueError, TypeError) as column_exc:
                reason = errors.clip(column_exc, 200)
                raise IngestError(_column_type_problem(spec, loc, name, table.schema.field(name).type, reason),
                                  detail=str(column_exc)) from None
        raise IngestError(f"{loc.display}: not a readable parquet file ({errors.clip(exc, 300)})", detail=str(exc)) from None


def parquet_chunks(spec: Pipeline, loc: storage.Location, size: int, batch_rows: int) -> Iterator["pd.DataFrame"]:
    """One parquet file as frames of at most `batch_rows` rows (record batches), with read_file's messages; a file
    without rows yields one empty frame, so its columns are still checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if size == 0:
        raise IngestError(f"{loc.display}: file is empty (0 bytes)")
    try:
        reader = pq.ParquetFile(loc.path, filesystem=loc.fs)
        schema = reader.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{loc.display}: not a readable parquet file ({errors.clip(exc, 300)})", detail=str(exc)) from None
    _check_nested(spec, loc, schema)
    any_rows = False
    for group in range(reader.metadata.num_row_groups):  # one call per row group: memory stays at one batch
        try:
            batches = list(reader.iter_batches(batch_size=batch_rows, row_groups=[group]))
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"{loc.display}: not a readable parquet file ({errors.clip(exc, 300)})", detail=str(exc)) from None
        for batch in batches:
            if batch.num_rows:
                any_rows = True
                yield _to_pandas(spec, loc, pa.Table.from_batches([batch], schema=schema)).reset_index(drop=True)
    if not any_rows:
        yield _to_pandas(spec, loc, schema.empty_table())


def _column_type_problem(spec: Pipeline, loc: storage.Location, name: str, arrow_type, reason: str) -> str:
    """`file: column 'grade' is struct<g: string> in the file (nested values); the schema declares category: ...`"""
    column = spec.columns.get(name)
    found = f"{loc.display}: column '{errors.clip(name)}' is {errors.clip(arrow_type, 120)} in the file ({reason})"
    if column is None:
        return f"{found}; it is not declared in schema"
    return f"{found}; the schema declares {column.type}: expected {PARQUET_TYPES.get(column.type, column.type)}"


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
        raise IngestError(f"{loc.display}: not a readable CSV file ({errors.clip(exc, 300)})", detail=str(exc)) from None
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
                raise IngestError(f"{loc.display}: column '{name}': values are not ISO-8601 timestamps ({errors.clip(exc, 200)})",
                                  detail=str(exc)) from None
    return frame


def _check_columns(spec: Pipeline, frame: "pd.DataFrame", where: str, *, with_target: bool) -> None:
    """Every file must carry the declared columns, so one odd file cannot hide as nulls after concat."""
    computed = spec.source.computed_key
    if computed and computed in frame.columns:
        raise IngestError(f"{where}: column '{computed}' is computed by ingest (source.row_key: {spec.source.row_key}) "
                          "and must not be in the file: rename or remove it")
    declared = [c for c in spec.columns if (with_target or c != spec.target.column) and c != computed]
    missing = [c for c in declared if c not in frame.columns]
    allowed = set(spec.columns)
    extra = [c for c in frame.columns if c not in allowed]
    if missing:
        declared_as = spec.columns[missing[0]].type
        raise IngestError(f"{where}: column '{missing[0]}' is missing (declared in schema) — expected {declared_as} values; "
                          f"file has {errors.examples(map(str, frame.columns), shown=30)}")
    if extra:
        raise IngestError(f"{where}: column '{errors.clip(extra[0])}' ({frame.dtypes.iloc[list(frame.columns).index(extra[0])]}) is not declared in schema; "
                          f"declared: {errors.examples(spec.columns, shown=30)}")


def localise_times(spec: Pipeline, frame: "pd.DataFrame", where: str) -> "pd.DataFrame":
    """Naive values of the event time and of `timestamp` columns are wall-clock times in `source.timezone`
    (default UTC): localise them, refusing times that do not exist or are ambiguous there (DST changes)."""
    import pandas as pd

    columns = {name for name, col in spec.columns.items() if col.type == "timestamp"} | {spec.source.event_time} - {None}
    for name in sorted(c for c in columns if c in frame.columns):
        values = frame[name]
        if not pd.api.types.is_datetime64_dtype(values.dtype) or isinstance(values.dtype, pd.DatetimeTZDtype):
            continue  # aware already, or not times at all (the event-time check and validation report those)
        try:
            frame[name] = values.dt.tz_localize(spec.source.timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as exc:  # pytz/zoneinfo AmbiguousTimeError and NonExistentTimeError are ValueErrors
            raise IngestError(f"{where}: column '{name}': naive times cannot be read in source.timezone "
                              f"{spec.source.timezone} ({exc}); write them with a UTC offset") from None
    return frame


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
            f"(got dtype {values.dtype}); write them as ISO-8601 times, with a UTC offset or in source.timezone"
        )
    missing = int(values.isna().sum())
    if missing:  # a row without an event time belongs to no window: never drop it silently
        raise_event_time_problems(spec, where, day, missing, 0)
    if day is not None:
        raise_event_time_problems(spec, where, day, 0, _outside_day(values, day))


def event_time_problems(spec: Pipeline, frame: "pd.DataFrame", where: str, day: date | None) -> tuple[int, int]:
    """(rows without an event time, rows outside the partition's day) of one chunk of a file; a wrong dtype raises at
    once. The streamed ingest sums them over a file's chunks and calls raise_event_time_problems, so the counts in
    the message are the file's, as `_check_event_times` reports them on the whole file."""
    import pandas as pd

    column = spec.source.event_time
    if not column or frame.empty:
        return 0, 0
    values = frame[column]
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        _check_event_times(spec, frame, where, None)  # raises the dtype message
    missing = int(values.isna().sum())
    if day is None:
        return missing, 0
    return missing, _outside_day(values, day)


def _outside_day(values: "pd.Series", day: date) -> int:
    """Event times (time-zone aware, nulls apart) outside the UTC day `day`: two comparisons with its bounds, not one
    Python date per row (a quarter of a streamed ingest's own time)."""
    import pandas as pd

    start = pd.Timestamp(day, tz="UTC")
    return int((values.notna() & ~((values >= start) & (values < start + pd.Timedelta(days=1)))).sum())


def raise_event_time_problems(spec: Pipeline, where: str, day: date | None, missing: int, outside: int) -> None:
    column = spec.source.event_time
    if missing:
        raise IngestError(f"{where}: column '{column}': {missing} rows have no event time (null); every row needs one")
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


def check_types_agree(frames: list["pd.DataFrame"], names: list[str], spec: Pipeline | None = None) -> None:
    """A column stored as text in one file and as numbers in another cannot be concatenated into one snapshot:
    name the file that disagrees with the first one (int64 next to float64 is fine: both are numbers), and the
    type the schema declares when `spec` is given."""
    first: dict[str, tuple[str, str, object]] = {}
    for frame, name in zip(frames, names):
        types_agree_with(first, frame, name, spec)


def types_agree_with(first: dict, frame: "pd.DataFrame", name: str, spec: Pipeline | None = None) -> None:
    """check_types_agree one file (or chunk) at a time: `first` holds each column's first (family, file, dtype)."""
    for column in frame.columns:
        family = _type_family(frame[column].dtype)
        if family is None:
            continue
        seen = first.setdefault(column, (family, name, frame[column].dtype))
        if seen[0] != family:
            declared = spec.columns.get(column) if spec is not None else None
            expected = f" (the schema declares {declared.type})" if declared is not None else ""
            raise IngestError(f"{name}: column '{errors.clip(column)}' is {frame[column].dtype} here but {seen[2]} in "
                              f"{seen[1]}: a column must have one type in every file{expected}")


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
        frame = localise_times(spec, frame, loc.display)
        daily = spec.source.partitioning == "daily" and uri is None
        _check_event_times(spec, frame, loc.display, _partition_day(loc) if daily else None)
        frames.append(frame)
        names.append(loc.display)
    if not frames:
        columns = [c for c in spec.columns if with_target or c != spec.target.column]
        empty = {c: pd.Series(dtype="str" if c == spec.source.computed_key else "float64") for c in columns}
        return pd.DataFrame(empty), names
    check_types_agree(frames, names, spec)
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    rows = add_row_key(spec, rows)  # before the window filter: a row's key never depends on the window
    kept = [len(f) for f in frames]
    if window is not None and spec.source.event_time:
        times = rows[spec.source.event_time]
        inside = ((times >= window.start) & (times < window.end)).to_numpy()
        kept = [int(inside[end - n:end].sum()) for end, n in zip(itertools.accumulate(kept), kept)]
        rows = rows[inside].reset_index(drop=True)
    if file_rows is not None:
        file_rows.extend([name, n] for name, n in zip(names, kept))
    return rows, names


def streams(spec: Pipeline, uri: str | None = None) -> bool:
    """Whether stream_rows can read this source chunk by chunk: parquet files (CSV files and Snowflake go through
    read_rows' one frame)."""
    return spec.source.format == "parquet" and not (spec.source.snowflake and uri is None)


def stream_rows(spec: Pipeline, window: Window | None, uri: str | None = None, *, with_target: bool, require_all: bool,
                file_rows: list | None = None, names: list | None = None, batch_rows: int = 65_536,
                files: list | None = None) -> Iterator["pd.DataFrame"]:
    """read_rows without holding the window: the same rows, checks and messages, one chunk (a record batch of at most
    `batch_rows` rows of one parquet file) at a time. Per-file counts (rows without an event time, outside the
    partition) are summed over the file's chunks before its message is raised; types must agree with the first file
    (check_types_agree); row keys number repeats across the whole read. `names` receives each file read, `file_rows`
    `[file, rows kept]`, as read_rows fills them; `files` may pass source_files' list when the caller has it."""
    if not streams(spec, uri):
        raise ValueError(f"{spec.source.location}: stream_rows reads parquet files only; use read_rows")
    names = [] if names is None else names
    first: dict = {}
    seen: dict[str, int] = {}
    daily = spec.source.partitioning == "daily" and uri is None
    for loc, size in files if files is not None else source_files(spec, window, uri, require_all=require_all):
        day = _partition_day(loc) if daily else None
        missing = outside = kept = 0
        for frame in parquet_chunks(spec, loc, size, batch_rows):
            _check_columns(spec, frame, loc.display, with_target=with_target)
            frame = localise_times(spec, frame, loc.display)
            chunk_missing, chunk_outside = event_time_problems(spec, frame, loc.display, day)
            missing, outside = missing + chunk_missing, outside + chunk_outside
            if missing or outside:
                continue  # the file fails once its counts are complete; nothing of it is yielded
            types_agree_with(first, frame, loc.display, spec)
            frame = add_row_key_streamed(spec, frame, seen)  # before the window filter, like read_rows
            if window is not None and spec.source.event_time:
                times = frame[spec.source.event_time]
                inside = ((times >= window.start) & (times < window.end)).to_numpy()
                if not inside.all():
                    frame = frame[inside].reset_index(drop=True)
            kept += len(frame)
            yield frame
        raise_event_time_problems(spec, loc.display, day, missing, outside)
        names.append(loc.display)
        if file_rows is not None:
            file_rows.append([loc.display, kept])


def _read_snowflake(spec: Pipeline, window: Window | None, *, with_target: bool) -> tuple["pd.DataFrame", list[str]]:
    """The interval's rows from a Snowflake table or query, checked like a file would be."""
    from nightshift.io import snowflake

    if window is None:
        raise IngestError(f"{spec.source.location}: a Snowflake source needs a time window")
    rows = snowflake.read_source(spec, window.start, window.end, with_target=with_target)
    _check_columns(spec, rows, spec.source.location, with_target=with_target)
    rows = localise_times(spec, rows, spec.source.location)
    _check_event_times(spec, rows, spec.source.location, None)
    return add_row_key(spec, rows), [spec.source.location]


ROW_KEY_DIGITS = 16  # hex digits of SHA-1 kept: 64 bits


def row_key_columns(spec: Pipeline) -> list[str]:
    """The columns a computed row key is made of: every declared column but the target and the key, by name."""
    return sorted(c for c in spec.columns if c not in (spec.target.column, spec.source.computed_key))


def canonical_text(series: "pd.Series", logical: str) -> "pd.Series":
    """One value's text form for the row key, independent of the dtype the reader chose: whole numbers without a
    decimal point (1 and 1.0 alike, so an integer column read with nulls keeps its keys), other numbers as Python's
    shortest repr, times as UTC `YYYY-MM-DDTHH:MM:SS.ffffff`, booleans True/False, anything else as str(); null as
    the record separator `\x1e` (a NUL would be lost in numpy text arrays)."""
    import numpy as np
    import pandas as pd
    from pandas.api import types as pt

    present = series.notna()
    dtype = series.dtype
    if pt.is_bool_dtype(dtype):
        text = series.astype(object).map(str)
    elif pt.is_numeric_dtype(dtype):
        values = series.astype("float64")
        whole = present & np.isfinite(values) & ((values % 1) == 0) & (values.abs() < 2**53)
        text = values.map(repr).astype(object)
        text[whole] = values[whole].astype("int64").map(str)
    elif pt.is_datetime64_any_dtype(dtype) or logical in ("timestamp", "date"):
        times = pd.to_datetime(series, utc=True, errors="coerce", format="mixed") if not pt.is_datetime64_any_dtype(dtype) else series
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        text = times.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype(object)
        text[times.isna() & present] = series[times.isna() & present].map(str)
    else:
        text = series.astype(object).map(str)
    return text.where(present, "\x1e").astype(object)


def add_row_key(spec: Pipeline, frame: "pd.DataFrame") -> "pd.DataFrame":
    """With `source.row_key: hash`, add the key column: SHA-1 of the row's canonical values (row_key_columns, joined
    by the unit separator \x1f), first ROW_KEY_DIGITS hex digits; the n-th repeat of an identical row in the same
    read gets `-n` appended, so keys stay unique. Deterministic: the same row gets the same key at training and at
    scoring, whatever the run, process or dtype the file was read with. Without row_key the frame is returned as is."""
    column = spec.source.computed_key
    if column is None:
        return frame
    digests = row_digests(spec, frame)
    repeat = digests.groupby(digests, sort=False).cumcount()
    keys = digests.where(repeat == 0, digests + "-" + repeat.astype(str))
    return frame.assign(**{column: keys.astype("str")})


def row_digests(spec: Pipeline, frame: "pd.DataFrame") -> "pd.Series":
    """The first ROW_KEY_DIGITS hex digits of each row's SHA-1 (see add_row_key), before repeats are numbered."""
    import pandas as pd

    parts = [canonical_text(frame[c], spec.columns[c].type) for c in row_key_columns(spec) if c in frame.columns]
    if parts:
        joined = parts[0].str.cat(parts[1:], sep="\x1f") if len(parts) > 1 else parts[0]
    else:
        joined = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return pd.Series([hashlib.sha1(text.encode("utf-8")).hexdigest()[:ROW_KEY_DIGITS] for text in joined],
                     index=frame.index, dtype=object)


def add_row_key_streamed(spec: Pipeline, frame: "pd.DataFrame", seen: dict[str, int]) -> "pd.DataFrame":
    """add_row_key for one chunk of a read: `seen` (digest → rows with it so far, carried from chunk to chunk) numbers
    repeats across the whole read exactly as add_row_key numbers them on the concatenated frame."""
    column = spec.source.computed_key
    if column is None:
        return frame
    digests = row_digests(spec, frame)
    repeat = digests.groupby(digests, sort=False).cumcount()
    if seen:
        repeat = repeat + digests.map(seen).fillna(0).astype("int64")
    for digest, count in digests.value_counts(sort=False).items():
        seen[digest] = seen.get(digest, 0) + int(count)
    keys = digests.where(repeat == 0, digests + "-" + repeat.astype(str))
    return frame.assign(**{column: keys.astype("str")})


@contextlib.contextmanager
def detail_kept(run_dir: str | None) -> Iterator[None]:
    """An IngestError whose message had to leave something out gets its full text written to
    `{run_dir}/ingest/failure.txt`, and names it (best effort: never hides the failure itself)."""
    try:
        yield
    except IngestError as exc:
        if run_dir and exc.truncated and exc.detail_at is None:
            uri = f"{run_dir.rstrip('/')}/ingest/failure.txt"
            try:
                loc = storage.locate(uri)
                loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
                with loc.fs.open_output_stream(loc.path) as out:
                    out.write(exc.detail.encode("utf-8"))
                exc.with_detail_at(uri)
                exc.args = (errors.bounded(f"{exc.full_message} (full text: {uri})"),)
            except Exception as write_exc:  # noqa: BLE001 - reporting must not mask the data failure
                log.warning("could not write the full ingest failure text to %s: %s", uri, write_exc)
        raise


def describe_files(names: list[str]) -> str:
    """Short description of the files read, for messages: the first, and how many more."""
    if not names:
        return "no files"
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more files"


TRAINING_GROUP_ROWS = 262_144  # row groups of a streamed training snapshot: what ingest holds at most, plus one chunk


def _stream_training_rows(spec: Pipeline, window: Window, uri: str, file_rows: list) -> tuple[int, list[str], str]:
    """The window's rows (parquet, event time) copied chunk by chunk into the snapshot: (rows, files read, data hash)."""
    import pandas as pd

    from nightshift.steps import snapshot

    files = source_files(spec, window, require_all=False)
    writer = snapshot.SnapshotWriter(uri, TRAINING_GROUP_ROWS, snapshot.source_hints(files)[0], hash_rows=True)
    names: list[str] = []
    for frame in stream_rows(spec, window, with_target=True, require_all=False, file_rows=file_rows, names=names, files=files):
        writer.write(frame)
    rows = writer.close(pd.DataFrame({c: pd.Series(dtype="float64") for c in spec.columns}))
    return rows, names, writer.data_hash()


def ingest_training(spec: Pipeline, interval_end: datetime, run_dir: str, window_end: date | None = None) -> dict:
    """Read the training window, enforce the minimum row count, snapshot it; return a small summary.

    Parquet sources with an event time stream into the snapshot (the window never becomes one frame); CSV, Snowflake
    and sources without an event time are read into one frame first."""
    from nightshift.steps import snapshot

    window = training_window(spec, interval_end, window_end)
    file_rows: list = []
    uri = f"{run_dir}/ingest/snapshot.parquet"
    streamed = bool(spec.source.event_time) and streams(spec)
    with detail_kept(run_dir):
        if streamed:
            count, names, digest = _stream_training_rows(spec, window, uri, file_rows)
        else:
            rows, names = read_rows(spec, window if spec.source.event_time else None, with_target=True, require_all=False,
                                    file_rows=file_rows)
            count, digest = len(rows), snapshot.data_hash(rows)
    if count < spec.training.min_rows:
        raise IngestError(
            f"{describe_files(names) if names else spec.source.location}: the training window "
            f"[{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d}) holds {count} rows; training.min_rows is {spec.training.min_rows}"
        )
    if not streamed:  # the frame path writes its snapshot only once the window is known to be large enough
        storage.write_parquet(rows, uri)
    summary = {
        "snapshot_uri": uri,
        "source": describe_files(names),
        "files": len(names),
        "file_rows": file_rows,
        "rows": count,
        "window": window.as_dict() if spec.source.event_time else None,
        "data_hash": digest,
    }
    log.info("ingested %(rows)d rows from %(source)s", summary)
    return summary
