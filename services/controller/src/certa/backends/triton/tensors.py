"""Triton tensors on the wire: a model's declared signature, and encoding inputs / decoding outputs against it.

Inputs are projected onto what the model declares (read once with the `ModelConfig` RPC): the datatype comes
from the config (TensorRT-LLM images differ, e.g. INT32 vs UINT32), optional inputs the model lacks are left out
by the callers, and when `max_batch_size > 0` every tensor gets a leading batch dimension of 1.
Tensor data travels as `raw_input_contents` / `raw_output_contents`: little-endian values, and for BYTES each
element prefixed with its 4-byte little-endian length.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2

_DataType = model_config_pb2.DataType

# Config datatype -> (wire datatype name, numpy dtype). BF16 has no numpy dtype and is never sent by Certa.
_DATATYPES: dict[int, tuple[str, Any]] = {
    _DataType.TYPE_BOOL: ("BOOL", np.dtype(np.bool_)),
    _DataType.TYPE_UINT8: ("UINT8", np.dtype("<u1")),
    _DataType.TYPE_UINT16: ("UINT16", np.dtype("<u2")),
    _DataType.TYPE_UINT32: ("UINT32", np.dtype("<u4")),
    _DataType.TYPE_UINT64: ("UINT64", np.dtype("<u8")),
    _DataType.TYPE_INT8: ("INT8", np.dtype("<i1")),
    _DataType.TYPE_INT16: ("INT16", np.dtype("<i2")),
    _DataType.TYPE_INT32: ("INT32", np.dtype("<i4")),
    _DataType.TYPE_INT64: ("INT64", np.dtype("<i8")),
    _DataType.TYPE_FP16: ("FP16", np.dtype("<f2")),
    _DataType.TYPE_FP32: ("FP32", np.dtype("<f4")),
    _DataType.TYPE_FP64: ("FP64", np.dtype("<f8")),
    _DataType.TYPE_STRING: ("BYTES", np.dtype(object)),
}
_WIRE_DTYPES = {wire: dtype for wire, dtype in _DATATYPES.values()}

_UNSET_PREFIX = "${"  # TensorRT-LLM's config templates leave unfilled parameters as "${name}"


@dataclass(frozen=True)
class InputSpec:
    name: str
    data_type: int
    dims: tuple[int, ...]

    @property
    def wire_type(self) -> str:
        return _DATATYPES[self.data_type][0]

    @property
    def numpy_dtype(self) -> Any:
        return _DATATYPES[self.data_type][1]


@dataclass(frozen=True)
class ModelSignature:
    """What a model accepts and returns, from its `ModelConfig`."""

    name: str
    max_batch_size: int
    inputs: Mapping[str, InputSpec]
    outputs: frozenset[str]
    parameters: Mapping[str, str]

    @classmethod
    def from_config(cls, config: model_config_pb2.ModelConfig) -> ModelSignature:
        return cls(
            name=config.name,
            max_batch_size=config.max_batch_size,
            inputs={
                spec.name: InputSpec(spec.name, spec.data_type, tuple(spec.dims))
                for spec in config.input
                if spec.data_type in _DATATYPES
            },
            outputs=frozenset(spec.name for spec in config.output),
            parameters={key: value.string_value for key, value in config.parameters.items()},
        )

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def accepts(self, name: str) -> bool:
        return name in self.inputs

    def first_input(self, *names: str) -> str | None:
        """The first of `names` the model accepts (e.g. `seed` in current images, `random_seed` in older ones)."""
        return next((name for name in names if name in self.inputs), None)

    def parameter(self, key: str) -> str | None:
        """A config parameter's value; unset and unfilled template values count as absent."""
        value = self.parameters.get(key, "")
        return None if not value or value.startswith(_UNSET_PREFIX) else value

    def flag(self, key: str) -> bool:
        return (self.parameter(key) or "").lower() in ("1", "true", "yes", "t", "y")

    def missing_inputs(self, *names: str) -> list[str]:
        return [name for name in names if name not in self.inputs]


def _encode_bytes(values: np.ndarray) -> bytes:
    parts = []
    for value in values.flatten():
        data = value.encode() if isinstance(value, str) else bytes(value)
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def _as_array(spec: InputSpec, value: Any) -> np.ndarray:
    """`value` (scalar, str, sequence or array) as an array of the declared dtype, without the batch dimension."""
    if spec.data_type == _DataType.TYPE_STRING:
        items = [value] if isinstance(value, (str, bytes)) else list(value)
        return np.array([item.encode() if isinstance(item, str) else item for item in items], dtype=object)
    array = np.asarray(value)
    if array.ndim == 0:
        array = array.reshape(1)
    return array.astype(spec.numpy_dtype)


def build_infer_request(
    signature: ModelSignature,
    values: Mapping[str, Any],
    outputs: Iterable[str],
    request_id: str = "",
) -> service_pb2.ModelInferRequest:
    """A `ModelInferRequest` for `signature.name` carrying `values` (input name -> value) and asking for `outputs`."""
    request = service_pb2.ModelInferRequest(model_name=signature.name, id=request_id)
    for name, value in values.items():
        spec = signature.inputs.get(name)
        if spec is None:
            raise ValueError(f"model {signature.name!r} declares no input {name!r}")
        array = _as_array(spec, value)
        shape = [1, *array.shape] if signature.batched else list(array.shape)
        raw = _encode_bytes(array) if spec.data_type == _DataType.TYPE_STRING else array.tobytes()
        request.inputs.append(
            service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=spec.wire_type, shape=shape)
        )
        request.raw_input_contents.append(raw)
    for name in outputs:
        request.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=name))
    return request


def _decode_bytes(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        items.append(raw[offset : offset + length])
        offset += length
    return items


def decode_outputs(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    """The response's output tensors by name, with their shapes (BYTES elements as `bytes`)."""
    decoded: dict[str, np.ndarray] = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        shape = tuple(output.shape)
        if output.datatype == "BYTES":
            decoded[output.name] = np.array(_decode_bytes(raw), dtype=object).reshape(shape)
        elif output.datatype in _WIRE_DTYPES:
            decoded[output.name] = np.frombuffer(raw, dtype=_WIRE_DTYPES[output.datatype]).reshape(shape)
    return decoded


def first_int(outputs: Mapping[str, np.ndarray], name: str) -> int | None:
    """The first element of an integer output (a count such as `num_input_tokens`), None when absent or empty."""
    value = outputs.get(name)
    return None if value is None or value.size == 0 else int(value.flatten()[0])


def texts(array: np.ndarray) -> list[str]:
    """BYTES tensor elements as text (invalid UTF-8 is replaced, never raised)."""
    return [item.decode("utf-8", errors="replace") for item in array.flatten()]
