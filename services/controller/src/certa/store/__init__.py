"""The state store: requests' records, checkpoints, leases and event streams, shared by every replica."""

from certa.store.base import DEFAULT_TENANT, RequestKey, StateStore, Status, StoredRequest, validate_tenant
from certa.store.factory import build_budget_pools, build_quota_ledger, build_store
from certa.store.memory_store import MemoryStore
from certa.store.redis_store import RedisStore

__all__ = [
    "DEFAULT_TENANT",
    "MemoryStore",
    "RedisStore",
    "RequestKey",
    "StateStore",
    "Status",
    "StoredRequest",
    "build_budget_pools",
    "build_quota_ledger",
    "build_store",
    "validate_tenant",
]
