"""One copy of the API's generated code: the client package's, imported by the server under its old name, with the
proto's package (service and message names on the wire) unchanged and the language options set."""

from __future__ import annotations

from pathlib import Path

import pytest

import certa_client.v1.reasoning_pb2 as client_pb
import certa_client.v1.reasoning_pb2_grpc as client_pb_grpc
from certa.v1 import reasoning_pb2, reasoning_pb2_grpc

pytestmark = pytest.mark.unit


def test_the_server_imports_the_client_packages_copy() -> None:
    assert reasoning_pb2 is client_pb and reasoning_pb2_grpc is client_pb_grpc
    assert client_pb.SolveRequest.__module__ == "certa_client.v1.reasoning_pb2"


def test_wire_names_stay_certa_v1() -> None:
    service = client_pb.DESCRIPTOR.services_by_name["ReasoningService"]
    assert service.full_name == "certa.v1.ReasoningService"
    assert client_pb.DESCRIPTOR.name == "certa/v1/reasoning.proto"
    assert client_pb.SolveRequest.DESCRIPTOR.full_name == "certa.v1.SolveRequest"
    source = Path(client_pb_grpc.__file__).read_text()
    assert "add_registered_method_handlers('certa.v1.ReasoningService'" in source
    assert "'/certa.v1.ReasoningService/Solve'" in source


def test_language_options() -> None:
    options = client_pb.DESCRIPTOR.GetOptions()
    assert options.go_package == "certa/gen/go/certa/v1;certav1"
    assert options.java_package == "com.certa.v1" and options.java_multiple_files
    assert options.csharp_namespace == "Certa.V1"


def test_allocation_zero_is_still_the_bandit() -> None:
    assert client_pb.ALLOCATION_UNSPECIFIED == 0 and client_pb.ALLOCATION_UNIFORM == 1
    assert client_pb.Allocation.Value("ALLOCATION_BANDIT") == 2
