"""The certa-client package installs into clean virtual environments of the oldest and a recent supported Python,
brings only grpcio and protobuf with it, and its helpers (blocking and asyncio: solve, stream, get, cancel, batch,
errors with partial results) work against a running controller."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "clients" / "python"
SCRIPT = Path(__file__).resolve().parent / "solve_in_venv.py"
# What a clean environment may hold after installing the client: its two dependencies and theirs.
ALLOWED = {"certa-client", "grpcio", "protobuf", "typing-extensions", "typing_extensions", "pip", "setuptools"}


def _interpreter(version: str) -> str | None:
    """A CPython `version` interpreter: pyenv's (the development and CI machines have 3.9 and 3.12), else PATH's."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python"))
    return found[-1] if found else shutil.which(f"python{version}")


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy: building writes build/ and *.egg-info/ next to the sources
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("certa_client-*.whl")
    return wheel


@pytest.mark.parametrize("version", ["3.9", "3.12"])
async def test_the_client_installs_cleanly_and_solves(
    version: str, client_wheel: Path, certa_address: str, tmp_path: Path
) -> None:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine (pyenv or PATH)")
    venv = tmp_path / f"venv-{version}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "install", "--quiet", str(client_wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    listed = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True, check=True)
    assert {package["name"].lower() for package in json.loads(listed.stdout)} <= ALLOWED

    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "python"), "-I", str(SCRIPT), certa_address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["python"] == [int(part) for part in version.split(".")]

    blocking = report["blocking"]
    assert blocking["solve"]["answer"] == "18" and blocking["solve"]["stop"] == "STOP_REASON_CERTAIN"
    assert blocking["solve"]["probe_tokens"] > 0
    assert blocking["stream"][0] == "started" and blocking["stream"][-1] == "result" and "probe" in blocking["stream"]
    assert blocking["get"] == {"same_answer": True, "status": "SOLVE_STATUS_SUCCEEDED"}
    assert blocking["cancel_finished"] is False
    assert blocking["cancel_running"] is True and blocking["cancelled_status"] == "SOLVE_STATUS_CANCELLED"
    assert blocking["batch"] == ["a", "b"] and blocking["batch_summary"] == 2
    assert blocking["invalid"][0] == "INVALID_ARGUMENT" and "token_budget" in blocking["invalid"][1]
    assert blocking["failed"][0] == "UNAVAILABLE" and blocking["failed"][1] >= 70

    asynchronous = report["async"]
    assert asynchronous["answer"] == "18" and asynchronous["get"] is True
    assert asynchronous["stream"][0] == "started" and asynchronous["stream"][-1] == "result"
