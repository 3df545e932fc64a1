"""The base of the text tasks (:mod:`.lm`, :mod:`.translate`, :mod:`.dialogue`): loading a
text corpus, the model's own vocabulary, trained-model bundles (weights + config + spec +
tokenizer), decoding, and the CLIs' model loading (ids ↔ text: :mod:`.codec`).
Registers no task.

A text corpus is read with :mod:`pipelines.text.data` (ragged id columns, ``spec.json`` and
the tokenizer files); :meth:`TextTask.prepare` maps it to the model's vocabulary. The
tokenizer files travel in ``model.pt`` (``tokenizer``), so the CLIs need no ``data/``.

Every text job yields ``(loss, nll_sum, n_tokens)`` per batch; ``fit`` does the optimizer
step. Under ``torchrun`` each rank takes its share of every batch (rows ``rank::world``), so
all ranks take the same number of steps.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipelines import data as D
from pipelines import tasks
from pipelines.config import DecodeConfig
from pipelines.models import build_model
from pipelines.text import data as T
from pipelines.text.codec import Codec, detokenize

__all__ = ["TextTask", "TextJob", "Bundle", "load_bundle", "make_job", "evaluate"]
__all__ += ["decode_rows", "translate", "load_for_cli", "perplexity", "Codec", "detokenize"]


def perplexity(nll: float, n: int) -> float:
    return math.exp(nll / n) if n else float("nan")


class TextTask(tasks.Task):
    """A task over a text corpus; subclasses give ``sides``, the job and the evaluation."""

    text = True
    headline = "perplexity"
    higher_is_better = False
    sides: tuple[str, ...] = ()  # spec keys naming the id columns; the last is the output

    def check_spec(self, spec: dict[str, Any], path: Path) -> None:
        # the text contract: rnnflow/codec.py
        missing = [k for k in ("vocab_size", "specials", *self.sides) if k not in spec]
        if missing:
            raise ValueError(f"{path}: missing keys {missing}")

    def load_corpus(self, directory: Path) -> T.TextCorpus:
        """Train and validation splits, the spec, the tokenizer files (+ truecaser)."""
        directory = Path(directory)
        spec = tasks.read_spec(directory)
        return T.load_corpus(directory, spec, self.sides, D.data_identity(directory))

    def prepare(self, cfg: Any, corpus: T.TextCorpus) -> T.TextCorpus:
        return T.prepare(cfg, corpus)

    def saved_extras(self, corpus: Any) -> dict[str, Any]:
        # the tokenizer travels with the model (CLIs need no data/)
        return {"tokenizer": getattr(corpus, "artifacts", {})}

    def evaluate(
        self,
        path,
        model,
        spec,
        directory,
        batch_size,
        device,
        amp,
        confusion_max_classes=20,
        decode=None,
    ) -> tasks.Evaluation:
        from pipelines import device as dev

        device_ = torch.device(device)
        bundle = load_bundle(path, device_, decode)
        metrics, samples = self.evaluate_bundle(
            bundle, Path(directory), device_, dev.amp_dtype(device_, amp), batch_size
        )
        empty = torch.empty(0, dtype=torch.int64)
        return tasks.Evaluation({"task": spec["task"], **metrics}, samples, (empty, empty))

    def evaluate_bundle(
        self,
        bundle: Bundle,
        directory: Path,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        batch: int = 1024,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Metrics ``{"test": ..., "validation": ...}`` and sample rows for the report."""
        raise NotImplementedError

    def split(self, bundle: Bundle, directory: Path, split: str, text=()):
        """One split of the model's corpus in the model's vocabulary (+ raw text columns)."""
        part, table = T.load_split(directory, split, bundle.spec, text, sides=self.sides)
        assert bundle.codec is not None  # load_bundle gives a text task's bundle its codec
        return part.mapped(bundle.codec.luts), table


class TextJob:
    """What every text job holds: its model's config, the device, the autocast dtype, and its
    rank among ``world`` data-parallel processes (each takes rows ``rank::world``)."""

    headline = "perplexity"

    def __init__(
        self,
        cfg: Any,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.cfg, self.device, self.amp_dtype = cfg, device, amp_dtype
        self.rank, self.world = rank, world


def make_job(
    cfg,
    corpus: T.TextCorpus,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    rank: int = 0,
    world: int = 1,
):
    """The job of ``corpus``'s task (the corpus already ``text_data.prepare``-d)."""
    return tasks.get(corpus.task).make_job(cfg, corpus, device, amp_dtype, rank, world)


# --- trained models ----------------------------------------------------------------------


@dataclass
class Bundle:
    """A saved model with everything needed to use it on text."""

    model: torch.nn.Module
    cfg: Any  # the model's family config (pipelines.config.FAMILIES)
    spec: dict[str, Any]
    codec: Codec | None
    name: str = ""
    decode: DecodeConfig = field(default_factory=lambda: DecodeConfig())  # evaluate.models.<name>


def load_bundle(
    path: Path | str, device: torch.device | str = "cpu", decode: DecodeConfig | None = None
) -> Bundle:
    """``models/<name>/model.pt`` → model (eval mode), config, spec and text codec;
    ``decode``: how it decodes (default: :class:`~pipelines.config.DecodeConfig`'s)."""
    from pipelines.config import model_config

    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = model_config(saved["config"], name=saved.get("name", ""))
    model = build_model(cfg.family, cfg, saved["spec"])
    model.load_state_dict(saved["state_dict"])
    codec = (
        Codec(saved["spec"], saved.get("tokenizer") or {})
        if tasks.for_spec(saved["spec"]).text
        else None
    )
    return Bundle(
        model.to(device).eval(),
        cfg,
        saved["spec"],
        codec,
        saved.get("name", ""),
        decode or DecodeConfig(),
    )


def evaluate(
    bundle: Bundle,
    directory: Path | str,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    batch: int = 1024,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A text model's metrics ``{"test": ..., "validation": ...}`` and sample rows."""
    task = tasks.for_spec(bundle.spec)
    assert isinstance(task, TextTask)  # a text model's bundle
    return task.evaluate_bundle(bundle, Path(directory), device, amp_dtype, batch)


def translate_lines(
    bundle: Bundle, texts: list[str], beam: int | None = None, device: torch.device | str = "cpu"
) -> list[str]:
    """Raw source sentences → detokenised translations (or replies), beam or greedy."""
    assert bundle.codec is not None  # load_bundle gives a text task's bundle its codec
    ids = bundle.codec.encode(texts, "source")
    beam = bundle.decode.beam if beam is None else beam
    return output_texts(bundle, ids, "beam" if beam > 1 else "greedy", device, beam)


def decode_rows(
    model,
    src: T.Ragged,
    mode: str,
    cfg: DecodeConfig,
    device: torch.device,
    beam: int | None = None,
    batch: int = 512,
    generator: torch.Generator | None = None,
    codec: Codec | None = None,
) -> list[list[int]]:
    """Decode every row of ``src`` (``greedy``, ``beam`` or ``sample``), in the input order,
    as ``cfg`` says; in eval mode (no dropout), whatever mode ``model`` was in and is left in.
    With the model's ``codec``, ``no_repeat_ngram`` holds for the reply's words too, as the
    scores count them (a word can be spelt by other pieces, or in another case)."""
    reject = None
    if codec is not None and cfg.no_repeat_ngram:
        n = cfg.no_repeat_ngram
        reject = lambda ids: codec.repeats(ids, "target", n)  # noqa: E731
    was = model.training
    model.eval()
    try:
        return _decode_rows(model, src, mode, cfg, device, beam, batch, generator, reject)
    finally:
        model.train(was)


def _decode_rows(
    model,
    src: T.Ragged,
    mode: str,
    cfg: DecodeConfig,
    device: torch.device,
    beam: int | None,
    batch: int,
    generator: torch.Generator | None,
    reject: Any,
) -> list[list[int]]:
    beam = beam or cfg.beam
    per = max(1, batch // beam) if mode == "beam" else batch
    out: list[list[int] | None] = [None] * len(src)
    for idx in T.sorted_batches(src.lengths, per):
        s_np, s_len_np = T.padded(src, idx, eos=True)
        s, s_len = torch.from_numpy(s_np).to(device), torch.from_numpy(s_len_np)
        limit = min(cfg.max_decode_len, 2 * int(s_len.max()) + 10)
        if mode == "beam":
            rows = model.beam_search(s, s_len, beam, limit, cfg.length_penalty, cfg.block_unk)
        elif mode == "greedy":
            rows = model.greedy(s, s_len, limit, cfg.block_unk, cfg.no_repeat_ngram, reject)
        else:
            rows = model.sample(
                s,
                s_len,
                limit,
                cfg.temperature,
                cfg.top_k,
                generator,
                cfg.block_unk,
                cfg.top_p,
                cfg.repetition_penalty,
                cfg.min_decode_len,
                cfg.no_repeat_ngram,
                reject,
            )
        for i, r in zip(idx, rows):
            out[i] = r
    return out  # type: ignore[return-value]


def output_texts(
    bundle: Bundle,
    src: T.Ragged,
    mode: str,
    device: torch.device | str,
    beam: int | None = None,
    batch: int = 512,
) -> list[str]:
    """Decode ``src`` into readable target text (an ``<unk>`` the model emits stays visible:
    a subword vocabulary has none to emit)."""
    assert bundle.codec is not None  # load_bundle gives a text task's bundle its codec
    dev = torch.device(device)
    rows = decode_rows(bundle.model, src, mode, bundle.decode, dev, beam, batch, codec=bundle.codec)
    return [bundle.codec.text(r, "target") for r in rows]


def load_for_cli(prog: str, model: str, root: str | None = None) -> Bundle | None:
    """A trained text model for a CLI, or ``None`` after telling the user why not on stderr."""
    from pipelines.config import Layout
    from pipelines.integrity import IntegrityError, verify
    from rnnflow.config import ConfigError

    layout = Layout(Path(root)) if root else Layout()
    try:
        path = layout.model(model)
        if path.exists():
            verify(path, layout.root)
    except (ConfigError, IntegrityError) as exc:
        print(f"rnnflow {prog}: {exc}", file=sys.stderr)
        return None
    if not path.exists():
        print(
            f"rnnflow {prog}: no trained model at {path} (run `dvc repro` or "
            f"`python -m pipelines.flows.train {model}`)",
            file=sys.stderr,
        )
        return None
    return load_bundle(path, decode=cli_decode(layout, model))


def cli_decode(layout: Any, model: str) -> DecodeConfig:
    """How a CLI decodes ``model`` by default: its ``evaluate.models`` entry in the project's
    params.yaml (the settings its evaluation used), else the defaults."""
    from pipelines.config import EvaluateConfig
    from rnnflow.config import load_params, parse

    path = layout.params("params.yaml")
    if not path.exists():
        return DecodeConfig()
    return parse(EvaluateConfig, load_params(path), "evaluate").decode(model)
