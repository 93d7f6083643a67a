"""Build the configured state store (the composition root's only way to get one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from certa.config import StoreSettings
from certa.store.base import StateStore
from certa.store.memory_store import MemoryStore
from certa.store.redis_store import RedisStore

RETRY_ATTEMPTS = 8
"""Reconnection attempts per command (exponential backoff from 50 ms, at most 1 s apart): about 5 s in all, enough
to ride out a Redis restart or failover without failing the requests it serves."""


def redis_client(settings: StoreSettings) -> Redis | RedisCluster:
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
    if settings.redis_url.startswith("rediss://"):
        options["ssl_ca_certs"] = settings.redis_tls_ca_file or None
        options["ssl_certfile"] = settings.redis_tls_cert_file or None
        options["ssl_keyfile"] = settings.redis_tls_key_file or None
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, max_connections=settings.redis_pool_size, **options)
    return Redis.from_url(settings.redis_url, max_connections=settings.redis_pool_size, **options)


def build_store(settings: StoreSettings, observe: Callable[[str, float], None] | None = None) -> StateStore:
    """The store `settings` name; `observe(operation, seconds)` receives the latency of each Redis operation."""
    if settings.kind == "memory":
        return MemoryStore(
            lease_s=settings.lease_s, state_ttl_s=settings.state_ttl_s, result_ttl_s=settings.result_ttl_s
        )
    return RedisStore(
        redis_client(settings),
        prefix=settings.key_prefix,
        lease_s=settings.lease_s,
        state_ttl_s=settings.state_ttl_s,
        result_ttl_s=settings.result_ttl_s,
        observe=observe,
    )
