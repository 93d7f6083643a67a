"""The text models `ensemble` and `tensorrt_llm_bls`: text in, text out, over the `tensorrt_llm` model.

Both are this one Python (BLS) model under two names: it tokenises `text_input`, streams the request through
`tensorrt_llm` and turns the returned ids back into text. (TensorRT-LLM's `ensemble` is a Triton ensemble of
preprocessing, tensorrt_llm and postprocessing; the tensors a client sees are the same.) Text is decoded
incrementally, so a streamed delta never ends inside a UTF-8 character.

Streaming (`stream=true`): one response per generated token with only the new text, `num_output_tokens` = tokens
in that response (0 or 1), then an empty response carrying the final flag, as TensorRT-LLM's BLS model does.
Non-streaming: one response; `text_output` and `num_output_tokens` include the prompt unless
`exclude_input_in_output` is true (TensorRT-LLM's default is to include it).

A cancelled client stream stops the inner request with a `stop` request carrying its request id.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from certa_triton_local import wordlists
from certa_triton_local.contract import ENGINE, PERF_OUTPUTS
from certa_triton_local.models.common import (
    FINAL,
    ExtraOutputs,
    InputError,
    batch_of_one,
    error_response,
    log_info,
    model_path,
    one,
    parameters,
    require_single_beam,
    scalar,
    strings,
)
from certa_triton_local.models.tensorrt_llm import sampling_params
from certa_triton_local.vocab import TextStream, Vocab

PERF_NAMES = tuple(t.name for t in PERF_OUTPUTS)


@dataclass(frozen=True)
class TextCall:
    prompt: tuple[int, ...]
    stream: bool
    exclude_input: bool
    extras: ExtraOutputs
    inner_inputs: tuple[Any, ...]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = parameters(args)
        self.name = args["model_name"]
        self.vocab = Vocab.from_file(model_path(params))
        self.max_context = int(params["max_context"])
        self.end_id = int(params["end_id"])
        self.pad_id = int(params["pad_id"])
        self.exclude_input = params.get("exclude_input_in_output", "false").lower() == "true"
        self.skip_special_tokens = params.get("skip_special_tokens", "true").lower() == "true"
        self.engine_model = params.get("tensorrt_llm_model_name", ENGINE)

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                call = self._parse(request)
            except InputError as exc:
                sender.send(error_response(str(exc)), flags=FINAL)
                continue
            except Exception as exc:  # noqa: BLE001 - never let one request take the model down
                sender.send(error_response(f"internal error: {exc}"), flags=FINAL)
                continue
            threading.Thread(target=self._serve, args=(call, sender), daemon=True).start()

    def _parse(self, request: Any) -> TextCall:
        require_single_beam(request)
        text = batch_of_one(request, "text_input").reshape(-1)[0]
        prompt = self.vocab.tokenize(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text))
        if not prompt:
            raise InputError("text_input", "is empty")
        if len(prompt) >= self.max_context:
            raise InputError(
                "text_input", f"the prompt has {len(prompt)} tokens; the context holds {self.max_context} tokens in all"
            )
        max_tokens = int(scalar(request, ("max_tokens",), 0))
        if max_tokens <= 0:
            raise InputError("max_tokens", f"must be > 0, got {max_tokens}")
        if len(prompt) + max_tokens > self.max_context:
            raise InputError(
                "max_tokens",
                f"prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceeds the "
                f"context of {self.max_context} tokens",
            )
        sampling = sampling_params(request, "top_k", "top_p")
        extras = ExtraOutputs.of(request)

        def value(name: str, data: Any, dtype: type) -> Any:
            return pb_utils.Tensor(name, np.array([[data]], dtype=dtype))

        inputs = [
            pb_utils.Tensor("input_ids", np.array([prompt], dtype=np.int32)),
            value("input_lengths", len(prompt), np.int32),
            value("request_output_len", max_tokens, np.int32),
            value("end_id", int(scalar(request, ("end_id",), self.end_id)), np.int32),
            value("pad_id", int(scalar(request, ("pad_id",), self.pad_id)), np.int32),
            value("temperature", sampling.temperature, np.float32),
            value("runtime_top_k", sampling.top_k, np.int32),
            value("runtime_top_p", sampling.top_p, np.float32),
            value("seed", sampling.seed, np.uint64),
            value("repetition_penalty", sampling.repetition_penalty, np.float32),
            value("presence_penalty", sampling.presence_penalty, np.float32),
            value("frequency_penalty", sampling.frequency_penalty, np.float32),
            value("min_tokens", int(scalar(request, ("min_tokens",), 0)), np.int32),
            value("streaming", True, np.bool_),
            value("exclude_input_in_output", True, np.bool_),
            value("return_log_probs", extras.log_probs, np.bool_),
            value("return_perf_metrics", extras.perf_metrics, np.bool_),
        ]
        for source, target in (("stop_words", "stop_words_list"), ("bad_words", "bad_words_list")):
            words = [self.vocab.tokenize(word, add_special=False) for word in strings(request, source)]
            if words:
                inputs.append(pb_utils.Tensor(target, wordlists.encode_batch([words])))
        return TextCall(
            prompt=tuple(prompt),
            stream=bool(scalar(request, ("stream",), False)),
            exclude_input=bool(scalar(request, ("exclude_input_in_output",), self.exclude_input)),
            extras=extras,
            inner_inputs=tuple(inputs),
        )

    def _serve(self, call: TextCall, sender: Any) -> None:
        inner_id = f"{self.name}-{uuid.uuid4().hex}"
        outputs = ["output_ids", "output_log_probs", "cum_log_probs", *PERF_NAMES]
        inner = pb_utils.InferenceRequest(
            model_name=self.engine_model,
            inputs=list(call.inner_inputs),
            requested_output_names=outputs,
            request_id=inner_id,
        )
        text = TextStream(self.vocab, self.skip_special_tokens)
        tokens: list[int] = []
        log_probs: list[float] = []
        last: dict[str, np.ndarray] = {}
        try:
            responses = inner.exec(decoupled=True)
            for response in responses:
                if sender.is_cancelled():
                    log_info(f"{self.name}: request {inner_id} cancelled by the client; stopping generation")
                    self._stop(inner_id)
                    for _ in responses:  # drain until the engine confirms the stop
                        pass
                    sender.send(flags=FINAL)
                    return
                if response.has_error():
                    sender.send(error_response(response.error().message()), flags=FINAL)
                    return
                got = {t.name(): t.as_numpy() for t in response.output_tensors()}
                if "output_ids" not in got:
                    continue
                last = got
                ids = got["output_ids"].reshape(-1).tolist()
                step_log_probs = got["output_log_probs"].reshape(-1).tolist() if "output_log_probs" in got else []
                tokens.extend(ids)
                log_probs.extend(step_log_probs)
                if call.stream:
                    sender.send(self._response(call, text.push(ids), step_log_probs, len(ids), last))
        except Exception as exc:  # noqa: BLE001 - report, never crash the stub
            sender.send(error_response(f"internal error: {exc}"), flags=FINAL)
            return
        if call.stream:
            tail = text.flush()
            if tail:
                sender.send(self._response(call, tail, [], 0, last))
            sender.send(flags=FINAL)
            return
        ids = tokens if call.exclude_input else [*call.prompt, *tokens]
        full_text = self.vocab.detokenize(ids, self.skip_special_tokens)
        sender.send(self._response(call, full_text, log_probs, len(ids), last), flags=FINAL)

    def _response(
        self, call: TextCall, text: str, log_probs: list[float], output_tokens: int, inner: dict[str, np.ndarray]
    ) -> Any:
        tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
        extras = call.extras
        if extras.log_probs:
            cum = float(inner["cum_log_probs"].reshape(-1)[0]) if "cum_log_probs" in inner else 0.0
            tensors.append(pb_utils.Tensor("output_log_probs", np.array([[log_probs]], dtype=np.float32)))
            tensors.append(one("cum_log_probs", cum, np.float32))
        if extras.num_input_tokens:
            tensors.append(one("num_input_tokens", len(call.prompt), np.int32))
        if extras.num_output_tokens:
            tensors.append(one("num_output_tokens", output_tokens, np.int32))
        if extras.perf_metrics:
            tensors.extend(pb_utils.Tensor(name, inner[name]) for name in PERF_NAMES if name in inner)
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _stop(self, inner_id: str) -> None:
        stop = pb_utils.InferenceRequest(
            model_name=self.engine_model,
            inputs=[
                pb_utils.Tensor("input_lengths", np.array([[0]], dtype=np.int32)),
                pb_utils.Tensor("request_output_len", np.array([[0]], dtype=np.int32)),
                pb_utils.Tensor("stop", np.array([[True]], dtype=np.bool_)),
            ],
            requested_output_names=[],
            request_id=inner_id,
        )
        for _ in stop.exec(decoupled=True):
            pass
