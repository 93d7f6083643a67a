"""An in-process backend driven by `ScriptedModel`, for unit tests of the runtime and the API, and the instant model
of the load campaign (`CERTA_BACKENDS=NAME=scripted://`, see `certa.server`).

It streams one token (one character) per delta, handing the event loop over before each one as a network stream
does, honours `[[slow:S]]` and `[[fail-after:N]]`, reports prompt tokens, and records every request it served and
every call that was cancelled (unless `record` is off: a long load would keep them all). It keeps the books a load
campaign checks the controller's records against: calls, tokens handed over, and the time spent in its own code
(`busy_s`, without the hand-overs); `close()` writes them as JSON to `books_path` when one is set. With `slots`, it
serves that many calls at once and the others wait in arrival order, as a model server with a fixed capacity does.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from certa.backends.port import Delta
from certa.core.errors import BackendError, BackendUnavailable
from certa.core.types import FinishReason, GenerationRequest, prompt_text
from certa.testing.scripted_model import Directives, ScriptedModel


@functools.cache
def _token_delta(char: str) -> Delta:
    """The delta of one token (character) that does not end its call; deltas are immutable, so one per character
    serves every call."""
    return Delta(text=char, tokens=1, token_ids=(ord(char),))


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
    record: bool = True
    books_path: Path | None = None
    calls: int = 0
    tokens: int = 0
    busy_s: float = 0.0
    slots: int = 0  # calls served at once, the others queued first come, first served; 0: no limit
    _capacity: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        if not self.slots:
            return self._generate(request)
        return self._generate_in_slot(request)

    async def _generate_in_slot(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        if self._capacity is None:
            self._capacity = asyncio.Semaphore(self.slots)
        async with self._capacity:
            async for delta in self._generate(request):
                yield delta

    async def _generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        if not self.available:
            raise BackendUnavailable(self.name, "scripted backend switched off")
        started = time.perf_counter()
        self.calls += 1
        if self.record:
            self.requests.append(request)
        prompt = prompt_text(request.prompt)
        directives = Directives.parse(prompt)
        text, finished = self.model.completion(prompt, request.max_tokens, request.sampling.seed)
        fail_at = self.model.failure_offset(prompt, request.sampling.seed)
        last = len(text) - 1
        self.busy_s += time.perf_counter() - started
        try:
            for position, char in enumerate(text):
                if fail_at is not None and position >= fail_at:
                    raise BackendError(self.name, f"scripted failure after {position} tokens")
                await asyncio.sleep(directives.slow_s)  # 0: hand the loop over once per token
                started = time.perf_counter()
                if position == last:
                    finish = FinishReason.STOP if finished else FinishReason.LENGTH
                    delta = Delta(text=char, tokens=1, token_ids=(ord(char),), finish=finish, prompt_tokens=len(prompt))
                else:
                    delta = _token_delta(char)
                self.tokens += 1  # counted as handed over: the consumer accounts it before it can be cancelled
                self.busy_s += time.perf_counter() - started
                yield delta
            if not text:
                yield Delta(text="", tokens=0, token_ids=(), finish=FinishReason.STOP, prompt_tokens=len(prompt))
        except asyncio.CancelledError:
            if self.record:
                self.cancelled.append(request)
            raise

    def books(self) -> dict[str, float]:
        return {"calls": self.calls, "tokens": self.tokens, "busy_s": self.busy_s}

    async def check_ready(self) -> None:
        if not self.available:
            raise BackendUnavailable(self.name, "scripted backend switched off")

    async def served_models(self) -> frozenset[str] | None:
        return self.catalog

    async def chat_template(self, model: str) -> str | None:
        return self.chat_template_source

    async def close(self) -> None:
        if self.books_path is not None:
            self.books_path.write_text(json.dumps(self.books()))
