"""Show a solve on a terminal: live text, probes and decisions as they stream, then a summary."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from certa.v1 import reasoning_pb2 as pb
from certa_client import AsyncClient

STOP_NAMES = {value: name.removeprefix("STOP_REASON_").lower() for name, value in pb.StopReason.items()}
_CYAN, _YELLOW, _DIM, _RESET = "\033[36m", "\033[33m", "\033[2m", "\033[0m"


def message_dict(message: Message) -> dict[str, Any]:
    """A message as the JSON the CLI prints: proto field names, enum names, zero values included."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def to_json(message: Message) -> str:
    return json.dumps(message_dict(message))


def print_error(code: str, message: str, as_json: bool, partial: pb.SolveResult | None = None) -> None:
    """An error on stderr: `error: CODE: message`, or with `as_json` one JSON object {"code", "message"} (and the
    partial result an interrupted solve kept, as "partial_result")."""
    if not as_json:
        print(f"error: {code}: {message}", file=sys.stderr)
        return
    error: dict[str, Any] = {"code": code, "message": message}
    if partial is not None:
        error["partial_result"] = message_dict(partial)
    print(json.dumps(error), file=sys.stderr)


def describe_question(question: pb.QuestionResult, done: int, total: int) -> str:
    """One progress line of `certa batch`."""
    if question.error.code:
        outcome = f"error {question.error.code}: {question.error.message}"
    else:
        outcome = f"{question.result.answer or '(no answer)'} ({question.retire_reason})"
    return f"[{done}/{total}] {question.id}: {outcome}, {len(question.result.samples)} samples"


def describe_response(response: pb.SolveResponse) -> str:
    """A request's state (`certa get`): its id, status, strategy, then its result so far."""
    status = pb.SolveStatus.Name(response.status).removeprefix("SOLVE_STATUS_").lower()
    lines = [f"request: {response.request_id}", f"status: {status}"]
    if response.strategy:
        lines.append(f"strategy: {response.strategy}")
    if response.error:
        lines.append(f"error: {response.error}")
    return "\n".join([*lines, describe(response.result)])


def describe(result: pb.SolveResult) -> str:
    usage = result.usage
    lines = [
        f"answer: {result.answer or '(none)'}",
        f"stop reason: {STOP_NAMES[result.stop_reason]}",
        (
            f"tokens: path {usage.path_tokens}, probes {usage.probe_tokens}, prompt {usage.prompt_tokens} "
            f"(cached {usage.cached_prompt_tokens}); saved vs budget {result.tokens_saved_vs_budget}"
        ),
        f"wall time: {result.wall_time.ToTimedelta().total_seconds():.2f}s",
    ]
    if result.stop_detail:
        lines.append(f"why: {result.stop_detail}")
    if result.probes:
        lines.append("probes (sample @ path tokens: answer, sure or hesitant[, confidence, trigger]):")
        lines += [
            f"  #{p.sample_index} @{p.position_tokens}: {p.answer or '(none)'}, {'sure' if p.confident else 'hesitant'}"
            + (f", confidence {p.confidence:.3f}" if p.HasField("confidence") else "")
            + (f", at {p.trigger}" if p.trigger else "")
            for p in result.probes
        ]
    if result.answer_classes:
        lines.append("votes: " + ", ".join(f"{c.answer} x{c.count}" for c in result.answer_classes))
    return "\n".join(lines)


async def stream_solve(client: AsyncClient, request: pb.SolveRequest, out: TextIO = sys.stdout) -> pb.SolveResult:
    """Run `request` with SolveStream, printing progress to `out`; return the final result."""
    result = pb.SolveResult()
    async for event in client.stream(request):
        kind = event.WhichOneof("event")
        if kind == "started":
            started = event.started
            print(f"{_DIM}[{event.request_id}] {started.strategy} on {started.backend}/{started.model}{_RESET}",
                  file=out)
        elif kind == "text":
            print(event.text.text, end="", flush=True, file=out)
        elif kind == "probe":
            probe = event.probe
            mark = "sure" if probe.confident else "hesitant"
            print(f" {_CYAN}[probe @{probe.position_tokens}: {probe.answer or '-'}, {mark}]{_RESET} ",
                  end="", flush=True, file=out)
        elif kind == "decision":
            decision = event.decision
            print(f"\n{_YELLOW}[sample {decision.sample_index}: {STOP_NAMES[decision.stop_reason]} "
                  f"-> {decision.answer or '(no answer)'}]{_RESET}", file=out)
        elif kind == "resumed":
            # A terminal cannot take back printed text: say where the path restarts instead.
            restarts = ", ".join(f"sample {p.sample_index} from token {p.path_tokens}" for p in event.resumed.paths)
            print(f"\n{_YELLOW}[resumed on another replica (attempt {event.resumed.attempt}); "
                  f"{restarts or 'from the start'}]{_RESET}", file=out)
        elif kind == "result":
            result = event.result
    return result
