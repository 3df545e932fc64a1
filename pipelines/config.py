"""Typed params sections for the flows: ``train``, ``evaluate`` and ``report``.

Each flow's ``main`` reads params.yaml once and validates only the section it owns; unknown
keys are errors (``rnnflow.config.Config`` forbids extras). Family-specific fields have
defaults and are ignored by families that do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from rnnflow.config import Config, ConfigError, Identifier, check_identifier
from rnnflow.env import PROJECT_ROOT

Device = Literal["auto", "cpu", "cuda"]


class PretrainConfig(Config):
    """seq2seq: epochs over the corpus's monolingual target lines (``monolingual.parquet``,
    ``tokenize.<corpus>.monolingual``) with an empty source, before the pairs: the decoder
    learns the language from more text than the pairs hold. Its own Adam, constant ``lr``;
    the pairs' epochs then start a fresh optimizer from the pretrained weights."""

    epochs: int = Field(1, ge=1)
    batch_size: int = Field(128, ge=1)
    max_batches: int | None = Field(None, ge=1)  # per epoch (shuffled): bounds CPU time
    lr: float | None = Field(None, gt=0)  # None: the model's lr


class ModelConfig(Config):
    """One entry of ``train.models``: what to train, on which corpus, and how."""

    corpus: Identifier
    family: str
    epochs: int = Field(ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(0.0, ge=0)  # max gradient norm; 0 = off
    schedule: Literal["constant", "cosine"] = "constant"  # per-epoch learning-rate schedule
    # Weights saved to model.pt: the epoch with the best validation accuracy (lowest RMSE for
    # regression), or the last one. Guards against a late loss spike, common in RNN training.
    keep: Literal["best", "last"] = "best"
    # recurrent families (rnn_classifier, rnn_tagger, rnn_regressor)
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    # image families: random shift of up to ``max_shift`` pixels per training example
    augment: bool = False
    max_shift: int = Field(2, ge=0)
    # text families (lm, seq2seq); ``cell``, ``hidden``, ``layers``, ``dropout`` as above
    embedding: int = Field(256, ge=1)
    softmax: Literal["full", "adaptive"] = "full"  # adaptive: Grave et al. 2017, exact probs
    cutoffs: list[int] = Field(default_factory=lambda: [2000, 10000])  # adaptive clusters
    # The model's own vocabulary, counted on what it trains on: rarer tokens → <unk>.
    # 1/None: the corpus vocabulary as tokenized. The softmax size is the CPU cost driver.
    min_freq: int = Field(1, ge=1)
    max_vocab: int | None = Field(None, gt=4)
    max_batches: int | None = Field(None, ge=1)  # per epoch (shuffled): bounds CPU time
    bptt: int = Field(35, ge=2)  # lm: truncated-BPTT window
    tie_weights: bool = False  # lm: output layer shares the embedding (needs embedding == hidden)
    attention: Literal["general", "dot", "none"] = "general"  # seq2seq: Luong et al. 2015
    bidirectional: bool = True  # seq2seq encoder
    teacher_forcing: float = Field(1.0, ge=0, le=1)  # seq2seq: share of teacher-forced batches
    origins: list[str] | None = None  # seq2seq: train/validate on rows of these origins only
    pretrain: PretrainConfig | None = None  # seq2seq: decoder first learns monolingual lines
    # decoding and sampling (evaluate, CLIs); not part of the training fingerprint
    beam: int = Field(5, ge=1)
    length_penalty: float = Field(1.0, ge=0)  # beam: final score / length ** length_penalty
    max_decode_len: int = Field(30, ge=1)
    top_k: int = Field(0, ge=0)  # sampling: keep the k most likely tokens (0: all)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.0, ge=0, le=1)  # sampling: nucleus mass to sample from (0: off)
    # sampling: a token already in the reply has its probability divided by this (1: off)
    repetition_penalty: float = Field(1.0, ge=1)
    min_decode_len: int = Field(0, ge=0)  # sampling: no <eos> before this many tokens
    block_unk: bool = False  # decoding never emits <unk> (perplexities are unaffected)
    samples: int = Field(12, ge=0)  # sample rows shown in the report
    # How the train stage runs, not what it trains (so not in model.pt's config): ``nproc``
    # processes per machine with DistributedDataParallel (torch.distributed.run; gloo on CPU,
    # NCCL on CUDA), each on its share of every batch, so the effective batch is
    # ``batch_size`` whatever ``nproc``. Several machines: ``nnodes`` and the rendezvous
    # ``host:port`` every machine's train stage names.
    nproc: int = Field(1, ge=1, exclude=True)
    nnodes: int = Field(1, ge=1, exclude=True)
    rdzv_endpoint: str | None = Field(None, exclude=True)
    prompts: list[str] = Field(default_factory=list)  # lm: report generations start here
    # lm evaluation: also score with a continuous cache of the last ``cache_size`` hidden states
    # (Grave et al. 2017), its flatness and weight chosen on validation; 0: off
    cache_size: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _text_checks(self) -> ModelConfig:
        if self.tie_weights and self.softmax != "full":
            raise ValueError("tie_weights needs softmax: full")
        if self.tie_weights and self.embedding != self.hidden:
            raise ValueError(
                f"tie_weights needs embedding == hidden (got {self.embedding} and {self.hidden})"
            )
        if self.cutoffs != sorted(set(self.cutoffs)) or any(c <= 0 for c in self.cutoffs):
            raise ValueError(f"cutoffs must be increasing positive ints, got {self.cutoffs}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nnodes > 1 needs rdzv_endpoint (host:port of the rendezvous)")
        return self


#: ModelConfig fields that only change decoding/reporting: not part of the train fingerprint.
DECODE_FIELDS = frozenset(
    {
        "beam",
        "length_penalty",
        "max_decode_len",
        "top_k",
        "temperature",
        "top_p",
        "repetition_penalty",
        "min_decode_len",
        "block_unk",
        "cache_size",
        "samples",
        "prompts",
    }
)


class TrainConfig(Config):
    """``train`` section: runtime settings shared by all models, and the models."""

    device: Device = "auto"
    threads: int = Field(0, ge=0)  # torch.set_num_threads when > 0
    # Mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler). Off by default:
    # these models are small enough to be launch-bound on a GPU, and low-precision
    # recurrences can learn long dependencies (parity) worse.
    amp: bool = False
    models: dict[Identifier, ModelConfig]

    def model(self, name: str) -> ModelConfig:
        """The entry for ``name``; the error lists the models that exist."""
        if name not in self.models:
            raise ConfigError(
                f"params: no model {name!r} under train.models (have: {sorted(self.models)})"
            )
        return self.models[name]


class EvaluateConfig(Config):
    """``evaluate`` section."""

    batch_size: int = Field(1024, ge=1)
    device: Device = "auto"
    amp: bool = False  # autocast inference on CUDA (see TrainConfig.amp)
    confusion_max_classes: int = Field(20, ge=2)  # write confusion.csv up to this many classes


class ReportConfig(Config):
    """``report`` section."""

    title: str = "rnnflow report"


@dataclass(frozen=True)
class Layout:
    """Where the flows read and write, relative to a project root (tests pass a tmp dir).

    Every name that becomes a path is an identifier, and every path is confirmed inside the
    root, so no model or corpus name can make a flow read, write or delete elsewhere.
    """

    root: Path = PROJECT_ROOT

    def _inside(self, *parts: str, name: str) -> Path:
        check_identifier(name, "model or corpus name")
        path = self.root.joinpath(*parts)
        # the parent, not the file: DVC's symlink cache type links files into its cache
        if not path.parent.resolve().is_relative_to(self.root.resolve()):
            raise ConfigError(f"{path}: resolves outside the project root {self.root}")
        return path

    def tokens(self, corpus: str) -> Path:
        return self._inside("data", "05_tokens", corpus, name=corpus)

    def model(self, name: str) -> Path:
        return self._inside("models", name, "model.pt", name=name)

    def checkpoint(self, name: str) -> Path:
        return self._inside("checkpoints", name, "last.pt", name=name)

    def live(self, name: str) -> Path:
        """The model's DVCLive directory (``pipelines.live``): curves, params, summary."""
        return self._inside("dvclive", name, name=name)

    def confusion(self, name: str) -> Path:
        return self._inside("plots", name, "confusion.csv", name=name)

    def metrics(self, name: str) -> Path:
        return self._inside("metrics", f"{name}.json", name=name)

    def timings(self, name: str) -> Path:
        """The run's wall times and machine (not a DVC output, not committed: they move on
        every run, so ``dvc metrics diff`` and ``git status`` show only what results move)."""
        return self._inside("reports", "timings", f"{name}.json", name=name)

    def samples(self, name: str) -> Path:
        """Sample outputs of a text model (generations, translations, replies) for the report."""
        return self._inside("reports", "samples", f"{name}.json", name=name)

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def params(self, params_path: str | Path) -> Path:
        """``params_path`` as given if absolute, else under the root."""
        path = Path(params_path)
        return path if path.is_absolute() else self.root / path
