"""BENCHMARKS.md's quality tables: the committed reference run (``reports/evaluate/<model>.json``,
``dvclive/<model>/``, ``benchmarks/results/main_job.json``), the seed spread and the peers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib as T

from pipelines import live as L

TEXT_FAMILIES = {"lm", "seq2seq"}
#: The tensor tasks' test metrics, in the order shown.
TENSOR_KEYS = "accuracy parity_accuracy bit_accuracy sequence_accuracy rmse baseline_rmse".split()

# --- the reference run: reports/evaluate/*.json and dvclive/ ---------------------------------


def _per_model(root: Path, text: bool, row: Callable[..., list[Any]], width: int) -> list[list]:
    """One row per model of params.yaml of the kind asked for (text or tensor tasks)."""
    rows = []
    for name, m in T.models(root).items():
        if (m.get("family") in TEXT_FAMILIES) == text:
            ev = T.read_json(root / "reports" / "evaluate" / f"{name}.json")
            tr = L.train_metrics(L.live_dir(root, name))
            ok = ev is not None and tr is not None
            rows.append(row(name, m, ev, tr) if ok else [name, "(no metrics: stage not run)"])
            rows[-1] += [""] * (width - len(rows[-1]))
    return rows


def _training(root: Path, name: str, tr: dict) -> list[Any]:
    """Train wall seconds (the reference run's timings), "epochs (the epoch kept)", device."""
    doc = T.read_json(root / "benchmarks" / "results" / f"{T.MAIN_JOB}.json") or {}
    wall = (doc.get("models") or {}).get(name, {}).get("wall_seconds", "—")
    return [wall, f"{tr.get('epochs')} ({tr.get('saved_epoch')})", tr.get("device")]


def block_models(root: Path) -> list[str]:
    """MNIST and synthetic models: test metrics, training wall time, epochs, device, data."""

    def row(name: str, m: dict, ev: dict, tr: dict) -> list[Any]:
        test = ev.get("test", {})
        shown = ", ".join(
            f"{k} {test[k]:.4g}" for k in TENSOR_KEYS if isinstance(test.get(k), (int, float))
        )
        return [name, f"{shown} (n={test.get('n')})", *_training(root, name, tr), tr.get("n_train")]

    head = ["model", "test metrics", "train wall (s)", "epochs (best)", "device", "n_train"]
    return T.table(head, _per_model(root, False, row, len(head)))


def _text_row(root: Path, name: str, m: dict, ev: dict, tr: dict) -> list[Any]:
    test, val = ev.get("test", {}), ev.get("validation", {})
    cell, size = str(m.get("cell", "lstm")).upper(), f"{m.get('layers')}×{m.get('hidden')}"
    what = f"{size} {cell}"
    if m.get("family") == "seq2seq":
        bi = "bi" if m.get("bidirectional", True) else ""
        what = f"{bi}{cell} {size} + {m.get('attention', 'general')} attention"
        what += ", copying" if m.get("copy_source") else ""
        what += f", {'/'.join(m['origins'])} rows" if m.get("origins") else ""
    what += f", {m.get('softmax', 'full')} softmax"
    unk = f"<unk> {100 * test['unk_rate']:.1f} %" if "unk_rate" in test else "<unk> rate —"
    if "words" in test:  # a subword vocabulary: perplexities per word
        unk += f", per word: {test['tokens']:,} tokens over {test['words']:,} words"

    def vs(model: float, kn: float) -> str:
        return f"{model:.1f} vs {kn:.1f} ({100 * (model / kn - 1):+.1f} %)"

    if "distinct_2" in test:  # dialogue: KN trigram of the text the model learned from
        metric = (
            f"perplexity {vs(test['perplexity'], test['ngram_perplexity'])} ({unk}); "
            f"distinct-2 sampled {test.get('distinct_2', 0):.3f}, greedy "
            f"{test.get('distinct_2_greedy', 0):.3f}; "
            f"{100 * test['repeats_greedy']:.1f} % greedy replies hold a trigram twice; "
            f"{100 * test.get('copied', 0):.1f} % sampled replies copied from training"
        )
        base = (
            f"KN trigram of the same {test.get('ngram_tokens', 0):,} tokens (pretraining lines "
            f"+ replies); of the replies alone {test.get('ngram_replies_perplexity', 0):.1f}; "
            f"human replies distinct-2 {test.get('distinct_2_reference', 0):.3f}"
        )
    elif "ngram_perplexity" in test:  # language model: plain vs plain, cached vs cached
        metric = f"perplexity {vs(test['perplexity'], test['ngram_perplexity'])} ({unk})"
        base = "KN trigram of the same train tokens, same vocabulary"
        if "cache_perplexity" in test:
            c = test.get("cache") or {}
            metric += (
                f"; cached {vs(test['cache_perplexity'], test['ngram_cache_perplexity'])}; "
                f"validation {vs(val['perplexity'], val['ngram_perplexity'])}, cached "
                f"{vs(val['cache_perplexity'], val['ngram_cache_perplexity'])}"
            )
            base += f"; cached: + a count cache of the last {c.get('size')} tokens"
    else:  # translator: all rows, then each origin (test[origin] = {"n", "bleu", ...})
        parts = [
            f"all test rows (n={test.get('n')}): BLEU {test['bleu']:.1f} beam "
            f"{(test.get('decoding') or {}).get('beam', '')} / {test.get('bleu_greedy', 0):.1f} "
            f"greedy, chrF {test.get('chrf', 0):.1f}"
        ]
        parts += [
            f"{origin} (n={s.get('n')}): BLEU {s['bleu']:.1f} / "
            f"{s.get('bleu_greedy', 0):.1f}, chrF {s.get('chrf', 0):.1f}"
            for origin, s in test.items()
            if isinstance(s, dict) and isinstance(s.get("bleu"), (int, float))
        ]
        if "outputs_with_copied_source_words" in test:
            n = test["copied_source_words"]
            parts.append(
                f"{100 * test['outputs_with_copied_source_words']:.1f} % of outputs keep a "
                f"Spanish word ({n} word{'' if n == 1 else 's'})"
            )
        metric = "; ".join([*parts, f"perplexity {test['perplexity']:.1f} ({unk})"])
        base = "—"
    return [f"{name} ({what})", metric, base, *_training(root, name, tr)]


def block_text_quality(root: Path) -> list[str]:
    """The text models: test metrics vs the like-for-like baseline (%: the model's change),
    the baseline's training text, training."""
    head = ["model", "test metrics (model vs baseline)", "baseline", "train wall (s)"]
    head += ["epochs (best)", "device"]
    out = T.table(head, _per_model(root, True, functools.partial(_text_row, root), len(head)))
    evals = [T.read_json(root / "reports" / "evaluate" / f"{n}.json") or {} for n in T.models(root)]
    sigs = [s for ev in evals if isinstance(s := (ev.get("test") or {}).get("signature"), dict)]
    return out + (["", f"BLEU signature: `{sigs[0]['bleu']}`."] if sigs else [])


def _peers(root: Path, part: str) -> tuple[dict[str, Any], str]:
    """peers.json's ``part`` (with the facts of the run that measured it) and where it ran."""
    run = T.result(root, "peers", f"python benchmarks/peers.py --parts {part}", part)[part]
    return run, f"{run['device']}; {T.load_note(run)}; {run['when']}."


def block_peers_lm(root: Path) -> list[str]:
    lm, where = _peers(root, "lm")
    runs = lm["runs"]
    shown = [
        str(t)
        for t in lm["targets"]
        if any(r["seconds_to_ppl"].get(str(t)) is not None for r in runs.values())
    ]
    head = ["run", "optimizer", "softmax", "tokens/s", "best val ppl"]
    head += [f"s to ppl {float(t):g}" for t in shown]
    rows, notes = [], []
    for name, r in runs.items():
        reached = [r["seconds_to_ppl"].get(t) for t in shown]
        rows.append(
            [name, r["optimizer"], r["softmax"], f"{r['tokens_per_s']:,}", r["best_val_ppl"]]
            + ["—" if x is None else f"{x:.4g}" for x in reached]
        )
        for ours, v in r.get("vs", {}).items():
            at = (
                f"to validation perplexity {v['lowest_common_target']:g}: "
                f"{v['time_ratio_at_target']}× less training time"
                if v["lowest_common_target"] is not None
                else "no target perplexity reached by both"
            )
            notes.append(f"{ours} vs {name}: {v['tokens_per_s_ratio']}× the tokens/s; {at}")
    # a target is first seen at the validation after it was reached
    every = lm["eval_every"]
    return T.table(head, rows) + [
        "",
        "; ".join(notes) + "." if notes else "",
        f"torch {lm['torch']}; vocabulary {lm['vocab']:,}; {lm['train_tokens']:,} train "
        f"tokens; validation on {lm['val_tokens']:,} tokens; budget {lm['max_seconds']:g} "
        f"training s per run; validated every {every:g} training s and at each epoch end, so a "
        f"time to a target is late by up to {every:g} s; {where}",
    ]


def block_peers_translator(root: Path) -> list[str]:
    t, where = _peers(root, "translator")
    rows = [[name, f"{r['tokens_per_s']:,}", r["steps"]] for name, r in t["runs"].items()]
    return T.table(["model", "target tokens/s", "steps"], rows) + [
        "",
        f"Adaptive / full softmax: {t['ratio_adaptive_over_full']}×; vocabularies "
        f"{t['src_vocab']:,} → {t['tgt_vocab']:,}; {where}",
    ]


def block_peers_mnist(root: Path) -> list[str]:
    m, where = _peers(root, "mnist")
    runs = ({"name": name, **r} for name, r in m["runs"].items())
    rows = T.rows_of(runs, "{name}: {loop}", "{seconds}", "{images_per_s:,}", "{test_accuracy:.4f}")
    return T.table(["loop (one epoch)", "seconds", "images/s", "test accuracy"], rows) + [
        "",
        f"rnnflow's loop / the example's, same network and optimizer: "
        f"{m['ratio_rnnflow_over_example_speed']}× the speed; "
        f"{m['train_images']:,} training images, {m['test_images']:,} test, batch "
        f"{m['batch_size']}; {where}",
    ]


def block_seed_spread(root: Path) -> list[str]:
    how = "python benchmarks/seed_spread.py mnist_cnn --seeds 1 2"
    doc = T.result(root, "seed_spread", how)
    rows, notes, refs = [], [], []
    for r in doc["rows"]:
        val, test = f"validation.{r['metric']}", f"test.{r['metric']}"
        seeds = "; ".join(f"{x['seed']}: {x[val]:.4f} / {x[test]:.4f}" for x in r["runs"])
        rows.append([r["model"], r["metric"], seeds, f"{r['spreads'][val]:.4f}",
                     f"{r['spreads'][test]:.4f}"])  # fmt: skip
        if d := r.get("distributed"):
            where = "within" if d["within_validation_spread"] else "outside"
            notes.append(
                f"{r['model']} trained by {d['nproc']} data-parallel processes (`nproc: "
                f"{d['nproc']}`, seed {d['seed']}, effective batch {d['batch_size']}): "
                f"validation {d[val]:.4f} / test {d[test]:.4f}, {where} the validation spread."
            )
        # is the seed-0 row still the committed run? say which
        ref = T.read_json(root / "metrics" / f"{r['model']}.json") or {}
        got = [(ref.get(s) or {}).get(r["metric"]) for s in ("validation", "test")]
        zero = next((x for x in r["runs"] if x["seed"] == ref.get("seed", 0)), None)
        if zero is not None and None not in got:
            same = [zero[val], zero[test]] == got
            refs.append(
                f"{r['model']}: the seed-{zero['seed']} row "
                + ("is the committed reference run's result." if same else
                   f"was measured before the committed reference run, which scores "
                   f"validation {got[0]:.4f} / test {got[1]:.4f}.")
            )  # fmt: skip
    notes += refs
    head = ["model", "metric", "seed: validation / test", "validation spread", "test spread"]
    return T.table(
        head,
        rows,
        f"Measured {doc.get('measured_at')}. `retrain.margin: measured` promotes a challenger "
        "only above the validation spread.",
        *(["", *notes] if notes else []),
    )


def block_rerun(root: Path) -> list[str]:
    how = "make repro on a fresh clone, then python benchmarks/summary.py --rerun"
    doc = T.result(root, "rerun", how)

    def cell(ref: float, new: float) -> str:
        return f"{ref:.6g} → {new:.6g}" + (f" ({new - ref:+.2g})" if new != ref else " (same)")

    rows = []
    for name, m in doc["models"].items():
        ref, new = m["reference"], m["rerun"]
        for key in ref["test"]:
            splits = [cell(ref[s][key], new[s][key]) for s in ("validation", "test")]
            rows.append([name, key, *splits, "yes" if m["identical"] else "no"])
    head = ["model", "metric", "validation: reference → rerun", "test", "same weights"]
    when = f"Rerun from scratch on {T.cpus(doc)}, {doc.get('measured_at')}"
    return T.table(head, rows, f"{when}; reference: the record at `rerun.json`'s commit.")
