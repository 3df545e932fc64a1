#!/usr/bin/env bash
# The main job's train and evaluate stages, each exactly as dvc.yaml's cmd runs it, text models
# first (the GPU's work); "<epoch seconds> BEGIN|END <stage> [rc]" around each. Logs: logs/.
mkdir -p logs
for m in books_lm es_en_translator twitter_chatbot mnist_cnn mnist_lstm parity_lstm counting_rnn \
         addition_lstm timeseries_rnn mnist_mlp mnist_logreg; do
  for s in train evaluate; do
    echo "$(date +%s.%N) BEGIN $s@$m"
    python3 -m "pipelines.flows.$s" "$m" > "logs/$s@$m.log" 2>&1
    echo "$(date +%s.%N) END $s@$m $?"
  done
done
