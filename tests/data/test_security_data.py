"""The data side refuses what is hostile: names that are not identifiers, paths that leave
their root, plain-http downloads of unpinned files, redirects to http, and compressed files
that expand past the corpus's ``max_expanded_bytes``."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnflow.config import ConfigError, parse
from rnnflow.env import PROJECT_ROOT
from stages import corpora
from stages.core import download
from stages.core.catalogue import lock_path
from stages.core.config import MAX_EXPANDED_BYTES, SourcedFetchConfig
from stages.core.download import obtain
from stages.core.filecheck import DownloadError, FileSpec
from tests.conftest import real_params, run_hop, write_params
from tests.data.loopback import BODY, PATH, SHA, Server
from tests.data.text_mirror import overlay

pytestmark = pytest.mark.usefixtures("no_proxy")

HOSTILE = [
    "a;rm -rf ~",
    "$(id)",
    "`id`",
    "..",
    "a/b",
    "/etc",
    "a\nb",
    "t\u0430toeba",  # Cyrillic 'а'
    "Mnist",
]
SHA_OK = "sha256:" + "0" * 64


def mnist_section(sources: dict, source: object = None, **extra: object) -> dict:
    return {"fetch": {"mnist": {"source": source or list(sources), "sources": sources, **extra}}}


def files(path: str = "a.gz", checksum: str = SHA_OK) -> dict:
    return {"x": {"path": path, "checksum": checksum}}


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("corpus", ["mnist", "twitter"])
def test_source_names_must_be_identifiers(corpus: str, name: str) -> None:
    config = corpora.get(corpus).FetchConfig
    source = {"urls": [], "files": files()}
    if corpus == "twitter":
        source["format"] = "alternating"
    for section in (
        {"source": [name], "sources": {name: source}},  # a key of `sources`
        {"source": ["good", name], "sources": {"good": source}},  # an entry of `source`
    ):
        with pytest.raises(ConfigError) as exc:
            parse(config, {"fetch": {corpus: section}}, f"fetch.{corpus}")
        assert repr(name) in str(exc.value)


@pytest.mark.parametrize("name", HOSTILE)
def test_corpus_name_must_be_an_identifier(name: str, tmp_path: Path) -> None:
    from stages.fetch import body_for

    for call in (lambda: body_for(name, None), lambda: lock_path(tmp_path, name)):
        with pytest.raises(ConfigError) as exc:
            call()
        assert repr(name) in str(exc.value)
    assert list(tmp_path.iterdir()) == []


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x.gz", "/etc/passwd", "a/../../b.gz", "a\\..\\b", ""])
def test_file_paths_must_stay_relative(path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(SourcedFetchConfig, mnist_section({"s": {"files": files(path)}}), "fetch.mnist")
    assert "files.x.path" in str(exc.value) and repr(path) in str(exc.value)


def test_a_mirror_symlink_escaping_the_mirror_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(BODY)
    mirror = tmp_path / "mirror"
    (mirror / PATH).parent.mkdir(parents=True)
    (mirror / PATH).symlink_to(outside)
    with pytest.raises(download.UnsafePath) as exc:
        obtain(FileSpec(PATH, SHA), urls=[], mirror=mirror, dest_dir=tmp_path / "dest")
    assert PATH in str(exc.value)
    assert not (tmp_path / "dest" / PATH).exists()


def twitter_from_mirror(mirror_dir: str) -> tuple[dict, bytes]:
    body = gzip.compress(b"".join(b"tweet %d\n" % i for i in range(40)))
    checksum = "sha256:" + hashlib.sha256(body).hexdigest()
    return overlay(
        "twitter",
        mirror_dir,
        {
            "mirror": {
                "format": "alternating",
                "origin": "twitter",
                "files": {"pairs": {"path": "t.txt.gz", "checksum": checksum, "size": None}},
                "rows": {"twitter": 20},
            }
        },
    ), body


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_mirror_dir_must_stay_inside_the_mirror(text_root: Path, how: str, capsys) -> None:
    mirror = text_root.parent / "mirror"
    elsewhere = text_root.parent / "elsewhere"
    elsewhere.mkdir()
    value = {"dotdot": "../elsewhere", "absolute": str(elsewhere), "symlink": "link"}[how]
    (mirror / "link").symlink_to(elsewhere)
    params, body = twitter_from_mirror(value)
    (elsewhere / "t.txt.gz").write_bytes(body)
    write_params(text_root, params)
    assert run_hop("fetch", "twitter", text_root) == 1
    err = capsys.readouterr().err
    assert "fetch.twitter.mirror_dir" in err and repr(value) in err, err
    assert not (text_root / "data" / "downloads" / "twitter").exists()


def test_downloads_outside_the_project_are_refused(text_root: Path, capsys) -> None:
    params, body = twitter_from_mirror("twitter")
    (text_root.parent / "mirror" / "twitter").mkdir()
    (text_root.parent / "mirror" / "twitter" / "t.txt.gz").write_bytes(body)
    write_params(text_root, params)
    elsewhere = text_root.parent / "elsewhere"
    elsewhere.mkdir()
    (text_root / "data").mkdir()
    (text_root / "data" / "downloads").symlink_to(elsewhere)
    assert run_hop("fetch", "twitter", text_root) == 1
    err = capsys.readouterr().err
    assert "outside the project" in err and "data/downloads" in err, err
    assert list(elsewhere.iterdir()) == []


# --- downloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("checksum", [None, "md5:" + hashlib.md5(BODY).hexdigest()])
def test_plain_http_needs_a_sha256_pin(
    server: Server, checksum: str | None, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as exc:
        obtain(FileSpec(PATH, checksum), urls=[server.base], mirror=None, dest_dir=tmp_path)
    assert "https" in str(exc.value) and server.base in str(exc.value)
    assert server.requests == []
    assert not (tmp_path / PATH).exists()
    got = obtain(FileSpec(PATH, SHA), urls=[server.base], mirror=None, dest_dir=tmp_path)
    assert got.path.read_bytes() == BODY  # a sha256 pin decides, whatever the transport


def test_config_refuses_http_urls_for_files_not_pinned_by_sha256() -> None:
    md5 = {"x": {"path": "a.gz", "checksum": "md5:" + "0" * 32}}
    for source in ({"urls": ["http://example.org/"], "files": md5}, {"urls": ["ftp://e/"]}):
        section = mnist_section({"s": {"files": files(), **source}})
        with pytest.raises(ConfigError) as exc:
            parse(SourcedFetchConfig, section, "fetch.mnist")
        message = str(exc.value)
        assert "sources.s" in message and f"urls: {source['urls'][0]!r}" in message
    ok = mnist_section({"s": {"urls": ["http://example.org/"], "files": files()}})
    parse(SourcedFetchConfig, ok, "fetch.mnist")


def test_every_fetch_section_of_params_parses() -> None:
    params = real_params()
    for name in corpora.names():
        parse(corpora.get(name).FetchConfig, params, f"fetch.{name}")


def test_a_redirect_to_http_is_refused(
    https_server: Server,
    server: Server,
    tmp_path: Path,
) -> None:
    https_server.redirects[PATH] = server.base + PATH
    with pytest.raises(DownloadError) as exc:
        obtain(FileSpec(PATH, None), urls=[https_server.base], mirror=None, dest_dir=tmp_path)
    assert server.base + PATH in str(exc.value) and "https" in str(exc.value)
    assert server.requests == []  # never followed
    assert not (tmp_path / PATH).exists() and not (tmp_path / (PATH + ".part")).exists()


def test_the_final_url_after_redirects_is_reported(https_server: Server, tmp_path: Path) -> None:
    https_server.files["moved/" + PATH] = BODY
    https_server.redirects[PATH] = https_server.base + "moved/" + PATH
    got = obtain(FileSpec(PATH, None), urls=[https_server.base], mirror=None, dest_dir=tmp_path)
    assert got.url == https_server.base + "moved/" + PATH
    assert got.path.read_bytes() == BODY


# --- one expansion cap ------------------------------------------------------------------------


def test_one_finite_cap_for_every_corpus() -> None:
    assert MAX_EXPANDED_BYTES == 4 << 30
    for name in ("mnist", "twitter", "es_en", "books"):
        assert corpora.get(name).FetchConfig.model_fields["max_expanded_bytes"].default == (
            MAX_EXPANDED_BYTES
        )
    section = mnist_section({"s": {"files": files()}}, max_expanded_bytes=1000)
    assert parse(SourcedFetchConfig, section, "fetch.mnist").max_expanded_bytes == 1000


def idx_header(*shape: int) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def gzip_bomb(path: Path, head: bytes, expanded: int) -> Path:
    """``head`` then zeros, ``expanded`` bytes in all, gzip-compressed: ~1 kB per MB.

    Written as concatenated gzip members (one valid gzip stream to readers), so it is built
    in milliseconds."""
    member = gzip.compress(bytes(8 << 20), compresslevel=9)
    with path.open("wb") as fh:
        fh.write(gzip.compress(head))
        for _ in range((expanded - len(head)) // (8 << 20)):
            fh.write(member)
    return path


def test_gzip_idx_bomb_is_refused_with_flat_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", b"", 1 << 30)
    assert bomb.stat().st_size < 1_500_000
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from stages.corpora.idx import IdxError, read_idx\n"
        "try:\n"
        "    read_idx(Path(sys.argv[1]), dims=3)\n"
        "    print('READ')\n"
        "except IdxError as exc:\n"
        "    print('REFUSED', exc)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would count the
        # (large, late in a test run) pytest process this one was forked from.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print('RSS_KB', hwm.split()[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(bomb)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert "REFUSED" in out.stdout and bomb.name in out.stdout, out.stdout
    rss_kb = int(out.stdout.split("RSS_KB")[1])
    assert rss_kb < 300 * 1024, f"peak RSS {rss_kb / 1024:.0f} MB"


def zip_bomb(path: Path, expanded: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("c.en", bytes(expanded))
    return path


def tar_gz_bomb(path: Path, expanded: int) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("c.en")
        info.size = expanded
        tf.addfile(info, io.BytesIO(bytes(expanded)))
    return path


@pytest.mark.parametrize("kind", ["idx_claim", "idx_trailing", "zip", "tar_gz"])
def test_every_decompressor_stops_at_the_cap(tmp_path: Path, kind: str) -> None:
    from stages.corpora import idx
    from stages.corpora.text.formats import TextSourceError, read_lines

    cap = 1 << 20
    if kind.startswith("idx"):
        if kind == "idx_claim":  # the header alone claims more than the cap
            path = gzip_bomb(tmp_path / "x.gz", idx_header(10_000, 28, 28), 8 << 20)
        else:  # a small, honest header, then far more bytes than it claims
            path = gzip_bomb(tmp_path / "x.gz", idx_header(10), 16 << 20)
        with pytest.raises(idx.IdxError) as exc:
            idx.read_idx(path, dims=3 if kind == "idx_claim" else 1, max_expanded_bytes=cap)
    else:
        build = zip_bomb if kind == "zip" else tar_gz_bomb
        path = build(tmp_path / ("x.zip" if kind == "zip" else "x.tar.gz"), 4 << 20)
        with pytest.raises(TextSourceError) as exc:
            list(read_lines(path, 10, "c.en" if kind == "zip" else None, cap))
    assert str(path) in str(exc.value) and f"{cap:,}" in str(exc.value)


def test_mnist_fetch_honours_its_cap(project: Path, capsys) -> None:
    params = json.loads((project / "params.yaml").read_text())
    params["fetch"]["mnist"]["max_expanded_bytes"] = 50_000
    (project / "params.yaml").write_text(json.dumps(params))
    assert run_hop("fetch", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "50,000" in err, err


# --- hints ------------------------------------------------------------------------------------


def test_damaged_hop_output_hint_forces_the_checkout(tmp_path: Path) -> None:
    from rnnflow import io as rio
    from stages.core.hop import _with_stage_hint

    path = tmp_path / "data" / "01_raw" / "mnist" / "train.parquet"
    hinted = _with_stage_hint(rio.ParquetReadError(path, "damaged"), tmp_path)
    assert "`dvc checkout --force fetch@mnist`" in str(hinted)
    assert "`dvc checkout --force`" in rio.REGENERATE_HINT
