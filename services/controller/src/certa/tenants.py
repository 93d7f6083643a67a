"""Per-tenant limits and privacy, from `CERTA_TENANTS_FILE` (reloaded when it changes):

    {"default": {"max_in_flight": 32, "tokens_per_minute": 0, "max_tokens_per_request": 0,
                 "max_batch_size": 0, "log_content": false},
     "tenants": {"acme": {"tokens_per_minute": 100000, "log_content": true}}}

A tenant's entry overrides the default's fields; 0 means unlimited. `log_content` opts a tenant in to generated
text (probe answers) in span attributes; without it spans and logs carry only sizes, counts and ids. Without a
file every tenant is unlimited and nothing is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from certa.store.base import validate_tenant
from certa.watched_file import watched_json


@dataclass(frozen=True)
class TenantPolicy:
    max_in_flight: int = 0  # requests running at once, over all replicas
    tokens_per_minute: int = 0  # tokens generated (paths and probes), over all replicas, sliding minute
    max_tokens_per_request: int = 0  # token budget × samples of one request
    max_batch_size: int = 0  # questions in one batch
    log_content: bool = False


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
    return replace(base, **entry)


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
        return tenants.get(tenant, default)  # type: ignore[no-any-return]
