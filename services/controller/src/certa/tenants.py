"""Per-tenant limits and privacy, from `CERTA_TENANTS_FILE` (reloaded when it changes):

    {"default": {"max_in_flight": 32, "tokens_per_minute": 0, "max_tokens_per_request": 0,
                 "max_batch_size": 0, "log_content": false},
     "tenants": {"acme": {"tokens_per_minute": 100000, "log_content": true,
                          "pools": {"chat": {"samples_per_second": 2.0, "burst": 60, "max_wait_s": 2.0,
                                             "exploration": 0.1}}}}}

A tenant's entry overrides the default's fields (`pools` as a whole); 0 means unlimited. `pools` are the budget
pools a self-consistency request may name (`certa.core.budget_pool`): waves of samples refilled at
`samples_per_second` up to `burst`, shared by the tenant's requests on every replica. `log_content` opts a tenant
in to generated text (probe answers) in span attributes; without it spans and logs carry only sizes, counts and
ids. `weight` (default 1) is the tenant's share of a backend's call slots when calls queue
(`CERTA_BACKEND_MAX_CONCURRENT_CALLS`); `models` lists the models the tenant may name (default: any its backend
serves). Without a file every tenant is unlimited, has no pool, weighs 1, and nothing is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from certa.core.budget_pool import PoolPolicy, validate_pool_name
from certa.core.errors import InvalidArgument
from certa.store.requests.port import validate_tenant
from certa.watched_file import watched_json


@dataclass(frozen=True)
class TenantPolicy:
    max_in_flight: int = 0  # requests running at once, over all replicas
    tokens_per_minute: int = 0  # tokens generated (paths and probes), over all replicas, sliding minute
    max_tokens_per_request: int = 0  # token budget × samples of one request
    max_batch_size: int = 0  # questions in one batch
    log_content: bool = False
    pools: Mapping[str, PoolPolicy] = field(default_factory=dict)  # budget pools, by name
    weight: int = 1  # share of a busy backend's call slots against other tenants (certa.runtime.fair_queue)
    models: frozenset[str] = frozenset()  # models the tenant may name; empty: any its backend serves


MAX_WEIGHT = 1000
_NUMBERS = {f.name for f in fields(TenantPolicy) if f.type == "int"}


def _policy(base: TenantPolicy, entry: dict[str, Any], where: str) -> TenantPolicy:
    unknown = set(entry) - {f.name for f in fields(TenantPolicy)}
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    for name, value in entry.items():
        if name in _NUMBERS and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{where}.{name}: must be a non-negative integer, got {value!r}")
        if name == "log_content" and not isinstance(value, bool):
            raise ValueError(f"{where}.log_content: must be true or false, got {value!r}")
        if name == "weight" and not 1 <= value <= MAX_WEIGHT:
            raise ValueError(f"{where}.weight: must be in [1, {MAX_WEIGHT}], got {value!r}")
        if name == "models" and (not isinstance(value, list) or not all(isinstance(m, str) and m for m in value)):
            raise ValueError(f"{where}.models: must be a list of model names, got {value!r}")
    if "models" in entry:
        entry = {**entry, "models": frozenset(entry["models"])}
    if "pools" in entry:
        entry = {**entry, "pools": _pools(entry["pools"], f"{where}.pools")}
    return replace(base, **entry)


def _pools(document: Any, where: str) -> dict[str, PoolPolicy]:
    if not isinstance(document, dict):
        raise ValueError(f"{where}: must map pool names to their settings, got {document!r}")
    pools = {}
    for name, settings in document.items():
        try:
            validate_pool_name(name, f"{where}.{name}")
        except InvalidArgument as error:
            raise ValueError(str(error)) from None
        if not isinstance(settings, dict):
            raise ValueError(f"{where}.{name}: must be an object, got {settings!r}")
        unknown = set(settings) - {f.name for f in fields(PoolPolicy)}
        if unknown:
            raise ValueError(f"{where}.{name}: unknown fields {sorted(unknown)}")
        if "samples_per_second" not in settings or "burst" not in settings:
            raise ValueError(
                f"{where}.{name}: needs samples_per_second and burst (optional: max_wait_s, exploration)"
            )
        if not isinstance(settings["burst"], int) or isinstance(settings["burst"], bool):
            raise ValueError(f"{where}.{name}.burst: must be an integer, got {settings['burst']!r}")
        policy = PoolPolicy(**settings)
        policy.validate(f"{where}.{name}")
        pools[name] = policy
    return pools


def _parse(document: Any) -> tuple[TenantPolicy, dict[str, TenantPolicy]]:
    default = _policy(TenantPolicy(), document.get("default", {}), "default")
    tenants = {
        validate_tenant(name): _policy(default, entry, f"tenants.{name}")
        for name, entry in document.get("tenants", {}).items()
    }
    return default, tenants


class TenantPolicies:
    def __init__(self, path: str = "") -> None:
        self._file = watched_json(path, "CERTA_TENANTS_FILE", _parse) if path else None

    def of(self, tenant: str) -> TenantPolicy:
        if self._file is None:
            return TenantPolicy()
        default, tenants = self._file.current()
        return tenants.get(tenant, default)
