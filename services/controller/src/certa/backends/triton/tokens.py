"""Token mode: exact continuation through TensorRT-LLM's token-level model (`tensorrt_llm`).

The prompt is built as ids: text pieces are tokenised by the server's `preprocessing` model (cached per text),
and `Segment`s the model generated earlier contribute their stored ids verbatim, so a path continued in a
later call sees exactly the tokens it produced. Sent: `input_ids`, `input_lengths`, `request_output_len`,
`streaming=true`, `exclude_input_in_output=true`, `end_id`, `pad_id`, `stop_words_list`, the prompt-count flags
(`prompt_counts`) and the sampling projection (`runtime_top_k`, `runtime_top_p`, `temperature`, `seed` or
`random_seed`, penalties), `return_log_probs` when the request wants log-probs (`triton.log_probs`); optional
inputs only if the model declares them. Read: `output_ids` [beam, new], `output_log_probs` when asked,
`sequence_length`, and the prompt counts.

In streaming mode each response carries only the new ids (TensorRT-LLM's BLS model concatenates them itself to
accumulate text), so the deltas' ids are the generated ids, in order. A trailing end id is stripped. The call
finished by itself (STOP) when the end id came or fewer than `max_tokens` ids did; LENGTH when all came.
Text is detokenised incrementally through `postprocessing`, one call per streamed response. When the model
publishes its context (`max_context`) and prompt + max_tokens exceeds it, max_tokens is fitted to the context
and the final delta says so (`fitted_max_tokens`): a default budget never fails on a small model.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import numpy as np

from certa.backends.incremental_detokenizer import IncrementalDetokenizer
from certa.backends.port import Delta
from certa.backends.token_prompt import prompt_ids
from certa.backends.triton.log_probs import log_prob_request, new_log_probs
from certa.backends.triton.prompt_counts import PromptCounts, prompt_count_request
from certa.backends.triton.rpc import TritonConnection
from certa.backends.triton.sampling import token_contract_sampling
from certa.backends.triton.tensors import ModelSignature, build_infer_request
from certa.backends.triton.tokenizer import TritonTokenizer
from certa.core.errors import BackendError
from certa.core.types import FinishReason, GenerationRequest

_REQUIRED_INPUTS = ("input_ids", "input_lengths", "request_output_len")
_REQUIRED_OUTPUTS = ("output_ids", "sequence_length")




def fitted_max_tokens(max_tokens: int, prompt_tokens: int, signature: ModelSignature) -> int:
    """`max_tokens`, lowered so prompt + max_tokens fits the context the model publishes (`max_context`, as the
    local stack does; TensorRT-LLM engines publish none and are sent `max_tokens` as is)."""
    context = _configured_id(signature, "max_context")
    if context is None or prompt_tokens + max_tokens <= context:
        return max_tokens
    return max(context - prompt_tokens, 1)


def _configured_id(signature: ModelSignature, key: str) -> int | None:
    value = signature.parameter(key)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _new_ids(outputs: Mapping[str, np.ndarray]) -> list[int]:
    """Beam 0's ids in one response: `output_ids` [batch?, beam, len] cut at `sequence_length`."""
    output_ids = outputs.get("output_ids")
    if output_ids is None or output_ids.size == 0:
        return []
    first_beam = output_ids.reshape(-1, output_ids.shape[-1])[0]
    length = int(outputs["sequence_length"].flatten()[0]) if "sequence_length" in outputs else len(first_beam)
    return [int(token) for token in first_beam[:length]]


class TokenGeneration:
    """Streams generations from the token-level model, given a tokeniser and the special ids to use."""

    def __init__(
        self,
        connection: TritonConnection,
        tokenizer: TritonTokenizer,
        generator: str,
        *,
        end_id: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        self._connection = connection
        self._tokenizer = tokenizer
        self.generator = generator
        self._end_id = end_id
        self._pad_id = pad_id

    async def _special_ids(self, signature: ModelSignature) -> tuple[int | None, int | None]:
        """End and pad ids: adapter options, else the model config's parameters, else the server's tokeniser."""
        end_id = self._end_id if self._end_id is not None else _configured_id(signature, "end_id")
        pad_id = self._pad_id if self._pad_id is not None else _configured_id(signature, "pad_id")
        if end_id is None or pad_id is None:
            facts = await self._tokenizer.facts()
            end_id = facts.end_id if end_id is None else end_id
            pad_id = facts.pad_id if pad_id is None else pad_id
        return end_id, pad_id if pad_id is not None else end_id

    async def _inputs(
        self, request: GenerationRequest, signature: ModelSignature, end_id: int | None, pad_id: int | None
    ) -> dict[str, Any]:
        backend = self._connection.backend
        missing = signature.missing_inputs(*_REQUIRED_INPUTS)
        missing += [name for name in _REQUIRED_OUTPUTS if name not in signature.outputs]
        if missing:
            raise BackendError(backend, f"model {self.generator!r} is not a TensorRT-LLM token model: no {missing}")
        ids = await prompt_ids(
            request.prompt, lambda text, at_start: self._tokenizer.encode_piece(text, at_start=at_start)
        )
        assert ids is not None  # the Triton tokeniser raises instead of returning None
        values: dict[str, Any] = {
            "input_ids": np.array(ids, np.int32),
            "input_lengths": len(ids),
            "request_output_len": fitted_max_tokens(request.max_tokens, len(ids), signature),
        }
        optional = {"streaming": True, "exclude_input_in_output": True, "end_id": end_id, "pad_id": pad_id}
        values |= {name: value for name, value in optional.items() if value is not None and signature.accepts(name)}
        values |= prompt_count_request(signature)[0] | log_prob_request(request, signature)[0]
        if request.stop:
            if not signature.accepts("stop_words_list"):
                message = f"model {self.generator!r} has no stop_words_list input"
                raise BackendError(backend, message, rejected_input=True)
            values["stop_words_list"] = await self._tokenizer.stop_words_list(request.stop)
        return values | token_contract_sampling(request.sampling, signature, backend)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream one generation as deltas with exact ids; the last delta carries `finish`."""
        signature = await self._connection.signature(self.generator)
        end_id, pad_id = await self._special_ids(signature)
        values = await self._inputs(request, signature, end_id, pad_id)
        outputs = [*_REQUIRED_OUTPUTS, *prompt_count_request(signature)[1], *log_prob_request(request, signature)[1]]
        infer_request = build_infer_request(signature, values, outputs, self._connection.next_request_id())
        detokenizer = IncrementalDetokenizer(self._tokenizer.decode_many)
        prompt = PromptCounts(prompt_tokens=len(values["input_ids"]))
        max_tokens = int(values["request_output_len"])
        fitted = max_tokens if max_tokens < request.max_tokens else None
        generated, ended = 0, False
        async for response in self._connection.stream(infer_request):
            ids = _new_ids(response.outputs)
            log_probs = new_log_probs(response.outputs, len(ids))
            if end_id is not None and end_id in ids:
                ids, ended = ids[: ids.index(end_id)], True
                log_probs = log_probs[: len(ids)] if log_probs is not None else None
            generated += len(ids)
            prompt.update(response.outputs)
            text = await detokenizer.push(ids)
            if response.final:
                text += await detokenizer.flush()
                stopped = ended or generated < max_tokens
                finish = FinishReason.STOP if stopped else FinishReason.LENGTH
                yield Delta(
                    text,
                    len(ids),
                    tuple(ids),
                    finish=finish,
                    prompt_tokens=prompt.prompt_tokens,
                    cached_prompt_tokens=prompt.cached_prompt_tokens,
                    log_probs=log_probs,
                    fitted_max_tokens=fitted,
                )
            elif ids:
                yield Delta(text, len(ids), tuple(ids), log_probs=log_probs)
