"""A text corpus for causal-LM scoring (the split is opened by ``datadiet_hub.sources.open_split``, the project's one
set of rules for a dataset argument): find its text column, tokenize every document once into
files of the run's state, and cut documents into context windows.

Tokenizing streams: documents are read in batches (a ``datasets.Dataset`` or, with ``--streaming``, an
``IterableDataset`` over sharded parquet/JSON-lines files) and their token ids appended to ``tokens.bin``; the
offsets and the example ids go to ``.npy`` files. Later phases memory-map the three, so the tokens never need to
fit in memory. ``source.json`` is written last and marks the cache complete; a killed run tokenizes again.

Windows: a document of n tokens ([CLS] ... [SEP] with the trained tokenizer) predicts n - 1 next tokens. With a
context of L tokens it is cut into windows starting every L - 1 tokens, each overlapping the previous one by one
token, so every predicted token is predicted exactly once, by the window holding it and its predecessor.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadiet_hub.columns import LABEL_NAMES
from datadiet_hub.errors import InvalidArgumentError, did_you_mean
from datadiet_hub.hashing import example_id
from datadiet_hub.writer import atomic_write_bytes

from ..data.text import iter_texts, load_tokenizer, pad_id_of, train_tokenizer

logger = logging.getLogger(__name__)

CORPUS_DIR = "corpus"
TEXT_GUESSES = ("text", "content", "document", "raw_content", "body", "sentence", "article")
LABEL_GUESSES = LABEL_NAMES  # the label names column detection uses (a `language` column is a label there too)


def text_id(text: str) -> str:
    """The ``example_id`` of an unlabeled document: the content hash of its text alone."""
    return example_id(text, None)


def _features(dataset: Any) -> dict[str, Any]:
    features = dataset.features
    if features is None:  # a streamed json file: the first row tells the columns
        import datasets

        first = next(iter(dataset))
        features = datasets.Dataset.from_list([first]).features
    return dict(features)


def _is_string(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def detect_text_column(dataset: Any, text_column: str | None = None) -> str:
    """The given column (checked), else the one string column, else a usual name (text, content, ...)."""
    features = _features(dataset)
    columns = list(features)
    if text_column is not None:
        if text_column not in features:
            raise InvalidArgumentError(
                f"Column {text_column!r} (--text-column) is not in the corpus; columns are {columns}."
                f"{did_you_mean(text_column, columns)}",
                column=text_column,
                value=text_column,
            )
        if not _is_string(features[text_column]):
            raise InvalidArgumentError(
                f"Column {text_column!r} (--text-column) holds {features[text_column]}, not text.", column=text_column
            )
        return text_column
    strings = [c for c in columns if _is_string(features[c])]
    lowered = {c.lower(): c for c in strings}
    guess = next((lowered[g] for g in TEXT_GUESSES if g in lowered), None)
    if guess is not None:
        return guess
    if len(strings) == 1:
        return strings[0]
    raise InvalidArgumentError(
        f"Cannot tell which column holds the documents among {columns} (string columns: {strings}); name it with "
        "--text-column.",
        value=columns,
    )


def is_unlabeled_text(dataset: Any, text_column: str | None = None, label_column: str | None = None) -> bool:
    """True when the split has a text column and no label column (no ClassLabel, no usual label name): what
    ``--objective auto`` scores as a corpus with a causal LM."""
    import datasets

    if label_column is not None:
        return False
    features = _features(dataset)
    if any(isinstance(f, datasets.ClassLabel) for f in features.values()):
        return False
    if any(c.lower() in LABEL_GUESSES for c in features):
        return False
    try:
        detect_text_column(dataset, text_column)
    except InvalidArgumentError:
        return False
    return True


@dataclass(frozen=True)
class Corpus:
    """The tokenized split: ``tokens`` (int32, all documents back to back) and ``offsets`` ([N + 1]) memory-mapped
    from the state folder, the example ids, the tokenizer's pad id and vocabulary size, and where it came from."""

    tokens: np.ndarray
    offsets: np.ndarray
    example_ids: np.ndarray  # fixed-width ASCII bytes, one per document
    pad_id: int
    vocab_size: int
    source: dict[str, Any]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def ids(self) -> list[str]:
        return [v.decode("ascii") for v in self.example_ids.tolist()]

    def windows(self, context: int) -> Windows:
        return cut_windows(self.offsets, context)


@dataclass(frozen=True)
class Windows:
    """Context windows over the documents: window w is ``tokens[start[w] : start[w] + length[w]]`` of document
    ``doc[w]``. Documents with fewer than 2 tokens (nothing to predict) have no window."""

    doc: np.ndarray
    start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.doc)


def cut_windows(offsets: np.ndarray, context: int) -> Windows:
    """Windows of at most ``context`` tokens, starting every ``context - 1`` tokens (one token of overlap), so each
    of a document's n - 1 predicted tokens falls in exactly one window."""
    if context < 2:
        raise InvalidArgumentError(f"max_length={context!r} must be at least 2 tokens for a language model.")
    lengths = np.diff(np.asarray(offsets, dtype=np.int64))
    stride = context - 1
    counts = np.where(lengths >= 2, np.maximum(1, -(-(lengths - 1) // stride)), 0)
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(len(doc), dtype=np.int64) - first  # window number inside its document
    local = k * stride
    length = np.minimum(context, lengths[doc] - local)
    return Windows(doc, np.asarray(offsets, dtype=np.int64)[doc] + local, length)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _batches(dataset: Any, column: str, batch_size: int = 1000) -> Iterator[list[str]]:
    for batch in dataset.select_columns([column]).iter(batch_size=batch_size):
        yield [t if isinstance(t, str) else "" for t in batch[column]]


def tokenize_corpus(
    dataset: Any,
    column: str,
    state_dir: Path,
    *,
    tokenizer_path: str | None,
    vocab_size: int,
    tokenizer_kind: str,
    source: dict[str, Any],
    progress: bool = True,
) -> None:
    """Tokenize every document into ``state_dir/corpus`` (once: a finished cache is kept), training the tokenizer
    on the split first unless ``tokenizer_path`` gives one."""
    from tqdm.auto import tqdm

    folder = state_dir / CORPUS_DIR
    if (folder / "source.json").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_file = state_dir / "tokenizer.json"
    if tokenizer_path is not None:
        tokenizer = load_tokenizer(tokenizer_path)
    elif tokenizer_file.is_file():
        tokenizer = load_tokenizer(tokenizer_file)
    else:
        logger.info("training a %s tokenizer (%d tokens) on the corpus", tokenizer_kind, vocab_size)
        tokenizer = train_tokenizer(iter_texts(dataset, column), vocab_size=vocab_size, kind=tokenizer_kind)
    atomic_write_bytes(tokenizer_file, tokenizer.to_str().encode())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    offsets, ids, total = [0], [], 0
    tmp = folder / f".tokens.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as out, tqdm(desc="Tokenizing", unit="doc", disable=not progress, leave=False) as bar:
        for texts in _batches(dataset, column):
            for text, encoding in zip(texts, tokenizer.encode_batch(texts), strict=True):
                array = np.asarray(encoding.ids, dtype=np.int32)
                out.write(array.tobytes())
                total += len(array)
                offsets.append(total)
                ids.append(text_id(text).encode("ascii"))
            bar.update(len(texts))
    if len(ids) == 0:
        tmp.unlink(missing_ok=True)
        raise InvalidArgumentError(f"The corpus {source.get('dataset')!r} has no documents to score.")
    os.replace(tmp, folder / "tokens.bin")
    atomic_write_bytes(folder / "offsets.npy", _npy_bytes(np.asarray(offsets, dtype=np.int64)))
    atomic_write_bytes(folder / "example_ids.npy", _npy_bytes(np.array(ids, dtype="S32")))
    meta = {
        **source,
        "num_rows": len(ids),
        "num_tokens": total,
        "vocab_size": int(tokenizer.get_vocab_size()),
        "pad_id": pad_id_of(tokenizer),
    }
    atomic_write_bytes(folder / "source.json", json.dumps(meta).encode())
    logger.info("tokenized %d documents into %d tokens", len(ids), total)


def load_corpus(state_dir: Path) -> Corpus:
    """The tokenized corpus of a run's state folder, memory-mapped."""
    folder = state_dir / CORPUS_DIR
    meta = json.loads((folder / "source.json").read_text())
    offsets = np.load(folder / "offsets.npy", mmap_mode="r")
    size = int(offsets[-1])
    tokens = (
        np.memmap(folder / "tokens.bin", dtype=np.int32, mode="r", shape=(size,))
        if size
        else np.zeros(0, dtype=np.int32)
    )
    ids = np.load(folder / "example_ids.npy", mmap_mode="r")
    return Corpus(tokens, offsets, ids, int(meta["pad_id"]), int(meta["vocab_size"]), meta)
