"""obtain against a real loopback HTTP server: mirror, retries, resume, checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from stages.core.config import NetworkConfig
from stages.core.download import obtain
from stages.core.filecheck import ChecksumMismatch, DownloadError, FileSpec, verify
from tests.data.loopback import BODY, PATH, SHA, Server

pytestmark = pytest.mark.usefixtures("no_proxy")

SPEC = FileSpec(PATH, SHA, size=len(BODY))


def _fetch(
    dest: Path, urls: list[str], mirror: Path | None = None, progress: bool = False, **net: Any
) -> Path:
    network = NetworkConfig(**{"retries": 2, "timeout_s": 5.0, "backoff_s": 0.0, **net})
    got = obtain(SPEC, urls=urls, mirror=mirror, dest_dir=dest, network=network, progress=progress)
    return got.path


def test_download_verifies_and_lands_at_final_path(server: Server, tmp_path: Path) -> None:
    out = _fetch(tmp_path, [server.base], progress=True)
    assert out == tmp_path / PATH
    assert out.read_bytes() == BODY
    assert not (tmp_path / (PATH + ".part")).exists()
    assert server.requests == [("/" + PATH, None)]


def test_existing_verified_file_needs_no_network(server: Server, tmp_path: Path) -> None:
    (tmp_path / PATH).parent.mkdir(parents=True)
    (tmp_path / PATH).write_bytes(BODY)
    assert _fetch(tmp_path, [server.base]).read_bytes() == BODY
    assert server.requests == []


def test_existing_corrupt_file_is_fetched_again(server: Server, tmp_path: Path) -> None:
    (tmp_path / PATH).parent.mkdir(parents=True)
    (tmp_path / PATH).write_bytes(b"x" * len(BODY))
    assert _fetch(tmp_path, [server.base]).read_bytes() == BODY
    assert len(server.requests) == 1


def test_wrong_bytes_raise_checksum_mismatch_and_leave_nothing(
    server: Server, tmp_path: Path
) -> None:
    server.wrong_bytes = True
    with pytest.raises(ChecksumMismatch) as exc:
        _fetch(tmp_path, [server.base], retries=3)
    assert PATH in str(exc.value)
    assert len(server.requests) == 3  # every retry was made
    assert not (tmp_path / PATH).exists()
    assert not (tmp_path / (PATH + ".part")).exists()


def test_interrupted_transfer_resumes_with_range(server: Server, tmp_path: Path) -> None:
    server.cut_once = True
    out = _fetch(tmp_path, [server.base])
    verify(out, SHA)
    assert len(server.requests) == 2
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(BODY) // 2}-"


def test_interrupted_transfer_keeps_part_for_next_run(server: Server, tmp_path: Path) -> None:
    server.cut_once = True
    with pytest.raises(DownloadError):
        _fetch(tmp_path, [server.base], retries=1)
    part = tmp_path / (PATH + ".part")
    assert part.read_bytes() == BODY[: len(BODY) // 2]
    assert not (tmp_path / PATH).exists()
    # A later run picks the prefix up again.
    assert _fetch(tmp_path, [server.base]).read_bytes() == BODY
    assert server.requests[-1][1] == f"bytes={len(BODY) // 2}-"


def test_range_ignored_by_server_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.ignore_range = True
    part = tmp_path / (PATH + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale prefix from some other file")
    out = _fetch(tmp_path, [server.base])
    assert out.read_bytes() == BODY
    assert server.requests[0][1] == f"bytes={len(b'stale prefix from some other file')}-"


def test_dead_first_url_falls_over_to_second(server: Server, dead_url: str, tmp_path: Path) -> None:
    out = _fetch(tmp_path, [dead_url, server.base])
    assert out.read_bytes() == BODY
    assert len(server.requests) == 1


def test_missing_file_on_first_url_is_not_retried(server: Server, tmp_path: Path) -> None:
    server.files = {"other/" + PATH: BODY}
    out = _fetch(tmp_path, [server.base, server.base + "other/"], retries=4)
    assert out.read_bytes() == BODY
    assert [p for p, _ in server.requests] == ["/" + PATH, "/other/" + PATH]


def test_all_urls_dead_says_how_to_use_a_mirror(dead_url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as exc:
        _fetch(tmp_path, [dead_url])
    msg = str(exc.value)
    assert not isinstance(exc.value, ChecksumMismatch)
    assert dead_url in msg and PATH in msg and "RNNFLOW_MIRROR" in msg


def test_no_urls_no_mirror_says_how_to_use_a_mirror(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as exc:
        _fetch(tmp_path, [])
    assert "RNNFLOW_MIRROR" in str(exc.value)
    assert PATH in str(exc.value)


def test_mirror_copy_is_used_without_http(server: Server, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / PATH).parent.mkdir(parents=True)
    (mirror / PATH).write_bytes(BODY)
    out = _fetch(tmp_path / "dest", [server.base], mirror=mirror)
    assert out == tmp_path / "dest" / PATH
    assert out.read_bytes() == BODY
    assert server.requests == []
    # no temp left; the .origin note says where the bytes came from
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.bin", "data.bin.origin"]


def test_bad_mirror_copy_is_an_error_not_skipped(server: Server, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / PATH).parent.mkdir(parents=True)
    (mirror / PATH).write_bytes(bytes(len(BODY)))
    with pytest.raises(ChecksumMismatch) as exc:
        _fetch(tmp_path / "dest", [server.base], mirror=mirror)
    assert str(mirror / PATH) in str(exc.value)
    assert server.requests == []
    assert not (tmp_path / "dest" / PATH).exists()
    assert list((tmp_path / "dest" / "sub").iterdir()) == []  # temp copy cleaned up


def test_mirror_without_the_file_falls_back_to_download(server: Server, tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    out = _fetch(tmp_path / "dest", [server.base], mirror=tmp_path / "mirror")
    assert out.read_bytes() == BODY


def test_verify_md5_and_sha256(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(BODY)
    verify(f, "md5:" + hashlib.md5(BODY).hexdigest())
    verify(f, "SHA256:" + hashlib.sha256(BODY).hexdigest().upper())
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ChecksumMismatch) as exc:
        verify(f, "sha256:" + wrong)
    msg = str(exc.value)
    assert str(f) in msg and wrong in msg and hashlib.sha256(BODY).hexdigest() in msg
    with pytest.raises(ChecksumMismatch):
        verify(f, "md5:" + hashlib.md5(b"other").hexdigest())


@pytest.mark.parametrize(
    "checksum",
    [hashlib.sha256(b"").hexdigest(), "sha1:" + "0" * 40, "md5:xyz", "sha256:" + "0" * 63],
)
def test_checksum_needs_a_known_algorithm_prefix(checksum: str) -> None:
    with pytest.raises(ValueError):
        FileSpec("a.gz", checksum)


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.gz", "a/../../b", ""])
def test_spec_path_must_stay_inside_dest(path: str) -> None:
    with pytest.raises(ValueError):
        FileSpec(path, SHA)


def test_https_test_server_is_trusted(https_server: Server, tmp_path: Path) -> None:
    assert https_server.base.startswith("https://")
    assert _fetch(tmp_path, [https_server.base]).read_bytes() == BODY
