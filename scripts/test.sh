#!/usr/bin/env bash
# Set up, then run the whole test suite (slow and multi-process tests included; live Hub tests only when
# HF_TOKEN and DATADIET_TEST_REPO are set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
