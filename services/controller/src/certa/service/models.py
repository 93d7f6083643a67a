"""Which models a request may name: checked at admission, so an unknown model is INVALID_ARGUMENT before anything
is stored (never a stored, retryable-looking failure).

A request that names no model runs the backend's default (the operator's choice). A named model must be in the
tenant's `models` (tenants file) when the tenant has one, and in the backend's allowlist (`CERTA_BACKEND_MODELS`)
or, without one, among the models the backend's server serves (`Backend.served_models`: Triton's repository index
less the tokenizer steps, an OpenAI server's /v1/models), read at most every `REFRESH_S`. When the server cannot be
asked, the request is let through: its run then fails UNAVAILABLE like any request to an unreachable backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from certa.backends.port import Backend
from certa.core.errors import BackendError, InvalidArgument
from certa.tenants import TenantPolicies

log = logging.getLogger(__name__)

REFRESH_S = 30.0
"""How long a backend's catalog is trusted; a miss older than `MISS_REFRESH_S` reads it again at once."""
MISS_REFRESH_S = 2.0
LISTED = 20
"""Model names an error lists at most."""


def _listed(models: frozenset[str]) -> str:
    names = sorted(models)
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more or "none"


class ModelCatalog:
    def __init__(
        self,
        backends: Mapping[str, Backend],
        allowlists: Mapping[str, frozenset[str]],
        policies: TenantPolicies,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backends = backends
        self._allowlists = allowlists
        self._policies = policies
        self._clock = clock
        self._served: dict[str, tuple[float, frozenset[str] | None]] = {}

    async def check(self, backend: str, model: str, tenant: str) -> None:
        """`InvalidArgument` on `model` when `tenant` may not name it on `backend`."""
        if not model:
            return
        allowed_for_tenant = self._policies.of(tenant).models
        if allowed_for_tenant and model not in allowed_for_tenant:
            raise InvalidArgument("model", f"{model!r} is not one of tenant {tenant!r}'s models: "
                                  f"{_listed(allowed_for_tenant)}")
        allowed = self._allowlists.get(backend)
        if allowed is None:
            allowed = await self._catalog(backend, refresh_older_than_s=REFRESH_S)
            if allowed is not None and model not in allowed:
                allowed = await self._catalog(backend, refresh_older_than_s=MISS_REFRESH_S)
        if allowed is not None and model not in allowed:
            raise InvalidArgument("model", f"backend {backend!r} serves no model {model!r}; it serves: "
                                  f"{_listed(allowed)}")

    async def _catalog(self, backend: str, refresh_older_than_s: float) -> frozenset[str] | None:
        now = self._clock()
        cached = self._served.get(backend)
        if cached is not None and now - cached[0] < refresh_older_than_s:
            return cached[1]
        try:
            served = await self._backends[backend].served_models()
        except BackendError as error:
            log.warning("cannot list the models of backend %r; not checking model names: %s", backend, error)
            served = None
        self._served[backend] = (now, served)
        return served
