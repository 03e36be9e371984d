"""OpenLineage datasets for what the steps read and write, reported by each operator.

Operators keep what they touched on `self` while executing; the OpenLineage provider's listener
then calls `get_openlineage_facets_on_complete` in the same process. Names follow OpenLineage's
conventions: files by scheme and path, Snowflake by account and DATABASE.SCHEMA.TABLE, DuckDB by
file, and a registered model version as `models/<name>/<version>` under the tracking URI.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from nightshift import config


def location_dataset(uri: str) -> tuple[str, str]:
    """(namespace, name) of a file or folder: `s3://bucket` + key, or `file` + absolute path."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        bucket = parsed.netloc.rsplit("@", 1)[-1]  # s3://conn@bucket/... names the bucket only
        return f"s3://{bucket}", parsed.path.lstrip("/")
    path = uri.removeprefix("file://")
    if not path.startswith("/"):
        path = str((config.project_root() / path).resolve())
    return "file", path


def model_dataset(name: str, version: str | int) -> tuple[str, str]:
    return config.mlflow_tracking_uri(), f"models/{name}/{version}"


def table_dataset(table: str, conn_id: str | None) -> tuple[str, str]:
    """The warehouse table: Snowflake by connection, else the embedded DuckDB file."""
    if conn_id:
        return f"snowflake://{conn_id}", table.upper()
    return f"duckdb://{config.warehouse_path()}", table.upper()


def source_datasets(spec: Any, files: list | None) -> list[tuple[str, str]]:
    """The partitions or files a run read (falls back to the source's location)."""
    if spec.source.snowflake is not None:
        return [table_dataset(spec.source.snowflake.table, spec.source.snowflake.conn_id)]
    names = sorted({str(f[0]) for f in files or [] if f})
    return [location_dataset(n) for n in names] or [location_dataset(spec.source.location)]


def operator_lineage(inputs: list[tuple[str, str]], outputs: list[tuple[str, str, int | None]]) -> Any:
    """An OperatorLineage with plain datasets in, and datasets with row counts out."""
    from airflow.providers.common.compat.openlineage.facet import Dataset, OutputStatisticsOutputDatasetFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    out = []
    for namespace, name, rows in outputs:
        facets = {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)} if rows is not None else {}
        out.append(Dataset(namespace=namespace, name=name, facets=facets))
    return OperatorLineage(inputs=[Dataset(namespace=ns, name=n) for ns, n in inputs], outputs=out)


class LineageMixin:
    """Collects (inputs, outputs) during execute and hands them to the OpenLineage listener."""

    _lineage_inputs: list[tuple[str, str]]
    _lineage_outputs: list[tuple[str, str, int | None]]

    def record_lineage(self, inputs: list[tuple[str, str]] = (), outputs: list[tuple[str, str, int | None]] = ()) -> None:
        self._lineage_inputs = [*getattr(self, "_lineage_inputs", []), *inputs]
        self._lineage_outputs = [*getattr(self, "_lineage_outputs", []), *outputs]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(getattr(self, "_lineage_inputs", []), getattr(self, "_lineage_outputs", []))
