"""What the benchmark scripts share: running a measurement and writing its result where
``summary.py`` reads it, and reading results back into Markdown tables.

Importing it applies rnnflow's offline defaults (``rnnflow/env.py``: no telemetry, how long
OpenMP threads spin before they sleep), so import it before torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # a checkout that is not pip-installed

from rnnflow.config import load_params, parse, section  # noqa: E402
from rnnflow.env import MIRROR_ENV, mirror_dir  # noqa: E402


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written; an option's default, unless None or False, after its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def parser(doc: str, script: str, results: str | None = None) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first paragraph above the options, the rest but its
    indented examples below them; ``results`` names its results file's option, if any."""
    description, *rest = doc.split("\n\n")
    p = argparse.ArgumentParser(
        prog=f"python benchmarks/{Path(script).name}",
        description=description,
        epilog="\n\n".join(part for part in rest if not part.startswith("    ")),
        formatter_class=_Help,
    )
    if results:
        default = RESULTS / f"{Path(script).stem}.json"
        p.add_argument(results, type=Path, default=default, help="the results file")
    return p


def mirror() -> Path:
    """The corpora mirror: ``$RNNFLOW_MIRROR``, else ``../shared/corpora`` (as ``make`` sets it)."""
    return mirror_dir() or ROOT.parent / "shared" / "corpora"


def env_with_mirror(corpora: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment for the processes a script starts: ``$RNNFLOW_MIRROR`` set (default:
    :func:`mirror`), this interpreter's ``bin`` first on ``PATH``, and ``extra``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, MIRROR_ENV: str(corpora or mirror()), "PATH": path, **extra}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine(**extra: Any) -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo``, else ``platform.processor()``: timings from two machines
    are not comparable) and count, Python and the load average when the measurement starts."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_avg_at_start": load_avg(), **extra,
    }  # fmt: skip


def commit() -> str | None:
    """The checkout's HEAD commit (None outside git); a result is measured on it."""
    from pipelines.ops.workspace import git_head

    return git_head(ROOT)[0]


def write(path: Path, doc: dict[str, Any], say: bool = True) -> None:
    """``doc`` as JSON at ``path``, stamped with the commit it was measured on."""
    doc["commit"] = commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if say:
        print(f"wrote {path}")


def model_cfg(name: str, **update: Any) -> Any:
    """``train.models.<name>`` of params.yaml as rnnflow parses it, with ``update`` applied."""
    from pipelines.config import TrainConfig

    cfg = parse(TrainConfig, load_params(ROOT / "params.yaml"), "train").model(name)
    return cfg.model_copy(update=update) if update else cfg


def model_record(name: str, **update: Any) -> dict[str, Any]:
    """What a result says about a model it trained: ``train.models.<name>`` as rnnflow parses it
    (defaults included) with ``update`` applied; the tests check it against params.yaml."""
    config = model_cfg(name, **update).model_dump(mode="json")
    return {"model": name, "update": update, "config": config}


def params_record(*keys: str, root: Path = ROOT) -> dict[str, Any]:
    """The entries of ``root``'s params.yaml (dotted keys, e.g. ``tokenize.es_en``) a result
    depends on (checked against params.yaml by the tests)."""
    params = load_params(root / "params.yaml")
    return {"params": {key: section(params, key) for key in keys}}


def sync(device: Any) -> None:
    """Wait for the work queued on a CUDA ``device`` (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def ddp_train(
    name: str, entry: dict[str, Any], nproc: int, tokens: Path, *args: str
) -> dict[str, Any]:
    """``name`` trained as the train stage launches it with ``nproc: N``, in a scratch root over
    the corpus ``tokens``; ``args`` go to ``ddp_train``. Its model.pt, timings, DVCLive summary."""
    import torch

    with tempfile.TemporaryDirectory(prefix="rnnflow-nproc-") as tmp:
        root = Path(tmp)
        (root / "data" / "05_tokens").mkdir(parents=True)
        (root / "data" / "05_tokens" / tokens.name).symlink_to(tokens.resolve())
        params = {"train": {"device": "cpu", "models": {name: {**entry, "nproc": nproc}}}}
        (root / "params.yaml").write_text(json.dumps(params))
        launch = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone"]
        cmd = [sys.executable, *launch, "-m", "pipelines.cli.ddp_train", name, "--root", str(root)]
        subprocess.run([*cmd, *args], cwd=ROOT, check=True)
        return {
            "saved": torch.load(root / "models" / name / "model.pt", weights_only=True),
            "timings": json.loads((root / "reports" / "timings" / f"{name}.json").read_text()),
            "live": json.loads((root / "dvclive" / name / "metrics.json").read_text()),
        }


# --- reading results back: the blocks of summary.py ---------------------------------------

#: benchmarks/results/main_job.json: the train timings of the runs that made the committed models
MAIN_JOB = "main_job"


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


class Missing(Exception):
    """A block's source is not there: the block says so, and how to make it."""


def result(root: Path, name: str, how: str, part: str | None = None) -> dict[str, Any]:
    """``benchmarks/results/<name>.json`` (holding ``part``), or :class:`Missing`."""
    doc = read_json(root / "benchmarks" / "results" / f"{name}.json")
    if doc is None or (part and part not in doc):
        what = f"{part} in " if part else ""
        raise Missing(f"{what}benchmarks/results/{name}.json", how)
    return doc


def table(head: list[str], rows: list[list[Any]], *notes: str) -> list[str]:
    """A Markdown table, then a blank line and the ``notes`` when there are any."""
    lines = [head, *([str(c) for c in r] for r in rows)]
    out = ["|" + "|".join(f" {c} " if c else " " for c in cells) + "|" for cells in lines]
    return [out[0], "|" + "---|" * len(head), *out[1:], *(["", *notes] if notes else [])]


def rows_of(items: Iterable[dict[str, Any]], *cells: str) -> list[list[str]]:
    """One row per item, each cell a ``str.format`` template over the item's keys."""
    return [[cell.format(**item) for cell in cells] for item in items]


def mib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB" if x >= 2**30 else f"{x / 2**20:,.0f} MiB"


def cpus(doc: dict[str, Any]) -> str:
    """The CPU count, and the CPU model where the result recorded it."""
    m = doc.get("machine", {})
    return f"{m.get('cpus')} CPUs" + (f" ({m['cpu']})" if m.get("cpu") else "")


def load_note(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    loads = [m.get(k) for k in ("load_avg_at_start", "load_avg_at_end")]
    shown = ", ".join(f"{x[0]:.1f}" for x in loads if x)
    return f"load average {shown}" if shown else ""


def models(root: Path) -> dict[str, dict[str, Any]]:
    return load_params(root / "params.yaml")["train"]["models"]
