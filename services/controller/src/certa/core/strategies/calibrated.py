"""Dynasor-CoT with calibrated exits (preset `auto`): probe only where it can pay, exit as the profile allows.

The path is generated in chunks. At a chunk boundary the strategy knows, without probing, where the path is
(`certa.core.exit.cues`): whether it has written a candidate answer, an answer cue, which cue the chunk wrote. The
active policy (`certa.core.exit.policy`) says whether a probe there could take part in an exit; only then is a
greedy probe sent, asking the backend for its tokens' log-probabilities. The probe's confidence is the geometric
mean probability of its answer tokens. When the policy's exit rule holds the path stops with the probed answer.

Unlike the reference presets, the next chunk starts only after the probe's decision: no chunk is generated and
then thrown away, so an exit only ever saves tokens, and an offline replay of a recording is exact.

A backend that returns no log-probs degrades the decision to the profile's agreement-only policy, and the result
says so. In recording mode (`record=True`) the path is never stopped and every chunk boundary is probed.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from certa.core.answers import extract_boxed, extract_probe_answer
from certa.core.certainty import hesitates
from certa.core.commands import Command, Decision, Emit, generate
from certa.core.exit.cues import answer_cue_written, answer_in_path, candidate_written, chunk_trigger
from certa.core.exit.policy import ExitPolicy, ProbePoint, should_exit, wants_probe
from certa.core.exit.profile import ExitProfile
from certa.core.exit.trace import ProbeTrace, answer_log_probs
from certa.core.strategies.early_exit import early_exit_text
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    Outcome,
    PathResult,
    ProbeRecord,
    PromptPiece,
    Purpose,
    SamplingParams,
    Segment,
    StopReason,
)

AUTO = "auto"
"""The preset name of calibrated exits (PRESET_AUTO in the API)."""


@dataclass(frozen=True)
class CalibratedExit:
    """A request's exit profile and risk level; `record` runs the path to its end, probing every chunk boundary."""

    profile: ExitProfile
    risk: float
    record: bool = False


def _probe_trace(point: ProbePoint, outcome: Outcome, path_text: str) -> ProbeTrace:
    answer = extract_probe_answer(outcome.text)
    end = outcome.text.find(answer) + len(answer) if answer else 0
    return ProbeTrace(
        position_tokens=point.position_tokens,
        trigger=point.trigger,
        answer=answer,
        answer_log_probs=answer_log_probs(outcome.log_probs, end),
        hesitant=hesitates(outcome.text),
        tokens=outcome.tokens,
        candidate=point.candidate,
        answer_cue=point.answer_cue,
        answer_in_path=answer_in_path(answer, path_text),
        final_written=point.final_written,
    )


def calibrated_cot(
    prompt: tuple[PromptPiece, ...],
    token_budget: int,
    sampling: SamplingParams,
    chunk_tokens: int,
    probe_tokens: int,
    probe_suffix: str,
    exit_: CalibratedExit,
    sample_index: int = 0,
) -> Generator[Command, Any, PathResult]:
    profile = exit_.profile
    level = profile.level(exit_.risk)
    confidence_policy = level.confidence.policy if level else None
    agreement_policy = level.agreement.policy if level else None
    degraded = False  # a probe came back without log-probs: agreement only from then on
    path: list[Segment] = []
    kept_tokens = 0
    spent_on_probes = 0
    records: list[ProbeRecord] = []
    traces: list[ProbeTrace] = []
    sent: list[ProbeTrace] = []

    def active() -> ExitPolicy | None:
        return agreement_policy if degraded else confidence_policy

    def detail() -> str:
        where = f"exit profile {profile.name} (model {profile.model}, template {profile.template})"
        if exit_.record:
            return f"{where}: recording, exits disabled"
        if level is None:
            return f"{where}: no level calibrated at risk <= {exit_.risk:g}: no exit, no probes"
        mode = "agreement only (the backend returned no log-probs)" if degraded else "confidence from log-probs"
        policy = active()
        rule = policy.describe() if policy is not None else "never exit (no probe sent)"
        return f"{where}, risk {exit_.risk:g} -> calibrated alpha {level.alpha:g}: {mode}: {rule}"

    def result(answer: str, stop: StopReason, text: str) -> PathResult:
        return PathResult(
            answer=answer,
            stop_reason=stop,
            text=text,
            path_tokens=kept_tokens,
            probe_tokens=spent_on_probes,
            probes=tuple(records),
            sample_index=sample_index,
            detail=detail(),
            traces=tuple(traces),
        )

    path_text = ""
    while True:
        # once no exit is possible (no policy at this level, or none left after degrading to agreement only), the
        # rest of the path is one call, as plain chain of thought generates it: chunks would only add calls
        step = chunk_tokens if exit_.record or active() is not None else token_budget
        size = min(step, token_budget - kept_tokens)
        outcome = yield from generate(
            GenerationRequest(prompt + tuple(path), size, sampling, Purpose.PATH, sample_index)
        )
        chunk_start = len(path_text)
        path.append(outcome.segment)
        kept_tokens += outcome.tokens
        path_text += outcome.text
        if outcome.finish is FinishReason.STOP or kept_tokens >= token_budget or outcome.tokens == 0:
            stop = StopReason.MODEL_FINISHED if outcome.finish is FinishReason.STOP else StopReason.BUDGET
            answer = extract_boxed(path_text) or next((t.answer for t in reversed(traces) if t.answer), "")
            yield Emit(Decision(sample_index, stop, answer, detail()))
            return result(answer, stop, path_text)
        point = ProbePoint(
            kept_tokens, chunk_trigger(path_text, chunk_start), candidate_written(path_text),
            answer_cue_written(path_text), bool(extract_boxed(path_text)),
        )
        if not exit_.record and not wants_probe(active(), point):
            continue
        probe = yield from generate(
            GenerationRequest(
                prompt + tuple(path) + (probe_suffix,),
                probe_tokens,
                SamplingParams(),  # greedy: the trial answer and its log-probs are the model's most likely ones
                Purpose.PROBE,
                sample_index,
                log_probs=True,
            )
        )
        spent_on_probes += probe.tokens
        trace = _probe_trace(point, probe, path_text)
        traces.append(trace)
        record = ProbeRecord(
            sample_index=sample_index,
            position_tokens=kept_tokens,
            answer=trace.answer,
            confident=not trace.hesitant,
            tokens=probe.tokens,
            confidence=trace.confidence,
            trigger=trace.trigger,
        )
        records.append(record)
        yield Emit(record)
        if exit_.record:
            continue
        if probe.log_probs is None and not degraded and confidence_policy is not None:
            degraded = True
        sent.append(trace)
        if should_exit(active(), sent):
            yield Emit(Decision(sample_index, StopReason.CERTAIN, trace.answer, detail()))
            return result(trace.answer, StopReason.CERTAIN, early_exit_text(prompt, path_text, trace.answer))
