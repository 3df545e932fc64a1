"""What a retrain run decides and how it is kept: the candidate and its verdict, the pure
decision (fingerprint, improvement, margin), and the champion page
``reports/retrain/<model>.{md,html}`` with its run log ``reports/retrain/<model>.json``
(:mod:`pipelines.ops.retrain` runs the flow)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.ops import workspace as W
from pipelines.ops.retrain_config import RetrainConfig
from rnnflow.config import ConfigError, flatten

Decision = Literal["promoted", "rejected", "no change", "already judged"]


@dataclass
class Candidate:
    """A trained model as DVC left it in the workspace."""

    model: str
    fingerprint: str
    value: float | None
    metrics: dict[str, Any]
    params: dict[str, Any]  # params.yaml values train/evaluate depend on (dvc.lock)
    deps: dict[str, str]  # dependency path → hash (dvc.lock)
    model_hash: str | None  # hash of the models/<model> output: its weights in the DVC cache
    commit: str | None
    dirty: bool
    time: str = field(default_factory=W.utc_now)


@dataclass
class Verdict:
    """What a retrain run decided about its challenger, and why."""

    decision: Decision
    reason: str
    champion_value: float | None
    champion_rescored: bool = False


# --- pure parts -------------------------------------------------------------------------


def stage_inputs(
    lock: dict[str, Any], model: str
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """(params, deps, model output hash) of ``train@model`` + ``evaluate@model`` in dvc.lock."""
    stages = (lock or {}).get("stages", {})
    params: dict[str, Any] = {}
    deps: dict[str, str] = {}
    out_hash = None
    for name in (f"train@{model}", f"evaluate@{model}"):
        st = stages.get(name)
        if st is None:
            raise ConfigError(f"dvc.lock has no stage {name!r}: has it run?")
        for values in (st.get("params") or {}).values():
            params.update(values)
        for dep in st.get("deps") or []:
            if not dep["path"].startswith(f"models/{model}"):  # evaluate reads train's output
                deps[dep["path"]] = dep.get("md5") or dep.get("hash") or ""
        for out in st.get("outs") or []:
            if out["path"] == f"models/{model}":
                out_hash = out.get("md5")
    return params, deps, out_hash


def fingerprint(params: dict[str, Any], deps: dict[str, str]) -> str:
    """One hash of everything a model's training and evaluation depend on."""
    blob = json.dumps({"params": params, "deps": deps}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def improvement(
    champion: float | None, challenger: float | None, higher_is_better: bool
) -> float | None:
    """How much better the challenger is (negative: worse); None when either has no value."""
    if champion is None or challenger is None:
        return None
    return challenger - champion if higher_is_better else champion - challenger


def decide(
    champion: float | None,
    challenger: float | None,
    higher_is_better: bool,
    margin: float,
    metric: str,
) -> tuple[bool, str]:
    """(promote?, why) — promote only when better by more than ``margin``."""
    if challenger is None or (isinstance(challenger, float) and math.isnan(challenger)):
        return False, f"the challenger has no {metric}"
    if champion is None or (isinstance(champion, float) and math.isnan(champion)):
        return True, f"no champion yet: the first model with a {metric} is the champion"
    gain = improvement(champion, challenger, higher_is_better)
    assert gain is not None  # both have values
    word = "higher" if higher_is_better else "lower"
    if gain > margin:
        return True, (
            f"{metric} {challenger:.6g} vs champion {champion:.6g}: better by "
            f"{gain:.6g} ({word} is better), more than the margin {margin:g}"
        )
    how = (
        f"better by only {gain:.6g}"
        if gain > 0
        else f"worse by {-gain:.6g}"
        if gain < 0
        else "equal"
    )
    return False, (
        f"{metric} {challenger:.6g} vs champion {champion:.6g}: {how} "
        f"({word} is better), not more than the margin {margin:g}"
    )


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``key, champion, challenger`` for keys whose values differ (flattened)."""
    a, b = flatten(old or {}), flatten(new or {})
    return [
        {"key": k, "champion": a.get(k), "challenger": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def numeric_leaves(data: Any) -> dict[str, float]:
    """The numbers in ``data``, by flattened key."""
    return {
        k: v
        for k, v in flatten(data if isinstance(data, dict) else {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def last_judged(history: list[dict[str, Any]], fp: str | None = None) -> dict[str, Any] | None:
    """The latest entry of ``history`` that judged a challenger (promoted or rejected it),
    with fingerprint ``fp`` when given."""
    return next(
        (
            e
            for e in reversed(history or [])
            if e.get("decision") in ("promoted", "rejected") and fp in (None, e.get("fingerprint"))
        ),
        None,
    )


# --- the champion page ---------------------------------------------------------------------

#: A page's title by decision, where it is not the decision itself.
TITLES = {"rejected": "not promoted"}


def judgement_context(
    cand: Candidate,
    verdict: Verdict,
    champ: dict[str, Any] | None,
    cfg: RetrainConfig,
    ran: list[str],
    history: list[dict[str, Any]],
    runs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the judgement templates (``retrain.md.j2``, ``retrain.html.j2``) show.

    The title is the latest real decision (promoted or rejected) in the registry, not this
    run's: a "no change" or "already judged" run only adds a line to ``runs``.
    """
    champ = champ or {}
    latest: dict[str, Any] | None
    if verdict.decision in ("promoted", "rejected"):
        # This run is the latest decision; the registry gives its version and commit.
        latest = {
            **(last_judged(history, cand.fingerprint) or {}),
            "decision": verdict.decision,
            "value": cand.value,
            "champion_value": verdict.champion_value,
            "metric": cfg.metric,
            "margin": cfg.margin,
            "time": cand.time,
            "reason": verdict.reason,
        }
    else:
        latest = last_judged(history)
    headline = None
    if latest is not None:
        value, against = latest.get("value"), latest.get("champion_value")
        headline = {
            "decision": latest["decision"],
            "version": latest.get("version"),
            "commit": latest.get("registered_at"),  # what `gto history` names
            "metric": latest.get("metric", cfg.metric),
            "challenger": value,
            "champion": against,
            "improvement": improvement(against, value, cfg.higher_is_better),
            "margin": latest.get("margin", cfg.margin),
            "judged": latest.get("time"),
        }
    title = headline["decision"] if headline else verdict.decision
    return {
        "title": TITLES.get(title, title),
        "model": cand.model,
        "decision": verdict.decision,
        "reason": verdict.reason,
        "headline": headline,
        "headline_reason": latest.get("reason") if latest else verdict.reason,
        "runs": list(reversed(runs or []))[:50],
        "when": cand.time,
        "judgement": {
            "metric": cfg.metric,
            "champion": verdict.champion_value,
            "challenger": cand.value,
            "improvement": improvement(verdict.champion_value, cand.value, cfg.higher_is_better),
            "margin": cfg.margin,
            "higher is better": cfg.higher_is_better,
            "champion rescored": verdict.champion_rescored,
        },
        "cand": {"fingerprint": cand.fingerprint, "commit": cand.commit, "dirty": cand.dirty},
        "champ": {k: champ.get(k) for k in ("fingerprint", "version", "time")},
        "ran": [{"stage": s} for s in ran],
        "params": changes(champ.get("params", {}), cand.params),
        "deps": changes(champ.get("deps", {}), cand.deps),
        "metrics": changes(numeric_leaves(champ.get("metrics")), numeric_leaves(cand.metrics)),
        # "registered at": the commit GTO's tag points at (`gto history`); "trained from":
        # the code commit the challenger was trained at, which registration commits on top of.
        "history": [
            {k: e.get(k) for k in ("version", "time", "decision", "value", "champion_value")}
            | {
                "registered at": e.get("registered_at"),
                "trained from": (e.get("commit") or "")
                + (" (+ uncommitted changes)" if e.get("dirty") else ""),
                "reason": e.get("reason"),
            }
            for e in history[-10:]
        ],
    }


def report_pages(
    cand: Candidate,
    verdict: Verdict,
    champ: dict[str, Any] | None,
    cfg: RetrainConfig,
    ran: list[str],
    history: list[dict[str, Any]],
    runs: list[dict[str, Any]] | None = None,
) -> tuple[str, str]:
    """The judgement as Markdown (the Prefect artifact; ``reports/retrain/<model>.md``) and
    as a self-contained HTML page (``reports/retrain/<model>.html``)."""
    from pipelines import render as R

    ctx = judgement_context(cand, verdict, champ, cfg, ran, history, runs)
    title = f"retrain {cand.model}: {ctx['title']}"
    return R.render("retrain.md.j2", **ctx), R.render("retrain.html.j2", **{**ctx, "title": title})


def write_pages(root: Path, markdown: str, html: str, model: str) -> Path:
    """The latest judgement beside the other ops pages: ``reports/retrain/<model>.{md,html}``
    (the report links it as the model's champion page); returns the HTML path."""
    from pipelines import render as R
    from pipelines.outputs import write_atomic

    out = root / "reports" / "retrain"
    write_atomic(out / f"{model}.md", markdown.encode())
    write_atomic(out / f"{model}.html", html.encode())
    R.write_pages_index(root / "reports")
    return out / f"{model}.html"


def write_record(
    root: Path,
    cand: Candidate,
    verdict: Verdict,
    champ: dict[str, Any] | None,
    cfg: RetrainConfig,
    ran: list[str],
    history: list[dict[str, Any]],
) -> tuple[str, Path]:
    """Add this run to ``reports/retrain/<model>.json`` (every run, oldest first), then
    rewrite the model's pages; (Markdown, HTML path).

    "no change" and "already judged" runs create no registry tag, so that log is where they
    are seen.
    """
    from pipelines.outputs import write_atomic

    judged = verdict.decision in ("promoted", "rejected") and history
    version = history[-1] if judged else {}
    path = root / "reports" / "retrain" / f"{cand.model}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "time": cand.time,
            "decision": verdict.decision,
            "challenger": cand.value,
            "champion": verdict.champion_value,
            "version": version.get("version"),
            "commit": version.get("registered_at"),
            "fingerprint": cand.fingerprint,
            "reason": verdict.reason,
        }
    )
    write_atomic(path, json.dumps(runs, indent=1, default=str).encode())
    markdown, html = report_pages(cand, verdict, champ, cfg, ran, history, runs)
    return markdown, write_pages(root, markdown, html, cand.model)
