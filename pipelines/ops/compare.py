"""Compare two commits: metrics, params and training curves on one self-contained HTML page.

    python -m pipelines.ops.compare HEAD~1 HEAD              # or: rnnflow compare HEAD~1 HEAD
    python -m pipelines.ops.compare main workspace -o /tmp/cmp.html

Metrics come from ``dvc metrics diff --all --json``, params from ``dvc params diff --json``
(changed keys; ``--all-params`` for every key), curves from ``plots/<model>/history.csv``
read at each revision (``git show REV:path``; ``workspace`` is the files on disk). The
page has inline CSS and PNG plots as data URIs (matplotlib): nothing loads from a CDN, so it
renders offline — unlike ``dvc plots diff``'s HTML, which needs vega from the network.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.ops import workspace as W

WORKSPACE = "workspace"


def _revs(a: str, b: str | None) -> list[str]:
    return [a] + ([b] if b and b != WORKSPACE else [])


def label(root: Path, rev: str | None) -> str:
    """``REV (short sha)`` or ``workspace``."""
    if rev in (None, WORKSPACE):
        return WORKSPACE
    try:
        sha = W.git(root, "rev-parse", "--short", rev)
    except W.CommandFailed as exc:
        raise SystemExit(f"rnnflow compare: unknown revision {rev!r}\n{exc}") from None
    return rev if rev.startswith(sha) else f"{rev} ({sha})"


def metrics_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path, metrics in sorted(W.metric_files(diff).items()):
        for key, d in sorted(metrics.items()):
            rows.append({"file": path, "metric": key, "a": d.get("old"), "b": d.get("new"),
                         "change": d.get("diff")})
    return rows


def params_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"file": path, "param": key, "a": d.get("old"), "b": d.get("new")}
            for path, params in sorted((diff or {}).items())
            for key, d in sorted(params.items())]


def history_models(root: Path, rev: str | None) -> list[str]:
    """Models with a ``plots/<model>/history.csv`` at ``rev``."""
    if rev in (None, WORKSPACE):
        return sorted(p.parent.name for p in (root / "plots").glob("*/history.csv"))
    proc = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "plots/"], cwd=root,
                          capture_output=True, text=True)
    return sorted(Path(p).parent.name for p in proc.stdout.split() if p.endswith("/history.csv"))


def read_history(root: Path, rev: str | None, model: str) -> list[dict[str, float]]:
    text = W.git_show(root, rev, f"plots/{model}/history.csv")
    if not text:
        return []
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({k: float(v) for k, v in r.items() if v not in (None, "")})
        except ValueError:
            continue
    return rows


def curves_png(model: str, a: list[dict], b: list[dict], la: str, lb: str) -> bytes:
    """Loss curves (left) and the validation metric (right), A dashed, B solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = set().union(*(r.keys() for r in a + b)) if a or b else set()
    metric = next((c for c in sorted(cols) if c.startswith("val_") and c != "val_loss"), None)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for rows, name, style in ((a, la, "--"), (b, lb, "-")):
        if not rows:
            continue
        ep = [r["epoch"] for r in rows]
        for col, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
            if col in rows[0]:
                axes[0].plot(ep, [r[col] for r in rows], style, color=color, marker=".",
                             label=f"{col} · {name}")
        if metric and metric in rows[0]:
            axes[1].plot(ep, [r[metric] for r in rows], style, color="tab:green", marker=".",
                         label=f"{metric} · {name}")
    axes[0].set_title(f"{model}: loss")
    axes[1].set_title(f"{model}: {metric or 'validation metric'}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:76rem;color:#222;padding:0 1rem}h1{border-bottom:2px solid #ddd}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}th{background:#f3f3f3}
tr.same{color:#777}img{max-width:100%}summary{cursor:pointer;margin:.5rem 0}
.revs{font-family:monospace}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def html_table(rows: list[dict[str, Any]], cols: list[str], heads: list[str]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
           + "</tr></thead><tbody>"]
    for r in rows:
        same = r.get("a") == r.get("b")
        cells = "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
        out.append(f"<tr{' class=same' if same else ''}>{cells}</tr>")
    return "\n".join(out) + "</tbody></table>"


def render(root: Path, rev_a: str, rev_b: str | None = None, all_params: bool = False) -> str:
    """The comparison page (HTML text)."""
    la, lb = label(root, rev_a), label(root, rev_b)
    revs = _revs(rev_a, rev_b)
    mdiff = W.dvc_json(root, "metrics", "diff", *revs, "--all")
    pdiff = W.dvc_json(root, "params", "diff", *revs, *(["--all"] if all_params else []))
    mrows, prows = metrics_rows(mdiff), params_rows(pdiff)
    changed = [r for r in mrows if r["a"] != r["b"]]
    same = [r for r in mrows if r["a"] == r["b"]]
    mcols, mheads = ["file", "metric", "a", "b", "change"], ["file", "metric", "A", "B", "B − A"]
    models = sorted(set(history_models(root, rev_a)) | set(history_models(root, rev_b)))
    t = f"rnnflow: {la} → {lb}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(t)}</title>"
             f"<style>{CSS}</style></head><body><h1>Compare <span class=revs>"
             f"{html.escape(la)}</span> (A) → <span class=revs>{html.escape(lb)}</span> (B)</h1>",
             f"<p>{len(changed)} of {len(mrows)} metrics changed; "
             f"{len(prows)} params {'listed' if all_params else 'changed'}; "
             f"{len(models)} models with training curves.</p>",
             "<h2>Metrics</h2>",
             html_table(changed, mcols, mheads),
             f"<details><summary>{len(same)} unchanged metrics</summary>"
             f"{html_table(same, mcols, mheads)}</details>",
             "<h2>Params</h2>",
             html_table(prows, ["file", "param", "a", "b"], ["file", "param", "A", "B"]),
             "<h2>Training curves</h2><p>A dashed, B solid.</p>"]
    for model in models:
        a, b = read_history(root, rev_a, model), read_history(root, rev_b, model)
        png = base64.b64encode(curves_png(model, a, b, "A", "B")).decode()
        parts.append(f"<h3>{html.escape(model)}</h3><p>epochs: A {len(a)}, B {len(b)}</p>"
                     f"<img alt='{html.escape(model)} curves' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def default_out(root: Path, rev_a: str, rev_b: str | None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{rev_a}..{rev_b or WORKSPACE}")
    return root / "reports" / "compare" / f"{safe}.html"


def compare(rev_a: str, rev_b: str | None = None, out: str | Path | None = None,
            root: str | Path | None = None, all_params: bool = False) -> Path:
    """Write the page; returns its path."""
    from pipelines.outputs import write_atomic

    path = W.resolve_root(root)
    dest = Path(out) if out else default_out(path, rev_a, rev_b)
    write_atomic(dest, render(path, rev_a, rev_b, all_params).encode())
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ops.compare", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev_a", help="first git revision (A), e.g. HEAD~1")
    parser.add_argument("rev_b", nargs="?", default=WORKSPACE,
                        help="second revision (B), default: the workspace")
    parser.add_argument("-o", "--out", default=None,
                        help="HTML file to write (default: reports/compare/A..B.html)")
    parser.add_argument("--all-params", action="store_true",
                        help="list every param, not only the changed ones")
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    print(compare(args.rev_a, args.rev_b, args.out, args.root, args.all_params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
