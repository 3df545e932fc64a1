"""A user's mistake on the command line gets one clear line and exit code 2, never a traceback.

Each case runs ``rnnflow ...`` as a real subprocess in the project root. None needs a trained
model: the checks come before anything is loaded or any Prefect flow starts, so the message
names the mistake even where ``models/`` is empty (and a case that would load a model or
start a server would run into the per-case timeout instead).
"""

from __future__ import annotations

import pytest

from tests.ops.conftest import rnnflow

# (arguments, stdin, words the error must contain)
CASES = [
    # a model of the wrong kind: its kind and the command that fits it
    (["translate", "--model", "mnist_cnn", "hi"], "", ["not a text model", "evaluate@mnist_cnn"]),
    (["translate", "--model", "books_lm", "hi"], "", ["language model", "rnnflow generate"]),
    (["chat", "--model", "books_lm"], "hi\n", ["books_lm", "language model", "rnnflow generate"]),
    (["chat", "--model", "es_en_translator"], "hi\n", ["translator", "rnnflow translate"]),
    (["generate", "--model", "twitter_chatbot"], "", ["chatbot", "rnnflow chat"]),
    # an unknown model: the models that exist
    (["translate", "--model", "nope", "hola"], "", ["nope", "es_en_translator", "mnist_cnn"]),
    (["generate", "--model", "nope"], "", ["nope", "books_lm"]),
    # nothing to translate
    (["translate", ""], "", ["empty"]),
    (["translate", "hola", "   "], "", ["empty", "2"]),
    (["translate"], "\n   \n", ["no text"]),
    # sizes that must be positive, a temperature that must be above 0
    (["translate", "--beam", "0", "hola"], "", ["--beam", "positive"]),
    (["translate", "--beam", "-3", "hola"], "", ["--beam", "positive", "-3"]),
    (["chat", "--beam", "0"], "hi\n", ["--beam", "positive"]),
    (["chat", "--temperature", "0"], "hi\n", ["--temperature", "--greedy"]),
    (["chat", "--top-k", "-1"], "hi\n", ["--top-k"]),
    (["generate", "--length", "0"], "", ["--length", "positive"]),
    (["generate", "--temperature", "0"], "", ["--temperature", "--greedy"]),
    (["generate", "--temperature", "-1"], "", ["--temperature"]),
    (["generate", "-n", "0"], "", ["--num", "positive"]),
    # operations: what is wrong and what exists, before any flow starts
    (["retrain", "--model", "nope"], "", ["nope", "mnist_cnn"]),
    (["search", "search/nope.yaml"], "", ["search/nope.yaml", "search/mnist_logreg.yaml"]),
    (["search", "params.yaml"], "", ["params.yaml", "search/"]),
    (["search", "search/mnist_logreg.yaml", "--trials", "0"], "", ["--trials", "positive"]),
]


@pytest.mark.parametrize(("args", "stdin", "words"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_mistake_gets_one_clear_line_and_exit_2(
    args: list[str], stdin: str, words: list[str]
) -> None:
    out = rnnflow(*args, stdin=stdin)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stdout == "", out.stdout  # nothing was translated, generated or run
    # one line says what is wrong; before it, at most argparse's usage
    *usage, error = out.stderr.strip().splitlines()
    assert error.startswith(f"rnnflow {args[0]}: error: "), out.stderr
    assert not usage or usage[0].startswith(f"usage: rnnflow {args[0]} "), out.stderr
    assert all(line.startswith(" ") for line in usage[1:]), out.stderr
    for word in words:
        assert word in error, (word, out.stderr)
