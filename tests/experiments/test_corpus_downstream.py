"""The matched-token bookkeeping of the corpus downstream experiment: the packed stream gives only full windows, a
whole number of batches, and every token but the first is predicted exactly once per epoch of them."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.corpus_downstream import packed_windows


def test_packed_windows_are_full_whole_batches_of_the_stream():
    rng = np.random.default_rng(0)
    docs = [rng.integers(3, 50, size=n).astype(np.int32) for n in (5, 17, 2, 40, 9, 33)]  # 106 tokens
    corpus, windows = packed_windows(docs, context=8, batch=4, pad_id=0, vocab_size=50)
    stream = np.concatenate(docs)
    assert np.array_equal(corpus.tokens, stream)
    assert (windows.length == 8).all()
    assert len(windows) % 4 == 0 and len(windows) == (105 // 7) // 4 * 4  # 15 full windows -> 3 batches of 4
    # consecutive windows overlap by one token: each predicted token is predicted once
    assert np.array_equal(windows.start, np.arange(len(windows)) * 7)
    predicted = np.concatenate([np.arange(s + 1, s + 8) for s in windows.start])
    assert len(set(predicted.tolist())) == len(predicted) == len(windows) * 7


def test_packed_windows_refuses_a_stream_shorter_than_one_batch():
    with pytest.raises(ValueError, match="fewer than 4 full windows"):
        packed_windows([np.arange(10, dtype=np.int32)], context=8, batch=4, pad_id=0, vocab_size=50)
