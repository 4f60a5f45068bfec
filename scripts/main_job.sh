#!/usr/bin/env bash
# The main job on the embedded default: set up, then score Fashion-MNIST (EL2N, 3 seeds), publish v1 to the
# local store, reload with plain load_dataset, prune 50% (hardest / random), train on each, print a table.
# Extra arguments go to `datadiet demo` (see `datadiet demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/datadiet demo "$@"
