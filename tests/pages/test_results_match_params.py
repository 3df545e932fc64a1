"""Every benchmark result records the commit and the model/data configuration it ran; a result
whose configuration params.yaml no longer gives is stale, and the suite says which to rerun."""

from __future__ import annotations

import json
import re

from rnnflow.config import ConfigError, section
from rnnflow.env import PROJECT_ROOT as ROOT
from tests.conftest import load_script

#: What a committed result must record besides its commit: the models it trained (``model``:
#: benchlib.model_record) or the params.yaml entries its hops read (``params``).
RECORDS = {"ddp_lm": "model", "omp_wait": "model", "peers": "model", "seed_spread": "model",
           "data_half": "params", "scale_es_en": "params", "rerun": "model"}  # fmt: skip


benchlib = load_script(ROOT / "benchmarks" / "benchlib.py", "benchlib")


def stale(doc, params: dict) -> list[str]:
    """Where a result's recorded configuration differs from ``params`` (params.yaml parsed):
    every ``benchlib.model_record`` (the model reparsed with its update) and every
    ``benchlib.params_record`` entry, anywhere in ``doc``."""
    from pipelines.config import TrainConfig
    from rnnflow.config import parse

    if isinstance(doc, list):
        return [line for x in doc for line in stale(x, params)]
    if not isinstance(doc, dict):
        return []
    out = []
    if {"model", "update", "config"} <= doc.keys():
        if doc["model"] not in params.get("train", {}).get("models", {}):
            return [f"{doc['model']}: no longer in train.models"]
        cfg = parse(TrainConfig, params, "train").model(doc["model"])
        now = cfg.model_copy(update=doc["update"]).model_dump(mode="json")
        # a field added since the result ran, at its default, is what the code did before it
        # existed (a new option is off by default)
        added = {
            k
            for k, f in type(cfg).model_fields.items()
            if k not in doc["config"] and now.get(k) == f.get_default(call_default_factory=True)
        }
        # every field the model's family has now; a recorded field it no longer has (another
        # family's, or decoding, now evaluate's) never reached its training
        out += [
            f"{doc['model']}.{k}: {doc['config'].get(k)!r} recorded, {now[k]!r} now"
            for k in sorted(now)
            if now[k] != doc["config"].get(k) and k not in added
        ]
    for key, value in (doc.get("params") or {}).items():
        try:
            now = section(params, key)
        except ConfigError:  # the entry is gone
            now = None
        if now != value:
            out.append(f"params {key}: recorded {value!r}, now {now!r}")
    return out + [
        x for k, v in doc.items() if k not in ("config", "params") for x in stale(v, params)
    ]


def _records(doc, key: str) -> list:
    if isinstance(doc, list):
        return [r for x in doc for r in _records(x, key)]
    if not isinstance(doc, dict):
        return []
    return ([doc] if key in doc else []) + [r for v in doc.values() for r in _records(v, key)]


def test_every_result_was_measured_on_params_yaml_as_it_is():
    """A results file names the commit it was measured on and the model/data configuration it
    ran; when params.yaml no longer gives that configuration, the result must be rerun."""
    from rnnflow.config import load_params

    params = load_params(ROOT / "params.yaml")
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        doc = json.loads(path.read_text())
        assert re.fullmatch(r"[0-9a-f]{40}", str(doc.get("commit"))), f"{path.name}: no commit"
        if path.stem in RECORDS:
            key = "config" if RECORDS[path.stem] == "model" else "params"
            assert _records(doc, key), f"{path.name}: records no {RECORDS[path.stem]} config"
        moved = stale(doc, params)
        assert not moved, f"{path.name} ran another configuration (rerun it): {moved[:5]}"


def test_a_result_goes_stale_when_the_params_it_ran_move():
    from rnnflow.config import load_params

    params = load_params(ROOT / "params.yaml")
    doc = {"runs": [benchlib.model_record("books_lm", epochs=1)]}
    doc |= benchlib.params_record("tokenize.books")
    assert stale(doc, params) == []

    moved = json.loads(json.dumps(params))
    lm = moved["train"]["models"]["books_lm"]
    lm["epochs"] += 1  # the result overrode epochs: not its configuration
    assert stale(doc, moved) == []
    lm["dropout"] = 0.123
    moved["tokenize"]["books"]["min_freq"] = 7
    got = stale(doc, moved)
    fields = sorted(line.split(":")[0] for line in got)
    assert fields == ["books_lm.dropout", "params tokenize.books"]
    assert any("0.123 now" in line for line in got)
    # a field the record predates counts at its default only
    older = {"runs": [benchlib.model_record("es_en_translator")]}
    del older["runs"][0]["config"]["copy_source"]
    assert stale(older, params) == []
    moved["train"]["models"]["es_en_translator"]["copy_source"] = True
    assert stale(older, moved) == ["es_en_translator.copy_source: None recorded, True now"]
    del moved["train"]["models"]["books_lm"]
    assert "books_lm: no longer in train.models" in stale(doc, moved)
