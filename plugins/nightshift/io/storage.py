"""One way to reach files, local or on S3, through pyarrow's filesystems.

A spec's uri is a local path (relative to the project root) or `s3://[conn_id@]bucket/prefix`.
Steps never branch on where data lives: they ask this module for a filesystem and a path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nightshift import config

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.fs as pafs

_S3_URI = re.compile(r"^s3://(?:(?P<conn>[A-Za-z0-9_.-]+)@)?(?P<path>[^@]+)$")


@dataclass(frozen=True)
class Location:
    """A filesystem and a path on it; `display` is what error messages show."""

    fs: "pafs.FileSystem"
    path: str
    display: str

    def child(self, name: str) -> "Location":
        return Location(self.fs, f"{self.path.rstrip('/')}/{name}", f"{self.display.rstrip('/')}/{name}")


class OutsideRoots(PermissionError):
    """A local path (after following symlinks) outside every allowed root."""


def check_inside_roots(path: str | Path, display: str | None = None) -> Path:
    """The real path (symlinks followed) of a local path, refused unless it lies inside an allowed root
    (`config.allowed_roots()`: the project's data/ and .local/, the local state folder, `NIGHTSHIFT_ALLOWED_ROOTS`)."""
    real = Path(os.path.realpath(path))
    roots = config.allowed_roots()
    if not any(real.is_relative_to(os.path.realpath(root)) for root in roots):
        raise OutsideRoots(
            f"{display or path} resolves to {real}, outside the allowed roots ({', '.join(str(r) for r in roots)}); "
            "add its folder to NIGHTSHIFT_ALLOWED_ROOTS to allow it"
        )
    return real


def locate(uri: str) -> Location:
    """Resolve a spec or artifact uri to a filesystem and path."""
    match = _S3_URI.match(uri)
    if match:
        from nightshift.io import s3

        return Location(s3.filesystem(match["conn"]), match["path"].rstrip("/"), uri)
    if uri.startswith("s3://"):
        raise ValueError(f"malformed S3 uri '{uri}': expected s3://[conn_id@]bucket/prefix")
    import pyarrow.fs as pafs

    local = Path(uri.removeprefix("file://"))
    if not local.is_absolute():
        local = config.project_root() / local
    check_inside_roots(local, uri)
    return Location(pafs.LocalFileSystem(), str(local), uri)


def exists(loc: Location) -> bool:
    import pyarrow.fs as pafs

    return loc.fs.get_file_info(loc.path).type != pafs.FileType.NotFound


def is_dir(loc: Location) -> bool:
    import pyarrow.fs as pafs

    return loc.fs.get_file_info(loc.path).type == pafs.FileType.Directory


def list_files(loc: Location) -> list[tuple[str, int]]:
    """(path, size) of the files directly inside a folder, sorted."""
    import pyarrow.fs as pafs

    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=False))
    files = sorted((i.path, i.size) for i in infos if i.type == pafs.FileType.File)
    if isinstance(loc.fs, pafs.LocalFileSystem):
        for path, _ in files:  # a symlink inside an allowed folder may point anywhere
            check_inside_roots(path)
    return files


def list_folders(loc: Location) -> list[str]:
    """Paths of the folders directly inside a folder, sorted."""
    import pyarrow.fs as pafs

    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=False))
    return sorted(i.path for i in infos if i.type == pafs.FileType.Directory)


def write_parquet(df: "pd.DataFrame", uri: str) -> str:
    """Write a frame as one parquet file (parents created); returns the uri."""
    import pyarrow as pa

    return write_table(pa.Table.from_pandas(df, preserve_index=False), uri)


def write_table(table: "pa.Table", uri: str) -> str:
    """Write an Arrow table as one parquet file (parents created); returns the uri."""
    import pyarrow.parquet as pq

    loc = locate(uri)
    loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, loc.path, filesystem=loc.fs)
    return uri


def read_table(uri: str, columns: list[str] | None = None) -> "pa.Table":
    """A parquet file as an Arrow table: about half the memory of the same rows in pandas, for steps that only
    select, sort and slice rows."""
    import pyarrow.parquet as pq

    loc = locate(uri)
    return pq.read_table(loc.path, filesystem=loc.fs, columns=columns)


def read_parquet(uri: str, columns: list[str] | None = None) -> "pd.DataFrame":
    return read_table(uri, columns).to_pandas()


def put_file(local_file: str | Path, uri: str) -> str:
    """Copy a local file to a uri (a no-op copy when both are local)."""
    loc = locate(uri)
    loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
    with open(local_file, "rb") as src, loc.fs.open_output_stream(loc.path) as dst:
        dst.write(src.read())
    return uri


def put_dir(local_dir: str | Path, uri: str) -> str:
    """Copy a local folder tree to a uri."""
    local_dir = Path(local_dir)
    for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        put_file(file, f"{uri.rstrip('/')}/{file.relative_to(local_dir).as_posix()}")
    return uri


def local_copy(uri: str, folder: str | Path) -> str:
    """A local path for a uri: the file itself when local, else a copy downloaded into `folder`."""
    import pyarrow.fs as pafs

    loc = locate(uri)
    if isinstance(loc.fs, pafs.LocalFileSystem):
        return loc.path
    target = Path(folder) / loc.path.replace("/", "__")
    with loc.fs.open_input_stream(loc.path) as src, open(target, "wb") as dst:
        while chunk := src.read(8 << 20):
            dst.write(chunk)
    return str(target)
