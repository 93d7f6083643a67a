"""Serve the HTTP application on the controller's event loop, with the gRPC server's TLS settings.

With `CERTA_TLS_CERT_FILE` the port speaks HTTPS with the same certificate (re-read when it rotates: the next
handshake uses the new files); with `CERTA_TLS_CLIENT_CA_FILE` clients must present a certificate it signed.
A client that disconnects cancels its handler (`handler_cancellation`), which cancels its run.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from certa.config import TlsSettings
from certa.core.errors import InvalidArgument
from certa.watched_file import WatchedFiles


class HttpListener:
    def __init__(self, app: web.Application, address: str, tls: TlsSettings) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument("CERTA_HTTP_PORT", f"cannot listen on {address!r}")
        self._host, self._port = host, int(port)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        self._ssl = _RotatingContext(tls).context if tls.enabled else None
        self.port = 0

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise InvalidArgument("CERTA_HTTP_PORT", f"cannot listen on {self._host}:{self._port} ({error})") from None
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()


class _RotatingContext:
    """A server context whose certificate follows the files: a handshake after a change gets a fresh context."""

    def __init__(self, settings: TlsSettings) -> None:
        self._settings = settings
        files = [path for path in (settings.key_file, settings.cert_file, settings.client_ca_file) if path]
        self._watched = WatchedFiles(files, "CERTA_TLS_CERT_FILE", self._load)
        self.context = self._watched.value
        self.context.sni_callback = self._select

    def _load(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self._settings.cert_file, self._settings.key_file)
            if self._settings.client_ca_file:
                context.load_verify_locations(self._settings.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as error:
            raise InvalidArgument("CERTA_TLS_CERT_FILE", f"cannot load the TLS files: {error}") from None
        return context

    def _select(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self._watched.current()
        if current is not context:
            current.sni_callback = self._select
            connection.context = current
