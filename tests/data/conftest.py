"""Fixtures of the data tests: a text project root with an empty mirror beside it, and
loopback HTTP(S) servers (tests/data/loopback.py) with a URL that refuses connections."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.data.loopback import BODY, PATH, Server, self_signed_cert, serving


@pytest.fixture
def text_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with an (empty) mirror beside it at ``tmp_path/mirror``."""
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("RNNFLOW_MIRROR", str(tmp_path / "mirror"))
    return root


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment, which would intercept the loopback requests (a module
    that talks to loopback asks for it with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


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
