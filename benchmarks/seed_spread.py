"""Run-to-run spread over seeds: retrain models with other seeds, score them on both splits.

    python benchmarks/seed_spread.py mnist_cnn --seeds 1 2
    python benchmarks/seed_spread.py mnist_cnn --seeds --nproc 2   # keep the seed runs

Each model is trained by the train stage's ``fit`` as ``params.yaml`` configures it but for
``seed``, then scored on its validation and test splits; seed 0, the committed reference run, is
read from ``metrics/<model>.json``. ``retrain.margin: measured`` promotes above the validation
spread. ``--nproc N`` also trains seed 0 with ``nproc: N`` (data-parallel) and scores it beside
the spread. The results file keeps the rows of other models.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import benchlib as B

SPLITS = ("validation", "test")


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__, "--json")
    parser.add_argument("models", nargs="+", help="keys of train.models (tensor tasks)")
    seeds = "extra seeds (none: keep the runs the results file holds)"
    parser.add_argument("--seeds", type=int, nargs="*", default=[1], help=seeds)
    parser.add_argument("--root", type=Path, default=B.ROOT, help="project root (data/, metrics/)")
    parser.add_argument("--nproc", type=int, default=0, help="also train seed 0 with N processes")
    args = parser.parse_args(argv)

    import torch

    from pipelines import scoring, tasks
    from pipelines.config import Layout, model_config
    from pipelines.models import build_model
    from pipelines.tensor import load_split
    from pipelines.training import fit

    def score(model, task, spec: dict, data: dict) -> dict[str, float]:
        """``{"<split>.<headline metric>": score}`` of ``model`` on each split of ``data``."""
        scores = {}
        for split, (x, y, _) in data.items():
            out = scoring.predict(model, x, 1024, torch.device("cpu"))
            scores[f"{split}.{task.headline}"] = float(task.metrics(spec, out, y, x)[task.headline])
        return scores

    torch.set_num_threads(2)
    machine = B.machine(torch=torch.__version__)  # the load average as the measuring starts
    layout = Layout(args.root)
    models = B.models(args.root)
    before = json.loads(args.json.read_text())["rows"] if args.json.exists() else []
    rows = []
    for name in args.models:
        cfg0 = model_config(**models[name])
        ref = json.loads(layout.metrics(name).read_text())
        tokens = layout.tokens(cfg0.corpus)
        corpus = tasks.load_corpus(tokens)
        task = tasks.for_spec(corpus.spec)
        head = task.headline
        runs = [
            {"seed": cfg0.seed, "from": f"metrics/{name}.json"}
            | {f"{split}.{head}": ref[split][head] for split in SPLITS}
        ]
        data = {split: load_split(tokens, split) for split in SPLITS}
        if not args.seeds:  # the runs measured before (an --nproc run beside them)
            runs = next(r["runs"] for r in before if r["model"] == name)
        for seed in args.seeds:
            cfg = cfg0.model_copy(update={"seed": seed})
            t0 = time.perf_counter()
            res = fit(cfg, corpus, progress=False, name=name)
            res.model.load_state_dict(res.state_dict(cfg.keep))  # what train saves: best or last
            run: dict = {"seed": seed, **score(res.model.eval(), task, corpus.spec, data)}
            run["train_seconds"] = round(time.perf_counter() - t0, 1)
            run["best_epoch"] = res.best_epoch
            runs.append(run)
            print(f"{name} seed {seed}: {run}", flush=True)
        keys = [f"{split}.{head}" for split in SPLITS]
        spreads = {k: max(r[k] for r in runs) - min(r[k] for r in runs) for k in keys}
        row = {**B.model_record(name), "metric": head, "runs": runs, "spreads": spreads}
        if args.nproc > 1:
            t0 = time.perf_counter()
            saved = B.ddp_train(name, models[name], args.nproc, tokens)["saved"]
            model = build_model(saved["family"], model_config(**saved["config"]), saved["spec"])
            model.load_state_dict(saved["state_dict"])
            dist: dict = {"nproc": args.nproc, "seed": cfg0.seed, "batch_size": cfg0.batch_size}
            dist |= score(model.eval(), task, corpus.spec, data)
            key = f"validation.{head}"
            low, high = min(r[key] for r in runs), max(r[key] for r in runs)
            dist["within_validation_spread"] = low <= dist[key] <= high
            dist["train_seconds"] = round(time.perf_counter() - t0, 1)
            row["distributed"] = dist
            print(f"{name} nproc {args.nproc}: {dist}", flush=True)
        rows.append(row)
    # models measured before and not now keep their rows
    rows += [r for r in before if r["model"] not in args.models]
    doc = {
        "what": "score of the kept epoch per training seed on both splits (seed 0: the reference "
        "run); retrain.margin 'measured' is the validation spread",
        "machine": machine,
        "measured_at": B.now(),
        "rows": rows,
    }
    B.write(args.json, doc)
    for r in rows:
        print(f"{r['model']}: spread {r['spreads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
