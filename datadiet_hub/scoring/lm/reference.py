"""The trained reference models of a finished (or trained) corpus run, loaded from its checkpoints, scoring any
texts with the run's tokenizer, windows and metric computations: what a datatrove task, or any other process,
needs to score documents the run never saw.

``ReferenceModels(run_dir).score(texts)`` gives per document the same values the run wrote for its own corpus:
the mean over seeds, the std and the per-seed values of every score, and ``num_tokens``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadiet_hub.errors import InputNotFoundError, InvalidArgumentError

from .. import checkpoint as ckpt
from ..config import ScoringConfig
from ..data.text import load_tokenizer, pad_id_of
from ..state import STATE
from .corpus import Corpus, text_id
from .engine import fold_windows, make_lm, score_windows


class ReferenceModels:
    """The seeds' models of a corpus run at one score time (default: the last checkpoint every seed has)."""

    def __init__(self, run_dir: str | Path, *, step: int | None = None, device: str | torch.device = "cpu") -> None:
        state = Path(run_dir) / STATE
        if not (state / "config.json").is_file() or not (state / "tokenizer.json").is_file():
            raise InputNotFoundError(
                f"{str(run_dir)!r} is not a corpus scoring run (no {STATE}/config.json and tokenizer.json): give the "
                "--output-dir of `datadiet score --objective causal-lm`.",
                path=state,
            )
        fields = {f.name for f in dataclasses.fields(ScoringConfig)}
        identity = json.loads((state / "config.json").read_text())
        self.cfg = ScoringConfig(**{k: v for k, v in identity.items() if k in fields})
        if self.cfg.objective != "causal-lm":
            raise InvalidArgumentError(f"{str(run_dir)!r} scored a classification set, not a corpus.")
        self.tokenizer = load_tokenizer(state / "tokenizer.json")
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        steps = [{s for s, _ in ckpt.list_checkpoints(state, seed)} for seed in self.cfg.seeds]
        common = set.intersection(*steps) if steps else set()
        if step is None:
            if not common:
                raise InputNotFoundError(f"{str(run_dir)!r} has no checkpoint that every seed reached.", path=state)
            step = max(common)
        if step not in common:
            raise InvalidArgumentError(
                f"step={step} is not a checkpoint of every seed of {str(run_dir)!r}; choose one of {sorted(common)}."
            )
        self.step = step
        self.device = torch.device(device)
        self.pad_id = pad_id_of(self.tokenizer)
        self.vocab_size = int(self.tokenizer.get_vocab_size())
        shape = Corpus(
            np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, "S32"), self.pad_id, self.vocab_size, {}
        )
        self.models = []
        for seed in self.cfg.seeds:
            tensors, _ = ckpt.load(ckpt.checkpoint_path(state, seed, step))
            model = make_lm(self.cfg, shape, seed)
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            self.models.append(model.to(self.device).eval())

    @property
    def metrics(self) -> list[str]:
        return list(self.cfg.scores)

    def score(self, texts: list[str]) -> dict[str, Any]:
        """Per document: ``example_id``, ``num_tokens``, and for every score its mean, ``_std`` and ``_per_seed``
        (a list per document) over the seeds."""
        ids = [np.asarray(e.ids, dtype=np.int32) for e in self.tokenizer.encode_batch(list(texts))]
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate(ids) if ids else np.zeros(0, np.int32)
        corpus = Corpus(
            tokens, offsets, np.array([text_id(t) for t in texts], dtype="S32"), self.pad_id, self.vocab_size, {}
        )
        windows = corpus.windows(self.cfg.max_length)
        per_seed: dict[str, list[np.ndarray]] = {m: [] for m in self.metrics}
        num_tokens = np.zeros(len(texts), dtype=np.int64)
        for model in self.models:
            rows, values = score_windows(self.cfg, model, corpus, windows, self.device)
            placed = {k: np.empty(len(windows), dtype=np.float64) for k in values}
            for name, tensor in values.items():
                placed[name][rows.numpy()] = tensor.double().numpy()
            docs = fold_windows(windows, len(texts), placed, self.metrics)
            num_tokens = docs["num_tokens"]
            for metric in self.metrics:
                per_seed[metric].append(docs[metric])
        out: dict[str, Any] = {"example_id": [text_id(t) for t in texts], "num_tokens": num_tokens}
        for metric, values_ in per_seed.items():
            matrix = np.stack(values_, axis=1).astype(np.float32)
            out[metric] = matrix.mean(axis=1, dtype=np.float64).astype(np.float32)
            out[f"{metric}_std"] = matrix.std(axis=1, dtype=np.float64).astype(np.float32)
            out[f"{metric}_per_seed"] = matrix
        return out
