"""Command lines: every ``rnnflow`` subcommand's ``--help`` runs and names the command a user
typed; and the test run's own rule that under CI a browser or mirror test fails, not skips.

The help table is read from what ``rnnflow/cli.py`` dispatches, so a new subcommand gets a
row without touching this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnflow import cli
from rnnflow.env import PROJECT_ROOT
from tests.conftest import ci_failure
from tests.ops.conftest import rnnflow

COMMANDS = [
    *cli._HOPS,
    *cli._FLOWS,
    *cli._OPS,
    *cli._TOOLS,
    "profile",
    "deps",
    "locked",
    "verify",
    "plots-template",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_runs_and_names_the_rnnflow_command(command: str) -> None:
    out = rnnflow(command, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    # split(): argparse wraps a long usage line, and a command without options ends the line
    assert out.stdout.split()[:3] == ["usage:", "rnnflow", command], out.stdout[:200]


# --- under CI, no skip for want of what CI installs ----------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "the real corpora mirror ../shared/corpora is not present",
        "no offline MNIST mirror",
        "no /usr/bin/chromium (`make test` installs it when run as root)",
        "could not import 'playwright.sync_api': No module named 'playwright'",
    ],
)
def test_a_missing_browser_or_mirror_fails_under_ci_and_skips_elsewhere(
    reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    message = ci_failure(reason)
    assert message is not None and reason in message
    monkeypatch.delenv("CI")
    assert ci_failure(reason) is None
    monkeypatch.setenv("CI", "false")
    assert ci_failure(reason) is None


def test_other_skips_stay_skips_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert ci_failure("cannot mount a tmpfs here (needs root)") is None


SKIPPING = """
import pytest

@pytest.fixture
def mirror():
    pytest.skip("the real corpora mirror ../shared/corpora is not present")

def test_in_a_fixture(mirror):
    pass

@pytest.mark.skipif(True, reason="no offline MNIST mirror")
def test_by_a_mark():
    pass

def test_in_the_body():
    pytest.skip("no /usr/bin/chromium (`make test` installs it when run as root)")

def test_for_another_reason():
    pytest.skip("cannot mount a tmpfs here (needs root)")
"""


@pytest.mark.parametrize("ci", ["true", None])
def test_the_run_fails_under_ci_and_lists_skip_reasons(ci: str | None, tmp_path: Path) -> None:
    """A real pytest run with this suite's conftest and pyproject.toml (its ``-ra``)."""
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"PYTHONPATH": str(PROJECT_ROOT), **({"CI": ci} if ci else {})})
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
        + ["-c", str(PROJECT_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
        + ["test_skipping.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = out.stdout.split("short test summary info")[-1]
    # every reason is listed, whether as a skip or, under CI, as a failure
    for reason in ("corpora mirror", "MNIST mirror", "/usr/bin/chromium", "needs root"):
        assert reason in summary, (reason, out.stdout[-3000:])
    assert out.returncode == (1 if ci else 0), out.stdout[-3000:]
    assert summary.count("SKIPPED") == (1 if ci else 4), summary


def test_ops_commands_have_help(capsys):
    from rnnflow import cli

    for op in ("repro", "serve", "retrain", "search"):
        with pytest.raises(SystemExit) as exc:
            cli.main([op, "--help"])
        assert exc.value.code == 0
    assert cli.main(["serve", "--list"]) == 0
    out = capsys.readouterr().out
    assert "retrain/scheduled\tschedule: 0 3 * * *" in out and "repro/repro" in out
