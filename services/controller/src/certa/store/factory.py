"""Build the configured state store (the composition root's only way to get one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from certa.config import StoreSettings
from certa.store.pools.memory import MemoryBudgetPools
from certa.store.pools.port import BudgetPools
from certa.store.pools.redis import RedisBudgetPools
from certa.store.quotas.memory import MemoryQuotaLedger
from certa.store.quotas.port import QuotaLedger
from certa.store.quotas.redis import RedisQuotaLedger
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import StateStore
from certa.store.requests.redis import RedisStore

RETRY_ATTEMPTS = 8
"""Reconnection attempts per command (exponential backoff from 50 ms, at most 1 s apart): about 5 s in all, enough
to ride out a Redis restart or failover without failing the requests it serves."""


POOL_WAIT_S = 30.0
"""How long a Redis command may wait for a free pooled connection before it fails."""

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def redis_client(settings: StoreSettings) -> Redis | RedisCluster:
    """A client for the URL's topology: one server (`redis://`, `rediss://`, `unix://`), a Cluster reached through
    one of its nodes (`CERTA_REDIS_CLUSTER=true`), or the master that Sentinels name
    (`redis+sentinel://host:26379,host2:26379/SERVICE/DB`; `rediss+sentinel://` for TLS to the master)."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRY_ATTEMPTS),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_url.startswith(("rediss://", "rediss+sentinel://")):
        options["ssl_ca_certs"] = settings.redis_tls_ca_file or None
        options["ssl_certfile"] = settings.redis_tls_cert_file or None
        options["ssl_keyfile"] = settings.redis_tls_key_file or None
    if settings.redis_url.startswith(tuple(f"{scheme}://" for scheme in SENTINEL_SCHEMES)):
        return _sentinel_master(settings.redis_url, settings.redis_pool_size, options)
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, max_connections=settings.redis_pool_size, **options)
    # A blocking pool: under load a command waits for a free connection instead of failing "Too many connections".
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=max(POOL_WAIT_S, settings.redis_timeout_s),
        **options,
    )
    return Redis(connection_pool=pool)


def _sentinel_master(url: str, pool_size: int, options: dict[str, Any]) -> Redis:
    parts = urlsplit(url)
    hosts = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        hosts.append((host, int(port or 26379)))
    service, _, db = parts.path.strip("/").partition("/")
    sentinel_auth = {}
    if parts.password:
        sentinel_auth = {"password": unquote(parts.password), "username": unquote(parts.username or "") or None}
    sentinel_options = {key: options[key] for key in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(hosts, sentinel_kwargs={**sentinel_options, **sentinel_auth}, **options)
    return sentinel.master_for(service, db=int(db or 0), max_connections=pool_size)


def build_store(settings: StoreSettings, observe: Callable[[str, float], None] | None = None) -> StateStore:
    """The store `settings` name; `observe(operation, seconds)` receives the latency of each Redis operation."""
    if settings.kind == "memory":
        return MemoryStore(
            lease_s=settings.lease_s, state_ttl_s=settings.state_ttl_s, result_ttl_s=settings.result_ttl_s
        )
    # A cluster client runs the same commands and scripts; redis-py types them on `Redis` only.
    return RedisStore(
        cast(Redis, redis_client(settings)),
        prefix=settings.key_prefix,
        lease_s=settings.lease_s,
        state_ttl_s=settings.state_ttl_s,
        result_ttl_s=settings.result_ttl_s,
        observe=observe,
    )


def build_quota_ledger(store: StateStore, settings: StoreSettings) -> QuotaLedger:
    """Quotas kept where the store keeps requests: shared through Redis, or in this process."""
    if isinstance(store, RedisStore):
        return RedisQuotaLedger(store, store.client, stale_after_s=settings.state_ttl_s)
    return MemoryQuotaLedger()


def build_budget_pools(store: StateStore) -> BudgetPools:
    """Budget pools kept where the store keeps requests: shared through Redis, or in this process."""
    if isinstance(store, RedisStore):
        return RedisBudgetPools(store)
    return MemoryBudgetPools()
