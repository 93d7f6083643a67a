"""The gRPC server's TLS credentials, read from files and re-read when they change (cert-manager rotates them).

gRPC asks for the current certificate configuration before every TLS handshake; the files are watched
(`certa.watched_file`) and a rotation applies to the next connection, without a restart. With a client CA, clients
must present a certificate it signed (mutual TLS).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from certa.config import TlsSettings
from certa.core.errors import InvalidArgument
from certa.watched_file import WatchedFiles


class RotatingServerCredentials:
    def __init__(self, settings: TlsSettings) -> None:
        self._settings = settings
        files = [path for path in (settings.key_file, settings.cert_file, settings.client_ca_file) if path]
        self._watched = WatchedFiles(files, "CERTA_TLS_CERT_FILE", self._configuration)
        self._served = self._watched.value
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._served, self._fetch, require_client_authentication=bool(settings.client_ca_file)
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        try:
            key = Path(self._settings.key_file).read_bytes()
            chain = Path(self._settings.cert_file).read_bytes()
            client_ca = Path(self._settings.client_ca_file).read_bytes() if self._settings.client_ca_file else None
        except OSError as error:
            raise InvalidArgument("CERTA_TLS_CERT_FILE", f"cannot read the TLS files: {error}") from None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed since the last one served, else None (keep the current)."""
        configuration = self._watched.current()
        if configuration is self._served:
            return None
        self._served = configuration
        return configuration
