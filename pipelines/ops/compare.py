"""Compare two commits: metrics, params and training curves on one self-contained HTML page.

    python -m pipelines.ops.compare HEAD~1 HEAD              # or: rnnflow compare HEAD~1 HEAD
    python -m pipelines.ops.compare main workspace -o /tmp/cmp.html

Metrics come from ``dvc metrics diff --all --json``, params from ``dvc params diff --json``
(changed keys; ``--all-params`` for every key), curves from each model's DVCLive curves
``dvclive/<model>/plots/metrics/*.tsv`` read at each revision (``git show REV:path``;
``workspace`` is the files on disk). The page (:mod:`pipelines.render`, ``compare.html.j2``)
has inline CSS and PNG plots as data URIs (matplotlib): nothing loads from a CDN, so it renders
offline. A is drawn blue and dashed, B red and solid, and each legend names both revisions. By
default the page is ``reports/compare/<shaA>..<shaB>.html``: the short hashes the revisions
resolve to (any git revision is accepted), ``workspace`` for the uncommitted side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines import live as L
from pipelines import render as R
from pipelines.ops import workspace as W

WORKSPACE = "workspace"


def _revs(a: str, b: str | None) -> list[str]:
    return [a] + ([b] if b and b != WORKSPACE else [])


def short_sha(root: Path, rev: str | None) -> str:
    """The short commit hash ``rev`` resolves to, or ``workspace`` (uncommitted files)."""
    if rev in (None, "", WORKSPACE):
        return WORKSPACE
    try:
        return W.git(root, "rev-parse", "--short", f"{rev}^{{commit}}")
    except W.CommandFailed as exc:
        raise SystemExit(f"rnnflow compare: unknown revision {rev!r}\n{exc}") from None


def label(root: Path, rev: str | None) -> str:
    """``REV (short sha)``, the sha alone when that is what was given, or ``workspace``."""
    sha = short_sha(root, rev)
    if sha == WORKSPACE or rev is None:
        return WORKSPACE
    return rev if rev.startswith(sha) or sha.startswith(rev) else f"{rev} ({sha})"


def metrics_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path, metrics in sorted(W.metric_files(diff).items()):
        for key, d in sorted(metrics.items()):
            rows.append(
                {
                    "file": path,
                    "metric": key,
                    "a": d.get("old"),
                    "b": d.get("new"),
                    "change": d.get("diff"),
                }
            )
    return rows


def params_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"file": path, "param": key, "a": d.get("old"), "b": d.get("new")}
        for path, params in sorted((diff or {}).items())
        for key, d in sorted(params.items())
    ]


def _paths(root: Path, rev: str | None) -> list[str]:
    """Repository paths under ``dvclive/`` and ``plots/`` at ``rev`` (or on disk)."""
    if rev in (None, WORKSPACE):
        return sorted(
            p.relative_to(root).as_posix()
            for top in (L.LIVE_DIR, "plots")
            for p in (root / top).rglob("*")
            if p.is_file()
        )
    proc = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "--", f"{L.LIVE_DIR}/"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return proc.stdout.split()


def history_models(root: Path, rev: str | None) -> list[str]:
    """Models with training curves at ``rev`` (DVCLive's)."""
    return L.models_in(_paths(root, rev))


def read_history(root: Path, rev: str | None, model: str) -> list[dict[str, float]]:
    rows = L.history_at(lambda path: W.git_show(root, rev, path), _paths(root, rev), model)
    out = []
    for r in rows:
        try:
            out.append({k: float(v) for k, v in r.items() if v not in (None, "")})
        except (TypeError, ValueError):
            continue
    return out


# How each revision is drawn: its own colours (train loss, validation loss / metric) and line
# style. A is drawn first, wider and translucent, so B's line on top never hides it.
STYLES: dict[str, dict[str, Any]] = {
    "A": {
        "colors": ("#1f77b4", "#6baed6"),
        "color_name": "blue",
        "ls": "--",
        "style_name": "dashed, wide",
        "css_style": "dashed",
        "lw": 5.0,
        "alpha": 0.5,
        "ms": 8,
    },
    "B": {
        "colors": ("#d62728", "#fc9272"),
        "color_name": "red",
        "ls": "-",
        "style_name": "solid",
        "css_style": "solid",
        "lw": 1.6,
        "alpha": 1.0,
        "ms": 4,
    },
}


def curves_png(model: str, a: list[dict], b: list[dict], la: str, lb: str) -> bytes:
    """Loss curves (left) and the validation metric (right): A blue dashed, B red solid;
    each legend names both revisions (``la``, ``lb``)."""
    from matplotlib.ticker import MaxNLocator

    plt = R.pyplot()
    cols = set().union(*(r.keys() for r in a + b)) if a or b else set()
    metric = next((c for c in sorted(cols) if c.startswith("val_") and c != "val_loss"), None)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for rows, side, name in ((a, "A", la), (b, "B", lb)):
        if not rows:
            continue
        st = STYLES[side]
        ep = [r["epoch"] for r in rows]
        kw = {"linestyle": st["ls"], "linewidth": st["lw"], "alpha": st["alpha"]}
        for col, color, marker in (
            ("train_loss", st["colors"][0], "o"),
            ("val_loss", st["colors"][1], "s"),
        ):
            if col in rows[0]:
                axes[0].plot(
                    ep,
                    [r[col] for r in rows],
                    color=color,
                    marker=marker,
                    markersize=st["ms"],
                    label=f"{col} · {side}: {name}",
                    **kw,
                )
        if metric and metric in rows[0]:
            axes[1].plot(
                ep,
                [r[metric] for r in rows],
                color=st["colors"][0],
                marker="o",
                markersize=st["ms"],
                label=f"{metric} · {side}: {name}",
                **kw,
            )
    axes[0].set_title(f"{model}: loss")
    axes[1].set_title(f"{model}: {metric or 'validation metric'}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return R.figure_png(fig, dpi=90)


def page(
    la: str,
    lb: str,
    mrows: list[dict[str, Any]],
    prows: list[dict[str, Any]],
    curves: list[dict[str, Any]],
    all_params: bool = False,
) -> str:
    """The comparison page from its data: ``curves`` holds ``{model, a, b}`` history rows."""
    changed = [r for r in mrows if r["a"] != r["b"]]
    same = [{**r, "_class": "same"} for r in mrows if r["a"] == r["b"]]
    shown = [
        {
            "model": c["model"],
            "epochs_a": len(c["a"]),
            "epochs_b": len(c["b"]),
            "src": R.data_uri(curves_png(c["model"], c["a"], c["b"], la, lb)),
        }
        for c in curves
    ]
    side = {
        k: {kk: v for kk, v in st.items() if kk != "colors"} | {"color": st["colors"][0]}
        for k, st in STYLES.items()
    }
    return R.render(
        "compare.html.j2",
        title=f"rnnflow: {la} → {lb}",
        a={"label": la, **side["A"]},
        b={"label": lb, **side["B"]},
        changed=changed,
        same=same,
        params=prows,
        all_params=all_params,
        curves=shown,
        metric_cols=["file", "metric", "a", "b", "change"],
        metric_heads=["file", "metric", f"A ({la})", f"B ({lb})", "B − A"],
        param_cols=["file", "param", "a", "b"],
        param_heads=["file", "param", f"A ({la})", f"B ({lb})"],
    )


def render(root: Path, rev_a: str, rev_b: str | None = None, all_params: bool = False) -> str:
    """The comparison page (HTML text)."""
    la, lb = label(root, rev_a), label(root, rev_b)
    revs = _revs(rev_a, rev_b)
    mdiff = W.dvc_json(root, "metrics", "diff", *revs, "--all")
    pdiff = W.dvc_json(root, "params", "diff", *revs, *(["--all"] if all_params else []))
    models = sorted(set(history_models(root, rev_a)) | set(history_models(root, rev_b)))
    curves = [
        {"model": m, "a": read_history(root, rev_a, m), "b": read_history(root, rev_b, m)}
        for m in models
    ]
    return page(la, lb, metrics_rows(mdiff), params_rows(pdiff), curves, all_params)


def default_out(root: Path, rev_a: str, rev_b: str | None) -> Path:
    """``reports/compare/<shaA>..<shaB>.html``: named by the commits the revisions resolve
    to (``HEAD~1`` means another commit tomorrow), ``workspace`` for uncommitted files."""
    return root / "reports" / "compare" / f"{short_sha(root, rev_a)}..{short_sha(root, rev_b)}.html"


def compare(
    rev_a: str,
    rev_b: str | None = None,
    out: str | Path | None = None,
    root: str | Path | None = None,
    all_params: bool = False,
) -> Path:
    """Write the page; returns its path."""
    from pipelines.outputs import write_atomic

    path = W.resolve_root(root)
    dest = Path(out) if out else default_out(path, rev_a, rev_b)
    write_atomic(dest, render(path, rev_a, rev_b, all_params).encode())
    if dest.parent == path / "reports" / "compare":  # not for a page written elsewhere (-o)
        R.write_pages_index(dest.parent.parent)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rev_a", help="first git revision (A), e.g. HEAD~1")
    parser.add_argument(
        "rev_b", nargs="?", default=WORKSPACE, help="second revision (B), default: the workspace"
    )
    parser.add_argument(
        "-o",
        "--out",
        default=None,
        help="HTML file to write (default: reports/compare/<shaA>..<shaB>.html, "
        "`workspace` for uncommitted files)",
    )
    parser.add_argument(
        "--all-params", action="store_true", help="list every param, not only the changed ones"
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    print(compare(args.rev_a, args.rev_b, args.out, args.root, args.all_params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
