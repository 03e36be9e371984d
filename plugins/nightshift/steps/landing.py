"""Has the run's input landed? The question a sensor asks before ingest, answered without reading data.

- daily partitions: every day of the interval has its `dt=YYYY-MM-DD/` folder with a data file in it;
- `score_uri` files: every day's file exists;
- Snowflake with `source.wait.require_rows`: the interval holds at least one row.
Each missing input is named, so a time-out says exactly what was looked for.
"""

from __future__ import annotations

from datetime import datetime

from nightshift.io import storage
from nightshift.spec import Pipeline
from nightshift.steps.ingest import is_writer_marker
from nightshift.steps.score import scoring_window


def _has_data_file(spec: Pipeline, folder: storage.Location) -> bool:
    names = (path.rsplit("/", 1)[-1] for path, _ in storage.list_files(folder))
    return any(name.endswith(f".{spec.source.format}") and not is_writer_marker(name) for name in names)


def missing_inputs(spec: Pipeline, start: datetime, end: datetime) -> list[str]:
    """What has not landed yet for the scoring interval [start, end): folders, files or a table; [] when all has."""
    window = scoring_window(start, end)  # the same whole UTC days that ingest will read
    if spec.source.snowflake is not None:
        if not spec.source.wait.require_rows:
            return []
        from nightshift.io import snowflake

        rows = snowflake.count_source_rows(spec, window.start, window.end)
        return [] if rows else [f"rows of {spec.source.location} in [{window.start:%Y-%m-%d}, {window.end:%Y-%m-%d})"]
    missing = []
    for day in window.days():
        if spec.source.event_time and spec.source.partitioning == "daily":
            folder = storage.locate(spec.source.uri).child(f"dt={day.isoformat()}")
            if not (storage.is_dir(folder) and _has_data_file(spec, folder)):
                missing.append(f"{folder.display}/*.{spec.source.format}")
        elif spec.source.score_uri:
            loc = storage.locate(spec.source.score_uri.format(ds=day.isoformat(), ds_nodash=day.strftime("%Y%m%d")))
            if not storage.exists(loc):
                missing.append(loc.display)
    return missing
