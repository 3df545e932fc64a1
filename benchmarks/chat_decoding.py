"""Chatbot decoding settings on the VALIDATION contexts: distinct-1/2, copies, reply length.

    python benchmarks/chat_decoding.py '[[10, 0, 0.8, 1.0, 0], [0, 0.9, 0.8, 1.5, 4]]'

Each setting is ``[top_k, top_p, temperature, repetition_penalty, min_decode_len]``; the
committed ``models/twitter_chatbot/model.pt`` samples a reply to every validation context
(seed 0). What ``params.yaml``'s chatbot decoding was chosen from; test contexts are never read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from pipelines.metrics import scorers
    from pipelines.tasks import get, text
    from pipelines.tasks.dialogue import copied

    settings = json.loads((argv or sys.argv[1:])[0])
    torch.set_num_threads(2)
    bundle = text.load_bundle(_ROOT / "models" / "twitter_chatbot" / "model.pt")
    task, corpus = get("dialogue"), _ROOT / "data" / "05_tokens" / "twitter"
    val = task.split(bundle, corpus, "validation")[0]
    train = task.split(bundle, corpus, "train")[0].sides["target"]
    seen = {tuple(train.row(i).tolist()) for i in range(len(train))}

    def toks(rows):
        return [bundle.codec.tokens(r, "target") for r in rows]

    for k, p, t, rp, ml in settings:
        cfg = bundle.cfg.model_copy(
            update=dict(top_k=k, top_p=p, temperature=t, repetition_penalty=rp, min_decode_len=ml)
        )
        out = text.decode_rows(
            bundle.model,
            val.sides["source"],
            "sample",
            cfg,
            torch.device("cpu"),
            generator=torch.Generator().manual_seed(0),
        )
        row = dict(top_k=k, top_p=p, temperature=t, repetition_penalty=rp, min_len=ml)
        row |= dict(
            distinct_1=round(scorers.distinct(toks(out), 1), 3),
            distinct_2=round(scorers.distinct(toks(out), 2), 3),
            copied=round(copied(out, seen), 3),
            mean_length=round(sum(map(len, out)) / max(len(out), 1), 1),
        )
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
