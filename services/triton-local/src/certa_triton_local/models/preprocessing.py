"""The `preprocessing` model: TensorRT-LLM's tokeniser step (text and word lists to token ids), batched."""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from certa_triton_local import wordlists
from certa_triton_local.models.common import InputError, array, error_response, model_path, parameters
from certa_triton_local.vocab import Vocab


def _texts(value: np.ndarray) -> list[list[str]]:
    """Per batch entry, the non-empty strings of a [batch, N] string tensor."""
    return [
        [
            item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
            for item in row.reshape(-1)
            if item
        ]
        for row in value
    ]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = parameters(args)
        self.vocab = Vocab.from_file(model_path(params))
        self.end_id = int(params["end_id"])
        self.pad_id = int(params["pad_id"])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tensors(request)))
            except InputError as exc:
                responses.append(error_response(str(exc)))
        return responses

    def _tensors(self, request: Any) -> list[Any]:
        queries = array(request, "QUERY")
        output_len = array(request, "REQUEST_OUTPUT_LEN")
        if queries is None or output_len is None:
            raise InputError("QUERY" if queries is None else "REQUEST_OUTPUT_LEN", "is required")
        batch = queries.shape[0]
        # An empty query tokenises to no ids (or just BOS), as TensorRT-LLM's tokenizer-based preprocessing does;
        # clients use it to learn which ids the tokeniser adds to every text.
        ids = [self.vocab.tokenize(texts[0] if texts else "") for texts in _texts(queries)]
        width = max(len(row) for row in ids)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int32)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row

        def word_ids(name: str) -> np.ndarray:
            value = array(request, name)
            rows = _texts(value) if value is not None else [[] for _ in range(batch)]
            return wordlists.encode_batch([[self.vocab.tokenize(w, add_special=False) for w in row] for row in rows])

        def per_entry(name: str, default: int) -> np.ndarray:
            value = array(request, name)
            return (
                value.astype(np.int32).reshape(batch, 1)
                if value is not None
                else np.full((batch, 1), default, dtype=np.int32)
            )

        return [
            pb_utils.Tensor("INPUT_ID", input_ids),
            pb_utils.Tensor("REQUEST_INPUT_LEN", np.array([[len(row)] for row in ids], dtype=np.int32)),
            pb_utils.Tensor("BAD_WORDS_IDS", word_ids("BAD_WORDS_DICT")),
            pb_utils.Tensor("STOP_WORDS_IDS", word_ids("STOP_WORDS_DICT")),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", output_len.astype(np.int32).reshape(batch, -1)),
            pb_utils.Tensor("OUT_END_ID", per_entry("END_ID", self.end_id)),
            pb_utils.Tensor("OUT_PAD_ID", per_entry("PAD_ID", self.pad_id)),
        ]
