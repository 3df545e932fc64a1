#!/usr/bin/env bash
# The main job's train and evaluate stages, each exactly as dvc.yaml's cmd runs it, text models
# first (the GPU's work); "<epoch seconds> BEGIN|END <stage> [rc]" around each. Logs: logs/.
mkdir -p logs
# train.models of params.yaml, the text models (family lm/seq2seq) first
MODELS=$(python3 -c "
from rnnflow.config import load_params
m = load_params('params.yaml')['train']['models']
print(' '.join(sorted(m, key=lambda k: m[k]['family'] not in ('lm', 'seq2seq'))))")
for m in $MODELS; do
  for s in train evaluate; do
    echo "$(date +%s.%N) BEGIN $s@$m"
    python3 -m "pipelines.flows.$s" "$m" > "logs/$s@$m.log" 2>&1
    echo "$(date +%s.%N) END $s@$m $?"
  done
done
