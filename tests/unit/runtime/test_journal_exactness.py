"""What a resumed request replays must be exactly what the backend returned: token ids that are not characters,
cached prompt tokens, and the seed a probe was sampled with (issue 17's test audit)."""

from __future__ import annotations

import pytest

from certa.core.strategies import DynasorConfig
from certa.core.types import FinishReason, Outcome, Purpose, SamplingParams, Segment
from certa.runtime.journal import Reply, ReplyKind, decode_reply, encode_reply
from certa.service import SolveService
from certa.store.requests.memory import MemoryStore
from certa.testing.scripted_backend import ScriptedBackend
from tests.unit.service.test_service import SETTINGS, spec

pytestmark = pytest.mark.unit


def test_a_journal_entry_keeps_token_ids_and_cached_prompt_tokens() -> None:
    # Ids unrelated to the characters (a real tokenizer's), and a prompt partly served from the server's cache.
    outcome = Outcome(Segment(" eighteen", (151_643, 7, 30_522)), 3, FinishReason.LENGTH, 412, 384)
    reply = Reply(ReplyKind.WAIT, 5, outcome)
    decoded = decode_reply("k", 0, encode_reply(reply))
    assert decoded == reply
    assert decoded.outcome.segment.token_ids == (151_643, 7, 30_522)
    assert (decoded.outcome.prompt_tokens, decoded.outcome.cached_prompt_tokens) == (412, 384)


async def test_probes_are_sampled_with_the_requests_seed() -> None:
    backend = ScriptedBackend()
    solver = SolveService(SETTINGS, {"scripted": backend}, MemoryStore())
    dynasor = DynasorConfig(chunk_tokens=40, certainty_threshold=2, probe_tokens=8)
    sampled = spec(strategy=dynasor, sampling=SamplingParams(temperature=0.6, seed=424242))
    await solver.wait((await solver.submit(sampled, "acme", idempotent=False)).key)
    probes = [request for request in backend.requests if request.purpose is Purpose.PROBE]
    assert probes and {request.sampling.seed for request in probes} == {424242}
