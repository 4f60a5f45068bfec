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


def test_import_is_lazy():
    """``import datadiet_hub`` loads neither torch nor datasets, huggingface_hub or pyarrow (names resolve on use)."""
    code = (
        "import sys, datadiet_hub; heavy = [m for m in ('torch', 'datasets', 'huggingface_hub', 'pyarrow') "
        "if m in sys.modules]; assert not heavy, heavy; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_lazy_table_names_real_attributes():
    """Every name of the lazy table is defined by the module the table names, and ``__all__`` lists exactly them."""
    import importlib

    import datadiet_hub

    assert set(datadiet_hub.__all__) == {*datadiet_hub._SUBMOD_ATTRS, "__version__"}
    for name, module in datadiet_hub._SUBMOD_ATTRS.items():
        assert hasattr(importlib.import_module(f"datadiet_hub.{module}"), name), (name, module)
    assert "prune" in dir(datadiet_hub)


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import datadiet_hub

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        datadiet_hub.nope  # noqa: B018
