"""The error hierarchy: every error is a ``DatadietError`` and the builtin a caller would catch, carries what it
is about as attributes, and the CLI reaches the torch packages only through ``_torch_verbs``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datadiet_hub import LocalStore, load_scores, select_indices
from datadiet_hub import errors as E
from datadiet_hub._torch_verbs import VERBS
from datadiet_hub.versions import validate_version

ROOT = Path(__file__).resolve().parents[2]

BUILTIN = {
    E.ScoresNotFoundError: FileNotFoundError,
    E.ConfigNotFoundError: FileNotFoundError,
    E.VersionNotFoundError: FileNotFoundError,
    E.ColumnNotFoundError: FileNotFoundError,
    E.SourceNotFoundError: FileNotFoundError,
    E.InputNotFoundError: FileNotFoundError,
    E.InvalidArgumentError: ValueError,
    E.InvalidTypeError: TypeError,
    E.InvalidNameError: ValueError,
    E.ScoreMismatchError: ValueError,
    E.ScoreTableError: ValueError,
    E.CardError: ValueError,
    E.UnsafeCardError: ValueError,
    E.UnsafeFileError: ValueError,
    E.ProvenanceError: ValueError,
    E.VersionExistsError: FileExistsError,
    E.OutputExistsError: FileExistsError,
    E.StoreError: OSError,
    E.WriteError: OSError,
    E.HubError: ConnectionError,
    E.HubUnreachableError: ConnectionError,
    E.MissingExtraError: ImportError,
}


@pytest.mark.parametrize("cls, builtin", BUILTIN.items())
def test_each_error_is_a_datadiet_error_and_its_builtin(cls, builtin):
    err = cls("message", path="p", repo_id="u/r", version="v1", config="c", column="el2n", value=3)
    assert isinstance(err, E.DatadietError) and isinstance(err, builtin)
    assert (err.path, err.repo_id, err.version, err.config, err.column, err.value) == (
        "p",
        "u/r",
        "v1",
        "c",
        "el2n",
        3,
    )
    assert str(err) == "message"


def test_every_error_class_in_the_module_is_covered():
    classes = {v for v in vars(E).values() if isinstance(v, type) and issubclass(v, E.DatadietError)}
    assert classes - {E.DatadietError} == set(BUILTIN)


def test_raised_errors_carry_their_subject(score_folder, tmp_path):
    with pytest.raises(E.InvalidNameError) as bad_version:
        validate_version("v 1")
    assert bad_version.value.value == "v 1"
    store = LocalStore(tmp_path / "store")
    store.publish(score_folder, "tiny", "v1")
    with pytest.raises(E.VersionNotFoundError) as no_version:
        load_scores("tiny", "cnn-ep2", "v9", store=store)
    assert no_version.value.version == "v9"
    with pytest.raises(E.ConfigNotFoundError) as no_config:
        load_scores(score_folder, "cnn-ep9")
    assert no_config.value.config == "cnn-ep9" and no_config.value.path == score_folder
    with pytest.raises(E.InvalidArgumentError, match=r"fraction=1.5 must be in \(0, 1\]") as bad_fraction:
        select_indices({"idx": np.arange(3), "el2n": np.ones(3)}, fraction=1.5)
    assert bad_fraction.value.value == 1.5
    with pytest.raises(E.ColumnNotFoundError) as no_column:
        select_indices({"idx": np.arange(3), "el2n": np.ones(3)}, column="grand", fraction=0.5)
    assert no_column.value.column == "grand"


def test_torch_verbs_are_one_table_of_importable_names():
    assert set(VERBS) == {"score", "demo"}
    assert all(":" in target for target in VERBS.values())


def test_missing_torch_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "from datadiet_hub.cli import main\n"
        f"sys.exit(main(['score', '--seeds', '0', '--at', '1', '--output-dir', {str(tmp_path / 'o')!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'datadiet-hub[torch]'" in proc.stderr and "Traceback" not in proc.stderr


def test_library_never_imports_the_torch_packages_outside_the_door():
    offenders = []
    for path in (ROOT / "datadiet_hub").glob("*.py"):
        if path.name == "_torch_verbs.py":
            continue
        text = path.read_text()
        if any(f"import {m}" in text or f"from {m}" in text for m in ("scoring", "downstream", "torch")):
            offenders.append(path.name)
    assert offenders == []


def test_a_missing_package_of_ours_is_not_blamed_on_torch():
    from datadiet_hub._torch_verbs import _missing_extra

    ours = _missing_extra("demo", ModuleNotFoundError("No module named 'downstream'", name="downstream"))
    assert ours is not None and "lacks" in str(ours) and "needs torch" not in str(ours)
    torch = _missing_extra("demo", ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert torch is not None and "pip install 'datadiet-hub[torch]'" in str(torch)
    assert _missing_extra("demo", ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None  # a real bug
