#!/usr/bin/env bash
# The GPU checks of issue #10 in one short run, on a CUDA machine with this checkout:
#
#     OUT=/some/dir bash benchmarks/gpu_end_to_end.sh [--skip-repro]
#
# 1. `make repro PROFILE=gpu` (the whole DAG as a DVC experiment on the GPU sizes of
#    profiles/gpu.yaml; sources as params.yaml lists them: published downloads with the
#    trust-on-first-use lock, or the mirror in $RNNFLOW_MIRROR), every output line
#    timestamped, then each stage's wall time from "Running stage" to the next stage
#    (stage_times.json) and the models' train metrics (wall_seconds, tokens/s where logged);
# 2. benchmarks/gpu_lm.py: the 2x650 LM at batch 64..1024, fp32/bf16, fused Adam: tokens/s,
#    FLOPs/token and the measured bf16 peak printed side by side, perplexity next to speed;
# 3. benchmarks/train_throughput.py --sizes gpu: LM, translator (adaptive softmax as trained)
#    and chatbot steps;
# 4. benchmarks/summary.py --write: the GPU tables of BENCHMARKS.md from the JSON just written.
#
# Needs the project installed (`make setup`, or a venv carried to the machine) and a GPU.
# Everything lands in $OUT (default benchmarks/results/gpu_run) and benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_run}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
"$PY" - <<'PY'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_end_to_end.sh: no CUDA device visible to torch; this script is for a GPU machine")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
DEV=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")

if [ "${1:-}" != "--skip-repro" ]; then
  # Timestamp every line (seconds since the epoch), so each stage's wall time can be read back.
  make repro PROFILE=gpu 2>&1 | while IFS= read -r line; do
    printf '%s %s\n' "$(date +%s.%N)" "$line"; done | tee "$OUT/repro.log"
  "$PY" - "$OUT" <<'PY'
import json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
events = []
for line in (out / "repro.log").read_text().splitlines():
    stamp, _, text = line.partition(" ")
    m = re.search(r"Running stage '([^']+)'", text)
    if m:
        events.append((m.group(1), float(stamp)))
    last = float(stamp)
times = {name: round((events[i + 1][1] if i + 1 < len(events) else last) - t, 2)
         for i, (name, t) in enumerate(events)}
(out / "stage_times.json").write_text(json.dumps(times, indent=2) + "\n")
for name, secs in times.items():
    print(f"{name:32s} {secs:9.1f} s")
print(f"{'whole DAG':32s} {sum(times.values()):9.1f} s")
PY
  cp metrics/*_train.json "$OUT/" 2>/dev/null || true
fi

"$PY" benchmarks/gpu_lm.py --out "benchmarks/results/gpu_lm_${DEV}.json" | tee "$OUT/gpu_lm.txt"
"$PY" benchmarks/train_throughput.py --device cuda --sizes gpu | tee "$OUT/train_throughput.txt"
"$PY" benchmarks/summary.py --write
echo "done: $OUT, benchmarks/results/, BENCHMARKS.md"
