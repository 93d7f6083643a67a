"""Dynasor-CoT: certainty-probed chain of thought (ALGORITHMS.md section 2).

The reference presets are below; preset `auto` (calibrated exits) is `certa.core.strategies.calibrated`.
The path is generated in chunks. After each chunk the strategy starts, at the same time, a probe of the prefix so
far (prefix + a fixed suffix that makes the model blurt out its answer) and the next chunk of the path. When the
exit rule holds, the in-flight chunk is cancelled (its tokens still count as spent) and the path ends with the
probed answer. Answers therefore lag one chunk behind the path, as in the reference, and probing adds no latency.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from certa.core.answers import extract_boxed, extract_probe_answer
from certa.core.certainty import CertaintyRule, hesitates, settled
from certa.core.commands import Cancel, Command, Decision, Emit, Start, Wait
from certa.core.strategies.calibrated import CalibratedExit, calibrated_cot
from certa.core.strategies.early_exit import early_exit_text, has_open_think
from certa.core.types import (
    FinishReason,
    GenerationRequest,
    PathResult,
    ProbeRecord,
    PromptPiece,
    Purpose,
    SamplingParams,
    Segment,
    StopReason,
    prompt_text,
)

PROBE_SUFFIX = "... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{"
"""The reference probe suffix, byte for byte."""

PRESETS: dict[str, tuple[int, int]] = {
    "mild": (8, 64),
    "low": (5, 64),
    "mid": (3, 64),
    "high": (2, 64),
    "crazy": (2, 32),
}
"""Preset name -> (certainty_threshold, chunk_tokens), the reference values."""

__all__ = ["PRESETS", "PROBE_SUFFIX", "DynasorConfig", "dynasor_cot", "early_exit_text", "has_open_think"]


@dataclass(frozen=True)
class DynasorConfig:
    chunk_tokens: int = 64
    certainty_threshold: int = 3
    probe_tokens: int = 20
    window: int = 0
    consistency: float = 1.0
    early_exit: bool = True
    require_settled: bool = False
    probe_sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.6, top_p=0.95))
    probe_suffix: str = PROBE_SUFFIX
    calibrated: CalibratedExit | None = None  # preset `auto`: exits as an exit profile allows (`calibrated`)

    @classmethod
    def preset(cls, name: str) -> DynasorConfig:
        threshold, chunk = PRESETS[name]
        return cls(chunk_tokens=chunk, certainty_threshold=threshold)

    @classmethod
    def auto(cls, exit_: CalibratedExit) -> DynasorConfig:
        """Preset `auto`: chunk and probe sizes of the profile, exits calibrated to the request's risk."""
        return cls(
            chunk_tokens=exit_.profile.chunk_tokens,
            probe_tokens=exit_.profile.probe_tokens,
            early_exit=not exit_.record,
            calibrated=exit_,
        )

    @property
    def rule(self) -> CertaintyRule:
        return CertaintyRule(self.certainty_threshold, self.window, self.consistency)

    @property
    def agreeing_probes(self) -> int:
        """How many of the latest probes the exit rule looks at."""
        return self.window or self.certainty_threshold


def dynasor_cot(
    prompt: tuple[PromptPiece, ...],
    token_budget: int,
    sampling: SamplingParams,
    config: DynasorConfig,
    sample_index: int = 0,
) -> Generator[Command, Any, PathResult]:
    if config.calibrated is not None:
        return (
            yield from calibrated_cot(
                prompt, token_budget, sampling, config.chunk_tokens, config.probe_tokens, config.probe_suffix,
                config.calibrated, sample_index,
            )
        )
    path: list[Segment] = []
    kept_tokens = 0  # tokens of the path as returned
    discarded_tokens = 0  # tokens of a chunk cancelled by an early exit: spent, not returned
    probe_tokens = 0
    probes: list[ProbeRecord] = []
    probe_offsets: list[int] = []  # characters of path text each probe saw
    probe_sampling = SamplingParams(
        temperature=config.probe_sampling.temperature,
        top_p=config.probe_sampling.top_p,
        top_k=config.probe_sampling.top_k,
        seed=sampling.seed,
    )

    def next_chunk() -> GenerationRequest:
        size = min(config.chunk_tokens, token_budget - kept_tokens)
        return GenerationRequest(prompt + tuple(path), size, sampling, Purpose.PATH, sample_index)

    def result(answer: str, stop: StopReason, text: str) -> PathResult:
        return PathResult(
            answer=answer,
            stop_reason=stop,
            text=text,
            path_tokens=kept_tokens + discarded_tokens,
            probe_tokens=probe_tokens,
            probes=tuple(probes),
            sample_index=sample_index,
        )

    chunk = yield Start(next_chunk())
    while True:
        outcome = yield Wait(chunk)
        path.append(outcome.segment)
        kept_tokens += outcome.tokens
        path_text = "".join(segment.text for segment in path)
        if outcome.finish is FinishReason.STOP or kept_tokens >= token_budget:
            stop = StopReason.MODEL_FINISHED if outcome.finish is FinishReason.STOP else StopReason.BUDGET
            answer = extract_boxed(path_text) or next((p.answer for p in reversed(probes) if p.answer), "")
            yield Emit(Decision(sample_index, stop, answer))
            return result(answer, stop, path_text)

        probe = yield Start(
            GenerationRequest(
                prompt + tuple(path) + (config.probe_suffix,),
                config.probe_tokens,
                probe_sampling,
                Purpose.PROBE,
                sample_index,
            )
        )
        chunk = yield Start(next_chunk())
        probe_outcome = yield Wait(probe)
        probe_tokens += probe_outcome.tokens
        record = ProbeRecord(
            sample_index=sample_index,
            position_tokens=kept_tokens,
            answer=extract_probe_answer(probe_outcome.text),
            confident=not hesitates(probe_outcome.text),
            tokens=probe_outcome.tokens,
        )
        probes.append(record)
        probe_offsets.append(len(path_text))
        yield Emit(record)
        if config.early_exit and config.rule.is_certain(probes) and (
            not config.require_settled or _settled(prompt, path_text, probe_offsets, config, record.answer)
        ):
            discarded = yield Cancel(chunk)
            discarded_tokens += discarded.tokens
            detail = f"{config.certainty_threshold} agreeing confident probes"
            if config.window:
                detail = f"window {config.window} consistency >= {config.consistency}"
            if config.require_settled:
                detail += ", no new quantity since they began to agree"
            yield Emit(Decision(sample_index, StopReason.CERTAIN, record.answer, detail))
            return result(record.answer, StopReason.CERTAIN, early_exit_text(prompt, path_text, record.answer))


def _settled(
    prompt: tuple[PromptPiece, ...], path_text: str, probe_offsets: list[int], config: DynasorConfig, answer: str
) -> bool:
    """Whether the path computed nothing new since the first of the agreeing probes (see `certainty.settled`)."""
    start = probe_offsets[-config.agreeing_probes]
    return settled(prompt_text(prompt) + path_text[:start], path_text[start:], answer)
