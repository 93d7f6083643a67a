"""A small Triton gRPC client for the tests: ModelStreamInfer with TensorRT-LLM-style tensors.

Uses tritonclient's generated stubs directly. Every request asks for an empty final response
(`triton_enable_empty_final_response`), and `triton_final_response` is the only end-of-request signal.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

_DTYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.float32): "FP32",
    np.dtype(np.object_): "BYTES",
}
_NUMPY = {"BOOL": np.bool_, "INT32": np.int32, "INT64": np.int64, "UINT64": np.uint64, "FP32": np.float32}


def text(value: str | list[str]) -> np.ndarray:
    """A [1, N] BYTES tensor (N = 1 for a single string)."""
    values = [value] if isinstance(value, str) else value
    return np.array([[v.encode() for v in values]], dtype=np.object_)


def scalar(value: object, dtype: type) -> np.ndarray:
    return np.array([[value]], dtype=dtype)


@dataclass
class Response:
    outputs: dict[str, np.ndarray]
    final: bool
    error: str = ""
    received_at: float = field(default_factory=time.monotonic)

    def one(self, name: str) -> object:
        return self.outputs[name].reshape(-1)[0]


def build_request(model: str, inputs: Mapping[str, np.ndarray], request_id: str = "") -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    for name, value in inputs.items():
        datatype = _DTYPES[value.dtype]
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(value.shape))
        del tensor  # shape and type are all a raw-content input needs
        raw = serialize_byte_tensor(value).item() if datatype == "BYTES" else value.tobytes()
        request.raw_input_contents.append(raw)
    return request


def parse(message: service_pb2.ModelStreamInferResponse) -> Response:
    response = message.infer_response
    final = response.parameters["triton_final_response"].bool_param
    if message.error_message:
        return Response({}, True, message.error_message)
    outputs = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        shape = list(output.shape)
        if output.datatype == "BYTES":
            values = deserialize_bytes_tensor(raw) if raw else np.array([], dtype=np.object_)
            outputs[output.name] = values.reshape(shape)
        else:
            outputs[output.name] = np.frombuffer(raw, dtype=_NUMPY[output.datatype]).reshape(shape)
    return Response(outputs, final)


class Client:
    def __init__(self, url: str) -> None:
        self.channel = grpc.insecure_channel(url)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def model_config(self, model: str) -> service_pb2.ModelConfigResponse:
        return self.stub.ModelConfig(service_pb2.ModelConfigRequest(name=model))

    def stream(
        self, model: str, inputs: Mapping[str, np.ndarray], request_id: str = "", timeout: float = 120.0
    ) -> Iterator[Response]:
        """Responses of one request until (and including) the one marked final."""
        requests: queue.Queue = queue.Queue()
        requests.put(build_request(model, inputs, request_id))
        done = threading.Event()

        def feed() -> Iterator[service_pb2.ModelInferRequest]:
            yield requests.get()
            done.wait()  # keep the stream open until we have our final response

        call = self.stub.ModelStreamInfer(feed(), timeout=timeout)
        try:
            for message in call:
                response = parse(message)
                yield response
                if response.final:
                    return
        finally:
            done.set()
            call.cancel()

    def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], request_id: str = "", timeout: float = 120.0
    ) -> list[Response]:
        return list(self.stream(model, inputs, request_id, timeout))

    def cancel_after(
        self, model: str, inputs: Mapping[str, np.ndarray], responses: int, on_cancel: Callable[[], None] = lambda: None
    ) -> list[Response]:
        """Read `responses` responses, then cancel the gRPC stream (as a client that gives up does)."""
        received = []
        for response in self.stream(model, inputs):
            received.append(response)
            if len(received) >= responses or response.final:
                break
        on_cancel()
        return received
