"""Run-to-run spread over seeds: retrain models with other seeds, score them on the test split.

    python benchmarks/seed_spread.py mnist_cnn mnist_lstm --seeds 1

Each model is trained as ``params.yaml`` configures it except for ``seed`` (the same ``fit`` the
train stage runs, on ``data/05_tokens/<corpus>``), then scored on its test split. Seed 0 is
the committed reference run: its numbers are read from ``metrics/<model>.json``, not retrained.
Nothing selects on these test scores; they only say how far one run is from another. Writes
``benchmarks/results/seed_spread.json`` (read by ``summary.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import benchlib as B


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="keys of train.models (tensor tasks)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="extra seeds (default 1)")
    parser.add_argument("--root", type=Path, default=B.ROOT, help="project root (data/, metrics/)")
    parser.add_argument("--json", type=Path, default=B.RESULTS / "seed_spread.json")
    args = parser.parse_args(argv)

    import torch

    from pipelines import tasks
    from pipelines.config import Layout, ModelConfig
    from pipelines.flows.train import fit
    from pipelines.metrics import scoring
    from pipelines.tasks.tensor import load_split
    from rnnflow.config import load_params

    torch.set_num_threads(2)
    layout = Layout(args.root)
    models = load_params(args.root / "params.yaml")["train"]["models"]
    rows = []
    for name in args.models:
        cfg0 = ModelConfig(**models[name])
        ref = json.loads(layout.metrics(name).read_text())["test"]
        corpus = tasks.load_corpus(layout.tokens(cfg0.corpus))
        task = tasks.for_spec(corpus.spec)
        head = task.headline
        runs = [{"seed": cfg0.seed, head: ref[head], "from": f"metrics/{name}.json"}]
        xt, yt, _ = load_split(layout.tokens(cfg0.corpus), "test")
        for seed in args.seeds:
            cfg = cfg0.model_copy(update={"seed": seed})
            t0 = time.perf_counter()
            res = fit(cfg, corpus, progress=False, name=name)
            out = scoring.predict(_kept(res, cfg), xt, 1024, torch.device("cpu"))
            score = task.metrics(corpus.spec, out, yt, xt)[head]
            runs.append(
                {
                    "seed": seed,
                    head: float(score),
                    "train_seconds": round(time.perf_counter() - t0, 1),
                    "best_epoch": res.best_epoch,
                }
            )
            print(f"{name} seed {seed}: test {head} {score:.4f}", flush=True)
        vals = [r[head] for r in runs]
        rows.append(
            {
                "model": name,
                "metric": head,
                "runs": runs,
                "min": min(vals),
                "max": max(vals),
                "spread": max(vals) - min(vals),
            }
        )
    doc = {
        "what": "test score of the kept epoch per seed (seed 0: the reference run)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    B.write(args.json, doc)
    for r in rows:
        print(
            f"{r['model']}: {r['metric']} {r['min']:.4f}–{r['max']:.4f} (spread {r['spread']:.4f})"
        )
    return 0


def _kept(res, cfg):
    """The model with the weights the train stage would save (``keep``: best or last)."""
    res.model.load_state_dict(res.state_dict(cfg.keep))
    return res.model.eval()


if __name__ == "__main__":
    sys.exit(main())
