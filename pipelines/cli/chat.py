r"""Chat with the trained seq2seq chatbot: type a line, get a reply; an empty line or EOF ends.

    rnnflow chat
    printf 'hi there\nhow are you?\n' | python -m pipelines.cli.chat --greedy

Replies are sampled as the model's evaluation samples them (``evaluate.models.<model>`` in
params.yaml: nucleus ``top_p``, ``temperature``, repetition penalty; ``--top-k`` and
``--temperature`` override); ``--greedy`` takes the most likely token each step, ``--beam K``
searches. A model on a word vocabulary reads words it never saw as ``<unk>`` and still answers
(``--show-unknown`` names them); a subword model has no unknown words.
"""

from __future__ import annotations

import sys

import rnnflow  # noqa: F401,I001  offline/telemetry env defaults first
from pipelines.cli import positive_int
from pipelines.cli.loading import load_text_model, sampling, sampling_arguments, text_parser


def main(argv: list[str] | None = None) -> int:
    parser = text_parser("chat", __doc__, "twitter_chatbot")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="most likely word at each step")
    mode.add_argument(
        "--beam", type=positive_int, default=None, help="beam search with this beam (1 or more)"
    )
    sampling_arguments(parser)
    parser.add_argument(
        "--show-unknown",
        action="store_true",
        help="print the words read as <unk> before each reply",
    )
    args = parser.parse_args(argv)
    loaded = load_text_model("chat", args.model, args.root)
    if isinstance(loaded, int):
        return loaded
    bundle, codec = loaded
    import torch

    from pipelines import text

    cfg, gen = sampling(bundle, args)
    interactive = sys.stdin.isatty()
    decoding = "beam" if args.beam else "greedy" if args.greedy else "sample"
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or not line.strip():
            return 0
        line = line.strip()
        if args.show_unknown and (unk := codec.unknown_words(line, "source")):
            print(f"(unknown: {', '.join(unk)})")
        ids = codec.encode([line], "source")
        out = text.decode_rows(
            bundle.model,
            ids,
            decoding,
            cfg,
            torch.device("cpu"),
            beam=args.beam,
            generator=gen,
            codec=codec,
        )[0]
        reply = codec.text(out, "target") or "..."
        print(f"bot> {reply}" if interactive else reply, flush=True)


if __name__ == "__main__":
    sys.exit(main())
