"""Generate text with the trained word-level language model.

    rnnflow generate --prompt "It was"
    python -m pipelines.cli.generate --prompt "The king" --greedy --length 30
    python -m pipelines.cli.generate --prompt "She said" --temperature 0.8 --top-k 40 -n 3

Sampling (default) draws each word from the ``top_k`` most likely at ``temperature`` (the
model's params unless given); ``--greedy`` takes the most likely word. Words of the prompt
the model never saw are read as ``<unk>``.
"""

from __future__ import annotations

import sys

import rnnflow  # noqa: F401,I001  offline/telemetry env defaults first
from pipelines.cli import positive_int
from pipelines.cli.loading import load_text_model, sampling, sampling_arguments, text_parser


def main(argv: list[str] | None = None) -> int:
    parser = text_parser("generate", __doc__, "books_lm")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    parser.add_argument(
        "--length",
        type=positive_int,
        default=None,
        help="at most this many words, 1 or more (default: the model's max_decode_len)",
    )
    parser.add_argument("--greedy", action="store_true", help="most likely word at each step")
    parser.add_argument(
        "-n", "--num", type=positive_int, default=1, help="how many continuations (default: 1)"
    )
    sampling_arguments(parser)
    parser.add_argument("--no-stop", action="store_true", help="do not stop at <eos>")
    args = parser.parse_args(argv)
    loaded = load_text_model("generate", args.model, args.root)
    if isinstance(loaded, int):
        return loaded
    bundle, codec = loaded
    import torch

    cfg, gen = sampling(bundle, args)
    ids = torch.from_numpy(codec.encode([args.prompt], "ids").values)
    for _ in range(args.num):
        out = bundle.model.generate(  # type: ignore[operator]  # an lm model (task checked)
            ids,
            cfg.max_decode_len if args.length is None else args.length,
            greedy=args.greedy,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            generator=gen,
            stop_at_eos=not args.no_stop,
            block_unk=cfg.block_unk,
        )
        print(codec.text(out, "ids", prompt=args.prompt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
