"""Typed params sections for the flows: ``train``, ``evaluate`` and ``report``.

Each flow's ``main`` reads params.yaml once and validates only the section it owns; unknown
keys are errors (``rnnflow.config.Config`` forbids extras). Family-specific fields have
defaults and are ignored by families that do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from rnnflow.config import Config, ConfigError
from rnnflow.env import PROJECT_ROOT

Device = Literal["auto", "cpu", "cuda"]


class ModelConfig(Config):
    """One entry of ``train.models``: what to train, on which corpus, and how."""

    corpus: str
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


class TrainConfig(Config):
    """``train`` section: runtime settings shared by all models, and the models."""

    device: Device = "auto"
    threads: int = Field(0, ge=0)  # torch.set_num_threads when > 0
    # Mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler). Off by default:
    # on an H200 these small models are launch-bound (bf16 gave no speed-up for the CNN and
    # slowed the LSTMs by ~30%) and bf16 recurrences learned parity worse.
    amp: bool = False
    models: dict[str, ModelConfig]

    def model(self, name: str) -> ModelConfig:
        """The entry for ``name``; the error lists the models that exist."""
        if name not in self.models:
            raise ConfigError(f"params: no model {name!r} under train.models "
                              f"(have: {sorted(self.models)})")
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
    """Where the flows read and write, relative to a project root (tests pass a tmp dir)."""

    root: Path = PROJECT_ROOT

    def tokens(self, corpus: str) -> Path:
        return self.root / "data" / "05_tokens" / corpus

    def model(self, name: str) -> Path:
        return self.root / "models" / name / "model.pt"

    def checkpoint(self, name: str) -> Path:
        return self.root / "checkpoints" / name / "last.pt"

    def history(self, name: str) -> Path:
        return self.root / "plots" / name / "history.csv"

    def confusion(self, name: str) -> Path:
        return self.root / "plots" / name / "confusion.csv"

    def train_metrics(self, name: str) -> Path:
        return self.root / "metrics" / f"{name}_train.json"

    def metrics(self, name: str) -> Path:
        return self.root / "metrics" / f"{name}.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def params(self, params_path: str | Path) -> Path:
        """``params_path`` as given if absolute, else under the root."""
        path = Path(params_path)
        return path if path.is_absolute() else self.root / path
