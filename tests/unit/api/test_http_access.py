"""The HTTP door's telemetry, its pure parts: the span's name and attributes by the HTTP conventions, the host and
port of the `Host` header, and the gRPC code an HTTP answer stands for in `certa.request.duration`."""

from __future__ import annotations

import grpc
import pytest

from certa.api.http.access import host_and_port
from certa.api.status_codes import grpc_code_of_http
from certa.observability.http import HttpRequestInfo

pytestmark = pytest.mark.unit


def info(method: str = "POST", route: str = "/v1/chat/completions") -> HttpRequestInfo:
    return HttpRequestInfo(method, route, "/v1/chat/completions", "https", "certa.example", 443, "1.1", "10.0.0.7", "")


def test_a_routed_request_is_named_by_method_and_route_and_empty_values_are_left_out() -> None:
    request = info()
    assert request.span_name == "POST /v1/chat/completions"
    assert request.span_attributes() == {
        "http.request.method": "POST",
        "url.scheme": "https",
        "url.path": "/v1/chat/completions",
        "http.route": "/v1/chat/completions",
        "server.address": "certa.example",
        "server.port": 443,
        "network.protocol.version": "1.1",
        "client.address": "10.0.0.7",
    }
    assert request.metric_attributes() == {
        "http.request.method": "POST",
        "url.scheme": "https",
        "http.route": "/v1/chat/completions",
    }


def test_an_unknown_method_is_other_and_no_route_leaves_the_route_out() -> None:
    request = info("BREW", "")
    assert request.span_name == "_OTHER"
    attributes = request.span_attributes()
    assert (attributes["http.request.method"], attributes["http.request.method_original"]) == ("_OTHER", "BREW")
    assert "http.route" not in attributes and "http.route" not in request.metric_attributes()


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        ("certa.example:8000", "http", ("certa.example", 8000)),
        ("certa.example", "https", ("certa.example", 443)),
        ("certa.example", "http", ("certa.example", 80)),
        ("[::1]:8000", "http", ("::1", 8000)),
        ("[::1]", "https", ("::1", 443)),
    ],
)
def test_host_and_port_of_the_host_header(host: str, scheme: str, expected: tuple[str, int]) -> None:
    assert host_and_port(host, scheme) == expected


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, grpc.StatusCode.OK),
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (404, grpc.StatusCode.NOT_FOUND),
        (405, grpc.StatusCode.UNIMPLEMENTED),
        (503, grpc.StatusCode.UNAVAILABLE),
        (500, grpc.StatusCode.INTERNAL),
        (502, grpc.StatusCode.INTERNAL),
        (418, grpc.StatusCode.UNKNOWN),
    ],
)
def test_the_grpc_code_an_http_answer_stands_for(status: int, code: grpc.StatusCode) -> None:
    assert grpc_code_of_http(status) is code
