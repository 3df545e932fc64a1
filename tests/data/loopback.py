"""A loopback HTTP(S) server for the data tests: it serves files from memory and misbehaves
on request (wrong bytes, a cut transfer, Range ignored, redirects).

``serving`` runs one until its block ends; the ``server``/``https_server`` fixtures
(tests/data/conftest.py) serve ``BODY`` at ``PATH``.
"""

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

PATH = "sub/data.bin"
# Not a multiple of anything convenient, so "half the body" is a real partial prefix.
BODY = bytes(range(256)) * 37 + b"tail"
SHA = "sha256:" + hashlib.sha256(BODY).hexdigest()


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
