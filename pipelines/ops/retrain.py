"""Scheduled retraining with champion/challenger: the ``retrain`` flow.

    python -m pipelines.ops.retrain                  # the model named in params.yaml `retrain:`
    python -m pipelines.ops.retrain --model mnist_logreg

1. Under the workspace lock, ``dvc repro evaluate@<model>``: new data or params or code make
   their stages stale and DVC reruns exactly those (nothing new: nothing runs).
2. The result is the *challenger*: its fingerprint is what ``dvc.lock`` records as the inputs
   of ``train@<model>`` and ``evaluate@<model>`` (data and code hashes, params), its score the
   ``retrain.metric`` of evaluate's record (``reports/evaluate/<model>.json``): a validation
   metric (the config refuses a ``test.`` one), so the test split never chooses a model.
3. The *champion* is the version of the model's GTO artifact last assigned the stage
   ``retrain.stage`` (``champion``): the registry is Git tags (pipelines/ops/registry.py;
   ``gto show``, ``gto history <model>``), each version's tag message holding its judgement.
   When the data changed since it was promoted, its weights (kept in the DVC cache under
   the hash its judgement recorded) are scored again on the current validation split, so
   both are judged on the same examples.
4. Promote only when the challenger beats the champion by more than ``retrain.margin``.
   Every judged challenger is registered as a new version (``<model>@v0.0.N``, at HEAD when
   the workspace is clean, else at a snapshot commit of it); a promoted one is also assigned
   the stage (``<model>#champion#N``). Publish the tags with ``git push --tags``. A
   rejected challenger's files are replaced in ``models/<model>`` by the champion's (from
   the DVC cache); its numbers stay in the registry and on the page.

Idempotent: a challenger with the champion's fingerprint is "no change", and one already
judged (same fingerprint as any earlier registered version of that model, not only the last)
is not judged twice — a duplicate or late scheduled run creates no tag. Every run publishes
a Markdown artifact and rewrites ``reports/retrain/<model>.md`` and a self-contained
``reports/retrain/<model>.html`` (:mod:`pipelines.render`), the champion page the report
links: its title is the latest real decision (promoted or not) with both candidates'
validation numbers, the margin and the commit ``gto history`` names for that version; below
it every run, "no change" and "already judged" included, from ``reports/retrain/<model>.json``.

"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines.cli import fail
from pipelines.lineage import run_stage_flow
from pipelines.ops import params as P
from pipelines.ops import workspace as W
from pipelines.ops.judgement import (
    Candidate,
    Verdict,
    decide,
    fingerprint,
    last_judged,
    stage_inputs,
    write_record,
)
from pipelines.ops.registry import GitTagRegistry
from pipelines.ops.retrain_config import RetrainConfig
from pipelines.outputs import logger
from rnnflow.config import ConfigError, load_params, parse, section

# --- the steps --------------------------------------------------------------------------


def read_candidate(root: Path, model: str, metric: str) -> Candidate:
    """The challenger DVC just produced (dvc.lock + evaluate's record of it)."""
    from ruamel.yaml import YAML

    lock = YAML(typ="safe").load((root / "dvc.lock").read_text())
    params, deps, out_hash = stage_inputs(lock, model)
    mpath = W.evaluate_record(root, model)
    metrics = json.loads(mpath.read_text()) if mpath.exists() else {}
    value = P.dig(metrics, metric)
    commit, dirty = W.git_head(root)
    return Candidate(
        model=model,
        fingerprint=fingerprint(params, deps),
        value=float(value) if isinstance(value, (int, float)) else None,
        metrics=metrics,
        params=params,
        deps=deps,
        model_hash=out_hash,
        commit=commit,
        dirty=dirty,
    )


#: Where ``benchmarks/seed_spread.py`` records each model's spread over training seeds.
SPREAD = Path("benchmarks/results/seed_spread.json")


def measured_margin(root: Path, model: str, metric: str) -> float:
    """The spread (max − min) of ``metric`` over training seeds of ``model``, as measured by
    ``benchmarks/seed_spread.py``; a :class:`ConfigError` naming the command if unmeasured."""
    path = root / SPREAD
    how = f"`python benchmarks/seed_spread.py {model} --seeds 1 2`, or set retrain.margin"
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"retrain.margin is 'measured' but {path} is unreadable ({exc}): {how}"
        ) from None
    for row in rows:
        spread = (row.get("spreads") or {}).get(metric)
        if row.get("model") == model and spread is not None:
            return float(spread)
    raise ConfigError(f"retrain.margin is 'measured' but {path} has no {metric} of {model}: {how}")


def retrain_config(
    params: dict[str, Any], model: str | None = None, root: Path | None = None
) -> RetrainConfig:
    """The ``retrain`` section of ``params``, its ``model`` replaced by ``model`` if given;
    with ``root``, a ``measured`` margin becomes the number measured there.

    The override goes into the section itself, not through ``parse(..., **extra)``: ``parse``
    names its own first parameter ``model``, so ``parse(..., model=...)`` is a TypeError.
    """
    if model:
        params = {**params, "retrain": {**(section(params, "retrain") or {}), "model": model}}
    cfg = parse(RetrainConfig, params, "retrain")
    if root is not None and cfg.margin == "measured":
        cfg = cfg.model_copy(update={"margin": measured_margin(root, cfg.model, cfg.metric)})
    return cfg


def data_deps(deps: dict[str, str]) -> dict[str, str]:
    """The data files among ``deps`` (path → hash)."""
    return {p: h for p, h in deps.items() if p.startswith("data/")}


def cache_objects(root: Path, out_hash: str) -> dict[str, tuple[str, Path]]:
    """The files of a ``models/<model>`` output in the DVC cache, by the output's hash:
    relative path (``""`` for an output that is one file) → (md5, cache object)."""
    from dvc.repo import Repo  # type: ignore[import-untyped]

    with Repo(str(root)) as repo:
        odb = repo.cache.local
        if not out_hash.endswith(".dir"):
            return {"": (out_hash, Path(odb.oid_to_path(out_hash)))}
        listing = json.loads(Path(odb.oid_to_path(out_hash)).read_text())
        return {e["relpath"]: (e["md5"], Path(odb.oid_to_path(e["md5"]))) for e in listing}


def cached_weights(root: Path, out_hash: str) -> Path:
    """``model.pt`` of a ``models/<model>`` output, from the DVC cache by its hash; its bytes
    are checked against that hash first (DVC trusts its cache, a flipped byte goes unseen)."""
    from pipelines.integrity import IntegrityError, file_md5

    md5, weights = cache_objects(root, out_hash)["model.pt" if out_hash.endswith(".dir") else ""]
    if file_md5(weights) != md5:
        raise IntegrityError(
            f"{weights}: the champion's cached model.pt does not hash to {md5} (damaged cache "
            "object): delete it, then `dvc pull` or `dvc repro --force` the model's train stage"
        )
    return weights


def rescore(root: Path, champion: dict[str, Any], metric: str, params: dict[str, Any]) -> float:
    """The champion's ``metric`` on the current split (its weights from the DVC cache)."""
    import torch

    from pipelines import device as dev
    from pipelines.config import EvaluateConfig
    from pipelines.flows.evaluate import load_trained, score

    split, _, key = metric.partition(".")
    ecfg = parse(EvaluateConfig, params, "evaluate")
    device = dev.resolve(ecfg.device)
    weights = cached_weights(root, champion["model_hash"])
    net, cfg, _ = load_trained(weights, device)
    corpus_dir = root / "data" / "05_tokens" / cfg.corpus
    with torch.no_grad():
        metrics, _, _ = score(net, corpus_dir, split, ecfg.batch_size, torch.device(device))
    return float(P.dig(metrics, key))


def judge(
    root: Path, reg: GitTagRegistry, cand: Candidate, cfg: RetrainConfig, params: dict[str, Any]
) -> Verdict:
    """Compare the challenger with the champion on the same validation split."""
    champ = reg.champion(cand.model)
    history = reg.history(cand.model)
    if champ and champ["fingerprint"] == cand.fingerprint:
        return Verdict(
            "no change",
            f"same data, params and code as the champion promoted "
            f"{champ['time']} (fingerprint {cand.fingerprint})",
            champ.get("value"),
        )
    last = last_judged(history, cand.fingerprint)  # any earlier judgement, not just the last
    if last is not None:
        return Verdict(
            "already judged",
            f"this challenger (fingerprint {cand.fingerprint}) was "
            f"judged {last['time']}: {last['decision']}",
            last.get("champion_value"),
        )
    champion_value, rescored, note = None, False, ""
    if champ:
        champion_value = champ.get("value")
        if data_deps(champ.get("deps", {})) != data_deps(cand.deps):
            try:
                champion_value = rescore(root, champ, cfg.metric, params)
                rescored = True
                note = " (champion scored again on the current validation split)"
            except Exception as exc:  # weights gone from the cache, or an incompatible spec
                note = (
                    f" (the data changed but the champion could not be scored "
                    f"on it: {type(exc).__name__}: {exc}; compared with its recorded "
                    f"{cfg.metric})"
                )
    promote, why = decide(
        champion_value, cand.value, cfg.higher_is_better, cfg.threshold(), cfg.metric
    )
    return Verdict("promoted" if promote else "rejected", why + note, champion_value, rescored)


def restore_champion(root: Path, model: str, out_hash: str) -> None:
    """Put the champion's ``models/<model>`` back from the DVC cache (by its output hash),
    so a rejected challenger's weights are not what the workspace serves or ships."""
    import shutil

    files = {rel: path for rel, (_, path) in cache_objects(root, out_hash).items()}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"champion of {model} not in the DVC cache: {missing}")
    out = root / "models" / model
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    for rel, src in files.items():
        dst = out / rel if rel else out
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)  # a copy: the cache object must never be written through


@task(cache_policy=NO_CACHE)
def reproduce(root: str, targets: list[str]) -> list[str]:
    """``dvc repro`` of the model's stages (stale ones only); the stages that ran."""
    return W.dvc_repro(Path(root), targets, log=logger()).ran


@task(cache_policy=NO_CACHE)
def evaluate_and_record(
    root: str, cfg: RetrainConfig, params_path: str, flow_run: str | None
) -> tuple[Candidate, Verdict, dict | None, list]:
    """Judge the challenger and record the judgement (unless nothing is new)."""
    path = Path(root)
    params = load_params(path / params_path)
    cand = read_candidate(path, cfg.model, cfg.metric)
    reg = GitTagRegistry(path, cfg.stage)
    champ = reg.champion(cfg.model)
    verdict = judge(path, reg, cand, cfg, params)
    logger().info("retrain %s: %s — %s", cfg.model, verdict.decision, verdict.reason)
    if verdict.decision in ("promoted", "rejected"):
        entry = {
            **asdict(cand),
            "decision": verdict.decision,
            "reason": verdict.reason,
            "metric": cfg.metric,
            "champion_value": verdict.champion_value,
            "champion_rescored": verdict.champion_rescored,
            "margin": cfg.margin,
            "flow_run": flow_run,
        }
        entry.pop("model", None)
        reg.record(cfg.model, entry)
    history = reg.history(cfg.model)
    judged = last_judged(history, cand.fingerprint)
    if judged and judged["decision"] == "rejected" and champ and champ.get("model_hash"):
        # Also on "already judged": a rerun must not leave the rejected weights behind.
        try:
            restore_champion(path, cfg.model, champ["model_hash"])
            logger().info(
                "retrain %s: champion %s restored in models/", cfg.model, champ["version"]
            )
        except FileNotFoundError as exc:  # judged and recorded: say so, do not fail the run
            logger().warning("retrain %s: rejected files left in models/: %s", cfg.model, exc)
    return cand, verdict, champ, history


@flow(name="retrain")
def retrain(
    model: str | None = None,
    params_path: str = "params.yaml",
    lock_timeout: float = 3600.0,
    root: str | None = None,
) -> dict[str, Any]:
    """Rerun the stale stages of ``model`` (default: ``retrain.model``), then promote or not."""
    path = W.resolve_root(root)
    cfg = retrain_config(load_params(W.inside(path, params_path, "params file")), model, path)
    with W.workspace_lock(path, f"retrain {cfg.model}", lock_timeout, log=logger()):
        ran = reproduce(str(path), [f"evaluate@{cfg.model}"])
        cand, verdict, champ, history = evaluate_and_record(
            str(path), cfg, params_path, flow_run.name
        )
    markdown, page = write_record(path, cand, verdict, champ, cfg, ran, history)
    W.publish_markdown(
        markdown, W.artifact_key("retrain", cfg.model), f"retrain {cfg.model}: {verdict.decision}"
    )
    version = (
        history[-1].get("version")
        if history and verdict.decision in ("promoted", "rejected")
        else None
    )
    return {
        "model": cfg.model,
        "decision": verdict.decision,
        "reason": verdict.reason,
        "challenger": cand.value,
        "champion": verdict.champion_value,
        "ran": ran,
        "fingerprint": cand.fingerprint,
        "version": version,
        "page": str(page),
    }


def check_arguments(model: str | None, params_path: str, root: str | None) -> str:
    """The model a run would retrain, after checking what the user named exists; a
    :class:`ConfigError` saying what is wrong and what there is otherwise. Run before the
    flow, so a mistake costs no Prefect server and no workspace lock."""
    path = W.resolve_root(root)
    params = load_params(W.inside(path, params_path, "params file"))
    models = section(params, "train.models")
    cfg = retrain_config(params, model)
    if cfg.model not in models:
        where = "--model" if model else "retrain.model in params.yaml"
        raise ConfigError(
            f"no model {cfg.model!r} to retrain ({where}); train.models has: "
            f"{', '.join(sorted(models))}"
        )
    retrain_config(params, model, path)  # a margin to measure that nobody measured
    return cfg.model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow retrain",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", default=None, help="model to retrain (default: retrain.model in params.yaml)"
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file, relative to the root (default: %(default)s)",
    )
    W.workspace_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_arguments(args.model, args.params, args.root)
    except ConfigError as exc:
        return fail("retrain", str(exc))
    out = run_stage_flow(
        retrain,
        model=args.model,
        params_path=args.params,
        lock_timeout=args.lock_timeout,
        root=args.root,
    )
    print(f"retrain {out['model']}: {out['decision']} — {out['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
