"""The controller container as rendered, run as a local process: its command, args and environment (ConfigMap,
`env` and Secret volumes resolved as the kubelet would) start a controller whose gRPC health answers the way the
chart's probes ask.

Only three variables are changed from the rendered environment: CERTA_LISTEN_ADDRESS (a free loopback port instead
of 0.0.0.0:50051), the URL of CERTA_BACKENDS' Triton entry (a local Triton instead of the in-cluster Service) and
CERTA_REDIS_URL (a local redis-server instead of the bundled Redis's Service). Besides, the Secret volumes are
written under a temporary directory that stands in for their mount paths, in the variables naming files:
CERTA_REDIS_PASSWORD_FILE is a file holding the rendered Secret's password, and the local Redis requires that
password, as the bundled one does. (The session's `redis_server` has no password; using it would mean dropping the
password file, the one path by which the chart gives the controller its credentials.) CERTA_REPLICA_ID is the pod
name, as the downward API sets it.
The command is resolved on PATH with this virtual environment's bin/ first, as the image puts /opt/certa/bin first.
"""

from __future__ import annotations

import base64
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

from certa_triton_local.launcher import TritonServer, free_port
from tests.chart.conftest import Rendered, render
from tests.redis_server import RedisServer

pytestmark = pytest.mark.chart

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
VENV_BIN = Path(sys.executable).parent
POD_NAME = "rel-certa-6b8f9c7d5-x2k9p"  # the pod's metadata.name, for the downward API


def mount_secret_volumes(rendered: Rendered, root: Path) -> dict[str, Path]:
    """Write the Secret volumes of the controller container under `root`, from the rendered Secrets, as the kubelet
    mounts them; the directory standing in for each mount path."""
    pod = rendered.controller["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    directories: dict[str, Path] = {}
    for mount in pod["containers"][0]["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        data = rendered.get("Secret", source["secretName"])["data"]
        directory = root / mount["name"]
        directory.mkdir(parents=True)
        for item in source["items"]:
            (directory / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
        directories[mount["mountPath"]] = directory
    return directories


def container_environment(rendered: Rendered, volumes_root: Path) -> dict[str, str]:
    """The controller container's environment as the kubelet would build it from envFrom and env, with its Secret
    volumes written under `volumes_root` (and the file variables pointing there)."""
    container = rendered.controller_container
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            raise AssertionError(f"unexpected envFrom source {source} in the default rendering")
    directories = mount_secret_volumes(rendered, volumes_root)
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
    """The probe's view: the status of `service`, or None when the call fails."""
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
        status = health_status(controller.address, service)
        if status == wanted:
            return
        time.sleep(0.25)
    raise AssertionError(f"health of {service!r} is {status}, wanted {wanted}; log:\n{controller.log()}")


class RenderedController:
    """`certa serve` started exactly as the rendered Deployment's container, on a free loopback port."""

    def __init__(self, rendered: Rendered, triton_address: str, redis_url: str, directory: Path) -> None:
        container = rendered.controller_container
        self.command = [*container["command"], *container["args"]]
        self.env = container_environment(rendered, directory / "volumes")
        name, _, url = self.env["CERTA_BACKENDS"].partition("=")
        assert url.startswith("triton://rel-certa-triton:"), url
        self.env["CERTA_BACKENDS"] = f"{name}=triton://{triton_address}"
        assert self.env["CERTA_REDIS_URL"] == "redis://rel-certa-redis:6379/0", self.env["CERTA_REDIS_URL"]
        self.env["CERTA_REDIS_URL"] = redis_url
        self.port = free_port()
        self.env["CERTA_LISTEN_ADDRESS"] = f"127.0.0.1:{self.port}"
        self.grace_s = rendered.controller["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.log_path = directory / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

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


ControllerFactory = Callable[[Rendered, str], RenderedController]


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

    def start(rendered: Rendered, triton_address: str) -> RenderedController:
        directory = tmp_path / f"controller-{len(started)}"
        directory.mkdir()
        controller = RenderedController(rendered, triton_address, release_redis.url, directory)
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


def test_rendered_command_serves_health_with_a_triton_backend(
    start_controller: ControllerFactory, scripted_triton: TritonServer, release_redis: RedisServer
) -> None:
    rendered = render()
    connections_before, auth_errors_before = redis_activity(release_redis)
    controller = start_controller(rendered, scripted_triton.grpc_url)
    assert controller.command == ["certa", "serve"]
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, SERVING)
    # The controller reached its Redis, authenticated with the password file, before serving.
    connections, auth_errors = redis_activity(release_redis)
    assert connections > connections_before + 1, "the controller did not connect to Redis"
    assert auth_errors == auth_errors_before
    # SIGTERM: the controller drains and exits cleanly within the rendered grace period.
    assert controller.terminate() == 0


def test_rendered_command_is_live_but_not_ready_without_a_backend(start_controller: ControllerFactory) -> None:
    rendered = render()
    controller = start_controller(rendered, f"127.0.0.1:{free_port()}")
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, NOT_SERVING)
    assert controller.terminate() == 0
