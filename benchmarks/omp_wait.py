"""How OpenMP threads wait at a barrier, side by side: one model's training steps with threads
that sleep at once, that spin rnnflow's turns first, and that spin libgomp's default, alone and
beside one busy process.

    python benchmarks/omp_wait.py                       # es_en_translator, 60 steps a run
    python benchmarks/omp_wait.py books_lm --steps 100

Each run is a fresh process (OpenMP reads its settings once, when torch loads) that trains
``train.models.<model>`` as params.yaml configures it on the real ``data/05_tokens/<corpus>``
batches, with torch's default threads. Milliseconds a step (forward, backward, Adam) after 10
warm-up steps, and the last step's loss (the wait changes time, not arithmetic).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import benchlib as B

from rnnflow.env import SPINCOUNT

#: the settings compared: name → the OpenMP variables of the run (everything else unset)
SETTINGS = {
    "sleep at once (OMP_WAIT_POLICY=PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
    f"spin {int(SPINCOUNT):,} turns (rnnflow's default)": {"GOMP_SPINCOUNT": SPINCOUNT},
    "spin 300,000 turns (libgomp's default)": {"GOMP_SPINCOUNT": "300000"},
}
WARM = 10


def steps(model: str, n: int) -> dict[str, float]:
    """``n`` timed training steps of ``model`` in this process: ms a step, the last loss."""
    import torch

    from pipelines import tasks
    from pipelines.config import Layout
    from pipelines.data import epoch_generator
    from pipelines.models import build_model

    cfg = B.model_cfg(model)
    corpus = tasks.load_corpus(Layout(B.ROOT).tokens(cfg.corpus))
    task = tasks.get(corpus.task)
    corpus = task.prepare(cfg, corpus)
    job = task.make_job(cfg, corpus, torch.device("cpu"))
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.family, cfg, corpus.spec)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    began, done = 0.0, 0
    for i, (loss, _, _) in enumerate(job.losses(net, 0, epoch_generator(cfg.seed, 0))):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i + 1 == WARM:
            began = time.perf_counter()
        done = i + 1 - WARM
        if done == n:
            break
    if done < n:
        raise SystemExit(f"{model}: an epoch has only {done + WARM} steps; ask for fewer")
    return {"ms_per_step": (time.perf_counter() - began) / n * 1000, "loss": float(loss)}


def run(model: str, n: int, variables: dict[str, str], busy: bool) -> dict[str, float]:
    """:func:`steps` in a fresh process with only ``variables`` of OpenMP's wait settings,
    beside a process spinning a Python loop when ``busy``."""
    wait = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    env = {k: v for k, v in B.env_with_mirror().items() if k not in wait}
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        cmd = [sys.executable, __file__, model, "--steps", str(n), "--child"]
        out = subprocess.run(cmd, env=env | variables, check=True, capture_output=True, text=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return json.loads(out.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__, __file__, "--json")
    p.add_argument("model", nargs="?", default="es_en_translator", help="a key of train.models")
    p.add_argument("--steps", type=int, default=60, help="timed steps a run")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(steps(args.model, args.steps)))
        return 0
    machine = B.machine()
    runs = []
    for busy in (False, True):
        for name, variables in SETTINGS.items():
            got = run(args.model, args.steps, variables, busy)
            runs.append({"setting": name, "env": variables, "busy_neighbour": busy, **got})
            where = "beside a busy process" if busy else "alone"
            print(f"{name}, {where}: {got['ms_per_step']:.1f} ms a step, loss {got['loss']!r}")
    machine["load_avg_at_end"] = B.load_avg()
    doc = {
        "benchmark": "omp_wait",
        **B.model_record(args.model),
        "steps": args.steps,
        "runs": runs,
        "date": B.now(),
        "machine": machine,
        "command": "python benchmarks/omp_wait.py " + " ".join(argv or sys.argv[1:]),
    }
    B.write(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
