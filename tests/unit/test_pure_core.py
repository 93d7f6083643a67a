"""The core stays pure: no module under certa.core imports an I/O library."""

from __future__ import annotations

import ast
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
