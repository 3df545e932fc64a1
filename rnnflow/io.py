"""I/O at the edges: Parquet in record batches, atomic files and directories.

Every hop writes its whole output into a temporary sibling directory and renames it into
place only after validation passed, so a failed or interrupted hop leaves nothing
half-written where DVC (or the next hop) would look.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Row groups of ~64k rows keep memory flat when streaming and files few and large.
ROW_GROUP_ROWS = 65_536
BATCH_ROWS = 65_536


def write_json(path: Path | str, obj: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path | str) -> Any:
    """Read a JSON file."""
    with Path(path).open() as fh:
        return json.load(fh)


@contextlib.contextmanager
def atomic_dir(final: Path | str) -> Iterator[Path]:
    """Yield a temp directory that replaces ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale(final: Path | str) -> None:
    """Remove a previous output so a failing hop cannot leave an old one looking current."""
    final = Path(final)
    if final.is_dir():
        shutil.rmtree(final)
    elif final.exists():
        final.unlink()


def write_table(path: Path | str, table: pa.Table) -> None:
    """Write one table as a Parquet file (zstd, large row groups)."""
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)


class BatchWriter:
    """Streams record batches into one Parquet file; opened lazily on the first batch."""

    def __init__(self, path: Path | str, schema: pa.Schema | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows; an empty first batch still fixes the schema."""
        if self._writer is None:
            self.schema = self.schema or batch.schema
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        if batch.num_rows:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_ROWS)
            self.rows += batch.num_rows

    def close(self) -> None:
        """Finish the file (an untouched writer with a schema writes an empty file)."""
        if self._writer is None and self.schema is not None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_batches(path: Path | str, batch_rows: int = BATCH_ROWS,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file as record batches."""
    # pre_buffer=False: the default keeps every row group read so far in memory until the
    # file closes, which makes peak RSS grow with the file instead of the batch.
    with pq.ParquetFile(path, pre_buffer=False) as pf:
        yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def read_table(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """Read a whole Parquet file (small tables only: splits, specs, metrics)."""
    return pq.read_table(path, columns=columns)


def parquet_rows(path: Path | str) -> int:
    """Row count from the Parquet footer, without reading data."""
    return pq.ParquetFile(path).metadata.num_rows
