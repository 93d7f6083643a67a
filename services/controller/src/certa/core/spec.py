"""A request as the service runs it: validated, with every default resolved, in core terms."""

from __future__ import annotations

from dataclasses import dataclass

from certa.core.strategies import BatchSpec, StrategySpec
from certa.core.types import SamplingParams


@dataclass(frozen=True)
class SolveSpec:
    """A validated request. The API builds it (checking ranges and this replica's caps); the store keeps it as is,
    so a request resumed on another replica runs exactly what was accepted."""

    request_id: str
    text: str
    raw_prompt: bool
    strategy: StrategySpec | BatchSpec
    sampling: SamplingParams
    token_budget: int
    deadline_s: float
    backend: str
    model: str
