"""A search's page: the results table, the progress plot and the best params
(``reports/search/<name>.{md,html,json,png}``, rendered by :mod:`pipelines.render`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines import render as R
from pipelines.ops import params as P
from pipelines.ops.search_spec import SearchSpec, apply_decision
from pipelines.outputs import write_atomic


def table_rows(
    trials: list[dict[str, Any]],
    spec: SearchSpec,
    best: dict[str, Any] | None,
    baseline: float | None = None,
) -> list[dict[str, Any]]:
    """The results table: the current model (baseline) first, then every trial. Params
    columns are named by the last key part when those are unique."""
    short = [k.rsplit(".", 1)[-1] for k in spec.space]
    named = dict(zip(spec.space, short)) if len(set(short)) == len(short) else {}
    rows = []
    if baseline is not None:
        rows.append({"trial": "", "experiment": "baseline (current model)", spec.metric: baseline})
    for t in trials:
        rows.append(
            {
                "trial": t["trial"],
                "experiment": t["experiment"],
                **{named.get(k, k): v for k, v in t["params"].items()},
                spec.metric: t["value"],
                "state": t["state"],
                "seconds": t["seconds"],
                "best": "★" if best is not None and t is best else "",
            }
        )
    return rows


def progress_figure(trials: list[dict[str, Any]], spec: SearchSpec):
    """The metric per trial and the best so far (whole trial numbers on the x axis)."""
    from matplotlib.ticker import MaxNLocator

    plt = R.pyplot()
    xs = [t["trial"] for t in trials if t["value"] is not None]
    ys = [t["value"] for t in trials if t["value"] is not None]
    pick = max if spec.direction == "maximize" else min
    running = [pick(ys[: i + 1]) for i in range(len(ys))]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(xs, ys, "o", label=spec.metric)
    ax.step(xs, running, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{spec.model}: {spec.method} search")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def page_context(
    spec: SearchSpec,
    name: str,
    trials: list[dict[str, Any]],
    best: dict[str, Any] | None,
    baseline: float | None = None,
    note: str | None = None,
    rows: list[dict[str, Any]] | None = None,
    png: bytes = b"",
) -> dict[str, Any]:
    """What the search templates (``search.md.j2``, ``search.html.j2``) show; the results
    table ``rows`` and the progress plot ``png`` only on the report's page."""
    how = note if note is not None else apply_decision(best, baseline, spec)[1]
    return {
        "title": f"search {name}",
        "name": name,
        "method": spec.method,
        "model": spec.model,
        "metric": spec.metric,
        "direction": spec.direction,
        "n_trials": len(trials),
        "n_ok": sum(t["state"] == "ok" for t in trials),
        "baseline": baseline,
        "best": best,
        "best_params": (
            [{"param": k, "value": v} for k, v in best["params"].items()]
            if best is not None
            else []
        ),
        "overrides": " ".join(P.as_s_args(best["params"])) if best is not None else "",
        "applied_note": how,
        "applied_note_html": how.replace("`", ""),
        "trials": rows,
        "trial_cols": (R.columns(rows) or None) if rows is not None else None,
        "png_name": f"{name}.png" if png else None,
        "png_src": R.data_uri(png) if png else None,
    }


def write_report(
    root: Path,
    name: str,
    spec: SearchSpec,
    trials: list[dict[str, Any]],
    best: dict[str, Any] | None,
    applied: bool,
    baseline: float | None = None,
    note: str | None = None,
) -> dict[str, Path]:
    """``reports/search/<name>.{md,html,json,png}``; the HTML page is self-contained."""
    out = root / "reports" / "search"
    rows = table_rows(trials, spec, best, baseline)
    for r in rows:
        if r.get("best"):
            r["_class"] = "best"
    png = (
        R.figure_png(progress_figure(trials, spec))
        if any(t["value"] is not None for t in trials)
        else b""
    )
    paths = {ext: out / f"{name}.{ext}" for ext in ("md", "html", "json", "png")}
    ctx = page_context(spec, name, trials, best, baseline, note, rows, png)
    if png:
        write_atomic(paths["png"], png)
    write_atomic(paths["md"], R.render("search.md.j2", **ctx).encode())
    write_atomic(
        paths["json"],
        json.dumps(
            {
                "spec": spec.model_dump(),
                "name": name,
                "best": best,
                "trials": trials,
                "applied": applied,
                "baseline": baseline,
            },
            indent=2,
            default=str,
        ).encode(),
    )
    write_atomic(paths["html"], R.render("search.html.j2", **ctx).encode())
    R.write_pages_index(root / "reports")
    return paths
