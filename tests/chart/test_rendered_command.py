"""The controller container as rendered, run as a local process: its command, args and environment (ConfigMap
resolved) start a controller whose gRPC health answers the way the chart's probes ask.

Only two variables are changed from the rendered environment: CERTA_LISTEN_ADDRESS (a free loopback port instead
of 0.0.0.0:50051) and the URL of CERTA_BACKENDS' Triton entry (a local Triton instead of the in-cluster Service).
The command is resolved on PATH with this virtual environment's bin/ first, as the image puts /opt/certa/bin first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certa_triton_local.launcher import TritonServer, free_port
from tests.chart.conftest import Rendered, render

pytestmark = pytest.mark.chart

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
VENV_BIN = Path(sys.executable).parent


def container_environment(rendered: Rendered) -> dict[str, str]:
    """The controller container's environment as the kubelet would build it from envFrom and env."""
    container = rendered.controller_container
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            raise AssertionError(f"unexpected envFrom source {source} in the default rendering")
    for variable in container.get("env", []):
        env[variable["name"]] = variable["value"]
    return env


def health_status(address: str, service: str) -> int | None:
    """The probe's view: the status of `service`, or None when the call fails."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError:
            return None
    return response.status


def wait_for_status(controller: RenderedController, service: str, wanted: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        assert controller.process is not None and controller.process.poll() is None, (
            f"controller exited with {controller.process and controller.process.returncode}:\n{controller.log()}")
        status = health_status(controller.address, service)
        if status == wanted:
            return
        time.sleep(0.25)
    raise AssertionError(f"health of {service!r} is {status}, wanted {wanted}; log:\n{controller.log()}")


class RenderedController:
    """`certa serve` started exactly as the rendered Deployment's container, on a free loopback port."""

    def __init__(self, rendered: Rendered, triton_address: str, log_path: Path) -> None:
        container = rendered.controller_container
        self.command = [*container["command"], *container["args"]]
        self.env = container_environment(rendered)
        name, _, url = self.env["CERTA_BACKENDS"].partition("=")
        assert url.startswith("triton://rel-certa-triton:"), url
        self.env["CERTA_BACKENDS"] = f"{name}=triton://{triton_address}"
        self.port = free_port()
        self.env["CERTA_LISTEN_ADDRESS"] = f"127.0.0.1:{self.port}"
        self.grace_s = rendered.controller["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, env={"PATH": path, "PYTHONDONTWRITEBYTECODE": "1", **self.env},
                stdout=log, stderr=subprocess.STDOUT)

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
def start_controller(tmp_path: Path) -> Iterator[ControllerFactory]:
    started: list[RenderedController] = []

    def start(rendered: Rendered, triton_address: str) -> RenderedController:
        controller = RenderedController(rendered, triton_address, tmp_path / f"controller-{len(started)}.log")
        started.append(controller)
        controller.start()
        return controller

    yield start
    for controller in started:
        controller.kill()


def probe_services(rendered: Rendered) -> tuple[str, str]:
    container = rendered.controller_container
    return container["livenessProbe"]["grpc"]["service"], container["readinessProbe"]["grpc"]["service"]


def test_rendered_command_serves_health_with_a_triton_backend(
    start_controller: ControllerFactory, scripted_triton: TritonServer
) -> None:
    rendered = render()
    controller = start_controller(rendered, scripted_triton.grpc_url)
    assert controller.command == ["certa", "serve"]
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, SERVING)
    # SIGTERM: the controller drains and exits cleanly within the rendered grace period.
    assert controller.terminate() == 0


def test_rendered_command_is_live_but_not_ready_without_a_backend(start_controller: ControllerFactory) -> None:
    rendered = render()
    controller = start_controller(rendered, f"127.0.0.1:{free_port()}")
    liveness, readiness = probe_services(rendered)
    wait_for_status(controller, liveness, SERVING)
    wait_for_status(controller, readiness, NOT_SERVING)
    assert controller.terminate() == 0
