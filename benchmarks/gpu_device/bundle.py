"""Build what issue #10's GPU run carries to a lent GPU machine, and check it here first.

    python benchmarks/gpu_device/bundle.py            # build .gpu/bundle.tar.xz, then --check
    python benchmarks/gpu_device/bundle.py --check    # only the check

The lent machine (an H200 with this workplace's "cuda" image: python3 3.12, torch, numpy,
pandas, pyarrow, … — ``image_packages.txt``) reaches no package registry, and at most 64 MiB
travel with a call. So the train/evaluate side of rnnflow travels as one ``tar.xz`` of an
installed tree (``pip install --target`` of cp312 manylinux wheels, ~23 MB), to be put first on
``PYTHONPATH`` there:

- the closure of ``ROOTS`` (what ``pipelines.flows.train``/``evaluate``, the one-server session
  and the benchmarks import: Prefect with its server, DVCLive and the DVC modules it imports at
  module level, pydantic, …) in this environment's versions, minus the image's packages — except
  pure-Python ones, which travel anyway so the versions are the ones tested here;
- not the data side (Great Expectations, ``datasets``: the hops run here, their tokens travel)
  nor what no imported module needs (``DROP``); Prefect's UI bundles are emptied
  (``PREFECT_UI_ENABLED=false`` there).

``--check`` runs a real train + evaluate stage (``addition_lstm``, one epoch) in a temporary copy
of the project with a ``sitecustomize`` that refuses every import of a distribution that is
neither in the image nor in the bundle — in this process and in every child (the Prefect
server) — so a missing dependency fails here, not in the few minutes of device time.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ROOTS = ["prefect", "dvclive", "pydantic", "ruamel.yaml", "jinja2", "tqdm", "sacrebleu"]
# Needed by no module the device side imports (checked by --check): DVC's git backends, remote
# filesystems and task queue, Hydra.
DROP = {
    "pygit2", "dulwich", "asyncssh", "celery", "kombu", "amqp", "billiard", "vine",
    "click-didyoumean", "click-plugins", "click-repl", "hydra-core", "omegaconf",
    "antlr4-python3-runtime", "dvc-task", "dvc-http", "aiohttp-retry",
}  # fmt: skip
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_26_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_31_x86_64", "manylinux_2_34_x86_64", "manylinux1_x86_64"]  # fmt: skip
TARGET_ENV = {
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "os_name": "posix", "extra": "",
}  # fmt: skip


def norm(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    """Normalised names of the distributions the device image holds."""
    lines = (HERE / "image_packages.txt").read_text().splitlines()
    return {norm(s) for s in (ln.strip() for ln in lines) if s and not s.startswith("#")}


def closure(roots: list[str]) -> set[str]:
    """Installed distributions ``roots`` need here (extras followed), markers evaluated for the
    device's Python."""
    seen: set[tuple[str, str]] = set()
    stack = [(r, "") for r in roots]
    while stack:
        name, extra = stack.pop()
        name = norm(name)
        if (name, extra) in seen or name in DROP:
            continue
        seen.add((name, extra))
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({**TARGET_ENV, "extra": extra}):
                if req.marker is not None and extra and "extra" not in str(req.marker):
                    continue  # a base requirement, already followed without the extra
                stack += [(req.name, "")] + [(req.name, e) for e in req.extras]
    return {name for name, _ in seen}


def compiled(dist: md.Distribution) -> bool:
    return any(str(f).endswith((".so", ".pyd")) for f in dist.files or [])


def plan() -> list[md.Distribution]:
    """The distributions that travel."""
    image = image_packages()
    out = []
    for name in sorted(closure(ROOTS)):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if name in image and compiled(dist):
            continue  # the image's build of numpy, pandas, … (a cp312 wheel of ours would clash)
        out.append(dist)
    return out


def top_level(dist: md.Distribution) -> set[str]:
    """Importable top-level names a distribution installs."""
    text = dist.read_text("top_level.txt")
    if text:
        return {t.strip() for t in text.splitlines() if t.strip()}
    names = set()
    for f in dist.files or []:
        parts = f.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "bin"):
            continue
        head = parts[0]
        names.add(head[:-3] if head.endswith(".py") else head.split(".")[0])
    return names


def build(out: Path) -> Path:
    """Download cp312 wheels of ``plan()``, install them into a tree, pack it as tar.xz."""
    dists = plan()
    wheels, tree = out / "wheels", out / "site"
    shutil.rmtree(tree, ignore_errors=True)
    wheels.mkdir(parents=True, exist_ok=True)
    pins = [f"{d.metadata['Name']}=={d.version}" for d in dists]
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    common = ["--no-deps", "--only-binary=:all:", "--python-version", "3.12",
              "--implementation", "cp", *plat]  # fmt: skip
    pip = [sys.executable, "-m", "pip"]
    for pin in pins:  # one at a time: a pin with no wheel (an sdist only) is copied below
        got = subprocess.run([*pip, "download", "-q", *common, "-d", str(wheels), pin],
                             capture_output=True, text=True)  # fmt: skip
        if got.returncode:
            name = norm(pin.split("==")[0])
            dist = next(d for d in dists if norm(d.metadata["Name"]) == name)
            if compiled(dist):
                sys.exit(f"bundle: no cp312 wheel of {pin} and it is compiled: {got.stderr}")
            for top in top_level(dist):  # pure Python: this install's files do
                src = Path(str(dist.locate_file(top)))
                for cand in (src, src.with_suffix(".py")):
                    if cand.is_dir():
                        shutil.copytree(cand, tree / cand.name, dirs_exist_ok=True)
                    elif cand.is_file():
                        tree.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(cand, tree / cand.name)
            print(f"bundle: {pin}: no wheel, copied from {dist.locate_file('')}")
    subprocess.run([*pip, "install", "-q", "--no-compile", "--target", str(tree), *common,
                    *sorted(str(w) for w in wheels.glob("*.whl"))], check=True)  # fmt: skip
    for ui in ("ui", "ui-v2"):  # static web bundles (~17 MB); the UI is off there
        d = tree / "prefect" / "server" / ui
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    for cache in tree.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    tarball = out / "bundle.tar.xz"
    subprocess.run(["tar", "-cJf", str(tarball), "-C", str(tree), "."], check=True)
    print(f"bundle: {len(dists)} distributions -> {tarball} "
          f"({tarball.stat().st_size / 2**20:.1f} MiB)")  # fmt: skip
    return tarball


# Started by every Python process of the check (a ``sitecustomize`` on PYTHONPATH): swaps this
# environment's site-packages for a folder of links to the allowed distributions only, so an
# import of anything else fails as it would on the device (an optional one is simply absent).
HOOK = """import os, sys
_drop = os.path.realpath(os.environ["RNNFLOW_CHECK_DROP"])
sys.path[:] = [p for p in sys.path if os.path.realpath(p) != _drop]
sys.path.append(os.environ["RNNFLOW_CHECK_SITE"])
"""


def allowed_site(dest: Path) -> None:
    """Links, in ``dest``, to every file tree of the installed distributions the device has:
    the image's (as far as this environment holds them) and the bundle's."""
    keep = image_packages() | {norm(d.metadata["Name"]) for d in plan()}
    dest.mkdir(parents=True)
    for dist in md.distributions():
        if norm(dist.metadata["Name"]) not in keep:
            continue
        heads = {
            f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] not in ("..", "bin")
        }
        for head in heads:
            src = Path(str(dist.locate_file(head)))
            if src.exists() and not (dest / head).exists():
                (dest / head).symlink_to(src)


def check() -> int:
    """Train and evaluate ``addition_lstm`` for one epoch in a temporary copy of the project,
    with imports limited to what the device has; 0 when both stages pass."""
    with tempfile.TemporaryDirectory(prefix="rnnflow-gpu-check-") as tmp:
        proj, hook = Path(tmp) / "proj", Path(tmp) / "hook"
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True).stdout.decode().split("\0")  # fmt: skip
        for f in filter(None, files):
            if (ROOT / f).is_file():
                (proj / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, proj / f)
        shutil.copytree(ROOT / "data/05_tokens/addition", proj / "data/05_tokens/addition")
        (proj / ".dvc").rename(proj / ".dvc.off")  # as on the device: DVCLive writes files only
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        allowed_site(Path(tmp) / "site")
        site_packages = Path(str(md.distribution("prefect").locate_file("")))
        env = {
            **os.environ,
            "PYTHONPATH": f"{hook}{os.pathsep}{proj}",
            "RNNFLOW_CHECK_DROP": str(site_packages),
            "RNNFLOW_CHECK_SITE": str(Path(tmp) / "site"),
            "PREFECT_UI_ENABLED": "false",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        params = proj / "params.yaml"
        params.write_text(
            re.sub(r"(addition_lstm: \{[^}]*epochs: )\d+", r"\g<1>1", params.read_text())
        )
        script = (
            "python -m pipelines.ops.prefect_session -- sh -c "
            "'python -m pipelines.flows.train addition_lstm && "
            "python -m pipelines.flows.evaluate addition_lstm'"
        )
        bench = [sys.executable, "benchmarks/gpu_lm.py", "--device", "cpu", "--hidden", "16",
                 "--batches", "4", "--steps", "1", "--warmup", "1", "--quality-tokens", "0",
                 "--vocab", "200", "--val-tokens", "2000"]  # fmt: skip
        # the isolation itself: Great Expectations is installed here but must not import there
        probe = subprocess.run([sys.executable, "-c", "import great_expectations"], cwd=proj,
                               env=env, capture_output=True, text=True)  # fmt: skip
        if probe.returncode == 0:
            print("check FAILED: great_expectations imports, so the isolation does not hold")
            return 1
        for cmd in (script, bench):
            run = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=proj, env=env,
                                 capture_output=True, text=True)  # fmt: skip
            tail = (run.stdout + run.stderr)[-3000:]
            if run.returncode:
                print(f"check FAILED ({cmd if isinstance(cmd, str) else ' '.join(cmd)}):\n{tail}")
                return 1
        print("check: train + evaluate addition_lstm and gpu_lm.py ran with only the image's "
              "and the bundle's modules importable")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / ".gpu", help="where the bundle is built")
    p.add_argument("--check", action="store_true", help="only run the import-limited check")
    p.add_argument("--list", action="store_true", help="print the distributions that travel")
    a = p.parse_args(argv)
    if a.list:
        for d in plan():
            print(f"{d.metadata['Name']}=={d.version}{'  (compiled)' if compiled(d) else ''}")
        return 0
    if not a.check:
        build(a.out)
    return check()


if __name__ == "__main__":
    sys.exit(main())
