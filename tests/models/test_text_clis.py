"""The text models' command lines (``rnnflow translate``, ``chat``, ``generate``) on the toy
models of ``conftest.py``."""

from __future__ import annotations

import io

import pytest


def test_cli_help(capsys):
    from pipelines.cli import chat, ddp_train, generate, translate

    for mod in (translate, chat, generate, ddp_train):
        with pytest.raises(SystemExit) as exc:
            mod.main(["--help"])
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Spanish" in out and "chatbot" in out and "--prompt" in out
    assert "torch.distributed.run" in out


def test_clis_answer_even_with_unknown_words(trained, monkeypatch, capsys):
    from pipelines.cli import chat, generate, translate
    from rnnflow.cli import main as rnnflow

    layout, _ = trained
    root = str(layout.root)
    assert (
        rnnflow(
            [
                "translate",
                "--model",
                "toy_translate",
                "--root",
                root,
                "el gato come pan .",
                "el zorro xyz come .",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "The cat eats bread." and len(lines) == 2 and lines[1]
    monkeypatch.setattr("sys.stdin", io.StringIO("hi how are you ?\nqwerty zzz ?\n\n"))
    assert chat.main(["--model", "toy_dialogue", "--root", root, "--greedy", "--show-unknown"]) == 0
    out = capsys.readouterr().out
    assert "unknown: qwerty, zzz" in out and len(out.strip().splitlines()) == 3
    assert (
        generate.main(
            [
                "--model",
                "toy_lm",
                "--root",
                root,
                "--prompt",
                "the cat",
                "--seed",
                "0",
                "-n",
                "2",
                "--length",
                "6",
            ]
        )
        == 0
    )
    gen = capsys.readouterr().out.strip().splitlines()
    assert len(gen) == 2 and all(g.startswith("The cat") for g in gen)
    assert translate.main(["--model", "missing", "--root", root, "x"]) == 2
