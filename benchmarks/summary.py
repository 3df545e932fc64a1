"""Regenerate every measured table of BENCHMARKS.md from the JSON the runs wrote.

    python benchmarks/summary.py            # print every generated block
    python benchmarks/summary.py --write    # rewrite the blocks of BENCHMARKS.md in place
    python benchmarks/summary.py --check    # exit 1 and print a diff if a block is stale
    python benchmarks/summary.py --timings  # record the last main job's train timings
    python benchmarks/summary.py --timings books_lm   # only that model's (the others kept)
    python benchmarks/summary.py --rerun    # record how this machine's rerun compares with HEAD's

BENCHMARKS.md keeps its prose by hand; each generated table sits between
``<!-- summary:NAME -->`` and ``<!-- /summary:NAME -->``, made by ``BLOCKS[NAME]``
(``summary_quality.py``, ``summary_speed.py``) from the committed reference run or from
``benchmarks/results/<script>.json``; a block whose source is missing says how to make it.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# a checkout that is not pip-installed, and this folder's modules when imported by path
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import benchlib as B  # noqa: E402
import summary_quality  # noqa: E402
import summary_speed  # noqa: E402

BLOCK_RE = re.compile(
    r"(<!-- summary:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /summary:(?P=name) -->)", re.S
)


def record_timings(root: Path, only: list[str] | None = None) -> Path:
    """``benchmarks/results/main_job.json`` from the last run's ``reports/timings/*.json``, each
    model with the commit and the machine it ran on. With ``only``, just those models are
    recorded; the others keep the run (and machine) that timed them (when the last run shared
    the CPU for all but the changed ones, or ran on another machine)."""
    from pipelines.ops.workspace import git

    found = {p.stem: p for p in sorted((root / "reports" / "timings").glob("*.json"))}
    if not found:
        raise SystemExit(f"{root}/reports/timings/ is empty: run the main job (`make repro`) first")
    if unknown := sorted(set(only or ()) - set(found)):
        raise SystemExit(f"no reports/timings/<model>.json for {', '.join(unknown)}")
    commit = git(root, "rev-parse", "HEAD", check=False)
    path = root / "benchmarks" / "results" / f"{B.MAIN_JOB}.json"
    recorded = B.read_json(path) or {}
    old = recorded if only else {}
    machine = trained_on()
    if (was := (recorded.get("machine") or {}).get("cpu")) and was != machine["cpu"]:
        print(f"note: the recorded run was made on {was}, this one on {machine['cpu']}: "
              "its metrics moved with the machine too", file=sys.stderr)  # fmt: skip
    models = {
        name: {
            **entry,
            "commit": entry.get("commit", old.get("commit")),
            "machine": entry.get("machine", old.get("machine")),
        }
        for name, entry in (old.get("models") or {}).items()
    }
    for name in only or found:
        models[name] = {**json.loads(found[name].read_text()), "commit": commit, "machine": machine}
    doc = {"commit": commit, "machine": machine, "models": dict(sorted(models.items()))}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def trained_on() -> dict[str, object]:
    """The machine that trained the models: their timings and the last bits of their weights."""
    return {k: v for k, v in B.machine().items() if k in ("cpu", "cpus", "python")}


def record_rerun(root: Path) -> Path:
    """``benchmarks/results/rerun.json``: the models this checkout trained from exactly the inputs
    of the committed reference run (``train@<model>``'s deps and params in ``dvc.lock`` equal to
    HEAD's), each with whether its weights came out byte-identical and both runs' metrics."""
    import yaml

    from pipelines.ops.workspace import CommandFailed, git

    def at_head(path: str) -> str:
        try:
            return git(root, "show", f"HEAD:{path}")
        except (CommandFailed, FileNotFoundError) as e:
            raise SystemExit(f"--rerun: no {path} committed at HEAD in {root} ({e})") from None

    def trains(lock: str) -> dict[str, dict]:
        stages = yaml.safe_load(lock)["stages"]
        return {k.split("@", 1)[1]: v for k, v in stages.items() if k.startswith("train@")}

    if not (root / "dvc.lock").exists():
        raise SystemExit(f"--rerun: no {root}/dvc.lock: run the main job (`make repro`) first")
    ref, now = trains(at_head("dvc.lock")), trains((root / "dvc.lock").read_text())
    models = {}
    for name, st in sorted(now.items()):
        old = ref.get(name, {})
        same_inputs = all(old.get(k) == st.get(k) for k in ("deps", "params"))
        # the train stage's timings (never committed, never pulled): trained in this checkout
        if not same_inputs or not (root / "reports" / "timings" / f"{name}.json").exists():
            continue  # from other inputs, or not trained here: no like-for-like pair
        weights = [next(o["md5"] for o in s["outs"] if o["path"] == f"models/{name}")
                   for s in (old, st)]  # fmt: skip
        models[name] = {
            **B.model_record(name),
            "identical": weights[0] == weights[1],
            "reference": json.loads(at_head(f"metrics/{name}.json")),
            "rerun": json.loads((root / "metrics" / f"{name}.json").read_text()),
        }
    if not models:
        raise SystemExit("no model retrained here from the reference run's inputs: run the main "
                         "job (`make repro`) from a fresh clone first")  # fmt: skip
    path = root / "benchmarks" / "results" / "rerun.json"
    B.write(path, {"what": "the committed reference run (HEAD) against a from-scratch rerun on "
                   "the machine below", "machine": trained_on(), "measured_at": B.now(),
                   "models": models}, say=False)  # fmt: skip
    return path


#: Each block by its marker's name (``block_<name>``, ``-`` for ``_``), in the order printed.
BLOCKS: dict[str, Callable[[Path], list[str]]] = {
    name.replace("_", "-"): getattr(module, f"block_{name}")
    for module, names in [
        (summary_speed, "data_half tokenize_speed memory"),
        (summary_quality, "peers_lm peers_translator peers_mnist models text_quality"),
        (summary_quality, "seed_spread rerun"),
        (summary_speed, "ddp_lm omp_wait scale engine gpu_stages"),
    ]
    for name in names.split()
}


def render(root: Path) -> dict[str, str]:
    """Every block's Markdown (ending in a newline)."""
    out = {}
    for name, fn in BLOCKS.items():
        try:
            lines = fn(root)
        except B.Missing as e:
            lines = [f"_Not measured yet: no `{e.args[0]}` (make it with `{e.args[1]}`)._"]
        out[name] = "\n".join(lines).rstrip("\n") + "\n"
    return out


def rewrite(text: str, blocks: dict[str, str]) -> tuple[str, set[str]]:
    """``text`` with every known marked block replaced; also the names of all its markers."""
    present: set[str] = set()

    def sub(m: re.Match) -> str:
        present.add(name := m.group("name"))
        return m.group(1) + blocks[name] + m.group(4) if name in blocks else m.group(0)

    return BLOCK_RE.sub(sub, text), present


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="project root: params.yaml, metrics/, results"
    )
    parser.add_argument("--doc", type=Path, help="Markdown with the markers (ROOT/BENCHMARKS.md)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff if one is stale")
    timings = (f"record the last main job's train timings (reports/timings/) in "
               f"benchmarks/results/{B.MAIN_JOB}.json; with MODELs, only theirs")  # fmt: skip
    mode.add_argument("--timings", nargs="*", metavar="MODEL", help=timings)
    rerun = ("record how this checkout's rerun of the main job compares with HEAD's "
             "(benchmarks/results/rerun.json)")  # fmt: skip
    mode.add_argument("--rerun", action="store_true", help=rerun)
    args = parser.parse_args(argv)
    if args.rerun or args.timings is not None:
        path = record_rerun(args.root) if args.rerun else record_timings(args.root, args.timings)
        print(f"wrote {path}")
        return 0
    blocks = render(args.root)
    if not (args.write or args.check):
        for name, body in blocks.items():
            print(f"<!-- summary:{name} -->\n{body}<!-- /summary:{name} -->\n")
        return 0
    doc = args.doc or args.root / "BENCHMARKS.md"
    text = doc.read_text()
    new, present = rewrite(text, blocks)
    if unknown := sorted(present - set(BLOCKS)):
        print(f"{doc}: unknown summary blocks {unknown} (known: {sorted(BLOCKS)})", file=sys.stderr)
        return 2
    if absent := sorted(set(BLOCKS) - present):
        print(f"note: {doc} has no block for {absent}", file=sys.stderr)
    if args.write:
        if new != text:
            doc.write_text(new)
        print(f"{doc}: {len(present)} blocks {'rewritten' if new != text else 'already current'}")
        return 0
    if new != text:
        before, after = text.splitlines(keepends=True), new.splitlines(keepends=True)
        labels = f"{doc} (as committed)", f"{doc} (python benchmarks/summary.py --write)"
        sys.stdout.writelines(difflib.unified_diff(before, after, *labels))
        stale = "generated tables are stale: run `python benchmarks/summary.py --write`"
        print(f"\n{doc}: {stale}", file=sys.stderr)
        return 1
    print(f"{doc}: {len(present)} generated blocks current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
