"""Probe confidence through the Triton adapter: `return_log_probs` in, `output_log_probs` out, in every mode.

Against the scripted TensorRT-LLM-shaped models served by a real Triton (digits -0.01, other tokens -0.5, see
`tests/fixtures/scripted_triton`), and against the local stack's real model server (SmolLM2-135M through llama.cpp).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from certa.backends.triton.backend import TritonBackend
from certa.config import BackendSpec
from certa.core.commands import Command, generate
from certa.core.exit.profile import CONSERVATIVE_DEFAULT
from certa.core.exit.replay import replay
from certa.core.exit.trace import answer_log_probs, geometric_mean_probability
from certa.core.strategies import DynasorConfig, build_strategy
from certa.core.strategies.calibrated import CalibratedExit
from certa.core.types import (
    GenerationRequest,
    Outcome,
    Purpose,
    SamplingParams,
    StopReason,
    StrategyResult,
)
from certa.datasets import Question
from certa.exit_recording import load_recording, record
from certa.runtime.driver import Driver
from certa_triton_local.launcher import TritonServer

pytestmark = pytest.mark.integration

QUESTION = "[[confident-after:0]] Question: how much does Janet make every day?\nAnswer: Janet's ducks lay 16 eggs"
PROBE_SUFFIX = "... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{"
MODES = {"ensemble": "?mode=text", "tokens": "?mode=tokens"}


def one_call(request: GenerationRequest, outcomes: list[Outcome]) -> Generator[Command, Any, StrategyResult]:
    outcomes.append((yield from generate(request)))
    return StrategyResult("", StopReason.MODEL_FINISHED, "", ())


@pytest_asyncio.fixture
async def scripted(scripted_triton: TritonServer, request: pytest.FixtureRequest) -> AsyncIterator[TritonBackend]:
    backend = TritonBackend(BackendSpec("scripted", f"triton://{scripted_triton.grpc_url}{request.param}"))
    yield backend
    await backend.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("scripted", list(MODES.values()), ids=list(MODES), indirect=True)
async def test_a_probe_reads_its_answer_confidence_from_output_log_probs(scripted: TritonBackend) -> None:
    # the scripted model answers a probe with the latest number of the path: "16}" here
    probe = GenerationRequest((QUESTION + PROBE_SUFFIX,), 8, SamplingParams(), Purpose.PROBE, log_probs=True)
    outcomes: list[Outcome] = []
    await Driver(scripted, "", token_budget=64).run(one_call(probe, outcomes))

    outcome = outcomes[0]
    assert outcome.text.startswith("16}") and outcome.log_probs is not None
    assert len(outcome.log_probs.log_probs) == outcome.tokens
    assert outcome.log_probs.log_probs[:3] == pytest.approx((-0.01, -0.01, -0.5))
    assert outcome.log_probs.text_ends[:3] == (1, 2, 3)
    confidence = geometric_mean_probability(answer_log_probs(outcome.log_probs, 2))
    assert confidence == pytest.approx(math.exp(-0.01))


@pytest.mark.asyncio
@pytest.mark.parametrize("scripted", [MODES["tokens"]], ids=["tokens"], indirect=True)
async def test_paths_ask_for_no_log_probs(scripted: TritonBackend) -> None:
    outcomes: list[Outcome] = []
    path = GenerationRequest((QUESTION,), 8, SamplingParams())
    await Driver(scripted, "", token_budget=64).run(one_call(path, outcomes))
    assert outcomes[0].tokens == 8 and outcomes[0].log_probs is None


@pytest.mark.asyncio
@pytest.mark.parametrize("scripted", [MODES["tokens"]], ids=["tokens"], indirect=True)
async def test_preset_auto_through_triton_records_confident_probes(scripted: TritonBackend) -> None:
    """Recording mode end to end: every chunk probed, confidences from the server, the path run to its end."""
    exit_ = CalibratedExit(CONSERVATIVE_DEFAULT, 0.1, record=True)
    strategy = build_strategy(DynasorConfig.auto(exit_), (QUESTION,), 400, SamplingParams())
    result = (await Driver(scripted, "", token_budget=400).run(strategy)).outcome

    assert isinstance(result, StrategyResult)
    traces = result.samples[0].traces
    assert result.stop_reason is StopReason.MODEL_FINISHED and result.answer == "18"
    assert traces and all(trace.answer_log_probs is not None for trace in traces if trace.answer)
    assert all(trace.confidence == pytest.approx(math.exp(-0.01)) for trace in traces if trace.answer.isdigit())
    assert "recording, exits disabled" in result.stop_detail


@pytest.mark.asyncio
async def test_the_local_model_server_returns_log_probs_of_its_tokens(triton: TritonServer) -> None:
    backend = TritonBackend(BackendSpec("local", f"triton://{triton.grpc_url}?mode=tokens"))
    try:
        probe = GenerationRequest(("What is 2 + 3? The answer is \\boxed{",), 4, SamplingParams(), Purpose.PROBE,
                                  log_probs=True)
        outcomes: list[Outcome] = []
        await Driver(backend, "", token_budget=64).run(one_call(probe, outcomes))
    finally:
        await backend.close()
    outcome = outcomes[0]
    assert outcome.log_probs is not None and len(outcome.log_probs.log_probs) == outcome.tokens > 0
    assert all(value <= 0.0 for value in outcome.log_probs.log_probs)
    assert outcome.log_probs.text_ends[-1] == len(outcome.text)


@pytest.mark.asyncio
async def test_record_writes_one_trace_per_question_and_skips_recorded_ones(
    scripted_triton: TritonServer, tmp_path: Path
) -> None:
    out = tmp_path / "recording.jsonl"
    url = f"triton://{scripted_triton.grpc_url}?mode=tokens"
    questions = [Question(0, "How much does Janet make? [[answer:18]]", "18"),
                 Question(1, "And tomorrow? [[answer:20]]", "18")]
    assert await record(url, "scripted", questions, out, budget=400, chunk_tokens=32, probe_tokens=8) == 2
    assert await record(url, "scripted", questions, out, budget=400, chunk_tokens=32, probe_tokens=8) == 0
    traces = load_recording(out)
    assert [trace.question_id for trace in traces] == ["0", "1"]
    assert [trace.final_answer for trace in traces] == ["18", "20"]
    assert all(trace.model == "scripted" and trace.template.startswith("prompt-") for trace in traces)
    first = traces[0]
    assert [probe.position_tokens for probe in first.probes] == list(range(32, first.path_tokens, 32))
    assert all(probe.answer_log_probs is not None for probe in first.probes if probe.answer)
    assert replay(None, traces).correct == 1  # the second question's gold is not its answer
    # timed calls: each probe after the path time that reached it, the path's time without the probes
    path_times = [probe.path_s for probe in first.probes]
    assert all(t is not None for t in path_times) and path_times == sorted(path_times)  # type: ignore[type-var]
    assert first.path_s is not None and first.path_s >= (path_times[-1] or 0.0)
    assert all(probe.probe_s is not None and probe.probe_s > 0 for probe in first.probes)
    assert replay(None, traces).wall_s == pytest.approx(sum(trace.path_s or 0.0 for trace in traces))
