"""The `postprocessing` model: TensorRT-LLM's detokeniser step (`TOKENS_BATCH` cut at `SEQUENCE_LENGTH`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from certa_triton_local.models.common import InputError, array, error_response, model_path, parameters
from certa_triton_local.vocab import Vocab


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = parameters(args)
        self.vocab = Vocab.from_file(model_path(params))
        self.skip_special_tokens = params.get("skip_special_tokens", "true").lower() == "true"

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=[self._output(request)]))
            except InputError as exc:
                responses.append(error_response(str(exc)))
        return responses

    def _output(self, request: Any) -> Any:
        tokens = array(request, "TOKENS_BATCH")
        lengths = array(request, "SEQUENCE_LENGTH")
        if tokens is None or lengths is None:
            raise InputError("TOKENS_BATCH" if tokens is None else "SEQUENCE_LENGTH", "is required")
        if lengths.shape != tokens.shape[:2]:
            raise InputError(
                "SEQUENCE_LENGTH",
                f"shape {list(lengths.shape)} does not match TOKENS_BATCH "
                f"{list(tokens.shape)} (expected [batch, beams])",
            )
        texts = np.empty(lengths.shape, dtype=np.object_)
        for index in np.ndindex(lengths.shape):
            length = int(lengths[index])
            if not 0 <= length <= tokens.shape[2]:
                raise InputError("SEQUENCE_LENGTH", f"{length} is outside [0, {tokens.shape[2]}]")
            ids = [int(t) for t in tokens[index][:length]]
            invalid = next((t for t in ids if not self.vocab.is_valid(t)), None)
            if invalid is not None:
                raise InputError("TOKENS_BATCH", f"token id {invalid} is outside the vocabulary")
            texts[index] = self.vocab.detokenize(ids, self.skip_special_tokens).encode("utf-8")
        return pb_utils.Tensor("OUTPUT", texts)
