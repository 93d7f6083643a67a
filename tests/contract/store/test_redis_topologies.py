"""The Redis adapter against the other topologies redis-py reaches by URL: a master named by Sentinel, and
Redis Cluster (a single-node cluster owning every slot; the keys of a request share one hash slot anyway).
Both are real `redis-server` processes in their respective modes."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from certa.config import StoreSettings
from certa.store import RedisStore, build_store
from certa.store.requests.port import Append, Created, Finish, RequestKey, RequestRecord, Status
from certa.testing.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration


def wait_for(condition: object, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


@pytest.fixture
def sentinel(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor certa-test 127.0.0.1 {redis_server.port} 1\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: "certa-test" in _try(lambda: cli(port, "SENTINEL", "masters")), "the sentinel")
        yield port
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp_path),
            "--cluster-enabled",
            "yes",
            "--cluster-port",  # the bus port; by default port + 10000, which may be taken or out of range
            str(free_port()),
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _try(lambda: cli(port, "PING")) == "PONG", "the cluster node")
        cli(port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        wait_for(lambda: "cluster_state:ok" in cli(port, "CLUSTER", "INFO"), "the cluster to be ok")
        yield port
    finally:
        process.kill()
        process.wait()


def _try(call: object) -> str:
    try:
        return call()  # type: ignore[operator,no-any-return]
    except subprocess.CalledProcessError:
        return ""


async def exercise(store: RedisStore) -> None:
    """Create, checkpoint, finish and read back one request: every script runs on the topology."""
    key = RequestKey("acme", f"r-{uuid.uuid4().hex[:6]}")
    request = RequestRecord(key, "f", b"", "p", "plain", "b", "m", 1.0, 2.0)
    assert isinstance(await store.create(request, "replica-a"), Created)
    await store.append(key, "replica-a", Append(write=1, journal=[b"j"], events=[b"e"], checkpointed_events=1))
    await store.finish(key, "replica-a", Finish(write=2, status=Status.SUCCEEDED, summary=b"result"))
    stored = await store.read(key)
    assert stored is not None and (stored.status, stored.summary) == (Status.SUCCEEDED, b"result")
    assert [entry.is_end for entry in await store.events(key, "")] == [False, True]


async def test_a_master_named_by_sentinel(sentinel: int) -> None:
    store = build_store(StoreSettings(redis_url=f"redis+sentinel://127.0.0.1:{sentinel}/certa-test/0"))
    assert isinstance(store, RedisStore)
    await store.ping()
    await exercise(store)
    await store.close()


async def test_redis_cluster(cluster_node: int) -> None:
    store = build_store(StoreSettings(redis_url=f"redis://127.0.0.1:{cluster_node}/0", redis_cluster=True))
    assert isinstance(store, RedisStore)
    await store.ping()
    await exercise(store)
    await store.close()
