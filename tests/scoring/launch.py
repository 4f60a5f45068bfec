"""``python tests/scoring/launch.py ARGS`` / ``torchrun ... tests/scoring/launch.py ARGS``: the scoring CLI with the
test-only GraNd stand-in installed (see grand_standin.py), for subprocess and multi-process tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grand_standin

grand_standin.install()

from scoring.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
