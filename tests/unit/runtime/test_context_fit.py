"""A default budget never fails on a small model: max_tokens is fitted to the context the model publishes."""

from __future__ import annotations

import pytest

from certa.backends.triton.tensors import ModelSignature
from certa.backends.triton.tokens import fitted_max_tokens
from certa.core.strategies import PlainSpec, build_strategy
from certa.core.types import FinishReason, Outcome, SamplingParams, Segment, StopReason
from certa.testing.strategy_harness import Harness

pytestmark = pytest.mark.unit


def signature(**parameters: str) -> ModelSignature:
    return ModelSignature("tensorrt_llm", 8, {}, frozenset(), parameters)


def test_max_tokens_is_fitted_to_the_published_context() -> None:
    assert fitted_max_tokens(2048, 54, signature(max_context="2048")) == 1994
    assert fitted_max_tokens(512, 54, signature(max_context="2048")) == 512
    assert fitted_max_tokens(2048, 54, signature()) == 2048  # TensorRT-LLM publishes no context: sent as is
    assert fitted_max_tokens(2048, 54, signature(max_context="${max_context}")) == 2048


def test_plain_says_when_its_budget_was_fitted() -> None:
    fitted = Outcome(Segment("... \\boxed{4}"), 1994, FinishReason.LENGTH, fitted_max_tokens=1994)
    result = Harness(lambda request: fitted).run(build_strategy(PlainSpec(), ("2+2?",), 2048, SamplingParams()))
    assert result.stop_reason is StopReason.BUDGET and result.answer == "4"
    assert result.stop_detail == ("token budget 2048 fitted to the model's context: max_tokens 1994 "
                                  "(prompt + max_tokens <= context)")
    plain = Outcome(Segment("\\boxed{4}"), 5, FinishReason.STOP)
    unfitted = Harness(lambda request: plain).run(build_strategy(PlainSpec(), ("2+2?",), 2048, SamplingParams()))
    assert unfitted.stop_detail == ""
