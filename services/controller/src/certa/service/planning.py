"""From a validated spec to what runs: the prompt, the strategy generator, and the figures admission checks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from certa.backends.port import Backend
from certa.core.commands import Strategy
from certa.core.spec import SolveSpec
from certa.core.strategies import (
    BatchSpec,
    MajorityVoteSpec,
    SelfConsistencySpec,
    build_batch,
    build_strategy,
)
from certa.prompts import question_prompt, resolve_template


def requested_tokens(spec: SolveSpec) -> int:
    """The most path tokens a request may generate (for the tokens-per-request limit)."""
    strategy = spec.strategy
    if isinstance(strategy, BatchSpec):
        budget = strategy.allocator.budget
        by_samples = budget.samples * strategy.allocator.sample_max_tokens if budget.samples else None
        return min(value for value in (budget.tokens, by_samples) if value is not None)
    if isinstance(strategy, MajorityVoteSpec):
        return spec.token_budget * strategy.n
    if isinstance(strategy, SelfConsistencySpec):
        return spec.token_budget * strategy.max_samples
    return spec.token_budget


def parameters_fingerprint(spec: SolveSpec) -> str:
    """Identifies a request's validated parameters (its id aside), to tell a retry from a conflicting reuse."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()


class Planner:
    """Renders prompts with each model's chat template (asked of the backend once) and builds strategies."""

    def __init__(self, backends: Mapping[str, Backend], instruction: str, prompt_template: str) -> None:
        self._backends = backends
        self._instruction = instruction
        self._prompt_template = prompt_template
        self._templates: dict[tuple[str, str], str | None] = {}

    @property
    def instruction(self) -> str:
        return self._instruction

    async def question_prompt(self, backend: str, model: str, question: str) -> str:
        template = await self.chat_template(backend, model)
        return question_prompt(question, self._instruction, template)

    async def chat_template(self, backend_name: str, model: str) -> str | None:
        """The chat template prompts for `model` are rendered with (None: sent as is)."""
        key = (backend_name, model)
        if key not in self._templates:
            backend = self._backends[backend_name]
            published = await backend.chat_template(model) if self._prompt_template == "auto" else None
            self._templates[key] = resolve_template(self._prompt_template, published)
        return self._templates[key]

    async def strategy(self, spec: SolveSpec, model: str, prompt: str) -> Strategy:
        """The running strategy; refinement prompts and a batch's questions use the model's chat template."""
        chat_template = None
        strategy = spec.strategy
        if isinstance(strategy, BatchSpec) or (
            isinstance(strategy, SelfConsistencySpec) and strategy.refinement is not None
        ):
            chat_template = await self.chat_template(spec.backend, model)
        if isinstance(strategy, BatchSpec):
            prompts = [(question_prompt(text, self._instruction, chat_template),) for _, text in strategy.questions]
            return build_batch(
                strategy,
                prompts,
                spec.token_budget,
                spec.sampling,
                render=lambda message: (question_prompt(message, "", chat_template),),
            )
        return build_strategy(
            strategy,
            (prompt,),
            spec.token_budget,
            spec.sampling,
            question=None if spec.raw_prompt else spec.text,
            # A refinement message asks for \boxed{} itself: it is rendered without the instruction.
            render=lambda message: (question_prompt(message, "", chat_template),),
        )
