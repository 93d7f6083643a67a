"""Authenticated tenants over TLS: API keys, JWTs and client certificates, against the real gRPC server with TLS
and a real Redis. Credentials that are missing, wrong, expired or foreign are refused; a tenant sees only its own
requests; the tenant named in metadata counts for nothing once authentication is on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from certa import watched_file
from certa.api.auth import TENANT_METADATA, new_api_key
from certa.config import AuthSettings, TlsSettings
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import settings_for
from tests.tls_material import JwtIssuer, Pki

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "https://issuer.example", "certa"
FAST = pb.Strategy(plain=pb.PlainCot())


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create()


@pytest.fixture(scope="module")
def issuer() -> JwtIssuer:
    return JwtIssuer()


class Secured:
    def __init__(self, server: CertaServer, files: dict[str, Path], keys: dict[str, str]) -> None:
        self.server, self.files, self.keys = server, files, keys

    def channel(self, client_cert: tuple[bytes, bytes] | None = None) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.files["ca"].read_bytes(),
            private_key=client_cert[1] if client_cert else None,
            certificate_chain=client_cert[0] if client_cert else None,
        )
        return grpc.aio.secure_channel(f"localhost:{self.server.port}", credentials)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def secured(pki: Pki, issuer: JwtIssuer, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Secured]:
    files = pki.write(tmp_path / "tls")
    keys = {}
    entries = []
    for tenant in ("acme", "globex"):
        keys[tenant], digest = new_api_key()
        entries.append({"name": f"{tenant}-ci", "tenant": tenant, "sha256": digest})
    files["keys"] = tmp_path / "keys.json"
    files["keys"].write_text(json.dumps({"keys": entries}))
    files["jwks"] = tmp_path / "jwks.json"
    files["jwks"].write_text(json.dumps(issuer.jwks()))
    settings = replace(
        settings_for(
            {"scripted": "scripted://"},
            redis_server.url,
            auth=AuthSettings(
                api_keys_file=str(files["keys"]),
                jwks_file=str(files["jwks"]),
                jwt_issuer=ISSUER,
                jwt_audience=AUDIENCE,
            ),
        ),
        tls=TlsSettings(cert_file=str(files["server_cert"]), key_file=str(files["server_key"])),
    )
    server = CertaServer(settings, {"scripted": ScriptedBackend()})
    await server.start()
    yield Secured(server, files, keys)
    await server.stop()


async def test_api_keys_name_the_tenant_and_tenants_see_only_their_own_requests(secured: Secured) -> None:
    async with secured.channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        request = pb.SolveRequest(question="Q", strategy=FAST, request_id="shared-id")
        mine = await stub.Solve(request, metadata=bearer(secured.keys["acme"]))
        assert mine.status == pb.SOLVE_STATUS_SUCCEEDED
        assert await stub.GetSolve(pb.GetSolveRequest(request_id="shared-id"), metadata=bearer(secured.keys["acme"]))
        for call in (
            stub.GetSolve(pb.GetSolveRequest(request_id="shared-id"), metadata=bearer(secured.keys["globex"])),
            # Naming another tenant in metadata changes nothing once authentication is on.
            stub.GetSolve(
                pb.GetSolveRequest(request_id="shared-id"),
                metadata=(*bearer(secured.keys["globex"]), (TENANT_METADATA, "acme")),
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert "acme" not in raised.value.details()


@pytest.mark.parametrize(
    "credential",
    [
        "none", "malformed", "unknown-key", "expired-jwt", "foreign-jwt", "wrong-audience", "wrong-issuer",
        "no-tenant", "tenant-newline", "tenant-nul",
    ],
)
async def test_missing_wrong_expired_and_foreign_credentials_are_refused(
    secured: Secured, issuer: JwtIssuer, credential: str
) -> None:
    valid = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "tenant": "acme"}
    metadata = {
        "none": (),
        "malformed": (("authorization", "Basic abc"),),
        "unknown-key": bearer(new_api_key()[0]),
        "expired-jwt": bearer(issuer.token(expires_in_s=-10, **valid)),
        "foreign-jwt": bearer(JwtIssuer().token(**valid)),
        "wrong-audience": bearer(issuer.token(**{**valid, "aud": "someone-else"})),
        "wrong-issuer": bearer(issuer.token(**{**valid, "iss": "https://evil.example"})),
        "no-tenant": bearer(issuer.token(**{k: v for k, v in valid.items() if k != "tenant"})),
        # Not a second keyspace for "acme": a full match refuses the trailing character.
        "tenant-newline": bearer(issuer.token(**{**valid, "tenant": "acme\n"})),
        "tenant-nul": bearer(issuer.token(**{**valid, "tenant": "acme\x00"})),
    }[credential]
    async with secured.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.ReasoningServiceStub(channel).Solve(
                pb.SolveRequest(question="Q", strategy=FAST), metadata=metadata
            )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert secured.keys["acme"] not in raised.value.details()


async def test_a_valid_jwt_names_its_tenant(secured: Secured, issuer: JwtIssuer) -> None:
    token = issuer.token(iss=ISSUER, aud=AUDIENCE, sub="svc", tenant="globex")
    async with secured.channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        await stub.Solve(pb.SolveRequest(question="Q", strategy=FAST, request_id="jwt-1"), metadata=bearer(token))
        found = await stub.GetSolve(pb.GetSolveRequest(request_id="jwt-1"), metadata=bearer(secured.keys["globex"]))
    assert found.status == pb.SOLVE_STATUS_SUCCEEDED


async def test_health_and_reflection_need_no_credentials(secured: Secured) -> None:
    async with secured.channel() as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = [service.name async for response in responses for service in response.list_services_response.service]
    assert "certa.v1.ReasoningService" in services


async def test_a_plaintext_client_cannot_talk_to_the_tls_port(secured: Secured) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.ReasoningServiceStub(channel).Solve(
                pb.SolveRequest(question="Q", strategy=FAST), metadata=bearer(secured.keys["acme"]), timeout=5
            )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_keys_reload_without_a_restart(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watched_file, "RELOAD_CHECK_S", 0.0)
    key, digest = new_api_key()
    document = json.loads(secured.files["keys"].read_text())
    document["keys"] = [{"name": "new", "tenant": "initech", "sha256": digest}]  # and the old keys are revoked
    secured.files["keys"].write_text(json.dumps(document))
    async with secured.channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        response = await stub.Solve(pb.SolveRequest(question="Q", strategy=FAST), metadata=bearer(key))
        assert response.status == pb.SOLVE_STATUS_SUCCEEDED
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Solve(pb.SolveRequest(question="Q", strategy=FAST), metadata=bearer(secured.keys["acme"]))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_mutual_tls_client_certificates_name_the_tenant(
    pki: Pki, redis_server: RedisServer, tmp_path: Path
) -> None:
    files = pki.write(tmp_path / "tls")
    settings = replace(
        settings_for({"scripted": "scripted://"}, redis_server.url, auth=AuthSettings(client_cert=True)),
        tls=TlsSettings(str(files["server_cert"]), str(files["server_key"]), client_ca_file=str(files["ca"])),
        health_listen_address="127.0.0.1:0",
    )
    server = CertaServer(settings, {"scripted": ScriptedBackend()})
    await server.start()
    secured = Secured(server, files, {})
    try:
        async with secured.channel(client_cert=pki.issue("acme")) as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            await stub.Solve(pb.SolveRequest(question="Q", strategy=FAST, request_id="cert-1"))
            assert (await stub.GetSolve(pb.GetSolveRequest(request_id="cert-1"))).status == pb.SOLVE_STATUS_SUCCEEDED
        async with secured.channel(client_cert=pki.issue("globex")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pb_grpc.ReasoningServiceStub(channel).GetSolve(pb.GetSolveRequest(request_id="cert-1"))
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        foreign = Pki.create().issue("acme")  # a certificate the server's client CA did not sign
        async with secured.channel(client_cert=foreign) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pb_grpc.ReasoningServiceStub(channel).GetSolve(pb.GetSolveRequest(request_id="cert-1"), timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        # Kubelet probes speak plaintext: the health port answers them.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop()


async def test_the_cli_makes_keys_and_calls_over_tls_with_one(
    pki: Pki, redis_server: RedisServer, tmp_path: Path
) -> None:
    certa = str(Path(sys.executable).parent / "certa")
    made = subprocess.run([certa, "auth", "new-key", "--tenant", "acme"], capture_output=True, text=True, check=True)
    key = made.stderr.split("\n")[1].strip()
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [json.loads(made.stdout)]}))
    files = pki.write(tmp_path / "tls")
    settings = replace(
        settings_for(
            {"scripted": "scripted://"}, redis_server.url, auth=AuthSettings(api_keys_file=str(tmp_path / "keys.json"))
        ),
        tls=TlsSettings(cert_file=str(files["server_cert"]), key_file=str(files["server_key"])),
    )
    server = CertaServer(settings, {"scripted": ScriptedBackend()})
    await server.start()
    try:
        command = [
            certa,
            "solve",
            "--json",
            "--strategy",
            "plain",
            "--address",
            f"localhost:{server.port}",
            "--ca-file",
            str(files["ca"]),
            "Q",
        ]
        with_key = await asyncio.create_subprocess_exec(
            *command, "--api-key", key, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await with_key.communicate()
        assert with_key.returncode == 0, err.decode()
        assert json.loads(out)["status"] == "SOLVE_STATUS_SUCCEEDED"
        without = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await without.communicate()
        assert without.returncode == 1 and "UNAUTHENTICATED" in err.decode()
    finally:
        await server.stop()


async def test_a_rotated_server_certificate_is_served_without_a_restart(
    secured: Secured, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(watched_file, "RELOAD_CHECK_S", 0.0)
    rotated = Pki.create().write(tmp_path / "rotated")  # a new CA: only the new certificate verifies against it
    secured.files["server_cert"].write_bytes(rotated["server_cert"].read_bytes())
    secured.files["server_key"].write_bytes(rotated["server_key"].read_bytes())
    trusting_new = Secured(secured.server, {**secured.files, "ca": rotated["ca"]}, secured.keys)
    async with trusting_new.channel() as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
