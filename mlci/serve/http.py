"""uvicorn's httptools protocol with the limits an exposed server needs.

uvicorn frames requests correctly (a body the application does not read is still parsed
and discarded, so it cannot be read as the next request), but it has no deadline for
receiving a request, no bound on header size, answers malformed requests out of turn when
earlier pipelined requests are still being answered, and closes connections while the
client is still sending (the client then gets a reset instead of the answer). This
subclass adds:

- a whole-request deadline, from the first byte of a request to the end of its body. Past
  it, a request still in its headers gets 408; one in its body is handed back to the
  application, which answers 408 (``RequestClock.refusal``); a body found malformed
  (bad chunked encoding) is answered 400 the same way;
- a bound on the request line and headers (431);
- refusals (400 malformed HTTP, 408, 431) that never overtake answers owed to earlier
  requests on the same connection: those are sent first, then the connection closes;
- a lingering close: when the connection must close while a request is still arriving,
  the answer is sent, the sending side shut, and what the client still sends is read and
  dropped (for up to ``LINGER_SECONDS``) so that the client reads the answer;
- a client that half-closes after its request still gets the answer.

Every refusal is a JSON ``{"error": ...}`` with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlci.serve.protocol import error_body

CLOCK = "mlci.clock"  # key in the ASGI scope's "extensions"
LINGER_SECONDS = 2.0


class RequestClock:
    """When a request began arriving, and why the server gave up receiving it, if it did.

    ``refusal`` is set (status, message) when the deadline passed or the body was malformed
    after the application had the request: the application answers it and the connection
    closes.
    """

    __slots__ = ("refusal", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.refusal: tuple[int, str] | None = None


_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


class _HeadersTooLarge(Exception):
    pass


class _LingeringTransport:
    """The connection's transport, whose ``close`` lingers while a request is arriving."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if self._lingering or transport.is_closing():
            return
        protocol = self._protocol
        if not protocol.receiving or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        protocol.stop_reading_requests()
        transport.write_eof()  # after the answer: the client sees the end of the response
        transport.resume_reading()
        protocol.loop.call_later(LINGER_SECONDS, transport.close)

    def force_close(self) -> None:
        self._transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request deadline, a header bound and lingering close."""

    # Set on a subclass by ``guarded_protocol``.
    request_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    on_refused: Callable[[int], None] = staticmethod(lambda status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._clock: RequestClock | None = None
        self._header_bytes = -1  # request line and headers so far; -1 outside them
        self._done = False  # no more requests are read on this connection
        self.receiving = False  # a request has begun arriving and has not ended

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = _LingeringTransport(cast(asyncio.Transport, transport), self)
        super().connection_made(cast(asyncio.Transport, wrapped))

    def stop_reading_requests(self) -> None:
        """Read no further requests: what arrives from now on is dropped."""
        self._done = True
        self._stop_clock()

    # -- the deadline --------------------------------------------------------------------

    def _start_clock(self) -> None:
        self.receiving = True
        self._clock = RequestClock(self.loop.time())
        self._timer = self.loop.call_later(self.request_timeout, self._deadline_passed)

    def _stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._clock = None

    def _deadline_passed(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self._refuse(408, f"the request was not received within {self.request_timeout:g} s")

    def _cycle_of(self, clock: RequestClock | None) -> Any:
        if clock is None:
            return None
        for cycle in (self.cycle, *(c for c, _ in self.pipeline)):
            scope: Any = None if cycle is None else cycle.scope
            if scope is not None and scope.get("extensions", {}).get(CLOCK) is clock:
                return cycle
        return None

    def _owed(self) -> list[Any]:
        """Cycles still to be answered, newest first."""
        if self.pipeline:
            return [c for c, _ in self.pipeline]
        if self.cycle is not None and not self.cycle.response_complete:
            return [self.cycle]
        return []

    # -- refusals ------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Give up on the request being received: answer ``status`` and close, after any
        answers owed to earlier requests on this connection."""
        clock = self._clock
        cycle = self._cycle_of(clock)
        self.stop_reading_requests()
        if clock is not None and cycle is not None:
            # The application has (or will have) this request: it answers the refusal.
            clock.refusal = (status, message)
            cycle.keep_alive = False
            if cycle.response_complete:
                self.transport.close()
            else:
                cycle.message_event.set()
            return
        self.on_refused(status)
        owed = self._owed()
        if owed:
            # The newest answer owed closes the connection; this request gets none.
            owed[0].keep_alive = False
            return
        body = error_body(message)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()

    # -- the parser's input and callbacks -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._unset_keepalive_if_required()
        if self._timer is None:
            self._start_clock()  # the first byte of a request starts its clock
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
            return
        except httptools.HttpParserError as exc:
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")
            else:
                reason = str(exc).strip() or type(exc).__name__
                self._refuse(400, f"invalid HTTP request ({reason[:100]})")
            return
        if self._header_bytes >= 0:
            # Also bounds a single header line still being accumulated by the parser.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's contract
        if self._done:
            return None  # closing anyway
        if self.receiving:
            self._refuse(400, "the client closed its side before the request was complete")
            return True
        owed = self._owed()
        if owed:
            # A client that half-closes after sending still reads the answers it is owed.
            owed[0].keep_alive = False
            self.stop_reading_requests()
            return True
        return None

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            raise _HeadersTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            self._start_clock()
        self._header_bytes = 0
        scope: Any = self.scope
        scope["extensions"] = {CLOCK: self._clock}

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._header_bytes = -1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_clock()
        self.receiving = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        self.receiving = False
        super().connection_lost(exc)


def guarded_protocol(
    request_timeout: float, max_header_bytes: int, on_refused: Callable[[int], None]
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type(
        "MlciHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "request_timeout": request_timeout,
            "max_header_bytes": max_header_bytes,
            "on_refused": staticmethod(on_refused),
        },
    )
