#!/usr/bin/env bash
# What the project runs on a lent GPU machine (see README "GPU"): the GPU GraNd check, then the shipped
# Fashion-MNIST score datasets (cnn and mlp, 5 seeds, EL2N/GraNd/forgetting at epochs 0,1,2,10), archived to $OUT.
# Expects wheels for datasets/dill/multiprocess in .whl/ and the Fashion-MNIST IDX files in .devdata/.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DATADIET_FASHION_MNIST_DIR=$PWD/.devdata DATADIET_HOME=/tmp/dd
nvidia-smi -L
timeout 120 python3 benchmarks/gpu_check.py 2>&1 | tee "$OUT/gpu_check.txt"
for model in cnn mlp; do
  start=$(date +%s)
  timeout 240 python3 -m datadiet_hub.scoring --dataset fashion_mnist --model "$model" --seeds 0,1,2,3,4 --at 0,1,2,10 \
    --scores el2n,grand,forgetting --output-dir "/tmp/runs/fashion-mnist-$model" --no-progress -v \
    > "$OUT/score_$model.log" 2>&1
  echo "$model scoring: rc=$? in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu_check.txt"
  tail -3 "$OUT/score_$model.log"
  tar czf "$OUT/fashion-mnist-$model.tgz" -C "/tmp/runs/fashion-mnist-$model" README.md data plots
done
ls -la "$OUT"
