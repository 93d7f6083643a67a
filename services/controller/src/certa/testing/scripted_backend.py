"""An in-process backend driven by `ScriptedModel`, for unit tests of the runtime and the API.

It streams one token (one character) per delta, honours `[[slow:S]]` and `[[fail-after:N]]`, reports prompt
tokens, and records every request it served and every call that was cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from certa.backends.port import Delta
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import FinishReason, GenerationRequest, prompt_text
from certa.testing.scripted_model import Directives, ScriptedModel


@dataclass
class ScriptedBackend:
    model: ScriptedModel = field(default_factory=ScriptedModel)
    name: str = "scripted"
    default_model: str = "scripted"
    available: bool = True
    chat_template_source: str | None = None
    catalog: frozenset[str] | None = None  # the models it says it serves; None: keeps no catalog, any name runs
    requests: list[GenerationRequest] = field(default_factory=list)
    cancelled: list[GenerationRequest] = field(default_factory=list)

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        if not self.available:
            raise BackendUnavailable(self.name, "scripted backend switched off")
        self.requests.append(request)
        prompt = prompt_text(request.prompt)
        directives = Directives.parse(prompt)
        text, finished = self.model.completion(prompt, request.max_tokens, request.sampling.seed)
        fail_at = self.model.failure_offset(prompt, request.sampling.seed)
        try:
            for position, char in enumerate(text):
                if fail_at is not None and position >= fail_at:
                    raise BackendError(self.name, f"scripted failure after {position} tokens")
                if directives.slow_s:
                    await asyncio.sleep(directives.slow_s)
                else:
                    await asyncio.sleep(0)
                last = position == len(text) - 1
                finish = (FinishReason.STOP if finished else FinishReason.LENGTH) if last else None
                yield Delta(
                    text=char,
                    tokens=1,
                    token_ids=(ord(char),),
                    finish=finish,
                    prompt_tokens=len(prompt) if last else 0,
                )
            if not text:
                yield Delta(text="", tokens=0, token_ids=(), finish=FinishReason.STOP, prompt_tokens=len(prompt))
        except asyncio.CancelledError:
            self.cancelled.append(request)
            raise

    async def check_ready(self) -> None:
        if not self.available:
            raise BackendUnavailable(self.name, "scripted backend switched off")

    async def served_models(self) -> frozenset[str] | None:
        return self.catalog

    async def chat_template(self, model: str) -> str | None:
        return self.chat_template_source

    async def close(self) -> None:
        return None
