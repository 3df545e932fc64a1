"""Translate Spanish to English with the trained translator.

    rnnflow translate "hola, ¿cómo estás?"
    python -m pipelines.cli.translate --beam 1 "¿dónde está la biblioteca?" "tengo hambre."
    echo "me gusta leer." | python -m pipelines.cli.translate

Reads ``models/<model>/model.pt`` (weights and tokenizer: no data files needed) and decodes
as its evaluation did (``evaluate.models.<model>``: beam, length penalty). A model on a word
vocabulary reads words it never saw as ``<unk>`` (``--show-unknown`` names them); a subword
model has no unknown words.
"""

from __future__ import annotations

import sys

import rnnflow  # noqa: F401,I001  offline/telemetry env defaults first
from pipelines.cli import fail, model_error, positive_int
from pipelines.cli.loading import load_text_model, text_parser


def main(argv: list[str] | None = None) -> int:
    parser = text_parser("translate", __doc__, "es_en_translator")
    parser.add_argument(
        "text", nargs="*", help="sentences to translate (default: one per stdin line)"
    )
    parser.add_argument(
        "--beam",
        type=positive_int,
        default=None,
        help="beam size, 1 or more; 1 = greedy (default: the model's `beam` param)",
    )
    parser.add_argument(
        "--show-unknown", action="store_true", help="also print the words read as <unk> (on stderr)"
    )
    args = parser.parse_args(argv)
    # Every check comes before the model loads: a mistake is told at once, in one line.
    for i, sentence in enumerate(args.text, 1):
        if not sentence.strip():
            which = f"sentence {i} of {len(args.text)}" if len(args.text) > 1 else "the sentence"
            parser.error(f"{which} is empty: nothing to translate")
    if error := model_error("translate", args.model, args.root):
        return fail("translate", error)
    lines = args.text or [ln.strip() for ln in sys.stdin if ln.strip()]
    if not lines:
        parser.error("no text to translate: give sentences as arguments or one per stdin line")

    from pipelines import text

    loaded = load_text_model("translate", args.model, args.root)
    if isinstance(loaded, int):
        return loaded
    bundle, codec = loaded
    for src, out in zip(lines, text.translate_lines(bundle, lines, beam=args.beam)):
        if args.show_unknown and (unk := codec.unknown_words(src, "source")):
            print(f"(unknown: {', '.join(unk)})", file=sys.stderr)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
