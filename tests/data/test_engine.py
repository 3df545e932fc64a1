"""``data.engine: dask`` runs the heavy hops' batches on a real Dask LocalCluster (two worker
processes) and writes byte for byte what the local engine writes."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest

from rnnflow import io
from tests.conftest import run_hop, write_params
from tests.data.text_mirror import run_hops, tweet_files

pytestmark = pytest.mark.timeout(600)

HEAVY = ("clean", "sample", "tokenize")


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file the heavy hops write that DVC records (data and hop reports; the
    validation reports, not committed, carry their run's ids)."""
    found = [
        p
        for top in (
            "data/02_clean",
            "data/04_sampled",
            "data/05_tokens",
            "reports/clean",
            "reports/tokenize",
        )
        for p in (root / top).rglob("*")
        if p.is_file()
    ]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in found}


def test_dask_engine_writes_the_local_engines_bytes(text_root: Path, monkeypatch, capsys):
    # small batches, so each split is many batches (tasks) and their order matters
    monkeypatch.setattr(io, "iter_batches", functools.partial(io.iter_batches, batch_rows=40))
    overlay = tweet_files(text_root.parent / "mirror", conversations=300)
    overlay["sample"] = {"twitter": {"max_length": 12}}  # sample's per-batch lengths run too
    write_params(text_root, overlay)
    run_hops(text_root, "twitter", ("fetch", "clean", "format", "sample", "tokenize"))
    local = digests(text_root)
    assert any(k.startswith("data/05_tokens/twitter/") for k in local)
    assert "reports/tokenize/twitter.json" in local
    capsys.readouterr()

    params = json.loads((text_root / "params.yaml").read_text())
    params["data"] = {"engine": "dask", "dask": {"address": None, "workers": 2}}
    (text_root / "params.yaml").write_text(json.dumps(params))
    for hop in HEAVY:
        assert run_hop(hop, "twitter", text_root) == 0, hop
    err = capsys.readouterr().err
    # each heavy hop ran its batches as tasks on the two workers of its own LocalCluster
    assert err.count("on 2 Dask workers") == len(HEAVY), err
    assert digests(text_root) == local


def test_a_dying_worker_is_one_error_line_not_a_traceback(monkeypatch):
    """A task whose worker process dies (here: exits) ends the hop with the RuntimeError the
    hop prints as one line, naming the engine and the function; not distributed's own
    exception."""
    import os

    import dask

    from stages.core.engine import DataConfig, Engine

    engine = Engine(DataConfig(engine="dask", dask={"address": None, "workers": 1}))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        try:
            with pytest.raises(RuntimeError, match=r"data.engine dask: .* running _exit died"):
                list(engine.map(os._exit, [3]))
        finally:
            engine.close()
