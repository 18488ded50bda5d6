"""tuspipe's version (kept in step with pyproject.toml), and the User-Agent it sends."""

from __future__ import annotations

__all__ = ["USER_AGENT", "__version__"]

__version__ = "0.1.0"

#: The User-Agent of tuspipe's own HTTP client, so that a server's logs name the client.
USER_AGENT = f"tuspipe/{__version__}"
