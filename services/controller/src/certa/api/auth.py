"""Authentication: who is calling, as a tenant. The tenant of a request comes only from its verified identity.

Three ways to prove it, any of which may be enabled:

* **API keys** — `authorization: Bearer KEY`. The keys file (`CERTA_AUTH_API_KEYS_FILE`, a mounted Secret) holds
  only SHA-256 digests: `{"keys": [{"name": "ci", "tenant": "acme", "sha256": "<hex digest of the key>"}]}`
  (`certa auth new-key` makes one). Keys are compared by digest, in constant time.
* **JWT** — `authorization: Bearer JWT`, verified against a JWKS file (`CERTA_AUTH_JWKS_FILE`) or an OIDC
  provider's JWKS URL (`CERTA_AUTH_JWKS_URL`, refreshed in the background: `certa.api.jwks`): signature (RS*,
  ES*, PS*, EdDSA), issuer, audience, expiry; the tenant is a claim (`CERTA_AUTH_JWT_TENANT_CLAIM`, `tenant`).
* **Client certificates** — with mutual TLS (`CERTA_TLS_CLIENT_CA_FILE`) and `CERTA_AUTH_CLIENT_CERT=true`, the
  common name of the verified client certificate is the tenant.

Files are re-read when they change (`certa.watched_file`), so keys rotate without a restart.
With `CERTA_AUTH_DISABLED=true` (local development only; the server logs it loudly) nothing is verified and the
`x-certa-tenant` metadata names the tenant. Otherwise that metadata is ignored.

Every refused credential is one `certa.audit` log line: the RPC (over HTTP: `METHOD route`), the kind of
credential presented and why it was refused; never the credential itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from certa.api.jwks import RemoteJwks
from certa.config import AuthSettings
from certa.core.errors import InvalidArgument, Unauthenticated
from certa.observability.logs import AUDIT_LOGGER
from certa.store.requests.port import validate_tenant
from certa.watched_file import WatchedFiles, watched_json

log = logging.getLogger(__name__)
audit_log = logging.getLogger(AUDIT_LOGGER)

TENANT_METADATA = "x-certa-tenant"
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]
API_KEY_PREFIX = "certa_"

Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True)
class Identity:
    tenant: str
    method: str  # api-key | jwt | client-cert | unauthenticated
    subject: str  # the key's name, the token's subject, the certificate's common name


def new_api_key() -> tuple[str, str]:
    """A fresh API key and its SHA-256 digest (the only thing the keys file stores)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key_digest(key)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _parse_keys(document: Any) -> dict[str, tuple[str, str]]:
    """digest → (tenant, name)."""
    keys: dict[str, tuple[str, str]] = {}
    for entry in document["keys"]:
        digest = str(entry["sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"key {entry.get('name', '?')!r}: sha256 must be 64 hex digits")
        keys[digest] = (validate_tenant(str(entry["tenant"])), str(entry.get("name", "")))
    return keys


def _parse_jwks(document: Any) -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict(document)


class Authenticator:
    """Turns a call's metadata and TLS peer into an `Identity`, or raises `Unauthenticated`."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._keys = (
            watched_json(settings.api_keys_file, "CERTA_AUTH_API_KEYS_FILE", _parse_keys)
            if settings.api_keys_file
            else None
        )
        self._jwks: WatchedFiles[jwt.PyJWKSet] | RemoteJwks | None = None
        if settings.jwks_file:
            self._jwks = watched_json(settings.jwks_file, "CERTA_AUTH_JWKS_FILE", _parse_jwks)
        elif settings.jwks_url:
            self._jwks = RemoteJwks(settings.jwks_url, settings.jwks_refresh_s)
        if settings.disabled:
            log.warning(
                "AUTHENTICATION IS DISABLED (CERTA_AUTH_DISABLED=true): any caller may act as any tenant by "
                "naming it in %s. Use this for local development only.",
                TENANT_METADATA,
            )

    @property
    def disabled(self) -> bool:
        return self._settings.disabled

    async def start(self) -> None:
        """Fetch remote keys (a failure makes the server not ready, see `readiness_problem`; it does not raise)."""
        if isinstance(self._jwks, RemoteJwks):
            await self._jwks.start()

    async def close(self) -> None:
        if isinstance(self._jwks, RemoteJwks):
            await self._jwks.close()

    @property
    def readiness_problem(self) -> str | None:
        """Why some callers cannot be verified now (the JWKS URL gave no keys yet), or None."""
        return self._jwks.readiness_problem if isinstance(self._jwks, RemoteJwks) else None

    def identify(
        self, metadata: Metadata | None, peer: dict[str, list[bytes]] | None = None, *, rpc: str = ""
    ) -> Identity:
        """The caller's identity; a refusal raises `Unauthenticated` and is logged as an audit line."""
        try:
            return self._identify(metadata, peer)
        except Unauthenticated as error:
            audit_log.warning(
                "refused credentials on %s: %s",
                rpc or "?",
                error,
                extra={
                    "fields": {
                        "event": "credential_refused",
                        "rpc.method": rpc,
                        "credential": _presented(metadata, peer),
                        "reason": str(error),
                    }
                },
            )
            raise

    def _identify(self, metadata: Metadata | None, peer: dict[str, list[bytes]] | None) -> Identity:
        if self._settings.disabled:
            named = [str(value) for key, value in metadata or () if key == TENANT_METADATA]
            return Identity(validate_tenant(named[-1] if named else ""), "unauthenticated", "")
        token = _bearer(metadata)
        if token is not None:
            if token.count(".") == 2 and self._jwks is not None:
                return self._from_jwt(token)
            if self._keys is not None:
                return self._from_api_key(token)
            raise Unauthenticated("this server accepts no bearer tokens of that kind")
        if self._settings.client_cert and peer:
            names = peer.get("x509_common_name") or []
            if names:
                common_name = names[0].decode()
                try:
                    return Identity(validate_tenant(common_name), "client-cert", common_name)
                except InvalidArgument:
                    raise Unauthenticated("the client certificate's common name is not a valid tenant") from None
        raise Unauthenticated("credentials required: 'authorization: Bearer <API key or JWT>' or a client certificate")

    def identify_headers(
        self, headers: Mapping[str, str], peer: dict[str, list[bytes]] | None = None, *, rpc: str = ""
    ) -> Identity:
        """The same for an HTTP request: `Authorization` and `X-Certa-Tenant` are read case-insensitively; `rpc` is
        the request's `METHOD route`."""
        wanted = ("authorization", TENANT_METADATA)
        metadata = [(key.lower(), value) for key, value in headers.items() if key.lower() in wanted]
        return self.identify(metadata, peer, rpc=rpc)

    def _from_api_key(self, key: str) -> Identity:
        assert self._keys is not None
        digest = key_digest(key)
        found = None
        for known, owner in self._keys.current().items():
            if hmac.compare_digest(known, digest):
                found = owner
        if found is None:
            raise Unauthenticated("unknown API key")
        tenant, name = found
        return Identity(tenant, "api-key", name)

    def _from_jwt(self, token: str) -> Identity:
        assert self._jwks is not None
        settings = self._settings
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
            jwks: jwt.PyJWKSet = self._jwks.current()
            candidates = [key for key in jwks.keys if key_id is None or key.key_id == key_id]
            if not candidates:
                if isinstance(self._jwks, RemoteJwks):
                    self._jwks.key_missing()
                raise Unauthenticated("the token's signing key is not in the configured JWKS")
            claims = jwt.decode(
                token,
                key=candidates[0],
                algorithms=JWT_ALGORITHMS,
                audience=settings.jwt_audience or None,
                issuer=settings.jwt_issuer or None,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        tenant = claims.get(settings.jwt_tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(f"the token has no {settings.jwt_tenant_claim!r} claim naming the tenant")
        try:
            return Identity(validate_tenant(tenant), "jwt", str(claims.get("sub", "")))
        except InvalidArgument:
            raise Unauthenticated(f"the token's {settings.jwt_tenant_claim!r} claim is not a valid tenant") from None


def _presented(metadata: Metadata | None, peer: dict[str, list[bytes]] | None) -> str:
    """The kind of credential a call presented, for the audit line (never the credential)."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return "malformed-authorization"
            return "jwt" if token.strip().count(".") == 2 else "api-key"
    if peer and peer.get("x509_common_name"):
        return "client-cert"
    return "none"


def _bearer(metadata: Metadata | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be 'Bearer <credential>'")
            return token.strip()
    return None
