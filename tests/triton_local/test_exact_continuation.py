"""Greedy continuation with returned ids is the one-shot generation, on a server with a fresh KV cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certa_triton_local.launcher import TritonServer
from tests.triton_local.test_server import CHAT, generate_ids, tokenize
from tests.triton_local.triton_grpc import Client

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
