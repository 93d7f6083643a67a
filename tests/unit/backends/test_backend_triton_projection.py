"""Projecting requests onto a Triton model's declared signature, against recorded `ModelConfig` protos.

`CURRENT_ENSEMBLE` follows today's TensorRT-LLM `ensemble` (`seed` UINT64, `top_k` INT32, `max_batch_size > 0`);
`LEGACY_ENSEMBLE` follows older images (`random_seed`, `top_k` UINT32, no batching, no token counts).
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2, service_pb2

from certa.backends.triton.sampling import text_contract_sampling, token_contract_sampling
from certa.backends.triton.tensors import ModelSignature, build_infer_request, decode_outputs, texts
from certa.backends.triton.text import text_inputs
from certa.core.errors import BackendError
from certa.core.types import GenerationRequest, SamplingParams, Segment

pytestmark = pytest.mark.unit

CURRENT_ENSEMBLE = """
name: "ensemble" platform: "ensemble" max_batch_size: 64
input { name: "text_input" data_type: TYPE_STRING dims: [1] }
input { name: "max_tokens" data_type: TYPE_INT32 dims: [1] }
input { name: "stop_words" data_type: TYPE_STRING dims: [-1] optional: true }
input { name: "exclude_input_in_output" data_type: TYPE_BOOL dims: [1] optional: true }
input { name: "top_k" data_type: TYPE_INT32 dims: [1] optional: true }
input { name: "top_p" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "temperature" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "repetition_penalty" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "presence_penalty" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "frequency_penalty" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "seed" data_type: TYPE_UINT64 dims: [1] optional: true }
input { name: "return_num_input_tokens" data_type: TYPE_BOOL dims: [1] optional: true }
input { name: "return_num_output_tokens" data_type: TYPE_BOOL dims: [1] optional: true }
input { name: "stream" data_type: TYPE_BOOL dims: [1] optional: true }
output { name: "text_output" data_type: TYPE_STRING dims: [-1] }
output { name: "num_input_tokens" data_type: TYPE_INT32 dims: [1] }
output { name: "num_output_tokens" data_type: TYPE_INT32 dims: [1] }
parameters { key: "accumulate_tokens" value { string_value: "${accumulate_tokens}" } }
"""

LEGACY_ENSEMBLE = """
name: "ensemble" platform: "ensemble" max_batch_size: 0
input { name: "text_input" data_type: TYPE_STRING dims: [-1] }
input { name: "max_tokens" data_type: TYPE_UINT32 dims: [-1] }
input { name: "top_k" data_type: TYPE_UINT32 dims: [1] optional: true }
input { name: "top_p" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "temperature" data_type: TYPE_FP32 dims: [1] optional: true }
input { name: "random_seed" data_type: TYPE_UINT64 dims: [1] optional: true }
input { name: "stream" data_type: TYPE_BOOL dims: [1] optional: true }
output { name: "text_output" data_type: TYPE_STRING dims: [-1] }
"""

TOKEN_MODEL = """
name: "tensorrt_llm" backend: "tensorrtllm" max_batch_size: 64
input { name: "input_ids" data_type: TYPE_INT32 dims: [-1] }
input { name: "runtime_top_k" data_type: TYPE_INT32 dims: [1] reshape { shape: [] } optional: true }
input { name: "runtime_top_p" data_type: TYPE_FP32 dims: [1] reshape { shape: [] } optional: true }
input { name: "temperature" data_type: TYPE_FP32 dims: [1] reshape { shape: [] } optional: true }
input { name: "random_seed" data_type: TYPE_UINT64 dims: [1] reshape { shape: [] } optional: true }
output { name: "output_ids" data_type: TYPE_INT32 dims: [-1, -1] }
"""


def signature(pbtxt: str) -> ModelSignature:
    return ModelSignature.from_config(text_format.Parse(pbtxt, model_config_pb2.ModelConfig()))


def request(**sampling: object) -> GenerationRequest:
    return GenerationRequest(("Question? ", Segment("Answer")), max_tokens=64, sampling=SamplingParams(**sampling))


def wire(infer_request: service_pb2.ModelInferRequest) -> dict[str, tuple[str, list[int], bytes]]:
    return {
        tensor.name: (tensor.datatype, list(tensor.shape), raw)
        for tensor, raw in zip(infer_request.inputs, infer_request.raw_input_contents, strict=True)
    }


def test_the_seed_goes_to_seed_on_current_images_and_random_seed_on_older_ones() -> None:
    sampling = SamplingParams(seed=7)
    assert text_contract_sampling(sampling, signature(CURRENT_ENSEMBLE), "b") == {"top_k": 1, "seed": 7}
    assert text_contract_sampling(sampling, signature(LEGACY_ENSEMBLE), "b") == {"top_k": 1, "random_seed": 7}
    assert token_contract_sampling(sampling, signature(TOKEN_MODEL), "b") == {"runtime_top_k": 1, "random_seed": 7}


def test_datatypes_and_batch_dimension_follow_the_declared_signature() -> None:
    values = {"text_input": "hi", "max_tokens": 64, "top_k": 5, "seed": 7}
    current = wire(build_infer_request(signature(CURRENT_ENSEMBLE), values, ["text_output"]))
    assert current["text_input"] == ("BYTES", [1, 1], b"\x02\x00\x00\x00hi")
    assert current["max_tokens"] == ("INT32", [1, 1], np.array([64], "<i4").tobytes())
    assert current["top_k"] == ("INT32", [1, 1], np.array([5], "<i4").tobytes())
    assert current["seed"] == ("UINT64", [1, 1], np.array([7], "<u8").tobytes())

    legacy_values = {"text_input": "hi", "max_tokens": 64, "top_k": 5, "random_seed": 7}
    legacy = wire(build_infer_request(signature(LEGACY_ENSEMBLE), legacy_values, ["text_output"]))
    assert legacy["max_tokens"] == ("UINT32", [1], np.array([64], "<u4").tobytes())
    assert legacy["top_k"] == ("UINT32", [1], np.array([5], "<u4").tobytes())
    assert legacy["random_seed"] == ("UINT64", [1], np.array([7], "<u8").tobytes())


def test_token_ids_get_a_batch_dimension() -> None:
    ids = np.array([3, 1, 4, 1, 5], np.int32)
    sent = wire(build_infer_request(signature(TOKEN_MODEL), {"input_ids": ids}, []))
    assert sent["input_ids"] == ("INT32", [1, 5], ids.tobytes())


def test_an_undeclared_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="declares no input 'seed'"):
        build_infer_request(signature(LEGACY_ENSEMBLE), {"seed": 1}, [])


def test_sampling_sends_only_values_that_change_sampling() -> None:
    current = signature(CURRENT_ENSEMBLE)
    sampled = SamplingParams(temperature=0.7, top_p=0.95, top_k=20, repetition_penalty=1.1, presence_penalty=0.5)
    assert text_contract_sampling(sampled, current, "b") == {
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 20,
        "repetition_penalty": 1.1,
        "presence_penalty": 0.5,
    }
    assert token_contract_sampling(SamplingParams(temperature=1.0), signature(TOKEN_MODEL), "b") == {
        "temperature": 1.0,
        "runtime_top_p": 1.0,
    }


def test_a_value_the_model_cannot_take_is_a_rejected_input() -> None:
    with pytest.raises(BackendError, match="no input 'presence_penalty'") as raised:
        text_contract_sampling(SamplingParams(presence_penalty=0.5), signature(LEGACY_ENSEMBLE), "backend-x")
    assert raised.value.rejected_input and raised.value.backend == "backend-x"


def test_text_inputs_ask_for_streaming_counts_and_exclude_the_prompt() -> None:
    values = text_inputs(request(), signature(CURRENT_ENSEMBLE), "b", end_id=None, pad_id=None)
    assert values == {
        "text_input": "Question? Answer",
        "max_tokens": 64,
        "return_num_output_tokens": True,
        "stream": True,
        "exclude_input_in_output": True,
        "return_num_input_tokens": True,
        "top_k": 1,
    }
    with_stop = GenerationRequest(("Q",), max_tokens=8, sampling=SamplingParams(), stop=("}",))
    assert text_inputs(with_stop, signature(CURRENT_ENSEMBLE), "b", None, None)["stop_words"] == ["}"]


def test_a_text_model_without_token_counts_is_refused_rather_than_estimated() -> None:
    with pytest.raises(BackendError, match="never estimates") as raised:
        text_inputs(request(), signature(LEGACY_ENSEMBLE), "b", end_id=None, pad_id=None)
    assert not raised.value.rejected_input


def test_unfilled_template_parameters_count_as_absent() -> None:
    current = signature(CURRENT_ENSEMBLE)
    assert current.parameter("accumulate_tokens") is None
    assert not current.flag("accumulate_tokens")


def test_outputs_decode_by_declared_wire_type() -> None:
    response = service_pb2.ModelInferResponse()
    for name, datatype, shape in (("text_output", "BYTES", [1, 2]), ("num_output_tokens", "INT32", [1, 1])):
        response.outputs.append(
            service_pb2.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=shape)
        )
    response.raw_output_contents.append(b"\x02\x00\x00\x00ab\x03\x00\x00\x00\xc3\xa9!")
    response.raw_output_contents.append(np.array([2], "<i4").tobytes())

    outputs = decode_outputs(response)
    assert texts(outputs["text_output"]) == ["ab", "é!"]
    assert outputs["num_output_tokens"].tolist() == [[2]]
