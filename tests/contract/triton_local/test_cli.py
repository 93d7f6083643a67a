"""`certa-triton-local serve` as a user runs it: foreground, clean exit on SIGTERM, clear port errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from certa_triton_local.launcher import free_port

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "certa_triton_local.cli"]


def ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/ensemble/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_serve_runs_in_the_foreground_and_stops_on_sigterm(tmp_path: Path, smollm2_gguf: Path) -> None:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            *COMMAND,
            "serve",
            "--model",
            "smollm2-135m",
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
            "--repo-dir",
            str(tmp_path / "models"),
            "--kv-cells",
            "2048",
            "--parallel",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready(http_port):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "server not ready in 120 s"
            time.sleep(0.5)
        assert (tmp_path / "models" / "tensorrt_llm" / "config.pbtxt").exists()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "stopping tritonserver" in output
    assert "successfully loaded 'tensorrt_llm'" in output  # the server log is followed on stdout
    assert not ready(http_port)


def test_a_port_in_use_is_a_clear_error(smollm2_gguf: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                *COMMAND,
                "serve",
                "--model",
                "smollm2-135m",
                "--grpc-port",
                str(port),
                "--http-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def test_unknown_model_is_rejected() -> None:
    result = subprocess.run([*COMMAND, "fetch", "--model", "nope"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
