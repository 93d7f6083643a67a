"""One gRPC connection to a Triton server, through tritonclient's generated stubs on `grpc.aio`.

Every inference goes through `ModelStreamInfer` (decoupled models reject `ModelInfer`; non-decoupled ones answer
a stream too), one stream call per request. The request asks for `triton_enable_empty_final_response`, and the
response parameter `triton_final_response` is the only end signal: a model may send its last data with the final
flag or send an empty final response after it. Leaving the generator early cancels the call, and Triton passes
the cancellation to the model. `tritonclient.grpc.aio.stream_infer` is not used: it drops the final flag.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from certa.backends.call_metadata import MetadataProvider
from certa.backends.triton.errors import response_error, rpc_error
from certa.backends.triton.tensors import ModelSignature, decode_outputs
from certa.core.errors import BackendError

_FINAL = "triton_final_response"
_EMPTY_FINAL = "triton_enable_empty_final_response"


@dataclass(frozen=True)
class StreamedResponse:
    outputs: Mapping[str, np.ndarray]
    final: bool


@dataclass(frozen=True)
class ChannelTarget:
    """Where and how to connect: `host:port`, plus TLS settings for `triton+tls://`."""

    address: str
    tls: bool = False
    ca_file: str | None = None

    @property
    def url(self) -> str:
        return f"{'triton+tls' if self.tls else 'triton'}://{self.address}"


class TritonConnection:
    """Channel, stub, per-call metadata, config cache and error mapping for one Triton server."""

    def __init__(
        self,
        backend: str,
        target: ChannelTarget,
        *,
        connect_timeout_s: float,
        metadata_provider: MetadataProvider | None = None,
    ) -> None:
        self.backend = backend
        self.target = target
        self._timeout_s = connect_timeout_s
        self._metadata_provider = metadata_provider
        self._channel: grpc.aio.Channel | None = None
        self._stub: service_pb2_grpc.GRPCInferenceServiceStub | None = None
        self._signatures: dict[str, ModelSignature] = {}
        self._request_ids = itertools.count(1)
        self._request_id_prefix = f"certa-{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        return self.target.url

    def _service(self) -> service_pb2_grpc.GRPCInferenceServiceStub:
        """The stub, creating the channel on first use (grpc.aio channels belong to the running event loop)."""
        if self._stub is None:
            if self.target.tls:
                root = Path(self.target.ca_file).read_bytes() if self.target.ca_file else None
                credentials = grpc.ssl_channel_credentials(root_certificates=root)
                self._channel = grpc.aio.secure_channel(self.target.address, credentials)
            else:
                self._channel = grpc.aio.insecure_channel(self.target.address)
            self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        return self._stub

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        return tuple(self._metadata_provider()) if self._metadata_provider else None

    async def server_ready(self) -> bool:
        try:
            reply = await self._service().ServerReady(
                service_pb2.ServerReadyRequest(), timeout=self._timeout_s, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(self.backend, self.url, "ServerReady", error) from error
        return bool(reply.ready)

    async def model_ready(self, model: str) -> bool:
        try:
            reply = await self._service().ModelReady(
                service_pb2.ModelReadyRequest(name=model), timeout=self._timeout_s, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise rpc_error(self.backend, self.url, f"ModelReady for {model!r}", error) from error
        return bool(reply.ready)

    async def ready_models(self) -> frozenset[str]:
        """The models of the server's repository that are ready (the `RepositoryIndex` RPC)."""
        try:
            reply = await self._service().RepositoryIndex(
                service_pb2.RepositoryIndexRequest(ready=True), timeout=self._timeout_s, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(self.backend, self.url, "RepositoryIndex", error) from error
        return frozenset(model.name for model in reply.models if model.state in ("", "READY"))

    async def signature(self, model: str) -> ModelSignature:
        """The model's signature, read once with the `ModelConfig` RPC and cached."""
        cached = self._signatures.get(model)
        if cached is not None:
            return cached
        try:
            reply = await self._service().ModelConfig(
                service_pb2.ModelConfigRequest(name=model), timeout=self._timeout_s, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise rpc_error(self.backend, self.url, f"ModelConfig for {model!r}", error) from error
        signature = ModelSignature.from_config(reply.config)
        self._signatures[model] = signature
        return signature

    def next_request_id(self) -> str:
        # Unique across replicas and restarts, so server logs and TensorRT-LLM's `stop` by id are unambiguous.
        return f"{self._request_id_prefix}-{next(self._request_ids)}"

    async def stream(self, request: service_pb2.ModelInferRequest) -> AsyncIterator[StreamedResponse]:
        """Send one request on its own stream and yield its responses up to and including the final one."""
        request.parameters[_EMPTY_FINAL].bool_param = True
        model = request.model_name
        inputs = [tensor.name for tensor in request.inputs]
        call = self._service().ModelStreamInfer(metadata=self._metadata())
        try:
            await call.write(request)
            await call.done_writing()
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    raise BackendError(
                        self.backend, f"Triton at {self.url} ended the stream of {model!r} before its final response"
                    )
                if message.error_message:
                    raise response_error(self.backend, self.url, model, message.error_message, inputs)
                response = message.infer_response
                final = _FINAL in response.parameters and response.parameters[_FINAL].bool_param
                yield StreamedResponse(decode_outputs(response), final)
                if final:
                    return
        except grpc.aio.AioRpcError as error:
            raise rpc_error(self.backend, self.url, f"inference on {model!r}", error) from error
        finally:
            call.cancel()

    async def infer_once(self, request: service_pb2.ModelInferRequest) -> Mapping[str, np.ndarray]:
        """The outputs of a model that answers with one response (tokenisers, detokenisers)."""
        outputs: dict[str, np.ndarray] = {}
        async for response in self.stream(request):
            outputs.update(response.outputs)
        return outputs

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel, self._stub = None, None
