"""Data-parallel training on CPU: one epoch of a model with ``nproc`` 1 and 2, side by side.

    python benchmarks/ddp_lm.py                 # books_lm, nproc 1 then 2, one epoch each
    python benchmarks/ddp_lm.py --nproc 1 2 4 --epochs 1

Each run is the train stage's own launch with ``nproc: N`` (``torch.distributed.run``) in a
scratch root over the real ``data/05_tokens/<corpus>``: train tokens per second and the
validation loss after the epoch, in ``benchmarks/results/ddp_lm.json``.
"""

from __future__ import annotations

import sys

import benchlib as B


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__, "--json")
    parser.add_argument("model", nargs="?", default="books_lm", help="a key of train.models")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run")
    args = parser.parse_args(argv)

    import torch

    from pipelines import tasks
    from pipelines.config import Layout
    from pipelines.text import data as T

    entry = B.models(B.ROOT)[args.model]
    tokens = Layout(B.ROOT).tokens(entry["corpus"])
    corpus = tasks.load_corpus(tokens)
    per_epoch = len(T.lm_stream(corpus.train.sides["ids"])) - 1  # every token + <eos> a doc
    machine = B.machine(torch=torch.__version__)
    runs = {}
    for n in args.nproc:
        got = B.ddp_train(args.model, entry, n, tokens, "--epochs", str(args.epochs))
        runs[str(n)] = {
            "epoch_seconds": got["timings"]["epoch_seconds"],
            "tokens_per_s": round(per_epoch * args.epochs / sum(got["timings"]["epoch_seconds"])),
            "val_loss": got["live"]["val_loss"],
            "val_perplexity": got["live"].get("val_perplexity"),
        }
        print(f"nproc {n}: {runs[str(n)]}", flush=True)
    doc = {
        "benchmark": "ddp_lm",
        **B.model_record(args.model, epochs=args.epochs),
        "train_tokens_per_epoch": per_epoch,
        "runs": runs,
        "date": B.now(),
        "machine": machine,
        "command": "python benchmarks/ddp_lm.py " + " ".join(argv or sys.argv[1:]),
    }
    B.write(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
