"""tuspy's API on tuspipe: replace ``tusclient`` by ``tuspipe.compat`` in your imports.

::

    from tuspipe.compat import client

    uploader = client.TusClient("https://tus.example/files/").uploader("video.mp4")
    uploader.upload()

The modules mirror tuspy 1.1.0's (``client``, ``uploader``, ``uploader.baseuploader``,
``uploader.uploader``, ``request``, ``exceptions``, ``storage.interface``,
``storage.filestorage``, ``fingerprint.interface``, ``fingerprint.fingerprint``) with the same
names, arguments and defaults. Every request is made by tuspipe's public calls, so uploads
stream with bounded memory over one connection, with timeouts and honest retries.

``AsyncUploader`` runs under asyncio, as tuspy's does, and under trio as well. Where it
differs from tuspy: its constructor does no I/O and its ``get_offset`` is a coroutine too;
``FileStorage`` writes tuspipe's journal format (not TinyDB JSON); ``upload_checksum=True``
needs a server that offers sha1; and tuspy's defects are gone (see docs/migrating.md,
"Behaviours that differ on purpose").
"""

from __future__ import annotations

import tuspipe

from . import client, exceptions, fingerprint, request, storage, uploader

__all__ = [
    "TUSPY_VERSION",
    "__version__",
    "client",
    "exceptions",
    "fingerprint",
    "request",
    "storage",
    "uploader",
]

__version__ = tuspipe.__version__
#: The tuspy release whose API this package offers.
TUSPY_VERSION = "1.1.0"
