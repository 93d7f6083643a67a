"""The runtime driver against the in-process scripted backend: concurrency, accounting, budget, faults."""

from __future__ import annotations

import asyncio

import pytest

from certa.core.commands import Cancel, Start, Wait
from certa.core.errors import BackendError, DeadlineExceeded, SolveInterrupted
from certa.core.report import Interrupted, TextDelta
from certa.core.strategies import DynasorConfig, MajorityVoteSpec, PlainSpec, build_strategy
from certa.core.types import GenerationRequest, SamplingParams, StopReason, StrategyResult
from certa.runtime.driver import Driver
from certa.testing.scripted_backend import ScriptedBackend
from certa.testing.scripted_model import DEFAULT_SCRIPT

pytestmark = pytest.mark.unit

SCRIPT = DEFAULT_SCRIPT.replace("ANSWER", "18")
GREEDY = SamplingParams()


async def test_plain_run_counts_what_the_backend_reported() -> None:
    backend = ScriptedBackend()
    events: list[object] = []
    report = await Driver(backend, "m", token_budget=1000, on_event=events.append).run(
        build_strategy(PlainSpec(), ("Q\n",), 1000, GREEDY)
    )
    result = report.outcome
    assert report.complete and isinstance(result, StrategyResult) and result.answer == "18"
    assert result.stop_reason is StopReason.MODEL_FINISHED
    assert result.text == SCRIPT
    assert report.usage.path_tokens == len(SCRIPT)
    assert report.usage.prompt_tokens == 2
    assert "".join(event.text for event in events if isinstance(event, TextDelta)) == SCRIPT
    assert report.tokens_saved_vs_budget == 1000 - len(SCRIPT)


async def test_dynasor_exit_cancels_the_chunk_in_flight_and_counts_its_tokens() -> None:
    backend = ScriptedBackend()
    config = DynasorConfig(chunk_tokens=32, certainty_threshold=2, probe_tokens=10)
    prompt = ("Q [[confident-after:100]]\n",)
    report = await Driver(backend, "m", token_budget=1000).run(build_strategy(config, prompt, 1000, GREEDY))
    assert report.outcome.stop_reason is StopReason.CERTAIN
    assert len(backend.cancelled) == 1
    path_requests = [r for r in backend.requests if r.purpose.value == "path"]
    probe_requests = [r for r in backend.requests if r.purpose.value == "probe"]
    assert len(probe_requests) == len(report.probes)
    # Kept chunks are full (32 tokens each); the cancelled one contributed what it streamed before the cancel.
    kept = report.probes[-1].position_tokens
    assert kept == 32 * (len(path_requests) - 1)
    assert kept <= report.usage.path_tokens < kept + 32
    assert report.usage.probe_tokens == sum(probe.tokens for probe in report.probes)
    assert report.outcome.samples[0].path_tokens == report.usage.path_tokens


async def test_each_path_start_is_clamped_to_the_sample_budget() -> None:
    def greedy_strategy():  # asks for more than the budget twice
        first = yield Start(GenerationRequest(("Q\n",), 80, GREEDY))
        one = yield Wait(first)
        second = yield Start(GenerationRequest(("Q\n", one.segment), 80, GREEDY))
        two = yield Wait(second)
        return StrategyResult("", StopReason.BUDGET, one.text + two.text, samples=())

    backend = ScriptedBackend()
    report = await Driver(backend, "m", token_budget=100).run(greedy_strategy())
    assert [request.max_tokens for request in backend.requests] == [80, 20]
    assert report.usage.path_tokens == 100
    assert report.outcome.text == SCRIPT[:100]


async def test_deadline_cancels_calls_and_keeps_the_partial_result() -> None:
    backend = ScriptedBackend()
    with pytest.raises(DeadlineExceeded) as raised:
        await Driver(backend, "m", token_budget=1000).run(
            build_strategy(PlainSpec(), ("Q [[slow:0.02]]\n",), 1000, GREEDY), deadline_s=0.3
        )
    partial = raised.value.partial
    assert not partial.complete
    assert 3 <= partial.usage.path_tokens < len(SCRIPT)
    assert partial.outcome == Interrupted(SCRIPT[: partial.usage.path_tokens], cancelled=False)
    assert len(backend.cancelled) == 1


async def test_backend_failure_mid_path_carries_text_tokens_and_probes() -> None:
    backend = ScriptedBackend()
    config = DynasorConfig(chunk_tokens=16, certainty_threshold=8, probe_tokens=5)
    with pytest.raises(SolveInterrupted) as raised:
        await Driver(backend, "m", token_budget=1000).run(
            build_strategy(config, ("Q [[fail-after:40]]\n",), 1000, GREEDY)
        )
    assert isinstance(raised.value.cause, BackendError)
    partial = raised.value.partial
    assert partial.usage.path_tokens >= 40
    assert isinstance(partial.outcome, Interrupted) and partial.outcome.text.startswith(SCRIPT[:40])
    assert len(partial.probes) >= 2


async def test_cancellation_returns_a_partial_report_marked_cancelled() -> None:
    backend = ScriptedBackend()
    cancel = asyncio.Event()
    driver = Driver(backend, "m", token_budget=1000)
    run = asyncio.create_task(
        driver.run(build_strategy(PlainSpec(), ("Q [[slow:0.01]]\n",), 1000, GREEDY), cancel=cancel)
    )
    await asyncio.sleep(0.15)
    cancel.set()
    report = await run
    assert isinstance(report.outcome, Interrupted) and report.outcome.cancelled and not report.complete
    assert report.outcome.stop_reason is StopReason.CANCELLED
    assert 0 < report.usage.path_tokens < len(SCRIPT)
    assert len(backend.cancelled) == 1


async def test_a_call_cancelled_before_it_ran_releases_its_budget() -> None:
    def strategy():  # type: ignore[no-untyped-def]
        first = yield Start(GenerationRequest(("Q\n",), 60, GREEDY))
        dropped = yield Cancel(first)
        second = yield Start(GenerationRequest(("Q\n",), 100, GREEDY))
        outcome = yield Wait(second)
        return StrategyResult("", StopReason.BUDGET, dropped.text + outcome.text, samples=())

    backend = ScriptedBackend()
    report = await Driver(backend, "m", token_budget=100).run(strategy())
    assert [request.max_tokens for request in backend.requests] == [100]
    assert report.usage.path_tokens == 100


class ProbeBug(ScriptedBackend):
    """Fails every probe with an unexpected (non-Certa) exception."""

    async def stream(self, request: GenerationRequest, model: str):  # type: ignore[no-untyped-def, override]
        if request.purpose.value == "probe":
            raise ValueError("bug in an adapter")
        async for delta in super().stream(request, model):
            yield delta


async def test_an_unexpected_error_still_cancels_the_calls_in_flight() -> None:
    backend = ProbeBug()
    config = DynasorConfig(chunk_tokens=16, certainty_threshold=2, probe_tokens=5)
    with pytest.raises(ValueError, match="bug in an adapter"):
        await Driver(backend, "m", token_budget=1000).run(build_strategy(config, ("Q [[slow:0.01]]\n",), 1000, GREEDY))
    assert len(backend.cancelled) == 1  # the chunk started beside the failing probe


async def test_cancelling_the_task_running_a_vote_cancels_every_sample() -> None:
    backend = ScriptedBackend()
    vote = MajorityVoteSpec(n=3, inner=PlainSpec())
    running = asyncio.create_task(
        Driver(backend, "m", token_budget=1000).run(
            build_strategy(vote, ("Q [[slow:0.01]]\n",), 1000, SamplingParams(temperature=0.5, seed=1))
        )
    )
    await asyncio.sleep(0.1)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert len(backend.cancelled) == 3
