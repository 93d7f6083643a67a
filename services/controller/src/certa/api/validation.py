"""Validate a `SolveRequest` and map it to core types. Every refusal names the field and what is accepted."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

from certa.config import Settings
from certa.core.allocator import AllocatorConfig, BatchBudget, Policy
from certa.core.allocator import validate_batch as validate_allocation
from certa.core.errors import InvalidArgument
from certa.core.exit.profile import validate_risk
from certa.core.spec import SolveSpec
from certa.core.stop_rules import BetaRule, CertaindexRule, EscRule, FixedCount, StopRule
from certa.core.strategies import (
    BatchSpec,
    DynasorConfig,
    MajorityVoteSpec,
    PathSpec,
    PlainSpec,
    Refinement,
    SelfConsistencySpec,
    StrategySpec,
    sample_max_tokens,
    validate_self_consistency,
)
from certa.core.strategies.calibrated import CalibratedExit
from certa.core.strategies.dynasor import PRESETS
from certa.core.types import SamplingParams
from certa.exit_profiles import profile_book
from certa.prompts.refinement import load_refinement_template
from certa.v1 import reasoning_pb2 as pb

# Patterns are used with `fullmatch`: `^...$` would accept a trailing newline.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_MODEL_CHARS = 256
_MODEL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:/@+-]{{0,{MAX_MODEL_CHARS - 1}}}")
MAX_BACKEND_CHARS = 64
MAX_QUESTION_ID_CHARS = 128
_KNOBS_PRESET = "mid"
MAX_CHUNK_TOKENS = 4096
MAX_PROBE_TOKENS = 256
MAX_THRESHOLD = 64


def _preset_name(preset: int, field: str) -> str:
    if preset == pb.DynasorCot.PRESET_UNSPECIFIED:
        return _KNOBS_PRESET
    try:
        return pb.DynasorCot.Preset.Name(preset).removeprefix("PRESET_").lower()
    except ValueError:
        raise InvalidArgument(f"{field}.preset", f"unknown preset {preset}; use one of {sorted(PRESETS)}") from None


_AUTO_ONLY = ("chunk_tokens", "certainty_threshold", "probe_tokens", "consistency")


def is_auto_preset(message: pb.DynasorCot) -> bool:
    """Preset `auto`, named or by default: an unspecified preset with none of the fixed rule's knobs set.

    The default must never spend more than plain chain of thought, so it is the calibrated rule; a request that
    sets a knob of the fixed rule (chunk, threshold, probe size, window, settled) gets that rule on preset mid.
    """
    if message.preset == pb.DynasorCot.PRESET_AUTO:
        return True
    if message.preset != pb.DynasorCot.PRESET_UNSPECIFIED:
        return False
    knobs = any(message.HasField(knob) for knob in _AUTO_ONLY)
    return not (knobs or message.window or message.require_settled)


def _auto(message: pb.DynasorCot, field: str, settings: Settings) -> DynasorConfig:
    """Preset `auto`: the named (or the server's) exit profile at the request's risk level."""
    for knob in _AUTO_ONLY:
        if message.HasField(knob):
            raise InvalidArgument(f"{field}.{knob}", "does not apply to preset auto (the exit profile sets it)")
    if message.window or message.require_settled:
        knob = "window" if message.window else "require_settled"
        raise InvalidArgument(f"{field}.{knob}", "does not apply to preset auto (the exit profile sets it)")
    profile = profile_book(settings.exit_profiles, settings.exit_profile).resolve(message.profile, f"{field}.profile")
    risk = validate_risk(message.risk, f"{field}.risk") if message.HasField("risk") else profile.default_alpha
    return DynasorConfig.auto(CalibratedExit(profile, risk, record=message.disable_early_exit))


def _dynasor(message: pb.DynasorCot, field: str, settings: Settings) -> DynasorConfig:
    if is_auto_preset(message):
        return _auto(message, field, settings)
    if message.HasField("risk"):
        raise InvalidArgument(f"{field}.risk", "only applies to preset auto")
    if message.profile:
        raise InvalidArgument(f"{field}.profile", "only applies to preset auto")
    config = DynasorConfig.preset(_preset_name(message.preset, field))
    chunk = message.chunk_tokens if message.HasField("chunk_tokens") else config.chunk_tokens
    threshold = message.certainty_threshold if message.HasField("certainty_threshold") else config.certainty_threshold
    probe = message.probe_tokens if message.HasField("probe_tokens") else config.probe_tokens
    consistency = message.consistency if message.HasField("consistency") else 1.0
    if not 1 <= chunk <= MAX_CHUNK_TOKENS:
        raise InvalidArgument(f"{field}.chunk_tokens", f"must be in [1, {MAX_CHUNK_TOKENS}], got {chunk}")
    if not 1 <= threshold <= MAX_THRESHOLD:
        raise InvalidArgument(f"{field}.certainty_threshold", f"must be in [1, {MAX_THRESHOLD}], got {threshold}")
    if not 1 <= probe <= MAX_PROBE_TOKENS:
        raise InvalidArgument(f"{field}.probe_tokens", f"must be in [1, {MAX_PROBE_TOKENS}], got {probe}")
    if message.window > MAX_THRESHOLD:
        raise InvalidArgument(f"{field}.window", f"must be in [0, {MAX_THRESHOLD}], got {message.window}")
    if not 0.0 < consistency <= 1.0:
        raise InvalidArgument(f"{field}.consistency", f"must be in (0, 1], got {consistency}")
    if message.HasField("consistency") and message.window == 0:
        raise InvalidArgument(f"{field}.consistency", "only applies with window > 0; set window too")
    if message.HasField("certainty_threshold") and message.window > 0:
        raise InvalidArgument(
            f"{field}.certainty_threshold", "is not used by the window rule (window > 0); set one or the other"
        )
    if message.require_settled and message.disable_early_exit:
        raise InvalidArgument(f"{field}.require_settled", "has no effect with disable_early_exit; drop one of them")
    return DynasorConfig(
        chunk_tokens=chunk,
        certainty_threshold=threshold,
        probe_tokens=probe,
        window=message.window,
        consistency=consistency,
        early_exit=not message.disable_early_exit,
        require_settled=message.require_settled,
    )


def _inner(
    message: pb.MajorityVote | pb.SelfConsistency | pb.SolveBatchRequest, field: str, settings: Settings
) -> PathSpec:
    inner = message.WhichOneof("inner")
    if inner is None:
        raise InvalidArgument(f"{field}.inner", "required: set plain or dynasor_cot")
    return PlainSpec() if inner == "plain" else _dynasor(message.dynasor_cot, f"{field}.dynasor_cot", settings)


def _unit_interval(value: float, field: str) -> float:
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(field, f"must be in [0, 1], got {value:g}")
    return value


def _stop_rule(message: pb.StopRule, field: str) -> StopRule:
    kind = message.WhichOneof("rule")
    if kind is None or kind == "certaindex":
        rule = message.certaindex
        base = CertaindexRule()
        return CertaindexRule(
            threshold=_unit_interval(rule.threshold, f"{field}.certaindex.threshold")
            if rule.HasField("threshold")
            else base.threshold,
            min_samples=rule.min_samples if rule.HasField("min_samples") else base.min_samples,
        )
    if kind == "fixed":
        return FixedCount()
    if kind == "esc":
        return EscRule(window=message.esc.window if message.esc.HasField("window") else EscRule().window)
    beta = message.beta
    threshold = beta.threshold if beta.HasField("threshold") else BetaRule().threshold
    return BetaRule(threshold=_unit_interval(threshold, f"{field}.beta.threshold"))


@functools.cache
def refinement_template(path: str) -> str:
    """The refinement prompt template (`CERTA_REFINEMENT_TEMPLATE`, or the built-in one), read once."""
    return load_refinement_template(Path(path) if path else None, "CERTA_REFINEMENT_TEMPLATE")


def _refinement(message: pb.SelfConsistency | pb.SolveBatchRequest, settings: Settings) -> Refinement:
    given = message.refinement
    base = Refinement("")
    return Refinement(
        template=refinement_template(settings.refinement_template),
        attempts=given.attempts if given.HasField("attempts") else base.attempts,
        attempt_chars=given.attempt_chars if given.HasField("attempt_chars") else base.attempt_chars,
    )


def _self_consistency(message: pb.SelfConsistency, settings: Settings) -> SelfConsistencySpec:
    field = "strategy.self_consistency"
    base = SelfConsistencySpec(inner=PlainSpec())
    refinement = _refinement(message, settings) if message.HasField("refinement") else None
    spec = SelfConsistencySpec(
        inner=_inner(message, field, settings),
        stop_rule=_stop_rule(message.stop_rule, f"{field}.stop_rule"),
        wave_size=message.wave_size if message.HasField("wave_size") else base.wave_size,
        max_samples=message.max_samples
        if message.HasField("max_samples")
        else min(base.max_samples, settings.max_samples),
        refinement=refinement,
        pool=message.pool,
    )
    return validate_self_consistency(spec, field, settings.max_samples)


def _strategy(message: pb.Strategy, settings: Settings) -> StrategySpec:
    kind = message.WhichOneof("kind")
    if kind == "plain":
        return PlainSpec()
    if kind == "dynasor_cot":
        return _dynasor(message.dynasor_cot, "strategy.dynasor_cot", settings)
    if kind == "majority_vote":
        vote = message.majority_vote
        if not 1 <= vote.n <= settings.max_samples:
            raise InvalidArgument("strategy.majority_vote.n", f"must be in [1, {settings.max_samples}], got {vote.n}")
        return MajorityVoteSpec(n=vote.n, inner=_inner(vote, "strategy.majority_vote", settings))
    if kind == "self_consistency":
        return _self_consistency(message.self_consistency, settings)
    return _dynasor(pb.DynasorCot(), "strategy.dynasor_cot", settings)  # none set: the default, preset auto


def _sampling(message: pb.SamplingParams) -> SamplingParams:
    top_p = message.top_p if message.HasField("top_p") else 1.0
    repetition = message.repetition_penalty if message.HasField("repetition_penalty") else 1.0
    if not 0.0 <= message.temperature <= 2.0:
        raise InvalidArgument("sampling.temperature", f"must be in [0, 2], got {message.temperature:g}")
    if not 0.0 < top_p <= 1.0:
        raise InvalidArgument("sampling.top_p", f"must be in (0, 1], got {top_p:g}")
    if message.top_k > 1000:
        raise InvalidArgument("sampling.top_k", f"must be in [0, 1000], got {message.top_k}")
    if not 0.0 < repetition <= 2.0:
        raise InvalidArgument("sampling.repetition_penalty", f"must be in (0, 2], got {repetition:g}")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(message, name)
        if not -2.0 <= value <= 2.0:
            raise InvalidArgument(f"sampling.{name}", f"must be in [-2, 2], got {value:g}")
    return SamplingParams(
        temperature=message.temperature,
        top_p=top_p,
        top_k=message.top_k,
        seed=message.seed if message.HasField("seed") else None,
        repetition_penalty=repetition,
        presence_penalty=message.presence_penalty,
        frequency_penalty=message.frequency_penalty,
    )


def _path_spec(spec: StrategySpec) -> PathSpec:
    return spec.inner if isinstance(spec, MajorityVoteSpec | SelfConsistencySpec) else spec


def _chunk_tokens(spec: StrategySpec) -> int:
    path = _path_spec(spec)
    return path.chunk_tokens if isinstance(path, DynasorConfig) else 1


def _check_request_id(request_id: str) -> None:
    if request_id:
        validate_request_id(request_id)


def validate_request_id(request_id: str) -> str:
    """A request id a client names (Solve* `request_id`, `GetSolve`, `CancelSolve`); never echoed when refused."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidArgument(
            "request_id", "must be 1-128 characters of letters, digits and . _ : - starting with a letter or digit"
        )
    return request_id


def _model(model: str) -> str:
    """The model a request names ("" is the backend's default); whether the backend serves it is admission's call."""
    if model and not _MODEL.fullmatch(model):
        raise InvalidArgument(
            "model",
            f"must be 1-{MAX_MODEL_CHARS} characters of letters, digits and . _ : / @ + - starting with a letter or "
            "digit",
        )
    return model


def _check_length(text: str, field: str, settings: Settings) -> None:
    if len(text) > settings.max_prompt_chars:
        raise InvalidArgument(
            field, f"is {len(text)} characters; the server accepts at most {settings.max_prompt_chars}"
        )


def validate(request: pb.SolveRequest, settings: Settings, request_id: str) -> SolveSpec:
    """Check a request against the API's ranges and the server's caps; return it in core terms."""
    kind = request.WhichOneof("input")
    text = getattr(request, kind) if kind else ""
    field = kind or "question"
    if not text.strip():
        raise InvalidArgument(field, "must not be empty: set question (or raw_prompt)")
    _check_length(text, field, settings)
    _check_request_id(request.request_id)
    model = _model(request.model)
    strategy = _strategy(request.strategy, settings)
    sampling = _sampling(request.sampling)
    if sampling.has_penalties and isinstance(_path_spec(strategy), DynasorConfig):
        raise InvalidArgument(
            "sampling",
            "repetition/presence/frequency penalties restart with every backend call, so a path continued chunk by "
            "chunk (dynasor_cot) would not be the path you asked for; leave them neutral or use plain",
        )
    if isinstance(strategy, MajorityVoteSpec) and strategy.n > 1 and sampling.greedy:
        raise InvalidArgument(
            "sampling.temperature", "majority_vote with n > 1 needs temperature > 0 (greedy samples are identical)"
        )
    if isinstance(strategy, SelfConsistencySpec) and strategy.max_samples > 1 and sampling.greedy:
        raise InvalidArgument(
            "sampling.temperature", "self_consistency needs temperature > 0 (greedy samples are identical)"
        )
    if isinstance(strategy, SelfConsistencySpec) and strategy.refinement is not None and kind == "raw_prompt":
        raise InvalidArgument(
            "strategy.self_consistency.refinement", "quotes the question: send a question, not a raw_prompt"
        )
    budget = _token_budget(request.token_budget, strategy, settings)
    deadline_s = _deadline(request, settings)
    backend = _backend(request.backend, settings)
    return SolveSpec(
        request_id=request_id,
        text=text,
        raw_prompt=kind == "raw_prompt",
        strategy=strategy,
        sampling=sampling,
        token_budget=budget,
        deadline_s=deadline_s,
        backend=backend,
        model=model,
    )


def _token_budget(requested: int, strategy: StrategySpec | PathSpec, settings: Settings) -> int:
    budget = requested or settings.default_token_budget
    if budget > settings.max_token_budget:
        raise InvalidArgument("token_budget", f"must be <= {settings.max_token_budget} (server cap), got {budget}")
    chunk = _chunk_tokens(strategy)
    if budget < chunk:
        raise InvalidArgument("token_budget", f"must be >= chunk_tokens ({chunk}), got {budget}")
    return budget


def _deadline(request: pb.SolveRequest | pb.SolveBatchRequest, settings: Settings) -> float:
    if not request.HasField("deadline"):
        return settings.default_deadline_s
    seconds, nanos = request.deadline.seconds, request.deadline.nanos
    if not -999_999_999 <= nanos <= 999_999_999 or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise InvalidArgument("deadline", f"is not a valid Duration (seconds {seconds}, nanos {nanos})")
    deadline_s = seconds + nanos / 1e9  # no timedelta: any int64 of seconds must be refused, not overflow
    if deadline_s <= 0:
        raise InvalidArgument("deadline", f"must be positive (the deadline has already passed: {deadline_s:g}s)")
    if deadline_s > settings.max_deadline_s:
        raise InvalidArgument("deadline", f"must be <= {settings.max_deadline_s:g}s (server cap), got {deadline_s:g}s")
    return deadline_s


def _backend(requested: str, settings: Settings) -> str:
    backend = requested or settings.default_backend_name
    names = [spec.name for spec in settings.backends]
    if len(backend) > MAX_BACKEND_CHARS:
        raise InvalidArgument("backend", f"at most {MAX_BACKEND_CHARS} characters; configured: {', '.join(names)}")
    if backend not in names:
        raise InvalidArgument("backend", f"unknown backend {backend!r}; configured: {', '.join(names) or 'none'}")
    return backend


MAX_IN_FLIGHT = 256


def validate_batch(request: pb.SolveBatchRequest, settings: Settings, request_id: str) -> SolveSpec:
    """Check a batch against the API's ranges and the server's caps; the batch is the strategy of the result."""
    _check_request_id(request.request_id)
    model = _model(request.model)
    if len(request.questions) > settings.max_batch_questions:
        raise InvalidArgument(
            "questions", f"at most {settings.max_batch_questions} per batch (server cap), got {len(request.questions)}"
        )
    for index, question in enumerate(request.questions):
        if not 1 <= len(question.id) <= MAX_QUESTION_ID_CHARS or not question.id.isprintable():
            raise InvalidArgument(
                f"questions[{index}].id", f"must be 1-{MAX_QUESTION_ID_CHARS} printable characters (no control ones)"
            )
        if not question.question.strip():
            raise InvalidArgument(f"questions[{index}].question", "must not be empty")
        _check_length(question.question, f"questions[{index}].question", settings)
    inner = _inner(request, "batch", settings)
    sampling = _sampling(request.sampling)
    if sampling.greedy:
        raise InvalidArgument("sampling.temperature", "a batch draws several samples per question: needs > 0")
    if sampling.has_penalties and isinstance(inner, DynasorConfig):
        raise InvalidArgument("sampling", "penalties cannot apply to chunked (dynasor_cot) samples; leave them neutral")
    budget = _token_budget(request.token_budget, inner, settings)
    if math.isnan(request.exploration):
        raise InvalidArgument("exploration", "must be a number >= 0, got NaN")
    cap = request.per_question_cap if request.HasField("per_question_cap") else min(40, settings.max_samples)
    if cap > settings.max_samples:
        raise InvalidArgument("per_question_cap", f"must be <= {settings.max_samples} (server cap), got {cap}")
    max_in_flight = request.max_in_flight if request.HasField("max_in_flight") else 16
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise InvalidArgument("max_in_flight", f"must be in [1, {MAX_IN_FLIGHT}], got {max_in_flight}")
    base = AllocatorConfig(budget=BatchBudget(), sample_max_tokens=1)
    config = AllocatorConfig(
        budget=BatchBudget(samples=request.budget.samples or None, tokens=request.budget.tokens or None),
        sample_max_tokens=sample_max_tokens(inner, budget),
        per_question_cap=cap,
        warmup=request.warmup if request.HasField("warmup") else base.warmup,
        exploration=request.exploration if request.HasField("exploration") else base.exploration,
        stop_rule=_stop_rule(request.stop_rule, "stop_rule"),
        policy=Policy.UNIFORM if request.allocation == pb.ALLOCATION_UNIFORM else Policy.BANDIT,
    )
    questions = tuple((question.id, question.question) for question in request.questions)
    validate_allocation([question_id for question_id, _ in questions], config, settings.max_batch_questions)
    refinement = _refinement(request, settings) if request.HasField("refinement") else None
    return SolveSpec(
        request_id=request_id,
        text="",
        raw_prompt=False,
        strategy=BatchSpec(questions, inner, config, max_in_flight, refinement),
        sampling=sampling,
        token_budget=budget,
        deadline_s=_deadline(request, settings),
        backend=_backend(request.backend, settings),
        model=model,
    )
