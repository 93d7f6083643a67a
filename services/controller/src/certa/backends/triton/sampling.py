"""`SamplingParams` projected onto TensorRT-LLM's two Triton contracts.

`text_contract_sampling` serves `ensemble` / `tensorrt_llm_bls`, `token_contract_sampling` serves `tensorrt_llm`.
Both send only inputs the model declares and only values that change sampling; a value the model cannot take
(e.g. a penalty on an image without that input) is refused as a rejected input rather than silently dropped.
Greedy decoding is sent as top-k 1, the one setting every TensorRT-LLM version reads as argmax. The seed goes to
`seed` (current images) or `random_seed` (older images), whichever the model declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certa.backends.triton.tensors import ModelSignature
from certa.core.errors import BackendError
from certa.core.types import SamplingParams


@dataclass(frozen=True)
class _SamplingNames:
    temperature: str
    top_p: str
    top_k: str
    seeds: tuple[str, ...] = ("seed", "random_seed")
    repetition_penalty: str = "repetition_penalty"
    presence_penalty: str = "presence_penalty"
    frequency_penalty: str = "frequency_penalty"


_TEXT_CONTRACT = _SamplingNames(temperature="temperature", top_p="top_p", top_k="top_k")
_TOKEN_CONTRACT = _SamplingNames(temperature="temperature", top_p="runtime_top_p", top_k="runtime_top_k")


def text_contract_sampling(sampling: SamplingParams, signature: ModelSignature, backend: str) -> dict[str, Any]:
    """Sampling inputs for a text-contract model (`top_k`, `top_p`, `temperature`, `seed`, penalties)."""
    return _project(sampling, signature, backend, _TEXT_CONTRACT)


def token_contract_sampling(sampling: SamplingParams, signature: ModelSignature, backend: str) -> dict[str, Any]:
    """Sampling inputs for the token-contract model (`runtime_top_k`, `runtime_top_p`, `temperature`, ...)."""
    return _project(sampling, signature, backend, _TOKEN_CONTRACT)


def _project(
    sampling: SamplingParams, signature: ModelSignature, backend: str, names: _SamplingNames
) -> dict[str, Any]:
    values: dict[str, Any] = {}

    def put(name: str, value: Any, *, required: bool = True) -> None:
        if signature.accepts(name):
            values[name] = value
        elif required:
            raise BackendError(
                backend, f"model {signature.name!r} has no input {name!r} for {value!r}", rejected_input=True
            )

    if sampling.greedy:
        put(names.top_k, 1, required=False)
    else:
        put(names.temperature, sampling.temperature)
        put(names.top_p, sampling.top_p)
        if sampling.top_k > 0:
            put(names.top_k, sampling.top_k)
    if sampling.seed is not None:
        seed_input = signature.first_input(*names.seeds)
        put(seed_input or names.seeds[0], sampling.seed)
    if sampling.repetition_penalty != 1.0:
        put(names.repetition_penalty, sampling.repetition_penalty)
    if sampling.presence_penalty != 0.0:
        put(names.presence_penalty, sampling.presence_penalty)
    if sampling.frequency_penalty != 0.0:
        put(names.frequency_penalty, sampling.frequency_penalty)
    return values
