"""The `tensorrt_llm` model: token ids in, token ids out, TensorRT-LLM's tensor names and streaming semantics.

Responses follow the TensorRT-LLM backend:
* `streaming=true`: one response per generated token, `output_ids` [1, 1, n] holding only the new tokens (the
  prompt is never repeated) and `num_output_tokens` = n, the size of that response's `output_ids`. The final flag
  rides on the last data response; when generation ends on `end_id` (which is never returned) that response is
  empty (n = 0).
* `streaming=false`: one response; `output_ids` is prompt + generated tokens unless `exclude_input_in_output`, and
  `num_output_tokens` is its size (so it includes the prompt when the prompt is included, as in TensorRT-LLM).
* A request with `stop=true` stops the running request with the same request id (TensorRT-LLM's cancellation).
* A cancelled client stream stops generation before the next token; the request ends with an empty final response.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from certa_triton_local import wordlists
from certa_triton_local.contract import TOKENS_PER_BLOCK
from certa_triton_local.engine import Engine, FinishReason, Generation, InvalidRequest, Job, Step
from certa_triton_local.models.common import (
    FINAL,
    ExtraOutputs,
    InputError,
    array,
    batch_of_one,
    error_response,
    log_info,
    model_path,
    parameters,
    require_single_beam,
    scalar,
)
from certa_triton_local.sampling import SamplingParams

# Engine field -> this model's input name, for error messages.
FIELDS = {
    "prompt": "input_ids",
    "max_tokens": "request_output_len",
    "end_id": "end_id",
    "stop_words": "stop_words_list",
    "bad_words": "bad_words_list",
}


def sampling_params(request: Any, top_k: str, top_p: str) -> SamplingParams:
    """Sampling inputs with TRT-LLM defaults; `top_k`/`top_p` name the inputs (they differ between models)."""
    params = SamplingParams(
        temperature=float(scalar(request, ("temperature",), 1.0)),
        top_k=int(scalar(request, (top_k,), 0)),
        top_p=float(scalar(request, (top_p,), 0.0)),
        seed=int(scalar(request, ("seed", "random_seed"), 0)),
        repetition_penalty=float(scalar(request, ("repetition_penalty",), 1.0)),
        presence_penalty=float(scalar(request, ("presence_penalty",), 0.0)),
        frequency_penalty=float(scalar(request, ("frequency_penalty",), 0.0)),
    )
    if params.temperature < 0:
        raise InputError("temperature", f"must be >= 0, got {params.temperature}")
    if params.top_k < 0:
        raise InputError(top_k, f"must be >= 0, got {params.top_k}")
    if not 0.0 <= params.top_p <= 1.0:
        raise InputError(top_p, f"must be in [0, 1], got {params.top_p}")
    if params.repetition_penalty <= 0:
        raise InputError("repetition_penalty", f"must be > 0, got {params.repetition_penalty}")
    return params


def word_list(request: Any, name: str) -> tuple[tuple[int, ...], ...]:
    value = array(request, name)
    if value is None:
        return ()
    if value.ndim != 3 or value.shape[0] != 1:
        raise InputError(name, f"expected shape [1, 2, L], got {list(value.shape)}")
    try:
        return tuple(tuple(word) for word in wordlists.decode(value[0]))
    except wordlists.WordListError as exc:
        raise InputError(name, str(exc)) from None


class ResponseSink:
    """Sends a job's steps as TensorRT-LLM responses on the Triton response sender."""

    def __init__(
        self, sender: Any, prompt: tuple[int, ...], streaming: bool, exclude_input: bool, extras: ExtraOutputs
    ) -> None:
        self._sender = sender
        self._prompt = prompt
        self._streaming = streaming
        self._exclude_input = exclude_input
        self._extras = extras
        self._tokens: list[int] = []
        self._log_probs: list[float] = []
        self._cum_log_prob = 0.0

    def cancelled(self) -> bool:
        return bool(self._sender.is_cancelled())

    def on_step(self, job: Job, step: Step) -> None:
        if step.error:
            self._sender.send(error_response(step.error), flags=FINAL)
            return
        if step.finish is FinishReason.CANCELLED:
            self._sender.send(flags=FINAL)
            return
        self._cum_log_prob += sum(step.log_probs)
        final = step.finish is not None
        if self._streaming:
            self._sender.send(self._response(job, list(step.tokens), list(step.log_probs)), flags=FINAL if final else 0)
            return
        self._tokens.extend(step.tokens)
        self._log_probs.extend(step.log_probs)
        if final:
            ids = self._tokens if self._exclude_input else [*self._prompt, *self._tokens]
            self._sender.send(self._response(job, ids, self._log_probs), flags=FINAL)

    def _response(self, job: Job, ids: list[int], log_probs: list[float]) -> Any:
        tensors = [
            pb_utils.Tensor("output_ids", np.array([[ids]], dtype=np.int32).reshape(1, 1, len(ids))),
            pb_utils.Tensor("sequence_length", np.array([[len(ids)]], dtype=np.int32)),
            *self._extras.tensors(
                log_probs, self._cum_log_prob, job.stats, len(self._prompt), len(ids), TOKENS_PER_BLOCK
            ),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = parameters(args)
        self.engine = Engine(
            model_path(params),
            kv_cells=int(params["kv_cache_cells"]),
            max_sequences=int(params["max_sequences"]),
            threads=int(params["threads"]),
            log=log_info,
        )
        self.end_id = int(params.get("end_id", self.engine.vocab.eos_id))
        self.exclude_input = params.get("exclude_input_in_output", "false").lower() == "true"
        log_info(f"tensorrt_llm: {params['model_path']} loaded; context {self.engine.max_context} tokens")

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._handle(request, sender)
            except InputError as exc:
                sender.send(error_response(str(exc)), flags=FINAL)
            except InvalidRequest as exc:
                sender.send(error_response(f"input '{FIELDS.get(exc.field, exc.field)}': {exc}"), flags=FINAL)
            except Exception as exc:  # noqa: BLE001 - never let one request take the model down
                sender.send(error_response(f"internal error: {exc}"), flags=FINAL)

    def _handle(self, request: Any, sender: Any) -> None:
        if scalar(request, ("stop",), False):
            request_id = request.request_id()
            if not request_id:
                raise InputError("stop", "needs the request id of the request to stop")
            stopped = self.engine.cancel(request_id)
            log_info(f"stop request for {request_id}: {'stopping it' if stopped else 'no such running request'}")
            sender.send(flags=FINAL)
            return
        require_single_beam(request)
        prompt = batch_of_one(request, "input_ids").reshape(-1)
        length = scalar(request, ("input_lengths",))
        if length is not None:
            if not 0 < int(length) <= prompt.size:
                raise InputError("input_lengths", f"must be in [1, {prompt.size}], got {length}")
            prompt = prompt[: int(length)]
        max_tokens = scalar(request, ("request_output_len",))
        if max_tokens is None:
            raise InputError("request_output_len", "is required")
        generation = Generation(
            prompt=tuple(int(t) for t in prompt),
            max_tokens=int(max_tokens),
            end_id=int(scalar(request, ("end_id",), self.end_id)),
            sampling=sampling_params(request, "runtime_top_k", "runtime_top_p"),
            stop_words=word_list(request, "stop_words_list"),
            bad_words=word_list(request, "bad_words_list"),
            min_tokens=int(scalar(request, ("min_tokens",), 0)),
            return_log_probs=bool(scalar(request, ("return_log_probs",), False)),
            request_id=request.request_id(),
        )
        sink = ResponseSink(
            sender,
            generation.prompt,
            streaming=bool(scalar(request, ("streaming",), False)),
            exclude_input=bool(scalar(request, ("exclude_input_in_output",), self.exclude_input)),
            extras=ExtraOutputs.of(request),
        )
        self.engine.submit(generation, sink)

    def finalize(self) -> None:
        self.engine.close()
