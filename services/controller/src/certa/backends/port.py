"""The backend port: what the runtime needs from a model server.

One adapter per kind of server (Triton / TensorRT-LLM, OpenAI-compatible completions) plus a scripted fake in
`certa.testing.scripted_backend`. An adapter streams one generation as `Delta`s; the last delta carries `finish`.
Token counts are those the server reports, never estimated from characters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from certa.core.types import FinishReason, GenerationRequest


@dataclass(frozen=True)
class Delta:
    """A piece of one streamed generation.

    `tokens` is the number of tokens this delta adds, as the server reported it. `token_ids` is set by backends
    that return ids (then `len(token_ids) == tokens`). `log_probs` is set when the request asked for log-probs and
    the server returned them: one value per token this delta's text adds (a server that counts tokens only at the
    end, as OpenAI-compatible ones do, sends log-probs on deltas that count 0 tokens). The final delta has `finish`
    set and carries the prompt token counts when the server reports them.
    """

    text: str
    tokens: int
    token_ids: tuple[int, ...] | None = None
    finish: FinishReason | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    log_probs: tuple[float, ...] | None = None  # the log-probs of the tokens this delta adds, when asked for
    fitted_max_tokens: int | None = None  # final delta: max_tokens was lowered to this to fit the model's context


class Backend(Protocol):
    """A model server the runtime can generate from."""

    @property
    def name(self) -> str: ...

    @property
    def default_model(self) -> str: ...

    def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        """Generate for `request`, streaming deltas. Cancelling the consuming task cancels the server call.

        Raises `certa.core.errors.BackendUnavailable` when the server cannot be reached and
        `certa.core.errors.BackendError` for any error the server reports.
        """
        ...

    async def check_ready(self) -> None:
        """Raise `BackendUnavailable` with a reason when the server or its models are not ready."""
        ...

    async def served_models(self) -> frozenset[str] | None:
        """The models a request may name on this server (its catalog), or None when it keeps none."""
        ...

    async def chat_template(self, model: str) -> str | None:
        """The model's chat template (Jinja2) when the server publishes one, else None."""
        ...

    async def close(self) -> None: ...
