"""The runtime probe: the versions of Python and of the packages datadiet-hub works with, and the code commit,
each probed once per process. ``datadiet env``, the provenance a scoring run records and the card all read them
from here, so the list of packages is written once (``PACKAGES``).

Versions come from the installed package metadata, never by importing a package (``import datadiet_hub`` stays
light, and probing torch does not load it); a package already imported reports its own ``__version__``.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path

from ._version import __version__

__all__ = [
    "PACKAGES",
    "code_commit",
    "get_library_version",
    "get_package_version",
    "get_python_version",
    "get_torch_version",
    "versions",
]

PACKAGES: dict[str, str] = {
    "datasets": "datasets",
    "huggingface_hub": "huggingface-hub",
    "pyarrow": "pyarrow",
    "numpy": "numpy",
    "torch": "torch",
    "accelerate": "accelerate",
    "safetensors": "safetensors",
    "matplotlib": "matplotlib",
}
"""The packages whose versions are probed: import name -> distribution name."""


def get_library_version() -> str:
    return __version__


def get_python_version() -> str:
    return platform.python_version()


@functools.cache
def _distribution_version(distribution: str) -> str | None:
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None


def get_package_version(name: str) -> str | None:
    """The version of package ``name`` (an import name of ``PACKAGES``, or any distribution name); None when it
    is not installed. A package already imported answers with its ``__version__``."""
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return str(module.__version__)
    return _distribution_version(PACKAGES.get(name, name))


def get_torch_version() -> str | None:
    return get_package_version("torch")


def versions() -> dict[str, str | None]:
    """``{"<name>_version": version or None}`` for every package of ``PACKAGES``."""
    return {f"{name}_version": get_package_version(name) for name in PACKAGES}


def code_commit(package_dir: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout ``package_dir`` (default: this library) runs from, or None: not a git
    checkout (an installed wheel), no git, or a package folder that is not at the top of the repository git finds
    (a venv inside another repo). Probed once per folder."""
    return _code_commit((package_dir or Path(__file__).resolve().parent).resolve())


@functools.cache
def _code_commit(folder: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != folder.parent:
        return None
    return lines[1] if len(lines[1]) == 40 else None
