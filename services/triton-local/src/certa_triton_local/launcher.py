"""Start and stop the real `tritonserver` that ships inside the `nvidia-pytriton` wheel, on the CPU.

Two details make the bundled server run a hand-written Python-backend model repository:

* `LD_LIBRARY_PATH` must hold the running interpreter's `lib/` (for libpython) and the wheel's
  `nvidia_pytriton.libs/` (for the CUDA runtime stubs the Python backend stub links against).
* The backend stub embeds Python with the environment ignored (`PYTHONPATH` has no effect) and finds its
  `sys.prefix` through `python3` on `PATH`. Putting this interpreter's `bin/` first on `PATH` makes the stub use
  this virtual environment's site-packages; otherwise it picks the base interpreter's (whose numpy 2 breaks
  BYTES tensors in the stub, which is built against numpy 1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class LauncherError(RuntimeError):
    """The server could not be started (missing wheel, port in use, model failed to load)."""


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError as exc:  # the launcher is useless without the wheel: say which one
        raise LauncherError("the nvidia-pytriton wheel is not installed (pip install nvidia-pytriton)") from exc
    return Path(pytriton.__file__).parent


@dataclass(frozen=True)
class ServerLayout:
    """Where the bundled server's pieces live."""

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path

    @classmethod
    def discover(cls) -> ServerLayout:
        root = _pytriton_dir() / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        layout = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            libs=Path(_pytriton_dir()).parent / "nvidia_pytriton.libs",
        )
        for path in (layout.binary, layout.python_backend, layout.stub, layout.libs):
            if not path.exists():
                raise LauncherError(f"nvidia-pytriton is missing {path} (Python {version} supported?)")
        return layout


def server_environment(layout: ServerLayout, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the server and its Python-backend stubs need (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    python_lib = sysconfig.get_config_var("LIBDIR") or str(Path(sys.base_prefix) / "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [python_lib, str(layout.libs), env.get("LD_LIBRARY_PATH", "")])
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def prepare_backend_directory(layout: ServerLayout, target: Path) -> Path:
    """A backends directory holding the Python backend with the stub built for this interpreter."""
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(layout.python_backend / name, python_dir / name)
    shutil.copy2(layout.stub, python_dir / "triton_python_backend_stub")
    return target


@dataclass
class TritonServer:
    """A running `tritonserver` process serving `model_repository` on loopback ports.

    Use as a context manager, or call `start()` / `stop()`. Ports default to free ones.
    """

    model_repository: Path
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    host: str = "127.0.0.1"
    extra_args: Sequence[str] = ()
    log_path: Path | None = None
    startup_timeout_s: float = 180.0
    env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: Path | None = field(default=None, init=False, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, backend_directory: Path) -> list[str]:
        layout = ServerLayout.discover()
        return [
            str(layout.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_directory}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--log-verbose=0",
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]

    def start(self) -> TritonServer:
        layout = ServerLayout.discover()
        for attr in ("grpc_port", "http_port", "metrics_port"):
            port = getattr(self, attr)
            if port == 0:
                setattr(self, attr, free_port())
            elif port_in_use(port, self.host):
                raise LauncherError(f"port {port} ({attr}) is already in use; choose another one")
        self._workdir = Path(tempfile.mkdtemp(prefix="certa-triton-"))
        backends = prepare_backend_directory(layout, self._workdir / "backends")
        log_path = self.log_path or self._workdir / "tritonserver.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process, closed in stop()
        self._process = subprocess.Popen(
            self.command(backends),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**server_environment(layout), **self.env},
            start_new_session=True,
        )
        log.close()
        self.log_path = log_path
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LauncherError(
                    f"tritonserver exited with code {self._process.returncode}; log: {self.log_path}\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise LauncherError(f"tritonserver not ready after {self.startup_timeout_s}s; log: {self.log_path}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        # Skip the ASCII tables tritonserver prints at start-up.
        text = [line for line in self.log_path.read_text(errors="replace").splitlines() if line[:1] not in "|+"]
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(model_repository: Path, **kwargs: object) -> Iterator[TritonServer]:
    """Serve a model repository for the duration of a `with` block."""
    server = TritonServer(model_repository=model_repository, **kwargs)  # type: ignore[arg-type]
    with server:
        yield server
