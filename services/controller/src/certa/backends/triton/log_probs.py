"""Per-token log-probabilities from TensorRT-LLM: `return_log_probs` in, `output_log_probs` [beam, tokens] out.

Asked for only when the request wants them (probes) and the model declares both; otherwise no log-probs are
reported and the strategy falls back to agreement-only decisions. In streaming mode a response carries the
log-probs of the tokens it adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from certa.backends.triton.tensors import ModelSignature
from certa.core.types import GenerationRequest

INPUT = "return_log_probs"
OUTPUT = "output_log_probs"


def wanted(request: GenerationRequest, signature: ModelSignature) -> bool:
    """Whether to ask this model for log-probs: the request wants them and the model can return them."""
    return request.log_probs and signature.accepts(INPUT) and OUTPUT in signature.outputs


def log_prob_request(request: GenerationRequest, signature: ModelSignature) -> tuple[dict[str, Any], list[str]]:
    """Extra inputs and outputs asking for log-probs (none when not `wanted`)."""
    return ({INPUT: True}, [OUTPUT]) if wanted(request, signature) else ({}, [])


def new_log_probs(outputs: Mapping[str, np.ndarray], tokens: int) -> tuple[float, ...] | None:
    """Beam 0's log-probs of the `tokens` this response adds (the last `tokens` values); None when absent."""
    array = outputs.get(OUTPUT)
    if array is None:
        return None
    first_beam = array.reshape(-1, array.shape[-1])[0] if array.size else np.zeros(0, np.float32)
    values = [float(value) for value in first_beam[len(first_beam) - tokens :]] if tokens else []
    return tuple(values) if len(values) == tokens else None
