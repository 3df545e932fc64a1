"""BENCHMARKS.md's generated tables equal what ``benchmarks/summary.py`` makes from the JSON.

The first test is the gate (``summary.py --check`` on the repository); the others check the
mechanics on a throw-away root with made-up metrics and results.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import live as L
from rnnflow.env import PROJECT_ROOT as ROOT
from tests.conftest import load_script
from tests.pages.conftest import write_run

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
    (root / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")

    def w(name: str, doc: dict) -> None:  # what evaluate writes: the record and the metric
        for folder in ("reports/evaluate", "metrics"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / name).write_text(json.dumps(doc))

    train = {"epochs": 3, "saved_epoch": 2, "device": "cpu", "n_train": 100}
    # the train stage's timings (not committed); `summary.py --timings` records them
    (root / "reports" / "timings").mkdir(parents=True)
    (root / "reports" / "timings" / "mnist_cnn.json").write_text('{"wall_seconds": 12.5}')
    w(
        "mnist_cnn.json",
        {
            "test": {"n": 10000, "loss": 0.03, "accuracy": 0.9912},
            "validation": {"n": 1853, "accuracy": 0.993},
        },
    )
    write_run(L.live_dir(root, "mnist_cnn"), train, [])
    w(
        "books_lm.json",
        {
            "test": {"n": 9, "perplexity": 91.23, "unk_rate": 0.031, "ngram_perplexity": 129.8},
            "validation": {"perplexity": 92.4, "ngram_perplexity": 131.7},
        },
    )
    write_run(L.live_dir(root, "books_lm"), train, [])
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
    write_run(L.live_dir(root, "es_en_translator"), train, [])
    return root


def test_tables_from_fake_metrics_and_round_trip(summary, tmp_path):
    root = _fake_root(tmp_path)
    assert "| mnist_cnn | accuracy 0.9912 (n=10000) | — | 3 (2) |" in summary.render(root)["models"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--timings"], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    blocks = summary.render(root)
    assert (
        "| mnist_cnn | accuracy 0.9912 (n=10000) | 12.5 | 3 (2) | cpu | 100 |" in blocks["models"]
    )
    assert "(no metrics: stage not run)" in blocks["models"]  # the other models
    # like for like: the model against the count model of the same text, <unk> rate beside
    assert "perplexity 91.2 vs 129.8 (-29.7 %) (<unk> 3.1 %)" in blocks["text-quality"]
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
    """A results file as ``benchmarks/gpu.sh`` writes it, cut short by its time limit, and a
    CPU smoke run's."""
    res = root / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "gpu_stages_h200.json").write_text(json.dumps({
        "device": "NVIDIA H200", "torch": "2.11.0+cu130", "profile": "gpu",
        "stages": {"train@books_lm": {"seconds": 41.25, "rc": 0},
                   "evaluate@books_lm": {"seconds": 12.5, "rc": 0}},
        "unfinished": ["train@es_en_translator"],
        "epoch_seconds": {"books_lm": [10.0, 11.0]},
        "metrics": {"books_lm": {"test": {"perplexity": 98.765}}}}))  # fmt: skip


def test_gpu_block_from_results(summary, tmp_path):
    root = _fake_root(tmp_path)
    assert summary.render(root)["gpu-stages"].startswith("_Not measured yet")
    _gpu_results(root)
    st = summary.render(root)["gpu-stages"]
    assert (
        "| NVIDIA H200 | books_lm | 41.2 (exit 0) | 12.5 (exit 0) | 10.5 × 2 | perplexity 98.77 |"
        in st
    )
    assert "profile `gpu`: 53.8 s in all" in st
    assert "cut short by the time limit: train@es_en_translator; 19 more stages not started" in st


def test_data_half_block_from_results(summary, tmp_path):
    root = _fake_root(tmp_path)
    assert summary.render(root)["data-half"].startswith("_Not measured yet")
    (root / "benchmarks" / "results" / "data_half.json").write_text(json.dumps({
        "stages": 40, "repeat": 1, "wall_s": 190.0, "noop_median_s": {"repro": 4.5, "status": 3.25},
        "noop_repeat": 5, "runs": [{"lock_unchanged": True}], "measured_at": "T",
        "machine": {"cpu": "AMD EPYC", "cpus": 2, "load_avg_at_start": [0.3, 0, 0]}}))  # fmt: skip
    block = summary.render(root)["data-half"]
    assert "| `dvc repro --force tokenize` (40 data hops) | 190.0 s | 4.75 s |" in block
    for cmd, secs in (("repro", "4.50"), ("status", "3.25")):
        assert f"| `dvc {cmd}`, whole DAG, nothing to do | {secs} s | |" in block
    assert "no-op: median of 5" in block
    assert "byte-identical after every run: True" in block
    assert "2 CPUs (AMD EPYC), load average 0.3" in block  # timings name their machine


def test_timings_of_named_models_replace_only_theirs(tmp_path):
    """``--timings MODEL``: that model's run is recorded, every other keeps the run (and the
    commit) that timed it."""
    root = tmp_path / "project"
    (root / "reports" / "timings").mkdir(parents=True)
    (root / "benchmarks" / "results").mkdir(parents=True)
    results = root / "benchmarks" / "results" / "main_job.json"
    was = {"cpu": "another CPU", "cpus": 2}
    models = {"m1": {"wall_seconds": 1.0}, "m2": {"wall_seconds": 2.0}}
    old = {"commit": "a" * 40, "machine": was, "models": models}
    results.write_text(json.dumps(old))
    for name, wall in (("m1", 10.0), ("m2", 20.0)):  # m1's run shared the CPU: not recorded
        (root / "reports" / "timings" / f"{name}.json").write_text(
            json.dumps({"wall_seconds": wall})
        )

    def timings(*models: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(SCRIPT), "--root", str(root), "--timings", *models]
        return subprocess.run(cmd, capture_output=True, text=True)

    assert timings("m2").returncode == 0
    models = json.loads(results.read_text())["models"]
    assert models["m1"] == {"wall_seconds": 1.0, "commit": "a" * 40, "machine": was}
    assert models["m2"]["wall_seconds"] == 20.0 and models["m2"]["commit"] != "a" * 40
    assert models["m2"]["machine"]["cpu"] != "another CPU"  # each run names its own machine
    bad = timings("m3")
    assert bad.returncode != 0 and "m3" in bad.stderr
    assert timings().returncode == 0  # no names: every model of the last run
    recorded = json.loads(results.read_text())
    assert recorded["machine"]["cpus"]  # the machine that made them
    recorded["machine"]["cpu"] = "another CPU"
    results.write_text(json.dumps(recorded))
    assert "was made on another CPU, this one on" in timings().stderr  # a record across machines
    assert {m: e["wall_seconds"] for m, e in json.loads(results.read_text())["models"].items()} == {
        "m1": 10.0,
        "m2": 20.0,
    }


def test_scale_and_memory_blocks_from_the_committed_results(summary, tmp_path):
    """Both tables come from one scale_es_en.json: the committed one, copied to a fake root."""
    root = _fake_root(tmp_path)
    assert summary.render(root)["scale"].startswith("_Not measured yet")
    shutil.copy(ROOT / "benchmarks/results/scale_es_en.json", root / "benchmarks/results")
    blocks = summary.render(root)
    assert "| fetch | 10,000,000 | 32.6 | 306,843 | 469 MiB | 476 MiB | 186 s |" in blocks["scale"]
    assert "the five hops took 687 s (11.5 min), peak RSS 952 MiB" in blocks["scale"]
    assert "| clean | 356 MiB | 505 MiB | 17 B | 1.3 GiB |" in blocks["memory"]
    assert "n/m" not in blocks["memory"]
    assert "/tmp/" not in blocks["scale"] + blocks["memory"]


def test_a_hops_peak_rss_is_its_own_not_its_parents():
    """A small hop launched by a big benchmark reads small: its own VmHWM, where wait4's
    ru_maxrss would start it at the parent's size."""
    scale = load_script(ROOT / "benchmarks/scale_es_en.py")
    ballast = bytearray(300 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # resident, not just reserved
    grow = (
        "b = bytearray(40 << 20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); input()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", grow], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline()  # allocated
        peak = scale.tree_hwm(child.pid)
    finally:
        child.communicate("\n")
    assert 40 << 20 <= peak < 200 << 20 < len(ballast)  # its own 40 MiB, not our 300


def test_committed_results_name_no_absolute_path():
    """A committed result reads the same on any machine: no path of the machine that made it."""

    def strings(x):
        if isinstance(x, dict):
            x = list(x.values())
        if isinstance(x, list):
            return [s for v in x for s in strings(v)]
        return [x] if isinstance(x, str) else []

    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        found = [s for s in strings(json.loads(path.read_text())) if re.search(r"(^|\s)/\w+/", s)]
        found = [s for s in found if not s.startswith("/usr/bin/time")]  # a tool, not a path
        assert not found, f"{path.name}: {found[:3]}"


def test_seed_spread_says_whether_seed_zero_is_still_the_committed_run(summary, tmp_path):
    root = _fake_root(tmp_path)  # metrics/mnist_cnn.json: validation 0.993, test 0.9912
    run = {"seed": 0, "validation.accuracy": 0.993, "test.accuracy": 0.9912}
    other = {"seed": 1, "validation.accuracy": 0.991, "test.accuracy": 0.990}
    row = {"model": "mnist_cnn", "metric": "accuracy", "runs": [run, other],
           "spreads": {"validation.accuracy": 0.002, "test.accuracy": 0.0012}}  # fmt: skip
    path = root / "benchmarks" / "results" / "seed_spread.json"
    path.write_text(json.dumps({"measured_at": "t", "rows": [row]}))
    assert (
        "the seed-0 row is the committed reference run's result"
        in (summary.render(root)["seed-spread"])
    )
    run["validation.accuracy"] = 0.995  # the reference run moved since
    path.write_text(json.dumps({"measured_at": "t", "rows": [row]}))
    block = summary.render(root)["seed-spread"]
    assert "was measured before the committed reference run, which scores" in block
    assert "validation 0.9930 / test 0.9912" in block


def test_ddp_block_puts_the_process_counts_side_by_side(summary, tmp_path):
    root = _fake_root(tmp_path)
    one = {
        "epoch_seconds": [100.0],
        "tokens_per_s": 10000,
        "val_loss": 5.3,
        "val_perplexity": 200.3,
    }
    two = {
        "epoch_seconds": [125.0],
        "tokens_per_s": 8000,
        "val_loss": 5.31,
        "val_perplexity": 202.3,
    }
    runs = {"1": one, "2": two}
    doc = {"model": "books_lm", "config": {"layers": 1, "hidden": 256, "cell": "lstm",
           "batch_size": 64, "epochs": 1}, "train_tokens_per_epoch": 1000000, "runs": runs,
           "date": "t", "machine": {"cpus": 2, "load_avg_at_start": [0.5]}}  # fmt: skip
    (root / "benchmarks" / "results" / "ddp_lm.json").write_text(json.dumps(doc))
    block = summary.render(root)["ddp-lm"]
    assert "| 2 | 125.0 | 8,000 | 5.3100 | 202.3 |" in block
    assert "2 processes / 1: 0.80× the tokens/s" in block


def test_omp_wait_block_sets_each_setting_against_rnnflows(summary, tmp_path):
    root = _fake_root(tmp_path)
    settings = {
        "sleep at once": (110.0, 140.0),
        "spin 10,000 turns (rnnflow's default)": (80.0, 233.0),
    }
    runs = [
        {"setting": name, "busy_neighbour": busy, "ms_per_step": ms[busy], "loss": 4.9}
        for busy in (False, True)
        for name, ms in settings.items()
    ]
    doc = {"model": "es_en_translator", "config": {"layers": 1, "hidden": 256, "cell": "lstm",
           "batch_size": 64}, "steps": 60, "runs": runs, "date": "t",
           "machine": {"cpus": 2, "load_avg_at_start": [0.5]}}  # fmt: skip
    (root / "benchmarks" / "results" / "omp_wait.json").write_text(json.dumps(doc))
    block = summary.render(root)["omp-wait"]
    assert "| sleep at once | 110.0 (1.38×) | 140.0 (0.60×) |" in block
    assert "| spin 10,000 turns (rnnflow's default) | 80.0 (1.00×) | 233.0 (1.00×) |" in block
    assert "the same in every run: True" in block
    runs[0]["loss"] = 5.0  # a setting that changed the arithmetic is named, not hidden
    (root / "benchmarks" / "results" / "omp_wait.json").write_text(json.dumps(doc))
    assert "the same in every run: False" in summary.render(root)["omp-wait"]


def test_rerun_pairs_only_models_retrained_from_the_reference_inputs(summary, tmp_path):
    """``--rerun`` compares a model with the committed record only when this checkout
    retrained it from the same deps and params; it says whether the weights came out
    byte-identical and shows both runs' metrics with the change."""
    root = tmp_path / "project"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "metrics").mkdir()

    def lock(weights: dict[str, str], lr: float = 0.1) -> str:
        stages = {
            f"train@{m}": {
                "deps": [{"path": "data/05_tokens/mnist", "md5": "d1"}],
                "params": {"params.yaml": {f"train.models.{m}": {"lr": lr}}},
                "outs": [{"path": f"models/{m}", "md5": md5}],
            }
            for m, md5 in weights.items()
        }
        return json.dumps({"schema": "2.0", "stages": stages})

    def metrics(m: str, accuracy: float) -> None:
        doc = {"test": {"accuracy": accuracy}, "validation": {"accuracy": accuracy}}
        (root / "metrics" / f"{m}.json").write_text(json.dumps(doc))

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    cmd = [sys.executable, str(SCRIPT), "--root", str(root), "--rerun"]
    nothing = subprocess.run(cmd, capture_output=True, text=True)  # before any run: said in a line
    assert nothing.returncode != 0 and "dvc.lock: run the main job" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    (root / "dvc.lock").write_text(
        lock({"mnist_logreg": "w1", "mnist_mlp": "w2", "mnist_cnn": "w3", "mnist_lstm": "w4"})
    )
    for m in ("mnist_logreg", "mnist_mlp", "mnist_cnn", "mnist_lstm"):
        metrics(m, 0.9)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")  # the other blocks read it
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "record")
    # the rerun: mnist_logreg reproduced, mnist_mlp to other weights, mnist_cnn from other
    # params; mnist_lstm was pulled, not trained here (no timings)
    doc = json.loads(lock({"mnist_logreg": "w1", "mnist_mlp": "w2b", "mnist_lstm": "w4"}))
    doc["stages"] |= json.loads(lock({"mnist_cnn": "w3b"}, lr=0.2))["stages"]
    (root / "dvc.lock").write_text(json.dumps(doc))
    metrics("mnist_mlp", 0.91)
    metrics("mnist_cnn", 0.5)
    for m in ("mnist_logreg", "mnist_mlp", "mnist_cnn"):
        (root / "reports" / "timings").mkdir(parents=True, exist_ok=True)
        (root / "reports" / "timings" / f"{m}.json").write_text("{}")

    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    models = json.loads((root / "benchmarks" / "results" / "rerun.json").read_text())["models"]
    assert sorted(models) == ["mnist_logreg", "mnist_mlp"]
    assert models["mnist_logreg"]["identical"] and not models["mnist_mlp"]["identical"]
    assert models["mnist_mlp"]["reference"]["test"]["accuracy"] == 0.9
    assert models["mnist_mlp"]["rerun"]["test"]["accuracy"] == 0.91
    block = summary.render(root)["rerun"]
    assert "| mnist_mlp | accuracy | 0.9 → 0.91 (+0.01) | 0.9 → 0.91 (+0.01) | no |" in block
    assert "| mnist_logreg | accuracy | 0.9 → 0.9 (same) | 0.9 → 0.9 (same) | yes |" in block
