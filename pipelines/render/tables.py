"""The rows of the report's tables (models, clean), from what the report stage
gathered (:class:`Inputs`). Which metric heads a model's row, and which extras sit beside it, is
its task's business (:mod:`pipelines.tasks`), never a list kept here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipelines import render as R

NOT_EVALUATED = "not evaluated"


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


@dataclass
class Inputs:
    """Everything the report shows, read from disk."""

    train: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → live.flatten record
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → <model>.json
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    confusions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # models' sample outputs
    tasks: dict[str, str] = field(default_factory=dict)  # model → task name, where recorded
    clean: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted(set(self.train) | set(self.evals))


def task_spec(name: str | None) -> Any:
    """The task object of ``pipelines.tasks`` (``.headline``, ``.higher_is_better``,
    ``.report_extras``), or None for an unknown or unrecorded task."""
    if not name:
        return None
    try:
        from pipelines import tasks
    except ImportError:
        return None
    try:
        return tasks.get(name)
    except (KeyError, LookupError, ValueError):
        return None


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _leaves(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of the numeric leaves of ``d``."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _leaves(v, f"{prefix}{k}.")
        elif _numeric(v):
            out.append(f"{prefix}{k}")
    return out


def headline(spec: Any, train: dict[str, Any], test: dict[str, Any]) -> str:
    """The task's headline metric; without a task: the metric training tracked
    (``val_<metric>``), else the first numeric test metric besides n and loss."""
    if spec is not None:
        return spec.headline
    tracked = [
        k.removeprefix("val_")
        for k in train
        if k.startswith("val_") and k != "val_loss" and _numeric(train[k])
    ]
    if tracked:
        return tracked[0]
    return next((k for k in _leaves(test) if k not in ("n", "loss")), "loss")


def metrics_rows(inp: Inputs) -> list[dict[str, Any]]:
    """One row per model: test headline + extras, validation, training cost.

    A model trained but not evaluated (no ``reports/evaluate/<model>.json``) says so in its test
    cells; a value a model does not have stays None (shown as ``—``).
    """
    rows = []
    for name in inp.models:
        tr, ev = inp.train.get(name, {}), inp.evals.get(name)
        test, val = (ev or {}).get("test", {}), (ev or {}).get("validation", {})
        spec = task_spec(inp.tasks.get(name))
        head = headline(spec, tr, test)
        extra_keys = (
            tuple(spec.report_extras)
            if spec is not None
            else tuple(k for k in _leaves(test) if k not in ("n", "loss"))
        )
        extras = "; ".join(
            f"{k} {R.fmt(_get(test, k))}"
            for k in extra_keys
            if k != head and _get(test, k) is not None
        )
        better = None if spec is None else "higher" if spec.higher_is_better else "lower"
        missing = NOT_EVALUATED if ev is None else None
        rows.append(
            {
                "model": name,
                "task": inp.tasks.get(name),
                "corpus": tr.get("corpus"),
                "family": tr.get("family"),
                "metric": head,
                "better": better,
                "test": _get(test, head) if ev is not None else missing,
                "test_loss": test.get("loss") if ev is not None else missing,
                # evaluate's score of the same metric on validation, or none: training's
                # per-epoch validation score can be another metric (the translator's BLEU)
                "validation": _get(val, head) if ev is not None else missing,
                "test_extra": extras or missing,
                "n_test": test.get("n") if ev is not None else missing,
                "epochs": tr.get("epochs"),
                "device": tr.get("device"),
            }
        )
    return rows


def models_note(rows: list[dict[str, Any]]) -> str:
    notes = [
        "metric: the task's headline; test, test_loss, test_extra and n_test: the test split; "
        "validation: the same metric, scored by evaluate on the validation split",
        f"{R.EMPTY}: no such value for this model",
    ]
    if any(r["test"] == NOT_EVALUATED for r in rows):
        notes.insert(
            0,
            f"{NOT_EVALUATED}: trained, but the evaluate stage has not scored it "
            f"(no reports/evaluate/<model>.json)",
        )
    return "; ".join(notes) + "."


def clean_rows(inp: Inputs) -> list[dict[str, Any]]:
    """Rows in/out of the clean hop per corpus, with the drop reasons summed over parts."""
    rows = []
    for corpus, rep in inp.clean.items():
        reasons: Counter[str] = Counter()
        for part in (rep.get("parts") or {}).values():
            if isinstance(part, dict):
                reasons.update(
                    {
                        k: v
                        for k, v in (part.get("dropped") or {}).items()
                        if isinstance(v, (int, float))
                    }
                )
        rows.append(
            {
                "corpus": corpus,
                "rows_in": rep.get("rows_in"),
                "rows_out": rep.get("rows_out"),
                "dropped_fraction": rep.get("dropped_fraction"),
                "dropped": ", ".join(f"{k} {v}" for k, v in reasons.most_common()),
            }
        )
    return rows


MODEL_COLS = [
    "model",
    "task",
    "corpus",
    "family",
    "metric",
    "better",
    "test",
    "test_loss",
    "validation",
    "test_extra",
    "n_test",
    "epochs",
    "device",
]
