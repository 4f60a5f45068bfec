"""GraNd on tiny random-weight ``transformers`` models, against the float64 one-example-at-a-time loop.

Each accepted model is checked per layer on a batch with T != N (where the first-batch self-check runs) and then on a
batch with T == N (where a shape test could take a tensor shared by the batch for one row per example). Each refused
model must name the module and the real obstacle.
"""

from __future__ import annotations

import pytest
import torch

from datadiet_hub.scoring.metrics.grand import UnsupportedModuleError, per_example_layer_sq_norms
from datadiet_hub.scoring.metrics.reference import naive_layer_sq_norms

transformers = pytest.importorskip("transformers")

VOCAB, LABELS, RTOL = 100, 3, 1e-6
TEXT = dict(vocab_size=VOCAB, num_labels=LABELS)
BERTISH = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **TEXT)
DECODER = dict(BERTISH, num_key_value_heads=1, max_position_embeddings=32, pad_token_id=0)


def _config(name: str):  # a transformers config
    t = transformers
    return {
        "bert": lambda: t.BertConfig(max_position_embeddings=32, **BERTISH),
        "distilbert": lambda: t.DistilBertConfig(
            dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=32, **TEXT
        ),
        "roberta": lambda: t.RobertaConfig(max_position_embeddings=40, pad_token_id=1, **BERTISH),
        "albert": lambda: t.AlbertConfig(embedding_size=8, max_position_embeddings=32, **BERTISH),
        "mpnet": lambda: t.MPNetConfig(max_position_embeddings=40, **BERTISH),
        "gpt2": lambda: t.GPT2Config(
            n_embd=16, n_layer=1, n_head=2, n_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, **TEXT
        ),
        "llama": lambda: t.LlamaConfig(**DECODER),
        "qwen2": lambda: t.Qwen2Config(**DECODER),
        "mistral": lambda: t.MistralConfig(**DECODER),
        "t5": lambda: t.T5Config(
            d_model=16,
            d_ff=32,
            d_kv=8,
            num_layers=1,
            num_decoder_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
            **TEXT,
        ),
        "perceiver": lambda: t.PerceiverConfig(
            num_latents=4,
            d_latents=16,
            d_model=16,
            num_blocks=1,
            num_self_attends_per_block=1,
            num_self_attention_heads=2,
            num_cross_attention_heads=1,
            max_position_embeddings=32,
            **TEXT,
        ),
        "deberta-v2": lambda: t.DebertaV2Config(
            max_position_embeddings=32,
            relative_attention=True,
            position_buckets=8,
            pos_att_type=["p2c", "c2p"],
            **BERTISH,
        ),
        "bart": lambda: t.BartConfig(
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=32,
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=2,
            **TEXT,
        ),
        "vit": lambda: t.ViTConfig(
            image_size=8,
            patch_size=4,
            num_channels=3,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=LABELS,
        ),
    }[name]()


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = _config(name)
    auto = (
        transformers.AutoModelForImageClassification
        if name == "vit"
        else transformers.AutoModelForSequenceClassification
    )
    model = auto.from_config(config).to(torch.float64)
    with torch.no_grad():  # away from the initialization's zeros and ones, so every parameter really matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _batch(name: str, n: int, t: int) -> dict[str, torch.Tensor]:
    if name == "vit":
        return {"pixel_values": torch.randn(n, 3, 8, 8, dtype=torch.float64)}
    ids = torch.randint(3, VOCAB, (n, t))
    eos = {"t5": 1, "bart": 2}.get(name)
    if eos is not None:
        ids[:, -1] = eos  # encoder-decoder classifiers pool at the end-of-sequence token
    mask = torch.ones(n, t, dtype=torch.long)
    mask[0, -2:] = 0  # one padded example
    return {"inputs" if name == "perceiver" else "input_ids": ids, "attention_mask": mask}


def _check(model: torch.nn.Module, batch: dict, y: torch.Tensor) -> None:
    ours = per_example_layer_sq_norms(model, batch, y)
    expected = naive_layer_sq_norms(model, batch, y)
    assert set(ours) == set(expected)
    total = torch.stack(list(expected.values())).sum(0)
    torch.testing.assert_close(torch.stack(list(ours.values())).sum(0), total, rtol=RTOL, atol=0)
    for name, ref in expected.items():
        torch.testing.assert_close(ours[name], ref, rtol=RTOL, atol=1e-12 * float(total.max()), msg=name)


ACCEPTED = ["bert", "distilbert", "roberta", "albert", "mpnet", "gpt2", "llama", "qwen2", "mistral", "t5", "perceiver",
            "vit"]  # fmt: skip


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_models_are_exact_with_and_without_length_equal_to_batch(name):
    model = _model(name)
    for n, t in ((3, 5), (4, 4)):  # the self-check runs on the first; the second has T == N
        _check(model, _batch(name, n, t), torch.randint(0, LABELS, (n,)))


REFUSED = {
    # DeBERTa reads its relative-position table as `rel_embeddings.weight`, outside the module's call.
    "deberta-v2": r"Parameter 'deberta\.encoder\.rel_embeddings\.weight'.*outside that module's forward.*read directly",
    # BART ties the encoder's and decoder's token embeddings through an Embedding subclass with its own forward.
    "bart": r"'model\.encoder\.embed_tokens' \(BartScaledWordEmbedding\) was called 2 times.*tied token embeddings"
    r".*no closed-form rule.*subclass with its own forward",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_models_name_the_module_and_the_real_obstacle(name):
    with pytest.raises(UnsupportedModuleError, match=REFUSED[name]):
        per_example_layer_sq_norms(_model(name), _batch(name, 3, 5), torch.tensor([0, 1, 2]))
