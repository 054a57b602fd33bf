"""A loopback TCP proxy a test controls: ``cut()`` breaks every connection through it at once.

A cut aborts both sockets (RST, no WebSocket close frame on either side), which is what a
network drop looks like to the client and to the server: the case the protocol's resume is for.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._live: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._abort_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Break every live connection now, without a close on either side."""
        self._abort_all()
        self.cuts += 1

    def _abort_all(self) -> None:
        live, self._live = self._live, []
        for client, upstream in live:
            client.transport.abort()
            upstream.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._live.append(pair)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        with contextlib.suppress(ValueError):
            self._live.remove(pair)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
