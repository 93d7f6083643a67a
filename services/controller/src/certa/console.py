"""Show a solve on a terminal: live text, probes and decisions as they stream, then a summary."""

from __future__ import annotations

import sys
from typing import TextIO

from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc

STOP_NAMES = {value: name.removeprefix("STOP_REASON_").lower() for name, value in pb.StopReason.items()}
_CYAN, _YELLOW, _DIM, _RESET = "\033[36m", "\033[33m", "\033[2m", "\033[0m"


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


async def stream_solve(
    stub: pb_grpc.ReasoningServiceStub, request: pb.SolveRequest, out: TextIO = sys.stdout
) -> pb.SolveResult:
    """Run `request` with SolveStream, printing progress to `out`; return the final result."""
    result = pb.SolveResult()
    async for event in stub.SolveStream(request):
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
