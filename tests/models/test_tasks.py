"""The task registry (``pipelines/tasks.py``): every corpus task is one registered object, a
new task is one file in its kind's package, nothing outside the task code branches on a task
name, and the tensor tasks write sample predictions for the report."""

from __future__ import annotations

import ast
import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipelines import tasks
from pipelines.config import Layout, model_config
from pipelines.tensor import write_corpus
from rnnflow.env import PROJECT_ROOT as ROOT
from tests import synthetic

TASK_NAMES = ("classify", "tag", "regress", "lm", "translate", "dialogue")


def test_registry_lists_the_six_tasks():
    assert tasks.names() == sorted(TASK_NAMES)
    for name in TASK_NAMES:
        t = tasks.get(name)
        assert t.name == name and isinstance(t.headline, str) and t.headline
        assert isinstance(t.higher_is_better, bool)
        assert isinstance(t.report_extras, tuple) and t.headline not in t.report_extras
    tr = tasks.get("translate")
    assert (tr.headline, tr.monitor) == ("bleu", "bleu")  # the epoch kept: validation BLEU
    assert [tasks.get(n).higher_is_better for n in ("classify", "regress", "lm")] == [
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="unknown task"):
        tasks.get("nope")


def test_every_report_extra_belongs_to_one_task():
    from collections import Counter

    counts = Counter(k for n in TASK_NAMES for k in tasks.get(n).report_extras)
    assert set(counts) == {
        "parity_accuracy",
        "sequence_accuracy",
        "baseline_rmse",
        "unk_rate",
        "ngram_perplexity",
        "ngram_replies_perplexity",
        "cache_perplexity",
        "ngram_cache_perplexity",
        "distinct_2",
        "distinct_2_greedy",
        "repeats_greedy",
        "copied",
        "chrf",
        "bleu_greedy",
        "tatoeba.bleu",
        "opensubtitles.bleu",
        "outputs_with_copied_source_words",
    }
    # the Kneser-Ney trigram is the count baseline of both the LM and the chatbot, and both
    # print their <unk> rate beside their perplexity
    assert counts.pop("ngram_perplexity") == 2 and counts.pop("unk_rate") == 2
    assert max(counts.values()) == 1


NEW_TASK = '''
"""A new task in one file: regression scored by mean absolute error."""
import torch
import torch.nn.functional as F

from pipelines.tasks import register
from pipelines.tensor.regress import Regress


@register("regress_mae")
class RegressMAE(Regress):
    headline = "mae"
    report_extras = ()

    def loss(self, out, y):
        return F.l1_loss(out.float(), y)

    def scores(self, spec, out, y, x, res):
        super().scores(spec, out, y, x, res)
        res["mae"] = float((out - y).abs().mean()) * float(spec.get("y_std") or 1.0)
'''


@pytest.fixture
def new_task_file(tmp_path):
    """``regress_mae.py`` in a temporary directory added to the ``pipelines.tensor`` package
    path (as if dropped into ``pipelines/tensor/``; the shared checkout is not touched)."""
    from pipelines import tensor

    extra = tmp_path / "more_tasks"
    extra.mkdir()
    path = extra / "regress_mae.py"
    path.write_text(NEW_TASK)
    tensor.__path__.append(str(extra))
    importlib.invalidate_caches()
    try:
        yield path
    finally:
        tensor.__path__.remove(str(extra))
        tasks._TASKS.pop("regress_mae", None)
        sys.modules.pop("pipelines.tensor.regress_mae", None)


@pytest.mark.slow
def test_a_new_task_is_one_file(new_task_file, tmp_path):
    """Dropping one module into its kind's package (pipelines/tensor/) is enough for train and
    evaluate."""
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.flows.evaluate import evaluate
    from pipelines.flows.train import train

    assert "regress_mae" in tasks.names()
    assert tasks.get("regress_mae").headline == "mae"
    spec, splits = synthetic.timeseries(n=300)
    spec["task"] = "regress_mae"
    write_corpus(tmp_path / "data/05_tokens/series", spec, splits)
    (tmp_path / "params.yaml").write_text(
        textwrap.dedent("""\
        train:
          device: cpu
          threads: 1
          models:
            m: {corpus: series, family: rnn_regressor, cell: gru, hidden: 8, epochs: 2,
                batch_size: 32, lr: 0.01, seed: 0}
        evaluate:
          batch_size: 256
        """)
    )
    # the family declares the tasks it handles: the new task's name is added there, not in a flow
    from pipelines.models import families

    fam = families()["rnn_regressor"]
    object.__setattr__(fam, "tasks", (*fam.tasks, "regress_mae"))
    try:
        with prefect_test_harness(server_startup_timeout=120):
            trained = train("m", root=str(tmp_path))
            evaluated = evaluate("m", root=str(tmp_path))
    finally:
        object.__setattr__(fam, "tasks", tuple(t for t in fam.tasks if t != "regress_mae"))
    assert trained["epochs"] == 2 and "val_mae" in trained
    curves = tmp_path / "dvclive/m/plots/metrics"
    assert sorted(p.stem for p in curves.glob("*.tsv")) == [
        "train_loss",
        "val_loss",
        "val_mae",
    ]
    assert evaluated["test"]["mae"] > 0 and "rmse" in evaluated["test"]


# --- nothing outside the task code branches on a task name ------------------------------


def task_name_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Where a module compares against, lists or keys a dict by a task-name literal.

    Allowed: ``tasks=(...)`` on a model family (which tasks it supports) and the values of a
    spec dict (``{"task": "classify", ...}``: data, not a branch)."""
    tree = ast.parse(path.read_text(), str(path))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "tasks":
            allowed.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.arguments):
            args = node.posonlyargs + node.args
            for arg, default in zip(args[len(args) - len(node.defaults) :], node.defaults):
                if arg.arg == "tasks":
                    allowed.update(id(n) for n in ast.walk(default))
    found = []

    def is_name(n: ast.AST) -> bool:
        return isinstance(n, ast.Constant) and n.value in TASK_NAMES and id(n) not in allowed

    for node in ast.walk(tree):
        hits: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            hits = [n for n in (node.left, *node.comparators) if is_name(n)]
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            hits = [n for n in node.elts if is_name(n)]
        elif isinstance(node, ast.Dict):
            hits = [k for k in node.keys if k is not None and is_name(k)]
        elif isinstance(node, ast.MatchValue):
            hits = [node.value] if is_name(node.value) else []
        found += [f"{path.relative_to(root)}:{h.lineno}: {h.value!r}" for h in hits]
    return found


def test_no_task_name_branches_outside_the_task_code():
    """The registry (pipelines/tasks.py) and the kind packages (pipelines/tensor/,
    pipelines/text/) hold the tasks; nothing else names one."""
    offenders = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if path.relative_to(ROOT / "pipelines").parts[0] in ("tasks.py", "tensor", "text"):
            continue
        offenders += task_name_uses(path)
        if "TEXT_TASKS" in path.read_text():
            offenders.append(f"{path.relative_to(ROOT)}: TEXT_TASKS")
    assert not offenders, "task names outside the task code:\n" + "\n".join(offenders)


def test_the_ast_check_sees_task_name_branches(tmp_path):
    """The check finds a tuple of task names, a dict keyed by one and comparisons with one;
    a spec value and a family's ``tasks`` pass."""
    old = tmp_path / "old.py"
    old.write_text(
        textwrap.dedent("""
        TEXT_TASKS = ("lm", "translate", "dialogue")
        SIDES = {"lm": {"ids": "ids"}}
        def headline(task):
            if task == "classify":
                return 1
            return "rmse" if task == "regress" else "accuracy"
        spec = {"task": "tag"}  # a value: allowed
        def register(name, tasks=("classify",)):  # a family's tasks: allowed
            pass
        register("rnn", tasks=("tag",))
    """)
    )
    hits = [h.split(": ", 1)[1] for h in task_name_uses(old, tmp_path)]
    assert sorted(hits) == sorted(
        ["'lm'", "'translate'", "'dialogue'", "'lm'", "'classify'", "'regress'"]
    )


def test_no_import_cycle_between_the_data_modules():
    """pipelines.data imports neither the tasks nor pipelines.text.data, and pipelines.text.data
    neither the tasks nor pipelines.data (function-local imports included)."""
    forbidden = {
        "pipelines/data.py": ("pipelines.tasks", "pipelines.text.data"),
        "pipelines/text/data.py": ("pipelines.tasks", "pipelines.data"),
    }
    for rel, bad in forbidden.items():
        tree = ast.parse((ROOT / rel).read_text())
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module:
                mods |= {n.module, *(f"{n.module}.{a.name}" for a in n.names)}
        assert not [m for m in mods if m in bad or m.startswith(tuple(f"{b}." for b in bad))], rel


# --- sample rows of the tensor tasks -----------------------------------------------------


@pytest.mark.parametrize(
    "kind,task", [("images", "classify"), ("addition", "tag"), ("timeseries", "regress")]
)
def test_tensor_tasks_write_sample_predictions(tmp_path, kind, task):
    from pipelines.flows.evaluate import load_trained
    from pipelines.flows.train import save_outputs
    from pipelines.training import fit

    d = synthetic.write(tmp_path / kind, kind, n=300)
    family = {"classify": "cnn", "tag": "rnn_tagger", "regress": "rnn_regressor"}[task]
    size = {} if family == "cnn" else {"hidden": 8}  # the example's CNN has a fixed size
    cfg = model_config(corpus=kind, family=family, epochs=1, batch_size=32, lr=0.01, **size)
    corpus = tasks.load_corpus(d)
    layout = Layout(tmp_path / "root")
    save_outputs(layout, "m", cfg, corpus, fit(cfg, corpus, progress=False))
    model, _, spec = load_trained(layout.model("m"))
    t = tasks.for_spec(spec)
    state = torch.get_rng_state()
    first = t.evaluate(layout.model("m"), model, spec, d, 64, "cpu", False)
    assert torch.equal(torch.get_rng_state(), state)  # no random numbers drawn
    again = t.evaluate(layout.model("m"), model, spec, d, 64, "cpu", False)
    assert json.dumps(first.samples) == json.dumps(again.samples)  # deterministic
    assert [r["index"] for r in first.samples] == list(range(12))
    metrics, pred, actual = t.score(model, d, "test", 64, torch.device("cpu"))
    assert first.metrics["test"] == metrics
    for i, row in enumerate(first.samples):
        assert row["predicted"] == pytest.approx(pred[i].tolist())
    if task == "classify":
        assert len(first.samples[0]["pixels"]) == 8 and len(first.samples[0]["pixels"][0]) == 8
        import base64

        assert base64.b64decode(first.samples[0]["png"]).startswith(b"\x89PNG")
        assert [r["actual"] for r in first.samples] == actual[:12].tolist()
    else:
        assert "png" not in first.samples[0]
    if task == "regress":  # actual and predicted in the data's own units
        mean = spec["y_mean"]
        assert abs(first.samples[0]["actual"] - mean) < 5 * spec["y_std"]
