"""Is this the file DVC recorded? Content checks of models, data and code against dvc.lock.

DVC trusts its cache: a flipped byte in ``.dvc/cache`` is copied out by ``checkout`` and
``pull`` and never reported by ``status`` (its state database remembers the hash it expected,
not the bytes). So before a model or a token directory is used, its bytes are hashed the way
DVC hashes them (md5 of a file; for a directory, md5 of the sorted ``{md5, relpath}`` list,
suffixed ``.dir``) and compared with ``dvc.lock``. The training code's own hash
(:func:`code_hash`) goes into the checkpoint fingerprint, so a resumed run is the same code.

``python -m pipelines.integrity [--cache]`` checks every output in ``dvc.lock`` (and with
``--cache`` every object in the local cache) and lists what does not match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from rnnflow.env import PROJECT_ROOT


class IntegrityError(RuntimeError):
    """A file's bytes differ from what dvc.lock records; the message says how to repair."""


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, as DVC records it."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _dir_entries(path: Path) -> list[dict[str, str]]:
    return sorted(
        (
            {"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()}
            for f in path.rglob("*")
            if f.is_file()
        ),
        key=lambda e: e["relpath"],
    )


def dir_md5(entries: list[dict[str, str]]) -> str:
    """DVC's hash of a directory: md5 of the JSON list of its files' md5s, plus ``.dir``."""
    blob = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(blob, usedforsecurity=False).hexdigest() + ".dir"


def content_md5(path: Path) -> str:
    """DVC's md5 of a file or a directory."""
    return dir_md5(_dir_entries(path)) if path.is_dir() else file_md5(path)


def _load_yaml(path: Path) -> Any:
    from ruamel.yaml import YAML

    with path.open() as fh:
        return YAML(typ="safe").load(fh)


def _lock_outs(root: Path) -> Iterator[tuple[str, str, str]]:
    """``(stage, out path, md5)`` for every output with an md5 in ``root/dvc.lock``."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return
    for stage, entry in (_load_yaml(lock) or {}).get("stages", {}).items():
        for out in entry.get("outs") or []:
            if out.get("md5"):
                yield stage, out["path"], out["md5"]


def recorded(path: Path, root: Path) -> tuple[str, str, str] | None:
    """``(stage, out, md5)`` of the dvc.lock output that holds ``path`` (itself or a parent)."""
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
    for stage, out, md5 in _lock_outs(root):
        if rel == out or rel.startswith(out.rstrip("/") + "/"):
            return stage, out, md5
    return None


def _cached_listing(root: Path, md5: str) -> list[dict[str, str]] | None:
    obj = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    try:
        return json.loads(obj.read_text())
    except (OSError, ValueError):
        return None


def verify(path: Path, root: Path = PROJECT_ROOT) -> bool:
    """Check ``path`` (a model file or a data directory) against dvc.lock before it is used.

    Returns False when dvc.lock records nothing for it (a tmp project, a model trained by
    hand); raises :class:`IntegrityError` naming the file and the repair when the bytes
    differ from the record.
    """
    found = recorded(path, root)
    if found is None:
        return False
    stage, out, expected = found
    target = root / out
    actual = content_md5(target) if target.exists() else "missing"
    if actual == expected:
        return True
    culprit = out
    if expected.endswith(".dir") and target.is_dir():
        listing = _cached_listing(root, expected)
        if listing is not None:
            have = {e["relpath"]: e["md5"] for e in _dir_entries(target)}
            bad = [e["relpath"] for e in listing if have.get(e["relpath"]) != e["md5"]]
            bad += sorted(set(have) - {e["relpath"] for e in listing})
            culprit = ", ".join(f"{out}/{b}" for b in bad) or out
    raise IntegrityError(
        f"{culprit}: content differs from dvc.lock (stage {stage}: md5 {expected}, found "
        f"{actual}). Damaged or changed outside DVC. Repair: `dvc checkout --force {stage}`; "
        f"if the cache copy is damaged too (`python -m pipelines.integrity --cache` lists it), "
        f"delete that cache object and run `dvc pull {stage}` or `dvc repro --force {stage}`"
    )


def corrupt_cache_objects(root: Path = PROJECT_ROOT) -> list[Path]:
    """Objects in ``root/.dvc/cache/files/md5`` whose bytes do not hash to their name."""
    bad = []
    base = root / ".dvc" / "cache" / "files" / "md5"
    for obj in sorted(base.glob("??/*")):
        name = obj.parent.name + obj.name
        if name.endswith(".unpacked"):
            continue
        if name.endswith(".dir"):
            ok = hashlib.md5(obj.read_bytes(), usedforsecurity=False).hexdigest() + ".dir" == name
        else:
            ok = file_md5(obj) == name
        if not ok:
            bad.append(obj)
    return bad


@cache
def _stage_code(stage: str, kind: str) -> tuple[str, ...]:
    """The code files dvc.yaml lists as ``stage``'s deps for a model of ``kind``: the shared
    ones, and its kind's package in place of ``${item.code}`` (data deps left out)."""
    spec = _load_yaml(PROJECT_ROOT / "dvc.yaml")["stages"][stage]
    deps = [
        d.replace("${item.code}", f"pipelines/{kind}") for d in (spec.get("do") or spec)["deps"]
    ]
    return tuple(d for d in deps if "${" not in d and not d.startswith(("data/", "models/")))


def code_hash(stage: str, kind: str) -> str:
    """sha256 over the content of the code files ``stage`` depends on in dvc.yaml, for a model
    of ``kind`` (``tensor`` or ``text``).

    The same files whose change makes DVC rerun the stage: a checkpoint carries this hash, so
    a rerun after a code change trains from scratch instead of resuming the old code's run.
    """
    digest = hashlib.sha256()
    for dep in sorted(_stage_code(stage, kind)):
        path = PROJECT_ROOT / dep
        files = sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts:
                continue
            digest.update(f"{f.relative_to(PROJECT_ROOT).as_posix()}\0".encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow verify",
        description="Check every output recorded in dvc.lock against its bytes "
        "(and, with --cache, every object of the local DVC cache against its name).",
    )
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="project root")
    parser.add_argument("--cache", action="store_true", help="also hash every cache object")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    failures = 0
    for stage, out, expected in _lock_outs(root):
        target = root / out
        if not target.exists():
            print(f"missing  {out} ({stage}): `dvc checkout {stage}` or `dvc pull {stage}`")
            failures += 1
        elif content_md5(target) != expected:
            print(f"CHANGED  {out} ({stage}): `dvc checkout --force {stage}`")
            failures += 1
    if args.cache:
        for obj in corrupt_cache_objects(root):
            print(f"CORRUPT  {obj.relative_to(root)}: delete it, then `dvc pull` or `dvc repro`")
            failures += 1
    print(f"{failures} problem(s)" if failures else "every recorded output matches dvc.lock")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
