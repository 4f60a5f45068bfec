"""Fixtures for the scoring-engine tests: tiny image datasets the tests make (no download, no Fashion-MNIST
needed), a spy on the real GraNd, and helpers to run the engine in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PYTHON = sys.executable
LAUNCH = HERE / "launch.py"

sys.path.insert(0, str(HERE))  # factories
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # tests.scoring.factories:tiny_net


def make_images(n: int, side: int, channels: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable noise: class k brightens a class-specific band of rows, and 20% of the labels are then redrawn
    at random (so that some examples are hard, get forgotten, or are never learned); uint8 ``[N, side, side(, C)]``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.integers(0, 100, (n, side, side, channels)).astype(np.int64)
    band = max(1, side // num_classes)
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band] += 80
    images = np.clip(images, 0, 255).astype(np.uint8)
    noisy = rng.random(n) < 0.2
    labels[noisy] = rng.integers(0, num_classes, int(noisy.sum()))
    return (images[..., 0] if channels == 1 else images), labels


def write_image_parquet(
    path: Path, n: int, side: int, channels: int, num_classes: int = 4, *, image_column: str = "image", seed: int = 0
) -> Path:
    """A parquet file with ``Image`` and ``ClassLabel`` features, as ``datasets`` writes them."""
    import datasets

    images, labels = make_images(n, side, channels, num_classes, seed)
    features = datasets.Features(
        {image_column: datasets.Image(), "label": datasets.ClassLabel(names=[f"c{k}" for k in range(num_classes)])}
    )
    ds = datasets.Dataset.from_dict({image_column: list(images), "label": labels.tolist()}, features=features)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_parquet(tmp_path_factory) -> Path:
    """203 grey 8x8 images, 4 classes (203 is odd and not a multiple of any batch size used)."""
    return write_image_parquet(tmp_path_factory.mktemp("tiny") / "tiny.parquet", 203, 8, 1)


@pytest.fixture(scope="session")
def cifar_like_parquet(tmp_path_factory) -> Path:
    """48 RGB 32x32 images in an ``img`` column, like ``uoft-cs/cifar10``."""
    return write_image_parquet(tmp_path_factory.mktemp("cifar") / "cifar.parquet", 48, 32, 3, 10, image_column="img")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Two CPU cores are shared; one thread per test process also makes float results independent of load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def grand_spy(monkeypatch):
    """Record each call of the real ``datadiet_hub.scoring.metrics.grand.per_example_grad_norms`` (model mode, batch size) and
    pass it through unchanged: the engine under test runs the real fast GraNd."""
    import datadiet_hub.scoring.metrics.grand as grand

    calls: list[dict] = []
    real = grand.per_example_grad_norms

    def recording(model, inputs, targets, *args, **kwargs):
        calls.append({"training": model.training, "n": len(inputs)})
        return real(model, inputs, targets, *args, **kwargs)

    monkeypatch.setattr(grand, "per_example_grad_norms", recording)
    return calls


def tiny_config(out: Path, data: Path, **overrides):
    """A fast ScoringConfig on the tiny parquet file: small CNN, 2 seeds, batch 32 (7 steps per epoch)."""
    from datadiet_hub.scoring.config import ScoringConfig

    fields = {
        "output_dir": str(out),
        "dataset": str(data),
        "model": "cnn",
        "width": 0.25,
        "seeds": [0, 1],
        "scores": ["el2n"],
        "at": [1],
        "batch_size": 32,
        "eval_batch_size": 64,
        "grand_batch_size": 32,
        "lr": 0.05,
    }
    fields.update(overrides)
    return ScoringConfig(**fields)


def read_scores(out: Path, config: str) -> dict[str, np.ndarray]:
    """One config's parquet file as numpy columns (list columns as 2-D arrays)."""
    table = pq.read_table(Path(out) / "data" / config / "train-00000-of-00001.parquet")
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        columns[name] = np.array(values) if not name.endswith("_per_seed") else np.array(values, dtype=np.float32)
    return columns


def configs_in(out: Path) -> list[str]:
    return sorted(p.name for p in (Path(out) / "data").iterdir())


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        DATADIET_DEBUG="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


def run_engine(
    args: list[str], *, timeout: float = 240, launcher: list[str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the scoring CLI in a fresh process."""
    command = (launcher or [PYTHON]) + [str(LAUNCH), *args]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
