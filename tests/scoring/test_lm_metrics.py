"""Causal-LM scores against direct float64 computations on tiny models: next-token loss vs F.cross_entropy, EL2N vs
the explicit T x V formula, GraNd vs one backward per document; labels, windows and their folding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datadiet_hub.scoring.lm.corpus import cut_windows
from datadiet_hub.scoring.lm.engine import fold_windows
from datadiet_hub.scoring.lm.metrics import IGNORE, document_loss, next_token_labels, token_scores, window_sums
from datadiet_hub.scoring.lm.models import build_lm
from datadiet_hub.scoring.metrics.grand import per_example_grad_norms


def _batch(b: int = 4, t: int = 11, vocab: int = 37, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, t), generator=g)
    mask = torch.ones_like(ids)
    lengths = [t, 7, 2, 5][:b]
    for row, n in enumerate(lengths):
        mask[row, n:] = 0
    ids[mask == 0] = 0
    return ids, mask


def test_labels_never_count_pads_or_the_first_token():
    ids, mask = _batch()
    labels = next_token_labels(ids, mask)
    lengths = mask.sum(1)
    assert ((labels != IGNORE).sum(1) == lengths - 1).all()  # n tokens predict n - 1
    for row in range(len(ids)):
        n = int(lengths[row])
        assert torch.equal(labels[row, : n - 1], ids[row, 1:n])  # position t predicts token t + 1
        assert (labels[row, n - 1 :] == IGNORE).all()  # the last real token and every pad predict nothing


@pytest.mark.parametrize("chunk_bytes", [4 * 37, 4 * 37 * 5, 1 << 26])
def test_loss_and_el2n_match_the_direct_float64_formulas(chunk_bytes):
    ids, mask = _batch()
    labels = next_token_labels(ids, mask)
    logits = torch.randn(*ids.shape, 37, dtype=torch.float64) * 3
    loss, el2n = token_scores(logits, labels, chunk_bytes=chunk_bytes)
    counted = labels != IGNORE
    expected_loss = F.cross_entropy(logits[counted], labels[counted], reduction="none")
    p = logits[counted].softmax(-1)
    expected_el2n = (p - F.one_hot(labels[counted], 37).double()).norm(dim=-1)  # the T x V matrix, explicitly
    np.testing.assert_allclose(loss[counted].numpy(), expected_loss.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(el2n[counted].numpy(), expected_el2n.numpy(), rtol=1e-4, atol=1e-5)
    assert (loss[~counted] == 0).all() and (el2n[~counted] == 0).all()
    sums = window_sums(logits, labels)
    assert torch.equal(sums["tokens"], counted.sum(1))


def test_el2n_known_values():
    labels = torch.tensor([[3, IGNORE]])
    uniform = torch.zeros(1, 2, 5)
    _, el2n = token_scores(uniform, labels)
    assert el2n[0, 0].item() == pytest.approx((4 / 5) ** 0.5, rel=1e-6)  # sqrt((K - 1) / K) for a uniform guess
    sure = torch.full((1, 2, 5), -1e4)
    sure[0, 0, 3] = 1e4
    _, el2n = token_scores(sure, labels)
    assert el2n[0, 0].item() == pytest.approx(0.0, abs=1e-6)


MODELS = [
    "causal-transformer",
    "transformers:gpt2?n_layer=2&n_embd=16&n_head=2",
    "transformers:llama?num_hidden_layers=1&hidden_size=16&intermediate_size=32&num_attention_heads=2"
    "&num_key_value_heads=1",
]


@pytest.mark.parametrize("name", MODELS)
def test_grand_is_the_per_document_gradient_norm(name):
    model = build_lm(name, vocab_size=37, max_length=16, pad_token_id=0, width=0.125, seed=3).double().eval()
    ids, mask = _batch(seed=1)
    labels = next_token_labels(ids, mask)
    fast = per_example_grad_norms(model, {"input_ids": ids, "attention_mask": mask}, labels, loss_fn=document_loss)
    params = [p for p in model.parameters() if p.requires_grad]
    expected = []
    for row in range(len(ids)):  # the naive loop: one document alone, trimmed to its real tokens
        n = int(mask[row].sum())
        logits = model(input_ids=ids[row : row + 1, :n], attention_mask=mask[row : row + 1, :n])
        logits = logits if isinstance(logits, torch.Tensor) else logits.logits
        loss = F.cross_entropy(logits[0, :-1], ids[row, 1:n])  # the mean over the document's predicted tokens
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        expected.append(sum(g.square().sum() for g in grads if g is not None).sqrt())
    np.testing.assert_allclose(fast.numpy(), torch.stack(expected).detach().numpy(), rtol=1e-8)


def test_windows_predict_every_token_once_and_fold_to_the_token_mean():
    lengths = np.array([1, 2, 5, 9, 10, 23])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    windows = cut_windows(offsets, 5)
    predicted = {}
    for start, length in zip(windows.start, windows.length, strict=True):
        assert 2 <= length <= 5
        for position in range(start + 1, start + length):  # the tokens this window predicts
            predicted[position] = predicted.get(position, 0) + 1
    expected = {int(offsets[d]) + k for d in range(len(lengths)) for k in range(1, lengths[d])}
    assert set(predicted) == expected and set(predicted.values()) == {1}
    # per-window token sums fold into the mean over the document's tokens
    rng = np.random.default_rng(0)
    per_token = rng.random(int(offsets[-1]))
    tokens = windows.length - 1
    sums = np.array([per_token[s + 1 : s + n].sum() for s, n in zip(windows.start, windows.length, strict=True)])
    grand = rng.random(len(windows))
    docs = fold_windows(windows, len(lengths), {"loss": sums, "tokens": tokens, "grand": grand}, ["loss", "grand"])
    assert docs["num_tokens"].tolist() == (lengths - 1).tolist()
    for d in range(1, len(lengths)):
        mine = per_token[offsets[d] + 1 : offsets[d + 1]].mean()
        assert docs["loss"][d] == pytest.approx(mine, rel=1e-5)
        rows = windows.doc == d
        assert docs["grand"][d] == pytest.approx(np.average(grand[rows], weights=tokens[rows]), rel=1e-5)
    assert docs["loss"][0] == 0 and docs["num_tokens"][0] == 0  # a one-token document predicts nothing


def test_precision_applies_to_corpus_scoring():
    """``--precision bf16`` scores a corpus under bf16 as it does a classifier's rows: ``loss``/``el2n`` under
    autocast, ``grand`` on a bfloat16 copy of the model. Same model, same windows: the scores move, slightly."""
    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.lm.corpus import Corpus
    from datadiet_hub.scoring.lm.engine import score_windows

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 30, size=12)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.integers(1, 37, size=int(offsets[-1])).astype(np.int32)
    ids = np.array([f"doc{i}".encode() for i in range(len(lengths))])
    corpus = Corpus(tokens, offsets, ids, pad_id=0, vocab_size=37, source={})
    windows = corpus.windows(16)
    model = build_lm("causal-transformer", vocab_size=37, max_length=16, pad_token_id=0, width=0.125, seed=3).eval()

    def scores(precision: str) -> dict[str, np.ndarray]:
        cfg = ScoringConfig(scores=["loss", "el2n", "grand"], precision=precision, eval_batch_size=4)
        _, values = score_windows(cfg, model, corpus, windows, torch.device("cpu"))
        assert all(v.dtype == torch.float32 for v in values.values())
        return {k: v.numpy() for k, v in values.items()}

    fp32, bf16 = scores("fp32"), scores("bf16")
    assert np.array_equal(fp32["tokens"], bf16["tokens"])
    for name in ("loss", "el2n", "grand"):
        assert not np.array_equal(fp32[name], bf16[name]), f"{name} was not computed under bf16"
        np.testing.assert_allclose(bf16[name], fp32[name], rtol=0.05, err_msg=name)
