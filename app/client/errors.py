"""The client's one exception tree: everything it raises for a run that did not go as asked.

    ClientError
    ├── InvalidRequest      the request breaks the contract; refused before anything is sent
    ├── ServerError         the server answered with an ``error`` (code, message)
    │   ├── RunNotFound     ``not_found``: no such run to resume or watch (or it expired)
    │   ├── Busy            ``busy``: too many runs; ``retry_after`` says when to try again
    │   ├── SessionBusy     ``session_busy``: the session is running another run (v3)
    │   └── NotAllowed      ``unauthorized``/``forbidden``: a token is missing or wrong
    └── ConnectionLost      the connection went away and the run could not be followed further
        └── CannotResume    ... and resuming was not possible at all (no token, not started)

Each message ends with what to do about it. A program that fails, times out or is killed is
not an error: that is the run's ``exit`` (see ``Execution``).
"""

from __future__ import annotations

# With no Retry-After from the server, wait about this long before trying a busy server again.
DEFAULT_RETRY_AFTER_S = 5.0


class ClientError(Exception):
    """Base of everything the client raises."""


class InvalidRequest(ClientError, ValueError):
    """The request would be refused by any server (a bad file path, a negative timeout...)."""


class ServerError(ClientError):
    """The server refused the request or the run failed; ``code`` is the protocol's error code."""

    advice = ""  # what to do about it, added to the message

    def __init__(self, code: str, message: str, *, status: int | None = None, retry_after: float | None = None):
        self.code = code
        self.message = message
        self.status = status  # the HTTP status, for POST /run and refused WebSocket handshakes
        self.retry_after = retry_after  # seconds, from the server's Retry-After when it sent one
        super().__init__(f"{code}: {message}{self._advice()}")

    def _advice(self) -> str:
        return f" ({self.advice})" if self.advice else ""


class RunNotFound(ServerError):
    """The run is unknown, has expired, or the token is wrong (``not_found``)."""

    advice = "check the run's id and token; a run is kept only for a short grace after it ends"


class Busy(ServerError):
    """The server cannot take this run now (``busy``). ``retry_after`` is always set: the
    server's own figure when it gave one, else a few seconds. A client already at its share of
    runs (the message says so) must first let one of its runs end."""

    def __init__(self, code: str, message: str, *, status: int | None = None, retry_after: float | None = None):
        self.own_runs = "this client already has" in message
        super().__init__(
            code, message, status=status, retry_after=DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after
        )

    def _advice(self) -> str:
        wait = f"{self.retry_after:g} s"
        if self.own_runs:
            return f" (wait for one of your runs to end, or stop one, then try again; retry in about {wait})"
        return f" (try again in {wait})"


class SessionBusy(ServerError):
    """The session already runs something (``session_busy``); that run goes on."""

    advice = "wait for the session's current run to end, or stop it, then run again"


class NotAllowed(ServerError):
    """The server wants an API token, or a different one (``unauthorized``, ``forbidden``)."""

    advice = "pass the server's API token: token=... (CLI: --token)"


class ConnectionLost(ClientError):
    """The connection ended before the run did, and the client could not get it back."""


class CannotResume(ConnectionLost):
    """The connection dropped where no resume is possible: before ``started``, or a server without tokens."""


_KINDS: dict[str, type[ServerError]] = {
    "not_found": RunNotFound,
    "busy": Busy,
    "session_busy": SessionBusy,
    "unauthorized": NotAllowed,
    "forbidden": NotAllowed,
}


def server_error(
    code: str, message: str, *, status: int | None = None, retry_after: float | None = None
) -> ServerError:
    """The most specific exception for an error ``code``."""
    return _KINDS.get(code, ServerError)(code, message, status=status, retry_after=retry_after)
