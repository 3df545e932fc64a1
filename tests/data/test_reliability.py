"""Hops fail readably and safely — damaged inputs, hostile archives, killed runs,
full disks — and never destroy the last good output on the way."""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnnflow import io
from rnnflow.env import PROJECT_ROOT
from stages.core.config import MAX_EXPANDED_BYTES
from stages.core.hop import HopRun, data_dir
from stages.core.validate import ValidationFailed
from stages.corpora.idx import IdxError, read_idx, write_idx
from stages.corpora.text import formats
from stages.corpora.text.config import TextFetchConfig
from tests.conftest import run_hop, sha256
from tests.data.text_mirror import es_en_params, fails, mirror, write_lines, write_moses_zip


def _zero_middle(path: Path) -> None:
    """Overwrite the data pages (not the footer) of a Parquet file with zeros."""
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    raw[4 : len(raw) - footer] = bytes(len(raw) - footer - 4)
    path.write_bytes(bytes(raw))


def _tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _mnist_rows(project: Path, part: str, rows: int) -> None:
    params = json.loads((project / "params.yaml").read_text())
    params["fetch"]["mnist"]["sources"]["fixture"]["rows"][part] = rows
    (project / "params.yaml").write_text(json.dumps(params))


# --- 1. a damaged Parquet input names the file and how to re-create it ----------------------


def test_corrupt_parquet_is_named_with_a_generic_hint(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": np.arange(100_000)}), path, compression="zstd")
    _zero_middle(path)
    with pytest.raises(io.ParquetReadError) as exc:
        list(io.iter_batches(path))
    assert str(path) in str(exc.value) and "dvc repro" in str(exc.value)
    with pytest.raises(io.ParquetReadError, match="dvc checkout"):
        io.read_table(path)
    path.write_bytes(b"\0" * 100)  # not Parquet at all: the footer read fails
    with pytest.raises(io.ParquetReadError, match="x.parquet"):
        io.parquet_rows(path)


def test_corrupt_hop_input_names_the_file_and_the_stage(project: Path, capsys) -> None:
    assert run_hop("fetch", "mnist", project) == 0
    _zero_middle(data_dir("fetch", "mnist", project) / "train.parquet")
    capsys.readouterr()
    assert run_hop("clean", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "data/01_raw/mnist/train.parquet" in err, err
    assert "dvc checkout --force fetch@mnist" in err and "dvc repro fetch@mnist" in err, err


# --- 2. TSV field counts ----------------------------------------------------------------------


def test_tsv_line_with_a_tab_inside_a_sentence_is_an_error(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "spa.txt", ["Hi.\tHola.", "Bye.\tAdiós.", "Tab\there.\tTabulador.", "Yes.\tSí."]
    )
    with pytest.raises(formats.TextSourceError) as exc:
        list(formats.read_tsv(path, ["en", "es"], 10))
    msg = str(exc.value)
    assert str(path) in msg and "line 3" in msg and "expected 2" in msg and "found 3" in msg


def test_tsv_declared_attribution_column_is_read_and_dropped(text_root: Path) -> None:
    rows = [f"Sentence {i}.\tFrase {i}.\tCC-BY 2.0 (France) #{i}" for i in range(30)]
    path = write_lines(mirror(text_root) / "es-en" / "spa.txt", rows)
    table = pa.concat_tables(formats.read_tsv(path, ["en", "es", "attribution"], 7))
    assert table.column_names == ["en", "es", "attribution"] and table.num_rows == 30
    es_en_params(text_root, {"pairs": path}, fmt="tsv", columns=["en", "es", "attribution"])
    assert run_hop("fetch", "es_en", text_root) == 0
    raw = pq.read_table(data_dir("fetch", "es_en", text_root) / "x.parquet")
    assert raw.column_names == ["src", "tgt", "origin"]
    assert raw.column("src").to_pylist()[:2] == ["Frase 0.", "Frase 1."]


def test_tsv_undeclared_extra_column_is_an_error_in_the_hop(text_root: Path, capsys) -> None:
    path = write_lines(
        mirror(text_root) / "es-en" / "spa.txt",
        [f"Sentence {i}.\tFrase {i}.\tattribution" for i in range(30)],
    )
    es_en_params(text_root, {"pairs": path}, fmt="tsv", columns=["en", "es"])
    fails(
        text_root,
        "es_en",
        capsys,
        path.name,
        "line 1",
        "expected 2 tab-separated fields",
        "found 3",
    )


# --- 3. temp directories of killed runs -------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_hop_temp_dir_is_removed_by_the_next_run(project: Path) -> None:
    final = data_dir("fetch", "mnist", project)
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rnnflow import io
        with io.atomic_dir(Path({str(final)!r})) as tmp:
            (tmp / "train.parquet").write_bytes(b"partial")
            print(tmp, flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    try:
        left = Path(proc.stdout.readline().strip())
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    assert left.is_dir() and left.name.startswith(".mnist.tmp-")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = final.parent / f".mnist.tmp-{alive.pid}-busy"  # a concurrent run: kept
        other = final.parent / f".parity.tmp-{_dead_pid()}-x"  # another corpus's: kept
        old = final.parent / f".mnist.old-{_dead_pid()}"  # a killed swap: removed
        for d in (running, other, old):
            d.mkdir()
        assert run_hop("fetch", "mnist", project) == 0
        assert not left.exists() and not old.exists()
        assert running.is_dir() and other.is_dir()
    finally:
        alive.kill()
        alive.wait()


# --- 4. the previous output survives a failing run -------------------------------------------


def test_failing_run_keeps_the_previous_output(project: Path, capsys) -> None:
    assert run_hop("fetch", "mnist", project) == 0
    out = data_dir("fetch", "mnist", project)
    before = _tree(out)
    _mnist_rows(project, "train", 301)  # a failing check
    assert run_hop("fetch", "mnist", project) == 1
    assert _tree(out) == before
    (project / "params.yaml").write_text("fetch: {mnist: [unclosed")  # a params typo
    assert run_hop("fetch", "mnist", project) == 1
    assert _tree(out) == before
    assert not list(out.parent.glob(".mnist.*")), "temp or old directory left behind"


def test_failed_swap_puts_the_old_output_back(tmp_path: Path, monkeypatch) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "a").write_text("old")
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:  # old moved aside, now the new one fails to move in
            raise OSError(errno.EIO, "simulated")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        with io.atomic_dir(final) as tmp:
            (tmp / "a").write_text("new")
    assert (final / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- 5. messages --------------------------------------------------------------------------------


def test_row_count_failure_is_plain_numbers_and_names_the_params_key(project: Path, capsys) -> None:
    _mnist_rows(project, "train", 301)
    assert run_hop("fetch", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "300 rows, expected exactly 301" in err and "np.int64" not in err, err
    run = HopRun("clean", "mnist", {}, project, project)
    with pytest.raises(ValidationFailed) as exc:
        run.check_rows(
            "train",
            np.int64(8432),
            np.int64(8433),
            None,
            "why",
            params_key="clean.mnist.max_drop_fraction",
        )
    msg = exc.value.render()
    assert "8,432 rows, expected at least 8,433" in msg, msg
    assert "params clean.mnist.max_drop_fraction" in msg and "np.int64" not in msg


def test_idx_errors_name_the_origin(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    write_idx(path, np.zeros((3, 2), np.uint8))
    with pytest.raises(IdxError) as exc:
        read_idx(path, dims=1, origin="my-labels.gz, params fetch.mnist.sources.x.files.y")
    assert str(path) in str(exc.value) and "my-labels.gz, params fetch.mnist" in str(exc.value)


def test_mnist_decoding_error_names_the_params_file(project: Path, mnist_mirror, capsys) -> None:
    mirror_dir, source = mnist_mirror
    bad = mirror_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(bad, np.arange(99, dtype=np.uint8) % 10)  # 99 labels for 100 images
    params = json.loads((project / "params.yaml").read_text())
    params["fetch"]["mnist"]["sources"]["fixture"]["files"]["test_labels"]["checksum"] = sha256(bad)
    (project / "params.yaml").write_text(json.dumps(params))
    assert run_hop("fetch", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "100 images" in err and "99 labels" in err, err
    assert "t10k-labels-idx1-ubyte.gz, params fetch.mnist.sources.fixture.files.test_labels" in err


# --- 6. permissions follow the umask ----------------------------------------------------------


def test_outputs_follow_the_umask(project: Path) -> None:
    old = os.umask(0o027)
    try:
        assert run_hop("fetch", "mnist", project) == 0
    finally:
        os.umask(old)
    out = data_dir("fetch", "mnist", project)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    reports = [p for p in (project / "reports").rglob("*.json")]
    assert reports and all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in reports)


# --- 7. hostile archives ------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, str], symlink: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("bad", ["../../x.es", "/abs/x.es", "a/../../x.es", "symlink"])
def test_hostile_zip_members_are_refused(tmp_path: Path, bad: str) -> None:
    members = {"c.en": "Hi\n", "c.es": "Hola\n"}
    if bad == "symlink":
        path = _zip(tmp_path / "a.zip", members, symlink="link.txt")
        member = "link.txt"
    else:
        path = _zip(tmp_path / "a.zip", {**members, bad: "evil\n"})
        member = bad
    for call in (
        lambda: formats.zip_member(path, suffix=".en"),
        lambda: list(formats.read_lines(path, 10, member)),
    ):
        with pytest.raises(formats.TextSourceError) as exc:
            call()
        assert str(path) in str(exc.value) and "refusing" in str(exc.value)


def test_hostile_zip_in_a_hop_writes_nothing(text_root: Path, capsys) -> None:
    path = write_moses_zip(mirror(text_root) / "es-en" / "os.zip", ["Hola."] * 30, ["Hi."] * 30)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../../evil.es", "x\n")
    es_en_params(text_root, {"archive": path})
    fails(text_root, "es_en", capsys, path.name, "refusing", "'..' path component")
    assert not list(text_root.parent.parent.rglob("evil.es"))


def test_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"aaaa\nbbbb\n" * 100_000))  # 1 MB from ~2 kB
    with pytest.raises(formats.TextSourceError, match="expands to more than 100,000 bytes"):
        list(formats.read_alternating(path, 50, max_expanded_bytes=100_000))
    # The adapter wrapper names the source's params key.
    lines = formats.read_alternating(path, 50, max_expanded_bytes=100_000)
    with pytest.raises(formats.TextSourceError, match=r"100,000 bytes.*fetch.twitter.sources.x"):
        list(formats.naming(lines, "fetch.twitter.sources.x"))
    assert sum(len(t) for t in formats.read_alternating(path, 50)) == 100_000  # default: reads
    assert TextFetchConfig.model_fields["max_expanded_bytes"].default == MAX_EXPANDED_BYTES


def test_zip_bomb_is_refused_before_expanding(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.zip", {"c.en": "a\n" * 500_000})
    with pytest.raises(formats.TextSourceError, match="declares 1,000,000 bytes"):
        list(formats.read_lines(path, 10, "c.en", max_expanded_bytes=10_000))


def test_line_without_breaks_stops_before_filling_memory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 10_000)
    for name in ("long.txt", "long.txt.gz"):
        path = write_lines(tmp_path / name, ["short", "x" * 3_000_000, "short"])
        with pytest.raises(formats.TextSourceError, match="line longer than 10,000 bytes"):
            list(formats.read_lines(path, 10))


# --- 8. disk full -------------------------------------------------------------------------------


def _check_disk_full(project: Path, capsys, before: dict[str, bytes]) -> None:
    assert run_hop("fetch", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "data/01_raw/mnist/" in err and ".parquet" in err, err
    assert "No space left on device" in err and "disk full" in err, err
    out = data_dir("fetch", "mnist", project)
    assert _tree(out) == before
    assert not list(out.parent.glob(".mnist.*")), "temporary directory left behind"


def test_disk_full_simulated(project: Path, monkeypatch, capsys) -> None:
    assert run_hop("fetch", "mnist", project) == 0
    before = _tree(data_dir("fetch", "mnist", project))

    class Full(pq.ParquetWriter):
        def write_table(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.pq, "ParquetWriter", Full)
    capsys.readouterr()
    _check_disk_full(project, capsys, before)


def test_disk_full_on_a_tiny_filesystem(project: Path, capsys) -> None:
    raw = project / "data" / "01_raw"
    raw.mkdir(parents=True)
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(raw)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        assert run_hop("fetch", "mnist", project) == 0
        before = _tree(data_dir("fetch", "mnist", project))
        with (raw / ".filler").open("wb") as fh:  # fill the rest of the filesystem
            with pytest.raises(OSError):
                while True:
                    fh.write(b"\0" * 65_536)
                    fh.flush()
        capsys.readouterr()
        _check_disk_full(project, capsys, before)
        assert sorted(p.name for p in raw.iterdir()) == [".filler", "mnist"]
    finally:
        subprocess.run(["umount", "-l", str(raw)], check=False)


def test_output_set_aside_by_a_killed_swap_is_put_back(tmp_path: Path) -> None:
    final = tmp_path / "out"
    aside = tmp_path / f".out.old-{_dead_pid()}"
    aside.mkdir()
    (aside / "a").write_text("last good")
    assert io.remove_orphans(final) == []
    assert (final / "a").read_text() == "last good" and not aside.exists()
