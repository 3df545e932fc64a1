"""BENCHMARKS.md's generated tables equal what ``benchmarks/summary.py`` makes from the JSON.

The first test is the gate (``summary.py --check`` on the repository); the others check the
mechanics on a throw-away root with made-up metrics and results.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import live as L
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "summary.py"


@pytest.fixture(scope="module")
def summary():
    return load_script(SCRIPT, "benchmarks_summary")


def test_benchmarks_md_tables_are_current():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        "BENCHMARKS.md's generated tables are stale; run `python benchmarks/summary.py --write`"
        f"\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    )


def test_every_block_is_in_benchmarks_md(summary):
    text = (ROOT / "BENCHMARKS.md").read_text()
    present = {m.group("name") for m in summary.BLOCK_RE.finditer(text)}
    assert present == set(summary.BLOCKS)


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    (root / "metrics").mkdir(parents=True)
    (root / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")

    def w(name: str, doc: dict) -> None:
        (root / "metrics" / name).write_text(json.dumps(doc))

    train = {"wall_seconds": 12.5, "epochs": 3, "saved_epoch": 2, "device": "cpu", "n_train": 100}
    w(
        "mnist_cnn.json",
        {
            "test": {"n": 10000, "loss": 0.03, "accuracy": 0.9912},
            "validation": {"n": 1853, "accuracy": 0.993},
        },
    )
    L.write_run(L.live_dir(root, "mnist_cnn"), train, [])
    w(
        "books_lm.json",
        {
            "test": {"n": 9, "perplexity": 91.23, "ngram_perplexity": 129.8},
            "validation": {"perplexity": 92.4, "ngram_perplexity": 131.7},
        },
    )
    w("books_lm_train.json", train)  # a run from before DVCLive
    w(
        "es_en_translator.json",
        {
            "validation": {"perplexity": 9.1},
            "test": {
                "n": 20,
                "perplexity": 9.3,
                "decoding": {"beam": 5},
                "bleu": 27.2,
                "chrf": 50.1,
                "bleu_greedy": 25.0,
                "signature": {"bleu": "nrefs:1|tok:13a", "chrf": "x"},
                "tatoeba": {"n": 11, "bleu": 35.3, "bleu_greedy": 32.1, "chrf": 52.2},
            },
        },
    )
    L.write_run(L.live_dir(root, "es_en_translator"), train, [])
    return root


def test_tables_from_fake_metrics_and_round_trip(summary, tmp_path):
    root = _fake_root(tmp_path)
    blocks = summary.render(root)
    assert (
        "| mnist_cnn | accuracy 0.9912 (n=10000) | 12.5 | 3 (2) | cpu | 100 |" in blocks["models"]
    )
    assert "(no metrics: stage not run)" in blocks["models"]  # the other models
    assert "perplexity 91.2 (validation 92.4)" in blocks["text-quality"]
    assert "tatoeba (n=11): BLEU 35.3 / 32.1" in blocks["text-quality"]
    assert "nrefs:1|tok:13a" in blocks["text-quality"]
    assert blocks["peers-lm"].startswith("_Not measured yet")

    doc = root / "B.md"
    doc.write_text(
        "# t\n\nprose\n\n<!-- summary:models -->\nstale\n<!-- /summary:models -->\n\nmore prose\n"
    )
    check = [str(SCRIPT), "--root", str(root), "--doc", str(doc)]
    proc = subprocess.run([sys.executable, *check, "--check"], capture_output=True, text=True)
    assert proc.returncode == 1 and "-stale" in proc.stdout
    assert subprocess.run([sys.executable, *check, "--write"], capture_output=True).returncode == 0
    text = doc.read_text()
    assert text.startswith("# t\n\nprose\n\n<!-- summary:models -->\n| model |")
    assert text.endswith("<!-- /summary:models -->\n\nmore prose\n")
    proc = subprocess.run([sys.executable, *check, "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_unknown_block_is_an_error(summary, tmp_path):
    root = _fake_root(tmp_path)
    doc = root / "B.md"
    doc.write_text("<!-- summary:nope -->\nx\n<!-- /summary:nope -->\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--doc", str(doc), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr


def _gpu_results(root: Path) -> None:
    """A gpu_lm JSON as ``benchmarks/gpu_lm.py`` writes it (one speed row, one quality row) and
    a stage-times JSON as ``benchmarks/gpu_device/run.sh`` writes it, cut short by its budget."""
    res = root / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    row = {"config": "b512 bf16", "batch": 512, "tokens_per_s": 1_234_567.0,
           "speedup_vs_baseline": 4.29, "achieved_tflops": 48.2,
           "fraction_of_roofline": 0.0612, "peak_mem_gib": 11.5}  # fmt: skip
    quality = {"config": "b512 bf16", "lr": 0.001, "steps": 167, "seconds": 5.1, "val_loss": 2.3456,
               "val_perplexity": 10.44, "excess_over_entropy": 0.2472}  # fmt: skip
    (res / "gpu_lm_h200.json").write_text(json.dumps({
        "device": "NVIDIA H200", "torch": "2.11.0+cu130",
        "flops_per_token": {"lstm": 40.6e6, "softmax": 64.7e6, "total": 105.3e6},
        "peak_bf16_tflops": 788.0, "peak_source": "measured", "roofline_tokens_per_s": 7.48e6,
        "speed": [row], "quality": [quality], "quality_tokens": 6_000_000, "val_tokens": 500_000,
        "source_entropy_nats": 2.0984}))  # fmt: skip
    (res / "gpu_lm_cpu.json").write_text("{}")  # a CPU smoke run: not a GPU table
    (res / "gpu_stages_h200.json").write_text(json.dumps({
        "device": "NVIDIA H200", "torch": "2.11.0+cu130",
        "stages": {"train@books_lm": {"seconds": 41.25, "rc": 0},
                   "evaluate@books_lm": {"seconds": 12.5, "rc": 0}},
        "unfinished": ["train@es_en_translator"]}))  # fmt: skip


def test_gpu_blocks_from_results(summary, tmp_path):
    root = _fake_root(tmp_path)
    assert summary.render(root)["gpu-lm"].startswith("_Not measured yet")
    assert summary.render(root)["gpu-stages"].startswith("_Not measured yet")
    _gpu_results(root)
    blocks = summary.render(root)
    lm = blocks["gpu-lm"]
    assert "105.3 MFLOPs/token (LSTM 40.6, softmax 64.7)" in lm
    assert "788 TFLOP/s (measured) → roofline 7.48M tokens/s" in lm
    assert "| b512 bf16 | 512 | 1,234,567 | 4.29× | 48.2 | 6.1 % | 11.5 |" in lm
    assert "| b512 bf16 | 0.001 | 167 | 5.1 | 2.3456 | 10.44 | 0.2472 |" in lm
    assert lm.count("(torch") == 1  # the CPU smoke file is not a table
    st = blocks["gpu-stages"]
    assert "| NVIDIA H200 | train@books_lm | 41.2 | 0 |" in st
    assert "| NVIDIA H200 | **all of the above** | 53.8 | |" in st
    assert "cut short train@es_en_translator; 19 more stages not started" in st


def test_gpu_collect_files_results(tmp_path, monkeypatch):
    collect = load_script(ROOT / "benchmarks" / "gpu_device" / "collect.py", "gpu_collect")
    out, results = tmp_path / "out", tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(collect, "RESULTS", results)
    out.mkdir()
    assert collect.main([str(out)]) == 1  # nothing to collect is an error, not a silent pass
    _gpu_results(tmp_path / "run")
    for f in (tmp_path / "run" / "benchmarks" / "results").iterdir():
        shutil.copy(f, out / f.name)
    (out / "nvidia_smi.csv").write_text("name\nNVIDIA H200\n")
    assert collect.main([str(out)]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["gpu_lm_h200.json", "gpu_stages_h200.json"]


def test_hop_blocks_from_results(summary, tmp_path):
    """hop_overhead.json's before → after cells and the data_half.json table, rendered."""
    root = _fake_root(tmp_path)
    assert summary.render(root)["data-half"].startswith("_Not measured yet")
    res = root / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    row = {"corpus": "parity", "hop": "clean", "before_s": 4.29, "after_s": 2.85,
           "ratio": 0.664, "identical": True}  # fmt: skip
    (res / "hop_overhead.json").write_text(json.dumps(
        {"repeat": 2, "measured_at": "T", "rows": [row]}))  # fmt: skip
    machine = {"cpus": 2, "load_avg_at_start": [0.3, 0, 0]}
    (res / "data_half.json").write_text(json.dumps({
        "stages": 40, "repeat": 1, "wall_s": 190.0,
        "runs": [{"lock_unchanged": True}], "machine": machine, "measured_at": "T"}))  # fmt: skip
    blocks = summary.render(root)
    assert "| parity | 4.29 → 2.85 |" in blocks["hop-overhead"]
    assert "After / before: 0.66–0.66; best of 2; outputs identical: True" in blocks["hop-overhead"]
    assert (
        "| each hop a `python -m stages.<hop>` process | 190.0 s (3.2 min) | 4.75 s |"
        in blocks["data-half"]
    )
    assert "byte-identical after every run: True" in blocks["data-half"]
