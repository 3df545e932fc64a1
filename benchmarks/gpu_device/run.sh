#!/usr/bin/env bash
# Issue #10's GPU checks in one call on a lent, offline GPU machine (this workplace's `device`
# tool), from the repository root there:
#
#     bash benchmarks/gpu_device/run.sh        # carry: .gpu/bundle.tar.xz, data/05_tokens
#
# Built here first: `python benchmarks/gpu_device/bundle.py` (the dependencies the image lacks,
# checked) and the tokens (`dvc repro` / `dvc pull`). In $OUT (or ./gpu_out) it leaves:
# nvidia_smi.csv, gpu_lm_<dev>.json + gpu_lm.txt (the 2x650 LM: batch x precision, roofline,
# perplexity), train_throughput_cuda_gpu.json (LM, translator with its adaptive softmax,
# chatbot), gpu_stages.json (each train/evaluate stage of the main job on the GPU: wall time,
# exit code; the stages that did not fit the budget listed) and results.tgz (logs, metrics,
# dvclive, reports, the Prefect server log). `python benchmarks/gpu_device/collect.py DIR`
# then files them under benchmarks/results/ for summary.py.
#
# The data half (CPU work, measured on this machine) does not run there: its tokens travel.
# BUDGET (s, default 540) bounds the whole call; each part has its own timeout.
set -u
export PYTHONUNBUFFERED=1 PREFECT_UI_ENABLED=false
OUT=${OUT:-gpu_out}
BUDGET=${BUDGET:-540}
T0=$(date +%s)
since() { echo $(( $(date +%s) - T0 )); }
mkdir -p "$OUT" /tmp/rnnflow-site logs
tar -xJf .gpu/bundle.tar.xz -C /tmp/rnnflow-site
export PYTHONPATH=/tmp/rnnflow-site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1
python3 -c "import sys, torch, prefect, pandas, pyarrow, pipelines.flows.train, pipelines.flows.evaluate
print('python', sys.version.split()[0], '| torch', torch.__version__, '|', torch.cuda.get_device_name(0), '| prefect', prefect.__version__, '| pandas', pandas.__version__, '| pyarrow', pyarrow.__version__)"
DEV=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")
echo "setup done at $(since) s"
timeout 200 python3 benchmarks/gpu_lm.py --budget-s 170 --out "$OUT/gpu_lm_$DEV.json" > "$OUT/gpu_lm.txt" 2>&1
echo "gpu_lm.py rc $? at $(since) s"
timeout 70 python3 benchmarks/train_throughput.py --device cuda --sizes gpu \
  --out "$OUT/train_throughput_cuda_gpu.json" > logs/train_throughput.txt 2>&1
echo "train_throughput.py rc $? at $(since) s"
# No DVC run there (its tokens came along); outside a DVC project DVCLive writes files only.
[ -d .dvc ] && mv .dvc .dvc.off
LEFT=$(( BUDGET - 15 - $(since) ))
echo "stages: $LEFT s left"
timeout "$LEFT" python3 -m pipelines.ops.prefect_session -- bash benchmarks/gpu_device/stages.sh \
  > logs/stages.log 2>&1
echo "stages rc $? at $(since) s"
python3 - "$OUT" "$DEV" <<'PY'
import json, sys, subprocess, torch
out, dev = sys.argv[1], sys.argv[2]
ev = {}
for line in open("logs/stages.log"):
    p = line.split()
    if len(p) >= 3 and p[1] in ("BEGIN", "END"):
        ev.setdefault(p[2], {})[p[1]] = p
done = {k: {"seconds": round(float(v["END"][0]) - float(v["BEGIN"][0]), 2), "rc": int(v["END"][3])}
        for k, v in ev.items() if "END" in v}
doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
       "stages": done, "unfinished": [k for k, v in ev.items() if "END" not in v]}
json.dump(doc, open(f"{out}/gpu_stages_{dev}.json", "w"), indent=1)
for k, v in done.items():
    print(f"{k:34s} {v['seconds']:8.1f} s  rc {v['rc']}")
print(f"{'sum':34s} {sum(v['seconds'] for v in done.values()):8.1f} s; unfinished: {doc['unfinished']}")
PY
tar czf "$OUT/results.tgz" logs metrics dvclive reports .prefect/server.log 2>/dev/null
echo "total $(since) s"
