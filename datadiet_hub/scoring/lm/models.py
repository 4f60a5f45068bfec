"""Reference language models: the registry's small causal transformer, ``transformers:`` configs (random init) and
local pretrained checkpoints.

Every model takes ``input_ids`` (+ ``attention_mask``) and returns next-token logits ``[B, T, V]`` (a tensor or an
output with ``.logits``). Batches are right-padded, so with causal attention a real position never sees padding.
Output and input embeddings are not tied by default: GraNd's hooks need each weight used by one module.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError

from ..models import TRANSFORMERS_PREFIX, _config_value
from ..transformer import _model_dim


class CausalTransformer(nn.Module):
    """GPT-style decoder: token + learned positional embeddings, pre-norm layers with causal self-attention, a final
    LayerNorm and an untied output layer. No dropout: brief training, deterministic scores."""

    def __init__(
        self, *, vocab_size: int, max_length: int = 128, width: float = 1.0, depth: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        dim = _model_dim(128, width, heads)
        self.max_length = max_length
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(max_length, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]``; ``attention_mask`` is accepted for the common call signature and not needed
        (right padding + causal attention: real positions never attend to pads)."""
        return self.head(self.hidden_states(input_ids, attention_mask))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """What the output layer ``head`` reads ``[B, T, D]``: scoring applies the head chunk by chunk from here, so
        the ``[B, T, V]`` logits never exist at once."""
        length = input_ids.shape[1]
        if length > self.max_length:
            raise InvalidArgumentError(f"input_ids has {length} tokens, more than max_length={self.max_length}.")
        h = self.tokens(input_ids) + self.positions(torch.arange(length, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device, dtype=h.dtype)
        h = self.layers(h, mask=causal, is_causal=True)
        return self.norm(h)


def causal_transformer(
    *, vocab_size: int, max_length: int = 128, width: float = 1.0, depth: int = 2, heads: int = 4
) -> CausalTransformer:
    """Registry model ``causal-transformer``: width ``128 * width``, 2 layers, 4 heads (0.3M parameters + the
    embeddings at width 1)."""
    return CausalTransformer(vocab_size=vocab_size, max_length=max_length, width=width, depth=depth, heads=heads)


LM_MODELS = {"causal-transformer": causal_transformer}
DEFAULT_LM = "causal-transformer"


def is_pretrained_checkpoint(name: str) -> bool:
    """A local folder with a ``config.json`` and weights (``model.safetensors`` or ``pytorch_model.bin``)."""
    folder = Path(name)
    return (
        folder.is_dir()
        and (folder / "config.json").is_file()
        and any(
            (folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        )
    )


def build_lm(
    name: str, *, vocab_size: int, max_length: int, pad_token_id: int, width: float = 1.0, seed: int = 0
) -> nn.Module:
    """The reference LM of ``seed``: a registry name, ``transformers:<model_type>?k=v&...`` or a local
    ``config.json`` (random init from ``torch.manual_seed(seed)``), or a pretrained checkpoint folder (its weights;
    the seed then only changes the data order)."""
    torch.manual_seed(seed)
    if name in LM_MODELS:
        return LM_MODELS[name](vocab_size=vocab_size, max_length=max_length, width=width)
    if is_pretrained_checkpoint(name):
        transformers = _transformers(name)
        model = transformers.AutoModelForCausalLM.from_pretrained(name, local_files_only=True)
        if model.get_input_embeddings().num_embeddings < vocab_size:
            raise InvalidArgumentError(
                f"The checkpoint {name!r} has {model.get_input_embeddings().num_embeddings} token embeddings but the "
                f"tokenizer has {vocab_size} tokens: score with the checkpoint's own tokenizer (--tokenizer "
                f"{os.path.join(name, 'tokenizer.json')})."
            )
        return model
    if name.startswith(TRANSFORMERS_PREFIX):
        return _from_config(name[len(TRANSFORMERS_PREFIX) :], vocab_size, max_length, pad_token_id)
    raise InvalidArgumentError(
        f"Unknown language model {name!r}. Choose {', '.join(LM_MODELS)}, a 'transformers:<model_type>?key=value' "
        "config (e.g. transformers:gpt2?n_layer=2&n_embd=64&n_head=2), or a local pretrained checkpoint folder "
        "(config.json + model.safetensors)."
    )


def _transformers(spec: str):
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(f"--model {spec} needs transformers: pip install 'datadiet-hub[transformers]'.") from err
    return transformers


def _from_config(spec: str, vocab_size: int, max_length: int, pad_token_id: int) -> nn.Module:
    """An ``AutoModelForCausalLM`` from a model type with overrides, or from a local config.json; random init."""
    transformers = _transformers(spec)
    base, _, query = spec.partition("?")
    overrides = {k: _config_value(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
    overrides.setdefault("tie_word_embeddings", False)
    if os.path.exists(base):
        path = os.path.join(base, "config.json") if os.path.isdir(base) else base
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, **overrides)
    else:
        try:
            config = transformers.AutoConfig.for_model(base, **overrides)
        except ValueError as err:
            raise InvalidArgumentError(
                f"--model transformers:{spec}: {base!r} is neither a local config.json nor a transformers model type "
                f"({err})."
            ) from err
    config.vocab_size = vocab_size
    config.pad_token_id = pad_token_id
    for key in ("max_position_embeddings", "n_positions"):
        if getattr(config, key, max_length) < max_length:
            setattr(config, key, max_length)
    try:
        return transformers.AutoModelForCausalLM.from_config(config)
    except ValueError as err:
        raise InvalidArgumentError(f"--model transformers:{spec} is not a causal language model ({err}).") from err
