"""Recurrent families over ``x`` read as a sequence ``(T, F)``, cells from ``torch.nn``
(Elman RNN, LSTM — Hochreiter & Schmidhuber 1997, GRU — Cho et al. 2014), built the way
pytorch/examples ``word_language_model/model.py`` builds ``RNNModel``: one ``nn.RNN/LSTM/GRU``
with inter-layer dropout and a linear head.

- ``rnn_classifier``: class from the last step's top hidden state (MNIST row by row — Le et al.
  2015's "sequential MNIST" reads pixels, here rows as in the Keras/TF LSTM examples; bit
  counting and parity as in Hochreiter & Schmidhuber's counting tasks).
- ``rnn_tagger``: a class at every step (binary addition, LSB first: the carry is state).
- ``rnn_regressor``: the next value of a series from the last hidden state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipelines.models import register

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class _Recurrent(nn.Module):
    """Shared body: ``(B, T, F)`` → top-layer outputs ``(B, T, hidden)``."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden: int,
        layers: int,
        dropout: float,
        out_features: int,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r} (known: {sorted(CELLS)})")
        self.rnn = CELLS[cell](
            input_size,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, out_features)

    @staticmethod
    def _sequence(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) if x.dim() == 2 else x.flatten(2)

    @classmethod
    def _args(cls, cfg, spec, out_features: int) -> dict:
        shape = list(spec["x_shape"])
        features = math.prod(shape[1:]) if len(shape) > 1 else 1
        return dict(
            cell=cfg.cell,
            input_size=features,
            hidden=cfg.hidden,
            layers=cfg.layers,
            dropout=cfg.dropout,
            out_features=out_features,
        )

    def states(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self._sequence(x))
        return self.drop(out)


@register("rnn_classifier", tasks=("classify",))
class RNNClassifier(_Recurrent):
    """Logits ``(B, C)`` from the last step."""

    @classmethod
    def from_config(cls, cfg, spec) -> RNNClassifier:
        return cls(**cls._args(cfg, spec, int(spec["num_classes"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.states(x)[:, -1])


@register("rnn_tagger", tasks=("tag",))
class RNNTagger(_Recurrent):
    """Logits ``(B, T, C)``: one prediction per step."""

    @classmethod
    def from_config(cls, cfg, spec) -> RNNTagger:
        y_shape, x_shape = list(spec["y_shape"]), list(spec["x_shape"])
        if y_shape[:1] != x_shape[:1]:
            raise ValueError(
                f"rnn_tagger needs one label per step: x_shape {x_shape}, y_shape {y_shape}"
            )
        return cls(**cls._args(cfg, spec, int(spec["num_classes"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.states(x))


@register("rnn_regressor", tasks=("regress",))
class RNNRegressor(_Recurrent):
    """One value ``(B,)`` (the normalised next value) from the last step."""

    @classmethod
    def from_config(cls, cfg, spec) -> RNNRegressor:
        return cls(**cls._args(cfg, spec, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.states(x)[:, -1]).squeeze(-1)
