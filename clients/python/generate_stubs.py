"""Generate the Python code of the certa.v1 API into certa_client/v1 (`make proto`; `make proto-check` compares).

protoc names Python modules after the .proto path (certa/v1/reasoning.proto -> certa.v1.reasoning_pb2), but the
generated code lives in the client package, the one copy that the client and the server import (two copies of one
.proto file in a process conflict in protobuf's descriptor pool). So the module path is rewritten to
certa_client.v1: the descriptors, and so the wire and the gRPC method names, stay certa.v1's.

    python clients/python/generate_stubs.py OUT_DIR   # writes OUT_DIR/certa_client/v1/reasoning_pb2{.py,.pyi,_grpc.py}
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

REPOSITORY = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPOSITORY / "proto"
PROTO = "certa/v1/reasoning.proto"
FILES = ("reasoning_pb2.py", "reasoning_pb2.pyi", "reasoning_pb2_grpc.py")
GENERATED_MODULE, PACKAGE_MODULE = "certa.v1", "certa_client.v1"


def generate(out_dir: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    target = out_dir / "certa_client" / "v1"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as raw:
        status = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}",
            f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}", PROTO,
        ])
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTO} (exit {status})")
        for name in FILES:
            text = (Path(raw) / "certa" / "v1" / name).read_text()
            text = text.replace(f"from {GENERATED_MODULE} import", f"from {PACKAGE_MODULE} import")
            # The module's own name (classes' __module__), not the proto package in service and method names.
            text = text.replace(f"'{GENERATED_MODULE}.reasoning_pb2'", f"'{PACKAGE_MODULE}.reasoning_pb2'")
            (target / name).write_text(text)
    shutil.rmtree(target / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    generate(Path(sys.argv[1]))
