"""TensorRT-LLM's word-list tensor format for stop and bad words.

One request's list is an int32 array of shape [2, L]: row 0 holds the token ids of every word back to back, row 1
the cumulative end offset of each word, padded with -1 (row 0 is padded with 0). `[[a, b, c], [2, 3, -1]]` is the
two words (a, b) and (c). An empty list is shape [2, 0].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class WordListError(ValueError):
    pass


def encode(words: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    """The [2, width] array of `words` (width defaults to the number of ids, at least as many as words)."""
    words = [list(word) for word in words if len(word) > 0]
    flat = [token for word in words for token in word]
    offsets = np.cumsum([len(word) for word in words]).tolist() if words else []
    width = max(len(flat), len(offsets)) if width is None else width
    array = np.zeros((2, width), dtype=np.int32)
    array[1, :] = -1
    array[0, : len(flat)] = flat
    array[1, : len(offsets)] = offsets
    return array


def encode_batch(batch: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """[batch, 2, width] for several requests, padded to a common width."""
    width = max((encode(words).shape[1] for words in batch), default=0)
    return np.stack([encode(words, width) for words in batch]).astype(np.int32)


def decode(array: np.ndarray) -> list[list[int]]:
    """The words of one request's [2, L] array; raises WordListError when offsets are inconsistent."""
    if array.ndim != 2 or array.shape[0] != 2:
        raise WordListError(f"expected shape [2, L] per request, got {list(array.shape)}")
    ids, offsets = array[0].tolist(), array[1].tolist()
    words, start = [], 0
    for end in offsets:
        if end < 0:
            break
        if end <= start or end > len(ids):
            raise WordListError(f"offset {end} is not increasing or exceeds {len(ids)} ids")
        words.append(ids[start:end])
        start = end
    return words
