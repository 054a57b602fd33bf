"""A connection an engine hijacks for a container's stdin, stdout and stderr: plain or TLS.

The attach answer (``101 UPGRADED``) turns the HTTP connection into a raw byte stream. Two things
about it decide how it is driven here, on a non-blocking socket with the loop's ``sock_*`` calls:

- **stdin's end is a half-close.** With the container's StdinOnce, the engine closes the program's
  stdin when the client stops writing, and output keeps flowing. On a Unix socket that is
  ``shutdown(SHUT_WR)``. asyncio's SSL transport cannot half-close (``write_eof`` is refused), so
  TLS is done here with ``ssl.SSLObject`` over memory BIOs: ``unwrap()`` sends TLS's close_notify
  and nothing else, reading goes on, and the engine's Go ``tls.Conn`` reads the alert as EOF on
  stdin while it still writes the output (OpenSSL allows reading after a one-sided shutdown).
- **a pooled sandbox's liveness is a peek**: a waiting bootstrap writes nothing, so a readable
  socket at EOF means the container is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

RECV_SIZE = 65536


class AttachStream:
    """One attach connection: ``send``, ``recv`` (b"" at the end), ``shut_write``, ``close``."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext | None = None, server_hostname: str = "") -> None:
        sock.setblocking(False)
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = None
        if context is not None:
            self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._write_lock = asyncio.Lock()  # TLS records leave in the order they were made
        self.early = b""  # stream bytes read with the upgrade's answer
        self.closed = False
        self._shut = False

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, address: str | tuple[str, int], context: ssl.SSLContext | None) -> AttachStream:
        """A new connection to the engine (a Unix path, or host and port with TLS), handshaken."""
        loop = asyncio.get_running_loop()
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        if not isinstance(address, str) and ":" in address[0]:
            family = socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is None:
                return cls(sock)
            assert not isinstance(address, str)
            stream = cls(sock, context, address[0])
            await stream._handshake()
            return stream
        except BaseException:
            sock.close()
            raise

    async def _handshake(self) -> None:
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError("the engine closed the connection during the TLS handshake") from None
        await self._flush()

    # -- I/O -----------------------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        if self._tls is None:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
            return
        view = memoryview(data)
        while view:
            written = self._tls.write(view[:RECV_SIZE])
            view = view[written:]
            await self._flush()

    async def recv(self) -> bytes:
        """The next bytes of the stream; b"" at its end."""
        if self.early:
            data, self.early = self.early, b""
            return data
        loop = asyncio.get_running_loop()
        if self._tls is None:
            try:
                return await loop.sock_recv(self.sock, RECV_SIZE)
            except (ConnectionResetError, BrokenPipeError):
                return b""
        while True:
            try:
                return self._tls.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                if self._outgoing.pending:
                    await self._flush()
                if not await self._fill():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or an end without one
                return b""

    async def shut_write(self) -> None:
        """The end of stdin, output still flowing."""
        if self.closed or self._shut:
            return
        self._shut = True
        if self._tls is None:
            self.sock.shutdown(socket.SHUT_WR)
            return
        with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the engine's close_notify: not us
            self._tls.unwrap()
        await self._flush()

    def is_alive(self) -> bool:
        """No I/O wait: False once the engine has ended the stream (or the socket failed). Over TLS
        what has arrived is decrypted first (session tickets or an alert can wait on the socket):
        a close_notify or an end means gone; output (unexpected from a waiting bootstrap) is kept."""
        if self.closed:
            return False
        if self._tls is None:
            try:
                return self.sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                return True
            except OSError:
                return False
        try:
            while data := self.sock.recv(RECV_SIZE):
                self._incoming.write(data)
            self._incoming.write_eof()
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            got = self._tls.read(RECV_SIZE)  # b"": the engine's close_notify
        except ssl.SSLWantReadError:
            return True
        except ssl.SSLError:  # an end without close_notify, or a broken record
            return False
        self.early += got
        return bool(got)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    # -- TLS plumbing ---------------------------------------------------------------------------------
    async def _fill(self) -> bool:
        try:
            data = await asyncio.get_running_loop().sock_recv(self.sock, RECV_SIZE)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        async with self._write_lock:
            data = self._outgoing.read()
            if data:
                await asyncio.get_running_loop().sock_sendall(self.sock, data)
