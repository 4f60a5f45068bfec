#!/usr/bin/env bash
# The static gates CI runs before the tests: ruff (lint + format), mypy on the libraries, the import graph.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ -f .venv/bin/mypy ] || .venv/bin/python -c "import mypy" 2>/dev/null; then
  .venv/bin/python -m mypy
else
  echo "[lint] mypy is not installed: pip install -e '.[dev]'" >&2
  exit 1
fi
.venv/bin/python scripts/check_imports.py
