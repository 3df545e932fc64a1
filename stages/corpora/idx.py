"""IDX files (the MNIST format): strict reading and format-exact writing.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions, one uint32 per
dimension, then the payload. Reading checks every field and that the payload holds exactly
as many bytes as the header promises, so a truncated download or a wrong file fails loudly
with the file named instead of yielding a silently shorter dataset. Callers that read a
copy (``data/downloads/…``) pass ``origin`` (e.g. the params entry and the file the user
named) so messages say where the bad bytes came from, not only where they were read.

Reading streams: the header first, then exactly the payload it declares, then whatever
trails it counted and dropped. Memory follows the real data, and nothing expands past
``max_expanded_bytes`` (the corpus's ``fetch.<corpus>.max_expanded_bytes``): a gzip "bomb"
stops at its header or at the cap, never filling memory.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rnnflow.io import write_bytes
from stages.core.config import MAX_EXPANDED_BYTES

# IDX dtype codes -> big-endian numpy dtypes (the format stores multi-byte values MSB first).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
MNIST_SIDE = 28
MNIST_CLASSES = 10


class IdxError(ValueError):
    """A file is not a well-formed IDX file of the expected kind; the message names it."""


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def describe(path: Path, origin: str | None = None) -> str:
    """How a file is named in messages: the path read, and where it came from if known."""
    return f"{path} (from {origin})" if origin else str(path)


@contextlib.contextmanager
def _opened(path: Path, name: str) -> Iterator[BinaryIO]:
    """The decompressed byte stream of ``path``; gzip damage becomes an ``IdxError``."""
    try:
        if path.suffix == ".gz" or _is_gzip(path):
            with gzip.open(path, "rb") as fh:
                yield fh  # type: ignore[misc]  # GzipFile is a binary stream
        else:
            with path.open("rb") as fh:
                yield fh
    except gzip.BadGzipFile as exc:
        raise IdxError(f"{name}: not a valid gzip file ({exc})") from exc
    except (EOFError, zlib.error) as exc:
        raise IdxError(f"{name}: truncated or corrupt gzip stream ({exc})") from exc


def _read_into(fh: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``fh``; the bytes read (fewer only at the end of the stream)."""
    done = 0
    while done < len(buffer) and (n := fh.readinto(buffer[done:])):  # type: ignore[attr-defined]
        done += n
    return done


def _over_cap(name: str, what: str, limit: int) -> IdxError:
    return IdxError(
        f"{name}: {what} more than max_expanded_bytes ({limit:,} bytes): a decompression "
        f"bomb or not this file; reading stopped (raise fetch.<corpus>.max_expanded_bytes "
        f"if the file is genuine)"
    )


def read_idx(
    path: Path,
    *,
    dims: int,
    dtype_code: int = 0x08,
    origin: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into an array shaped by its header.

    ``dims`` is the expected number of dimensions (3 for MNIST images, 1 for labels) and
    ``dtype_code`` the expected element type (0x08 = unsigned byte). Raises ``IdxError``
    naming the file on any mismatch, truncation or trailing bytes, and when the file
    (decompressed) holds more than ``max_expanded_bytes``; ``origin`` (where the file came
    from: a params entry, the user's path) is added to the name in messages.
    """
    path = Path(path)
    if dtype_code not in IDX_DTYPES:
        raise ValueError(f"unknown IDX dtype code 0x{dtype_code:02X}")
    name = describe(path, origin)
    dtype = IDX_DTYPES[dtype_code]
    with _opened(path, name) as fh:
        magic = fh.read(4)
        if len(magic) < 4:
            raise IdxError(f"{name}: {len(magic)} bytes, too short for an IDX header")
        if magic[0] != 0 or magic[1] != 0:
            raise IdxError(f"{name}: bad magic {magic.hex()}: IDX files start with two zero bytes")
        if magic[2] != dtype_code:
            raise IdxError(f"{name}: dtype code 0x{magic[2]:02X}, expected 0x{dtype_code:02X}")
        if magic[3] != dims:
            raise IdxError(f"{name}: header has {magic[3]} dimensions, expected {dims}")
        header_len = 4 + 4 * dims
        sizes = fh.read(4 * dims)
        if len(sizes) < 4 * dims:
            raise IdxError(f"{name}: truncated header ({4 + len(sizes)} of {header_len} bytes)")
        shape = struct.unpack(f">{dims}I", sizes)
        expected = math.prod(shape) * dtype.itemsize
        claim = f"header says {'×'.join(map(str, shape))} = {expected} bytes"
        if header_len + expected > max_expanded_bytes:
            raise _over_cap(name, f"{claim},", max_expanded_bytes)
        # np.empty takes no memory until written: the payload read decides, not the claim.
        payload = np.empty(expected, dtype=np.uint8)
        present = _read_into(fh, payload.data)
        if present < expected:
            raise IdxError(f"{name}: truncated: {claim} but only {present} present")
        # Trailing bytes are counted, not kept, and only up to the cap.
        trailing, limit = 0, max_expanded_bytes - header_len - expected
        while chunk := fh.read(1 << 20):
            trailing += len(chunk)
            if trailing > limit:
                raise _over_cap(name, f"{claim}, then trailing bytes:", max_expanded_bytes)
    if trailing:
        raise IdxError(
            f"{name}: {claim} but {expected + trailing} present "
            f"({trailing} bytes of trailing garbage)"
        )
    # Native byte order for downstream maths; the array is writable (callers normalise).
    array = payload.view(dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def read_mnist_pair(
    images: Path,
    labels: Path,
    *,
    images_origin: str | None = None,
    labels_origin: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST images (N, 28, 28) and labels (N,) and check they belong together.

    ``images_origin``/``labels_origin``: where each file came from, for messages;
    ``max_expanded_bytes``: the cap on each file (see :func:`read_idx`).
    """
    x = read_idx(images, dims=3, origin=images_origin, max_expanded_bytes=max_expanded_bytes)
    y = read_idx(labels, dims=1, origin=labels_origin, max_expanded_bytes=max_expanded_bytes)
    images_name, labels_name = describe(images, images_origin), describe(labels, labels_origin)
    if x.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise IdxError(
            f"{images_name}: images are {x.shape[1]}×{x.shape[2]}, "
            f"expected {MNIST_SIDE}×{MNIST_SIDE}"
        )
    if len(x) != len(y):
        raise IdxError(
            f"{images_name} holds {len(x)} images but {labels_name} holds {len(y)} labels"
        )
    bad = np.flatnonzero(y >= MNIST_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise IdxError(
            f"{labels_name}: label {int(y[i])} at index {i} is outside "
            f"0..{MNIST_CLASSES - 1} ({bad.size} bad labels in all)"
        )
    return x, y


def _dtype_code(dtype: np.dtype) -> int:
    for code, idx_dtype in IDX_DTYPES.items():
        if idx_dtype.kind == dtype.kind and idx_dtype.itemsize == dtype.itemsize:
            return code
    raise ValueError(
        f"dtype {dtype} has no IDX type code "
        f"(supported: uint8, int8, int16, int32, float32, float64)"
    )


def write_idx(path: Path, array: np.ndarray, *, gzip_: bool = True) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if ``gzip_``), atomically.

    The gzip header carries no timestamp, so equal arrays give byte-identical files (stable
    checksums for fixtures and DVC).
    """
    array = np.asarray(array)
    code = _dtype_code(array.dtype)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    if any(n >= 2**32 for n in array.shape):
        raise ValueError(f"IDX dimensions must fit in uint32, got {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if gzip_:
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
            gz.write(data)
        data = buffer.getvalue()
    write_bytes(path, data)  # atomically, with the umask's mode
