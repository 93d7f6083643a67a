"""Greedy continuation with returned ids is the one-shot generation, on a server with a fresh KV cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certa_triton_local.launcher import TritonServer
from tests.contract.triton_local.test_server import CHAT, generate_ids, tokenize
from tests.contract.triton_local.triton_grpc import Client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fresh_client(fresh_triton: TritonServer) -> Iterator[Client]:
    client = Client(fresh_triton.grpc_url)
    yield client
    client.close()


def test_continuing_with_returned_ids_equals_one_greedy_call(fresh_client: Client) -> None:
    prompt = tokenize(fresh_client, CHAT.format("Write a detailed essay about the history of the printing press."))
    whole = generate_ids(fresh_client, prompt, 32)
    first = generate_ids(fresh_client, prompt, 16)
    second = generate_ids(fresh_client, prompt + first, 16)
    assert len(whole) == 32
    assert first + second == whole


@pytest.mark.asyncio
async def test_a_calibrated_path_probed_between_chunks_is_the_one_shot_path(fresh_triton: TritonServer) -> None:
    """Preset auto in recording mode (a probe with log-probs after every 16-token chunk, each probe branching off
    the path's prefix) generates exactly the tokens of one plain greedy call of the same length."""
    from certa.backends.triton.backend import TritonBackend
    from certa.config import BackendSpec
    from certa.core.exit.profile import CONSERVATIVE_DEFAULT
    from certa.core.strategies import DynasorConfig, PlainSpec, build_strategy
    from certa.core.strategies.calibrated import CalibratedExit
    from certa.core.types import SamplingParams
    from certa.runtime.driver import Driver

    prompt = (CHAT.format("Tom has 3 boxes of 12 pencils and gives away 5. How many are left? Think step by step."),)
    backend = TritonBackend(BackendSpec("local", f"triton://{fresh_triton.grpc_url}?mode=tokens"))
    record = DynasorConfig(chunk_tokens=16, probe_tokens=8, early_exit=False,
                           calibrated=CalibratedExit(CONSERVATIVE_DEFAULT, 0.5, record=True))
    try:
        one_shot = build_strategy(PlainSpec(), prompt, 64, SamplingParams())
        plain = await Driver(backend, "", token_budget=64).run(one_shot)
        probed = await Driver(backend, "", token_budget=64).run(build_strategy(record, prompt, 64, SamplingParams()))
    finally:
        await backend.close()
    traces = probed.outcome.samples[0].traces
    assert traces, "probes were taken between the chunks"
    assert all(trace.answer_log_probs is not None for trace in traces)
    assert probed.outcome.text == plain.outcome.text and probed.usage.path_tokens == plain.usage.path_tokens
