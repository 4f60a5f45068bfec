"""``python -m datadiet_hub.scoring`` / ``accelerate launch -m datadiet_hub.scoring`` / ``torchrun -m datadiet_hub.scoring``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
