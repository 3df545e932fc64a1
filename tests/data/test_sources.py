"""Ordered sources and trust on first use, against a real loopback HTTP server.

First run records the bytes in ``sources/<corpus>.lock``, a second run verifies them,
changed upstream bytes are refused with instructions, ``--update`` accepts them, strict
mode (``fetch.require_pinned``) refuses what is not locked, and an unreachable source
falls through to the next one.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from rnnflow.io import read_json
from stages.core.hop import data_dir, execute
from tests.conftest import real_params, run_hop, write_params
from tests.data.loopback import Server
from tests.data.text_mirror import overlay

pytestmark = pytest.mark.usefixtures("no_proxy")

TWEETS = [f"tweet {i} about things" for i in range(40)]
BODY = gzip.compress("".join(t + "\n" for t in TWEETS).encode())
NEW_BODY = gzip.compress("".join(t + " again\n" for t in TWEETS).encode())


def published(base_url: str, **extra: object) -> dict:
    """twitter from one published source without a checksum (trust on first use)."""
    params = overlay(
        "twitter",
        "twitter",
        {
            "published": {
                "format": "alternating",
                "origin": "twitter",
                "urls": [base_url],
                "files": {"pairs": {"path": "twitter_en.txt.gz"}},
                "rows": {"twitter": 20},
            }
        },
    )
    params["fetch"]["network"] = {"retries": 1, "timeout_s": 10, "backoff_s": 0}
    params["fetch"].update(extra)
    return params


def mirror_source(root: Path, checksum: str | None = None, **extra: object) -> dict:
    """Put BODY in the test mirror and return its catalogue entry (pinned to BODY's sha256
    unless ``checksum`` says otherwise)."""
    mirror = root.parent / "mirror" / "twitter"
    mirror.mkdir(parents=True)
    (mirror / "pairs.txt.gz").write_bytes(BODY)
    checksum = checksum or "sha256:" + hashlib.sha256(BODY).hexdigest()
    pairs = {"path": "pairs.txt.gz", "checksum": checksum, **extra}
    return {
        "format": "alternating",
        "origin": "twitter",
        "files": {"pairs": pairs},
        "rows": {"twitter": 20},
    }


@pytest.fixture
def server(https_server: Server) -> Server:
    """The published files, over https: unpinned files are never fetched over plain http."""
    return https_server


@pytest.fixture
def dead_url(dead_url: str) -> str:
    """An https URL nobody listens on (unpinned files are only ever fetched over https)."""
    return dead_url.replace("http://", "https://")


def lock(root: Path) -> dict:
    return read_json(root / "sources" / "twitter.lock")


def fetch(root: Path, update: bool = False) -> int:
    from stages.fetch import body_for

    return execute(
        "fetch",
        "twitter",
        body_for("twitter", argparse.Namespace(update=update)),
        params_path=root / "params.yaml",
        root=root,
    )


def drop_download(root: Path) -> None:
    (root / "data" / "downloads" / "twitter" / "twitter_en.txt.gz").unlink()


@pytest.fixture
def tofu_root(text_root: Path, server: Server, monkeypatch) -> Path:
    monkeypatch.delenv("RNNFLOW_MIRROR")
    server.files["twitter_en.txt.gz"] = BODY
    write_params(text_root, published(server.base))
    return text_root


def test_first_use_records_the_lock_and_the_report(tofu_root: Path, server: Server) -> None:
    assert fetch(tofu_root) == 0
    entry = lock(tofu_root)["sources"]["published"]["pairs"]
    assert entry["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert entry["size"] == len(BODY)
    assert entry["url"] == f"{server.base}twitter_en.txt.gz"
    assert entry["date"]
    report = read_json(tofu_root / "reports" / "fetch" / "twitter.json")
    assert report["sources"] == {"twitter": "published"}
    file = report["files"]["pairs"]
    assert (file["source"], file["served_by"], file["bytes"], file["rows"]) == (
        "published",
        "download",
        len(BODY),
        20,
    )


def test_second_run_verifies_against_the_lock(tofu_root: Path, server: Server) -> None:
    assert fetch(tofu_root) == 0
    recorded = lock(tofu_root)
    drop_download(tofu_root)  # force a real second download, verified against the lock
    assert fetch(tofu_root) == 0
    assert [p for p, _ in server.requests] == ["/twitter_en.txt.gz"] * 2
    assert lock(tofu_root) == recorded


def test_changed_upstream_bytes_are_refused_then_accepted_with_update(
    tofu_root: Path, server: Server, capsys
) -> None:
    assert fetch(tofu_root) == 0
    recorded = lock(tofu_root)
    server.files["twitter_en.txt.gz"] = NEW_BODY
    drop_download(tofu_root)
    capsys.readouterr()
    assert fetch(tofu_root) == 1
    err = capsys.readouterr().err
    assert "fetch.twitter.sources.published.files.pairs" in err
    assert "changed upstream" in err and "rnnflow fetch twitter --update" in err
    assert lock(tofu_root) == recorded  # nothing accepted behind the user's back

    assert fetch(tofu_root, update=True) == 0
    entry = lock(tofu_root)["sources"]["published"]["pairs"]
    assert entry["sha256"] == hashlib.sha256(NEW_BODY).hexdigest()
    assert fetch(tofu_root) == 0  # and the new version verifies from now on


def test_update_flag_is_on_the_command_line() -> None:
    from stages.fetch import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_strict_mode_refuses_what_is_not_locked(
    text_root: Path,
    server: Server,
    monkeypatch,
    capsys,
) -> None:
    monkeypatch.delenv("RNNFLOW_MIRROR")
    server.files["twitter_en.txt.gz"] = BODY
    write_params(text_root, published(server.base, require_pinned=True))
    assert fetch(text_root) == 1
    err = capsys.readouterr().err
    assert "fetch.require_pinned" in err and "no source of 'twitter'" in err
    assert server.requests == []  # refused before any download
    # Once locked (a non-strict first use), strict mode accepts the verified bytes.
    write_params(text_root, published(server.base))
    assert fetch(text_root) == 0
    write_params(text_root, published(server.base, require_pinned=True))
    drop_download(text_root)
    assert fetch(text_root) == 0


def test_structurally_bad_first_download_is_not_locked(
    tofu_root: Path,
    server: Server,
    capsys,
) -> None:
    server.files["twitter_en.txt.gz"] = BODY[: len(BODY) // 2]  # a truncated gzip
    assert fetch(tofu_root) == 1
    assert "truncated or corrupt gzip" in capsys.readouterr().err
    assert not (tofu_root / "sources" / "twitter.lock").exists()


def test_a_failed_first_use_is_deleted_not_served_again(tofu_root: Path, server: Server) -> None:
    server.files["twitter_en.txt.gz"] = BODY[: len(BODY) // 2]  # a truncated gzip
    assert fetch(tofu_root) == 1
    downloads = tofu_root / "data" / "downloads" / "twitter"
    assert not [p.name for p in downloads.iterdir() if p.name.startswith("twitter_en")]
    server.files["twitter_en.txt.gz"] = BODY  # upstream fixed: the next run downloads it
    assert fetch(tofu_root) == 0
    assert [p for p, _ in server.requests] == ["/twitter_en.txt.gz"] * 2
    assert lock(tofu_root)["sources"]["published"]["pairs"]["size"] == len(BODY)


def test_the_lock_records_the_url_after_redirects(tofu_root: Path, server: Server) -> None:
    server.files["v2/twitter_en.txt.gz"] = BODY
    server.redirects["twitter_en.txt.gz"] = f"{server.base}v2/twitter_en.txt.gz"
    assert fetch(tofu_root) == 0
    entry = lock(tofu_root)["sources"]["published"]["pairs"]
    assert entry["url"] == f"{server.base}v2/twitter_en.txt.gz"


def test_unreachable_source_falls_through_to_the_mirror(text_root: Path, dead_url: str) -> None:
    params = published(dead_url)
    params["fetch"]["twitter"]["source"] = ["published", "mirror"]
    params["fetch"]["twitter"]["sources"]["mirror"] = mirror_source(text_root, size=None)
    write_params(text_root, params)
    assert run_hop("fetch", "twitter", text_root) == 0
    report = read_json(text_root / "reports" / "fetch" / "twitter.json")
    assert report["sources"] == {"twitter": "mirror"}
    assert report["files"]["pairs"]["served_by"] == "mirror"
    # named once, portably: the committed report holds no path of the machine that wrote it
    assert "; the mirror has no $RNNFLOW_MIRROR/twitter/" in report["passed_over"]["published"]
    assert lock(text_root)["sources"] == {}  # pinned mirror files need no lock entry
    assert data_dir("fetch", "twitter", text_root).is_dir()


def test_wrong_mirror_bytes_stop_the_run_rather_than_fall_through(
    text_root: Path, dead_url: str, capsys
) -> None:
    params = published(dead_url)
    params["fetch"]["twitter"]["source"] = ["mirror", "published"]
    params["fetch"]["twitter"]["sources"]["mirror"] = mirror_source(
        text_root, "sha256:" + "0" * 64, size=None
    )
    write_params(text_root, params)
    assert run_hop("fetch", "twitter", text_root) == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_default_params_list_published_sources_first_then_the_mirror() -> None:
    """Published downloads first (MNIST md5s as published, text unpinned: trust on first
    use), then a mirror source with the mirror's own sha256s, for every real corpus."""
    fetch_params = real_params()["fetch"]
    assert fetch_params["require_pinned"] is False
    mnist = fetch_params["mnist"]
    assert mnist["source"] == ["published", "mirror_partial"]
    assert {f["checksum"] for f in mnist["sources"]["published"]["files"].values()} == {
        "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "md5:9fb629c4189551a2d022fa330f9573f3",
        "md5:ec29112dd5afa0611ce80d1b7f02629c",
    }
    for corpus in ("es_en", "twitter", "books"):
        names = fetch_params[corpus]["source"]
        sources = fetch_params[corpus]["sources"]
        published_ = [n for n in names if sources[n].get("urls")]
        mirrors = [n for n in names if not sources[n].get("urls")]
        assert published_ and mirrors
        for name in published_:
            assert all(u.startswith("https://") for u in sources[name]["urls"])
            assert all("checksum" not in f for f in sources[name]["files"].values())
            # the mirror alternative of the same origin comes after it
            origin = sources[name].get("origin", name)
            later = names[names.index(name) + 1 :]
            assert any(sources[m].get("origin", m) == origin for m in later if m in mirrors)
        for name in mirrors:
            assert all(f["checksum"].startswith("sha256:") for f in sources[name]["files"].values())


def test_committed_locks_match_what_params_name() -> None:
    """Every committed lock names only sources and files params.yaml defines."""
    from rnnflow.env import PROJECT_ROOT

    fetch_params = real_params()["fetch"]
    for path in sorted((PROJECT_ROOT / "sources").glob("*.lock")):
        data = json.loads(path.read_text())
        assert data["corpus"] == path.stem
        for source, files in data["sources"].items():
            defined = fetch_params[path.stem]["sources"][source]
            # a dataset source (format hf) locks its content under one key, "dataset"
            keys = {"dataset"} if defined.get("dataset") else set(defined["files"])
            assert set(files) <= keys, (path, source)


def test_a_cached_copy_reports_where_its_bytes_came_from(tofu_root: Path, server: Server) -> None:
    """A second fetch uses the verified copy in data/downloads, and the report still names
    the download (the report must not depend on what a workspace happened to cache)."""
    assert fetch(tofu_root) == 0
    first = read_json(tofu_root / "reports" / "fetch" / "twitter.json")
    assert fetch(tofu_root) == 0
    assert [p for p, _ in server.requests] == ["/twitter_en.txt.gz"]  # served from the cache
    assert read_json(tofu_root / "reports" / "fetch" / "twitter.json") == first


def test_a_source_passed_over_half_way_records_nothing(
    text_root: Path,
    server: Server,
    monkeypatch,
) -> None:
    """Two unpinned files, the second missing upstream: the source falls through to the
    mirror, and the first file (downloaded, never read) must not enter the lock."""
    monkeypatch.delenv("RNNFLOW_MIRROR")
    server.files["twitter_en.txt.gz"] = BODY
    monkeypatch.setenv("RNNFLOW_MIRROR", str(text_root.parent / "mirror"))
    params = published(server.base)
    params["fetch"]["twitter"]["sources"]["published"]["files"]["extra"] = {"path": "missing.gz"}
    params["fetch"]["twitter"]["source"] = ["published", "mirror"]
    params["fetch"]["twitter"]["sources"]["mirror"] = mirror_source(text_root, size=None)
    write_params(text_root, params)
    assert run_hop("fetch", "twitter", text_root) == 0
    assert read_json(text_root / "reports" / "fetch" / "twitter.json")["sources"] == {
        "twitter": "mirror"
    }
    assert ("/twitter_en.txt.gz", None) in server.requests  # it was downloaded…
    assert lock(text_root)["sources"] == {}  # …but never trusted…
    downloads = text_root / "data" / "downloads" / "twitter"
    assert not (downloads / "twitter_en.txt.gz").exists()  # …nor kept to be served later


def test_the_catalogue_file_serves_and_the_report_names_no_machine_path(
    text_root: Path, dead_url: str, capsys
) -> None:
    """``sources/<corpus>.yaml`` holds the sources params.yaml's ``source`` orders; the fetch
    report names mirror files under ``$RNNFLOW_MIRROR``, never this machine's paths; a
    catalogue in both places is refused, naming the file."""
    params = published(dead_url)
    section = params["fetch"]["twitter"]
    section["source"] = ["published", "mirror"]
    catalogue = {**section.pop("sources"), "mirror": mirror_source(text_root)}
    (text_root / "sources").mkdir()
    (text_root / "sources" / "twitter.yaml").write_text(json.dumps(catalogue))
    path = write_params(text_root, params)
    # write_params brings the real catalogue inline: this project keeps it in the file only
    doc = json.loads(path.read_text())
    del doc["fetch"]["twitter"]["sources"]
    path.write_text(json.dumps(doc))
    assert run_hop("fetch", "twitter", text_root) == 0
    text = (text_root / "reports" / "fetch" / "twitter.json").read_text()
    report = json.loads(text)
    assert report["files"]["pairs"]["url"] == "$RNNFLOW_MIRROR/twitter/pairs.txt.gz"
    assert str(text_root.parent) not in text, text

    doc["fetch"]["twitter"]["sources"] = catalogue
    path.write_text(json.dumps(doc))
    assert run_hop("fetch", "twitter", text_root) == 1
    assert "sources/twitter.yaml" in capsys.readouterr().err


def test_a_broken_catalogue_file_is_named(text_root: Path, capsys) -> None:
    """A catalogue that is not YAML stops fetch with one line naming the file, nothing written."""
    write_params(text_root, published("https://127.0.0.1:9/"))
    doc = json.loads((text_root / "params.yaml").read_text())
    del doc["fetch"]["twitter"]["sources"]
    (text_root / "params.yaml").write_text(json.dumps(doc))
    (text_root / "sources").mkdir()
    (text_root / "sources" / "twitter.yaml").write_text("published: [unclosed\n")
    assert run_hop("fetch", "twitter", text_root) == 1
    err = capsys.readouterr().err
    assert "sources/twitter.yaml: not valid YAML" in err and "Traceback" not in err, err
    assert not data_dir("fetch", "twitter", text_root).exists()
