"""The library must stay light: importing it (and its CLI) never imports torch."""

import subprocess
import sys


def test_import_leaves_torch_unimported():
    code = (
        "import sys, datadiet_hub, datadiet_hub.cli, datadiet_hub.hub, datadiet_hub.compare; "
        "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_public_api():
    import datadiet_hub

    for name in ("load_scores", "keep", "prune", "select_indices", "LocalStore"):
        assert callable(getattr(datadiet_hub, name)), name
