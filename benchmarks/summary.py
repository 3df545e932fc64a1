"""Regenerate every measured table of BENCHMARKS.md from the JSON the runs wrote.

    python benchmarks/summary.py            # print every generated block
    python benchmarks/summary.py --write    # rewrite the blocks of BENCHMARKS.md in place
    python benchmarks/summary.py --check    # exit 1 and print a diff if a block is stale

BENCHMARKS.md keeps its prose by hand; each generated table sits between
``<!-- summary:NAME -->`` and ``<!-- /summary:NAME -->`` and is made here from:

- ``metrics/<model>.json`` (``pipelines/flows/evaluate.py``: ``{"test": ..., "validation": ...}``
  with the keys of the task modules in ``pipelines/tasks/``) and
  the training record in ``dvclive/<model>/`` (``pipelines/flows/train.py`` logs it with
  DVCLive; ``pipelines.live.train_metrics`` reads it; a run from before DVCLive:
  ``metrics/<model>_train.json``) of the committed reference run:
  blocks ``models`` (MNIST and synthetic) and ``text-quality`` (the text models);
- ``benchmarks/results/<name>.json`` of the benchmark scripts: ``tokenize-speed``
  (tokenize_speed.py), ``peers-lm``, ``peers-translator``, ``peers-mnist`` (peers.py),
  ``train-throughput`` (train_throughput.py, every ``train_throughput_<device>_<sizes>.json``),
  ``hop-overhead`` (hop_overhead.py), ``data-half`` (data_half.py), ``flow-overhead``
  (flow_overhead.py), ``noop-repro`` (noop_repro.py), ``seed-spread`` (seed_spread.py).

A block whose source is missing says so (and how to make it) instead of a table. ``--root``
reads another checkout's ``params.yaml``/``metrics``/``benchmarks/results``; ``--doc`` another
Markdown file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# the project root, for a checkout that is not pip-installed
sys.path.insert(0, str(ROOT))

from pipelines import live as L  # noqa: E402
from rnnflow.config import load_params  # noqa: E402

TEXT_FAMILIES = {"lm", "seq2seq"}
BLOCK_RE = re.compile(
    r"(<!-- summary:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /summary:(?P=name) -->)", re.S
)


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _g(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _missing(what: str, how: str) -> list[str]:
    return [f"_Not measured yet: no `{what}` (make it with `{how}`)._"]


def _models(root: Path) -> dict[str, dict[str, Any]]:
    return load_params(root / "params.yaml")["train"]["models"]


def _metrics(root: Path, name: str) -> tuple[dict | None, dict | None]:
    return (
        _json(root / "metrics" / f"{name}.json"),
        L.train_metrics(L.live_dir(root, name)) or _json(root / "metrics" / f"{name}_train.json"),
    )


# --- from metrics/*.json -------------------------------------------------------------------

TENSOR_KEYS = (
    "accuracy",
    "parity_accuracy",
    "bit_accuracy",
    "sequence_accuracy",
    "rmse",
    "baseline_rmse",
)


def block_models(root: Path) -> list[str]:
    """MNIST and synthetic models: test metrics, training wall time, epochs, device, data."""
    out = [
        "| model | test metrics | train wall (s) | epochs (best) | device | n_train |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in _models(root).items():
        if m.get("family") in TEXT_FAMILIES:
            continue
        ev, tr = _metrics(root, name)
        if ev is None or tr is None:
            out.append(f"| {name} | (no metrics: stage not run) | | | | |")
            continue
        test = ev.get("test", {})
        shown = ", ".join(
            f"{k} {test[k]:.4g}" for k in TENSOR_KEYS if isinstance(test.get(k), (int, float))
        )
        out.append(
            f"| {name} | {shown} (n={test.get('n')}) | {tr.get('wall_seconds')} | "
            f"{tr.get('epochs')} ({tr.get('saved_epoch')}) | {tr.get('device')} | "
            f"{tr.get('n_train')} |"
        )
    return out


def _subsets(test: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-origin translation scores (``test[origin] = {"n", "bleu", ...}``)."""
    return {
        k: v
        for k, v in test.items()
        if isinstance(v, dict) and isinstance(v.get("bleu"), (int, float))
    }


def _text_row(name: str, m: dict, ev: dict, tr: dict) -> str:
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
    if "distinct_2" in test:  # dialogue (it has a Kneser-Ney baseline too)
        metric = (
            f"perplexity {test['perplexity']:.1f}; distinct-1/2 of sampled replies "
            f"{test.get('distinct_1', 0):.3f} / {test.get('distinct_2', 0):.3f} "
            f"({100 * test.get('unique_replies_sampled', 0):.1f} % distinct replies)"
        )
        if "copied" in test:
            metric += f"; {100 * test['copied']:.1f} % copied from training replies"
        kn = test.get("ngram_perplexity")
        base = (
            (f"interpolated Kneser–Ney trigram {kn:.1f}; " if kn is not None else "")
            + f"add-one unigram {test.get('unigram_perplexity', 0):.1f}; human replies "
            f"distinct-2 {test.get('distinct_2_reference', 0):.3f}"
        )
    elif "ngram_perplexity" in test:  # language model
        metric = f"perplexity {test['perplexity']:.1f} (validation {val.get('perplexity', 0):.1f})"
        base = (
            f"interpolated Kneser–Ney trigram {test['ngram_perplexity']:.1f} "
            f"(validation {val.get('ngram_perplexity', 0):.1f})"
        )
        if "cache_perplexity" in test:  # both with a cache, mixed as chosen on validation
            c = test.get("cache") or {}
            metric += (
                f"; with a continuous cache of {c.get('size')} states "
                f"{test['cache_perplexity']:.1f} (validation {val.get('cache_perplexity', 0):.1f})"
            )
            base += (
                f"; with a count cache {test['ngram_cache_perplexity']:.1f} "
                f"(validation {val.get('ngram_cache_perplexity', 0):.1f})"
            )
    else:  # translator
        parts = [
            f"all test rows (n={test.get('n')}): BLEU {test['bleu']:.1f} beam "
            f"{(test.get('decoding') or {}).get('beam', '')} / {test.get('bleu_greedy', 0):.1f} "
            f"greedy, chrF {test.get('chrf', 0):.1f}"
        ]
        for origin, s in _subsets(test).items():
            parts.append(
                f"{origin} (n={s.get('n')}): BLEU {s['bleu']:.1f} / "
                f"{s.get('bleu_greedy', 0):.1f}, chrF {s.get('chrf', 0):.1f}"
            )
        parts.append(f"perplexity {test['perplexity']:.1f}")
        metric = "; ".join(parts)
        base = "—"
    return (
        f"| {name} ({what}) | {metric} | {base} | {tr.get('wall_seconds')} | "
        f"{tr.get('epochs')} ({tr.get('saved_epoch')}) | {tr.get('device')} |"
    )


def block_text_quality(root: Path) -> list[str]:
    """The text models: headline test metrics, the baseline on the same split, training."""
    out = [
        "| model | test metrics | baseline on the same test split | train wall (s) | "
        "epochs (best) | device |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in _models(root).items():
        if m.get("family") not in TEXT_FAMILIES:
            continue
        ev, tr = _metrics(root, name)
        if ev is None or tr is None:
            out.append(f"| {name} | (no metrics: stage not run) | | | | |")
            continue
        out.append(_text_row(name, m, ev, tr))
    signature = next(
        (
            ev["test"]["signature"]["bleu"]
            for name in _models(root)
            for ev in [_metrics(root, name)[0]]
            if ev and isinstance(ev.get("test", {}).get("signature"), dict)
        ),
        None,
    )
    if signature:
        out += ["", f"BLEU signature: `{signature}`."]
    return out


# --- from benchmarks/results/*.json --------------------------------------------------------


def _result(root: Path, name: str) -> dict[str, Any] | None:
    return _json(root / "benchmarks" / "results" / f"{name}.json")


def _load_note(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    loads = [m.get(k) for k in ("load_avg_at_start", "load_avg_at_end", "loadavg_at_end")]
    shown = ", ".join(f"{x[0]:.1f}" for x in loads if x)
    return f"load average {shown}" if shown else ""


def block_tokenize_speed(root: Path) -> list[str]:
    doc = _result(root, "tokenize_speed")
    if doc is None:
        return _missing(
            "benchmarks/results/tokenize_speed.json", "python benchmarks/tokenize_speed.py"
        )
    out = [
        "| path | seconds (best of {r}) | sentences/s | rnnflow speed-up |".format(
            r=doc["repeats"]
        ),
        "|---|---|---|---|",
    ]
    for row in doc["rows"]:
        out.append(
            f"| {row['path']} | {row['seconds']:.3f} | {row['sentences_per_s']:,} | "
            f"{row['rnnflow_speedup']:.2f}× |"
        )
    sw = doc.get("stock_whitespace_differs", {})
    out += [
        "",
        f"{doc['pairs']:,} pairs = {doc['sentences']:,} sentences ({doc['data']}); "
        f"vocabulary {doc['vocab_size']:,}; every path checked to give the same "
        f"vocabulary and ids; tokenizers {doc['machine'].get('tokenizers')}, datasets "
        f"{doc['machine'].get('datasets')}; {doc['machine'].get('cpus')} CPUs, "
        f"{_load_note(doc)}; {doc['when']}. HF's stock `Whitespace` pre-tokenizer would "
        f"split {sw.get('sentences', 0):,} sentences differently.",
    ]
    return out


def block_peers_lm(root: Path) -> list[str]:
    doc = _result(root, "peers")
    if doc is None or "lm" not in doc:
        return _missing(
            "lm in benchmarks/results/peers.json", "python benchmarks/peers.py --parts lm"
        )
    lm = doc["lm"]
    runs = lm["runs"]
    targets = [str(t) for t in lm["targets"]]
    shown = [
        t for t in targets if any(r["seconds_to_ppl"].get(t) is not None for r in runs.values())
    ]
    head = (
        "| run | optimizer | softmax | tokens/s | best val ppl | "
        + " | ".join(f"s to ppl {float(t):g}" for t in shown)
        + " |"
    )
    out = [head, "|" + "---|" * (5 + len(shown))]
    for name, r in runs.items():
        cells = [
            _g(r["seconds_to_ppl"].get(t), 4) if r["seconds_to_ppl"].get(t) is not None else "—"
            for t in shown
        ]
        out.append(
            f"| {name} | {r['optimizer']} | {r['softmax']} | {r['tokens_per_s']:,} | "
            f"{r['best_val_ppl']} | " + " | ".join(cells) + " |"
        )
    notes = []
    for name, r in runs.items():
        v = r.get("vs_rnnflow")
        if v:
            at = (
                f"to validation perplexity {v['lowest_common_target']:g}: "
                f"{v['time_ratio_at_target']}× less training time"
                if v["lowest_common_target"] is not None
                else "no target perplexity reached by both"
            )
            notes.append(f"rnnflow vs {name}: {v['tokens_per_s_ratio']}× the tokens/s; {at}")
    out += [
        "",
        "; ".join(notes) + "." if notes else "",
        f"{doc['device']}, torch {doc['torch']}; vocabulary {lm['vocab']:,}; "
        f"{lm['train_tokens']:,} train tokens; validation on {lm['val_tokens']:,} tokens; "
        f"budget {lm['max_seconds']:g} training s per run; {_load_note(doc)}; "
        f"{doc['when']}{' (--quick: sizes mean nothing)' if doc.get('quick') else ''}.",
    ]
    return [line for line in out if line is not None]


def block_peers_translator(root: Path) -> list[str]:
    doc = _result(root, "peers")
    if doc is None or "translator" not in doc:
        return _missing(
            "translator in benchmarks/results/peers.json",
            "python benchmarks/peers.py --parts translator",
        )
    t = doc["translator"]
    out = ["| model | target tokens/s | steps |", "|---|---|---|"]
    for name, r in t["runs"].items():
        out.append(f"| {name} | {r['tokens_per_s']:,} | {r['steps']} |")
    out += [
        "",
        f"Adaptive / full softmax: {t['ratio_adaptive_over_full']}×; vocabularies "
        f"{t['src_vocab']:,} → {t['tgt_vocab']:,}; {doc['device']}; {_load_note(doc)}; "
        f"{doc['when']}{' (--quick)' if doc.get('quick') else ''}.",
    ]
    return out


def block_peers_mnist(root: Path) -> list[str]:
    doc = _result(root, "peers")
    if doc is None or "mnist" not in doc:
        return _missing(
            "mnist in benchmarks/results/peers.json", "python benchmarks/peers.py --parts mnist"
        )
    m = doc["mnist"]
    out = ["| loop (one epoch) | seconds | images/s | test accuracy |", "|---|---|---|---|"]
    for name, r in m["runs"].items():
        out.append(
            f"| {name}: {r['loop']} | {r['seconds']} | {r['images_per_s']:,} | "
            f"{r['test_accuracy']:.4f} |"
        )
    out += [
        "",
        f"rnnflow / example speed: {m['ratio_rnnflow_over_example_speed']}×; "
        f"{m['train_images']:,} training images, {m['test_images']:,} test, batch "
        f"{m['batch_size']}; {doc['device']}; {_load_note(doc)}; "
        f"{doc['when']}{' (--quick)' if doc.get('quick') else ''}.",
    ]
    return out


def block_train_throughput(root: Path) -> list[str]:
    files = sorted(
        p
        for p in (root / "benchmarks" / "results").glob("train_throughput_*.json")
        if not p.stem.endswith("_quick")
    )
    if not files:
        return _missing(
            "benchmarks/results/train_throughput_*.json", "python benchmarks/train_throughput.py"
        )
    out = [
        "| device | sizes | model | tokens/step | fused tok/s | loop tok/s | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in files:
        doc = json.loads(path.read_text())
        load = doc.get("load_avg_at_end")
        dev = doc["device"] + (f" (load {load[0]:.1f})" if load else "")
        for r in doc["rows"]:
            out.append(
                f"| {dev} | {doc['sizes']} | {r['model']} | {r['tokens_per_step']:,} | "
                f"{r['fused_tokens_per_s']:,} | {r['loop_tokens_per_s']:,} | "
                f"{r['ratio']:.1f}× |"
            )
    return out


def block_hop_overhead(root: Path) -> list[str]:
    doc = _result(root, "hop_overhead")
    if doc is None:
        return _missing(
            "benchmarks/results/hop_overhead.json",
            "python benchmarks/hop_overhead.py --before DIR --after .",
        )
    hops: list[str] = []
    table: dict[str, dict[str, str]] = {}
    for r in doc["rows"]:
        if r["hop"] not in hops:
            hops.append(r["hop"])
        table.setdefault(r["corpus"], {})[r["hop"]] = f"{r['before_s']:.2f} → {r['after_s']:.2f}"
    out = ["| corpus | " + " | ".join(hops) + " |", "|---|" + "---|" * len(hops)]
    for corpus, cells in table.items():
        out.append(f"| {corpus} | " + " | ".join(cells.get(h, "") for h in hops) + " |")
    ratios = [r["ratio"] for r in doc["rows"]]
    out += [
        "",
        f"Cells: before → after, wall seconds. After / before: {min(ratios):.2f}–{max(ratios):.2f}"
        f"; best of {doc.get('repeat')}; outputs identical: "
        f"{all(r.get('identical') for r in doc['rows'])}; {doc.get('measured_at')}.",
    ]
    return out


def block_data_half(root: Path) -> list[str]:
    doc = _result(root, "data_half")
    if doc is None:
        return _missing("benchmarks/results/data_half.json", "python benchmarks/data_half.py")
    m = doc["machine"]
    return [
        f"| `dvc repro --force tokenize` ({doc['stages']} hops) | wall | per hop |",
        "|---|---|---|",
        f"| each hop a `python -m stages.<hop>` process | {doc['wall_s']:.1f} s "
        f"({doc['wall_s'] / 60:.1f} min) | {doc['wall_s'] / doc['stages']:.2f} s |",
        "",
        f"Best of {doc['repeat']}; dvc.lock byte-identical after every run: "
        f"{all(r['lock_unchanged'] for r in doc['runs'])}; {m['cpus']} CPUs, load average "
        f"{m['load_avg_at_start'][0]:.1f} at the start; {doc['measured_at']}.",
    ]


def block_flow_overhead(root: Path) -> list[str]:
    doc = _result(root, "flow_overhead")
    if doc is None:
        return _missing(
            "benchmarks/results/flow_overhead.json", "python benchmarks/flow_overhead.py"
        )
    floor = doc["no_flow"]["median_s"]
    o = doc["overhead_per_stage_s"]
    p = doc["projection"]
    return [
        f"| | per stage (median of {doc['repeats']}) | Prefect's share (minus the "
        f"{floor:.2f} s import-only floor) |",
        "|---|---|---|",
        f"| temporary server per stage (before) | {doc['temporary']['median_s']:.2f} s | "
        f"{o['temporary']:.2f} s |",
        f"| one server for the whole run (`python -m pipelines.ops.prefect_session -- dvc repro`,"
        f" what `make repro` does now) | {doc['shared']['median_s']:.2f} s | "
        f"{o['shared']:.2f} s |",
        "",
        f"The shared server starts once ({doc['shared_server_startup_s']:.2f} s) and "
        f"stops in {doc['shared_server_stop_s']:.2f} s; for {p['stages']} flow stages: "
        f"~{p['shared_total_s']:.0f} s of overhead instead of ~{p['temporary_total_s']:.0f}"
        f" s. {_load_note(doc)}; {doc['when']}.",
    ]


def block_noop_repro(root: Path) -> list[str]:
    doc = _result(root, "noop_repro")
    if doc is None:
        return _missing("benchmarks/results/noop_repro.json", "python benchmarks/noop_repro.py")
    med, low = doc["median"], doc["min"]
    rows = [
        f"| command ({doc['stages']} stages, {doc['repeat']} runs each) | libyaml "
        "(`.[fastyaml]`, opt-in) | pure-Python YAML (the default) | "
        "pure / libyaml |",
        "|---|---|---|---|",
    ]
    for cmd in ("repro", "status"):
        rows.append(
            f"| `dvc {cmd}`, nothing to do | {med[f'{cmd}_libyaml']:.2f} s "
            f"(min {low[f'{cmd}_libyaml']:.2f}) | {med[f'{cmd}_pure']:.2f} s "
            f"(min {low[f'{cmd}_pure']:.2f}) | {doc[f'ratio_{cmd}']:.2f}x |"
        )
    rows += ["", f"Median seconds; {doc['machine']}; {doc.get('when', '')}".rstrip("; ") + "."]
    return rows


def block_seed_spread(root: Path) -> list[str]:
    doc = _result(root, "seed_spread")
    if doc is None:
        return _missing(
            "benchmarks/results/seed_spread.json",
            "python benchmarks/seed_spread.py mnist_cnn mnist_lstm --seeds 1",
        )
    out = ["| model | test metric | per seed | spread |", "|---|---|---|---|"]
    for r in doc["rows"]:
        per = ", ".join(f"seed {x['seed']}: {x[r['metric']]:.4f}" for x in r["runs"])
        out.append(f"| {r['model']} | {r['metric']} | {per} | {r['spread']:.4f} |")
    out += ["", f"Seed 0 is the committed reference run; {doc.get('measured_at')}."]
    return out


def _gpu_files(root: Path, prefix: str) -> list[Path]:
    """``benchmarks/results/<prefix>_<device>.json`` of GPU runs (CPU smoke runs left out)."""
    found = sorted((root / "benchmarks" / "results").glob(f"{prefix}_*.json"))
    return [p for p in found if not p.stem.endswith(("_cpu", "_quick"))]


def block_gpu_lm(root: Path) -> list[str]:
    """The 2x650 LM on a GPU: tokens/s per batch x precision against the bf16 roofline, and
    the held-out perplexity each reaches on the same token budget."""
    files = _gpu_files(root, "gpu_lm")
    if not files:
        return _missing(
            "benchmarks/results/gpu_lm_<device>.json",
            "benchmarks/gpu_device/run.sh on a GPU, then gpu_device/collect.py",
        )
    out: list[str] = []
    for path in files:
        doc = json.loads(path.read_text())
        f = doc["flops_per_token"]
        out += [
            f"{doc['device']} (torch {doc['torch']}): {f['total'] / 1e6:.1f} MFLOPs/token "
            f"(LSTM {f['lstm'] / 1e6:.1f}, softmax {f['softmax'] / 1e6:.1f}); bf16 peak "
            f"{doc['peak_bf16_tflops']:.0f} TFLOP/s ({doc['peak_source']}) → roofline "
            f"{doc['roofline_tokens_per_s'] / 1e6:.2f}M tokens/s.",
            "",
            "| config | batch | tokens/s | × baseline | TFLOP/s | of roofline | peak mem GiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in doc["speed"]:
            out.append(
                f"| {r['config']} | {r['batch']} | {r['tokens_per_s']:,.0f} | "
                f"{r['speedup_vs_baseline']:.2f}× | {r['achieved_tflops']:.1f} | "
                f"{100 * r['fraction_of_roofline']:.1f} % | {r['peak_mem_gib']:.1f} |"
            )
        if doc.get("quality"):
            out += [
                "",
                f"Quality: {doc['quality_tokens']:,} training tokens from the same initial "
                f"weights; held-out loss on {doc['val_tokens']:,} tokens (source entropy "
                f"{doc['source_entropy_nats']:.3f} nats).",
                "",
                "| config | lr | steps | seconds | val loss | val perplexity | excess nats |",
                "|---|---|---|---|---|---|---|",
            ]
            for q in doc["quality"]:
                out.append(
                    f"| {q['config']} | {q['lr']:g} | {q['steps']} | {q['seconds']:.1f} | "
                    f"{q['val_loss']:.4f} | {q['val_perplexity']:.2f} | "
                    f"{q['excess_over_entropy']:.4f} |"
                )
        out.append("")
    return out


def block_gpu_stages(root: Path) -> list[str]:
    """Each train/evaluate stage of the main job run on a GPU: wall time and exit code."""
    files = _gpu_files(root, "gpu_stages")
    if not files:
        return _missing(
            "benchmarks/results/gpu_stages_<device>.json",
            "benchmarks/gpu_device/run.sh on a GPU, then gpu_device/collect.py",
        )
    out = ["| device | stage | wall s | exit |", "|---|---|---|---|"]
    for path in files:
        doc = json.loads(path.read_text())
        for name, st in doc["stages"].items():
            out.append(f"| {doc['device']} | {name} | {st['seconds']:.1f} | {st['rc']} |")
        total = sum(st["seconds"] for st in doc["stages"].values())
        out.append(f"| {doc['device']} | **all of the above** | {total:.1f} | |")
        cut = doc.get("unfinished") or []
        never = 2 * len(_models(root)) - len(doc["stages"]) - len(cut)  # train + evaluate
        if cut or never > 0:
            out += [
                "",
                f"Within the call's budget on {doc['device']}: cut short "
                f"{', '.join(cut) or 'none'}; {max(never, 0)} more stages not started.",
            ]
    return out


BLOCKS: dict[str, Callable[[Path], list[str]]] = {
    "models": block_models,
    "text-quality": block_text_quality,
    "tokenize-speed": block_tokenize_speed,
    "peers-lm": block_peers_lm,
    "peers-translator": block_peers_translator,
    "peers-mnist": block_peers_mnist,
    "train-throughput": block_train_throughput,
    "hop-overhead": block_hop_overhead,
    "data-half": block_data_half,
    "flow-overhead": block_flow_overhead,
    "noop-repro": block_noop_repro,
    "seed-spread": block_seed_spread,
    "gpu-lm": block_gpu_lm,
    "gpu-stages": block_gpu_stages,
}


def render(root: Path) -> dict[str, str]:
    """Every block's Markdown (ending in a newline)."""
    return {name: "\n".join(fn(root)).rstrip("\n") + "\n" for name, fn in BLOCKS.items()}


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
        "--root",
        type=Path,
        default=ROOT,
        help="project root of the run: params.yaml, metrics/, benchmarks/results/",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="the Markdown file with the markers (default: ROOT/BENCHMARKS.md)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in place")
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1 with a diff if any block differs from what would be written",
    )
    args = parser.parse_args(argv)
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
    absent = sorted(set(BLOCKS) - present)
    if absent:
        print(f"note: {doc} has no block for {absent}", file=sys.stderr)
    if args.write:
        if new != text:
            doc.write_text(new)
        print(f"{doc}: {len(present)} blocks {'rewritten' if new != text else 'already current'}")
        return 0
    if new != text:
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"{doc} (as committed)",
                f"{doc} (python benchmarks/summary.py --write)",
            )
        )
        print(
            f"\n{doc}: generated tables are stale: run `python benchmarks/summary.py --write`",
            file=sys.stderr,
        )
        return 1
    print(f"{doc}: {len(present)} generated blocks current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
