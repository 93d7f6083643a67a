"""The state store: requests' records, checkpoints, leases and event streams, shared by every replica."""

from certa.store.factory import build_budget_pools, build_quota_ledger, build_store
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import DEFAULT_TENANT, RequestKey, StateStore, Status, StoredRequest, validate_tenant
from certa.store.requests.redis import RedisStore

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
