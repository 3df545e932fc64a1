"""Regenerate every measured table of BENCHMARKS.md from the JSON the runs wrote.

    python benchmarks/summary.py            # print every generated block
    python benchmarks/summary.py --write    # rewrite the blocks of BENCHMARKS.md in place
    python benchmarks/summary.py --check    # exit 1 and print a diff if a block is stale
    python benchmarks/summary.py --timings  # record the last main job's train timings

BENCHMARKS.md keeps its prose by hand; each generated table sits between
``<!-- summary:NAME -->`` and ``<!-- /summary:NAME -->``, made by ``BLOCKS[NAME]`` from the
committed reference run (``models`` and ``text-quality``: ``reports/evaluate/<model>.json``,
``dvclive/<model>/`` and the train wall times that ``--timings`` records in
``benchmarks/results/main_job.json``) or from ``benchmarks/results/<script>.json`` of a
benchmark script (``gpu_lm_<device>.json`` and ``gpu_stages_<device>.json``: ``gpu.sh``). A
block whose source is missing says so, and how to make it. ``--root`` reads another checkout,
``--doc`` another Markdown file.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a checkout that is not pip-installed

from pipelines import live as L  # noqa: E402
from rnnflow.config import load_params  # noqa: E402

TEXT_FAMILIES = {"lm", "seq2seq"}
BLOCK_RE = re.compile(
    r"(<!-- summary:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /summary:(?P=name) -->)", re.S
)
#: The tensor tasks' test metrics, in the order shown.
TENSOR_KEYS = "accuracy parity_accuracy bit_accuracy sequence_accuracy rmse baseline_rmse".split()
MAIN_JOB = "main_job"  # benchmarks/results/main_job.json: the reference run's train timings


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


class Missing(Exception):
    """A block's source is not there: the block says so, and how to make it."""


def _result(root: Path, name: str, how: str, part: str | None = None) -> dict[str, Any]:
    """``benchmarks/results/<name>.json`` (holding ``part``), or :class:`Missing`."""
    doc = _json(root / "benchmarks" / "results" / f"{name}.json")
    if doc is None or (part and part not in doc):
        what = f"{part} in " if part else ""
        raise Missing(f"{what}benchmarks/results/{name}.json", how)
    return doc


def _table(head: list[str], rows: list[list[Any]], *notes: str) -> list[str]:
    """A Markdown table (the header, its rule, one line per row), then a blank line and the
    ``notes`` when there are any."""
    lines = [head, *([str(c) for c in r] for r in rows)]
    out = ["|" + "|".join(f" {c} " if c else " " for c in cells) + "|" for cells in lines]
    return [out[0], "|" + "---|" * len(head), *out[1:], *(["", *notes] if notes else [])]


def _rows(items: Iterable[dict[str, Any]], *cells: str) -> list[list[str]]:
    """One row per item, each cell a ``str.format`` template over the item's keys."""
    return [[cell.format(**item) for cell in cells] for item in items]


def _mib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB" if x >= 2**30 else f"{x / 2**20:,.0f} MiB"


def _load_note(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    loads = [m.get(k) for k in ("load_avg_at_start", "load_avg_at_end")]
    shown = ", ".join(f"{x[0]:.1f}" for x in loads if x)
    return f"load average {shown}" if shown else ""


def _models(root: Path) -> dict[str, dict[str, Any]]:
    return load_params(root / "params.yaml")["train"]["models"]


# --- the reference run: reports/evaluate/*.json and dvclive/ ---------------------------------


def _per_model(root: Path, text: bool, row: Callable[..., list[Any]], width: int) -> list[list]:
    """One row per model of params.yaml of the kind asked for (text or tensor tasks)."""
    rows = []
    for name, m in _models(root).items():
        if (m.get("family") in TEXT_FAMILIES) == text:
            ev = _json(root / "reports" / "evaluate" / f"{name}.json")
            tr = L.train_metrics(L.live_dir(root, name))
            ok = ev is not None and tr is not None
            rows.append(row(name, m, ev, tr) if ok else [name, "(no metrics: stage not run)"])
            rows[-1] += [""] * (width - len(rows[-1]))
    return rows


def _training(root: Path, name: str, tr: dict) -> list[Any]:
    """Train wall seconds (the reference run's timings), "epochs (the epoch kept)", device."""
    doc = _json(root / "benchmarks" / "results" / f"{MAIN_JOB}.json") or {}
    wall = (doc.get("models") or {}).get(name, {}).get("wall_seconds", "—")
    return [wall, f"{tr.get('epochs')} ({tr.get('saved_epoch')})", tr.get("device")]


def record_timings(root: Path) -> Path:
    """``benchmarks/results/main_job.json`` from the last run's ``reports/timings/*.json``
    (written by the train stage, not committed), with the commit it ran."""
    import subprocess

    found = sorted((root / "reports" / "timings").glob("*.json"))
    if not found:
        raise SystemExit(f"{root}/reports/timings/ is empty: run the main job (`make repro`) first")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    models = {p.stem: json.loads(p.read_text()) for p in found}
    path = root / "benchmarks" / "results" / f"{MAIN_JOB}.json"
    path.write_text(json.dumps({"commit": commit, "models": models}, indent=2) + "\n")
    return path


def block_models(root: Path) -> list[str]:
    """MNIST and synthetic models: test metrics, training wall time, epochs, device, data."""

    def row(name: str, m: dict, ev: dict, tr: dict) -> list[Any]:
        test = ev.get("test", {})
        shown = ", ".join(
            f"{k} {test[k]:.4g}" for k in TENSOR_KEYS if isinstance(test.get(k), (int, float))
        )
        return [name, f"{shown} (n={test.get('n')})", *_training(root, name, tr), tr.get("n_train")]

    head = ["model", "test metrics", "train wall (s)", "epochs (best)", "device", "n_train"]
    return _table(head, _per_model(root, False, row, len(head)))


def _text_row(root: Path, name: str, m: dict, ev: dict, tr: dict) -> list[Any]:
    test, val = ev.get("test", {}), ev.get("validation", {})
    cell = str(m.get("cell", "lstm")).upper()
    what = f"{m.get('layers')}×{m.get('hidden')} {cell}"
    if m.get("family") == "seq2seq":
        what = (
            f"{'bi' if m.get('bidirectional', True) else ''}{cell} {m.get('layers')}×"
            f"{m.get('hidden')} + {m.get('attention', 'general')} attention"
        )
        if m.get("origins"):
            what += f", {'/'.join(m['origins'])} rows"
    what += f", {m.get('softmax', 'full')} softmax"
    unk = f"<unk> {100 * test['unk_rate']:.1f} %" if "unk_rate" in test else "<unk> rate —"

    def vs(model: float, kn: float) -> str:
        return f"{model:.1f} vs {kn:.1f} ({100 * (model / kn - 1):+.1f} %)"

    if "distinct_2" in test:  # dialogue: KN trigram of the text the model learned from
        metric = (
            f"perplexity {vs(test['perplexity'], test['ngram_perplexity'])} ({unk}); "
            f"distinct-2 sampled {test.get('distinct_2', 0):.3f}, greedy "
            f"{test.get('distinct_2_greedy', 0):.3f}; "
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
        for origin, s in test.items():
            if isinstance(s, dict) and isinstance(s.get("bleu"), (int, float)):
                parts.append(
                    f"{origin} (n={s.get('n')}): BLEU {s['bleu']:.1f} / "
                    f"{s.get('bleu_greedy', 0):.1f}, chrF {s.get('chrf', 0):.1f}"
                )
        if "outputs_with_copied_source_words" in test:
            parts.append(
                f"{100 * test['outputs_with_copied_source_words']:.1f} % of outputs keep a "
                f"Spanish word ({test['copied_source_words']} words)"
            )
        metric = "; ".join([*parts, f"perplexity {test['perplexity']:.1f} ({unk})"])
        base = "—"
    return [f"{name} ({what})", metric, base, *_training(root, name, tr)]


def block_text_quality(root: Path) -> list[str]:
    """The text models: test metrics vs the like-for-like baseline (%: the model's change),
    the baseline's training text, training."""
    head = ["model", "test metrics (model vs baseline)", "baseline", "train wall (s)"]
    head += ["epochs (best)", "device"]
    out = _table(head, _per_model(root, True, functools.partial(_text_row, root), len(head)))
    evals = (_json(root / "reports" / "evaluate" / f"{name}.json") or {} for name in _models(root))
    sacrebleu = [(ev.get("test") or {}).get("signature") for ev in evals]
    bleu = next((sig["bleu"] for sig in sacrebleu if isinstance(sig, dict)), None)
    return out + (["", f"BLEU signature: `{bleu}`."] if bleu else [])


# --- benchmarks/results/*.json ---------------------------------------------------------------


def block_data_half(root: Path) -> list[str]:
    doc = _result(root, "data_half", "python benchmarks/data_half.py")
    wall, n = doc["wall_s"], doc["stages"]
    head = [f"`dvc repro --force tokenize` ({n} hops)", "wall", "per hop"]
    row = ["each hop a `python -m stages.<hop>` process", f"{wall:.1f} s ({wall / 60:.1f} min)"]
    return _table(head, [[*row, f"{wall / n:.2f} s"]]) + [
        "",
        f"Best of {doc['repeat']}; dvc.lock byte-identical after every run: "
        f"{all(r['lock_unchanged'] for r in doc['runs'])}; {doc['machine']['cpus']} CPUs, load "
        f"average {doc['machine']['load_avg_at_start'][0]:.1f} at the start; "
        f"{doc['measured_at']}.",
    ]


def block_tokenize_speed(root: Path) -> list[str]:
    doc = _result(root, "tokenize_speed", "python benchmarks/tokenize_speed.py")
    m = doc["machine"]
    head = ["path", f"seconds (best of {doc['repeats']})", "sentences/s", "rnnflow speed-up"]
    cells = ("{path}", "{seconds:.3f}", "{sentences_per_s:,}", "{rnnflow_speedup:.2f}×")
    return _table(head, _rows(doc["rows"], *cells)) + [
        "",
        f"{doc['pairs']:,} pairs = {doc['sentences']:,} sentences of {doc['data']}; "
        f"vocabulary {doc['vocab_size']:,}; every path checked to give the same "
        f"vocabulary and ids; tokenizers {m.get('tokenizers')} (its parallelism "
        f"{m.get('tokenizers_parallelism', 'off: TOKENIZERS_PARALLELISM=false')}), datasets "
        f"{m.get('datasets')}; "
        f"{m.get('cpus')} CPUs, {_load_note(doc)}; {doc['when']}. HF's stock `Whitespace` "
        f"pre-tokenizer would split {doc['stock_whitespace_differs']['sentences']:,} "
        "sentences differently.",
    ]


def _scale(root: Path) -> tuple[dict[str, Any], str]:
    """scale_es_en.json and a line on the synthetic corpus it measured."""
    how = "python benchmarks/scale_es_en.py --pairs 10000000 --compare-pairs 1000000"
    doc = _result(root, "scale_es_en", how)
    z = doc["runs"]["main"]["zip"]
    dup, rep = 100 * z["duplicate_pair_fraction"], 100 * z["repeated_es_fraction"]
    return doc, (
        f"SYNTHETIC es–en pairs (sentence lengths of the mirror's {doc['length_pool']['pairs']:,}"
        f" real OpenSubtitles pairs, made-up Zipfian words, {dup:.2f} % duplicate pairs, "
        f"{rep:.1f} % repeated Spanish sentences) in the published Moses zip layout "
        f"({_mib(z['bytes'])}); {doc['machine']['cpus']} CPUs; {doc['date']}."
    )


def block_memory(root: Path) -> list[str]:
    """Peak RSS of each es_en hop at two sizes, its slope per row, and where it comes from."""
    doc, note = _scale(root)
    small, big, ext = doc["runs"]["compare"], doc["runs"]["main"], doc["extrapolation"]
    head = [f"peak RSS {small['pairs'] / 1e6:g}M pairs", f"peak RSS {big['pairs'] / 1e6:g}M"]
    head = ["hop", *head, "growth per row", f"at {ext['rows'] / 1e6:g}M (fit)", "what it holds"]
    rows = []
    for hop, e in ext["hops"].items():
        rss = [_mib(run["hops"][hop]["peak_rss_bytes"]) for run in (small, big)]
        grows = f"{e['rss_bytes_per_row']:.0f} B" if e["memory_grows_with_rows"] else "flat"
        rows.append([hop, *rss, grows, _mib(e["peak_rss_bytes_fit"]), e["note"]])
    return _table(head, rows, note)


def block_scale(root: Path) -> list[str]:
    """Wall time, throughput and disk of each es_en hop on the big synthetic corpus."""
    doc, note = _scale(root)
    big, ext = doc["runs"]["main"], doc["extrapolation"]
    head = ["hop", "rows in", "wall (s)", "rows/s", "peak temporary disk", "output"]
    head.append(f"wall at {ext['rows'] / 1e6:g}M (fit)")
    rows = []
    for hop, h in big["hops"].items():
        tmp = max(h["peak_tmp_bytes"], h["peak_downloads_bytes"] if hop == "fetch" else 0)
        fit = ext["hops"].get(hop, {}).get("wall_s_fit")
        rows.append(
            [hop, f"{h['rows_in']:,}", f"{h['wall_s']:.1f}", f"{h['rows_per_s']:,.0f}", _mib(tmp),
             _mib(h["output_bytes"]), "—" if fit is None else f"{fit:,.0f} s"]
        )  # fmt: skip
    total = sum(h["wall_s"] for h in big["hops"].values())
    fits = sum(e.get("wall_s_fit", e["wall_s_linear"]) for e in ext["hops"].values())
    peak = max(h["peak_rss_bytes"] for h in big["hops"].values())
    return _table(head, rows) + [
        "",
        f"{big['pairs']:,} pairs: the five hops took {total:.0f} s ({total / 60:.1f} min), "
        f"peak RSS {_mib(peak)}; fitted to {ext['rows']:,} pairs: ~{fits / 60:.0f} min. {note}",
    ]


def block_engine(root: Path) -> list[str]:
    """clean/sample/tokenize with ``data.engine`` local vs dask (1 and N workers), side by side."""

    def engine_runs(doc: dict[str, Any] | None) -> dict[str, Any]:
        dask = (doc or {}).get("dask") or {}
        return {k: v for k, v in dask.items() if isinstance(v, dict) and "runs" in v}

    # the Scale run (10M and 1M pairs) when it ran the engines, else the smaller engine run
    doc = _json(root / "benchmarks" / "results" / "scale_es_en.json")
    if not engine_runs(doc):
        how = (
            "python benchmarks/scale_es_en.py --pairs 1000000 --compare-pairs 100000 "
            "--out benchmarks/results/scale_engine.json"
        )
        doc = _result(root, "scale_engine", how, "dask")
    assert doc is not None
    runs = engine_runs(doc)
    workers = sorted({w for d in runs.values() for w in d["runs"]}, key=int)
    head = ["pairs", "hop", "local wall (s)", *(f"dask {w} worker(s) wall (s)" for w in workers)]
    head += ["peak RSS local", *(f"peak RSS dask {w}" for w in workers)]
    rows, same = [], []
    for key in ("compare", "main"):
        d = runs.get(key)
        if d is None:
            continue
        pairs = doc["runs"][key]["pairs"]
        for hop, h in d["local"].items():
            dask = [d["runs"][w][hop] for w in workers]
            rows.append(
                [f"{pairs:,}", hop, f"{h['wall_s']:.1f}", *(f"{x['wall_s']:.1f}" for x in dask),
                 _mib(h["peak_rss_bytes"]), *(_mib(x["peak_rss_bytes"]) for x in dask)]
            )  # fmt: skip
        same += [
            f"{pairs:,} pairs, {w} worker(s): {d['runs'][w]['bytes_identical']}" for w in workers
        ]
    return _table(head, rows) + [
        "",
        "Files byte-identical to the local engine's (data and hop reports): "
        + "; ".join(same)
        + f". {doc['machine']['cpus']} CPUs; peak RSS is the largest process (wait4).",
    ]


def block_ddp_lm(root: Path) -> list[str]:
    """One epoch with ``nproc`` 1 and 2 (``benchmarks/ddp_lm.py``), side by side."""
    doc = _result(root, "ddp_lm", "python benchmarks/ddp_lm.py")
    runs = doc["runs"]
    rows = [
        [n, f"{sum(r['epoch_seconds']):.1f}", f"{r['tokens_per_s']:,}", f"{r['val_loss']:.4f}",
         f"{r['val_perplexity']:.1f}" if r.get("val_perplexity") else "—"]
        for n, r in sorted(runs.items(), key=lambda kv: int(kv[0]))
    ]  # fmt: skip
    first, *rest = sorted(runs, key=int)
    ratios = "; ".join(
        f"{n} processes / 1: {runs[n]['tokens_per_s'] / runs[first]['tokens_per_s']:.2f}× "
        "the tokens/s"
        for n in rest
    )
    cfg = doc["config"]
    return _table(["nproc", "epoch (s)", "train tokens/s", "validation loss", "ppl"], rows) + [
        "",
        f"{doc['model']}: {cfg.get('layers')}×{cfg.get('hidden')} {cfg.get('cell', '').upper()}, "
        f"effective batch {cfg.get('batch_size')} whatever nproc, "
        f"{doc['train_tokens_per_epoch']:,} train tokens an epoch, {cfg.get('epochs')} epoch(s). "
        f"{ratios}. {doc['machine']['cpus']} CPUs, load average "
        f"{doc['machine']['load_avg_at_start'][0]} at the start; {doc['date']}.",
    ]


def block_noop_repro(root: Path) -> list[str]:
    doc = _result(root, "noop_repro", "python benchmarks/noop_repro.py")
    med, low = doc["median"], doc["min"]
    head = [f"command ({doc['stages']} stages, {doc['repeat']} runs each)"]
    head += ["libyaml (`ruamel.yaml.clib`)", "pure-Python YAML (the default)", "pure / libyaml"]
    rows = [
        [f"`dvc {cmd}`, nothing to do"]
        + [f"{med[f'{cmd}_{y}']:.2f} s (min {low[f'{cmd}_{y}']:.2f})" for y in ("libyaml", "pure")]
        + [f"{doc[f'ratio_{cmd}']:.2f}x"]
        for cmd in ("repro", "status")
    ]
    return _table(head, rows, f"Median seconds; {doc['machine']}; {doc['when']}.")


def _peers(root: Path, part: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """peers.json, its ``part`` and the line saying where it ran."""
    doc = _result(root, "peers", f"python benchmarks/peers.py --parts {part}", part)
    run = {**doc, **doc[part]}  # a part's own run facts, else the file's (one run for all)
    return run, doc[part], f"{run['device']}; {_load_note(run)}; {run['when']}."


def block_peers_lm(root: Path) -> list[str]:
    doc, lm, where = _peers(root, "lm")
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
        v = r.get("vs_rnnflow")
        if v:
            at = (
                f"to validation perplexity {v['lowest_common_target']:g}: "
                f"{v['time_ratio_at_target']}× less training time"
                if v["lowest_common_target"] is not None
                else "no target perplexity reached by both"
            )
            notes.append(f"rnnflow vs {name}: {v['tokens_per_s_ratio']}× the tokens/s; {at}")
    return _table(head, rows) + [
        "",
        "; ".join(notes) + "." if notes else "",
        f"torch {doc['torch']}; vocabulary {lm['vocab']:,}; {lm['train_tokens']:,} train "
        f"tokens; validation on {lm['val_tokens']:,} tokens; budget {lm['max_seconds']:g} "
        f"training s per run; {where}",
    ]


def block_peers_translator(root: Path) -> list[str]:
    _, t, where = _peers(root, "translator")
    rows = [[name, f"{r['tokens_per_s']:,}", r["steps"]] for name, r in t["runs"].items()]
    return _table(["model", "target tokens/s", "steps"], rows) + [
        "",
        f"Adaptive / full softmax: {t['ratio_adaptive_over_full']}×; vocabularies "
        f"{t['src_vocab']:,} → {t['tgt_vocab']:,}; {where}",
    ]


def block_peers_mnist(root: Path) -> list[str]:
    _, m, where = _peers(root, "mnist")
    runs = ({"name": name, **r} for name, r in m["runs"].items())
    rows = _rows(runs, "{name}: {loop}", "{seconds}", "{images_per_s:,}", "{test_accuracy:.4f}")
    return _table(["loop (one epoch)", "seconds", "images/s", "test accuracy"], rows) + [
        "",
        f"rnnflow / example speed: {m['ratio_rnnflow_over_example_speed']}×; "
        f"{m['train_images']:,} training images, {m['test_images']:,} test, batch "
        f"{m['batch_size']}; {where}",
    ]


def block_seed_spread(root: Path) -> list[str]:
    how = "python benchmarks/seed_spread.py mnist_cnn --seeds 1 2"
    doc = _result(root, "seed_spread", how)
    rows = []
    for r in doc["rows"]:
        val, test = f"validation.{r['metric']}", f"test.{r['metric']}"
        seeds = "; ".join(f"{x['seed']}: {x[val]:.4f} / {x[test]:.4f}" for x in r["runs"])
        rows.append([r["model"], r["metric"], seeds, f"{r['spreads'][val]:.4f}",
                     f"{r['spreads'][test]:.4f}"])  # fmt: skip
    notes = []
    for r in doc["rows"]:
        if d := r.get("distributed"):
            val, test = d["validation." + r["metric"]], d["test." + r["metric"]]
            where = "within" if d["within_validation_spread"] else "outside"
            notes.append(
                f"{r['model']} trained by {d['nproc']} data-parallel processes (`nproc: "
                f"{d['nproc']}`, seed {d['seed']}, effective batch {d['batch_size']}): "
                f"validation {val:.4f} / test {test:.4f}, {where} the validation spread."
            )
    for r in doc["rows"]:  # is each seed-0 row still the committed run? say which
        ref = _json(root / "metrics" / f"{r['model']}.json") or {}
        got = [(ref.get(s) or {}).get(r["metric"]) for s in ("validation", "test")]
        zero = next((x for x in r["runs"] if x["seed"] == ref.get("seed", 0)), None)
        if zero is None or None in got:
            continue
        same = [zero[f"{s}.{r['metric']}"] for s in ("validation", "test")] == got
        notes.append(
            f"{r['model']}: the seed-{zero['seed']} row "
            + ("is the committed reference run's result." if same else
               f"was measured before the committed reference run, which scores "
               f"validation {got[0]:.4f} / test {got[1]:.4f}.")
        )  # fmt: skip
    head = ["model", "metric", "seed: validation / test", "validation spread", "test spread"]
    return _table(
        head,
        rows,
        f"Measured {doc.get('measured_at')}. `retrain.margin: measured` promotes a challenger "
        "only above the validation spread.",
        *(["", *notes] if notes else []),
    )


def _gpu_files(root: Path, prefix: str) -> list[dict[str, Any]]:
    """``benchmarks/results/<prefix>_<device>.json`` of GPU runs (CPU smoke runs left out)."""
    found = sorted((root / "benchmarks" / "results").glob(f"{prefix}_*.json"))
    docs = [json.loads(p.read_text()) for p in found if not p.stem.endswith(("_cpu", "_quick"))]
    if not docs:
        raise Missing(f"benchmarks/results/{prefix}_<device>.json", "bash benchmarks/gpu.sh")
    return docs


def block_gpu_lm(root: Path) -> list[str]:
    """The 2x650 LM on a GPU: tokens/s per batch x precision against the bf16 roofline, and
    the held-out perplexity each reaches on the same token budget."""
    out: list[str] = []
    for doc in _gpu_files(root, "gpu_lm"):
        f = doc["flops_per_token"]
        out += [
            f"{doc['device']} (torch {doc['torch']}): {f['total'] / 1e6:.1f} MFLOPs/token "
            f"(LSTM {f['lstm'] / 1e6:.1f}, softmax {f['softmax'] / 1e6:.1f}); bf16 peak "
            f"{doc['peak_bf16_tflops']:.0f} TFLOP/s ({doc['peak_source']}) → roofline "
            f"{doc['roofline_tokens_per_s'] / 1e6:.2f}M tokens/s.",
            "",
        ]
        head = ["config", "batch", "tokens/s", "× baseline", "TFLOP/s", "of roofline"]
        rows = [
            [r["config"], r["batch"], f"{r['tokens_per_s']:,.0f}",
             f"{r['speedup_vs_baseline']:.2f}×", f"{r['achieved_tflops']:.1f}",
             f"{100 * r['fraction_of_roofline']:.1f} %", f"{r['peak_mem_gib']:.1f}"]
            for r in doc["speed"] if "tokens_per_s" in r
        ]  # fmt: skip
        out += _table([*head, "peak mem GiB"], rows)
        quality = [q for q in doc.get("quality", []) if "val_loss" in q]
        if quality:
            out += [
                "",
                f"Quality: {doc['quality_tokens']:,} training tokens from the same initial "
                f"weights; held-out loss on {doc['val_tokens']:,} tokens (source entropy "
                f"{doc['source_entropy_nats']:.3f} nats).",
                "",
            ]
            head = ["config", "lr", "steps", "seconds", "val loss", "val perplexity"]
            cells = ["{config}", "{lr:g}", "{steps}", "{seconds:.1f}", "{val_loss:.4f}"]
            cells += ["{val_perplexity:.2f}", "{excess_over_entropy:.4f}"]
            out += _table([*head, "excess nats"], _rows(quality, *cells))
        out.append("")
    return out


def block_gpu_stages(root: Path) -> list[str]:
    """Each train/evaluate stage of the main job run on a GPU: wall time and exit code."""
    rows, notes = [], []
    for doc in _gpu_files(root, "gpu_stages"):
        dev, stages = doc["device"], doc["stages"]
        rows += [[dev, name, f"{st['seconds']:.1f}", st["rc"]] for name, st in stages.items()]
        rows.append(
            [dev, "**all of the above**", f"{sum(st['seconds'] for st in stages.values()):.1f}", ""]
        )
        cut = doc.get("unfinished") or []
        never = 2 * len(_models(root)) - len(stages) - len(cut)  # train + evaluate per model
        if cut or never > 0:
            notes.append(
                f"Within the time limit on {dev}: cut short {', '.join(cut) or 'none'}; "
                f"{max(never, 0)} more stages not started."
            )
    return _table(["device", "stage", "wall s", "exit"], rows, *notes)


#: Each block by its marker's name (``block_<name>``, ``-`` for ``_``), in the order printed.
BLOCKS: dict[str, Callable[[Path], list[str]]] = {
    name.replace("_", "-"): globals()[f"block_{name}"]
    for name in """data_half tokenize_speed memory noop_repro peers_lm peers_translator peers_mnist
    models text_quality seed_spread ddp_lm scale engine gpu_lm gpu_stages""".split()
}


def _block(fn: Callable[[Path], list[str]], root: Path) -> str:
    try:
        lines = fn(root)
    except Missing as e:
        lines = [f"_Not measured yet: no `{e.args[0]}` (make it with `{e.args[1]}`)._"]
    return "\n".join(lines).rstrip("\n") + "\n"


def render(root: Path) -> dict[str, str]:
    """Every block's Markdown (ending in a newline)."""
    return {name: _block(fn, root) for name, fn in BLOCKS.items()}


def rewrite(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked block replaced; also the names of unknown markers."""
    unknown: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            unknown.append(name)
            return m.group(0)
        return m.group(1) + blocks[name] + m.group(4)

    return BLOCK_RE.sub(sub, text), unknown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/summary.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="project root: params.yaml, metrics/, results"
    )
    parser.add_argument("--doc", type=Path, help="Markdown with the markers (ROOT/BENCHMARKS.md)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff if one is stale")
    mode.add_argument(
        "--timings",
        action="store_true",
        help=f"record the last main job's train timings (reports/timings/) in "
        f"benchmarks/results/{MAIN_JOB}.json",
    )
    args = parser.parse_args(argv)
    if args.timings:
        print(f"wrote {record_timings(args.root)}")
        return 0
    blocks = render(args.root)
    if not (args.write or args.check):
        for name, body in blocks.items():
            print(f"<!-- summary:{name} -->\n{body}<!-- /summary:{name} -->\n")
        return 0
    doc = args.doc or args.root / "BENCHMARKS.md"
    text = doc.read_text()
    new, unknown = rewrite(text, blocks)
    present = {m.group("name") for m in BLOCK_RE.finditer(text)}
    if unknown:
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
