"""Text to ``input_ids`` + ``attention_mask``: a tokenizer trained on the training split with the ``tokenizers``
library (WordPiece or BPE), or loaded from a local ``tokenizer.json`` (never downloaded at run time).

Every encoding starts with ``[CLS]``, ends with ``[SEP]``, is truncated to ``max_length`` tokens and padded with
``[PAD]`` (id 0, mask 0) to the longest row of its batch. The trained tokenizer is saved with the run's state, so a
resumed run and every worker process use the very same vocabulary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from datadiet_hub.errors import InputNotFoundError, InvalidArgumentError

logger = logging.getLogger(__name__)

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP]
TOKENIZER_KINDS = ("wordpiece", "bpe")


def _tokenizers():
    try:
        import tokenizers
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("Scoring text needs the `tokenizers` library: pip install 'datadiet-hub[text]'.") from err
    return tokenizers


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 8000, kind: str = "wordpiece") -> Any:
    """A ``tokenizers.Tokenizer`` trained on ``texts`` (an iterator is fine: nothing is kept in memory).

    Normalisation: Unicode NFC and lower case, accents kept (they tell languages apart); pre-tokenisation on
    whitespace and punctuation. ``bpe`` trains to the same tokenizer every time; ``wordpiece`` does not (its
    trainer numbers the ``##`` pieces in the order of a randomly seeded hash map and breaks ties by those numbers).
    """
    if kind not in TOKENIZER_KINDS:
        raise InvalidArgumentError(f"Unknown tokenizer kind {kind!r}. Choose between {', '.join(TOKENIZER_KINDS)}.")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise InvalidArgumentError(f"vocab_size={vocab_size!r} is too small; give at least {len(SPECIAL_TOKENS) + 1}.")
    tk = _tokenizers()
    if kind == "wordpiece":
        tokenizer = tk.Tokenizer(tk.models.WordPiece(unk_token=UNK))
        trainer = tk.trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
        )
        tokenizer.decoder = tk.decoders.WordPiece()
    else:
        tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=UNK))
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.normalizer = tk.normalizers.Sequence([tk.normalizers.NFC(), tk.normalizers.Lowercase()])
    tokenizer.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    if kind == "wordpiece":
        logger.info(
            "WordPiece training is not reproducible across runs (the tokenizers trainer breaks ties in a randomly "
            "seeded hash order); a resumed run reuses its saved tokenizer, and --tokenizer-kind bpe or --tokenizer "
            "FILE make fresh runs identical"
        )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    _add_template(tokenizer)
    return tokenizer


def _add_template(tokenizer: Any) -> None:
    tk = _tokenizers()
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    if cls_id is None or sep_id is None:
        return  # a loaded tokenizer without these tokens keeps its own post-processing
    tokenizer.post_processor = tk.processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", special_tokens=[(CLS, cls_id), (SEP, sep_id)]
    )


def load_tokenizer(path: str | os.PathLike) -> Any:
    """A tokenizer from a local ``tokenizer.json`` (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputNotFoundError(
            f"Tokenizer file {str(path)!r} not found: give --tokenizer a local tokenizer.json (or a folder with "
            "one), or leave it out to train one on the split (--vocab-size).",
            path=path,
        )
    try:
        tokenizer = _tokenizers().Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a bare Exception for every parse or schema error
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InvalidArgumentError(
            f"Tokenizer file {str(path)!r} is not a tokenizer the tokenizers library can read ({reason}). Give "
            "--tokenizer a tokenizer.json saved by tokenizers (Tokenizer.save) or a fast transformers tokenizer, or "
            "leave it out to train one on the split.",
            value=str(path),
        ) from err
    if tokenizer.get_vocab_size() < 1:
        raise InvalidArgumentError(
            f"Tokenizer file {str(path)!r} has an empty vocabulary; give a trained tokenizer.json or leave --tokenizer "
            "out to train one on the split.",
            value=str(path),
        )
    return tokenizer


def pad_id_of(tokenizer: Any) -> int:
    """The id padded positions get: ``[PAD]``, else the tokenizer's own padding token, else 0."""
    for token in (PAD, "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    padding = tokenizer.padding
    return int(padding["pad_id"]) if padding else 0


def iter_texts(dataset: Any, column: str, batch_size: int = 1000) -> Iterator[str]:
    """The texts of a ``datasets`` split, read in batches of one column (for tokenizer training)."""
    if hasattr(dataset, "select_columns"):
        dataset = dataset.select_columns([column])
    for batch in dataset.iter(batch_size=batch_size):
        yield from (text if isinstance(text, str) else "" for text in batch[column])


class TextEncoder:
    """Picklable batch encoder for DataLoader workers: texts -> ``input_ids`` and ``attention_mask`` (int64).

    Holds the tokenizer as its JSON string and rebuilds it lazily in each process, so that workers do not share a
    Rust object across ``fork``.
    """

    def __init__(self, tokenizer: Any, max_length: int):
        if max_length < 2:
            raise InvalidArgumentError(f"max_length={max_length!r} must be at least 2 ([CLS] and [SEP]).")
        self.json = tokenizer.to_str()
        self.max_length = max_length
        self.pad_id = pad_id_of(tokenizer)
        self.vocab_size = int(tokenizer.get_vocab_size())
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tokenizer": None}

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            tokenizer = _tokenizers().Tokenizer.from_str(self.json)
            tokenizer.enable_truncation(self.max_length)
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer

    kind = "tokens"

    def __call__(self, texts: list[str], idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Tokenize ``texts`` (``idx``, the rows' positions, is not needed: the text is all a tokenizer reads)."""
        encodings = self.tokenizer.encode_batch([t if isinstance(t, str) else "" for t in texts])
        length = max((len(e.ids) for e in encodings), default=1) or 1
        ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def facts(self) -> dict[str, Any]:
        return {"tokenizer_vocab_size": self.vocab_size, "pad_token_id": self.pad_id}
