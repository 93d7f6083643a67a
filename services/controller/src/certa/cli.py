"""The `certa` command: `certa serve` runs the controller; solve, get, cancel, batch and health call a running one
(through the certa-client package); `certa demo` shows what probing saves on one question."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import certa
import certa_client
from certa import exit_cli
from certa.batch_file import read_batch_questions
from certa.client import add_target_options, target_from_args
from certa.console import (
    describe,
    describe_question,
    describe_response,
    message_dict,
    print_error,
    stream_solve,
    to_json,
)
from certa.core.strategies import StrategyName
from certa.core.strategies.calibrated import AUTO
from certa.core.strategies.dynasor import PRESETS
from certa.datasets import DATA_ENV, GSM8K_FILE, GSM8K_TEST
from certa.demo import openai_examples, run_demo
from certa.observability.logs import setup_logging
from certa.v1 import reasoning_pb2 as pb
from certa_client import (
    AsyncClient,
    batch_request,
    code_name,
    dynasor_cot,
    majority_vote,
    partial_result,
    plain,
    sampling,
    self_consistency,
    solve_request,
)
from certa_client.build import ALLOCATIONS
from certa_client.errors import message as error_message

BATCH_SAMPLES_PER_QUESTION = 8


def _effort(args: argparse.Namespace) -> str:
    """The preset: as given; else auto, or mid when a reference preset's knob is set (they do not apply to auto)."""
    if args.effort:
        return str(args.effort)
    knobs = (args.chunk_tokens, args.threshold, args.probe_tokens)
    return "mid" if any(knob is not None for knob in knobs) or args.settled else AUTO


def _dynasor(args: argparse.Namespace) -> pb.Strategy:
    return dynasor_cot(
        _effort(args),
        chunk_tokens=args.chunk_tokens,
        certainty_threshold=args.threshold,
        probe_tokens=args.probe_tokens,
        disable_early_exit=args.no_early_exit,
        require_settled=args.settled,
        risk=args.risk,
        profile=args.profile,
    )


def _strategy(args: argparse.Namespace) -> pb.Strategy:
    if args.strategy == StrategyName.PLAIN:
        return plain()
    if args.strategy == StrategyName.DYNASOR_COT:
        return _dynasor(args)
    inner = plain() if args.inner == StrategyName.PLAIN else _dynasor(args)
    if args.strategy == StrategyName.SELF_CONSISTENCY:
        return self_consistency(inner, max_samples=args.samples, pool=args.pool, refine=args.refine)
    return majority_vote(args.samples, inner)


def build_request(args: argparse.Namespace) -> pb.SolveRequest:
    return solve_request(
        args.input,
        _strategy(args),
        raw_prompt=args.raw,
        sampling_params=sampling(args.temperature, top_p=args.top_p, seed=args.seed),
        token_budget=args.budget,
        deadline_s=args.deadline,
        backend=args.backend,
        model=args.model,
        request_id=args.request_id,
    )


async def _solve(args: argparse.Namespace) -> int:
    request = build_request(args)
    async with AsyncClient(target_from_args(args)) as client:
        if args.json:
            print(to_json(await client.solve(request)))
        else:
            print(describe(await stream_solve(client, request)))
    return 0


async def _get(args: argparse.Namespace) -> int:
    async with AsyncClient(target_from_args(args)) as client:
        response = await client.get(args.request_id)
    print(to_json(response) if args.json else describe_response(response))
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    async with AsyncClient(target_from_args(args)) as client:
        response = await client.cancel(args.request_id)
    if args.json:
        print(to_json(response))
    elif response.cancelled:
        print(f"{response.request_id}: cancelled (its partial result is kept: 'certa get {response.request_id}')")
    else:
        print(f"{response.request_id}: had already finished; nothing to cancel")
    return 0


def _batch_request(args: argparse.Namespace) -> pb.SolveBatchRequest:
    if args.file == "-":
        questions = read_batch_questions(sys.stdin, "<stdin>")
    else:
        with open(args.file, encoding="utf-8") as lines:
            questions = read_batch_questions(lines, args.file)
    inner = plain() if args.inner == StrategyName.PLAIN else _dynasor(args)
    return batch_request(
        questions,
        inner,
        sampling_params=sampling(args.temperature, seed=args.seed),
        samples=args.samples if args.samples is not None else BATCH_SAMPLES_PER_QUESTION * len(questions),
        tokens=args.tokens,
        per_question_cap=args.cap,
        warmup=args.warmup,
        allocation=args.allocation,
        token_budget=args.budget,
        deadline_s=args.deadline,
        backend=args.backend,
        model=args.model,
        request_id=args.request_id,
    )


async def _batch(args: argparse.Namespace) -> int:
    request = _batch_request(args)
    progress = sys.stderr if not (args.quiet or args.json) else None
    total, done = len(request.questions), 0
    async with AsyncClient(target_from_args(args)) as client:
        async for event in client.batch(request):
            kind = event.WhichOneof("event")
            if kind == "started" and progress:
                print(f"[{event.request_id}] batch of {total} questions on {event.started.backend}/"
                      f"{event.started.model}", file=progress)
            elif kind == "question":
                done += 1
                print(json.dumps(message_dict(event.question)), flush=True)
                if progress:
                    print(describe_question(event.question, done, total), file=progress)
            elif kind == "result" and progress:
                summary = event.result.batch
                print(f"done: {summary.questions} questions ({summary.failed_questions} failed), "
                      f"{summary.samples_spent} samples, {summary.tokens_spent} tokens", file=progress)
    return 0


async def _health(args: argparse.Namespace) -> int:
    async with target_from_args(args).aio_channel() as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
        )
    print(to_json(response) if args.json else health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
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


class UsageError(Exception):
    """A command line argparse rejected; `main` reports it as text with the usage, or as JSON."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(f"{parser.prog}: {message}")
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"{what}; every error is one JSON object on stderr: {{\"code\", \"message\"}}")


def _sampling_options(parser: argparse.ArgumentParser, temperature: float) -> None:
    parser.add_argument("--temperature", type=float, default=temperature,
                        help=f"sampling temperature of the paths, >= 0; 0 is greedy (default {temperature:g})")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible sampling (default: random)")


def _dynasor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--effort", choices=[AUTO, *PRESETS],
                        help="Dynasor-CoT preset: auto (exits calibrated to the model's exit profile; the default) or "
                             "a reference preset (how many agreeing probes end a path; mid when a knob below is set)")
    parser.add_argument("--risk", type=float, help="preset auto: premature-exit rate accepted, in (0, 0.5]")
    parser.add_argument("--profile", default="", help="preset auto: exit profile by name (default: the server's)")
    parser.add_argument("--chunk-tokens", type=int, help="Dynasor-CoT: path tokens between two probes (>= 1)")
    parser.add_argument("--threshold", type=int, help="Dynasor-CoT: certainty threshold (probes that must agree)")
    parser.add_argument("--probe-tokens", type=int, help="Dynasor-CoT: tokens generated per probe (>= 1)")
    parser.add_argument("--no-early-exit", action="store_true", help="Dynasor-CoT: probe but never stop early")
    parser.add_argument("--settled", action="store_true",
                        help="Dynasor-CoT: exit only once the path stopped writing new numbers (Certa's guard)")


def _placement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=float, help="seconds the request may take (default: the server's)")
    parser.add_argument("--backend", default="", help="backend, as configured on the server (default: its default)")
    parser.add_argument("--model", default="", help="model (default: the backend's default)")
    parser.add_argument("--request-id", default="",
                        help="idempotency key: a retry with the same id joins the same request (default: assigned)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="certa", description=__doc__)
    parser.add_argument("--version", action="version",
                        version=f"certa {certa.__version__} (certa-client {certa_client.__version__})",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the controller (configured by CERTA_* environment variables)")

    solve = commands.add_parser("solve", help="solve a question with a running controller")
    solve.add_argument("input", help="the question (or, with --raw, the prompt sent as is)")
    add_target_options(solve)
    solve.add_argument(
        "--strategy",
        choices=[s.value for s in StrategyName if s is not StrategyName.BATCH],
        default=StrategyName.DYNASOR_COT,
        help="how to spend compute: one plain path, Dynasor-CoT, a majority vote or self-consistency "
             "(default dynasor-cot)",
    )
    _dynasor_options(solve)
    solve.add_argument("--samples", type=int, default=5,
                       help="majority-vote samples; most samples of self-consistency (which stops at Certaindex 0.7)")
    solve.add_argument("--pool", default="", help="self-consistency: the tenant's budget pool later waves come from")
    solve.add_argument("--refine", action="store_true",
                       help="self-consistency: later samples refine earlier ones (integrated sampling)")
    solve.add_argument("--inner", choices=[StrategyName.PLAIN.value, StrategyName.DYNASOR_COT.value],
                       default=StrategyName.DYNASOR_COT, help="the samples of majority-vote or self-consistency")
    _sampling_options(solve, 0.0)
    solve.add_argument("--top-p", type=float, help="nucleus sampling, in (0, 1] (default: off)")
    solve.add_argument("--budget", type=int, default=0, help="path token budget (0: server default)")
    _placement_options(solve)
    solve.add_argument("--raw", action="store_true",
                       help="send the input to the model as is, without the chat template and reasoning instruction")
    _json_option(solve, "print the response as one JSON object instead of streaming the reasoning")

    get = commands.add_parser("get", help="show a request started earlier: running (its partial result) or final")
    get.add_argument("request_id", metavar="ID", help="the request's id (printed by solve, or chosen by --request-id)")
    add_target_options(get)
    _json_option(get, "print the response as one JSON object")

    cancel = commands.add_parser("cancel", help="stop a running request; its partial result is kept")
    cancel.add_argument("request_id", metavar="ID", help="the request's id")
    add_target_options(cancel)
    _json_option(cancel, "print the response as one JSON object")

    batch = commands.add_parser(
        "batch",
        help="spread a sample budget over a batch of questions (DynScaling): results as JSON lines on stdout",
        description="Questions in: JSON lines {\"id\", \"question\"} (or \"problem\"; the id defaults to the line "
                    "number). Out: one JSON line per question as soon as it is final (id, result, retire_reason, "
                    "error), progress on stderr.",
    )
    batch.add_argument("file", metavar="FILE", help="the questions as JSON lines; '-' reads stdin")
    add_target_options(batch)
    batch.add_argument("--inner", choices=[StrategyName.PLAIN.value, StrategyName.DYNASOR_COT.value],
                       default=StrategyName.PLAIN, help="what each sample is (default plain)")
    _dynasor_options(batch)
    _sampling_options(batch, 0.7)
    batch.add_argument("--samples", type=int,
                       help=f"samples the whole batch may start (default: {BATCH_SAMPLES_PER_QUESTION} per question)")
    batch.add_argument("--tokens", type=int, default=0,
                       help="tokens the whole batch may generate, paths and probes (default 0: no token limit)")
    batch.add_argument("--cap", type=int, help="most samples one question may get (default: the server's, 40)")
    batch.add_argument("--warmup", type=int, help="samples every question gets first (default 3)")
    batch.add_argument("--allocation", choices=list(ALLOCATIONS), default="bandit",
                       help="bandit (by uncertainty) or uniform (round robin, the baseline); default bandit")
    batch.add_argument("--budget", type=int, default=0, help="path token budget per sample (0: server default)")
    _placement_options(batch)
    batch.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _json_option(batch, "no progress on stderr (results are JSON lines either way)")

    demo = commands.add_parser("demo", help="solve one GSM8K question with and without probing, and compare")
    add_target_options(demo)
    demo.add_argument("--data", type=Path, default=GSM8K_TEST,
                      help=f"the GSM8K test set as JSON lines (default: {GSM8K_FILE} in ${DATA_ENV}, else in the "
                           "repository's data/)")
    demo.add_argument("--index", type=int, default=0, help="which question (0-based line)")
    demo.add_argument("--budget", type=int, default=1024, help="path token budget")
    demo.add_argument(
        "--http-url", default="", help="the server's OpenAI-compatible endpoint; the demo ends with examples for it"
    )

    auth = commands.add_parser("auth", help="manage credentials")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True, metavar="COMMAND")
    new_key = auth_commands.add_parser(
        "new-key", help="make an API key: prints the key (once) and the entry to add to the keys file"
    )
    new_key.add_argument("--tenant", required=True, help="the tenant the key acts for")
    new_key.add_argument("--name", default="", help="a label for the key (who or what uses it)")

    exit_cli.add_commands(commands)

    health = commands.add_parser("health", help="check a controller's gRPC health (exit 0 when SERVING)")
    add_target_options(health)
    health.add_argument("--service", default="", help="'' for liveness, certa.v1.ReasoningService for readiness")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    _json_option(health, "print the answer as one JSON object")
    return parser


def _serve() -> int:
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
    except Exception:
        # Through the redacting log handler: a start-up fault's traceback may quote a Redis or backend URL.
        logging.getLogger("certa").exception("certa serve: could not start")
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve()
    setup_logging("WARNING", "text")
    if args.command == "auth":
        return _new_key(args.tenant, args.name)
    if args.command == "demo":
        status = asyncio.run(run_demo(target_from_args(args), args.data, args.index, args.budget))
        if args.http_url:
            print("\n" + openai_examples(args.http_url))
        return status
    if args.command in exit_cli.COMMANDS:
        return exit_cli.run(args)
    calls = {"solve": _solve, "get": _get, "cancel": _cancel, "batch": _batch, "health": _health}
    return asyncio.run(calls[args.command](args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit 0 on success, 1 when the controller answered with an error, 2 on bad input here."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments  # decided before parsing, so that usage errors are JSON too
    try:
        return _run(_parser().parse_args(arguments))
    except UsageError as error:
        if not as_json:
            error.parser.print_usage(sys.stderr)
        print_error("INVALID_ARGUMENT", str(error), as_json)
        return 2
    except grpc.RpcError as error:
        print_error(code_name(error), error_message(error), as_json, partial_result(error))
        return 1
    except FileNotFoundError as error:
        print_error("NOT_FOUND", str(error), as_json)
        return 2
    except (ValueError, OSError) as error:  # bad files, options that contradict each other
        print_error("INVALID_ARGUMENT", str(error), as_json)
        return 2
    except KeyboardInterrupt:
        print_error("CANCELLED", "interrupted", as_json)
        return 130


if __name__ == "__main__":
    sys.exit(main())
