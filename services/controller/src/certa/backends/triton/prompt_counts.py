"""Prompt-token counts a generating model reports next to its output, for the final delta.

`num_input_tokens` (asked for with `return_num_input_tokens`) is TensorRT-LLM's. `num_cached_tokens` (prompt
tokens served from the KV cache, asked for with `return_perf_metrics`) is an exact count some servers add as an
extension; TensorRT-LLM itself reports reused KV-cache *blocks*, which Certa does not convert into tokens.
Both are requested only when the model declares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from certa.backends.triton.tensors import ModelSignature, first_int

INPUT_TOKENS = "num_input_tokens"
CACHED_TOKENS = "num_cached_tokens"


def prompt_count_request(signature: ModelSignature) -> tuple[dict[str, bool], list[str]]:
    """The flag inputs that ask for prompt counts and the outputs that carry them, as far as declared."""
    flags: dict[str, bool] = {}
    outputs: list[str] = []
    if INPUT_TOKENS in signature.outputs and signature.accepts("return_num_input_tokens"):
        flags["return_num_input_tokens"] = True
        outputs.append(INPUT_TOKENS)
    if CACHED_TOKENS in signature.outputs and signature.accepts("return_perf_metrics"):
        flags["return_perf_metrics"] = True
        outputs.append(CACHED_TOKENS)
    return flags, outputs


@dataclass
class PromptCounts:
    """The latest reported counts; `prompt_tokens` starts from what the caller knows (0 or the ids it sent)."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0

    def update(self, outputs: Mapping[str, np.ndarray]) -> None:
        reported = first_int(outputs, INPUT_TOKENS)
        self.prompt_tokens = self.prompt_tokens if reported is None else reported
        cached = first_int(outputs, CACHED_TOKENS)
        self.cached_prompt_tokens = self.cached_prompt_tokens if cached is None else cached
