"""The `certa` command: `certa serve` runs the controller, `certa solve` asks a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certa.client import ClientTarget, add_target_options
from certa.console import describe, stream_solve
from certa.core.strategies import StrategyName
from certa.core.strategies.dynasor import PRESETS
from certa.datasets import GSM8K_TEST
from certa.demo import run_demo
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # math-verify warns on every call that its SIGALRM timeouts are off; that is deliberate (see core.answers).
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _strategy(args: argparse.Namespace) -> pb.Strategy:
    dynasor = pb.DynasorCot(
        preset=f"PRESET_{args.effort.upper()}",
        disable_early_exit=args.no_early_exit,
        require_settled=args.settled,
    )
    if args.chunk_tokens is not None:
        dynasor.chunk_tokens = args.chunk_tokens
    if args.threshold is not None:
        dynasor.certainty_threshold = args.threshold
    if args.probe_tokens is not None:
        dynasor.probe_tokens = args.probe_tokens
    if args.strategy == StrategyName.PLAIN:
        return pb.Strategy(plain=pb.PlainCot())
    if args.strategy == StrategyName.DYNASOR_COT:
        return pb.Strategy(dynasor_cot=dynasor)
    if args.strategy == StrategyName.SELF_CONSISTENCY:
        consistency = pb.SelfConsistency(max_samples=args.samples, pool=args.pool)
        multi: pb.SelfConsistency | pb.MajorityVote = consistency
        if args.refine:
            consistency.refinement.SetInParent()
    else:
        multi = pb.MajorityVote(n=args.samples)
    if args.inner == StrategyName.PLAIN:
        multi.plain.SetInParent()
    else:
        multi.dynasor_cot.CopyFrom(dynasor)
    if isinstance(multi, pb.SelfConsistency):
        return pb.Strategy(self_consistency=multi)
    return pb.Strategy(majority_vote=multi)


def build_request(args: argparse.Namespace) -> pb.SolveRequest:
    request = pb.SolveRequest(
        strategy=_strategy(args),
        sampling=pb.SamplingParams(temperature=args.temperature),
        token_budget=args.budget,
        backend=args.backend,
        model=args.model,
        request_id=args.request_id,
    )
    if args.raw:
        request.raw_prompt = args.input
    else:
        request.question = args.input
    if args.top_p is not None:
        request.sampling.top_p = args.top_p
    if args.seed is not None:
        request.sampling.seed = args.seed
    if args.deadline is not None:
        request.deadline.FromNanoseconds(int(args.deadline * 1e9))
    return request


async def _solve(args: argparse.Namespace) -> int:
    request = build_request(args)
    async with ClientTarget.from_args(args).channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        try:
            if args.json:
                response = await stub.Solve(request)
                print(json.dumps(json_format.MessageToDict(response, preserving_proto_field_name=True)))
            else:
                result = await stream_solve(stub, request)
                print(describe(result))
        except grpc.aio.AioRpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


async def _health(args: argparse.Namespace) -> int:
    async with ClientTarget.from_args(args).channel() as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as error:
            print(f"not healthy: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def _new_key(tenant: str, name: str) -> int:
    from certa.api.auth import new_api_key
    from certa.core.errors import InvalidArgument
    from certa.store.requests.port import validate_tenant

    try:
        validate_tenant(tenant)
    except InvalidArgument as error:
        print(f"certa auth new-key: --tenant: {error}", file=sys.stderr)
        return 2
    key, digest = new_api_key()
    print(f"API key (shown once; give it to the client, store it nowhere else):\n  {key}", file=sys.stderr)
    print("Entry for the keys file (CERTA_AUTH_API_KEYS_FILE, under \"keys\"):", file=sys.stderr)
    print(json.dumps({"name": name or tenant, "tenant": tenant, "sha256": digest}))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the controller (configured by CERTA_* environment variables)")

    solve = commands.add_parser("solve", help="solve a question with a running controller")
    solve.add_argument("input", help="the question (or, with --raw, the prompt sent as is)")
    add_target_options(solve)
    solve.add_argument(
        "--strategy",
        choices=[s.value for s in StrategyName if s is not StrategyName.BATCH],
        default=StrategyName.DYNASOR_COT,
    )
    solve.add_argument("--effort", choices=list(PRESETS), default="mid", help="Dynasor-CoT preset")
    solve.add_argument("--chunk-tokens", type=int)
    solve.add_argument("--threshold", type=int, help="certainty threshold (probes that must agree)")
    solve.add_argument("--probe-tokens", type=int)
    solve.add_argument("--no-early-exit", action="store_true", help="probe but never stop early")
    solve.add_argument("--settled", action="store_true",
                       help="exit only once the path stopped writing new numbers (Certa's guard)")
    solve.add_argument("--samples", type=int, default=5,
                       help="majority-vote samples; most samples of self-consistency (which stops at Certaindex 0.7)")
    solve.add_argument("--pool", default="", help="self-consistency: the tenant's budget pool later waves come from")
    solve.add_argument("--refine", action="store_true",
                       help="self-consistency: later samples refine earlier ones (integrated sampling)")
    solve.add_argument("--inner", choices=[StrategyName.PLAIN.value, StrategyName.DYNASOR_COT.value],
                       default=StrategyName.DYNASOR_COT, help="the samples of majority-vote or self-consistency")
    solve.add_argument("--temperature", type=float, default=0.0)
    solve.add_argument("--top-p", type=float)
    solve.add_argument("--seed", type=int)
    solve.add_argument("--budget", type=int, default=0, help="path token budget (0: server default)")
    solve.add_argument("--deadline", type=float, help="seconds")
    solve.add_argument("--backend", default="")
    solve.add_argument("--model", default="")
    solve.add_argument("--request-id", default="")
    solve.add_argument("--raw", action="store_true")
    solve.add_argument("--json", action="store_true", help="print the result as one JSON object")

    demo = commands.add_parser("demo", help="solve one GSM8K question with and without probing, and compare")
    add_target_options(demo)
    demo.add_argument("--data", type=Path, default=GSM8K_TEST, help="GSM8K test set as JSON lines")
    demo.add_argument("--index", type=int, default=0, help="which question (0-based line)")
    demo.add_argument("--budget", type=int, default=1024, help="path token budget")

    auth = commands.add_parser("auth", help="manage credentials")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True)
    new_key = auth_commands.add_parser(
        "new-key", help="make an API key: prints the key (once) and the entry to add to the keys file"
    )
    new_key.add_argument("--tenant", required=True)
    new_key.add_argument("--name", default="", help="a label for the key (who or what uses it)")

    health = commands.add_parser("health", help="check a controller's gRPC health (exit 0 when SERVING)")
    add_target_options(health)
    health.add_argument("--service", default="", help="'' for liveness, certa.v1.ReasoningService for readiness")
    health.add_argument("--timeout", type=float, default=5.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from certa.config import load_settings
        from certa.core.errors import InvalidArgument
        from certa.server import serve

        try:
            settings = load_settings()
            setup_logging(settings.log_level, settings.log_format)
            asyncio.run(serve(settings))
        except InvalidArgument as error:
            print(f"certa serve: configuration error: {error}", file=sys.stderr)
            return 2
        return 0
    setup_logging("WARNING", "text")
    if args.command == "auth":
        return _new_key(args.tenant, args.name)
    if args.command == "demo":
        try:
            return asyncio.run(run_demo(ClientTarget.from_args(args), args.data, args.index, args.budget))
        except grpc.aio.AioRpcError as error:
            print(f"\nerror: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return asyncio.run(_solve(args) if args.command == "solve" else _health(args))


if __name__ == "__main__":
    sys.exit(main())
