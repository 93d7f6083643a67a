"""Recording probe traces with a live backend, and reading recordings back (`certa record`, `certa calibrate`).

A recording runs each question's path to its end with exits disabled (Dynasor-CoT preset `auto` in recording mode:
greedy path, a greedy probe with log-probs after every chunk) and writes one JSON line per question
(`certa.core.exit.trace`). Its model id is what the operator says the backend serves (Triton's model names do not
identify the weights); its template id is that of the prompt the server would build (`prompt_template_id`).
Halves for calibration and evaluation are the recording's first and second half, in file order.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from pathlib import Path

from certa.backends.factory import build_backend
from certa.backends.forwarding import ForwardingBackend
from certa.backends.port import Backend, Delta
from certa.config import BackendSpec, Settings
from certa.core.answers import extract_boxed
from certa.core.exit.profile import CONSERVATIVE_DEFAULT
from certa.core.exit.trace import PathTrace, trace_from_dict, trace_to_dict
from certa.core.strategies import DynasorConfig, build_strategy
from certa.core.strategies.calibrated import CalibratedExit
from certa.core.types import GenerationRequest, Purpose, SamplingParams, StrategyResult
from certa.datasets import Question
from certa.prompts import prompt_template_id, question_prompt, resolve_template
from certa.runtime.driver import Driver


def load_recording(path: Path) -> list[PathTrace]:
    """The traces of a recording; `ValueError` naming the line when one is malformed."""
    traces = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            traces.append(trace_from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a probe trace: {error!r}") from None
    return traces


def halves(traces: Sequence[PathTrace]) -> tuple[list[PathTrace], list[PathTrace]]:
    """(calibration, evaluation): the first and the second half of a recording, in file order."""
    middle = (len(traces) + 1) // 2
    return list(traces[:middle]), list(traces[middle:])


class TimedBackend(ForwardingBackend):
    """A backend whose calls are timed, in order: (purpose, wall seconds from the call to its last delta).

    In recording mode the path's chunks and the probes run one after the other (the next chunk starts after the
    probe), so each probe's share of the path's time is the sum of the path calls before it.
    """

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self.calls: list[tuple[Purpose, float]] = []

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        started = time.perf_counter()
        try:
            async with aclosing(super().stream(request, model)) as deltas:  # type: ignore[type-var]
                async for delta in deltas:
                    yield delta
        finally:
            self.calls.append((request.purpose, time.perf_counter() - started))


def with_timings(trace: PathTrace, calls: Sequence[tuple[Purpose, float]]) -> PathTrace:
    """The trace with each probe's path time and call time, from the calls of its run in order."""
    probe_calls = [(path_s, seconds) for path_s, (purpose, seconds) in _path_time_before(calls)
                   if purpose is Purpose.PROBE]
    if len(probe_calls) != len(trace.probes):
        raise ValueError(f"question {trace.question_id}: {len(probe_calls)} probe calls for {len(trace.probes)} probes")
    probes = tuple(dataclasses.replace(probe, path_s=path_s, probe_s=seconds)
                   for probe, (path_s, seconds) in zip(trace.probes, probe_calls, strict=True))
    path_s = sum(seconds for purpose, seconds in calls if purpose is Purpose.PATH)
    return dataclasses.replace(trace, probes=probes, path_s=path_s)


def _path_time_before(calls: Sequence[tuple[Purpose, float]]) -> list[tuple[float, tuple[Purpose, float]]]:
    elapsed, timed = 0.0, []
    for purpose, seconds in calls:
        timed.append((elapsed, (purpose, seconds)))
        if purpose is Purpose.PATH:
            elapsed += seconds
    return timed


async def record(
    url: str,
    model_id: str,
    questions: Sequence[Question],
    out: Path,
    *,
    budget: int,
    chunk_tokens: int,
    probe_tokens: int,
    model: str = "",
) -> int:
    """Record `questions` (skipping those already in `out`) and return how many were recorded now."""
    settings = Settings()
    done = {trace.question_id for trace in load_recording(out)} if out.exists() else set()
    backend = TimedBackend(
        build_backend(BackendSpec("record", url), connect_timeout_s=settings.backend_connect_timeout_s)
    )
    recorded = 0
    try:
        await backend.check_ready()
        template = resolve_template(settings.prompt_template, await backend.chat_template(model))
        template_id = prompt_template_id(settings.instruction, template)
        profile = CONSERVATIVE_DEFAULT
        config = DynasorConfig(
            chunk_tokens=chunk_tokens,
            probe_tokens=probe_tokens,
            early_exit=False,
            calibrated=CalibratedExit(profile, profile.default_alpha, record=True),
        )
        with out.open("a") as sink:
            for question in questions:
                if str(question.index) in done:
                    continue
                prompt = question_prompt(question.question, settings.instruction, template)
                strategy = build_strategy(config, (prompt,), budget, SamplingParams())
                backend.calls.clear()
                result = (await Driver(backend, model, token_budget=budget).run(strategy)).outcome
                assert isinstance(result, StrategyResult)  # only a cancellation returns less, and nothing cancels it
                path = result.samples[0]
                trace = PathTrace(
                    question_id=str(question.index),
                    gold=question.gold,
                    final_answer=extract_boxed(result.text),
                    path_tokens=path.path_tokens,
                    finish=str(path.stop_reason),
                    probes=path.traces,
                    model=model_id,
                    template=template_id,
                )
                trace = with_timings(trace, backend.calls)
                sink.write(json.dumps(trace_to_dict(trace)) + "\n")
                sink.flush()
                recorded += 1
                print(f"question {question.index}: {trace.path_tokens} tokens, {len(trace.probes)} probes, "
                      f"answer {trace.final_answer!r} (gold {question.gold})", file=sys.stderr)
    finally:
        await backend.close()
    return recorded
