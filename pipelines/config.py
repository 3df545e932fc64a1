"""Typed params sections for the flows: ``train``, ``evaluate`` and ``report``.

Each flow's ``main`` reads params.yaml once and validates only the section it owns; unknown
keys are errors (``rnnflow.config.Config`` forbids extras). Each model family has its own
config class (:data:`FAMILIES`), so a field another family takes is an error naming the model,
the field and the family; how a text model decodes lives on the evaluate side
(``evaluate.models.<model>``, :class:`DecodeConfig`), so changing it reruns evaluate only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, SerializeAsAny, field_validator, model_validator

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


class NegativeConfig(Config):
    """seq2seq: negative training against generic replies (He & Glass 2020), after the pair
    epochs and from the weights they kept: ``epochs`` more over the pairs, with their own Adam
    at a constant ``lr``. Each batch's contexts are also answered greedily. Among the last
    ``window`` greedy replies, a reply given more than ``max_repeats`` times is pushed down by
    ``weight`` × its tokens' mean unlikelihood, −log(1 − p) (Welleck et al. 2020), and the
    likelihood weighs each target token down by how often they use it (FACE, Jiang et al.
    2019). With ``contrast`` above 0, each gold reply must also be likelier after its own
    context than after the batch's previous row's, by ``margin`` nats a token (the mean over its
    tokens of log p(y|x) − log p(y|x'), through a softplus): replies that fit any context lose
    their edge. The weights after its last epoch are the model's."""

    epochs: int = Field(1, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight: float = Field(1.0, gt=0)
    max_repeats: int = Field(2, ge=1)
    window: int = Field(2000, ge=1)
    max_len: int = Field(25, ge=1)  # greedy replies are cut at this many tokens
    contrast: float = Field(0.0, ge=0)  # 0: no context contrast
    margin: float = Field(1.0, ge=0)


class ModelConfig(Config):
    """What every entry of ``train.models`` has: the corpus, the family and how to optimise.
    Each family adds its own fields (:data:`FAMILIES`); a field of another family is an error."""

    #: The package holding the family's module and its corpus tasks (``pipelines/<kind>``):
    #: a train or evaluate stage imports that package alone (:func:`pipelines.kinds.load`).
    kind: ClassVar[str]
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
    # How the train stage runs, not what it trains (so not in model.pt's config): ``nproc``
    # processes per machine with DistributedDataParallel (torch.distributed.run; gloo on CPU,
    # NCCL on CUDA), each on its share of every batch, so the effective batch is
    # ``batch_size`` whatever ``nproc``. Several machines: ``nnodes`` and the rendezvous
    # ``host:port`` every machine's train stage names.
    nproc: int = Field(1, ge=1, exclude=True)
    nnodes: int = Field(1, ge=1, exclude=True)
    rdzv_endpoint: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _run_checks(self) -> ModelConfig:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nnodes > 1 needs rdzv_endpoint (host:port of the rendezvous)")
        return self


class TensorConfig(ModelConfig):
    """Families of the fixed-shape corpora; with ``augment``, each training image is shifted
    at random by up to ``max_shift`` pixels (2-D inputs only)."""

    kind: ClassVar[str] = "tensor"
    augment: bool = False
    max_shift: int = Field(2, ge=0)


class LogRegConfig(TensorConfig):
    family: Literal["logreg"]


class CNNConfig(TensorConfig):
    family: Literal["cnn"]


class MLPConfig(TensorConfig):
    family: Literal["mlp"]
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class CNNBNConfig(TensorConfig):
    family: Literal["cnn_bn"]
    hidden: int = Field(64, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class RNNConfig(TensorConfig):
    family: Literal["rnn_classifier", "rnn_tagger", "rnn_regressor"]
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class TextConfig(ModelConfig):
    """Text families: a recurrent network over the model's own vocabulary."""

    kind: ClassVar[str] = "text"
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    embedding: int = Field(256, ge=1)
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    softmax: Literal["full", "adaptive"] = "full"  # adaptive: Grave et al. 2017, exact probs
    cutoffs: list[int] = Field(default_factory=lambda: [2000, 10000])  # adaptive clusters
    # The model's own vocabulary, counted on what it trains on: rarer tokens → <unk>.
    # 1/None: the corpus vocabulary as tokenized. The softmax size is the CPU cost driver.
    min_freq: int = Field(1, ge=1)
    max_vocab: int | None = Field(None, gt=4)
    max_batches: int | None = Field(None, ge=1)  # per epoch (shuffled): bounds CPU time

    @model_validator(mode="after")
    def _cutoffs(self) -> TextConfig:
        if self.cutoffs != sorted(set(self.cutoffs)) or any(c <= 0 for c in self.cutoffs):
            raise ValueError(f"cutoffs must be increasing positive ints, got {self.cutoffs}")
        return self


class LMConfig(TextConfig):
    family: Literal["lm"]
    bptt: int = Field(35, ge=2)  # truncated-BPTT window
    tie_weights: bool = False  # output layer shares the embedding (needs embedding == hidden)

    @model_validator(mode="after")
    def _tying(self) -> LMConfig:
        if self.tie_weights and self.softmax != "full":
            raise ValueError("tie_weights needs softmax: full")
        if self.tie_weights and self.embedding != self.hidden:
            raise ValueError(
                f"tie_weights needs embedding == hidden (got {self.embedding} and {self.hidden})"
            )
        return self


class Seq2SeqConfig(TextConfig):
    family: Literal["seq2seq"]
    attention: Literal["general", "dot", "none"] = "general"  # Luong et al. 2015
    bidirectional: bool = True  # encoder
    teacher_forcing: float = Field(1.0, ge=0, le=1)  # share of teacher-forced batches
    origins: list[str] | None = None  # train/validate on rows of these origins only
    pretrain: PretrainConfig | None = None  # the decoder first learns monolingual lines
    # pointer-generator: the decoder may copy a source token (needs attention)
    copy_source: bool = False
    negative: NegativeConfig | None = None  # then push down the replies it repeats

    @model_validator(mode="after")
    def _copying(self) -> Seq2SeqConfig:
        # the model copies where it attends, and trains teacher-forced only
        if self.copy_source and (self.attention == "none" or self.teacher_forcing < 1):
            raise ValueError("copy_source needs attention and teacher_forcing 1")
        # its greedy decoding runs outside DistributedDataParallel's forward
        if self.negative is not None and self.nproc * self.nnodes > 1:
            raise ValueError("negative trains in one process (nproc 1, nnodes 1)")
        return self


def _by_family(*classes: type[ModelConfig]) -> dict[str, type[ModelConfig]]:
    return {f: c for c in classes for f in get_args(c.model_fields["family"].annotation)}


#: Each family's config class, by the ``family:`` values its ``Literal`` names.
FAMILIES = _by_family(
    LogRegConfig, MLPConfig, CNNConfig, CNNBNConfig, RNNConfig, LMConfig, Seq2SeqConfig
)


def check_model_fields(name: str, entry: Any) -> None:
    """Raise ``ValueError`` naming the model, the field and the family when ``entry`` (one
    ``train.models`` entry) has a field its family does not take."""
    if not isinstance(entry, dict):
        return
    family = entry.get("family")
    if family not in FAMILIES:
        raise ValueError(f"model {name!r}: family {family!r} is not one of {sorted(FAMILIES)}")
    fields = FAMILIES[family].model_fields
    for key in entry:
        if key not in fields:
            raise ValueError(
                f"model {name!r}: {key!r} is not a field of family {family!r} "
                f"(its fields: {', '.join(fields)})"
            )


def model_config(
    data: dict[str, Any] | None = None, /, *, name: str = "", **fields: Any
) -> ModelConfig:
    """A ``train.models`` entry (or a saved model's config) as its family's config class;
    ``name`` is the model's, for the error."""
    entry = {**(data or {}), **fields}
    check_model_fields(name or "?", entry)
    return FAMILIES[entry["family"]].model_validate(entry)


class DecodeConfig(Config):
    """One entry of ``evaluate.models``: how a text model decodes and what evaluate shows.
    Changing it reruns evaluate only; models without an entry decode with these defaults."""

    beam: int = Field(default=5, ge=1)
    # beam: the final score is divided by length ** length_penalty
    length_penalty: float = Field(default=1.0, ge=0)
    max_decode_len: int = Field(default=30, ge=1)
    top_k: int = Field(default=0, ge=0)  # sampling: keep the k most likely tokens (0: all)
    temperature: float = Field(default=1.0, gt=0)
    # sampling: the nucleus mass to sample from (0: off)
    top_p: float = Field(default=0.0, ge=0, le=1)
    # sampling: a token already in the reply has its probability divided by this (1: off)
    repetition_penalty: float = Field(default=1.0, ge=1)
    min_decode_len: int = Field(default=0, ge=0)  # sampling: no <eos> before this many tokens
    # seq2seq greedy and sampling: no n-gram of this length twice in one output (0: off)
    no_repeat_ngram: int = Field(default=0, ge=0)
    block_unk: bool = False  # decoding never emits <unk> (perplexities are unaffected)
    samples: int = Field(default=12, ge=0)  # sample rows shown in the report
    prompts: list[str] = Field(default_factory=list)  # lm: report generations start here
    # lm evaluation: also score with a continuous cache of the last ``cache_size`` hidden states
    # (Grave et al. 2017), its flatness and weight chosen on validation; 0: off
    cache_size: int = Field(default=0, ge=0)


#: How training scores a translator's validation BLEU each epoch (the epoch kept is chosen on
#: it): greedy, fixed, so that the model a training run keeps never depends on evaluate's
#: settings.
VALIDATION_DECODE = DecodeConfig(max_decode_len=40)


class TrainConfig(Config):
    """``train`` section: runtime settings shared by all models, and the models."""

    device: Device = "auto"
    threads: int = Field(0, ge=0)  # torch.set_num_threads when > 0
    # Mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler). Off by default:
    # these models are small enough to be launch-bound on a GPU, and low-precision
    # recurrences can learn long dependencies (parity) worse.
    amp: bool = False
    # SerializeAsAny: a model dumps its family's fields, not only the base class's
    models: dict[Identifier, SerializeAsAny[ModelConfig]]

    @field_validator("models", mode="before")
    @classmethod
    def _families(cls, models: Any) -> Any:
        if not isinstance(models, dict):
            return models
        return {
            name: model_config(entry, name=name) if isinstance(entry, dict) else entry
            for name, entry in models.items()
        }

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
    models: dict[Identifier, DecodeConfig] = Field(default_factory=dict)

    def decode(self, name: str) -> DecodeConfig:
        """``models.<name>``, or the defaults for a model without an entry."""
        return self.models.get(name, DecodeConfig())


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
