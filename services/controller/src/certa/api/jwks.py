"""JWT signing keys from an OIDC provider's JWKS URL (`CERTA_AUTH_JWKS_URL`), kept fresh in the background.

The keys are fetched at start and every `CERTA_AUTH_JWKS_REFRESH_S`; a token naming a key id the set does not have
triggers an early refresh (at most every `MIN_REFETCH_S`), so a provider's key rotation is picked up without a
restart. A failed refresh keeps the last good keys and says why. Until a first fetch succeeds there are no keys:
readiness is false with the reason and JWT-authenticated calls answer UNAVAILABLE (`KeysUnavailable`); the server
does not crash. HTTPS is verified against httpx's public roots (certifi), or the bundle `SSL_CERT_FILE` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
import jwt

from certa.core.errors import CertaError

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
MIN_REFETCH_S = 10.0
RETRY_S = 5.0  # how soon a failed fetch is tried again, when the refresh interval is longer


class KeysUnavailable(CertaError):
    """No signing keys could be fetched yet: the verification cannot be done now (UNAVAILABLE)."""


class RemoteJwks:
    def __init__(self, url: str, refresh_s: float) -> None:
        self._url = url
        self._refresh_s = refresh_s
        self._keys: jwt.PyJWKSet | None = None
        self.problem: str | None = f"the JWKS at {url} has not been fetched yet"
        self._client = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S)
        self._task: asyncio.Task[None] | None = None
        self._fetched_at = float("-inf")
        self._refetch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Fetch once (a failure is kept as `problem`, not raised), then refresh in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever())

    async def close(self) -> None:
        for task in (self._task, self._refetch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.aclose()

    @property
    def readiness_problem(self) -> str | None:
        """Why JWTs cannot be verified now (no keys fetched yet), or None."""
        return self.problem if self._keys is None else None

    def current(self) -> jwt.PyJWKSet:
        if self._keys is None:
            raise KeysUnavailable(f"JWT signing keys are unavailable: {self.problem}")
        return self._keys

    def key_missing(self) -> None:
        """A token named a key id the set lacks: fetch again soon, in case the provider rotated its keys."""
        if time.monotonic() - self._fetched_at < MIN_REFETCH_S:
            return
        if self._refetch is None or self._refetch.done():
            self._refetch = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self._client.get(self._url, headers={"accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as error:
            self.problem = f"cannot fetch the JWKS at {self._url}: {type(error).__name__} {error}".rstrip()
            log.warning("%s (%s)", self.problem, "keeping the previous keys" if self._keys else "no keys yet")
            return
        if self._keys is None or {k.key_id for k in keys.keys} != {k.key_id for k in self._keys.keys}:
            log.info("JWKS from %s: key ids %s", self._url, sorted(str(k.key_id) for k in keys.keys))
        self._keys, self.problem = keys, None

    async def _refresh_forever(self) -> None:
        while True:
            wait_s = self._refresh_s if self.problem is None else min(self._refresh_s, RETRY_S)
            await asyncio.sleep(wait_s)
            await self.refresh()
