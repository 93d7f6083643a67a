"""The client's TLS and credentials against the real gRPC server with TLS, mutual TLS and API keys: each missing
or wrong piece is refused with the status a caller can act on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest

from certa.api.auth import new_api_key
from certa.config import AuthSettings, TlsSettings
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa_client import Client, Target, plain, solve_request
from tests.system.api.conftest import settings_for
from tests.tls_material import Pki

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Secured:
    port: int
    api_key: str
    ca: str
    client_cert: str
    client_key: str


@pytest.fixture
async def secured(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Secured]:
    """A server requiring TLS with a client certificate (mutual TLS) and an API key."""
    pki = Pki.create()
    files = pki.write(tmp_path / "tls")
    cert, key = pki.issue("client")
    (tmp_path / "client.pem").write_bytes(cert)
    (tmp_path / "client.key").write_bytes(key)
    api_key, digest = new_api_key()
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [{"name": "ci", "tenant": "acme", "sha256": digest}]}))
    settings = replace(
        settings_for({"scripted": "scripted://"}, redis_server.url,
                     auth=AuthSettings(api_keys_file=str(tmp_path / "keys.json"))),
        tls=TlsSettings(
            cert_file=str(files["server_cert"]), key_file=str(files["server_key"]), client_ca_file=str(files["ca"])
        ),
    )
    server = CertaServer(settings, {"scripted": ScriptedBackend()})
    await server.start()
    yield Secured(server.port, api_key, str(files["ca"]), str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
    await server.stop()


def _solve(target: Target) -> pb.SolveResponse | grpc.StatusCode:
    """Solve with the blocking client (in a worker thread: the server runs on the test's event loop)."""
    try:
        with Client(target, timeout_s=10) as client:
            return client.solve(solve_request("Q", plain()))
    except grpc.RpcError as error:
        return error.code()


async def test_tls_mutual_tls_and_api_key_together_are_accepted(secured: Secured) -> None:
    target = Target(f"localhost:{secured.port}", api_key=secured.api_key, ca_file=secured.ca,
                    client_cert_file=secured.client_cert, client_key_file=secured.client_key)
    response = await asyncio.to_thread(_solve, target)
    assert isinstance(response, pb.SolveResponse) and response.status == pb.SOLVE_STATUS_SUCCEEDED
    by_ip = replace(target, address=f"127.0.0.1:{secured.port}", server_name="localhost")
    assert isinstance(await asyncio.to_thread(_solve, by_ip), pb.SolveResponse)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"api_key": ""}, grpc.StatusCode.UNAUTHENTICATED),
        ({"api_key": "not-a-key"}, grpc.StatusCode.UNAUTHENTICATED),
        ({"client_cert_file": "", "client_key_file": ""}, grpc.StatusCode.UNAVAILABLE),  # no client certificate
        ({"ca_file": ""}, grpc.StatusCode.UNAVAILABLE),  # the system's CAs do not know the test CA
        ({"server_name": "elsewhere.example"}, grpc.StatusCode.UNAVAILABLE),  # not the name in its certificate
    ],
)
async def test_a_missing_or_wrong_credential_is_refused(
    secured: Secured, change: dict[str, str], code: grpc.StatusCode
) -> None:
    target = Target(f"localhost:{secured.port}", api_key=secured.api_key, tls=True, ca_file=secured.ca,
                    client_cert_file=secured.client_cert, client_key_file=secured.client_key)
    assert await asyncio.to_thread(_solve, replace(target, **change)) == code


def test_a_certificate_without_its_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="client_cert_file and client_key_file"):
        Target("localhost:1", client_cert_file="client.pem")
