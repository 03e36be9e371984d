"""Snapshots: the rows a run reads, copied once into its run folder as one parquet file, and their content hash.

A snapshot is written chunk by chunk (SnapshotWriter), so ingest never holds a whole day or training window; what the
run then validates, splits, trains on and scores is that file, whatever lands in the source afterwards.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from nightshift.io import storage

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def row_hashes(frame: "pd.DataFrame") -> bytes:
    """One 64-bit hash per row. Integer and boolean columns hash as floats: a column read in chunks is int64 in a chunk
    without nulls and float64 in one with them, and the hash must not depend on where the chunks were cut."""
    import pandas as pd

    numeric = {c: "float64" for c in frame.columns
               if pd.api.types.is_integer_dtype(frame[c].dtype) or pd.api.types.is_bool_dtype(frame[c].dtype)}
    return pd.util.hash_pandas_object(frame.astype(numeric) if numeric else frame, index=False).values.tobytes()


def data_hash(frame: "pd.DataFrame") -> str:
    """Content hash of a frame, recorded with the model so its training data can be identified."""
    digest = hashlib.sha256(row_hashes(frame))
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


class SnapshotWriter:
    """Writes checked chunks (pandas frames) into one parquet file in row groups of exactly `group_rows` rows (the
    last one shorter), holding at most one row group plus one chunk. The file's schema is the first non-empty chunk's,
    with `hints` (column → arrow type from the source files' schemas) for what one chunk cannot tell: a column that is
    float in any file is float throughout (pd.concat's int64 + float64), an all-null column takes the type the files
    give it; dictionaries are decoded to their values (pd.concat of differing categories gives their values too)."""

    def __init__(self, uri: str, group_rows: int, hints: dict | None = None, hash_rows: bool = False):
        self.loc = storage.locate(uri)
        self.digest = hashlib.sha256() if hash_rows else None  # data_hash of the written rows, row group by row group
        self.loc.fs.create_dir(self.loc.path.rsplit("/", 1)[0], recursive=True)
        self.group_rows, self.hints = max(1, group_rows), hints or {}
        self.schema = self.writer = None
        self.pending: list = []
        self.pending_rows = self.rows = 0
        self.empty = None  # the first chunk, kept while every chunk is empty: its columns make an empty snapshot

    def _schema(self, table: "pa.Table") -> "pa.Schema":
        import pyarrow as pa

        fields = []
        for f in table.schema:
            kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
            hint = self.hints.get(f.name)
            hint = hint.value_type if hint is not None and pa.types.is_dictionary(hint) else hint
            if pa.types.is_null(kind) and hint is not None:
                kind = hint
            elif pa.types.is_integer(kind) and hint is not None and pa.types.is_floating(hint):
                kind = pa.float64()
            fields.append(pa.field(f.name, kind))
        return pa.schema(fields)

    def write(self, frame: "pd.DataFrame", extra: dict | None = None) -> None:
        """Append a chunk; `extra` adds arrow columns (name → array of the chunk's length) after the frame's."""
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        for name, values in (extra or {}).items():
            table = table.append_column(name, values)
        if not len(frame):
            self.empty = table if self.empty is None else self.empty
            return
        if self.schema is None:
            self.schema = self._schema(table)
        self.pending.append(table.replace_schema_metadata(None).cast(self.schema))
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        if self.pending_rows >= self.group_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        whole = table.num_rows if final else table.num_rows - table.num_rows % self.group_rows
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.loc.path, self.schema, filesystem=self.loc.fs)
        if whole:
            written = table.slice(0, whole)
            self.writer.write_table(written, row_group_size=self.group_rows)
            if self.digest is not None:
                self.digest.update(row_hashes(written.to_pandas()))
        rest = table.slice(whole)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self, empty: "pd.DataFrame | None" = None) -> int:
        """Finish the file; with no rows at all, write the first (empty) chunk's columns, else `empty`'s, without rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush(final=True)
        if self.writer is not None:
            self.writer.close()
        else:
            table = self.empty if self.empty is not None else pa.Table.from_pandas(empty, preserve_index=False)
            pq.write_table(table.replace_schema_metadata(None), self.loc.path, filesystem=self.loc.fs)
        return self.rows

    def data_hash(self) -> str:
        """The written rows' content hash, equal to data_hash() of the same rows as one frame."""
        digest = self.digest.copy()
        digest.update(",".join(self.schema.names if self.schema is not None else []).encode())
        return digest.hexdigest()[:16]


def source_hints(files: list) -> tuple[dict, int]:
    """Arrow types per column over the files' footers (first non-null type; float wins over int), and their rows:
    metadata only, best effort (a file that cannot be read here fails with its own message when it is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hints: dict = {}
    rows = 0
    for loc, size in files:
        try:
            meta = pq.ParquetFile(loc.path, filesystem=loc.fs)
            schema, n = meta.schema_arrow, meta.metadata.num_rows
        except Exception:  # noqa: BLE001 - the real read reports it, naming the file
            continue
        rows += n
        for f in schema:
            kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
            seen = hints.get(f.name)
            if seen is None or pa.types.is_null(seen) or (pa.types.is_integer(seen) and pa.types.is_floating(kind)):
                hints[f.name] = kind
    return hints, rows
