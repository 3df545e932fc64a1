"""Translator beam settings on the VALIDATION pairs: BLEU per origin.

    python benchmarks/translate_decoding.py '[[5, 0.6], [5, 1.0], [10, 1.0]]' [--rows N]

Each setting is ``[beam, length_penalty]``; the committed ``models/es_en_translator/model.pt``
beam-decodes the first ``N`` validation pairs of each origin (all by default) exactly as the
evaluate stage decodes the test pairs (detokenised, truecased, ``<unk>`` replaced when the
model's ``unk_replace`` is on) and sacrebleu scores them against the raw references. What
``params.yaml``'s beam and length penalty were chosen from; test pairs are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", help="JSON list of [beam, length_penalty]")
    parser.add_argument("--rows", type=int, default=None, help="pairs per origin (all: none)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from pipelines.metrics import scorers
    from pipelines.tasks import get, text

    torch.set_num_threads(args.threads)
    bundle = text.load_bundle(_ROOT / "models" / "es_en_translator" / "model.pt")
    corpus = _ROOT / "data" / "05_tokens" / "es_en"
    val, table = get("translate").split(bundle, corpus, "validation", text=["src", "tgt"])
    src_text, ref_text = table.column("src").to_pylist(), table.column("tgt").to_pylist()
    for origin in sorted(set(val.origin.tolist())):
        idx = np.nonzero(val.origin == origin)[0][: args.rows]
        src = val.sides["source"].take(idx)
        refs = [[ref_text[i] for i in idx]]
        for beam, lp in json.loads(args.settings):
            bundle.cfg = bundle.cfg.model_copy(update={"beam": beam, "length_penalty": lp})
            t0 = time.perf_counter()
            hyps = text.output_texts(bundle, src, [src_text[i] for i in idx], "beam", "cpu", beam)
            row = {"origin": origin, "n": len(idx), "beam": beam, "length_penalty": lp}
            row |= {
                "bleu": round(scorers.score("bleu", hyps, refs)["score"], 2),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
