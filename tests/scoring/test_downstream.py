"""Downstream training used by the demo and the experiments: deterministic, exact step count, cosine schedule."""

import pytest
import torch

from datadiet_hub.downstream.train import cosine_lr, train_and_evaluate
from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.data import Preprocess, TensorData


def tiny(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = (torch.rand(n, 1, 8, 8, generator=g) * 60 + labels.view(-1, 1, 1, 1) * 60).to(torch.uint8)
    return TensorData(images, labels, [], 3)


def test_same_seed_same_result_and_exact_steps():
    cfg = ScoringConfig(model="mlp", batch_size=16, lr=0.05)
    train, test = tiny(), tiny(seed=1)
    pre = Preprocess([0.5], [0.25], "none")
    a = train_and_evaluate(cfg, train, test, pre, seed=3, steps=10, progress=False, device="cpu")
    b = train_and_evaluate(cfg, train, test, pre, seed=3, steps=10, progress=False, device="cpu")
    assert a.test_accuracy == b.test_accuracy and a.steps == 10 and a.examples == 64
    assert a.test_accuracy > 0.5  # the classes are separable by brightness


def test_cosine_schedule_and_bad_schedule():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
        train_and_evaluate(
            ScoringConfig(model="mlp"),
            tiny(),
            tiny(),
            Preprocess([0.5], [0.25], "none"),
            seed=0,
            steps=1,
            schedule="linear",
            progress=False,
        )


# -- the shared loops (scoring.loops): batch sources, train_loop, evaluate -------------------------------------------


def test_shuffled_batches_visit_every_row_once_per_epoch_and_depend_only_on_the_step():
    from datadiet_hub.scoring.loops import shuffled_batches
    from datadiet_hub.scoring.train import seed_generator

    data, pre = tiny(n=10), Preprocess([0.5], [0.25], "none")

    def batches(steps):
        return list(
            shuffled_batches(
                data.images,
                data.labels,
                pre,
                batch_size=4,
                steps=steps,
                order=lambda e: seed_generator("t", e),
            )
        )

    whole = batches(range(6))  # 3 steps per epoch (4, 4, 2 rows), 2 epochs
    assert [len(b["idx"]) for b in whole] == [4, 4, 2] * 2
    for epoch in range(2):
        rows = torch.cat([b["idx"] for b in whole[3 * epoch : 3 * epoch + 3]])
        assert sorted(rows.tolist()) == list(range(10))
    epochs = [torch.cat([b["idx"] for b in whole[3 * e : 3 * e + 3]]) for e in range(2)]
    assert not torch.equal(epochs[0], epochs[1]), "each epoch reshuffles"
    resumed = batches(range(4, 6))
    for a, b in zip(whole[4:], resumed):
        assert torch.equal(a["idx"], b["idx"]) and torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["labels"], data.labels[a["idx"]])


def test_train_loop_resumed_midway_equals_one_run_and_calls_back_every_step():
    from datadiet_hub.scoring.loops import shuffled_batches, train_loop
    from datadiet_hub.scoring.train import make_model, make_optimizer, seed_generator

    cfg = ScoringConfig(model="cnn", width=0.25, batch_size=16, lr=0.05)
    data, pre = tiny(), Preprocess([0.5], [0.25], "crop-flip")

    def batches(steps):
        return shuffled_batches(
            data.images,
            data.labels,
            pre,
            batch_size=16,
            steps=steps,
            order=lambda e: seed_generator("o", e),
            augment=lambda s: seed_generator("a", s),
        )

    seen = []
    one = make_model(cfg, data, 0)
    opt = make_optimizer(cfg, one)
    done = train_loop(
        one, opt, batches(range(9)), lr=lambda s: 0.05 / (1 + s), callbacks=[lambda o: seen.append(o.step)]
    )
    assert done == 9 and seen == list(range(1, 10))

    two = make_model(cfg, data, 0)
    opt2 = make_optimizer(cfg, two)
    assert train_loop(two, opt2, batches(range(4)), lr=lambda s: 0.05 / (1 + s)) == 4
    state = {k: v.clone() for k, v in opt2.state_dict()["state"][0].items()}
    assert state  # momentum buffers exist
    assert train_loop(two, opt2, batches(range(4, 9)), start_step=4, lr=lambda s: 0.05 / (1 + s)) == 9
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(a, b), name
    assert opt2.param_groups[0]["lr"] == 0.05 / 9


def test_evaluate_keeps_row_order_restores_modes_and_unwraps_outputs():
    from types import SimpleNamespace

    from datadiet_hub.scoring.loops import correct, evaluate, model_inputs, ordered_batches, wrong

    data, pre = tiny(n=37), Preprocess([0.5], [0.25], "none")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.BatchNorm1d(3))
    model.train()
    rows = torch.tensor([5, 1, 30, 2, 36, 0])
    got = evaluate(model, ordered_batches(data.images, data.labels, pre, batch_size=4, rows=rows), correct)
    assert model.training and all(m.training for m in model.modules()), "flags restored"
    model.eval()
    with torch.no_grad():
        expected = model(pre(data.images[rows])).argmax(1) == data.labels[rows]
    assert torch.equal(got, expected)
    errors = evaluate(model, ordered_batches(data.images, data.labels, pre, batch_size=8), wrong)
    assert errors.shape == (37,) and torch.equal(
        errors, ~evaluate(model, ordered_batches(data.images, data.labels, pre, batch_size=5), correct)
    )

    class Wrapped(torch.nn.Module):  # transformers-style: keyword inputs, an output with .logits
        def forward(self, pixel_values, mask):
            return SimpleNamespace(logits=pixel_values.flatten(1)[:, :3] * mask)

    x, mask = torch.randn(2, 1, 8, 8), torch.ones(2, 1)
    batch = {"idx": torch.arange(2), "labels": torch.tensor([0, 2]), "pixel_values": x, "mask": mask}
    inputs = model_inputs(batch)
    assert list(inputs) == ["pixel_values", "mask"] and inputs["pixel_values"] is x and inputs["mask"] is mask
    assert torch.equal(evaluate(Wrapped(), [batch], correct), x.flatten(1)[:, :3].argmax(1) == batch["labels"])
    lone = {"idx": torch.arange(2), "labels": torch.tensor([0, 2]), "pixel_values": x}
    assert model_inputs(lone) is x  # a lone input goes positionally: model(x)
