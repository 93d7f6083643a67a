"""Access and audit lines of a real gRPC server, captured as the JSON the server writes and parsed back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from certa.api.auth import new_api_key
from certa.config import AuthSettings
from certa.observability.telemetry import Telemetry
from certa.server import CertaServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import Logged, settings_for
from tests.tls_material import JwtIssuer

pytestmark = pytest.mark.integration

PLANTED = "certa_PLANTED-secret-4f9c2d"  # looks like an API key; must never be written anywhere
PLANTED_JWT = "eyJhbGciOiJSUzI1NiJ9.PLANTED-jwt-secret.c2lnbmF0dXJl"
DYNASOR = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2, probe_tokens=10))


@dataclass
class Keyed:
    stub: pb_grpc.ReasoningServiceStub
    key: str


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Keyed]:
    key, digest = new_api_key()
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "ci", "tenant": "acme", "sha256": digest}]}))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(JwtIssuer().jwks()))
    auth = AuthSettings(api_keys_file=str(keys), jwks_file=str(jwks), jwt_issuer="https://i.example", jwt_audience="a")
    settings = settings_for({"scripted": "scripted://"}, auth=auth)
    tracer_provider = TracerProvider()
    server = CertaServer(settings, {"scripted": ScriptedBackend()}, Telemetry(tracer_provider))
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Keyed(pb_grpc.ReasoningServiceStub(channel), key)
    await server.stop()
    tracer_provider.shutdown()


async def test_one_access_line_per_rpc_with_tenant_status_duration_and_tokens(keyed: Keyed, logged: Logged) -> None:
    auth = (("authorization", f"Bearer {keyed.key}"),)
    response = await keyed.stub.Solve(
        pb.SolveRequest(question="[[confident-after:100]] Q", strategy=DYNASOR, request_id="r-ok"), metadata=auth
    )
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await keyed.stub.GetSolve(pb.GetSolveRequest(request_id="nope"), metadata=auth)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND

    [solve, get] = logged.of("certa.access")
    usage = response.result.usage
    assert solve["rpc.method"] == "/certa.v1.ReasoningService/Solve"
    assert (solve["tenant"], solve["request_id"], solve["strategy"], solve["status"]) == (
        "acme",
        "r-ok",
        "dynasor-cot",
        "OK",
    )
    assert solve["tokens"] == usage.path_tokens + usage.probe_tokens > 0
    assert 0 < solve["duration_s"] < 30
    assert len(solve["trace_id"]) == 32 and len(solve["span_id"]) == 16  # the RPC's server span
    assert (get["rpc.method"], get["status"], get["tenant"], get["tokens"]) == (
        "/certa.v1.ReasoningService/GetSolve",
        "NOT_FOUND",
        "acme",
        None,
    )
    # The request's own lines (from the task that ran it) carry its id and tenant too.
    ran = [line for line in logged.lines() if line.get("request_id") == "r-ok" and line["logger"] != "certa.access"]
    assert all(line["tenant"] == "acme" for line in ran)


async def test_refused_credentials_make_one_audit_line_each_without_the_secret(keyed: Keyed, logged: Logged) -> None:
    attempts = [
        (("authorization", f"Bearer {PLANTED}"),),
        (("authorization", f"Bearer {PLANTED_JWT}"),),
        (("authorization", f"Basic {PLANTED}"),),
        (),
    ]
    for metadata in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await keyed.stub.Solve(pb.SolveRequest(question="Q"), metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

    audit = logged.of("certa.audit")
    assert [line["credential"] for line in audit] == ["api-key", "jwt", "malformed-authorization", "none"]
    assert {line["rpc.method"] for line in audit} == {"/certa.v1.ReasoningService/Solve"}
    assert {line["event"] for line in audit} == {"credential_refused"}
    assert audit[0]["reason"] == "unknown API key"
    assert audit[1]["reason"].startswith("invalid token: ")  # verified against the JWKS, and refused
    assert all(line["level"] == "WARNING" and line["reason"] for line in audit)
    assert [line["status"] for line in logged.of("certa.access")] == ["UNAUTHENTICATED"] * 4

    written = logged.stream.getvalue()
    assert "PLANTED" not in written
