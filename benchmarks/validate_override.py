"""Train one model of ``params.yaml`` with some fields overridden and print its validation
curve — how this round's epoch cuts were read (validation only; nothing is written).

    python benchmarks/validate_override.py parity_lstm epochs=12
    python benchmarks/validate_override.py twitter_chatbot pretrain.batch_size=256

Values are YAML (``epochs=12``, ``lr=0.003``, ``origins=[tatoeba]``); ``a.b=v`` sets a field of a
nested config. Prints one JSON line: the per-epoch validation monitor, the epoch ``keep: best``
would keep, pretraining facts and wall seconds (CPU, ``train.threads`` or torch's default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from pipelines import tasks  # noqa: E402
from pipelines.config import ModelConfig  # noqa: E402
from pipelines.flows import train as T  # noqa: E402
from rnnflow.config import load_params  # noqa: E402


def override(base: dict, assignments: list[str]) -> dict:
    """``base`` with each ``key[.sub]=yaml-value`` applied (nested dicts copied, not mutated)."""
    out = json.loads(json.dumps(base))
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"validate_override: {item!r} is not key=value")
        *path, last = key.split(".")
        node = out
        for part in path:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[last] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a key of train.models")
    p.add_argument("overrides", nargs="*", help="field=value (YAML), e.g. epochs=12")
    p.add_argument("--params", default="params.yaml")
    a = p.parse_args(argv)
    models = load_params(a.params)["train"]["models"]
    if a.model not in models:
        raise SystemExit(f"validate_override: no train.models.{a.model} in {a.params}")
    cfg = ModelConfig(**override(models[a.model], a.overrides))
    corpus = tasks.load_corpus(f"data/05_tokens/{cfg.corpus}")
    began = time.time()
    fit = T.fit(cfg, corpus, device="cpu", progress=None, name=a.model)
    key = f"val_{tasks.get(corpus.task).monitor}"
    curve = [round(h[key], 5) for h in fit.history]
    print(json.dumps({
        "model": a.model, "overrides": a.overrides, key: curve, "best_epoch": fit.best_epoch,
        "best": curve[fit.best_epoch - 1] if fit.best_epoch else None,
        "pretrain": fit.pretrain or None, "seconds": round(time.time() - began),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
