"""The client's one exception tree: everything it raises for a run that did not go as asked.

    ClientError
    ├── InvalidRequest      the request breaks the contract; refused before anything is sent
    ├── ServerError         the server answered with an ``error`` (code, message)
    │   └── RunNotFound     ``not_found``: no such run to resume or watch (or it expired)
    └── ConnectionLost      the connection went away and the run could not be followed further
        └── CannotResume    ... and resuming was not possible at all (no token, not started)

A program that fails, times out or is killed is not an error: that is the run's ``exit``.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of everything the client raises."""


class InvalidRequest(ClientError, ValueError):
    """The request would be refused by any server (a bad file path, a negative timeout...)."""


class ServerError(ClientError):
    """The server refused the request or the run failed; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status  # the HTTP status, for POST /run
        self.retry_after = retry_after  # seconds, with an HTTP 503 busy


class RunNotFound(ServerError):
    """The run is unknown, has expired, or the token is wrong (``not_found``)."""


class ConnectionLost(ClientError):
    """The connection ended before the run did, and the client could not get it back."""


class CannotResume(ConnectionLost):
    """The connection dropped where no resume is possible: before ``started``, or a server without tokens."""


def server_error(
    code: str, message: str, *, status: int | None = None, retry_after: float | None = None
) -> ServerError:
    """The most specific exception for an error ``code``."""
    kind = RunNotFound if code == "not_found" else ServerError
    return kind(code, message, status=status, retry_after=retry_after)
