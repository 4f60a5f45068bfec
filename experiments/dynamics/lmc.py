"""Linear-mode-connectivity stability by EL2N group (docs/dynamics.md, analysis 1).

Train a parent MLP on a Fashion-MNIST subsample; at each spawn step copy it (weights + optimizer state) into two
children that continue with different data orders to the end of the run; evaluate the error of
(1 - alpha) * child_A + alpha * child_B at ``--alphas`` evenly spaced points on each EL2N bin of the training
subsample (bins by rank of the card's EL2N) and on the test set; the barrier is
max_alpha err(alpha) - (err(0) + err(1)) / 2 (Frankle et al. 2020), ``barrier_linear`` the variant against the
linear interpolation of the endpoint errors.

    python -m experiments.dynamics.lmc [--train-size 10000] [--epochs 10] [--spawn-epochs 0,0.125,0.25,0.5,1,2,3,5,8]
                                       [--pairs 5] [--bins 10]

Resumable: one row per (spawn_step, pair, group) in docs/results/dynamics_lmc.csv; finished pairs are skipped,
parent checkpoints are kept under runs/dynamics/lmc/.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from ..common import RESULTS, ResultsCSV, device_name, setup_logging
from .common import (
    RUNS,
    add_setup_arguments,
    error_barrier,
    error_rate,
    interpolate_state,
    setup_from_args,
    train_steps,
)

logger = logging.getLogger("experiments.dynamics.lmc")
FIELDS = [
    "spawn_epoch",
    "spawn_step",
    "pair",
    "group",
    "examples",
    "el2n_mean",
    "barrier",
    "barrier_linear",
    "err_a",
    "err_b",
    "err_max",
    "errors",
    "wall_time_s",
    "device",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawn-epochs", default="0,0.125,0.25,0.5,1,2,3,5,8")
    parser.add_argument("--pairs", type=int, default=5, help="child pairs per spawn time (default 5)")
    parser.add_argument("--alphas", type=int, default=11, help="interpolation points incl. both ends (default 11)")
    parser.add_argument("--output", default=str(RESULTS / "dynamics_lmc.csv"))
    add_setup_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from datadiet_hub.scoring.train import make_model, make_optimizer

    setup = setup_from_args(args)
    spe = setup.steps_per_epoch
    spawns = sorted({(float(e), round(float(e) * spe)) for e in args.spawn_epochs.split(",")}, key=lambda t: t[1])
    alphas = np.linspace(0.0, 1.0, args.alphas)
    results = ResultsCSV(args.output, FIELDS, ["spawn_step", "pair", "group"])
    groups = [(f"bin{b}", setup.bins == b) for b in range(args.bins)]
    groups.append(("test", None))
    ckdir = RUNS / "lmc" / f"n{args.train_size}-w{args.width}-e{args.epochs}-s{args.seed}"
    ckdir.mkdir(parents=True, exist_ok=True)

    # parent: one run, checkpoints (weights + optimizer state) at every spawn step
    model = make_model(setup.cfg, setup.train, args.seed)
    optimizer = make_optimizer(setup.cfg, model)
    done_step = 0
    for _, step in spawns:
        path = ckdir / f"parent-{step}.pt"
        if not path.exists():
            train_steps(model, optimizer, setup, start=done_step, stop=step, order_key=("dyn-parent", args.seed))
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
        else:
            state = torch.load(path)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        done_step = step

    for spawn_epoch, step in spawns:
        for pair in range(args.pairs):
            if all(results.done(spawn_step=step, pair=pair, group=g) for g, _ in groups):
                continue
            started = time.perf_counter()
            parent = torch.load(ckdir / f"parent-{step}.pt")
            children = []
            for child in ("a", "b"):
                m = make_model(setup.cfg, setup.train, args.seed)
                m.load_state_dict(parent["model"])
                opt = make_optimizer(setup.cfg, m)
                opt.load_state_dict(parent["optimizer"])
                train_steps(
                    m,
                    opt,
                    setup,
                    start=step,
                    stop=setup.total_steps,
                    order_key=("dyn-child", args.seed, step, pair, child),
                )
                children.append(m.state_dict())
            probe = make_model(setup.cfg, setup.train, args.seed)
            train_wrong, test_wrong = [], []
            for alpha in alphas:
                probe.load_state_dict(interpolate_state(children[0], children[1], float(alpha)))
                train_wrong.append(error_rate(probe, setup.train.images, setup.train.labels, setup.preprocess))
                test_wrong.append(error_rate(probe, setup.test.images, setup.test.labels, setup.preprocess))
            wall = time.perf_counter() - started
            for name, mask in groups:
                if mask is None:
                    errs = np.array([w.float().mean().item() for w in test_wrong])
                    n, el2n = len(setup.test), float("nan")
                else:
                    m_t = torch.from_numpy(mask)
                    errs = np.array([w[m_t].float().mean().item() for w in train_wrong])
                    n, el2n = int(mask.sum()), float(setup.el2n[mask].mean())
                results.append(
                    {
                        "spawn_epoch": spawn_epoch,
                        "spawn_step": step,
                        "pair": pair,
                        "group": name,
                        "examples": n,
                        "el2n_mean": f"{el2n:.4f}",
                        "barrier": f"{error_barrier(errs):.4f}",
                        "barrier_linear": f"{error_barrier(errs, alphas, reference='linear'):.4f}",
                        "err_a": f"{errs[0]:.4f}",
                        "err_b": f"{errs[-1]:.4f}",
                        "err_max": f"{errs.max():.4f}",
                        "errors": " ".join(f"{e:.4f}" for e in errs),
                        "wall_time_s": f"{wall:.1f}",
                        "device": device_name(),
                    }
                )
            logger.info(
                "spawn %s ep (step %d) pair %d: test barrier %.4f, bin0 %.4f, bin%d %.4f (%.0f s)",
                spawn_epoch,
                step,
                pair,
                error_barrier([w.float().mean().item() for w in test_wrong]),
                float(results.rows[-len(groups)]["barrier"]),
                args.bins - 1,
                float(results.rows[-2]["barrier"]),
                wall,
            )
    plot(args.output)
    print(report(args.output))
    return 0


def report(csv_path: str, threshold: float = 0.01) -> str:
    """Markdown table: mean barrier (over pairs) per group and spawn epoch, the endpoint error, and the first
    spawn epoch from which the mean barrier stays <= ``threshold``."""
    from collections import defaultdict

    rows = load_rows(csv_path)
    table = summary(csv_path)
    sd: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    end_err: dict[str, list[float]] = defaultdict(list)
    el2n: dict[str, str] = {}
    for row in rows:
        sd[row["group"]][float(row["spawn_epoch"])].append(float(row["barrier"]))
        end_err[row["group"]] += [float(row["err_a"]), float(row["err_b"])]
        el2n[row["group"]] = row["el2n_mean"]
    groups = [*sorted((g for g in table if g.startswith("bin")), key=lambda g: int(g[3:])), "test"]
    epochs = sorted({e for g in table for e in table[g]})
    head = (
        "| group | EL2N mean | end error | "
        + " | ".join(f"spawn {e:g}" for e in epochs)
        + f" | stable from (barrier <= {threshold}) |"
    )
    lines = [head, "|" + "---|" * (4 + len(epochs))]
    for g in groups:
        cells = [f"{table[g][e]:.3f} ± {np.std(sd[g][e]):.3f}" for e in epochs]
        ok = [table[g][e] <= threshold for e in epochs]
        stable = next((f"{epochs[i]:g}" for i in range(len(epochs)) if all(ok[i:])), "never")
        lines.append(
            f"| {g} | {el2n[g] if g != 'test' else '—'} | {np.mean(end_err[g]):.3f} | "
            + " | ".join(cells)
            + f" | {stable} |"
        )
    return "\n".join(lines)


def load_rows(csv_path: str) -> list[dict[str, str]]:
    import csv

    with open(csv_path, newline="") as handle:
        return list(csv.DictReader(handle))


def summary(csv_path: str) -> dict[str, dict[float, float]]:
    """Mean barrier over pairs: group -> spawn epoch -> barrier."""
    from collections import defaultdict

    acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in load_rows(csv_path):
        acc[row["group"]][float(row["spawn_epoch"])].append(float(row["barrier"]))
    return {g: {e: float(np.mean(v)) for e, v in sorted(d.items())} for g, d in acc.items()}


def plot(csv_path: str) -> None:
    """Barrier against spawn time, one curve per EL2N bin (viridis, dark = low EL2N) and the test set (black)."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(csv_path)
    bins = sorted((g for g in table if g.startswith("bin")), key=lambda g: int(g[3:]))
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for i, g in enumerate(bins):
        xs = list(table[g])
        ax.plot(
            [max(x, 0.05) for x in xs],
            [table[g][x] for x in xs],
            marker="o",
            markersize=3,
            color=cmap(i / max(len(bins) - 1, 1)),
            label=f"EL2N {g}",
        )
    if "test" in table:
        xs = list(table["test"])
        ax.plot(
            [max(x, 0.05) for x in xs],
            [table["test"][x] for x in xs],
            marker="s",
            color="black",
            linestyle="--",
            label="test",
        )
    ax.set_xscale("log")
    ax.set_xlabel("spawn epoch (0 plotted at 0.05)")
    ax.set_ylabel("error barrier (max err - mean of ends)")
    ax.set_title("Linear mode connectivity by EL2N bin (MLP, Fashion-MNIST)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(Path(csv_path).with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
