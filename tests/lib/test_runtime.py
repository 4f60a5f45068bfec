"""The runtime probe: one list of packages, versions from the installed metadata (torch never imported to probe
it), read by ``datadiet env`` and by the provenance a run records."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

from datadiet_hub import runtime
from datadiet_hub.provenance import EnvironmentInfo


def test_versions_are_the_installed_ones_and_none_when_absent():
    for name, distribution in runtime.PACKAGES.items():
        try:
            expected = md.version(distribution)
        except md.PackageNotFoundError:
            expected = None
        assert runtime.versions()[f"{name}_version"] == expected, name
    assert runtime.get_package_version("no-such-package-datadiet") is None


def test_probing_torch_does_not_import_it():
    code = "import sys; from datadiet_hub import runtime; v = runtime.get_torch_version(); print(v, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False" and out[0] == str(runtime.get_torch_version())


def test_environment_and_env_verb_read_the_probe(capsys):
    env = EnvironmentInfo.current(hardware="x")
    assert env.numpy_version == runtime.get_package_version("numpy") and env.hardware == "x"
    assert env.python_version == runtime.get_python_version()
    from datadiet_hub.cli import main

    assert main(["env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, distribution in runtime.PACKAGES.items():
        assert f"{distribution}: {runtime.get_package_version(name) or 'not installed'}" in lines
