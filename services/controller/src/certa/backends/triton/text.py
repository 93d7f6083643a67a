"""Text mode: generation through TensorRT-LLM's text contract (`ensemble` or `tensorrt_llm_bls`).

Sent: `text_input`, `max_tokens`, `stream=true`, `exclude_input_in_output=true`, `return_num_output_tokens=true`,
`stop_words`, `end_id` / `pad_id` when configured, the prompt-count flags (`prompt_counts`) and the sampling
projection; optional inputs only if the model declares them.
Read: `text_output`, `num_output_tokens`, and the prompt counts.

Streaming count semantics (TensorRT-LLM `tensorrt_llm/1/model.py`, `convert_response`): every response's
`num_output_tokens` is the size of *that response's* `output_ids`, i.e. the tokens it adds, and the BLS model
passes it through unchanged. `text_output` is the text those tokens add, except on a BLS model configured with
`accumulate_tokens=true`, where it is all text so far; the parameter is read from the model config.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from certa.backends.incremental_detokenizer import INCOMPLETE_CHARACTER
from certa.backends.port import Delta
from certa.backends.triton.log_probs import log_prob_request, new_log_probs
from certa.backends.triton.prompt_counts import PromptCounts, prompt_count_request
from certa.backends.triton.rpc import TritonConnection
from certa.backends.triton.sampling import text_contract_sampling
from certa.backends.triton.tensors import ModelSignature, build_infer_request, texts
from certa.core.errors import BackendError
from certa.core.types import FinishReason, GenerationRequest, prompt_text

_REQUIRED_INPUTS = ("text_input", "max_tokens", "return_num_output_tokens")
_OUTPUTS = ("text_output", "num_output_tokens")


def text_inputs(
    request: GenerationRequest, signature: ModelSignature, backend: str, end_id: int | None, pad_id: int | None
) -> dict[str, Any]:
    """The input values for one text-contract request, projected onto `signature`."""
    missing = signature.missing_inputs(*_REQUIRED_INPUTS)
    if missing or "num_output_tokens" not in signature.outputs:
        raise BackendError(
            backend,
            f"model {signature.name!r} lacks {', '.join(missing) or 'the num_output_tokens output'}: Certa needs "
            "the server's token counts (TensorRT-LLM text models report them since return_num_output_tokens) "
            "and never estimates them from text",
        )
    values: dict[str, Any] = {
        "text_input": prompt_text(request.prompt),
        "max_tokens": request.max_tokens,
        "return_num_output_tokens": True,
    }
    optional = {"stream": True, "exclude_input_in_output": True, "end_id": end_id, "pad_id": pad_id}
    values |= {name: value for name, value in optional.items() if value is not None and signature.accepts(name)}
    values |= prompt_count_request(signature)[0] | log_prob_request(request, signature)[0]
    if request.stop:
        if not signature.accepts("stop_words"):
            raise BackendError(backend, f"model {signature.name!r} has no stop_words input", rejected_input=True)
        values["stop_words"] = list(request.stop)
    return values | text_contract_sampling(request.sampling, signature, backend)


class _TextAccumulator:
    """Turns each response's `text_output` into the text it adds.

    With accumulated text the newest character may still be incomplete (U+FFFD); it is held back until a later
    response completes it, so emitted text is never retracted.
    """

    def __init__(self, accumulated: bool) -> None:
        self._accumulated = accumulated
        self._latest = ""
        self._emitted = ""

    def added(self, text: str, final: bool) -> str:
        if not self._accumulated:
            return text
        self._latest = text or self._latest  # an empty final response carries no text
        stable = self._latest if final else self._latest.rstrip(INCOMPLETE_CHARACTER)
        piece = stable[len(self._emitted) :]
        self._emitted += piece
        return piece


async def stream_text(
    connection: TritonConnection,
    model: str,
    request: GenerationRequest,
    *,
    end_id: int | None = None,
    pad_id: int | None = None,
) -> AsyncGenerator[Delta, None]:
    """Stream one generation from a text-contract model as deltas; the last one carries `finish`."""
    backend = connection.backend
    signature = await connection.signature(model)
    values = text_inputs(request, signature, backend, end_id, pad_id)
    outputs = [name for name in _OUTPUTS if name in signature.outputs] + prompt_count_request(signature)[1]
    outputs += log_prob_request(request, signature)[1]
    infer_request = build_infer_request(signature, values, outputs, connection.next_request_id())
    accumulator = _TextAccumulator(signature.flag("accumulate_tokens"))
    prompt = PromptCounts()
    generated = 0
    async for response in connection.stream(infer_request):
        text = "".join(texts(response.outputs["text_output"])) if "text_output" in response.outputs else ""
        counts = response.outputs.get("num_output_tokens")
        if counts is None and "text_output" in response.outputs:
            raise BackendError(backend, f"model {model!r} streamed text without num_output_tokens")
        tokens = int(counts.sum()) if counts is not None else 0
        log_probs = new_log_probs(response.outputs, tokens)
        prompt.update(response.outputs)
        generated += tokens
        piece = accumulator.added(text, response.final)
        if response.final:
            finish = FinishReason.LENGTH if generated >= request.max_tokens else FinishReason.STOP
            yield Delta(
                piece,
                tokens,
                finish=finish,
                prompt_tokens=prompt.prompt_tokens,
                cached_prompt_tokens=prompt.cached_prompt_tokens,
                log_probs=log_probs,
            )
        elif piece or tokens:
            yield Delta(piece, tokens, log_probs=log_probs)
