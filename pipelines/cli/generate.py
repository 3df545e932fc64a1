"""Generate text with the trained word-level language model.

    rnnflow generate --prompt "It was"
    python -m pipelines.cli.generate --prompt "The king" --greedy --length 30
    python -m pipelines.cli.generate --prompt "She said" --temperature 0.8 --top-k 40 -n 3

Sampling (default) draws each word from the ``top_k`` most likely at ``temperature`` (the
model's params unless given); ``--greedy`` takes the most likely word. Words of the prompt
the model never saw are read as ``<unk>``.
"""

from __future__ import annotations

import argparse
import sys

import rnnflow  # noqa: F401,I001  offline/telemetry env defaults first
from pipelines.cli import fail, model_error, non_negative_int, positive_int, temperature
from pipelines.cli.loading import load_text_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow generate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    parser.add_argument(
        "--model", default="books_lm", help="model name under models/ (default: %(default)s)"
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    parser.add_argument(
        "--length",
        type=positive_int,
        default=None,
        help="at most this many words, 1 or more (default: the model's max_decode_len)",
    )
    parser.add_argument("--greedy", action="store_true", help="most likely word at each step")
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=None,
        help="sampling temperature, above 0 (default: params); 0 is refused: use --greedy",
    )
    parser.add_argument(
        "--top-k",
        type=non_negative_int,
        default=None,
        help="sampling: the k most likely words, 0 = all (default: params)",
    )
    parser.add_argument(
        "-n", "--num", type=positive_int, default=1, help="how many continuations (default: 1)"
    )
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    parser.add_argument("--no-stop", action="store_true", help="do not stop at <eos>")
    args = parser.parse_args(argv)
    # Before torch and the model load: a wrong model is told at once, in one line.
    if error := model_error("generate", args.model, args.root):
        return fail("generate", error)

    import torch

    bundle = load_text_model("generate", args.model, args.root)
    if isinstance(bundle, int):
        return bundle
    cfg, codec, model = bundle.decode, bundle.codec, bundle.model
    assert codec is not None  # load_text_model checked
    gen = torch.Generator()
    gen.manual_seed(args.seed) if args.seed is not None else gen.seed()
    ids = torch.from_numpy(codec.encode([args.prompt], "ids").values)
    for _ in range(args.num):
        out = model.generate(  # type: ignore[operator]  # an lm model (task checked)
            ids,
            cfg.max_decode_len if args.length is None else args.length,
            greedy=args.greedy,
            temperature=cfg.temperature if args.temperature is None else args.temperature,
            top_k=cfg.top_k if args.top_k is None else args.top_k,
            generator=gen,
            stop_at_eos=not args.no_stop,
            block_unk=cfg.block_unk,
        )
        print(codec.text(out, "ids", prompt=args.prompt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
