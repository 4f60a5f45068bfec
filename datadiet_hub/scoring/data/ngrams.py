"""Bag-of-n-grams features for the ``fasttext`` text model: computed once per split with a few numpy operations
over the whole split (no Python loop per token), saved with the run's state, sliced into padded batches.

A text is lower-cased, its whitespace collapsed to single spaces, cut to ``MAX_CHARS`` characters and framed by one
space on each side. Its features are the character n-grams for n = 1..4 (spaces included, so the start and end of
words count, as fastText's ``<`` and ``>`` markers do), the words (runs between spaces) and the word bigrams.

Every feature is hashed to 64 bits: a polynomial hash over Unicode code points, taken from prefix sums of the whole
concatenated split (so the hash of any substring is two lookups), then mixed with a salt per feature kind, so that
the word ``de`` and the character bigram ``de`` are different features. The distinct hashes of the split get dense
ids 1..V in hash order (0 pads): no bucket collisions and an embedding table only as large as the data needs, the
same ids on every rerun and in every process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadiet_hub.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

CHAR_NGRAMS = (1, 2, 3, 4)
"""Character n-gram lengths (the linear baseline that finds language flips best uses 1-4 as well)."""
MAX_CHARS = 1000
"""Characters of a text that are featurized; longer texts are cut (a batch is padded to its longest row)."""
MAX_FEATURES = 2_000_000
"""At most this many distinct features (the most frequent) get an id; fastText's default bucket count."""
PAD_ID = 0

_BASE = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_SPACE = np.uint64(ord(" ") + 1)  # code points are stored + 1 so that no character hashes to 0
_WORD, _BIGRAM = 101, 102  # salts of the word features; character n-grams use n


def _mix(h: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 finalizer of ``h + salt``: spreads the polynomial hash over all 64 bits."""
    with np.errstate(over="ignore"):
        x = h + np.uint64((salt * 0x9E3779B97F4A7C15) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _normalise(text: Any) -> str:
    if not isinstance(text, str):
        text = ""
    return " " + " ".join(text.lower().split())[:MAX_CHARS] + " "


def hash_features(texts: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, offsets)``: the 64-bit feature hashes of every text, row after row (``uint64``), and where each
    row starts (``int64 [N + 1]``)."""
    framed = [_normalise(t) for t in texts]
    n = len(framed)
    lengths = np.fromiter(map(len, framed), dtype=np.int64, count=n)
    codes = np.frombuffer("".join(framed).encode("utf-32-le", "replace"), dtype=np.uint32).astype(np.uint64) + 1
    total = len(codes)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
    row_end = np.repeat(np.cumsum(lengths), lengths)
    with np.errstate(over="ignore"):
        # h(i, j) = sum_{k=i}^{j-1} c_k B^(j-1-k) = B^(j-1) * (S[j] - S[i]) with S[i] = sum_{k<i} c_k B^-k (mod 2^64)
        powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(total, _BASE, dtype=np.uint64)]))
        inverse = np.cumprod(np.concatenate([[np.uint64(1)], np.full(max(total - 1, 0), _BASE_INV, dtype=np.uint64)]))
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(codes * inverse[:total], dtype=np.uint64)])

        def span_hash(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
            return powers[stop - 1] * (prefix[stop] - prefix[start])

        rows, hashes = [], []
        starts = np.arange(total, dtype=np.int64)
        for size in CHAR_NGRAMS:
            ok = starts + size <= row_end
            begin = starts[ok]
            rows.append(row_of[ok])
            hashes.append(_mix(span_hash(begin, begin + size), size))
        spaces = np.flatnonzero(codes == _SPACE)
        word = spaces[1:] - spaces[:-1] > 1  # consecutive spaces of one row with a word between them
        word_start, word_stop = spaces[:-1][word] + 1, spaces[1:][word]
        word_rows = row_of[word_start]
        word_hash = span_hash(word_start, word_stop)
        rows.append(word_rows)
        hashes.append(_mix(word_hash, _WORD))
        pair = word_rows[1:] == word_rows[:-1]
        rows.append(word_rows[1:][pair])
        hashes.append(_mix(word_hash[:-1][pair] * _BASE + _mix(word_hash[1:][pair], 0), _BIGRAM))
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_rows, minlength=n), out=offsets[1:])
    return np.concatenate(hashes)[order], offsets


@dataclass
class NgramFeatures:
    """The features of a split: dense ids (``int32``, 1..V) row after row, row starts, and V + 1 (the table size)."""

    ids: np.ndarray
    offsets: np.ndarray
    vocab_size: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (``int64 [B, L]``) of ``rows``, padded with 0 to the longest."""
        rows = np.asarray(rows, dtype=np.int64)
        begin, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        width = max(int(lengths.max(initial=0)), 1)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        where = np.repeat(np.arange(len(rows)), lengths)
        ids[where, within] = self.ids[np.repeat(begin, lengths) + within]
        return {"input_ids": ids, "attention_mask": (np.arange(width) < lengths[:, None]).astype(np.int64)}


MIN_COUNT = 2
"""A feature seen only once in the split is dropped: it can only help the model memorize that one text (a flipped
label most of all), never generalize."""


def build_features(
    texts: Iterable[Any], *, min_count: int = MIN_COUNT, max_features: int = MAX_FEATURES
) -> NgramFeatures:
    """Featurize a whole split: hash every text, give the distinct hashes seen at least ``min_count`` times dense
    ids (the ``max_features`` most frequent when there are more), drop the rest."""
    hashes, offsets = hash_features(texts)
    if len(offsets) == 1:
        raise InvalidArgumentError("The split is empty; nothing to featurize.")
    unique, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    keep = counts >= min_count
    if keep.sum() > max_features:
        threshold = np.sort(counts[keep])[-max_features]
        keep &= counts >= threshold
        keep[np.flatnonzero(keep)[max_features:]] = False
    dense = np.zeros(len(unique), dtype=np.int32)
    dense[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    ids = dense[inverse.reshape(-1)]
    kept = ids != PAD_ID
    rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))[kept]
    new_offsets = np.zeros_like(offsets)
    np.cumsum(np.bincount(rows, minlength=len(offsets) - 1), out=new_offsets[1:])
    return NgramFeatures(ids[kept], new_offsets, int(keep.sum()) + 1)


IDS_FILE, OFFSETS_FILE = "ngram_ids.npy", "ngram_offsets.npy"


def save_features(features: NgramFeatures, folder: Path) -> None:
    """Write the features to ``folder`` (temporary names, then renamed; the offsets last mark them complete)."""
    for name, array in ((IDS_FILE, features.ids), (OFFSETS_FILE, features.offsets)):
        tmp = folder / f"{name}.tmp.npy"
        np.save(tmp, array)
        os.replace(tmp, folder / name)


def load_features(folder: Path) -> NgramFeatures | None:
    """The saved features (memory-mapped), or ``None`` when they have not been computed yet."""
    if not (folder / OFFSETS_FILE).exists():
        return None
    ids = np.load(folder / IDS_FILE, mmap_mode="r")
    offsets = np.load(folder / OFFSETS_FILE)
    return NgramFeatures(ids, offsets, int(ids.max(initial=0)) + 1)


class NgramEncoder:
    """Picklable batch encoder for DataLoader workers: row positions -> ``input_ids`` + ``attention_mask`` read from
    the split's saved features (each process memory-maps them), so no text is featurized twice."""

    kind = "ngrams"

    def __init__(self, folder: str | os.PathLike, vocab_size: int):
        self.folder = Path(folder)
        self.vocab_size = vocab_size
        self.pad_id = PAD_ID
        self._features: NgramFeatures | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_features": None}

    @property
    def features(self) -> NgramFeatures:
        if self._features is None:
            found = load_features(self.folder)
            if found is None:
                raise FileNotFoundError(f"No n-gram features under {str(self.folder)!r}; prepare the run first.")
            self._features = found
        return self._features

    def __call__(self, texts: list[Any], idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if idx is None:
            raise InvalidArgumentError("The n-gram encoder reads saved features by row position; give idx.")
        return self.features.batch(idx)

    def facts(self) -> dict[str, Any]:
        return {
            "text_features": f"char {CHAR_NGRAMS[0]}-{CHAR_NGRAMS[-1]}-grams, words, word bigrams",
            "feature_vocabulary": self.vocab_size - 1,
        }
