"""Helpers shared by the Python-backend models: reading inputs, building outputs, model-config parameters.

Only importable inside a Triton Python-backend stub (it imports `triton_python_backend_utils`). Triton itself
rejects unknown inputs and wrong data types or shapes with an error naming the input; these helpers add the checks
the config cannot express (one request per call, value ranges) and raise `InputError`, whose message names the
input too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from certa_triton_local.engine import Stats

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class InputError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"input '{name}': {message}")
        self.name = name


def parameters(args: dict[str, str]) -> dict[str, str]:
    """The string parameters of the model config Triton passes to `initialize`."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def model_path(params: dict[str, str]) -> Path:
    return Path(params["model_path"])


def array(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def batch_of_one(request: Any, name: str) -> np.ndarray:
    """A required input of a request that must carry exactly one batch entry; returns that entry."""
    value = array(request, name)
    if value is None:
        raise InputError(name, "is required")
    if value.ndim == 0 or value.shape[0] != 1:
        raise InputError(name, f"batch size must be 1 (one request per call), got shape {list(value.shape)}")
    return value[0]


def scalar(request: Any, names: Iterable[str], default: Any = None) -> Any:
    """The single value of the first present input among `names` (aliases), else `default`."""
    for name in names:
        value = array(request, name)
        if value is None:
            continue
        if value.size != 1:
            raise InputError(name, f"expected one value (batch size 1), got shape {list(value.shape)}")
        item = value.reshape(-1)[0]
        return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item.item()
    return default


def strings(request: Any, name: str) -> list[str]:
    """A list-of-strings input ([1, N]) as Python strings; empty strings are dropped."""
    value = array(request, name)
    if value is None:
        return []
    if value.ndim == 0 or value.shape[0] != 1:
        raise InputError(name, f"batch size must be 1, got shape {list(value.shape)}")
    items = [
        item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
        for item in value[0].reshape(-1)
    ]
    return [item for item in items if item]


def require_single_beam(request: Any) -> None:
    for name in ("beam_width", "num_return_sequences"):
        value = scalar(request, (name,))
        if value is not None and int(value) != 1:
            raise InputError(name, f"only 1 is supported by certa-triton-local, got {value}")
    for name in ("return_context_logits", "return_generation_logits"):
        if scalar(request, (name,), False):
            raise InputError(name, "logits outputs are not supported by certa-triton-local")


def one(name: str, value: Any, dtype: type) -> Any:
    """An output tensor holding one value for a batch of one: shape [1, 1]."""
    return pb_utils.Tensor(name, np.array([[value]], dtype=dtype))


@dataclass(frozen=True)
class ExtraOutputs:
    """Which optional outputs a request asked for (TRT-LLM adds them only when asked)."""

    log_probs: bool = False
    perf_metrics: bool = False
    num_input_tokens: bool = False
    num_output_tokens: bool = False

    @classmethod
    def of(cls, request: Any) -> ExtraOutputs:
        return cls(
            log_probs=bool(scalar(request, ("return_log_probs",), False)),
            perf_metrics=bool(scalar(request, ("return_perf_metrics",), False)),
            num_input_tokens=bool(scalar(request, ("return_num_input_tokens",), False)),
            num_output_tokens=bool(scalar(request, ("return_num_output_tokens",), False)),
        )

    def tensors(
        self,
        log_probs: list[float],
        cum_log_prob: float,
        stats: Stats,
        prompt_tokens: int,
        output_tokens: int,
        tokens_per_block: int,
    ) -> list[Any]:
        out = []
        if self.log_probs:
            out.append(pb_utils.Tensor("output_log_probs", np.array([[log_probs]], dtype=np.float32)))
            out.append(one("cum_log_probs", cum_log_prob, np.float32))
        if self.num_input_tokens:
            out.append(one("num_input_tokens", prompt_tokens, np.int32))
        if self.num_output_tokens:
            out.append(one("num_output_tokens", output_tokens, np.int32))
        if self.perf_metrics:
            out.extend(perf_tensors(stats, prompt_tokens, tokens_per_block))
        return out


def perf_tensors(stats: Stats, prompt_tokens: int, tokens_per_block: int) -> list[Any]:
    """TRT-LLM's perf-metric outputs. Blocks are `tokens_per_block` prompt tokens; only full blocks are reused."""
    total = -(-prompt_tokens // tokens_per_block)
    reused = stats.cached_tokens // tokens_per_block
    return [
        one("kv_cache_alloc_new_blocks", total - reused, np.int32),
        one("kv_cache_reused_blocks", reused, np.int32),
        one("kv_cache_alloc_total_blocks", total, np.int32),
        one("arrival_time_ns", stats.arrival_ns, np.int64),
        one("first_scheduled_time_ns", stats.first_scheduled_ns, np.int64),
        one("first_token_time_ns", stats.first_token_ns, np.int64),
        one("last_token_time_ns", stats.last_token_ns, np.int64),
        one("acceptance_rate", 0.0, np.float32),
        one("total_accepted_draft_tokens", 0, np.int32),
        one("total_draft_tokens", 0, np.int32),
        one("num_cached_tokens", stats.cached_tokens, np.int32),
    ]


def error_response(message: str) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def log_info(message: str) -> None:
    pb_utils.Logger.log_info(message)
