"""The engine's HTTP API on the event loop, over a Unix socket or TCP with mutual TLS.

Every call the engine backend makes (create, attach, start, kill, inspect, remove, stats, listing,
info) goes through here: h11 parses, asyncio carries the bytes, no thread is held. Measured here
against httpx on the same Unix socket (create + start + remove, 40 rounds, twice): h11 ~0.6 ms of
server CPU a call, httpx ~2.1-2.8 ms. At saturation runs per second are the cores over the
machine's CPU per run, the server's included (docs/PERFORMANCE.md), so the hot path stays on h11
(python-hyper's, the parser under httpcore) rather than the heavier client around it.

The engine is reached exactly as configured: no proxy, no ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
(nothing here reads the environment); over TCP the TLS context trusts only the CA of the
configured TLS directory and presents its client certificate (``tls_context``). The attach
connection is hijacked for the run's I/O: ``app.sandbox.docker.attach`` drives it, TLS included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from app.sandbox.docker.attach import AttachStream

DEFAULT_TIMEOUT_S = 30.0
MAX_IDLE_CONNECTIONS = 16
READ_SIZE = 65536
LOCAL_SOCKET = "/var/run/docker.sock"
Address = str | tuple[str, int]  # a Unix socket's path, or host and port


class WireError(OSError):
    """The engine answered with an error status."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status} from the engine: {explanation}")
        self.status = status
        self.explanation = explanation

    @property
    def status_code(self) -> int:
        return self.status

    def __str__(self) -> str:
        return str(self.args[0])


class WireNotFound(WireError):
    """404: no such container (or image, for a create)."""


class EngineAddressError(ValueError):
    """An engine URL this backend cannot (or must not) use."""


def _error(status: int, body: bytes) -> WireError:
    try:
        explanation = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        explanation = body[:200].decode("utf-8", "replace")
    return (WireNotFound if status == 404 else WireError)(status, explanation)


def tls_context(directory: str) -> ssl.SSLContext:
    """Mutual TLS from ``directory``'s ca.pem, cert.pem and key.pem, and from nothing else."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.path.join(directory, "ca.pem"))
    context.load_cert_chain(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    return context


def parse_engine_url(url: str | None, tls_dir: str | None) -> tuple[Address, ssl.SSLContext | None]:
    """Where an engine URL points, and the TLS it needs. ``None``: ``DOCKER_HOST`` or the local
    socket. ``tcp://`` needs a TLS directory: an engine socket is root on its host."""
    url = url or os.environ.get("DOCKER_HOST") or f"unix://{LOCAL_SOCKET}"
    parts = urlsplit(url)
    if parts.scheme in ("unix", "") and (parts.path or parts.netloc):
        return (parts.path if parts.scheme else url), None
    if parts.scheme in ("tcp", "https"):
        if not tls_dir:
            raise EngineAddressError(f"{url} needs SCE_DOCKER_TLS_DIR (mutual TLS): plain TCP is refused")
        if not parts.hostname:
            raise EngineAddressError(f"{url} names no host")
        return (parts.hostname, parts.port or 2376), tls_context(tls_dir)
    raise EngineAddressError(f"{url}: only unix:// and tcp:// (with TLS) engines are supported")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False  # a kept-alive connection the engine may have closed meanwhile
        self.answered = False  # the current call's answer has begun

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class EngineWire:
    """Keep-alive HTTP/1.1 connections to one engine; one new connection per attach.

    ``api_version`` None: the engine's own (asked once, on the first call), as the docker CLI does.
    """

    def __init__(
        self,
        address: Address,
        api_version: str | None = None,
        *,
        context: ssl.SSLContext | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.context = context
        self.prefix = f"/v{api_version}" if api_version else None
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []

    @property
    def where(self) -> str:
        """The address, for messages."""
        if isinstance(self.address, str):
            return f"unix://{self.address}"
        return f"tcp://{self.address[0]}:{self.address[1]}"

    @property
    def local(self) -> bool:
        return isinstance(self.address, str)

    # -- the calls ---------------------------------------------------------------------------------
    async def create(self, body: bytes) -> str:
        data = await self.request("POST", "/containers/create", body)
        return str(json.loads(data)["Id"])

    async def start(self, container_id: str) -> None:
        await self.request("POST", f"/containers/{container_id}/start")

    async def remove(self, container_id: str) -> None:
        """Force-remove (killing it if it runs); ``WireNotFound`` if it is gone already."""
        await self.request("DELETE", f"/containers/{container_id}?force=1")

    async def kill(self, container_id: str) -> None:
        """SIGKILL; a container that has already stopped (409) or gone (404) is fine."""
        try:
            await self.request("POST", f"/containers/{container_id}/kill")
        except WireNotFound:
            pass
        except WireError as exc:
            if exc.status != 409:
                raise

    async def get_json(self, path: str) -> Any:
        return json.loads(await self.request("GET", path))

    async def inspect(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.get_json(f"/containers/{container_id}/json")
        return result

    async def stats(self, container_id: str) -> dict[str, Any]:
        """One stats sample (the engine paces it to its collection tick: up to a second)."""
        result: dict[str, Any] = await self.get_json(f"/containers/{container_id}/stats?stream=0&one-shot=1")
        return result

    async def containers(self, label: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [label]}, separators=(",", ":"))
        result: list[dict[str, Any]] = await self.get_json(f"/containers/json?all=1&filters={_quote(filters)}")
        return result

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get_json("/info")
        return result

    async def image(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.get_json(f"/images/{_quote(name)}/json")
        return result

    async def ping(self) -> bool:
        return await self.request("GET", "/_ping") == b"OK"

    async def attach(self, container_id: str) -> AttachStream:
        """The container's stdin, stdout and stderr on a connection of their own (hijacked by the
        engine after ``101 UPGRADED``); bytes read past the answer are the stream's ``early``."""
        prefix = await self._prefix()
        stream = None
        try:
            async with asyncio.timeout(self.timeout_s):
                stream = await AttachStream.connect(self.address, self.context)
                conn = h11.Connection(h11.CLIENT)
                target = f"{prefix}/containers/{container_id}/attach?stdin=1&stdout=1&stderr=1&stream=1"
                headers = [("Host", "docker"), ("Connection", "Upgrade"), ("Upgrade", "tcp"), ("Content-Length", "0")]
                await stream.send(conn.send(h11.Request(method="POST", target=target, headers=headers)) or b"")
                await stream.send(conn.send(h11.EndOfMessage()) or b"")
                body = b""
                status = 0
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.recv())
                    elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                        stream.early = conn.trailing_data[0]
                        return stream
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
                        break
                if status >= 400:
                    raise _error(status, body)
                raise WireError(status, "the engine did not hand over the stream")
        except h11.ProtocolError as exc:
            if stream is not None:
                stream.close()
            raise OSError(f"the engine's attach answer is malformed: {exc}") from exc
        except BaseException:
            if stream is not None:
                stream.close()
            raise

    async def _prefix(self) -> str:
        if self.prefix is None:
            version = json.loads(await self.request("GET", "/version", versioned=False))["ApiVersion"]
            self.prefix = f"/v{version}"
        return self.prefix

    # -- plumbing ----------------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: bytes | None = None, *, versioned: bool = True) -> bytes:
        """One call; the answer's body. Status >= 400 raises ``WireError``."""
        if versioned:
            path = await self._prefix() + path
        for attempt in (0, 1):
            conn = (self._take_idle() if attempt == 0 else None) or await self._open()
            reused = conn.used
            try:
                async with asyncio.timeout(self.timeout_s):
                    status, data = await self._exchange(conn, method, path, body)
            except (h11.ProtocolError, ConnectionError) as exc:
                conn.close()
                if reused and not conn.answered and attempt == 0:
                    # a kept-alive connection the engine had closed: it never saw the call. The
                    # engine restarted, most likely, which closed every other idle one too: the
                    # call is made again on a new connection, and the idle ones are let go
                    self.close()
                    continue
                raise OSError(f"the engine's connection failed: {exc}") from exc
            except BaseException:
                conn.close()  # cancelled or timed out mid-call: the connection's state is unknown
                raise
            self._keep(conn)
            if status >= 400:
                raise _error(status, data)
            return data
        raise AssertionError("unreachable")

    def _take_idle(self) -> _Connection | None:
        """A kept-alive connection, leaving out those the engine has closed meanwhile (its end has
        already been read by the event loop); None: a new one is needed."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        return None

    async def _open(self) -> _Connection:
        async with asyncio.timeout(self.timeout_s):
            if isinstance(self.address, str):
                reader, writer = await asyncio.open_unix_connection(self.address, limit=READ_SIZE)
            else:
                host, port = self.address
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self.context, server_hostname=host if self.context else None, limit=READ_SIZE
                )
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = [("Host", "docker"), ("Content-Length", str(len(body or b"")))]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        out = conn.h11.send(h11.Request(method=method, target=path, headers=headers))
        if body:
            out += conn.h11.send(h11.Data(data=body))
        conn.writer.write(out + conn.h11.send(h11.EndOfMessage()))
        conn.used = True
        conn.answered = False
        status = 0
        chunks: list[bytes] = []
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await conn.reader.read(READ_SIZE))
            elif isinstance(event, h11.Response):
                status = event.status_code
                conn.answered = True
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the engine closed the connection mid-answer")

    def _keep(self, conn: _Connection) -> None:
        done = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if done and len(self._idle) < MAX_IDLE_CONNECTIONS:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _quote(text: str) -> str:
    return quote(text, safe="")
