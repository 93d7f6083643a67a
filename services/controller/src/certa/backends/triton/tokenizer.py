"""Tokenising and detokenising through TensorRT-LLM's `preprocessing` and `postprocessing` models.

`preprocessing`: sent `QUERY` (+ `REQUEST_OUTPUT_LEN`, a required input there, and `STOP_WORDS_DICT` for stop
words); read `INPUT_ID`, `REQUEST_INPUT_LEN`, `OUT_END_ID`, `OUT_PAD_ID`, `STOP_WORDS_IDS`.
`postprocessing`: sent `TOKENS_BATCH` [beams, len] and `SEQUENCE_LENGTH` [beams]; read `OUTPUT`, one text per beam.
Several sequences are decoded in one call by passing them as beams.

Prompt pieces are tokenised one at a time and cached (the rendered question and the probe suffix repeat). A
tokeniser that adds special tokens (TensorRT-LLM's `add_special_tokens` defaults to true) would put a BOS in
front of every piece, so the ids it gives the empty text are stripped from pieces after the start of a prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from certa.backends.bounded_cache import BoundedCache
from certa.backends.triton.rpc import TritonConnection
from certa.backends.triton.tensors import build_infer_request, first_int, texts
from certa.core.errors import BackendError


@dataclass(frozen=True)
class TokenizerFacts:
    """What tokenising the empty text reveals: ids added to every text, and the tokeniser's end / pad ids."""

    special_prefix: tuple[int, ...]
    end_id: int | None
    pad_id: int | None


class TritonTokenizer:
    def __init__(self, connection: TritonConnection, preprocessing: str, postprocessing: str) -> None:
        self._connection = connection
        self.preprocessing = preprocessing
        self.postprocessing = postprocessing
        self._cache: BoundedCache[str, tuple[int, ...]] = BoundedCache()
        self._facts: TokenizerFacts | None = None
        self._stop_lists: BoundedCache[tuple[str, ...], np.ndarray] = BoundedCache(64)

    async def _preprocess(self, text: str, stop_words: Sequence[str] = ()) -> Mapping[str, np.ndarray]:
        signature = await self._connection.signature(self.preprocessing)
        values: dict[str, object] = {"QUERY": text}
        if signature.accepts("REQUEST_OUTPUT_LEN"):
            values["REQUEST_OUTPUT_LEN"] = 1
        if stop_words:
            if not signature.accepts("STOP_WORDS_DICT"):
                raise BackendError(
                    self._connection.backend,
                    f"model {self.preprocessing!r} has no STOP_WORDS_DICT input for stop words",
                    rejected_input=True,
                )
            values["STOP_WORDS_DICT"] = list(stop_words)
        wanted = ("INPUT_ID", "REQUEST_INPUT_LEN", "OUT_END_ID", "OUT_PAD_ID")
        outputs = [name for name in wanted if name in signature.outputs]
        if stop_words:
            outputs.append("STOP_WORDS_IDS")
        request = build_infer_request(signature, values, outputs, self._connection.next_request_id())
        return await self._connection.infer_once(request)

    @staticmethod
    def _ids(outputs: Mapping[str, np.ndarray]) -> tuple[int, ...]:
        ids = outputs["INPUT_ID"].reshape(-1)
        length = first_int(outputs, "REQUEST_INPUT_LEN")
        return tuple(int(token) for token in (ids if length is None else ids[:length]))

    async def encode(self, text: str) -> tuple[int, ...]:
        """The ids of `text` as the server's tokeniser produces them, special tokens included (cached)."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._ids(await self._preprocess(text))
            self._cache.put(text, cached)
        return cached

    async def facts(self) -> TokenizerFacts:
        if self._facts is None:
            outputs = await self._preprocess("")
            self._facts = TokenizerFacts(
                self._ids(outputs), first_int(outputs, "OUT_END_ID"), first_int(outputs, "OUT_PAD_ID")
            )
        return self._facts

    async def encode_piece(self, text: str, *, at_start: bool) -> tuple[int, ...]:
        """Ids of one prompt piece; away from the start of the prompt, without the tokeniser's special prefix."""
        ids = await self.encode(text)
        if at_start:
            return ids
        prefix = (await self.facts()).special_prefix
        return ids[len(prefix) :] if prefix and ids[: len(prefix)] == prefix else ids

    async def stop_words_list(self, stop_words: tuple[str, ...]) -> np.ndarray:
        """TensorRT-LLM's [2, L] stop-word layout for `stop_words`, built by the server's tokeniser (cached)."""
        cached = self._stop_lists.get(stop_words)
        if cached is None:
            outputs = await self._preprocess("", stop_words)
            layout = outputs["STOP_WORDS_IDS"]
            cached = layout.reshape(-1, *layout.shape[-2:])[0]
            self._stop_lists.put(stop_words, cached)
        return cached

    async def decode_many(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """One text per id sequence, decoded in one `postprocessing` call (the sequences travel as beams)."""
        signature = await self._connection.signature(self.postprocessing)
        width = max(1, *(len(sequence) for sequence in sequences))
        tokens = np.zeros((len(sequences), width), np.int32)
        for row, sequence in enumerate(sequences):
            tokens[row, : len(sequence)] = sequence
        lengths = np.array([len(sequence) for sequence in sequences], np.int32)
        request = build_infer_request(
            signature,
            {"TOKENS_BATCH": tokens, "SEQUENCE_LENGTH": lengths},
            ["OUTPUT"],
            self._connection.next_request_id(),
        )
        decoded = texts((await self._connection.infer_once(request))["OUTPUT"])
        if len(decoded) != len(sequences):
            raise BackendError(
                self._connection.backend,
                f"model {self.postprocessing!r} returned {len(decoded)} texts for {len(sequences)} sequences",
            )
        return decoded
