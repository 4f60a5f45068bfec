#!/usr/bin/env bash
# The reproduction experiments on a lent GPU machine (same code as on CPU; downstream training uses the GPU when
# one is present). Expects wheels in .whl/, Fashion-MNIST IDX files in .devdata/, and the cnn-ep2/cnn-ep10 score
# configs in devcards_tmp/. Results (CSV) are copied to $OUT; finished rows are skipped when rerun anywhere.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DATADIET_FASHION_MNIST_DIR=$PWD/.devdata DATADIET_HOME=/tmp/dd
timeout "${NOISY_S:-150}" python3 -m experiments.noisy_labels --seeds 3 --score-epochs 2 --forgetting-epochs 5 \
  --train-epochs 5 --train-seeds 0,1 --workdir /tmp/noisy > "$OUT/noisy.log" 2>&1
echo "noisy rc=$?"; cp docs/results/noisy_labels_*.csv "$OUT/" 2>/dev/null
timeout "${CURVE_S:-240}" python3 -m experiments.pruning_curve --card devcards_tmp --epochs 5 --seeds 0,1 \
  > "$OUT/curve.log" 2>&1
echo "curve rc=$?"; cp docs/results/pruning_curve.csv "$OUT/" 2>/dev/null
tail -4 "$OUT/noisy.log" "$OUT/curve.log"
