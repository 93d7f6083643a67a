"""The scripted backend as `certa serve` builds it for load campaigns (`scripted://`), with a fixed capacity."""

from __future__ import annotations

import asyncio

import pytest

from certa.config import BackendSpec
from certa.core.errors import InvalidArgument
from certa.core.types import GenerationRequest, SamplingParams
from certa.server import scripted_backend
from certa.testing.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.unit


def request(max_tokens: int = 5) -> GenerationRequest:
    return GenerationRequest(prompt=("How many?",), max_tokens=max_tokens, sampling=SamplingParams())


async def test_with_slots_calls_beyond_the_capacity_wait_for_one_to_finish() -> None:
    backend = ScriptedBackend(slots=1)
    events: list[str] = []

    async def call(name: str) -> None:
        events.append(f"{name} asked")
        async for _ in backend.stream(request(), "scripted"):
            events.append(f"{name} token")
        events.append(f"{name} done")

    await asyncio.gather(call("a"), call("b"))
    assert events.index("a done") < events.index("b token")  # b streamed nothing while a held the only slot
    assert events.count("b token") == 5


def test_the_scripted_url_takes_a_capacity_and_refuses_a_negative_one() -> None:
    backend = scripted_backend(BackendSpec("instant", "scripted://?slots=3"))
    assert isinstance(backend, ScriptedBackend) and backend.slots == 3
    with pytest.raises(InvalidArgument, match="slots=-1 must be >= 0"):
        scripted_backend(BackendSpec("instant", "scripted://?slots=-1"))
