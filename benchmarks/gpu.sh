#!/usr/bin/env bash
# The GPU benchmarks, on a CUDA machine with rnnflow installed (`make setup`) and the data half
# run (data/05_tokens: `make repro`, or `dvc pull`). From the repository root:
#
#     bash benchmarks/gpu.sh                 # TIMEOUT=3600 bash benchmarks/gpu.sh: stages cut at 1 h
#
# 1. benchmarks/gpu_lm.py: the GPU profile's 2x650 LM at batch 64..1024 x fp32/bf16 x Adam/fused,
#    tokens/s against the bf16 roofline and held-out perplexity
#    -> benchmarks/results/gpu_lm_<device>.json;
# 2. every train and evaluate stage of the main job (params.yaml as committed; `train.device:
#    auto` picks the GPU), each as dvc.yaml's cmd runs it, under one Prefect server, text models
#    first, in a throw-away copy of this checkout (its models/ and metrics/ stay untouched):
#    wall time and exit code of each -> benchmarks/results/gpu_stages_<device>.json;
# 3. benchmarks/summary.py --write: the GPU tables of BENCHMARKS.md.
# Logs and the copy: $OUT (default: a new temporary directory).
set -euo pipefail

if [ "${1:-}" = --stages ]; then  # run by the branch below: in the copy, under one Prefect server
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" || :

"$PY" benchmarks/gpu_lm.py --out "$RESULTS/gpu_lm_$DEV.json" | tee "$OUT/gpu_lm.txt"

# The copy: tracked and untracked files and the tokens, without .dvc/ (outside a DVC project
# DVCLive only writes its files).
WORK=$OUT/checkout
mkdir -p "$WORK/data" "$WORK/logs"
git ls-files -z -co --exclude-standard | grep -zv '^\.dvc/' |
  while IFS= read -r -d '' f; do [ ! -f "$f" ] || printf '%s\0' "$f"; done |
  xargs -0 cp --parents -t "$WORK"
cp -r data/05_tokens "$WORK/data/"
(
  cd "$WORK"
  export PYTHONPATH=$WORK PREFECT_HOME=$WORK/.prefect
  timeout "${TIMEOUT:-0}" "$PY" -m pipelines.ops.prefect_session -- bash "$WORK/benchmarks/gpu.sh" \
    --stages > "$OUT/stages.log" 2>&1 || echo "stages: exit $? (see $OUT/stages.log)"
)
"$PY" - "$OUT/stages.log" "$RESULTS/gpu_stages_$DEV.json" <<'PY'
import json, sys, torch
events = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 3 and p[1] in ("BEGIN", "END"):
        events.setdefault(p[2], {})[p[1]] = p
done = {k: {"seconds": round(float(v["END"][0]) - float(v["BEGIN"][0]), 2), "rc": int(v["END"][3])}
        for k, v in events.items() if "END" in v}
doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "stages": done,
       "unfinished": [k for k, v in events.items() if "END" not in v]}
open(sys.argv[2], "w").write(json.dumps(doc, indent=1) + "\n")
for k, v in done.items():
    print(f"{k:34s} {v['seconds']:8.1f} s  rc {v['rc']}")
print(f"{'all':34s} {sum(v['seconds'] for v in done.values()):8.1f} s; cut short: {doc['unfinished']}")
PY
"$PY" benchmarks/summary.py --write
echo "done: benchmarks/results/gpu_*_$DEV.json, BENCHMARKS.md; logs in $OUT"
