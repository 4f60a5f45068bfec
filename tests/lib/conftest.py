"""Fixtures for the Hub tests: the loopback Hub test double, a client runner, and small version folders.

Client code (huggingface_hub, datasets, datadiet_hub.hub) runs in a *subprocess* because HF_ENDPOINT, HF_HOME and
friends are read when those libraries are imported; a fresh process per call also gives each test a fresh cache.
The double itself runs in the pytest process, so tests can inspect its state and inject failures directly.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hub_double import HubDouble

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_DoubleTestToken_9c1e5b7a"  # recognisable, so tests can assert it never leaks
USER = "user"

_PRELUDE = """
import json, logging, os, sys, traceback
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import datasets
datasets.config.USE_PARQUET_EXPORT = False
ARGS = json.loads(os.environ["DD_ARGS"])
result = None
"""

_EPILOGUE = """
print("__RESULT__" + json.dumps(result, default=str))
"""


def _tiny_png() -> bytes:
    """A valid 1x1 grey PNG, so plots/ holds a real binary file without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def make_version_folder(
    path: Path,
    *,
    n: int = 50,
    configs: tuple[str, ...] = ("cnn-ep2", "mlp-ep2"),
    seed: int = 0,
    note: str = "v1",
    plots: bool = True,
) -> Path:
    """Write a small version folder in the shared layout (README.md + data/<config>/train-*.parquet + plots/).

    ``seed`` changes the scores, ``note`` lands in the provenance, so versions are distinguishable.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for c, config in enumerate(configs):
        per_seed = rng.random((n, 3), dtype=np.float32)
        table = pa.table(
            {
                "idx": pa.array(np.arange(n), pa.int64()),
                "example_id": pa.array([f"ex{i:05d}" for i in range(n)], pa.string()),
                "label": pa.array(np.arange(n) % 10, pa.int64()),
                "el2n": pa.array(per_seed.mean(1) + c, pa.float32()),
                "el2n_std": pa.array(per_seed.std(1), pa.float32()),
                "el2n_per_seed": pa.array(per_seed.tolist(), pa.list_(pa.float32())),
                "never_learned": pa.array(per_seed[:, 0] > 0.95, pa.bool_()),
            }
        )
        (path / "data" / config).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path / "data" / config / "train-00000-of-00001.parquet")
    configs_yaml = "".join(
        f"- config_name: {c}\n  data_files:\n  - split: train\n    path: data/{c}/train-*.parquet\n" for c in configs
    )
    (path / "README.md").write_text(
        "---\n"
        "license: mit\n"
        f"configs:\n{configs_yaml}"
        "datadiet:\n"
        "  source_dataset: fashion_mnist\n"
        "  model: cnn\n"
        "  seeds: [0, 1, 2]\n"
        "  epochs: 2\n"
        f"  note: {note}\n"
        "---\n\n# Scores\n\nTest fixture.\n",
        encoding="utf-8",
    )
    if plots:
        (path / "plots").mkdir(exist_ok=True)
        (path / "plots" / "el2n_hist.png").write_bytes(_tiny_png() + seed.to_bytes(2, "big"))
    return path


@dataclass
class ClientRun:
    """Outcome of one subprocess client run: parsed ``result``, raw output, exit code."""

    result: Any
    stdout: str
    stderr: str
    returncode: int

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class HubEnv:
    """A started ``HubDouble`` plus a runner for client code pointed at it."""

    def __init__(self, double: HubDouble, tmp: Path):
        self.double = double
        self.tmp = tmp
        self._runs = 0

    def run(
        self,
        code: str,
        *,
        token: str | None = TOKEN,
        args: dict[str, Any] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> ClientRun:
        """Run ``code`` in a fresh interpreter against the double; ``code`` sets ``result`` (JSON-able).

        ``token`` goes in HF_TOKEN (None: no token at all). ``args`` is available as ``ARGS``.
        """
        self._runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(
            {
                "HF_ENDPOINT": self.double.endpoint,
                "HF_HOME": str(self.tmp / f"hf_home_{self._runs}"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_UPDATE_DOWNLOAD_COUNTS": "0",
                "HF_HUB_DISABLE_XET": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                "DD_ARGS": json.dumps(args or {}),
                "PYTHONPATH": str(REPO_ROOT),
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        if token is not None:
            env["HF_TOKEN"] = token
        script = _PRELUDE + textwrap.dedent(code) + _EPILOGUE
        proc = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp,
        )
        result = None
        for line in proc.stdout.splitlines():
            if line.startswith("__RESULT__"):
                result = json.loads(line[len("__RESULT__") :])
        if check and proc.returncode != 0:
            raise AssertionError(f"client failed (rc={proc.returncode}):\n{proc.stderr[-6000:]}")
        return ClientRun(result, proc.stdout, proc.stderr, proc.returncode)


@pytest.fixture
def hub(tmp_path: Path):
    """A fresh Hub test double (user ``user`` owns token ``TOKEN``) and a client runner."""
    with HubDouble({TOKEN: USER, "hf_OtherUserToken_000": "other"}) as double:
        yield HubEnv(double, tmp_path)


@pytest.fixture
def version_folder(tmp_path: Path):
    """Factory: ``version_folder("v1", seed=0)`` -> a version folder under tmp_path."""

    def make(name: str = "v1", **kwargs: Any) -> Path:
        return make_version_folder(tmp_path / "store" / name, note=name, **kwargs)

    return make
