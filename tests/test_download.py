"""fetch_file against a real loopback HTTP server: mirror, retries, resume, checksums."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rnnflow.download import ChecksumMismatch, DownloadError, FileSpec, fetch_file, verify

PATH = "sub/data.bin"
# Not a multiple of anything convenient, so "half the body" is a real partial prefix.
BODY = bytes(range(256)) * 37 + b"tail"
SHA = "sha256:" + hashlib.sha256(BODY).hexdigest()
SPEC = FileSpec(PATH, SHA, size=len(BODY))


@dataclass
class Server:
    """Serves ``files`` under ``/``; switches make it misbehave on purpose."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    wrong_bytes: bool = False  # serve corrupted content of the right length
    cut_once: bool = False  # send half the body of the next response, then hang up
    ignore_range: bool = False  # answer Range requests with a full 200
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    redirects: dict[str, str] = field(default_factory=dict)  # path → Location (a 302)


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            if self.path.lstrip("/") in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path.lstrip("/")])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            if state.wrong_bytes:
                body = bytes(b ^ 0xFF for b in body)
            start = 0
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if state.cut_once:
                state.cut_once = False
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would intercept the loopback requests.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key: ``(cert, key)`` PEM files.

    A client trusts it through ``SSL_CERT_FILE=<cert>`` (OpenSSL's default verify paths).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rnnflow test server")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextlib.contextmanager
def serving(state: Server, tls: tuple[Path, Path] | None = None) -> Iterator[Server]:
    """Serve ``state`` on a free loopback port (``state.base``) until the block ends; over
    https with ``tls`` (a ``(cert, key)`` pair, see :func:`self_signed_cert`)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    state.base = f"{scheme}://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving(Server(files={PATH: BODY})) as state:
        yield state


@pytest.fixture
def https_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Iterator[Server]:
    """Like ``server``, over https with a certificate the client is told to trust."""
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with serving(Server(files={PATH: BODY}), tls=(cert, key)) as state:
        yield state


@pytest.fixture
def dead_url() -> str:
    """A loopback port nobody listens on: connection refused, instantly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _fetch(dest: Path, urls: list[str], mirror: Path | None = None, **kw: object) -> Path:
    kw = {"retries": 2, "timeout_s": 5.0, "backoff_s": 0.0, "progress": False, **kw}
    return fetch_file(SPEC, urls=urls, mirror=mirror, dest_dir=dest, **kw)


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
