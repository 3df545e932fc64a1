"""DVCLive: how training logs its curves and results, and how the readers get them back.

The train stage writes one DVCLive directory per model, ``dvclive/<model>/`` (declared in
``dvc.yaml``, read by ``dvc exp show``, ``dvc metrics``, ``dvc plots``, the VS Code extension
and Studio)::

    dvclive/<model>/metrics.json              # summary (a DVC metric): numbers only
    dvclive/<model>/params.yaml               # the model's config and the run's facts (text)
    dvclive/<model>/plots/metrics/<name>.tsv  # one curve per metric: step (= epoch), value

Per epoch (``step`` = the epoch, from 1): ``train_loss``, ``val_loss`` and ``val_<monitor>``.
The summary holds their last values, ``saved.*`` — the epoch whose weights ``model.pt`` holds and
its values, the headline for ``dvc exp show`` — and the run's counts (``epochs``,
``parameters``, ``n_train``…). Text (device, torch version, family, corpus, task, keep, amp)
goes to ``params.yaml`` with the config, so ``dvc metrics diff`` only ever compares numbers.
Timings are not here: they move on every run (``reports/timings/<model>.json``, not committed).

DVCLive only observes: it is opened with ``dvcyaml=False`` (``dvc.yaml`` is ours),
``save_dvc_exp=False`` (no experiment or commit of its own: under ``dvc repro``/``dvc exp run``
DVC owns both), no report, no system monitor, and Studio off (``DVC_STUDIO_OFFLINE``, and
``studio.offline`` in ``.dvc/config``). The checkpoint's history is the record: on resume the
curves are re-logged from it, so a run killed between the checkpoint and the DVCLive write (or
whose outputs ``dvc repro`` removed before rerunning the stage) continues the same curves.

``history``/``train_metrics`` read the files back (report, benchmarks).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

LIVE_DIR = "dvclive"  # under the project root: dvclive/<model>/
CURVES = "plots/metrics"  # DVCLive's per-metric TSV folder, inside a model's directory
# Final numbers of the run (besides the curves' last values and ``saved``).
RUN_METRICS = (
    "epochs",
    "saved_epoch",
    "resumed_from_epoch",
    "n_train",
    "n_validation",
    "parameters",
)
# Text facts of the run, logged as params.
RUN_PARAMS = ("model", "corpus", "family", "task", "keep", "device", "amp", "torch", "world")


def live_dir(root: Path, model: str) -> Path:
    return Path(root) / LIVE_DIR / model


# --- writing ---------------------------------------------------------------------------


def _offline() -> None:
    # Studio's live-metrics client posts when it finds a token; never from here. (.dvc/config
    # says the same for DVC itself: [studio] offline = true.)
    os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")


def open_live(directory: Path, resume: bool) -> Any:
    """A ``dvclive.Live`` on ``directory`` that only writes files there (see the module doc).

    ``resume=False`` clears what an earlier run left in ``directory``.
    """
    _offline()
    from dvclive import Live
    from dvclive.dvc import _find_dvc_root

    class _Live(Live):
        def _init_dvc(self) -> None:
            # Outside a DVC project (a test's tmp root run from a plain git repo) DVCLive would
            # `dvc init` the enclosing git repository; there, log files only.
            if os.getenv("DVC_ROOT") or _find_dvc_root():
                super()._init_dvc()
            else:
                self._save_dvc_exp = False
                self._dvc_file = "dvc.yaml"

    return _Live(
        dir=str(directory),
        resume=resume,
        report=None,
        save_dvc_exp=False,
        dvcyaml=False,
        monitor_system=False,
    )


def log_epoch(live: Any, row: Mapping[str, Any], columns: Iterable[str]) -> None:
    """One epoch's row: each column a metric at ``step = row["epoch"]``, then the summary."""
    live.step = int(row["epoch"])
    for col in columns:
        live.log_metric(col, row[col])
    live.next_step()


def relog(live: Any, history: list[dict[str, Any]], columns: Iterable[str]) -> None:
    """Replace the curves with ``history`` (the checkpoint's record), step for step."""
    cols = list(columns)
    folder = Path(live.plots_dir) / "metrics"
    for tsv in folder.glob("*.tsv"):
        tsv.unlink()
    live.summary = {k: v for k, v in live.summary.items() if k not in cols and k != "step"}
    for row in history:
        log_epoch(live, row, cols)
    if not history:
        live.make_summary()


def log_params(live: Any, config: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
    """``params.yaml``: the run's text facts and ``config`` (JSON-safe: tuples → lists)."""
    live.log_params({k: facts.get(k) for k in RUN_PARAMS if k in facts})
    live.log_params({"config": json.loads(json.dumps(dict(config), default=str))})


def finish(live: Any, summary: Mapping[str, Any]) -> None:
    """Add the run's final numbers to the summary and close the logger; a non-finite number
    in the summary fails the run naming the metric (DVC cannot read ``Infinity`` or ``NaN``)."""
    from pipelines.outputs import non_finite

    live.summary.update(summary)
    bad = non_finite(live.summary)
    if bad:
        raise ValueError(
            f"{Path(live.dir) / 'metrics.json'}: metric {bad[0]} is {bad[1]!r}, not a finite "
            "number: the training diverged or its scoring is broken"
        )
    live.end()


# --- reading ---------------------------------------------------------------------------


def _number(text: str) -> float | int | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def history_from_tsv(texts: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows ``{"epoch", <metric>...}`` from DVCLive's per-metric TSV texts (name → text)."""
    by_step: dict[int, dict[str, Any]] = {}
    for name, text in texts.items():
        for r in csv.DictReader(io.StringIO(text), delimiter="\t"):
            step = _number(r.get("step", ""))
            value = _number(r.get(name, ""))
            if step is None:
                continue
            row = by_step.setdefault(int(step), {"epoch": int(step)})
            row[name] = r.get(name) if value is None else value
    return [by_step[s] for s in sorted(by_step)]


def history(directory: Path) -> list[dict[str, Any]]:
    """Per-epoch rows of one model's DVCLive directory (empty if there is none)."""
    folder = Path(directory) / CURVES
    return history_from_tsv({p.stem: p.read_text() for p in sorted(folder.glob("*.tsv"))})


def flatten(summary: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flat record the readers use (``<model>_train.json`` before DVCLive): the saved
    epoch's values under their own names, the last epoch's ``val_<monitor>`` as
    ``last_val_<monitor>``, the counts, and the text facts from ``params``."""
    params = dict(params or {})
    saved_ = summary.get("saved")
    saved = saved_ if isinstance(saved_, dict) else {}
    out: dict[str, Any] = {k: params.get(k) for k in ("model", "corpus", "family") if k in params}
    out["epochs"] = summary.get("epochs")
    out["keep"] = params.get("keep")
    out["saved_epoch"] = summary.get("saved_epoch")
    for key, value in saved.items():
        out[key] = value
    for key, value in summary.items():
        if key.startswith("val_") and key != "val_loss":
            out[f"last_{key}"] = value
    for key in RUN_METRICS:
        if key in summary:
            out[key] = summary[key]
    for key in ("device", "amp", "torch", "task"):
        if key in params:
            out[key] = params[key]
    return out


def train_metrics(directory: Path) -> dict[str, Any] | None:
    """The flat record (:func:`flatten`) of one model's DVCLive directory, or None."""
    directory = Path(directory)
    metrics = directory / "metrics.json"
    if not metrics.exists():
        return None
    summary = json.loads(metrics.read_text())
    params_file = directory / "params.yaml"
    params = _yaml(params_file.read_text()) if params_file.exists() else {}
    return flatten(summary, params)


def _yaml(text: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(text)
    return data if isinstance(data, dict) else {}


def models(root: Path) -> list[str]:
    """Models with a DVCLive directory under ``root``."""
    return sorted(p.parent.name for p in (Path(root) / LIVE_DIR).glob("*/metrics.json"))
