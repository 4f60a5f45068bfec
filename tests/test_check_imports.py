"""scripts/check_imports.py: finds cycles (also through function-level imports, not through TYPE_CHECKING ones),
upward imports and private names used by experiments on small trees made here, allows the one door, and passes on
this repository."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


check_imports = _load()


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for package in ("datadiet_hub", "datadiet_hub/scoring", "datadiet_hub/downstream", "experiments"):
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def problems(root: Path) -> tuple[int, str]:
    import io

    out = io.StringIO()
    return check_imports.check(root, out=out), out.getvalue()


def test_a_clean_tree_passes_and_prints_the_package_graph(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/a.py": "import json\nfrom . import b\n",
            "datadiet_hub/b.py": "",
            "datadiet_hub/scoring/run.py": "from datadiet_hub import a\nfrom .loops import x\n",
            "datadiet_hub/scoring/loops.py": "x = 1\n",
            "datadiet_hub/downstream/train.py": "from datadiet_hub.scoring.loops import x\n",
            "experiments/curve.py": "def f():\n    from datadiet_hub.downstream.train import x\n    import datadiet_hub.scoring.run\n",
        },
    )
    count, text = problems(root)
    assert count == 0, text
    assert "datadiet_hub.scoring -> datadiet_hub: 1" in text and "experiments -> datadiet_hub.downstream: 1" in text
    assert "OK: no cycle, no upward import" in text


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/__init__.py": "from .loading import load\n",
            "datadiet_hub/loading.py": "from .cards import card\ndef load():\n    pass\n",
            "datadiet_hub/cards.py": "def card():\n    import datadiet_hub\n",
        },
    )
    count, text = problems(root)
    assert count == 1
    assert "CYCLE between 3 modules" in text and "datadiet_hub.cards -> datadiet_hub (line 2)" in text


def test_imports_only_type_checkers_see_do_not_count(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/selection.py": "from . import strategies\n",
            "datadiet_hub/strategies.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .selection import Selection\n"
                "else:\n    import json\n"
            ),
        },
    )
    count, text = problems(root)
    assert count == 0, text
    # the same import at run time closes the cycle
    (root / "datadiet_hub/strategies.py").write_text("from .selection import Selection\n")
    count, text = problems(root)
    assert count == 1 and "CYCLE between 2 modules" in text


def test_an_upward_import_for_type_checkers_is_still_upward(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/strategies.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from datadiet_hub.scoring.run import run\n"
            ),
            "datadiet_hub/scoring/run.py": "",
        },
    )
    count, text = problems(root)
    assert count == 1, text
    assert "CYCLE" not in text and "UPWARD import: datadiet_hub/strategies.py:3" in text


def test_upward_imports_fail_except_through_the_door(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/cli.py": "def demo():\n    from datadiet_hub.downstream.demo import main\n",
            "datadiet_hub/_torch_verbs.py": (
                "import importlib\nVERBS = {'score': 'datadiet_hub.scoring.cli:main'}\n"
                "def resolve(verb):\n    return importlib.import_module(VERBS[verb].partition(':')[0])\n"
            ),
            "datadiet_hub/scoring/cli.py": "",
            "datadiet_hub/scoring/train.py": "from experiments import curve\n",
            "datadiet_hub/downstream/demo.py": "",
            "experiments/curve.py": "",
        },
    )
    count, text = problems(root)
    assert count == 2, text
    assert "UPWARD import: datadiet_hub/cli.py:2 (datadiet_hub.cli) imports datadiet_hub.downstream.demo" in text
    assert (
        "UPWARD import: datadiet_hub/scoring/train.py:1 (datadiet_hub.scoring.train) imports experiments.curve" in text
    )
    assert "_torch_verbs.py:" not in text and "datadiet_hub -> datadiet_hub.scoring: 1 (through the door" in text
    assert "datadiet_hub -> datadiet_hub.downstream: 1 (UPWARD: 1)" in text


def test_experiments_may_not_use_private_modules_or_names(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "datadiet_hub/scoring/metrics/__init__.py": "",
            "datadiet_hub/scoring/metrics/_oracles.py": "def _eval_mode():\n    pass\n",
            "datadiet_hub/scoring/metrics/reference.py": "def _eval_mode():\n    pass\ndef naive():\n    pass\n",
            "experiments/kernel.py": (
                "def f():\n    from datadiet_hub.scoring.metrics._oracles import naive\n"
                "    from datadiet_hub.scoring.metrics.reference import _eval_mode, naive\n"
            ),
            "experiments/ok.py": "from datadiet_hub.scoring.metrics.reference import naive\nfrom . import kernel\n",
        },
    )
    count, text = problems(root)
    assert count == 2, text
    assert "experiments/kernel.py:2 (experiments.kernel) uses datadiet_hub.scoring.metrics._oracles;" in text
    assert (
        "experiments/kernel.py:3 (experiments.kernel) uses datadiet_hub.scoring.metrics.reference._eval_mode" in text
    )


def test_this_repository_has_no_cycle_and_no_upward_import():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, cwd=ROOT)
    assert "Package graph" in result.stdout
    assert result.returncode == 0, result.stdout
