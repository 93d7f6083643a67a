"""Where a Certa controller listens and how to reach it: address, TLS and credentials.

Credentials travel as call metadata on every call of a channel made here: an API key or a JWT as
`authorization: Bearer ...`, and, for a controller whose authentication is disabled (local development only), the
tenant as `x-certa-tenant`. TLS verifies the server against the system's CAs or `ca_file`; a client certificate and
key add mutual TLS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc

Metadata = tuple[tuple[str, str], ...]
ChannelOptions = Sequence[tuple[str, Any]]

DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True)
class Target:
    """A controller and the credentials to call it with.

    `address` is host:port. `api_key` is an API key or a JWT. TLS is on when `tls` is true or any of `ca_file`,
    `client_cert_file` is set; `ca_file` trusts that CA instead of the system's; `client_cert_file` and
    `client_key_file` (PEM) go together for mutual TLS; `server_name` overrides the name checked in the server's
    certificate (when the address is an IP the certificate does not name).
    """

    address: str = DEFAULT_ADDRESS
    api_key: str = ""
    tls: bool = False
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    server_name: str = ""
    tenant: str = ""

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("address: required (host:port)")
        if bool(self.client_cert_file) != bool(self.client_key_file):
            raise ValueError("client_cert_file and client_key_file: set both for mutual TLS, or neither")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Target:
        """A target from CERTA_ADDRESS, CERTA_API_KEY, CERTA_TLS (1/true), CERTA_CA_FILE, CERTA_CLIENT_CERT_FILE,
        CERTA_CLIENT_KEY_FILE, CERTA_SERVER_NAME and CERTA_TENANT; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        return cls(
            address=env.get("CERTA_ADDRESS", DEFAULT_ADDRESS),
            api_key=env.get("CERTA_API_KEY", ""),
            tls=env.get("CERTA_TLS", "").lower() in ("1", "true", "yes"),
            ca_file=env.get("CERTA_CA_FILE", ""),
            client_cert_file=env.get("CERTA_CLIENT_CERT_FILE", ""),
            client_key_file=env.get("CERTA_CLIENT_KEY_FILE", ""),
            server_name=env.get("CERTA_SERVER_NAME", ""),
            tenant=env.get("CERTA_TENANT", ""),
        )

    @property
    def secure(self) -> bool:
        return self.tls or bool(self.ca_file or self.client_cert_file)

    @property
    def metadata(self) -> Metadata:
        """The metadata added to every call."""
        pairs = []
        if self.api_key:
            pairs.append(("authorization", f"Bearer {self.api_key}"))
        if self.tenant:
            pairs.append(("x-certa-tenant", self.tenant))
        return tuple(pairs)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for plaintext."""
        if not self.secure:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.client_key_file),
            certificate_chain=_read(self.client_cert_file),
        )

    def _options(self, options: ChannelOptions) -> list[tuple[str, Any]]:
        extra = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return [*options, *extra]

    def channel(self, options: ChannelOptions = ()) -> grpc.Channel:
        """A blocking channel whose calls carry the credentials."""
        credentials = self.channel_credentials()
        if credentials is None:
            channel = grpc.insecure_channel(self.address, options=self._options(options))
        else:
            channel = grpc.secure_channel(self.address, credentials, options=self._options(options))
        if not self.metadata:
            return channel
        return grpc.intercept_channel(channel, _SyncMetadata(self.metadata))

    def aio_channel(self, options: ChannelOptions = ()) -> grpc.aio.Channel:
        """An asyncio channel whose calls carry the credentials."""
        interceptors = [_AsyncMetadata(self.metadata)] if self.metadata else None
        credentials = self.channel_credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(self.address, options=self._options(options), interceptors=interceptors)
        return grpc.aio.secure_channel(
            self.address, credentials, options=self._options(options), interceptors=interceptors
        )


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _with_metadata(metadata: Metadata, details: Any) -> Metadata:
    return tuple(details.metadata or ()) + metadata


class _SyncDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: Metadata) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class _SyncMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the credentials to every call of a blocking channel."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_SyncDetails(details, _with_metadata(self._metadata, details)), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_SyncDetails(details, _with_metadata(self._metadata, details)), request)


class _AsyncMetadata(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds the credentials to every call of an asyncio channel."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_with_metadata(self._metadata, details)),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)
