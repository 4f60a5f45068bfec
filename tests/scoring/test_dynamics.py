"""The pure pieces of the training-dynamics analyses (experiments/dynamics), on tiny cases with known answers."""

import itertools

import numpy as np
import pytest
import torch

from experiments.dynamics.common import (
    el2n_bins,
    error_barrier,
    interpolate_state,
    kernel_distance,
    subspace_overlap,
    top_eigenspace,
)


def gram(n=6, p=4, seed=0):
    g = np.random.default_rng(seed).normal(size=(n, p))
    return g @ g.T


def test_kernel_distance_identical_scaled_orthogonal():
    k = gram()
    assert kernel_distance(k, k) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(k, 3.7 * k) == pytest.approx(0.0, abs=1e-12)
    a, b = np.diag([1.0, 0.0]), np.diag([0.0, 2.0])
    assert kernel_distance(a, b) == pytest.approx(1.0)
    assert kernel_distance(torch.tensor(a), torch.tensor(a)) == pytest.approx(0.0)


def test_kernel_distance_known_angle():
    # <I, diag(1,0)> = 1, ||I|| = sqrt(2), ||diag(1,0)|| = 1 -> 1 - 1/sqrt(2)
    assert kernel_distance(np.eye(2), np.diag([1.0, 0.0])) == pytest.approx(1 - 1 / np.sqrt(2))
    with pytest.raises(ValueError):
        kernel_distance(np.eye(2), np.eye(3))
    with pytest.raises(ValueError):
        kernel_distance(np.zeros((2, 2)), np.eye(2))


def test_error_barrier_flat_and_bump():
    assert error_barrier([0.1] * 11) == pytest.approx(0.0)
    bump = [0.1, 0.1, 0.2, 0.4, 0.6, 0.7, 0.6, 0.4, 0.2, 0.1, 0.1]
    assert error_barrier(bump) == pytest.approx(0.6)
    assert error_barrier(bump, reference="linear") == pytest.approx(0.6)


def test_error_barrier_unequal_endpoints():
    # a straight line from 0.0 to 0.4: no barrier against the linear reference, 0.2 above the endpoints' mean
    line = np.linspace(0.0, 0.4, 11)
    assert error_barrier(line, reference="linear") == pytest.approx(0.0, abs=1e-12)
    assert error_barrier(line) == pytest.approx(0.2)
    # bump of 0.3 at alpha = 0.5 on top of that line
    bumped = line.copy()
    bumped[5] += 0.3
    assert error_barrier(bumped, reference="linear") == pytest.approx(0.3)
    assert error_barrier(bumped) == pytest.approx(0.5 - 0.2)  # max 0.5 at alpha=0.5, endpoints' mean 0.2
    with pytest.raises(ValueError):
        error_barrier([0.1])


def test_subspace_overlap_same_and_orthogonal():
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))
    u, v = q[:, :3], q[:, 3:6]
    assert subspace_overlap(u, u) == pytest.approx(1.0)
    assert subspace_overlap(u, v) == pytest.approx(0.0, abs=1e-12)
    # same span, rotated basis: still 1
    r, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    assert subspace_overlap(u, u @ r) == pytest.approx(1.0)
    # half-overlapping 2-d subspaces: 1/2
    assert subspace_overlap(q[:, [0, 1]], q[:, [0, 2]]) == pytest.approx(0.5)


def test_top_eigenspace():
    k = np.diag([1.0, 5.0, 3.0, 0.5])
    u = top_eigenspace(k, 2)
    assert subspace_overlap(u, np.eye(4)[:, [1, 2]]) == pytest.approx(1.0)


def test_interpolate_state_endpoints_and_midpoint():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    a.train()(torch.randn(8, 3))  # give the BN buffers non-default values
    b.train()(torch.randn(8, 3) + 1)
    b(torch.randn(8, 3))
    sa, sb = a.state_dict(), b.state_dict()
    for alpha, ref in ((0.0, sa), (1.0, sb)):
        out = interpolate_state(sa, sb, alpha)
        for name in sa:
            assert torch.equal(out[name], ref[name]), name
    mid = interpolate_state(sa, sb, 0.5)
    assert torch.allclose(mid["0.weight"], (sa["0.weight"] + sb["0.weight"]) / 2)
    assert torch.allclose(mid["1.running_var"], (sa["1.running_var"] + sb["1.running_var"]) / 2)
    assert mid["1.num_batches_tracked"].dtype == torch.long
    a.load_state_dict(mid)  # loadable


def test_el2n_bins_equal_size_and_ordered():
    scores = np.random.default_rng(3).random(103)
    bins = el2n_bins(scores, 10)
    sizes = np.bincount(bins, minlength=10)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 103
    for lo in range(9):  # every score of bin b is <= every score of bin b+1
        assert scores[bins == lo].max() <= scores[bins == lo + 1].min()
    assert bins[np.argmin(scores)] == 0 and bins[np.argmax(scores)] == 9
    tied = el2n_bins(np.zeros(20), 4)
    assert list(np.bincount(tied)) == [5, 5, 5, 5]
    with pytest.raises(ValueError):
        el2n_bins(scores, 0)


def test_linear_kernels_match_vmap_oracle():
    from datadiet_hub.scoring.models import MLP
    from experiments.dynamics.kernel import linear_kernels, per_example_kernels

    torch.manual_seed(0)
    model = MLP(num_classes=3, in_channels=1, image_size=4, width=0.05).double()  # hidden 13, in-place ReLU
    x, y = torch.randn(7, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    fast, oracle = linear_kernels(model, x, y, 3), per_example_kernels(model, x, y, 3)
    for name in ("ntk", "lossgrad"):
        assert torch.allclose(fast[name], oracle[name], rtol=1e-9, atol=1e-12), name

    # loss-gradient Gram by hand for one pair: explicit per-example gradients
    def flat_grad(i):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    assert float(fast["lossgrad"][2, 5]) == pytest.approx(float(flat_grad(2) @ flat_grad(5)), rel=1e-9)
    assert linear_kernels(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()), x, y, 3) is None


def _tiny_setup(n=50):
    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.data import Preprocess, TensorData
    from experiments.dynamics.common import Setup

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    images = (torch.rand(n, 1, 6, 6, generator=g) * 80 + labels.view(-1, 1, 1, 1) * 60).to(torch.uint8)
    data = TensorData(images, labels, [], 3)
    cfg = ScoringConfig(model="mlp", width=0.1, batch_size=16, lr=0.1)
    spe = 4  # ceil(50 / 16)
    return Setup(cfg, data, data, Preprocess([0.4], [0.2], "none"), np.zeros(n), np.zeros(n, dtype=np.int64), 12, spe)


def test_train_steps_split_at_a_spawn_point_equals_one_run_and_children_differ_by_order():
    from datadiet_hub.scoring.train import make_model, make_optimizer
    from experiments.dynamics.common import train_steps

    setup = _tiny_setup()

    def trained(splits, key_after=("k", 0)):
        model = make_model(setup.cfg, setup.train, 0)
        opt = make_optimizer(setup.cfg, model)
        bounds = [0, *splits, setup.total_steps]
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            train_steps(model, opt, setup, start=a, stop=b, order_key=("k", 0) if i == 0 else key_after)
        return model.state_dict()

    one, split = trained([]), trained([5])
    for name in one:
        assert torch.equal(one[name], split[name]), name
    child = trained([5], key_after=("child", 1))
    assert not all(torch.equal(one[k], child[k]) for k in one), "another order after the spawn point"


def test_error_rate_is_the_per_example_0_1_error_in_eval_mode():
    from datadiet_hub.scoring.train import make_model
    from experiments.dynamics.common import error_rate

    setup = _tiny_setup()
    model = make_model(setup.cfg, setup.train, 0)
    model.train()
    wrong = error_rate(model, setup.train.images, setup.train.labels, setup.preprocess, batch_size=7)
    assert model.training, "the caller's mode is restored"
    model.eval()
    with torch.no_grad():
        expected = model(setup.preprocess(setup.train.images)).argmax(1) != setup.train.labels
    assert wrong.dtype == torch.bool and torch.equal(wrong, expected)
