"""How the `certa` command reaches a controller: address, TLS and credentials, added to every call.

`CERTA_ADDRESS`, `CERTA_API_KEY` (or a JWT), `CERTA_CA_FILE` (TLS, verifying the server against this CA) and,
for mutual TLS, `CERTA_CLIENT_CERT_FILE` / `CERTA_CLIENT_KEY_FILE` are the defaults of the matching options.
`CERTA_TENANT` names the tenant only for a controller whose authentication is disabled (local development).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class ClientTarget:
    address: str = "127.0.0.1:50051"
    api_key: str = ""
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    tenant: str = ""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        if self.api_key:
            pairs.append(("authorization", f"Bearer {self.api_key}"))
        if self.tenant:
            pairs.append(("x-certa-tenant", self.tenant))
        return tuple(pairs)

    def channel(self) -> grpc.aio.Channel:
        interceptors = [_Metadata(self.metadata)] if self.metadata else None
        if not self.ca_file:
            return grpc.aio.insecure_channel(self.address, interceptors=interceptors)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca_file).read_bytes(),
            private_key=Path(self.client_key_file).read_bytes() if self.client_key_file else None,
            certificate_chain=Path(self.client_cert_file).read_bytes() if self.client_cert_file else None,
        )
        return grpc.aio.secure_channel(self.address, credentials, interceptors=interceptors)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClientTarget:
        return cls(args.address, args.api_key, args.ca_file, args.client_cert, args.client_key, args.tenant)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--address", default=env("CERTA_ADDRESS", "127.0.0.1:50051"),
                        help="the controller's gRPC address (default: $CERTA_ADDRESS or 127.0.0.1:50051)")
    parser.add_argument("--api-key", default=env("CERTA_API_KEY", ""),
                        help="API key or JWT, sent as 'authorization: Bearer' (default: $CERTA_API_KEY)")
    parser.add_argument("--ca-file", default=env("CERTA_CA_FILE", ""),
                        help="use TLS, trusting this CA (default: $CERTA_CA_FILE; plaintext when empty)")
    parser.add_argument("--client-cert", default=env("CERTA_CLIENT_CERT_FILE", ""), help="mTLS client certificate")
    parser.add_argument("--client-key", default=env("CERTA_CLIENT_KEY_FILE", ""), help="mTLS client key")
    parser.add_argument("--tenant", default=env("CERTA_TENANT", ""),
                        help="tenant, for a controller running with authentication disabled (development)")


class _Metadata(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds the credentials to every call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _with_metadata(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*(tuple(details.metadata or ()) + self._metadata)),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_metadata(details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Awaitable[Any]], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_metadata(details), request)
