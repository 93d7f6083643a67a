"""Typed builders of the API's requests: strategies, a solve request, a batch request.

Every argument maps to one field of certa/v1/reasoning.proto (its comments give the ranges; the server checks them
and answers INVALID_ARGUMENT naming the field). None leaves an optional field unset: the server's default applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from certa_client.v1 import reasoning_pb2 as pb


def _names(prefix: str, names: Iterable[str]) -> tuple[str, ...]:
    """The enum's value names without their prefix, in lower case, leaving out the unspecified one."""
    return tuple(name[len(prefix):].lower() for name in names if name != f"{prefix}UNSPECIFIED")


PRESETS = _names("PRESET_", pb.DynasorCot.Preset.keys())  # mild, low, mid, high, crazy, auto
ALLOCATIONS = _names("ALLOCATION_", pb.Allocation.keys())  # uniform, bandit


def plain() -> pb.Strategy:
    """One chain of thought to the end or the token budget: the baseline."""
    return pb.Strategy(plain=pb.PlainCot())


def dynasor_cot(
    preset: str = "mid",
    *,
    chunk_tokens: int | None = None,
    certainty_threshold: int | None = None,
    probe_tokens: int | None = None,
    disable_early_exit: bool = False,
    require_settled: bool = False,
    risk: float | None = None,
    profile: str = "",
) -> pb.Strategy:
    """Dynasor-CoT: probe the answer every `chunk_tokens` path tokens, stop once `certainty_threshold` probes agree.

    `preset` (mild, low, mid, high, crazy) sets both; explicit knobs override it. Preset `auto` exits as the
    server's exit profile for the model allows at `risk` (in (0, 0.5]), optionally naming the `profile`; the knobs
    do not apply to it.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: one of {', '.join(PRESETS)}, got {preset!r}")
    message = pb.DynasorCot(
        preset=f"PRESET_{preset.upper()}",
        disable_early_exit=disable_early_exit,
        require_settled=require_settled,
        profile=profile,
    )
    if risk is not None:
        message.risk = risk
    if chunk_tokens is not None:
        message.chunk_tokens = chunk_tokens
    if certainty_threshold is not None:
        message.certainty_threshold = certainty_threshold
    if probe_tokens is not None:
        message.probe_tokens = probe_tokens
    return pb.Strategy(dynasor_cot=message)


def majority_vote(n: int, inner: pb.Strategy | None = None) -> pb.Strategy:
    """`n` samples, each an `inner` path (plain or Dynasor-CoT; default plain); the largest answer class wins."""
    vote = pb.MajorityVote(n=n)
    _set_inner(vote, inner or plain())
    return pb.Strategy(majority_vote=vote)


def self_consistency(
    inner: pb.Strategy | None = None,
    *,
    max_samples: int | None = None,
    wave_size: int | None = None,
    pool: str = "",
    refine: bool = False,
) -> pb.Strategy:
    """Samples in waves until the stop rule (Certaindex 0.7 from 5 samples) fires or `max_samples` were drawn.

    `pool` names a budget pool of the caller's tenant that waves after the first draw from; `refine` makes later
    samples refine earlier ones. Needs a temperature above 0.
    """
    consistency = pb.SelfConsistency(pool=pool)
    _set_inner(consistency, inner or plain())
    if max_samples is not None:
        consistency.max_samples = max_samples
    if wave_size is not None:
        consistency.wave_size = wave_size
    if refine:
        consistency.refinement.SetInParent()
    return pb.Strategy(self_consistency=consistency)


def _set_inner(message: pb.MajorityVote | pb.SelfConsistency | pb.SolveBatchRequest, inner: pb.Strategy) -> None:
    kind = inner.WhichOneof("kind")
    if kind == "plain":
        message.plain.SetInParent()
    elif kind == "dynasor_cot":
        message.dynasor_cot.CopyFrom(inner.dynasor_cot)
    else:
        raise ValueError(f"inner: plain() or dynasor_cot(), got {kind or 'no strategy'}")


def sampling(
    temperature: float = 0.0, *, top_p: float | None = None, top_k: int = 0, seed: int | None = None
) -> pb.SamplingParams:
    """Sampling of the reasoning paths: temperature 0 is greedy; a seed makes sampling reproducible."""
    params = pb.SamplingParams(temperature=temperature, top_k=top_k)
    if top_p is not None:
        params.top_p = top_p
    if seed is not None:
        params.seed = seed
    return params


def solve_request(
    question: str,
    strategy: pb.Strategy | None = None,
    *,
    raw_prompt: bool = False,
    sampling_params: pb.SamplingParams | None = None,
    token_budget: int = 0,
    deadline_s: float | None = None,
    backend: str = "",
    model: str = "",
    request_id: str = "",
) -> pb.SolveRequest:
    """A SolveRequest: `question` (or, with `raw_prompt`, a prompt sent to the model as is) solved with `strategy`
    (default Dynasor-CoT, preset mid). `token_budget` caps one path (0: the server's default); `request_id` is an
    idempotency key (empty: the server assigns one)."""
    request = pb.SolveRequest(
        strategy=strategy or dynasor_cot(),
        sampling=sampling_params or sampling(),
        token_budget=token_budget,
        backend=backend,
        model=model,
        request_id=request_id,
    )
    if raw_prompt:
        request.raw_prompt = question
    else:
        request.question = question
    if deadline_s is not None:
        request.deadline.FromNanoseconds(int(deadline_s * 1e9))
    return request


def batch_request(
    questions: Iterable[tuple[str, str]],
    inner: pb.Strategy | None = None,
    *,
    sampling_params: pb.SamplingParams | None = None,
    samples: int = 0,
    tokens: int = 0,
    per_question_cap: int | None = None,
    warmup: int | None = None,
    allocation: str = "bandit",
    token_budget: int = 0,
    deadline_s: float | None = None,
    backend: str = "",
    model: str = "",
    request_id: str = "",
) -> pb.SolveBatchRequest:
    """A SolveBatchRequest over `questions` ((id, question) pairs): a bandit spreads a budget of `samples` samples
    and/or `tokens` tokens (0: no limit of that kind; at least one is needed) over them by their uncertainty.
    Each sample is an `inner` path (default plain) at temperature 0.7 unless `sampling_params` say otherwise."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation: one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    request = pb.SolveBatchRequest(
        questions=[pb.BatchQuestion(id=question_id, question=text) for question_id, text in questions],
        sampling=sampling_params or sampling(0.7),
        token_budget=token_budget,
        budget=pb.BatchBudget(samples=samples, tokens=tokens),
        allocation=f"ALLOCATION_{allocation.upper()}",
        backend=backend,
        model=model,
        request_id=request_id,
    )
    _set_inner(request, inner or plain())
    if per_question_cap is not None:
        request.per_question_cap = per_question_cap
    if warmup is not None:
        request.warmup = warmup
    if deadline_s is not None:
        request.deadline.FromNanoseconds(int(deadline_s * 1e9))
    return request
