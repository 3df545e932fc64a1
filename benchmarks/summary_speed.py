"""BENCHMARKS.md's speed and scale tables, from ``benchmarks/results/*.json`` of the benchmark
scripts and ``gpu_stages_<device>.json`` of ``benchmarks/gpu.sh``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import benchlib as T


def block_data_half(root: Path) -> list[str]:
    doc = T.result(root, "data_half", "python benchmarks/data_half.py")
    wall, n = doc["wall_s"], doc["stages"]
    rows = [[f"`dvc repro --force tokenize` ({n} data hops)", f"{wall:.1f} s", f"{wall / n:.2f} s"]]
    rows += [
        [f"`dvc {cmd}`, whole DAG, nothing to do", f"{secs:.2f} s", ""]
        for cmd, secs in doc["noop_median_s"].items()
    ]
    return T.table(["command", "wall", "per stage"], rows) + [
        "",
        f"Forced run: best of {doc['repeat']}; no-op: median of {doc['noop_repeat']}; "
        "dvc.lock byte-identical after every run: "
        f"{all(r['lock_unchanged'] for r in doc['runs'])}; {T.cpus(doc)}, load "
        f"average {doc['machine']['load_avg_at_start'][0]:.1f} at the start; "
        f"{doc['measured_at']}.",
    ]


def block_tokenize_speed(root: Path) -> list[str]:
    doc = T.result(root, "tokenize_speed", "python benchmarks/tokenize_speed.py")
    m = doc["machine"]
    head = ["path", f"seconds (best of {doc['repeats']})", "sentences/s", "rnnflow speed-up"]
    cells = ("{path}", "{seconds:.3f}", "{sentences_per_s:,}", "{rnnflow_speedup:.2f}×")
    return T.table(head, T.rows_of(doc["rows"], *cells)) + [
        "",
        f"{doc['pairs']:,} pairs = {doc['sentences']:,} sentences of {doc['data']}; "
        f"vocabulary {doc['vocab_size']:,}; every path checked to give the same "
        f"vocabulary and ids; tokenizers {m['tokenizers']} (its parallelism "
        f"{m['tokenizers_parallelism']}), datasets {m['datasets']}; "
        f"{T.cpus(doc)}, {T.load_note(doc)}; {doc['when']}.",
    ]


def _scale(root: Path) -> tuple[dict[str, Any], str]:
    """scale_es_en.json and a line on the synthetic corpus it measured."""
    how = "python benchmarks/scale_es_en.py --pairs 10000000 --compare-pairs 1000000"
    doc = T.result(root, "scale_es_en", how)
    z = doc["runs"]["main"]["zip"]
    dup, rep = 100 * z["duplicate_pair_fraction"], 100 * z["repeated_es_fraction"]
    return doc, (
        f"SYNTHETIC es–en pairs (sentence lengths of the mirror's {doc['length_pool']['pairs']:,}"
        f" real OpenSubtitles pairs, made-up Zipfian words, {dup:.2f} % duplicate pairs, "
        f"{rep:.1f} % repeated Spanish sentences) in the published Moses zip layout "
        f"({T.mib(z['bytes'])}); {doc['machine']['cpus']} CPUs; {doc['date']}."
    )


def rss(hop: dict[str, Any]) -> str:
    """A hop's peak RSS; ``n/m`` for a hop that ended before the first sample."""
    return T.mib(hop["peak_rss_bytes"]) if hop["peak_rss_bytes"] else "n/m"


def block_memory(root: Path) -> list[str]:
    """Peak RSS of each es_en hop at two sizes, its slope per row, and where it comes from."""
    doc, note = _scale(root)
    small, big, ext = doc["runs"]["compare"], doc["runs"]["main"], doc["extrapolation"]
    head = [f"peak RSS {small['pairs'] / 1e6:g}M pairs", f"peak RSS {big['pairs'] / 1e6:g}M"]
    head = ["hop", *head, "growth per row", f"at {ext['rows'] / 1e6:g}M (fit)", "what it holds"]
    rows = [
        [hop, *(rss(run["hops"][hop]) for run in (small, big)),
         f"{e['rss_bytes_per_row']:.0f} B" if e["memory_grows_with_rows"] else "flat",
         T.mib(e["peak_rss_bytes_fit"]), e["note"]]
        for hop, e in ext["hops"].items()
    ]  # fmt: skip
    return T.table(head, rows, note)


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
            [hop, f"{h['rows_in']:,}", f"{h['wall_s']:.1f}", f"{h['rows_per_s']:,.0f}", T.mib(tmp),
             T.mib(h["output_bytes"]), "—" if fit is None else f"{fit:,.0f} s"]
        )  # fmt: skip
    total = sum(h["wall_s"] for h in big["hops"].values())
    fits = sum(e.get("wall_s_fit", e["wall_s_linear"]) for e in ext["hops"].values())
    peak = max(big["hops"].values(), key=lambda h: h["peak_rss_bytes"])
    return T.table(head, rows) + [
        "",
        f"{big['pairs']:,} pairs: the five hops took {total:.0f} s ({total / 60:.1f} min), "
        f"peak RSS {rss(peak)}; fitted to {ext['rows']:,} pairs: ~{fits / 60:.0f} min. {note}",
    ]


def block_engine(root: Path) -> list[str]:
    """clean/sample/tokenize with ``data.engine`` local vs dask (1 and N workers), side by side."""
    doc, _ = _scale(root)
    runs = doc["dask"]
    workers = sorted({w for d in runs.values() for w in d["runs"]}, key=int)
    head = ["pairs", "hop", "local wall (s)", *(f"dask {w} worker(s) wall (s)" for w in workers)]
    head += ["peak RSS local", *(f"peak RSS dask {w}" for w in workers)]
    rows, same = [], []
    for key, d in runs.items():
        pairs = doc["runs"][key]["pairs"]
        for hop, h in d["local"].items():
            dask = [d["runs"][w][hop] for w in workers]
            rows.append(
                [f"{pairs:,}", hop, f"{h['wall_s']:.1f}", *(f"{x['wall_s']:.1f}" for x in dask),
                 rss(h), *(rss(x) for x in dask)]
            )  # fmt: skip
        same += [
            f"{pairs:,} pairs, {w} worker(s): {d['runs'][w]['bytes_identical']}" for w in workers
        ]
    return T.table(head, rows) + [
        "",
        "Files byte-identical to the local engine's (data and hop reports): "
        + "; ".join(same)
        + f". {T.cpus(doc)}; peak RSS is the largest process.",
    ]


def block_ddp_lm(root: Path) -> list[str]:
    """One epoch with ``nproc`` 1 and 2 (``benchmarks/ddp_lm.py``), side by side."""
    doc = T.result(root, "ddp_lm", "python benchmarks/ddp_lm.py")
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
    return T.table(["nproc", "epoch (s)", "train tokens/s", "validation loss", "ppl"], rows) + [
        "",
        f"{doc['model']}: {cfg.get('layers')}×{cfg.get('hidden')} {cfg.get('cell', '').upper()}, "
        f"effective batch {cfg.get('batch_size')} whatever nproc, "
        f"{doc['train_tokens_per_epoch']:,} train tokens an epoch, {cfg.get('epochs')} epoch(s). "
        f"{ratios}. {doc['machine']['cpus']} CPUs, load average "
        f"{doc['machine']['load_avg_at_start'][0]} at the start; {doc['date']}.",
    ]


def block_gpu_stages(root: Path) -> list[str]:
    """The main job's training half with the ``gpu`` profile on a GPU (``benchmarks/gpu.sh``):
    per model each stage's wall time and exit code, the mean epoch and the test metrics."""
    found = sorted((root / "benchmarks" / "results").glob("gpu_stages_*.json"))
    if not found:
        raise T.Missing("benchmarks/results/gpu_stages_<device>.json", "bash benchmarks/gpu.sh")
    rows, notes = [], []
    for doc in (json.loads(p.read_text()) for p in found):
        dev, stages = doc["device"], doc["stages"]
        for model in sorted({k.split("@", 1)[1] for k in stages}):
            tr, ev = stages.get(f"train@{model}"), stages.get(f"evaluate@{model}")
            epochs = doc["epoch_seconds"].get(model) or []
            test = (doc["metrics"].get(model) or {}).get("test") or {}
            times = [f"{s['seconds']:.1f} (exit {s['rc']})" if s else "—" for s in (tr, ev)]
            rows.append(
                [dev, model, *times,
                 f"{sum(epochs) / len(epochs):.1f} × {len(epochs)}" if epochs else "—",
                 ", ".join(f"{k} {v:.4g}" for k, v in test.items()) or "—"]
            )  # fmt: skip
        total = sum(st["seconds"] for st in stages.values())
        cut = doc["unfinished"]
        never = 2 * len(T.models(root)) - len(stages) - len(cut)  # train + evaluate per model
        notes.append(
            f"{dev}, torch {doc['torch']}, profile `{doc['profile']}`: {total:.1f} s "
            f"in all; cut short by the time limit: {', '.join(cut) or 'none'}; "
            f"{max(never, 0)} more stages not started."
        )
    head = ["device", "model", "train s", "evaluate s", "epoch s × epochs", "test metrics"]
    return T.table(head, rows, *notes)


def block_omp_wait(root: Path) -> list[str]:
    """Training steps under each OpenMP wait setting, alone and beside a busy process
    (``benchmarks/omp_wait.py``), each against rnnflow's."""
    doc = T.result(root, "omp_wait", "python benchmarks/omp_wait.py")
    ms = {(r["setting"], r["busy_neighbour"]): r["ms_per_step"] for r in doc["runs"]}
    ours = next(r["setting"] for r in doc["runs"] if "rnnflow" in r["setting"])
    rows = [
        [s, *(f"{ms[s, b]:.1f} ({ms[s, b] / ms[ours, b]:.2f}×)" for b in (False, True))]
        for s in dict.fromkeys(r["setting"] for r in doc["runs"])  # in the order run
    ]
    same = len({r["loss"] for r in doc["runs"]}) == 1
    cfg = doc["config"]
    head = ["OpenMP wait", "ms a step, alone (vs rnnflow's)", "beside one busy process"]
    return T.table(head, rows) + [
        "",
        f"{doc['model']} ({cfg.get('layers')}×{cfg.get('hidden')} {cfg.get('cell', '').upper()}, "
        f"batch {cfg.get('batch_size')}): {doc['steps']} training steps a run after 10 warm-up "
        f"steps; the last loss is the same in every run: {same}. {T.cpus(doc)}, "
        f"{T.load_note(doc)}; {doc['date']}.",
    ]
