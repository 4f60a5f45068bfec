"""Pure building blocks of the training-dynamics analyses (docs/dynamics.md), plus the small shared training
setup: one MLP on a Fashion-MNIST subsample, trained with SGD and a cosine learning rate over a fixed step count.

The pure functions (``kernel_distance``, ``error_barrier``, ``subspace_overlap``, ``interpolate_state``,
``el2n_bins``) have tiny tests with known answers in tests/scoring/test_dynamics.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RUNS = Path(__file__).resolve().parents[2] / "runs" / "dynamics"


# --------------------------------------------------------------------------- pure functions


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def kernel_distance(k1: Any, k2: Any) -> float:
    """1 - <K1, K2>_F / (||K1||_F ||K2||_F) (Fort et al. 2020): 0 for kernels equal up to a positive scale,
    1 for Frobenius-orthogonal ones. Scale-invariant, so a kernel that only grows or shrinks has not moved."""
    a, b = _as_numpy(k1), _as_numpy(k2)
    if a.shape != b.shape:
        raise ValueError(f"Kernels have different shapes {a.shape} and {b.shape}.")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("Kernel distance is undefined for an all-zero kernel.")
    return float(1.0 - np.sum(a * b) / (na * nb))


def error_barrier(errors: Sequence[float], alphas: Sequence[float] | None = None, reference: str = "mean") -> float:
    """Error barrier along a linear path, from the errors at the interpolation points (alpha = 0 first, 1 last).

    ``reference="mean"`` (default; Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket
    Hypothesis"): max_alpha err(alpha) - (err(0) + err(1)) / 2.
    ``reference="linear"``: max_alpha [err(alpha) - ((1 - alpha) err(0) + alpha err(1))] (Entezari et al. 2022).
    Both are 0 on a flat path and the same when the endpoint errors are equal. Can be slightly negative if the
    path is better than the endpoints everywhere (reported as is, not clipped)."""
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 1 or len(err) < 2:
        raise ValueError("Need the errors at two or more interpolation points.")
    if reference == "mean":
        return float(err.max() - 0.5 * (err[0] + err[-1]))
    if reference == "linear":
        a = np.linspace(0.0, 1.0, len(err)) if alphas is None else np.asarray(alphas, dtype=np.float64)
        if len(a) != len(err):
            raise ValueError("alphas and errors differ in length.")
        return float(np.max(err - ((1 - a) * err[0] + a * err[-1])))
    raise ValueError(f"Unknown reference {reference!r}. Choose between mean, linear.")


def subspace_overlap(u: Any, v: Any) -> float:
    """||U^T V||_F^2 / k for orthonormal n x k bases U, V: 1 for the same subspace, 0 for orthogonal ones
    (the mean squared cosine of the principal angles)."""
    a, b = _as_numpy(u), _as_numpy(v)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"Bases must be n x k matrices of equal shape, got {a.shape} and {b.shape}.")
    return float(np.sum((a.T @ b) ** 2) / a.shape[1])


def top_eigenspace(kernel: Any, k: int) -> np.ndarray:
    """Orthonormal n x k basis of the top-k eigenspace of a symmetric kernel."""
    a = _as_numpy(kernel)
    vals, vecs = np.linalg.eigh(0.5 * (a + a.T))
    return vecs[:, np.argsort(vals)[::-1][:k]]


def interpolate_state(sd_a: dict, sd_b: dict, alpha: float) -> dict:
    """(1 - alpha) * A + alpha * B for every floating-point entry of two state dicts (weights and BatchNorm
    running mean/var alike); integer buffers (BatchNorm ``num_batches_tracked``) are taken from A for alpha < 0.5
    and from B otherwise. Note: interpolated BN running statistics are not the statistics of the interpolated
    network; models with BN should have them recomputed (the MLP used here has none)."""
    if sd_a.keys() != sd_b.keys():
        raise ValueError("State dicts have different keys.")
    out = {}
    for name, a in sd_a.items():
        b = sd_b[name]
        if a.shape != b.shape:
            raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ.")
        if a.is_floating_point():
            out[name] = (1.0 - alpha) * a + alpha * b.to(a.dtype)
        else:
            out[name] = (a if alpha < 0.5 else b).clone()
    return out


def el2n_bins(scores: Any, n_bins: int) -> np.ndarray:
    """Bin id (0 = lowest EL2N .. n_bins-1 = highest) per example: equal-size bins by rank (sizes differ by at
    most one), ties broken by position so the result is deterministic."""
    s = _as_numpy(scores).ravel()
    if not 1 <= n_bins <= len(s):
        raise ValueError(f"n_bins={n_bins} must be between 1 and the number of examples ({len(s)}).")
    order = np.argsort(s, kind="stable")
    bins = np.empty(len(s), dtype=np.int64)
    bins[order] = np.arange(len(s)) * n_bins // len(s)
    return bins


# --------------------------------------------------------------------------- shared training setup


@dataclass
class Setup:
    """A training subsample of Fashion-MNIST, its EL2N bins, the test set, and the training recipe."""

    cfg: Any  # ScoringConfig
    train: Any  # TensorData
    test: Any
    preprocess: Any
    el2n: np.ndarray  # per row of ``train``
    bins: np.ndarray  # per row of ``train``
    total_steps: int
    steps_per_epoch: int


def make_setup(
    *,
    train_size: int,
    n_bins: int,
    epochs: int,
    width: float,
    score_config: str,
    seed: int = 0,
    test_size: int | None = None,
) -> Setup:
    """Subsample ``train_size`` training rows (fixed by ``seed``), attach the card's EL2N (``score_config``, e.g.
    mlp-ep2: 2 epochs of the full-width MLP, mean of the card's seeds) and bin them by rank within the subsample."""
    from datadiet_hub.scoring.config import ScoringConfig

    from ..common import fashion_mnist, load_card_scores, subset

    data = fashion_mnist()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data.train), size=train_size, replace=False))
    scores = np.asarray(load_card_scores(score_config)["el2n"], dtype=np.float64)[rows]
    train = subset(data.train, rows)
    test = data.test if test_size is None else subset(data.test, np.arange(test_size))
    cfg = ScoringConfig(model="mlp", width=width, optimizer="sgd", lr=0.1, weight_decay=5e-4)
    spe = math.ceil(train_size / cfg.batch_size)
    return Setup(cfg, train, test, data.preprocess, scores, el2n_bins(scores, n_bins), epochs * spe, spe)


def train_steps(model, optimizer, setup: Setup, *, start: int, stop: int, order_key: tuple) -> None:
    """SGD steps ``start`` .. ``stop - 1`` of the run (cosine learning rate over ``setup.total_steps``); the data
    order of each epoch comes from ``seed_generator(*order_key, epoch)``, so two children with different keys see
    different orders from the same starting point. No augmentation."""
    from datadiet_hub.scoring.loops import cosine_lr, shuffled_batches, train_loop
    from datadiet_hub.scoring.train import seed_generator

    cfg = setup.cfg
    batches = shuffled_batches(
        setup.train.images,
        setup.train.labels,
        setup.preprocess,
        batch_size=cfg.batch_size,
        steps=range(start, stop),
        order=lambda epoch: seed_generator(*order_key, epoch),
    )
    train_loop(model, optimizer, batches, start_step=start, lr=lambda step: cosine_lr(cfg.lr, step, setup.total_steps))


def error_rate(model, images, labels, preprocess, batch_size: int = 4096):
    """Per-example 0/1 error (bool tensor, on the CPU) in eval mode."""
    from datadiet_hub.scoring.loops import evaluate, ordered_batches, wrong

    batches = ordered_batches(images, labels, preprocess, batch_size=batch_size, device=images.device)
    return evaluate(model, batches, wrong)


def add_setup_arguments(parser) -> None:
    """The flags both dynamics commands share: data subsample, training length, bins, model width, threads."""
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=10, help="length of the training runs (default 10)")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--score-config", default="mlp-ep2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine more threads oversubscribe)",
    )


def setup_from_args(args):
    """Apply ``--threads`` and build the shared setup from the parsed flags of ``add_setup_arguments``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return make_setup(
        train_size=args.train_size,
        n_bins=args.bins,
        epochs=args.epochs,
        width=args.width,
        score_config=args.score_config,
        seed=args.seed,
    )
