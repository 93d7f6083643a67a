"""What a failed call carries besides its status code: the partial result of an interrupted solve.

The server sends a rich status (google.rpc.Status in the `grpc-status-details-bin` trailer) whose details hold a
certa.v1.SolveResult with the text, tokens and probes reached before the failure. google.rpc.Status is decoded with
a private descriptor pool, so this package needs no googleapis-common-protos and never clashes with a process that
imports it.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from certa_client.v1 import reasoning_pb2 as pb

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _status_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    status_file = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto", package="google.rpc", syntax="proto3", dependency=[any_file.name]
    )
    message = status_file.message_type.add(name="Status")
    field = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    message.field.add(name="details", number=3, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
                      type_name=".google.protobuf.Any")
    pool.Add(status_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


_Status = _status_class()


def code_name(error: grpc.RpcError) -> str:
    """The status code's name, e.g. 'INVALID_ARGUMENT' (UNKNOWN for an error that carries no code)."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def message(error: grpc.RpcError) -> str:
    """The status message (what the server said was wrong)."""
    details = error.details() if callable(getattr(error, "details", None)) else None
    return str(details or error)


def partial_result(error: grpc.RpcError) -> pb.SolveResult | None:
    """The partial result a failed solve carries (UNAVAILABLE, DEADLINE_EXCEEDED, ...), or None."""
    trailers = error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else None
    raw = dict(trailers or ()).get(_STATUS_DETAILS_KEY)
    if not isinstance(raw, bytes):
        return None
    try:
        status = _Status.FromString(raw)
    except DecodeError:
        return None
    for detail in status.details:
        result = pb.SolveResult()
        if detail.Unpack(result):
            return result
    return None
