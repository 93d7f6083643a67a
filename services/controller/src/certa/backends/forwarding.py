"""A backend that wraps another: every call goes to the wrapped one; a subclass changes what it needs.

Wrappers change how calls run (a fair-queue slot, timing) without touching the adapter, so they forward the rest
of the port unchanged. `stream` closes the wrapped stream as soon as the consumer stops (cancellation included),
so the server call ends with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from certa.backends.port import Backend, Delta
from certa.core.types import GenerationRequest


class ForwardingBackend:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def name(self) -> str:
        return self._backend.name

    @property
    def default_model(self) -> str:
        return self._backend.default_model

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        async with aclosing(self._backend.stream(request, model)) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                yield delta

    async def check_ready(self) -> None:
        await self._backend.check_ready()

    async def served_models(self) -> frozenset[str] | None:
        return await self._backend.served_models()

    async def chat_template(self, model: str) -> str | None:
        return await self._backend.chat_template(model)

    async def close(self) -> None:
        await self._backend.close()
