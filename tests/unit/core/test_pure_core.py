"""The core stays pure: no module under certa.core imports an I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import certa.core

pytestmark = pytest.mark.unit

FORBIDDEN = {"grpc", "redis", "tritonclient", "httpx", "opentelemetry", "asyncio", "socket", "aiohttp",
             "requests", "urllib", "subprocess", "os", "certa.backends", "certa.runtime", "certa.api", "certa.v1"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io_library() -> None:
    root = Path(certa.core.__file__).parent
    offenders = {
        f"{path.relative_to(root)}: {name}"
        for path in root.rglob("*.py")
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert not offenders
    assert len(list(root.rglob("*.py"))) >= 8


def test_importing_the_whole_core_loads_no_io_library_even_indirectly() -> None:
    """Import every core module in a fresh interpreter and look at everything that got loaded."""
    script = (
        "import importlib, pkgutil, sys, certa.core\n"
        "for info in pkgutil.walk_packages(certa.core.__path__, 'certa.core.'):\n"
        "    importlib.import_module(info.name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
                 .stdout.split())
    io_libraries = {"grpc", "redis", "tritonclient", "httpx", "opentelemetry", "aiohttp", "requests", "jinja2",
                    "asyncio", "google.protobuf"}
    assert not {name for name in loaded if name.split(".")[0] in io_libraries or name in io_libraries}
    assert {name for name in loaded if name.startswith("certa.")} <= {
        name for name in loaded if name.startswith("certa.core")
    }
