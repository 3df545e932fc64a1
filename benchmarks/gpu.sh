#!/usr/bin/env bash
# The main job's training half with the `gpu` profile (profiles/gpu.yaml), on any CUDA machine
# with rnnflow installed (`make setup`) and the data half run (`make repro`, or `dvc pull`).
# From the repository root:
#
#     bash benchmarks/gpu.sh                 # TIMEOUT=3600 bash benchmarks/gpu.sh: cut at 1 h
#
# In a throw-away copy of this checkout (its params.yaml, models/ and metrics/ stay untouched):
# the profile is applied, the tokenize hops it changes rerun on its vocabularies, then every train
# and evaluate stage runs as dvc.yaml's cmd runs it, under one Prefect server, text models first.
# Per model it records wall time and exit code of each stage, the train stage's epoch times and
# the test metrics -> benchmarks/results/gpu_stages_<device>.json; then
# `benchmarks/summary.py --write` regenerates BENCHMARKS.md's GPU table.
# Logs and the copy: $OUT (default: a new temporary directory).
set -euo pipefail

if [ "${1:-}" = --stages ]; then  # run by the branch below: in the copy, under one Prefect server
  "$PY" -m rnnflow.cli profile gpu --root .  # the copy's params.yaml, never the checkout's
  for c in $("$PY" -c "
from rnnflow.config import load_params
print(*(load_params('profiles/gpu.yaml').get('tokenize') or {}))"); do
    "$PY" -m stages.tokenize "$c" > "logs/tokenize@$c.log" 2>&1
  done
  MODELS=$("$PY" -c "
from rnnflow.config import load_params
m = load_params('params.yaml')['train']['models']
print(' '.join(sorted(m, key=lambda k: m[k]['family'] not in ('lm', 'seq2seq'))))")
  for m in $MODELS; do
    for s in train evaluate; do
      echo "$(date +%s.%N) BEGIN $s@$m"
      rc=0; "$PY" -m "pipelines.flows.$s" "$m" > "logs/$s@$m.log" 2>&1 || rc=$?
      echo "$(date +%s.%N) END $s@$m $rc"
    done
  done
  exit 0
fi

cd "$(dirname "$0")/.."
PY=${PY:-$PWD/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PY
"$PY" -c "import sys, torch; torch.cuda.is_available() or sys.exit('gpu.sh: torch sees no GPU')"
[ -d data/05_tokens ] || { echo "gpu.sh: no data/05_tokens (make repro, or dvc pull)" >&2; exit 1; }
DEV=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")
RESULTS=$PWD/benchmarks/results
OUT=${OUT:-$(mktemp -d -t rnnflow-gpu-XXXXXX)}
mkdir -p "$OUT"

# The copy: tracked and untracked files and the sampled data, without .dvc/ (outside a DVC
# project DVCLive only writes its files).
WORK=$OUT/checkout
mkdir -p "$WORK/data" "$WORK/logs"
git ls-files -z -co --exclude-standard | grep -zv '^\.dvc/' |
  while IFS= read -r -d '' f; do [ ! -f "$f" ] || printf '%s\0' "$f"; done |
  xargs -0 cp --parents -t "$WORK"
cp -r data/04_sampled data/05_tokens "$WORK/data/"
(
  cd "$WORK"
  export PYTHONPATH=$WORK PREFECT_HOME=$WORK/.prefect
  timeout "${TIMEOUT:-0}" "$PY" -m pipelines.ops.prefect_session -- bash "$WORK/benchmarks/gpu.sh" \
    --stages > "$OUT/stages.log" 2>&1 || echo "stages: exit $? (see $OUT/stages.log)"
)
"$PY" - "$OUT/stages.log" "$WORK" "$RESULTS/gpu_stages_$DEV.json" <<'PY'
import json, pathlib, subprocess, sys, torch
log, work, out = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
events = {}
for line in open(log):
    p = line.split()
    if len(p) >= 3 and p[1] in ("BEGIN", "END"):
        events.setdefault(p[2], {})[p[1]] = p
done = {k: {"seconds": round(float(v["END"][0]) - float(v["BEGIN"][0]), 2), "rc": int(v["END"][3])}
        for k, v in events.items() if "END" in v}
def read(path):
    return json.loads(path.read_text()) if path.exists() else None
models = sorted({k.split("@", 1)[1] for k in done})
doc = {
    "device": torch.cuda.get_device_name(0), "torch": torch.__version__, "profile": "gpu",
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "stages": done, "unfinished": [k for k, v in events.items() if "END" not in v],
    "epoch_seconds": {m: (read(work / "reports/timings" / f"{m}.json") or {}).get("epoch_seconds") for m in models},
    "metrics": {m: read(work / "metrics" / f"{m}.json") for m in models},
}
open(out, "w").write(json.dumps(doc, indent=1) + "\n")
for k, v in done.items():
    print(f"{k:34s} {v['seconds']:8.1f} s  rc {v['rc']}")
print(f"{'all':34s} {sum(v['seconds'] for v in done.values()):8.1f} s; cut short: {doc['unfinished']}")
PY
"$PY" benchmarks/summary.py --write
echo "done: benchmarks/results/gpu_stages_$DEV.json, BENCHMARKS.md; logs in $OUT"
