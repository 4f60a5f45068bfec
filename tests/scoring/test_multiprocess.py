"""1 vs 2 processes (torchrun, CPU gloo): the same seeds give the same scores; rows are sharded and gathered by
idx with N not divisible by the number of processes; a failure on the main process stops every process."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import configs_in, read_scores, run_engine

from datadiet_hub.scoring.distributed import gather_rows

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


class FakeAccelerator:
    """``gather`` over simulated processes: concatenates what every rank contributes, in rank order."""

    def __init__(self, world: int):
        self.num_processes, self.device = world, torch.device("cpu")
        self.contributions: list[torch.Tensor] = []

    def gather(self, tensor):
        return torch.cat(self.contributions.pop(0))


def strided(n: int, world: int) -> list[torch.Tensor]:
    return [torch.arange(n)[rank::world] for rank in range(world)]


def batches_round_robin(n: int, world: int, batch: int = 4) -> list[torch.Tensor]:
    """Whole batches dealt to the processes in turn (the DataLoader path): uneven shares."""
    starts = range(0, n, batch)
    return [
        torch.cat(
            [torch.arange(s, min(s + batch, n)) for s in starts[rank::world]] or [torch.empty(0, dtype=torch.int64)]
        )
        for rank in range(world)
    ]


def simulate(shards: list[torch.Tensor], values: list[dict[str, torch.Tensor]], n: int):
    """What gather_rows returns on rank 0 when every rank contributes its shard."""
    width = max(len(s) for s in shards)

    def padded(tensors, fill):
        out = []
        for t in tensors:
            p = torch.full((width,), fill, dtype=t.dtype)
            p[: len(t)] = t
            out.append(p)
        return out

    acc = FakeAccelerator(len(shards))
    acc.contributions = [[torch.tensor([len(s)]) for s in shards], padded(shards, -1)]
    acc.contributions += [padded([v[name] for v in values], 0) for name in sorted(values[0])]
    return gather_rows(acc, shards[0], values[0], n)


@pytest.mark.parametrize("sharding", [strided, batches_round_robin])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [1, 5, 203])
def test_gather_rows_places_every_row_once(sharding, world, n):
    shards = sharding(n, world)
    values = [{"el2n": s.float() * 2, "grand": s.double() + 0.5} for s in shards]
    placed = simulate(shards, values, n)
    np.testing.assert_array_equal(placed["el2n"], np.arange(n) * 2.0)
    np.testing.assert_array_equal(placed["grand"], np.arange(n) + 0.5)


def test_gather_rows_refuses_duplicates_gaps_and_misaligned_values():
    with pytest.raises(RuntimeError, match="exactly once"):  # row 1 missing, row 0 twice
        simulate([torch.tensor([0, 2]), torch.tensor([0, 3])], [{}, {}], 4)
    with pytest.raises(ValueError, match=r"values\['el2n'\] has 1 entries for 2 rows"):
        gather_rows(FakeAccelerator(1), torch.tensor([0, 1]), {"el2n": torch.zeros(1)}, 2)


@pytest.mark.multi_process
@pytest.mark.slow
def test_one_and_two_processes_give_the_same_scores(tmp_path, tiny_parquet):
    def args(out):
        return [
            "--output-dir",
            str(out),
            "--dataset",
            str(tiny_parquet),
            "--seeds",
            "0,1,2",
            "--at",
            "0,1",
            "--scores",
            "el2n,grand,forgetting",
            "--width",
            "0.25",
            "--batch-size",
            "32",
            "--eval-batch-size",
            "50",
            "--no-progress",
            "-v",
        ]

    one, two = tmp_path / "one", tmp_path / "two"
    run_engine(args(one))
    result = run_engine(args(two), launcher=TORCHRUN)
    assert result.stderr.count("datadiet_hub.scoring.run: 203 rows") == 1, (
        "the setup line comes from the main process only"
    )
    assert result.stdout.count("Scores written to") == 1
    assert "3 seed" not in result.stderr
    assert "[rank 1] seed 1 trained" in result.stderr and "[rank 0] seed 2 trained" in result.stderr

    prov = yaml.safe_load((two / "README.md").read_text().split("---")[1])["datadiet"]
    assert prov["hardware"].startswith("2 process(es)")
    assert configs_in(one) == configs_in(two) == ["cnn-ep0", "cnn-ep1"]
    for config in configs_in(one):
        a, b = read_scores(one, config), read_scores(two, config)
        assert list(a) == list(b)
        for name in ("idx", "example_id", "label", "forgetting_per_seed", "never_learned"):
            if name in a:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{config}/{name}")
        for name in ("el2n_per_seed", "grand_per_seed", "el2n", "grand"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=f"{config}/{name}")


@pytest.mark.multi_process
def test_an_error_on_the_main_process_stops_both(tmp_path):
    result = run_engine(
        [
            "--output-dir",
            str(tmp_path / "out"),
            "--dataset",
            str(tmp_path / "missing.parquet"),
            "--data-files",
            str(tmp_path / "missing.parquet"),
            "--no-progress",
        ],
        launcher=TORCHRUN,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    # Both processes raise the main process's error (rank 1 does not wait at a barrier until a timeout).
    assert result.stderr.count("SourceNotFoundError: Could not load dataset") == 2, result.stderr[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.multi_process
def test_two_machines_on_localhost_give_the_scores_of_one_process(tmp_path, tiny_parquet):
    """Two 'machines' (torchrun --nnodes 2, one process each, a static rendezvous on 127.0.0.1, gloo on the CPU)
    sharing one output folder, as nodes share a file system: the same scores as a single process."""
    import subprocess

    from conftest import LAUNCH, REPO_ROOT, subprocess_env

    def args(out):
        return [
            *("--output-dir", str(out), "--dataset", str(tiny_parquet), "--seeds", "0,1", "--at", "1"),
            *("--scores", "el2n,grand", "--width", "0.25", "--batch-size", "64", "--no-progress", "-v"),
        ]

    one, two = tmp_path / "one", tmp_path / "two"
    run_engine(args(one))
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank)),
                *("--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port)),
                *(str(LAUNCH), *args(two)),
            ],
            cwd=REPO_ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240) for node in nodes]
    for node, (_stdout, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-3000:]
    logs = outputs[0][1] + outputs[1][1]
    assert "[rank 0] seed 0 trained" in logs and "[rank 1] seed 1 trained" in logs  # one seed per machine
    prov = yaml.safe_load((two / "README.md").read_text().split("---")[1])["datadiet"]
    assert prov["hardware"].startswith("2 process(es)")
    a, b = read_scores(one, "cnn-ep1"), read_scores(two, "cnn-ep1")
    np.testing.assert_array_equal(a["example_id"], b["example_id"])
    for name in ("el2n_per_seed", "grand_per_seed"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
