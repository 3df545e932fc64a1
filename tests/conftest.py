"""Shared fixtures: a throw-away project root with its own params.yaml and mirror; and, under
CI, no skip for want of what CI provides."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnflow.config import deep_merge, load_params
from rnnflow.env import PROJECT_ROOT

REAL_MIRROR = PROJECT_ROOT.parent / "shared" / "corpora"
CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium context (Debian's ``/usr/bin/chromium`` driven by playwright, its
    profile in ``profile``) with no background network traffic; the test is skipped where
    either is missing (a failure under CI, which installs both)."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (`make test` installs it when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=flags,
            viewport={"width": width, "height": height},
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


#: Words of a skip reason that name something CI provides: the corpora mirror (../shared beside
#: the clone) and the browser (`make system` installs chromium, the test extra playwright).
#: Matched in the reason, so skips written in any test module, mark or fixture count.
CI_PROVIDES = ("mirror", "chromium", "playwright")


def ci_failure(reason: str) -> str | None:
    """The failure a skip for ``reason`` must be under CI (``CI=true``), where its test has
    what it needs and a skip would hide that it never ran; None where skipping is right."""
    if os.environ.get("CI") != "true" or not any(w in reason.lower() for w in CI_PROVIDES):
        return None
    return f"skipped under CI=true, where this test must run: {reason}"


def _fail_under_ci(report: pytest.TestReport) -> None:
    """Turn a skip ``ci_failure`` names into a failure (an xfail, a skip to pytest too, stays)."""
    if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
        message = ci_failure(str(report.longrepr[2]).removeprefix("Skipped: "))
        if message:
            report.outcome = "failed"
            report.longrepr = message


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """A skip in a test, its fixtures or its marks."""
    report = yield
    _fail_under_ci(report)
    return report


def sh(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 2400, stderr: bool = True
) -> str:
    """``args`` run in ``cwd`` with no stdin: its stdout (and stderr, unless ``stderr`` is
    False), or an AssertionError holding the tails of both when it fails."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-5000:]}\nstderr:\n{proc.stderr[-8000:]}"
        )
    return proc.stdout + (proc.stderr if stderr else "")


def project_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of commands run in a project copy: ``base`` (default: this process's),
    this interpreter's ``bin`` first on PATH, a git identity for commits, then ``extra``."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for who in ("AUTHOR", "COMMITTER"):
        env.update({f"GIT_{who}_NAME": "ci", f"GIT_{who}_EMAIL": "ci@localhost"})
    return {**env, **extra}


def load_script(path: Path, name: str | None = None):
    """A script outside the packages (``benchmarks/*.py``) imported as a module, for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None, path
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def real_params() -> dict:
    """The committed params.yaml with each corpus's source catalogue (``sources/<corpus>.yaml``)
    in place, as the fetch hop reads it."""
    from stages.core.catalogue import with_catalogue

    params = load_params(PROJECT_ROOT / "params.yaml")
    for corpus in list(params["fetch"]):
        params = with_catalogue(params, corpus, PROJECT_ROOT)
    return params


def write_params(root: Path, overlay: dict) -> Path:
    """params.yaml for a test project: the real one (its source catalogues written inline,
    as the test root has no ``sources/``), the CI profile, then ``overlay``."""
    params = deep_merge(real_params(), load_params(PROJECT_ROOT / "profiles" / "ci.yaml"))
    params = deep_merge(params, overlay)
    path = root / "params.yaml"
    path.write_text(json.dumps(params, indent=1))  # JSON is YAML
    return path


def run_hop(hop: str, corpus: str, root: Path) -> int:
    """Run one hop in-process against ``root`` (what DVC's cmd does in a subprocess)."""
    from stages.core.hop import execute

    module = importlib.import_module(f"stages.{hop}")
    return execute(
        hop, corpus, module.body_for(corpus, None), params_path=root / "params.yaml", root=root
    )


def write_mnist_mirror(mirror: Path, train: int = 300, test: int = 100) -> dict:
    """Format-exact tiny MNIST IDX gz files under ``mirror/mnist``; the catalogue entry for them."""
    from stages.corpora.idx import write_idx

    (mirror / "mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {}
    for part, n in (("train", train), ("test", test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        # Each digit gets a bright stripe at its own row: learnable, and never blank.
        images[np.arange(n), labels * 2 + 4, 4:24] = 255
        prefix = "train" if part == "train" else "t10k"
        for kind, arr in (("images", images), ("labels", labels)):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
            write_idx(mirror / "mnist" / name, arr)
            files[f"{part}_{kind}"] = {"path": name, "checksum": sha256(mirror / "mnist" / name)}
    return {"urls": [], "files": files, "rows": {"train": train, "test": test}}


@pytest.fixture
def mnist_mirror(tmp_path: Path) -> tuple[Path, dict]:
    """A format-exact tiny MNIST mirror (IDX gz files) and a matching params source."""
    mirror = tmp_path / "mirror"
    return mirror, {"source": "fixture", "sources": {"fixture": write_mnist_mirror(mirror)}}


@pytest.fixture
def project(tmp_path: Path, mnist_mirror, monkeypatch) -> Path:
    """A project root in tmp_path whose params fetch MNIST from the fixture mirror."""
    mirror, source = mnist_mirror
    root = tmp_path / "project"
    root.mkdir()
    write_params(
        root,
        {
            "fetch": {"mnist": source},
            "sample": {"mnist": {"train": None, "validation": None, "test": None}},
        },
    )
    monkeypatch.setenv("RNNFLOW_MIRROR", str(mirror))
    return root


#: What the committed reference run adds to a checkout (DVC outputs and the lock). Test copies
#: leave it out by default, so a stage that did not run cannot pass for one that did.
RUN_OUTPUTS = (
    "dvc.lock",
    "metrics/",
    "plots/",
    "reports/",
    "models/",
    "dvclive/",
    # the trust-on-first-use locks (fetch writes them); the catalogues beside them are inputs
    *(f"sources/{p.name}" for p in sorted((PROJECT_ROOT / "sources").glob("*.lock"))),
)


def copy_checkout(dst: Path, skip: tuple[str, ...] = RUN_OUTPUTS) -> Path:
    """Copy the project's files (tracked, and untracked but not ignored) to ``dst``, as a
    fresh clone would have them, less paths starting with a prefix in ``skip`` (by default
    the committed reference run's outputs)."""
    import subprocess

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        src = PROJECT_ROOT / rel
        if src.is_file() and not rel.startswith(skip):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


@contextlib.contextmanager
def lock_held(root: Path, what: str) -> Iterator[int]:
    """Another process holding ``root``'s workspace lock as ``what`` for the block; its pid."""
    code = (
        "import sys, time; from pathlib import Path; from pipelines.ops.workspace import "
        "workspace_lock\nwith workspace_lock(Path(sys.argv[1]), sys.argv[2]):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(root), what],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
