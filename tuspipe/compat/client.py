"""tuspy's TusClient: a tus server's creation endpoint and what every request carries."""

from __future__ import annotations

from typing import Any

from .uploader import AsyncUploader, Uploader
from .uploader.baseuploader import ClientCert

__all__ = ["TusClient"]


class TusClient:
    """A tus server: make uploaders for it with :meth:`uploader` or :meth:`async_uploader`.

    Args:
        url: the creation endpoint (``https://tus.example/files/``).
        headers: extra headers for every request, e.g. authentication (not tus's own).
        client_cert: a TLS client certificate: a PEM file holding certificate and
            (unencrypted) key, or a ``(certificate file, key file)`` pair.

    Beyond tuspy, :attr:`tuspipe_options` holds extra keyword arguments for the tuspipe calls
    this client's uploaders make: ``timeout`` and ``http_client`` go to every call,
    ``stall_timeout``, ``read_size`` and ``read_ahead`` to the uploads.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        client_cert: ClientCert | None = None,
    ) -> None:
        self.url = url
        self.headers: dict[str, str] = headers or {}
        self.client_cert = client_cert
        self.tuspipe_options: dict[str, Any] = {}

    def set_headers(self, headers: dict[str, str]) -> None:
        """Add `headers` to those sent with every request (replacing equal names)."""
        self.headers.update(headers)

    def uploader(self, *args: Any, **kwargs: Any) -> Uploader:
        """A blocking :class:`~tuspipe.compat.uploader.Uploader` for this server (arguments
        as for it, without `client`)."""
        kwargs["client"] = self
        return Uploader(*args, **kwargs)

    def async_uploader(self, *args: Any, **kwargs: Any) -> AsyncUploader:
        """An :class:`~tuspipe.compat.uploader.AsyncUploader` for this server (its methods
        are coroutines, awaited under asyncio or trio)."""
        kwargs["client"] = self
        return AsyncUploader(*args, **kwargs)
