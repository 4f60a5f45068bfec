"""``loss`` and ``el2n`` computed from the hidden states before the output layer, chunk by chunk, against float64
formulas on the model's own full logits; and the models that must not be split (logit soft-capping, a changed
head) scored from their full logits, with the same scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datadiet_hub.scoring.lm import head
from datadiet_hub.scoring.lm.engine import _token_sums
from datadiet_hub.scoring.lm.head import next_token_scores, output_split
from datadiet_hub.scoring.lm.metrics import IGNORE, hidden_token_scores, next_token_labels, token_scores
from datadiet_hub.scoring.lm.models import build_lm
from datadiet_hub.scoring.loops import LABELS

VOCAB = 37


def _reference(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Loss and EL2N of the counted positions in float64, from the explicit T x V probabilities."""
    counted = labels != IGNORE
    z = logits.double()[counted]
    loss = F.cross_entropy(z, labels[counted], reduction="none")
    el2n = (z.softmax(-1) - F.one_hot(labels[counted], z.shape[-1]).double()).norm(dim=-1)
    return loss.detach().numpy(), el2n.detach().numpy(), counted


def _batch(b: int = 4, t: int = 11, vocab: int = VOCAB, seed: int = 0, padded: bool = True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, t), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        for row, n in enumerate([t, 7, 2, 5][:b]):
            mask[row, n:] = 0
        ids[mask == 0] = 0
    return ids, mask


@pytest.mark.parametrize("padded", [True, False])  # index copies of the counted rows, or plain slices
@pytest.mark.parametrize("chunk_bytes", [4 * VOCAB, 4 * VOCAB * 3, 1 << 21])  # one row, a ragged last chunk, one
def test_hidden_scores_match_float64_formulas(padded, chunk_bytes):
    g = torch.Generator().manual_seed(1)
    ids, mask = _batch(padded=padded)
    labels = next_token_labels(ids, mask)
    hidden = torch.randn(*ids.shape, 8, generator=g)
    weight, bias = torch.randn(VOCAB, 8, generator=g), torch.randn(VOCAB, generator=g)
    loss, el2n = hidden_token_scores(hidden, weight, bias, labels, chunk_bytes=chunk_bytes)
    expected_loss, expected_el2n, counted = _reference(
        F.linear(hidden.double(), weight.double(), bias.double()), labels
    )
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-5, atol=1e-6)
    assert (loss[~counted] == 0).all() and (el2n[~counted] == 0).all()
    only_el2n = hidden_token_scores(hidden, weight, None, labels, chunk_bytes=chunk_bytes, want=("el2n",))
    assert (only_el2n[0] == 0).all()  # a score not asked for stays 0


def test_extreme_logits_stay_finite_and_exact():
    labels = torch.tensor([[0, 1, 2, IGNORE]])
    hidden = torch.tensor([[[1.0], [1.0], [-1.0], [0.0]]], dtype=torch.float64)
    weight = torch.tensor([[500.0], [-500.0], [0.0]], dtype=torch.float64)  # logits far beyond exp's range
    loss, el2n = hidden_token_scores(hidden, weight, None, labels)
    expected_loss, expected_el2n, counted = _reference(F.linear(hidden, weight), labels)
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-6, atol=1e-7)
    assert loss[0, 1].item() == pytest.approx(1000.0)  # the target's probability underflows; its loss does not


SPLIT_MODELS = [
    "causal-transformer",
    "transformers:gpt2?n_layer=1&n_embd=16&n_head=2",
    "transformers:llama?num_hidden_layers=1&hidden_size=16&intermediate_size=32&num_attention_heads=2"
    "&num_key_value_heads=1",
]


@pytest.mark.parametrize("name", SPLIT_MODELS)
def test_models_split_at_the_output_layer_give_the_scores_of_their_full_logits(name):
    model = build_lm(name, vocab_size=VOCAB, max_length=16, pad_token_id=0, width=0.125, seed=2).double().eval()
    assert output_split(model) is not None
    ids, mask = _batch(seed=3)
    inputs, labels = {"input_ids": ids, "attention_mask": mask}, next_token_labels(ids, mask)
    with torch.no_grad():
        loss, el2n = next_token_scores(model, inputs, labels)
        out = model(**inputs)
    logits = out if isinstance(out, torch.Tensor) else out.logits
    assert head._CHECKED[model]  # scored from the hidden states, not the full logits
    expected_loss, expected_el2n, counted = _reference(logits, labels)
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-6, atol=1e-7)
    sums = _token_sums(["loss", "el2n"])(model, {**inputs, LABELS: labels})  # the engine's column layout
    np.testing.assert_allclose(sums[:, 0].numpy(), counted.sum(1).numpy())
    np.testing.assert_allclose(sums[:, 1].numpy(), loss.sum(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(sums[:, 2].numpy(), el2n.sum(1).numpy(), rtol=1e-6)


def test_soft_capped_logits_are_scored_from_the_full_logits():
    transformers = pytest.importorskip("transformers")
    config = transformers.Gemma2Config(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=16, pad_token_id=0, final_logit_softcapping=0.5,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).double().eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(50)  # logits well past the cap: tanh is far from the identity
    assert output_split(model) is None
    ids, mask = _batch(seed=4)
    inputs, labels = {"input_ids": ids, "attention_mask": mask}, next_token_labels(ids, mask)
    with torch.no_grad():
        loss, el2n = next_token_scores(model, inputs, labels)
        logits = model(**inputs).logits
        uncapped = model.get_output_embeddings()(model.model(**inputs).last_hidden_state)
    assert logits.abs().max() <= 0.5 and uncapped.abs().max() > 5  # the cap changes the logits
    expected_loss, expected_el2n, counted = _reference(logits, labels)
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-6, atol=1e-7)


def test_a_head_changed_after_the_output_layer_is_caught_on_the_first_batch():
    model = build_lm(SPLIT_MODELS[2], vocab_size=VOCAB, max_length=16, pad_token_id=0, seed=5).double().eval()
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: 3 * out)  # a logit scale
    assert output_split(model) is not None  # the model's type allows the split; its own logits refuse it
    ids, mask = _batch(seed=6)
    inputs, labels = {"input_ids": ids, "attention_mask": mask}, next_token_labels(ids, mask)
    with torch.no_grad():
        loss, el2n = next_token_scores(model, inputs, labels)
        logits = model(**inputs).logits
    assert not head._CHECKED[model]
    expected_loss, expected_el2n, counted = _reference(logits, labels)
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-6, atol=1e-7)
    unscaled = token_scores(logits / 3, labels)[0]
    assert not torch.allclose(loss, unscaled)  # the split would have given other scores


def test_a_subclass_is_not_split():
    transformers = pytest.importorskip("transformers")

    class Scaled(transformers.LlamaForCausalLM):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2
            return out

    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1,
    )  # fmt: skip
    assert output_split(Scaled(config)) is None
    assert output_split(transformers.LlamaForCausalLM(config)) is not None


def test_chunks_are_sized_per_cpu_thread_and_larger_on_an_accelerator():
    from datadiet_hub.scoring.lm import metrics

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert metrics.default_chunk_bytes(torch.device("cpu")) == metrics.CHUNK_BYTES
        torch.set_num_threads(1)
        assert metrics.default_chunk_bytes(torch.device("cpu")) == metrics.CHUNK_BYTES
    finally:
        torch.set_num_threads(threads)
    assert metrics.default_chunk_bytes(torch.device("cuda")) == metrics.DEVICE_CHUNK_BYTES > metrics.CHUNK_BYTES


def test_a_base_model_that_rejects_the_call_falls_back_to_the_full_logits(monkeypatch):
    model = build_lm(SPLIT_MODELS[1], vocab_size=VOCAB, max_length=16, pad_token_id=0, seed=7).double().eval()

    def refuse(*args, **kwargs):
        raise TypeError("forward() got an unexpected keyword argument 'use_cache'")

    split = output_split(model)
    assert split is not None
    monkeypatch.setattr(head, "output_split", lambda m: head.OutputSplit(refuse, split.weight, split.bias))
    ids, mask = _batch(seed=8)
    inputs, labels = {"input_ids": ids, "attention_mask": mask}, next_token_labels(ids, mask)
    with torch.no_grad():
        loss, el2n = next_token_scores(model, inputs, labels)
        logits = model(**inputs).logits
    assert not head._CHECKED[model]
    expected_loss, expected_el2n, counted = _reference(logits, labels)
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss, rtol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n, rtol=1e-6, atol=1e-7)


def test_worker_threads_give_the_same_scores_without_a_graph():

    g = torch.Generator().manual_seed(9)
    ids, mask = _batch(b=4, t=11)
    labels = next_token_labels(ids, mask)
    hidden = torch.randn(*ids.shape, 8, generator=g, requires_grad=True)  # as in a scoring pass with grad on
    weight = torch.randn(VOCAB, 8, generator=g, requires_grad=True)
    threads = torch.get_num_threads()
    results = {}
    try:
        for n in (1, 3):  # one thread: the caller's loop; three: a share of the chunks per worker thread
            torch.set_num_threads(n)
            results[n] = hidden_token_scores(hidden, weight, None, labels, chunk_bytes=4 * VOCAB * 2)
            with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast is per thread: the caller's loop runs it
                results[(n, "bf16")] = hidden_token_scores(hidden, weight, None, labels, chunk_bytes=4 * VOCAB * 2)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    for scores in results.values():
        assert not any(t.requires_grad for t in scores)
    for one, three in zip(results[1], results[3], strict=True):
        torch.testing.assert_close(one, three, rtol=1e-6, atol=1e-6)
    expected_loss, _, counted = _reference(F.linear(hidden.detach().double(), weight.detach().double()), labels)
    np.testing.assert_allclose(results[3][0][counted].numpy(), expected_loss, rtol=1e-5, atol=1e-5)
    for one, three in zip(results[(1, "bf16")], results[(3, "bf16")], strict=True):
        torch.testing.assert_close(one, three)  # the same bfloat16 logits either way
    assert not torch.equal(results[(3, "bf16")][0], results[3][0])  # autocast really applied


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_scores_with_its_own_worker_threads():
    import os

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        hidden, weight = torch.randn(2, 40, 4), torch.randn(VOCAB, 4)
        labels = torch.randint(0, VOCAB, (2, 40))
        parent = hidden_token_scores(hidden, weight, None, labels, chunk_bytes=4 * VOCAB * 4)  # starts the workers
        pid = os.fork()
        if pid == 0:  # the child: the parent's worker threads do not exist here
            child = hidden_token_scores(hidden, weight, None, labels, chunk_bytes=4 * VOCAB * 4)
            os._exit(0 if all(torch.equal(a, b) for a, b in zip(parent, child, strict=True)) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        torch.set_num_threads(threads)
