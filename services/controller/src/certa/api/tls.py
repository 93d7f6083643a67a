"""The gRPC server's TLS credentials, read from files and re-read when they change (cert-manager rotates them).

gRPC asks for the current certificate configuration before every TLS handshake; the files are checked at most
every `RELOAD_CHECK_S` and a rotation applies to the next connection, without a restart. With a client CA, clients
must present a certificate it signed (mutual TLS).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import grpc

from certa.config import TlsSettings
from certa.core.errors import InvalidArgument

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 5.0


class RotatingServerCredentials:
    def __init__(self, settings: TlsSettings) -> None:
        self._files = [Path(p) for p in (settings.key_file, settings.cert_file, settings.client_ca_file) if p]
        self._settings = settings
        self._checked_at = time.monotonic()
        self._stamps = self._read_stamps()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(), self._fetch, require_client_authentication=bool(settings.client_ca_file)
        )

    def _read_stamps(self) -> list[tuple[float, int]]:
        return [(path.stat().st_mtime, path.stat().st_size) for path in self._files]

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        try:
            key = Path(self._settings.key_file).read_bytes()
            chain = Path(self._settings.cert_file).read_bytes()
            client_ca = Path(self._settings.client_ca_file).read_bytes() if self._settings.client_ca_file else None
        except OSError as error:
            raise InvalidArgument("CERTA_TLS_CERT_FILE", f"cannot read the TLS files: {error}") from None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        now = time.monotonic()
        if now - self._checked_at < RELOAD_CHECK_S:
            return None
        self._checked_at = now
        try:
            stamps = self._read_stamps()
            if stamps == self._stamps:
                return None
            configuration = self._configuration()
        except (OSError, InvalidArgument) as error:
            log.error("keeping the current TLS certificate: %s", error)
            return None
        self._stamps = stamps
        log.info("TLS certificate reloaded from %s", self._settings.cert_file)
        return configuration
