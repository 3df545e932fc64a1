"""The README's commands work as written: every line of its ``bash`` blocks is extracted; the
read-only ones (DVC's diffs, ``status``, ``exp show``) run for real in this checkout, the rest
(training, servers, pushes) have their command words checked by ``--help``, and ``make``
targets must exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rnnflow.env import PROJECT_ROOT

BIN = Path(sys.executable).parent
#: (program, subcommand) pairs that only read the workspace and git: run as the README says.
READ_ONLY = {
    ("dvc", "metrics"),
    ("dvc", "params"),
    ("dvc", "plots"),
    ("dvc", "exp"),
    ("dvc", "status"),
}


def readme_commands() -> list[list[str]]:
    text = (PROJECT_ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] != "export":
                lines.append(words)
    return lines


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )


def test_the_readme_has_commands_of_every_kind() -> None:
    programs = {words[0] for words in readme_commands()}
    assert {"make", "rnnflow", "dvc", "prefect"} <= programs, programs


@pytest.mark.parametrize("words", readme_commands(), ids=lambda w: " ".join(w)[:60])
def test_readme_command(words: list[str], tmp_path: Path) -> None:
    program, rest = words[0], words[1:]
    if program == "make":
        targets = re.findall(r"^([\w-]+):", (PROJECT_ROOT / "Makefile").read_text(), flags=re.M)
        assert rest[0] in targets, (rest[0], targets)
        return
    assert program in {"rnnflow", "dvc", "prefect"}, f"a README command nobody checks: {words}"
    exe = str(BIN / program)
    if (program, rest[0]) in READ_ONLY:
        args = [exe, *rest]
        if "HEAD~1" in args and run(["git", "rev-parse", "--verify", "HEAD~1"]).returncode:
            args = [a.replace("HEAD~1", "HEAD") for a in args]  # a clone of depth 1
        if rest[:2] == ["plots", "diff"]:
            args += ["-o", str(tmp_path / "plots")]  # its page, not dvc_plots/ in the checkout
    else:  # the command words as typed, then --help: parsed, nothing run
        args = [exe, *[w for w in rest if not w.startswith("-")][:2], "--help"]
        if program == "rnnflow":
            args = [exe, rest[0], "--help"]
    out = run(args)
    assert out.returncode == 0, (args, out.stdout[-1500:], out.stderr[-1500:])


def test_dvc_metrics_show_is_one_short_row_per_model() -> None:
    """Only model quality is a DVC metric: one numbers-only file per model, so the committed
    record's `dvc metrics show` has a row per model and fits a terminal."""
    shown = run([str(BIN / "dvc"), "metrics", "show"])
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines()[1:] if line.strip()]
    models = sorted(p.stem for p in (PROJECT_ROOT / "metrics").glob("*.json"))
    assert sorted(Path(row.split()[0]).stem for row in rows) == models
    assert max(map(len, shown.stdout.splitlines())) <= 200, shown.stdout
