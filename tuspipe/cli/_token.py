"""Credentials from the environment: ``TUSPIPE_TOKEN`` and ``TUSPIPE_TOKEN_COMMAND``.

A token on the command line (``--header 'Authorization: Bearer ...'``) lands in the shell's
history and in ``ps``; a token in the environment does not, and never appears in the resume
hint either. Two forms:

* ``TUSPIPE_TOKEN``: a fixed bearer token, sent as ``Authorization: Bearer <token>``.
* ``TUSPIPE_TOKEN_COMMAND``: a shell command that prints a token (``gcloud auth
  print-access-token``, ``vault read -field=token ...``). It runs before the first request and
  again whenever the server answers 401 to the token it printed last, so an upload outlives a
  token that expires. This is the library's ``auth=`` in its short form (a function returning
  headers, asked again after a 401), with ``on_response`` telling it which token was refused.

A ``--header Authorization: ...`` given on the command line wins over both (the command line
overrides the environment, as usual).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping

import tuspipe

__all__ = ["TOKEN", "TOKEN_COMMAND", "TOKEN_COMMAND_TIMEOUT", "TokenCommand", "credentials_from"]

logger = logging.getLogger("tuspipe")

TOKEN = "TUSPIPE_TOKEN"
TOKEN_COMMAND = "TUSPIPE_TOKEN_COMMAND"

#: Seconds a token command may take before the call fails.
TOKEN_COMMAND_TIMEOUT = 60.0

# How much of a failed command's standard error the message quotes.
_STDERR_EXCERPT = 300


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TokenCommand:
    """``auth=`` and ``on_response`` for a command that prints a bearer token.

    The token is kept until the server answers 401 to it; the next request then runs the
    command again. Concurrent uploads share one run: a 401 to a token that was already
    replaced does not run the command once more.

    The command runs as a plain function (the command line uses only tuspipe's public API,
    not trio's): the uploads pause while it runs, as they would wait for its token anyway.
    """

    def __init__(self, command: str, timeout: float = TOKEN_COMMAND_TIMEOUT) -> None:
        self.command = command
        self.timeout = timeout
        self.runs = 0
        self._token: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"TokenCommand({self.command!r}, runs={self.runs})"

    def __call__(self) -> Mapping[str, str]:
        """The headers for the next request (runs the command when there is no token)."""
        if self._token is None:
            self._token = self._run()
        return _bearer(self._token)

    def on_response(self, request: tuspipe.Request, response: tuspipe.Response) -> None:
        """Forget the token a 401 refused, so that the next request fetches a fresh one."""
        if response.status_code != 401 or self._token is None:
            return
        sent = {name.lower(): value for name, value in request.headers}
        if sent.get("authorization") == _bearer(self._token)["Authorization"]:
            logger.info("the server refused the token: running $%s again", TOKEN_COMMAND)
            self._token = None

    def _run(self) -> str:
        self.runs += 1
        logger.debug("running $%s for a token", TOKEN_COMMAND)
        try:
            finished = subprocess.run(
                self.command, shell=True, capture_output=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise tuspipe.UsageError(
                f"${TOKEN_COMMAND} ({self.command!r}) printed no token within {self.timeout:g} s"
            ) from None
        except OSError as error:
            raise tuspipe.UsageError(
                f"${TOKEN_COMMAND} ({self.command!r}) could not run: {error}"
            ) from None
        if finished.returncode != 0:
            said = finished.stderr.decode(errors="replace").strip()
            said = " ".join(said.split())[:_STDERR_EXCERPT]
            raise tuspipe.UsageError(
                f"${TOKEN_COMMAND} ({self.command!r}) failed with exit status "
                f"{finished.returncode}" + (f": {said}" if said else "")
            )
        token = finished.stdout.decode(errors="replace").strip()
        if not token or any(character in token for character in "\r\n"):
            raise tuspipe.UsageError(
                f"${TOKEN_COMMAND} ({self.command!r}) must print one token on one line"
                + (" (it printed nothing)" if not token else "")
            )
        return token


def credentials_from(environ: Mapping[str, str], headers: Mapping[str, str]) -> dict[str, object]:
    """The API keywords (``headers``, or ``auth`` and ``on_response``) that add the
    environment's credentials to `headers`, the command line's. Raises UsageError."""
    if any(name.lower() == "authorization" for name in headers):
        return {"headers": dict(headers)}  # the command line wins over the environment
    command = environ.get(TOKEN_COMMAND, "").strip()
    token = environ.get(TOKEN, "").strip()
    if command and token:
        raise tuspipe.UsageError(f"${TOKEN} and ${TOKEN_COMMAND} are both set: unset one of them")
    if command:
        token_command = TokenCommand(command)
        return {
            "headers": dict(headers),
            "auth": token_command,
            "on_response": token_command.on_response,
        }
    if token:
        if any(character in token for character in "\r\n"):
            raise tuspipe.UsageError(f"${TOKEN} must be one token on one line")
        return {"headers": {**headers, **_bearer(token)}}
    return {"headers": dict(headers)}
