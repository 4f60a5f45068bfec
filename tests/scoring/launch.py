"""``python tests/scoring/launch.py ARGS`` / ``torchrun ... tests/scoring/launch.py ARGS``: the scoring CLI, for
subprocess and multi-process tests (the real engine, real fast GraNd included; nothing is swapped)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from datadiet_hub.scoring.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
