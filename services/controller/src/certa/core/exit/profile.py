"""Exit profiles: what a calibration found for one model and prompt template, at one or more risk levels.

A profile holds, per calibrated risk level α, the policy used when the backend returns log-probabilities
(`confidence`) and the one used when it does not (`agreement`, agreement only); either may be None (never exit).
A request asking for risk α gets the most permissive level whose α is at most the one asked for; below every
calibrated level it gets no exit at all. Profiles round-trip through plain dicts (JSON files are read by the
adapters, not here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certa.core.errors import InvalidArgument
from certa.core.exit.calibration import (
    Calibrated,
    agreement_candidates,
    calibrate_sequence,
    confidence_candidates,
)
from certa.core.exit.policy import ExitPolicy, policy_from_dict, policy_to_dict
from certa.core.exit.trace import PathTrace

MIN_RISK = 0.0
MAX_RISK = 0.5
DEFAULT_DELTA = 0.1

DEFAULT_PROFILE_NAME = "conservative-default"


@dataclass(frozen=True)
class RiskLevel:
    alpha: float
    confidence: Calibrated
    agreement: Calibrated


@dataclass(frozen=True)
class ExitProfile:
    name: str
    model: str
    template: str
    delta: float
    chunk_tokens: int
    probe_tokens: int
    levels: tuple[RiskLevel, ...]
    default_alpha: float
    recording: str = ""  # what the calibration read (file name, questions)

    def level(self, alpha: float) -> RiskLevel | None:
        """The most permissive calibrated level with α ≤ `alpha`; None when `alpha` is below all of them."""
        fitting = [level for level in self.levels if level.alpha <= alpha + 1e-12]
        return max(fitting, key=lambda level: level.alpha) if fitting else None


def _uncalibrated(policy: ExitPolicy | None) -> Calibrated:
    return Calibrated(policy, 0, 0, 0, 0, 0.0, 0, 0, 0)


CONSERVATIVE_DEFAULT = ExitProfile(
    name=DEFAULT_PROFILE_NAME,
    model="*",
    template="*",
    delta=DEFAULT_DELTA,
    chunk_tokens=32,
    probe_tokens=20,
    levels=(
        RiskLevel(
            alpha=0.0,  # not calibrated: the same policy whatever risk a request asks for
            confidence=_uncalibrated(
                ExitPolicy(
                    agreement=2,
                    min_confidence=0.95,
                    require_answer_cue=True,
                    require_answer_in_path=True,
                    cues_only=True,
                )
            ),
            agreement=_uncalibrated(None),
        ),
    ),
    default_alpha=MAX_RISK,
    recording="none: not calibrated",
)
"""For a model without a profile: exits only on two agreeing probes at answer cues, the latest answer written by
the path and read with confidence ≥ 0.95 from log-probs. Without log-probs it never exits, so agreement of repeated
intermediate numbers alone can never stop a path."""


@dataclass(frozen=True)
class ProfileBook:
    """The exit profiles a server knows, by name; `default` names the one used when a request names none
    (empty: `CONSERVATIVE_DEFAULT`)."""

    profiles: Mapping[str, ExitProfile]
    default: str = ""

    def resolve(self, name: str, field: str) -> ExitProfile:
        """The profile `name` (empty: the default); `InvalidArgument` on `field` when unknown."""
        wanted = name or self.default
        if not wanted or wanted == DEFAULT_PROFILE_NAME:
            return CONSERVATIVE_DEFAULT
        profile = self.profiles.get(wanted)
        if profile is None:
            known = sorted({*self.profiles, DEFAULT_PROFILE_NAME})
            raise InvalidArgument(field, f"unknown exit profile {wanted!r}; known: {known}")
        return profile


def validate_risk(risk: float, field: str) -> float:
    if not MIN_RISK < risk <= MAX_RISK:
        raise InvalidArgument(field, f"must be in ({MIN_RISK:g}, {MAX_RISK:g}], got {risk:g}")
    return risk


class RecordingMismatch(ValueError):
    """A recording made with another model or prompt template than the profile claims."""


def check_recording(traces: Sequence[PathTrace], model: str, template: str) -> None:
    """Raise `RecordingMismatch`, saying which, when a trace was made with another model or template."""
    for trace in traces:
        if trace.model != model:
            raise RecordingMismatch(
                f"question {trace.question_id} was recorded with model {trace.model!r}, the profile claims {model!r}"
            )
        if trace.template != template:
            raise RecordingMismatch(
                f"question {trace.question_id} was recorded with prompt template {trace.template!r}, the profile "
                f"claims {template!r}"
            )


def calibrate_profile(
    traces: Sequence[PathTrace],
    *,
    name: str,
    model: str,
    template: str,
    alphas: Sequence[float],
    delta: float = DEFAULT_DELTA,
    chunk_tokens: int,
    probe_tokens: int,
    recording: str = "",
) -> ExitProfile:
    """Calibrate both policies at each risk level; the recording must match the claimed model and template."""
    if not traces:
        raise ValueError("the recording has no questions")
    check_recording(traces, model, template)
    for alpha in alphas:
        validate_risk(alpha, "alpha")
    levels = tuple(
        RiskLevel(
            alpha=alpha,
            confidence=calibrate_sequence(confidence_candidates(), traces, alpha, delta),
            agreement=calibrate_sequence(agreement_candidates(), traces, alpha, delta),
        )
        for alpha in sorted(alphas)
    )
    return ExitProfile(
        name=name,
        model=model,
        template=template,
        delta=delta,
        chunk_tokens=chunk_tokens,
        probe_tokens=probe_tokens,
        levels=levels,
        default_alpha=min(alphas),
        recording=recording,
    )


def _calibrated_to_dict(calibrated: Calibrated) -> dict[str, Any]:
    return {
        "policy": policy_to_dict(calibrated.policy),
        "questions": calibrated.questions,
        "exits": calibrated.exits,
        "premature": calibrated.premature,
        "wrong": calibrated.wrong,
        "bound": calibrated.bound,
        "tokens": calibrated.tokens,
        "plain_tokens": calibrated.plain_tokens,
        "tested": calibrated.tested,
    }


def _calibrated_from_dict(data: Mapping[str, Any]) -> Calibrated:
    return Calibrated(
        policy=policy_from_dict(data["policy"]),
        questions=int(data["questions"]),
        exits=int(data["exits"]),
        premature=int(data["premature"]),
        wrong=int(data["wrong"]),
        bound=float(data["bound"]),
        tokens=int(data["tokens"]),
        plain_tokens=int(data["plain_tokens"]),
        tested=int(data["tested"]),
    )


def profile_to_dict(profile: ExitProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "model": profile.model,
        "template": profile.template,
        "delta": profile.delta,
        "chunk_tokens": profile.chunk_tokens,
        "probe_tokens": profile.probe_tokens,
        "default_alpha": profile.default_alpha,
        "recording": profile.recording,
        "levels": [
            {
                "alpha": level.alpha,
                "confidence": _calibrated_to_dict(level.confidence),
                "agreement": _calibrated_to_dict(level.agreement),
            }
            for level in profile.levels
        ],
    }


def profile_from_dict(data: Mapping[str, Any]) -> ExitProfile:
    """A profile from its dict; `KeyError`/`TypeError`/`ValueError` when malformed."""
    levels = tuple(
        RiskLevel(
            alpha=float(level["alpha"]),
            confidence=_calibrated_from_dict(level["confidence"]),
            agreement=_calibrated_from_dict(level["agreement"]),
        )
        for level in data["levels"]
    )
    if not levels:
        raise ValueError("a profile needs at least one risk level")
    return ExitProfile(
        name=str(data["name"]),
        model=str(data["model"]),
        template=str(data["template"]),
        delta=float(data["delta"]),
        chunk_tokens=int(data["chunk_tokens"]),
        probe_tokens=int(data["probe_tokens"]),
        levels=levels,
        default_alpha=float(data["default_alpha"]),
        recording=str(data.get("recording", "")),
    )
