#!/usr/bin/env bash
# Set up a fresh machine for datadiet-hub: the Fashion-MNIST and fortunes Debian packages, a virtualenv in .venv, torch
# (the CPU wheel torch==2.13.0 when no NVIDIA GPU is present), and the project with its extras.
# Idempotent: a second run only checks. Sourced by main_job.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# Fashion-MNIST (the embedded default) and the fortunes by language (the real text set of the tests)
DEBS="dataset-fashion-mnist fortunes-de fortunes-es fortunes-it fortunes-min"
if ! dpkg -s $DEBS >/dev/null 2>&1; then
  echo "[setup] installing the Debian packages $DEBS"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $DEBS >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing torch (CUDA build)"
    .venv/bin/pip install -q torch
  else
    echo "[setup] no GPU: installing the CPU wheel torch==2.13.0"
    .venv/bin/pip install -q torch==2.13.0
  fi
fi

if ! .venv/bin/python -c "import datadiet_hub.scoring, datadiet_hub.downstream, accelerate, safetensors, matplotlib, pytest, hypothesis, datatrove" \
    >/dev/null 2>&1; then
  echo "[setup] installing datadiet-hub[torch,plot,dev]"
  .venv/bin/pip install -q -e '.[torch,plot,dev]'
fi
