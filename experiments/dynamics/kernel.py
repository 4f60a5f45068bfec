"""Kernel velocity and stable subspace by EL2N group (docs/dynamics.md, analyses 2 and 3: one command).

Train one MLP on a Fashion-MNIST subsample, checkpointing at ``--checkpoint-epochs``. For a fixed sample of
``--per-bin`` training examples from each EL2N bin, compute at every checkpoint two empirical kernels over the
sample (model in eval mode, per-example gradients with ``torch.func.vmap(grad)`` as in
scoring/metrics/reference.py, over all parameters):

* ``ntk``: the trace logit NTK, K(x, x') = sum_k <d f_k(x)/dw, d f_k(x')/dw> (sum over the 10 logits);
* ``lossgrad``: the loss-gradient Gram matrix, K(x, x') = <d loss(x)/dw, d loss(x')/dw>.

Then per bin and kernel:

* velocity (``dynamics_kernel.csv``): kernel distance 1 - <K1,K2>_F / (|K1|_F |K2|_F) between consecutive
  checkpoints, also divided by the epochs between them, and the distance of each checkpoint's kernel to the final
  one;
* stable subspace (``dynamics_subspace.csv``): overlap ||U_t^T U_T||_F^2 / k of the top-k eigenspace of the kernel
  at checkpoint t with that of the final kernel (k = ``--k``, default 10 = number of classes).

    python -m experiments.dynamics.kernel [--train-size 10000] [--epochs 10] [--per-bin 300] [--k 10]

Resumable: model checkpoints and kernels are cached under runs/dynamics/kernel/, finished CSV rows are skipped.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from ..common import RESULTS, ResultsCSV, device_name, setup_logging
from .common import (
    RUNS,
    add_setup_arguments,
    kernel_distance,
    setup_from_args,
    subspace_overlap,
    top_eigenspace,
    train_steps,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("experiments.dynamics.kernel")
KERNEL_FIELDS = [
    "kernel",
    "group",
    "epoch_from",
    "epoch_to",
    "step_from",
    "step_to",
    "distance",
    "velocity_per_epoch",
    "distance_to_final",
    "el2n_mean",
    "examples",
    "device",
]
SUBSPACE_FIELDS = [
    "kernel",
    "group",
    "epoch",
    "step",
    "k",
    "overlap_with_final",
    "top_k_energy",
    "el2n_mean",
    "examples",
]
KERNELS = ("ntk", "lossgrad")
DEFAULT_EPOCHS = "0,0.125,0.25,0.5,1,1.5,2,3,4,6,8,10"


def per_example_kernels(model, x, y, num_classes: int, chunk_size: int = 64) -> dict[str, torch.Tensor]:
    """Trace logit NTK and loss-gradient Gram over the rows of ``x`` (float64 accumulation), model in eval mode."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, grad, vmap

    from datadiet_hub.scoring.loops import eval_mode

    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def flat(g: dict) -> torch.Tensor:
        return torch.cat([t.reshape(t.shape[0], -1) for t in g.values()], 1).double()

    def logit(p, xi, k):
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0, k]

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    n = len(y)
    ntk = torch.zeros(n, n, dtype=torch.float64)
    with eval_mode(model), torch.enable_grad():
        for k in range(num_classes):
            g = flat(vmap(grad(logit), in_dims=(None, 0, None), chunk_size=chunk_size)(params, x, k))
            ntk += g @ g.T
        g = flat(vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, y))
    return {"ntk": ntk, "lossgrad": g @ g.T}


def linear_kernels(model, x, y, num_classes: int) -> dict[str, torch.Tensor] | None:
    """The same two kernels in one forward and ``num_classes + 1`` backward passes, for models whose parameters all
    sit in ``nn.Linear`` layers fed 2-D inputs (the MLP): per layer, <dW_i, dW_j> = (a_i . a_j)(g_i . g_j) with a the
    layer input and g the gradient at its output (+ g_i . g_j for the bias), the "ghost" identity (GraNd's per-layer rule in datadiet_hub/scoring/metrics/_grand_layers.py).
    Returns None when the model does not qualify (then use ``per_example_kernels``)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from datadiet_hub.scoring.loops import eval_mode

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    covered = sum(p.numel() for m in linears for p in m.parameters() if p.requires_grad)
    if not linears or covered != sum(p.numel() for p in model.parameters() if p.requires_grad):
        return None
    taps: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def hook(module, args, output):
        taps.append((module, args[0].detach(), output))
        return output.clone()  # an in-place activation after the layer must not overwrite the tapped output

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with eval_mode(model), torch.enable_grad():
            logits = model(x)
            if any(a.dim() != 2 for _, a, _ in taps):
                return None
            grams = []
            for module, a, _ in taps:
                a = a.double()
                grams.append(a @ a.T + (1.0 if module.bias is not None and module.bias.requires_grad else 0.0))
            outputs = [out for _, _, out in taps]

            def kernel(scalar, retain):
                gs = torch.autograd.grad(scalar, outputs, retain_graph=retain)
                return sum(gram * (g.double() @ g.double().T) for gram, g in zip(grams, gs))

            ntk = sum(kernel(logits[:, k].sum(), True) for k in range(num_classes))
            lossgrad = kernel(F.cross_entropy(logits, y, reduction="sum"), False)
    finally:
        for h in handles:
            h.remove()
    return {"ntk": ntk, "lossgrad": lossgrad}


def empirical_kernels(model, x, y, num_classes: int) -> dict[str, torch.Tensor]:
    """``linear_kernels`` when the model qualifies, else the vmap route."""
    out = linear_kernels(model, x, y, num_classes)
    return out if out is not None else per_example_kernels(model, x, y, num_classes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint-epochs", default=DEFAULT_EPOCHS)
    parser.add_argument("--per-bin", type=int, default=300, help="sampled training examples per EL2N bin")
    parser.add_argument("--k", type=int, default=10, help="dimension of the tracked top eigenspace")
    parser.add_argument("--output", default=str(RESULTS / "dynamics_kernel.csv"))
    parser.add_argument("--subspace-output", default=str(RESULTS / "dynamics_subspace.csv"))
    add_setup_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from datadiet_hub.scoring.train import make_model, make_optimizer

    started = time.perf_counter()
    setup = setup_from_args(args)
    spe = setup.steps_per_epoch
    points = sorted({round(float(e) * spe): float(e) for e in args.checkpoint_epochs.split(",")}.items())
    if points[-1][0] != setup.total_steps:
        points.append((setup.total_steps, float(args.epochs)))
    rng = np.random.default_rng(args.seed + 1)
    sample = [
        np.sort(rng.choice(np.flatnonzero(setup.bins == b), size=args.per_bin, replace=False))
        for b in range(args.bins)
    ]
    el2n_means = [float(setup.el2n[s].mean()) for s in sample]
    tag = f"n{args.train_size}-w{args.width}-e{args.epochs}-s{args.seed}-p{args.per_bin}"
    ckdir = RUNS / "kernel" / tag
    ckdir.mkdir(parents=True, exist_ok=True)

    model = make_model(setup.cfg, setup.train, args.seed)
    optimizer = make_optimizer(setup.cfg, model)
    done_step = 0
    kernels: dict[int, dict[str, torch.Tensor]] = {}  # step -> name -> [bins, n, n]
    for step, epoch in points:
        kpath = ckdir / f"kernels-{step}.pt"
        mpath = ckdir / f"model-{step}.pt"
        if mpath.exists():
            state = torch.load(mpath)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        else:
            train_steps(model, optimizer, setup, start=done_step, stop=step, order_key=("dyn-kernel", args.seed))
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, mpath)
        done_step = step
        if kpath.exists():
            kernels[step] = torch.load(kpath)
            continue
        t0 = time.perf_counter()
        per_bin = []
        for rows in sample:
            idx = torch.from_numpy(rows)
            x = setup.preprocess(setup.train.images[idx])
            per_bin.append(empirical_kernels(model, x, setup.train.labels[idx], setup.train.num_classes))
        kernels[step] = {name: torch.stack([k[name] for k in per_bin]) for name in KERNELS}
        torch.save(kernels[step], kpath)
        logger.info(
            "epoch %.3g (step %d): kernels of %d bins x %d examples in %.0f s",
            epoch,
            step,
            args.bins,
            args.per_bin,
            time.perf_counter() - t0,
        )

    final = points[-1][0]
    velocity = ResultsCSV(args.output, KERNEL_FIELDS, ["kernel", "group", "step_to"])
    for name in KERNELS:
        for b in range(args.bins):
            for (s0, e0), (s1, e1) in itertools.pairwise(points):
                if velocity.done(kernel=name, group=f"bin{b}", step_to=s1):
                    continue
                d = kernel_distance(kernels[s0][name][b], kernels[s1][name][b])
                velocity.append(
                    {
                        "kernel": name,
                        "group": f"bin{b}",
                        "epoch_from": e0,
                        "epoch_to": e1,
                        "step_from": s0,
                        "step_to": s1,
                        "distance": f"{d:.6f}",
                        "velocity_per_epoch": f"{d / (e1 - e0):.6f}",
                        "distance_to_final": f"{kernel_distance(kernels[s1][name][b], kernels[final][name][b]):.6f}",
                        "el2n_mean": f"{el2n_means[b]:.4f}",
                        "examples": args.per_bin,
                        "device": device_name(),
                    }
                )
    subspace = ResultsCSV(args.subspace_output, SUBSPACE_FIELDS, ["kernel", "group", "step", "k"])
    for name in KERNELS:
        for b in range(args.bins):
            u_final = top_eigenspace(kernels[final][name][b], args.k)
            for step, epoch in points:
                if subspace.done(kernel=name, group=f"bin{b}", step=step, k=args.k):
                    continue
                kb = kernels[step][name][b].numpy()
                vals = np.linalg.eigvalsh(0.5 * (kb + kb.T))[::-1]
                energy = float(vals[: args.k].clip(min=0).sum() / max(vals.clip(min=0).sum(), 1e-300))
                subspace.append(
                    {
                        "kernel": name,
                        "group": f"bin{b}",
                        "epoch": epoch,
                        "step": step,
                        "k": args.k,
                        "overlap_with_final": f"{subspace_overlap(top_eigenspace(kb, args.k), u_final):.6f}",
                        "top_k_energy": f"{energy:.4f}",
                        "el2n_mean": f"{el2n_means[b]:.4f}",
                        "examples": args.per_bin,
                    }
                )
    logger.info("done in %.0f s", time.perf_counter() - started)
    plot(args.output, args.subspace_output)
    print(report(args.output, args.subspace_output))
    return 0


def _rows(path: str) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _series(rows, kernel: str, x: str, y: str) -> dict[int, tuple[list[float], list[float]]]:
    out: dict[int, tuple[list[float], list[float]]] = {}
    for row in rows:
        if row["kernel"] == kernel:
            xs, ys = out.setdefault(int(row["group"][3:]), ([], []))
            xs.append(float(row[x]))
            ys.append(float(row[y]))
    return dict(sorted(out.items()))


def settle_epoch(xs: list[float], ys: list[float], threshold: float, above: bool) -> float:
    """First x from which y stays above (or below) ``threshold`` to the end."""
    ok = [(y >= threshold) if above else (y <= threshold) for y in ys]
    for i in range(len(xs)):
        if all(ok[i:]):
            return xs[i]
    return float("nan")


def report(kernel_csv: str, subspace_csv: str) -> str:
    """Markdown tables: per bin, velocity in the first epoch and after, when the kernel and the subspace settle."""
    vel, sub = _rows(kernel_csv), _rows(subspace_csv)
    lines = []
    for name in KERNELS:
        v = _series(vel, name, "epoch_to", "distance")
        dfin = _series(vel, name, "epoch_to", "distance_to_final")
        ov = _series(sub, name, "epoch", "overlap_with_final")
        lines += [
            f"\n**{name}**\n",
            (
                "| bin | EL2N mean | distance, epochs 0-1 | distance, epochs 1-10 | dist. to final at ep. 1 "
                "| kernel settles (dist. to final <= 0.05) | overlap at ep. 1 | subspace settles (overlap >= 0.9) |"
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        el2n = {int(r["group"][3:]): r["el2n_mean"] for r in vel if r["kernel"] == name}
        for b, (xs, ds) in v.items():
            early = sum(d for x, d in zip(xs, ds) if x <= 1.0)
            late = sum(d for x, d in zip(xs, ds) if x > 1.0)
            fx, fy = dfin[b]
            at1 = fy[fx.index(1.0)] if 1.0 in fx else float("nan")
            ox, oy = ov[b]
            o1 = oy[ox.index(1.0)] if 1.0 in ox else float("nan")
            lines.append(
                f"| {b} | {el2n[b]} | {early:.3f} | {late:.3f} | {at1:.3f} | "
                f"{settle_epoch(fx, fy, 0.05, above=False):g} | {o1:.3f} | "
                f"{settle_epoch(ox, oy, 0.9, above=True):g} |"
            )
    return "\n".join(lines)


def plot(kernel_csv: str, subspace_csv: str) -> None:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    vel, sub = _rows(kernel_csv), _rows(subspace_csv)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=110)
    for r, name in enumerate(KERNELS):
        for col, (y, label) in enumerate(
            (
                ("velocity_per_epoch", "kernel distance per epoch (velocity)"),
                ("distance_to_final", "kernel distance to final kernel"),
            )
        ):
            ax = axes[r, col]
            series = _series(vel, name, "epoch_to", y)
            for b, (xs, ys) in series.items():
                ax.plot(xs, ys, marker="o", markersize=3, color=cmap(b / max(len(series) - 1, 1)), label=f"bin{b}")
            ax.set_xscale("log")
            ax.set_yscale("log" if col == 0 else "linear")
            ax.set_xlabel("epoch (end of interval)")
            ax.set_ylabel(label)
            ax.set_title(f"{name} kernel")
    axes[0, 0].legend(fontsize=7, ncol=2, title="EL2N bin (0 = lowest)", title_fontsize=7)
    fig.suptitle("Kernel velocity by EL2N bin (MLP, Fashion-MNIST)")
    fig.tight_layout()
    fig.savefig(Path(kernel_csv).with_suffix(".png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for ax, name in zip(axes, KERNELS):
        series = _series(sub, name, "epoch", "overlap_with_final")
        for b, (xs, ys) in series.items():
            ax.plot(
                [max(x, 0.05) for x in xs],
                ys,
                marker="o",
                markersize=3,
                color=cmap(b / max(len(series) - 1, 1)),
                label=f"bin{b}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("epoch (0 plotted at 0.05)")
        ax.set_ylabel("top-k eigenspace overlap with final")
        ax.set_title(f"{name} kernel")
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, ncol=2, title="EL2N bin (0 = lowest)", title_fontsize=7)
    fig.suptitle("Stable subspace by EL2N bin (MLP, Fashion-MNIST)")
    fig.tight_layout()
    fig.savefig(Path(subspace_csv).with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
