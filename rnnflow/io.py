"""I/O at the edges: Parquet in record batches, atomic files and directories.

Every hop writes its whole output into a temporary sibling directory and renames it into
place only after validation passed, so a failed or interrupted hop leaves nothing
half-written where DVC (or the next hop) would look, and a failed hop leaves the previous
output as it was. A temporary directory carries its owner's pid in its name
(``.<name>.tmp-<pid>-<random>``), so one left by a killed process is removed by the next
run (:func:`remove_orphans`). Outputs get the user's umask, not ``mkdtemp``'s 0700.

Reading errors name the file: a damaged Parquet file raises :class:`ParquetReadError`
(path, cause, and how to re-create it); a failed write raises ``OSError`` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
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

#: How a damaged input is re-created, when the hop that wrote it is not known here.
REGENERATE_HINT = "re-create it with `dvc repro` (or `dvc checkout --force`)"


class ParquetReadError(ValueError):
    """A Parquet file cannot be read (damaged, truncated, not Parquet); names the file.

    ``path`` is the file, ``cause`` the reader's own message; ``hint`` says how to
    re-create it (a caller that knows the stage that wrote it can replace it).
    """

    def __init__(self, path: Path | str, cause: str, hint: str = REGENERATE_HINT) -> None:
        self.path = Path(path)
        self.cause = cause
        self.hint = hint
        super().__init__(self._text())

    def _text(self) -> str:
        return (
            f"{self.path}: cannot read this Parquet file, it is damaged or not Parquet "
            f"({self.cause}); {self.hint}"
        )

    def with_hint(self, hint: str) -> ParquetReadError:
        """The same error with another re-creation hint."""
        return ParquetReadError(self.path, self.cause, hint)


@contextlib.contextmanager
def _reading(path: Path | str) -> Iterator[None]:
    """Turn pyarrow's reading errors into :class:`ParquetReadError` naming ``path``."""
    try:
        yield
    except (FileNotFoundError, ParquetReadError):
        raise
    except (pa.ArrowException, OSError) as exc:
        raise ParquetReadError(path, f"{type(exc).__name__}: {exc}") from exc


def umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _chmod_default(path: Path | str, directory: bool) -> None:
    """Give ``path`` the mode a plain ``mkdir``/``open`` would (``mkstemp``/``mkdtemp``
    create 0600/0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def write_json(path: Path | str, obj: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    write_bytes(path, text.encode())


def write_bytes(path: Path | str, payload: bytes) -> None:
    """Write bytes atomically (temp file in the same directory, then rename); the file gets
    the umask's mode and a failed write names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        _chmod_default(tmp, directory=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _write_error(path, exc) from exc
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


def _write_error(path: Path | str, exc: OSError) -> OSError:
    """``exc`` as an ``OSError`` that names ``path`` (and says so when the disk is full)."""
    if str(path) in str(exc):
        return exc
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why += " (disk full or quota exceeded: free space, then run again)"
    return OSError(exc.errno, f"{path}: cannot write: {why}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OverflowError:
        return False
    return True


def remove_orphans(final: Path | str) -> list[Path]:
    """Remove temp/old siblings of ``final`` left by a process that no longer runs.

    Only ``.<name>.tmp-<pid>-*`` and ``.<name>.old-<pid>`` entries of this very output are
    considered, and only those whose ``pid`` is not a live process (a concurrent run of
    the same hop keeps its own). A previous output set aside by a swap that was killed
    before the new one moved in is put back rather than removed. Returns what was removed.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(tmp|old)-(\d+)(?:-.*)?$")
    removed = []
    for entry in final.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or int(m.group(2)) == os.getpid() or _pid_alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not (final.exists() or final.is_symlink()):
            os.replace(entry, final)  # killed mid-swap: the old output is the last good one
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_dir(final: Path | str) -> Iterator[Path]:
    """Yield a temp directory that replaces ``final`` only if the block succeeds.

    The previous ``final`` stays untouched until the new one is complete: it is renamed
    aside, the new one renamed in, then the old one deleted; if the swap fails the old one
    is put back. Orphaned temp directories of ``final`` (their process gone) are removed
    first. The temp directory gets the umask's permissions, not 0700.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        _chmod_default(tmp, directory=True)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    try:
        if old.exists() or old.is_symlink():
            remove_stale(old)
        moved = False
        if final.exists() or final.is_symlink():
            os.replace(final, old)
            moved = True
        try:
            os.replace(tmp, final)
        except BaseException:
            if moved:
                os.replace(old, final)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_stale(old, missing_ok=True)


def remove_stale(final: Path | str, missing_ok: bool = True) -> None:
    """Remove a file or directory tree (hops no longer call this before running: the
    previous output is replaced only by a complete new one, see :func:`atomic_dir`)."""
    final = Path(final)
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.exists() or final.is_symlink():
        final.unlink()
    elif not missing_ok:
        raise FileNotFoundError(final)


def write_table(path: Path | str, table: pa.Table) -> None:
    """Write one table as a Parquet file (zstd, large row groups)."""
    try:
        pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    except OSError as exc:
        raise _write_error(path, exc) from exc


class BatchWriter:
    """Streams record batches into one Parquet file; opened lazily on the first batch."""

    def __init__(self, path: Path | str, schema: pa.Schema | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows; an empty first batch still fixes the schema."""
        try:
            if self._writer is None:
                self.schema = self.schema or batch.schema
                self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
            if batch.num_rows:
                table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_ROWS)
                self.rows += batch.num_rows
        except OSError as exc:
            raise _write_error(self.path, exc) from exc

    def close(self) -> None:
        """Finish the file (an untouched writer with a schema writes an empty file)."""
        try:
            if self._writer is None and self.schema is not None:
                self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
            if self._writer is not None:
                self._writer.close()
        except OSError as exc:
            raise _write_error(self.path, exc) from exc

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: finish quietly, the first error is the one to report
            with contextlib.suppress(Exception):
                self.close()


def iter_batches(
    path: Path | str, batch_rows: int = BATCH_ROWS, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file as record batches."""
    # pre_buffer=False: the default keeps every row group read so far in memory until the
    # file closes, which makes peak RSS grow with the file instead of the batch.
    with _reading(path), pq.ParquetFile(path, pre_buffer=False) as pf:
        yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def read_table(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """Read a whole Parquet file (small tables only: splits, specs, metrics)."""
    with _reading(path):
        return pq.read_table(path, columns=columns)


def parquet_rows(path: Path | str) -> int:
    """Row count from the Parquet footer, without reading data."""
    with _reading(path):
        return pq.ParquetFile(path).metadata.num_rows
