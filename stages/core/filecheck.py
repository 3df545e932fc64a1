"""What a source file must be (:class:`FileSpec`: its path, checksum and size), checking a
file against it, and the errors of obtaining one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for flat memory
_HEX_LEN = {"md5": 32, "sha256": 64}  # accepted algorithms and their hex digest length


@dataclass(frozen=True)
class FileSpec:
    """One source file: where it lives relative to a base URL / mirror, and its checksum."""

    path: str
    #: "md5:<hex>" or "sha256:<hex>"; None for a file trusted on first use (the caller
    #: records what arrived and pins it from then on).
    checksum: str | None
    size: int | None = None

    def __post_init__(self) -> None:
        # Validate eagerly so a typo in params fails at definition, not mid-download.
        if self.checksum is not None:
            parse_checksum(self.checksum)
        parts = PurePosixPath(self.path).parts
        if not parts or self.path.startswith("/") or ".." in parts or "\\" in self.path:
            raise ValueError(
                f"FileSpec.path must be a relative POSIX path inside the "
                f"download directory, got {self.path!r}"
            )
        if self.size is not None and self.size < 0:
            raise ValueError(f"FileSpec.size must be >= 0, got {self.size} for {self.path}")


class DownloadError(RuntimeError):
    """A file could not be obtained; the message names the file, where it was sought, and why."""


class ChecksumMismatch(DownloadError):
    """A file's bytes do not match the checksum its spec declares."""


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``(algorithm, hex digest)`` of an ``"md5:<hex>"`` or ``"sha256:<hex>"`` checksum;
    ``ValueError`` for anything else."""
    algo, sep, digest = checksum.partition(":")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    if not sep or algo not in _HEX_LEN:
        raise ValueError(f"checksum must be 'md5:<hex>' or 'sha256:<hex>', got {checksum!r}")
    expected_len = _HEX_LEN[algo]
    if len(digest) != expected_len or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{algo} checksum must be {expected_len} hex digits, got {checksum!r}")
    return algo, digest


def hasher(algo: str) -> hashlib._Hash:
    """A new hash object for ``algo`` ("md5" or "sha256")."""
    # md5 here is an integrity check, not security; FIPS builds refuse it without this flag.
    return hashlib.new(algo, usedforsecurity=False)


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of ``path`` with ``algo`` ("md5" or "sha256"), read in 1 MiB chunks."""
    h = hasher(algo)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, checksum: str) -> None:
    """Raise ``ChecksumMismatch`` unless ``path``'s digest equals ``checksum`` ("algo:hex")."""
    algo, expected = parse_checksum(checksum)
    actual = file_digest(path, algo)
    if actual != expected:
        raise ChecksumMismatch(
            f"{path}: checksum mismatch: expected {algo}:{expected}, got {algo}:{actual}"
        )


def check_file(path: Path, spec: FileSpec) -> None:
    """Size (cheap) then checksum; raises ``ChecksumMismatch``."""
    if spec.size is not None:
        size = path.stat().st_size
        if size != spec.size:
            raise ChecksumMismatch(
                f"{path}: expected {spec.size} bytes, found {size} "
                f"(checksum {spec.checksum} not checked)"
            )
    if spec.checksum is not None:
        verify(path, spec.checksum)
