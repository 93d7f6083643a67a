"""The controller container as rendered, run as a local process: its command, args and environment (ConfigMap,
`env` and Secret / ConfigMap volumes resolved as the kubelet would) start a controller whose gRPC health answers the
way the chart's probes ask, and which authenticates callers the way the chart configures it.

Only these variables are changed from the rendered environment: CERTA_LISTEN_ADDRESS (a free loopback port instead
of 0.0.0.0:50051), CERTA_HEALTH_LISTEN_ADDRESS when set (likewise, instead of 0.0.0.0:8086), the URL of
CERTA_BACKENDS' Triton entry (a local Triton instead of the in-cluster Service) and CERTA_REDIS_URL (a local
redis-server instead of the bundled Redis's Service). Besides, the volumes are written under a temporary directory
that stands in for their mount paths, in the variables naming files: from the rendered Secrets and ConfigMaps (the
Redis password, the tenants file), or, for the Secrets the chart only names (the API keys, the TLS certificate), from
contents the test makes, under the Secret keys the chart mounts. CERTA_REDIS_PASSWORD_FILE is a file holding the
rendered Secret's password, and the local Redis requires that password, as the bundled one does. (The session's
`redis_server` has no password; using it would mean dropping the password file, the one path by which the chart
gives the controller its credentials.) CERTA_REPLICA_ID is the pod name, as the downward API sets it.
The command is resolved on PATH with this virtual environment's bin/ first, as the image puts /opt/certa/bin first.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certa.api.auth import new_api_key
from certa.server import SERVICE_NAME
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2, reasoning_pb2_grpc
from certa_triton_local.launcher import TritonServer, free_port
from tests.contract.chart.conftest import API_KEYS_SECRET, Rendered, render
from tests.tls_material import Pki

pytestmark = pytest.mark.chart

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
VENV_BIN = Path(sys.executable).parent
POD_NAME = "rel-certa-6b8f9c7d5-x2k9p"  # the pod's metadata.name, for the downward API
TLS_SECRET = "certa-tls"

# Contents of Secrets the chart mounts but does not render (the user creates them): name -> key -> bytes.
ExistingSecrets = dict[str, dict[str, bytes]]


def mount_volumes(rendered: Rendered, root: Path, existing: ExistingSecrets) -> dict[str, Path]:
    """Write the Secret and ConfigMap volumes of the controller container under `root`, as the kubelet mounts them
    (only the listed items, under their paths), from the rendered Secrets and ConfigMaps or, for a Secret the chart
    does not render, from `existing`; the directory standing in for each mount path."""
    pod = rendered.controller["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    directories: dict[str, Path] = {}
    for mount in pod["containers"][0]["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert "subPath" not in mount, mount
        if "secret" in volume:
            source = volume["secret"]
            name = source["secretName"]
            rendered_secret = rendered.find("Secret", name)
            if rendered_secret is not None:
                data = {key: base64.b64decode(value) for key, value in rendered_secret["data"].items()}
            else:
                assert name in existing, f"the rendering mounts the Secret {name}, which the test does not provide"
                data = existing[name]
        elif "configMap" in volume:
            source = volume["configMap"]
            data = {key: value.encode() for key, value in rendered.get("ConfigMap", source["name"])["data"].items()}
        else:
            continue
        directory = root / mount["name"]
        directory.mkdir(parents=True)
        for item in source["items"]:
            (directory / item["path"]).write_bytes(data[item["key"]])
        directories[mount["mountPath"]] = directory
    return directories


def container_environment(rendered: Rendered, volumes_root: Path, existing: ExistingSecrets) -> dict[str, str]:
    """The controller container's environment as the kubelet would build it from envFrom and env, with its volumes
    written under `volumes_root` (and the file variables pointing there)."""
    container = rendered.controller_container
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            raise AssertionError(f"unexpected envFrom source {source} in the default rendering")
    directories = mount_volumes(rendered, volumes_root, existing)
    for variable in container.get("env", []):
        if "value" in variable:
            value = variable["value"]
        elif variable["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}:
            value = POD_NAME
        else:
            raise AssertionError(f"unexpected variable source {variable} in the default rendering")
        for mount_path, directory in directories.items():
            if value.startswith(mount_path + "/"):
                value = str(directory) + value[len(mount_path) :]
        env[variable["name"]] = value
    return env


def health_status(address: str, service: str) -> int | None:
    """The probe's view (the kubelet speaks plaintext gRPC): the status of `service`, or None when the call fails."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.RpcError:
            return None
    return response.status


def wait_for_status(controller: RenderedController, service: str, wanted: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        assert controller.process is not None and controller.process.poll() is None, (
            f"controller exited with {controller.process and controller.process.returncode}:\n{controller.log()}"
        )
        status = health_status(controller.probe_address, service)
        if status == wanted:
            return
        time.sleep(0.25)
    raise AssertionError(f"health of {service!r} is {status}, wanted {wanted}; log:\n{controller.log()}")


class RenderedController:
    """`certa serve` started exactly as the rendered Deployment's container, on a free loopback port."""

    def __init__(
        self, rendered: Rendered, triton_address: str, redis_url: str, directory: Path, existing: ExistingSecrets
    ) -> None:
        container = rendered.controller_container
        self.command = [*container["command"], *container["args"]]
        self.env = container_environment(rendered, directory / "volumes", existing)
        name, _, url = self.env["CERTA_BACKENDS"].partition("=")
        assert url.startswith("triton://rel-certa-triton:"), url
        self.env["CERTA_BACKENDS"] = f"{name}=triton://{triton_address}"
        assert self.env["CERTA_REDIS_URL"] == "redis://rel-certa-redis:6379/0", self.env["CERTA_REDIS_URL"]
        self.env["CERTA_REDIS_URL"] = redis_url
        self.port = free_port()
        self.env["CERTA_LISTEN_ADDRESS"] = f"127.0.0.1:{self.port}"
        # With TLS, the probes' plaintext health port: on another free port too.
        self.health_port = 0
        if self.env.get("CERTA_HEALTH_LISTEN_ADDRESS"):
            self.health_port = free_port()
            self.env["CERTA_HEALTH_LISTEN_ADDRESS"] = f"127.0.0.1:{self.health_port}"
        self.grace_s = rendered.controller["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.log_path = directory / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def probe_address(self) -> str:
        """Where the rendered probes point: the health port when one is set, else the gRPC port."""
        return f"127.0.0.1:{self.health_port or self.port}"

    def start(self) -> None:
        path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env={"PATH": path, "PYTHONDONTWRITEBYTECODE": "1", **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> int:
        """SIGTERM, as the kubelet sends it; the exit code once the controller has drained and stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=self.grace_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


ControllerFactory = Callable[..., RenderedController]


def api_keys_secret(tenant: str = "acme") -> tuple[str, ExistingSecrets]:
    """A fresh API key and the Secret the chart mounts for it: keys.json holding only the key's digest, as made by
    `certa auth new-key`."""
    key, digest = new_api_key()
    document = {"keys": [{"name": "chart-test", "tenant": tenant, "sha256": digest}]}
    return key, {API_KEYS_SECRET: {"keys.json": json.dumps(document).encode()}}


@pytest.fixture
def release_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A local Redis requiring the password of the default rendering's Secret, as the bundled Redis does."""
    secret = render().get("Secret", "rel-certa-redis")
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    with RedisServer(tmp_path / "redis", password=password) as server:
        yield server


@pytest.fixture
def start_controller(tmp_path: Path, release_redis: RedisServer) -> Iterator[ControllerFactory]:
    started: list[RenderedController] = []

    def start(rendered: Rendered, triton_address: str, existing: ExistingSecrets) -> RenderedController:
        directory = tmp_path / f"controller-{len(started)}"
        directory.mkdir()
        controller = RenderedController(rendered, triton_address, release_redis.url, directory, existing)
        started.append(controller)
        controller.start()
        return controller

    yield start
    for controller in started:
        controller.kill()


def redis_activity(server: RedisServer) -> tuple[int, int]:
    """Connections Redis has accepted (this call's included) and replies refusing a password or its absence."""
    with redis.Redis(port=server.port, password=server.password) as client:
        connections = client.info("stats")["total_connections_received"]
        errors = client.info("errorstats")
    return connections, sum(errors.get(f"errorstat_{code}", {}).get("count", 0) for code in ("NOAUTH", "WRONGPASS"))


def probe_services(rendered: Rendered) -> tuple[str, str]:
    container = rendered.controller_container
    return container["livenessProbe"]["grpc"]["service"], container["readinessProbe"]["grpc"]["service"]


def probe_ports(rendered: Rendered) -> set[int]:
    container = rendered.controller_container
    return {container[probe]["grpc"]["port"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}


def get_solve_code(channel: grpc.Channel, api_key: str | None = None) -> grpc.StatusCode:
    """The status of GetSolve for an id nobody created: NOT_FOUND once the caller is authenticated (the lookup ran
    for its tenant), UNAUTHENTICATED when it is not."""
    metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
    try:
        reasoning_pb2_grpc.ReasoningServiceStub(channel).GetSolve(
            reasoning_pb2.GetSolveRequest(request_id="no-such-request"), metadata=metadata, timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    raise AssertionError("GetSolve of an unknown id answered")


def test_rendered_command_serves_health_with_a_triton_backend(
    start_controller: ControllerFactory, scripted_triton: TritonServer, release_redis: RedisServer
) -> None:
    rendered = render()
    key, secrets = api_keys_secret()
    connections_before, auth_errors_before = redis_activity(release_redis)
    controller = start_controller(rendered, scripted_triton.grpc_url, secrets)
    assert controller.command == ["certa", "serve"]
    # Without TLS the probes ask the gRPC port itself.
    assert probe_ports(rendered) == {50051} and controller.health_port == 0
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, SERVING)
    # The controller reached its Redis, authenticated with the password file, before serving.
    connections, auth_errors = redis_activity(release_redis)
    assert connections > connections_before + 1, "the controller did not connect to Redis"
    assert auth_errors == auth_errors_before
    # The API key from the mounted keys file is accepted; a call without one, or with another, is not.
    with grpc.insecure_channel(controller.address) as channel:
        assert get_solve_code(channel, key) == grpc.StatusCode.NOT_FOUND
        assert get_solve_code(channel) == grpc.StatusCode.UNAUTHENTICATED
        assert get_solve_code(channel, new_api_key()[0]) == grpc.StatusCode.UNAUTHENTICATED
    # SIGTERM: the controller drains and exits cleanly within the rendered grace period.
    assert controller.terminate() == 0


def test_rendered_command_is_live_but_not_ready_without_a_backend(start_controller: ControllerFactory) -> None:
    rendered = render()
    controller = start_controller(rendered, f"127.0.0.1:{free_port()}", api_keys_secret()[1])
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, NOT_SERVING)
    assert controller.terminate() == 0


def redis_secret(server: RedisServer) -> tuple[str, ExistingSecrets]:
    """Every rendering generates a new password for the bundled Redis: renderings other than the default one name an
    existing Secret instead, holding the local Redis's password."""
    assert server.password
    return "redis.bundled.auth.existingSecret=certa-redis", {
        "certa-redis": {"redis-password": server.password.encode()}
    }


def tls_secret(pki: Pki, directory: Path, client_ca: bool = False) -> ExistingSecrets:
    """The kubernetes.io/tls Secret of the server certificate (for localhost / 127.0.0.1), as cert-manager writes
    it: tls.crt, tls.key and the issuing CA in ca.crt."""
    files = pki.write(directory)
    data = {"tls.crt": files["server_cert"].read_bytes(), "tls.key": files["server_key"].read_bytes()}
    if client_ca:
        data["ca.crt"] = pki.ca_cert
    return {TLS_SECRET: data}


def test_rendered_command_with_tls_probes_the_plaintext_health_port(
    start_controller: ControllerFactory, scripted_triton: TritonServer, release_redis: RedisServer, tmp_path: Path
) -> None:
    redis_set, redis_secrets = redis_secret(release_redis)
    rendered = render("tls.enabled=true", f"tls.existingSecret={TLS_SECRET}", redis_set)
    pki = Pki.create()
    key, secrets = api_keys_secret()
    controller = start_controller(
        rendered, scripted_triton.grpc_url, {**secrets, **redis_secrets, **tls_secret(pki, tmp_path / "pki")}
    )
    # The probes (plaintext, as the kubelet's) ask the health port, which answers for both services.
    assert probe_ports(rendered) == {8086} and controller.health_port
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, SERVING)
    # The gRPC port speaks TLS only: a client trusting the CA is served, and the API key accepted.
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert)
    with grpc.secure_channel(f"localhost:{controller.port}", credentials) as channel:
        assert get_solve_code(channel, key) == grpc.StatusCode.NOT_FOUND
        assert get_solve_code(channel) == grpc.StatusCode.UNAUTHENTICATED
    assert health_status(controller.address, "") is None, "the TLS port answered plaintext"
    # The health port serves nothing but health.
    with grpc.insecure_channel(f"127.0.0.1:{controller.health_port}") as channel:
        assert get_solve_code(channel, key) == grpc.StatusCode.UNIMPLEMENTED
    assert controller.terminate() == 0


def test_rendered_command_with_mutual_tls_takes_the_tenant_from_the_client_certificate(
    start_controller: ControllerFactory, scripted_triton: TritonServer, release_redis: RedisServer, tmp_path: Path
) -> None:
    redis_set, redis_secrets = redis_secret(release_redis)
    rendered = render(
        "tls.enabled=true",
        f"tls.existingSecret={TLS_SECRET}",
        "tls.clientAuth=true",
        "auth.clientCert=true",
        redis_set,
    )
    pki = Pki.create()
    key, secrets = api_keys_secret()
    controller = start_controller(
        rendered,
        scripted_triton.grpc_url,
        {**secrets, **redis_secrets, **tls_secret(pki, tmp_path / "pki", client_ca=True)},
    )
    wait_for_status(controller, "", SERVING)
    wait_for_status(controller, SERVICE_NAME, SERVING)
    client_cert, client_key = pki.issue("acme")
    with_certificate = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_cert, private_key=client_key, certificate_chain=client_cert
    )
    with grpc.secure_channel(f"localhost:{controller.port}", with_certificate) as channel:
        # The verified certificate names the tenant: no API key needed.
        assert get_solve_code(channel) == grpc.StatusCode.NOT_FOUND
    # Without a client certificate the handshake fails, API key or not.
    without = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert)
    with grpc.secure_channel(f"localhost:{controller.port}", without) as channel:
        assert get_solve_code(channel, key) == grpc.StatusCode.UNAVAILABLE
    assert controller.terminate() == 0


def connectivity_while_idle(address: str, watch_s: float) -> list[grpc.ChannelConnectivity]:
    """The states of a client's channel, connected and then left without calls for `watch_s` seconds."""
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        channel.subscribe(states.append)
        time.sleep(watch_s)
        channel.unsubscribe(states.append)
    return states


def test_rendered_connection_age_makes_clients_reconnect(start_controller: ControllerFactory) -> None:
    """controller.config.grpcMaxConnectionAgeSeconds reaches the server: the connection is closed at that age (the
    idle channel goes back to IDLE, its next call reconnecting); with the default 300 s it stays READY."""
    aged = start_controller(
        render("controller.config.grpcMaxConnectionAgeSeconds=1"), f"127.0.0.1:{free_port()}", api_keys_secret()[1]
    )
    default = start_controller(render(), f"127.0.0.1:{free_port()}", api_keys_secret()[1])
    for controller in (aged, default):
        wait_for_status(controller, "", SERVING)
    assert grpc.ChannelConnectivity.IDLE in connectivity_while_idle(aged.address, watch_s=3.0)
    assert connectivity_while_idle(default.address, watch_s=3.0) == [grpc.ChannelConnectivity.READY]
    assert aged.terminate() == 0 and default.terminate() == 0
