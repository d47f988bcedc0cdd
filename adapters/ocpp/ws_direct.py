"""WebSocket connections on websockets' sans-I/O protocol, driven by the bridge's own asyncio protocol.

Rules
- `serve(handler, host, port, ...)` (charger connections, `adapters.ocpp.south`) and `connect(url, ...)` (the
  CSMS, `adapters.ocpp.north`) make `DirectServerConnection`s and `DirectClientConnection`s: asyncio
  `Protocol`s of this module, on transports of `loop.create_server` / `loop.create_connection`. Each
  drives a `websockets.server.ServerProtocol` / `websockets.client.ClientProtocol` (its `protocol`)
  through websockets' public sans-I/O API only (`receive_data`, `receive_eof`, `events_received`,
  `data_to_send`, `close_expected`, `send_*`, `fail`, `accept`, `reject`, `send_response`,
  `connect`, `send_request`, `state`, `close_code`, `close_reason`, `handshake_exc`): the
  handshake, pings and pongs, the closing handshake, size limits, compression and every protocol
  error are websockets'. What this module adds:
  - the read side: the connection calls `on_message(message)` for every text message, from the
    transport's `data_received`, on the event loop's thread;
  - `write_text(text)` writes a text message synchronously (no back-pressure: the caller checks the
    transport's write buffer); `send_text(text)` writes it and waits while the transport's write buffer
    is above its high-water mark (`ConnectionEnded` once the connection is not open or ends meanwhile);
  - `last_received` (loop time) notes when the peer last sent a message or a pong (not a ping of its
    own: that proves it can send, not that it reads), for `adapters.ocpp.keepalive`, whose pings
    `ping_now()` writes synchronously.
  Both implement `adapters.connection.Connection`, the interface the driver, the keepalive and the
  hosts use.
- `listen(on_message)` starts the delivery, `stop_listening()` ends it. Messages that arrive while
  nobody listens (between the handshake and the start of the session, or after its end) are kept in
  order and handed over by the next `listen`; once `BACKLOG` wait, the connection stops reading from
  its socket until `listen` is called.
- A fragmented message is assembled before it is handed over; websockets' protocol enforces `max_size`
  over the whole message. A text message that is not valid UTF-8 fails the connection with 1007, as
  websockets' `recv()` does, and nothing more is handed over. A binary message fails it with 1003
  (unsupported data): OCPP-J is text (OCPP-J 1.6 §3, 2.0.1 part 4 §3), and a binary frame answered as
  OCPP would be a frame the peer never sent as one.
- A handshake request that websockets cannot read at all because of its request line (raw non-ASCII
  bytes in the path, a malformed line) is answered 400 before the connection closes: websockets' protocol
  itself only ends the stream, which a client sees as a network failure. A path that is not ASCII is
  answered 400 here too when websockets' parser lets it through (before 16.0).
- `on_message` must not raise. If it does anyway, the error is logged and the connection is failed with
  1011: an exception must neither escape into the transport nor pass silently.
- The server: `process_request(connection, request)` may answer the handshake itself (a `Response`,
  from `connection.respond(status, text)`); otherwise websockets' `accept` answers it and
  `select_subprotocol(connection, offered)` picks the subprotocol (None: the handshake completes
  without one). Once the connection is open, `handler(connection)` runs in a task; when it returns the
  connection is closed (1000; 1011 if it raised). A connection not open within `open_timeout` is
  aborted. `Server.close()` stops listening and closes every open connection with 1001;
  `wait_closed()` waits for them and their handlers. A handshake read once `close()` was called is
  answered 503 (websockets' rule): asyncio runs a connection's `connection_made` a loop turn after the
  listener accepted it, so one accepted just before `close()` was not among those it closed.
- The client: `connect` opens the TCP (and TLS, `ssl`/`server_hostname`) connection, through an HTTP
  proxy (`http://` or `https://`, credentials from its URL as `Proxy-Authorization: Basic`) with a
  CONNECT request when `proxy` is given, sends the upgrade request with `additional_headers`, and
  returns once the server's 101 is read, all within `open_timeout`; a refused handshake raises
  websockets' `handshake_exc` (`InvalidStatus` for an HTTP answer other than 101), a proxy that
  refuses raises `ProxyRefused` (an `OSError`). SOCKS proxies are not supported (`proxy_problem`).
  `proxy_for(url)` is the proxy the environment names for a URL (websockets' own rule: `wss`/`ws`,
  then `socks`, then `https`, then `http`; `no_proxy` honoured).
- The frame fast path. websockets' parser is only ever given whole frames once the connection is
  open (the connection owns the transport), so it always waits at a frame boundary: during the opening
  handshake it is given the HTTP head and nothing after it (a client's 101 and the server's first
  frames often share a segment), and from then on the connection splits the incoming bytes into frames
  itself. A complete frame that websockets would turn into exactly one message and nothing else (FIN
  set, text or binary, reserved bits clear, no fragmented message in progress) is unmasked and handed
  over here; any other complete frame (a control frame, a fragment, reserved bits set) is given to
  websockets' parser alone, through its `receive_data`, which answers or fails it as usual. A frame
  websockets fails at its first two bytes (an unknown opcode, masked wrongly for the side, longer than
  `max_size`) is given to it at once with every byte after it, as is everything once the connection is
  no longer open, has failed, or uses an extension (compression: known from the handshake response's
  `Sec-WebSocket-Extensions`): the fast path is then off for good on that connection. So websockets
  sees every frame that has any effect besides a message, in order, and errors are its own.
  Likewise `write_text` builds an unfragmented text frame itself when the connection is open and uses
  no extension, and leaves it to websockets' `send_text` otherwise.
- Why: per request/response pair through the bridge, websockets' generator-based parser and frame
  objects cost more CPU than the bridge's own work on the message (bench/README.md). Measured against
  the former implementation (websockets' asyncio connections, subclassed), `make bench-quick` three
  times each, interleaved, same machine: hop ratio 1.6J 2.11/2.12/1.95 -> 1.72/1.73/1.95, 2.0.1
  1.43/1.54/1.47 -> 1.38/1.29/1.34 (on the standard loop 1.75/1.69/1.69 -> 1.09/1.12/1.06 and
  1.34/1.42/1.34 -> 0.83/0.85/0.84); KiB per 2.0.1 station 34.1/35.9/35.2 -> 32.1/32.3/32.4, with
  TLS 88.9/87.2/90.4 -> 84.8/85.4/84.1.
- Turns (issue 17: no peer can starve the others). One `data_received` may bring 256 KiB, some 1,700
  small frames, and everything a message causes (the driver, the core, the answer) runs synchronously
  in the callback. So one callback hands over at most `FRAME_BUDGET` frames or `BYTE_BUDGET` bytes of
  them (those given to websockets' parser count too) on the fast path, or passes at most
  `PARSER_BUDGET` bytes to websockets' parser once the fast path is off; what is left
  is kept, in order, the connection stops reading from its socket and takes its next turn with
  `loop.call_soon`, after the callbacks already due (other connections' reads, timers, tasks). Reading
  resumes when what it kept holds no complete frame any more (unless the backlog or `drop` paused it).
  Bytes that arrive meanwhile (a TLS transport may still deliver some) wait behind what is kept. At the
  end of the stream, what is kept is handed over at once, before websockets sees the end. A closed or
  dropped connection's kept bytes are discarded, as the socket's unread ones are.
- `send_limits` (`adapters.connection.SendLimits`) bound what may wait in the bridge for this peer
  to read: set by whoever made the connection (`adapters.ocpp.south` from `[south]`, `adapters.ocpp.north` from
  `[csms]`) and enforced by the driver that writes to it (`adapters.driver`).
- `drop(code, reason)` closes at once without waiting for the peer to read: nothing more is read or
  handed over, the close frame goes after what the transport holds (the peer sees it if it ever
  reads), and the connection is aborted at the close timeout (its answer to the close is not read).
- The close timeout: whenever websockets' protocol expects the TCP connection to end
  (`close_expected()`: a closing handshake under way, a refused handshake), a timer aborts the
  connection if it has not ended `close_timeout` seconds later, so a peer that sends its close frame
  and then neither reads nor closes cannot hold the connection (and its station's session).
- A closed connection holds no reference cycle: it is freed by reference counting, not left to the
  rare full collections of `adapters.ops.gc_policy`. The connection is referenced by its transport, its
  timers and (while open) its server only; websockets' protocol holds nothing of it (the subprotocol is
  selected here, not by a callback given to the protocol). The protocol itself is a cycle by design
  (its parser, a generator suspended at its last `yield`, holds it): at `connection_lost`, when
  nothing feeds the protocol any more, that generator is closed (`_release_parser`, the one use of an
  attribute websockets does not document), and the frames of the exception that ended the handshake
  (`handshake_exc`) are cleared. Measured with the former implementation, which broke the same
  cycles (issue 17's connection storm, 200,000 connections, the bridge process): RSS +39 MB and
  rising with those cycles, +11 MB and flat without.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import http
import logging
import secrets
import ssl as ssl_module
import struct
import traceback
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.headers import parse_subprotocol
from websockets.http11 import USER_AGENT, Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI, parse_uri

from adapters.connection import DEFAULT_SEND_LIMITS, ConnectionEnded, OnMessage, SendLimits
from adapters.ops.logs import get_logger

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "BACKLOG",
    "BYTE_BUDGET",
    "DEFAULT_SEND_LIMITS",
    "FRAME_BUDGET",
    "PARSER_BUDGET",
    "DirectClientConnection",
    "DirectConnection",
    "DirectServerConnection",
    "ProxyRefused",
    "SendLimits",
    "Server",
    "connect",
    "proxy_for",
    "proxy_problem",
    "serve",
]

# Messages kept before `listen`: OCPP-J allows one call in flight per direction, so a well-behaved peer
# sends at most a few before its session starts.
BACKLOG = 16

# One turn of reading (the module rules): at most this many frames, or this many bytes of frames (the
# frame that crosses it is the last), on the fast path; at most this many bytes to websockets' parser.
# ~64 small OCPP frames cost the core a few ms; a read that brings more is finished in later turns.
FRAME_BUDGET = 64
BYTE_BUDGET = 64 << 10
PARSER_BUDGET = 8 << 10

# the transport's write buffer high-water mark (websockets' asyncio default, `write_limit`)
WRITE_LIMIT = 32 << 10
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0
SHUTTING_DOWN = "Server is shutting down.\n"  # the 503 of a handshake read while closing

# what `_split` stopped at: an incomplete frame that may be eligible (wait for more bytes); a frame
# websockets must read; the turn's budget
_WAIT, _PARSER, _SPENT = 0, 1, 2

_DATA = frozenset((Opcode.TEXT, Opcode.BINARY, Opcode.CONT))
# the opcodes of RFC 6455 §5.2 (websockets' parser fails any other at the frame's first byte)
_OPCODES = frozenset(int(opcode) for opcode in Opcode)
_CONT = int(Opcode.CONT)
# the end of an HTTP head (RFC 9112 §2.1; websockets reads lines ending in CRLF only)
_HEAD_END = b"\r\n\r\n"
_TEXT, _BINARY = int(Opcode.TEXT), int(Opcode.BINARY)
_UNSIGNED_16 = struct.Struct("!H")
_UNSIGNED_64 = struct.Struct("!Q")

_log = logging.getLogger("websockets.server")

Handler = Callable[["DirectServerConnection"], Awaitable[None]]
ProcessRequest = Callable[["DirectServerConnection", Request], Response | None]
SelectSubprotocol = Callable[["DirectServerConnection", Sequence[Subprotocol]], Subprotocol | None]


def _clear_frames(*errors: BaseException | None) -> None:
    """Drop the local variables of the frames in these exceptions' tracebacks, and in those of
    their causes and contexts (`traceback.clear_frames`; a frame still running is left alone)."""
    seen: set[int] = set()
    pending = list(errors)
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += (error.__cause__, error.__context__)


def _release_parser(protocol: ServerProtocol | ClientProtocol) -> None:
    """websockets' protocol keeps its parser, a generator suspended at its last `yield` whose frame
    holds the protocol: a reference cycle by design, left to the cyclic collector (1.3 to 2.7 KiB per
    connection, measured with tracemalloc). Once nothing feeds the protocol (the connection is lost and
    the protocol has had the end of the stream) the generator is closed, which frees its frame. The
    one attribute used here that websockets does not document; without it (another version), the
    cycle is only left to the collector."""
    parser = getattr(protocol, "parser", None)
    close = getattr(parser, "close", None)
    if close is not None:
        close()


def offered_subprotocols(headers: Headers) -> list[Subprotocol]:
    """The subprotocols a client offers (its `Sec-WebSocket-Protocol` headers; unreadable ones skipped)."""
    offered: list[Subprotocol] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        try:
            offered.extend(parse_subprotocol(value))
        except ValueError:
            continue
    return offered


def _negotiated(response: Response) -> tuple[Subprotocol | None, bool]:
    """The subprotocol and whether an extension is in use, as the 101 response says."""
    subprotocol = response.headers.get("Sec-WebSocket-Protocol")
    extended = "Sec-WebSocket-Extensions" in response.headers
    return (Subprotocol(subprotocol) if subprotocol else None), extended


class DirectConnection(asyncio.Protocol, abc.ABC):
    """What both sides share: the read path, `write_text`, closing (a WebSocket connection on the
    transport this object is the asyncio protocol of; see the module rules)."""

    # Slots, not an instance dict: thousands of these live at once.
    __slots__ = (
        "__weakref__",  # adapters.ocpp.keepalive holds connections by weak reference
        "_backlog",
        "_close_timer",
        "_closed",
        "_dropped",
        "_extended",
        "_failed",
        "_fragmented",
        "_fragments",
        "_head",
        "_in_step",
        "_max_size",
        "_on_message",
        "_paused",
        "_peer_masks",
        "_rest",
        "_splitting",
        "_turn",
        "_write_waiter",
        "_writing_paused",
        "close_timeout",
        "last_received",
        "loop",
        "ping_sent_at",
        "protocol",
        "request",
        "response",
        "send_limits",
        "subprotocol",
        "transport",
    )

    protocol: ServerProtocol | ClientProtocol
    transport: asyncio.Transport

    def __init__(
        self,
        protocol: ServerProtocol | ClientProtocol,
        *,
        max_size: int | None,
        close_timeout: float | None,
    ) -> None:
        self.protocol = protocol
        self._max_size = max_size  # the protocol's too (its limit of a message)
        self.loop = asyncio.get_running_loop()
        self.close_timeout = close_timeout
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: Subprotocol | None = None
        self._extended = False
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._on_message: OnMessage | None = None
        self._backlog: list[str] = []
        self._paused = False
        # a fragmented message being received: its opcode and its fragments so far
        self._fragments: list[bytes] = []
        self._fragmented: Opcode | None = None
        self._failed = False
        self._dropped = False
        # whether this connection splits the incoming bytes into frames itself (else websockets'
        # parser reads them), and the start of a frame it is splitting that is not complete yet
        self._splitting = False
        self._rest: bytearray | None = None
        # websockets' parser waits at a frame boundary (it has been given the HTTP head and whole
        # frames only); once it has been given anything else, the fast path stays off for good
        self._in_step = True
        # while the HTTP head is being read: its last 3 bytes so far (None: the head has ended)
        self._head: bytes | None = b""
        # the next turn of reading, while bytes read wait for it in `_rest` (the module rules)
        self._turn: asyncio.Handle | None = None
        # when the peer last sent a message or a pong (loop time; its own pings do not count: they
        # prove it can send, not that it reads), and when the keepalive pinged and still waits
        self.last_received = 0.0
        self.ping_sent_at: float | None = None
        # a client masks the frames it sends (RFC 6455 §5.3), a server does not
        self._peer_masks = isinstance(protocol, ServerProtocol)
        self.send_limits = DEFAULT_SEND_LIMITS

    # --- the transport --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (create_server)
        self.transport.set_write_buffer_limits(WRITE_LIMIT)
        self.last_received = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self.protocol
        protocol.receive_eof()  # idempotent: the protocol's state is CLOSED from here
        protocol.events_received()
        protocol.data_to_send()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._discard_unread()
        self._on_message = None
        self._backlog = []
        self._wake_writer()
        # the exceptions that ended the handshake or the parser (`close_exc`'s cause): their
        # tracebacks hold the parser's frame, which holds the protocol
        ended = protocol.close_exc if protocol.state is State.CLOSED else None
        _clear_frames(protocol.handshake_exc, ended)
        _release_parser(protocol)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- websockets' protocol -------------------------------------------------------------------

    def _websockets_reads(self, data: bytes) -> None:
        """Give `data` to websockets' protocol, then act on what it made of them."""
        if self._closed.done():
            return
        self.protocol.receive_data(data)
        self._process_events()

    def _process_events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode in _DATA:
                    self._data_frame(event)
                elif event.opcode is Opcode.PONG:
                    self.last_received = self.loop.time()
                # websockets answers a ping and a close itself (in `data_to_send`)
            else:
                self._handshake_event(event)
        self._send_data()

    @abc.abstractmethod
    def _handshake_event(self, event: Request | Response) -> None:
        """The side's part of the opening handshake (the server's answer, the client's check)."""

    def _send_data(self) -> None:
        """Write what websockets' protocol has for the peer; watch the close timeout."""
        transport = self.transport
        for data in self.protocol.data_to_send():
            if transport.is_closing():
                continue
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the end of the stream: half-close
                transport.write_eof()
            else:  # TLS cannot half-close; the connection is expected to end anyway
                transport.close()
        if self._close_timer is None and self.protocol.close_expected():
            self._watch_close(self.close_timeout)

    def _watch_close(self, timeout: float | None) -> None:
        if self._close_timer is None and timeout is not None and not self._closed.done():
            self._close_timer = self.loop.call_later(timeout, self._close_timeout_passed)

    def _close_timeout_passed(self) -> None:
        self._close_timer = None
        if not self._closed.done():
            self.transport.abort()

    # --- the listener -------------------------------------------------------------------------

    def listen(self, on_message: OnMessage) -> None:
        """Hand every message to `on_message` from now on, starting with those that waited."""
        if self._on_message is not None:
            raise RuntimeError("this connection already has a listener")
        self._on_message = on_message
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            self._deliver(message)
        if self._paused and not self._dropped:
            self._paused = False
            if self._turn is None and not self._closed.done():  # else at the end of the turns
                self.transport.resume_reading()

    def stop_listening(self) -> None:
        """Keep what arrives from now on (up to `BACKLOG`, then stop reading), as before `listen`."""
        self._on_message = None

    # --- the rest of `adapters.connection.Connection` -----------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername")

    @property
    def close_code(self) -> int | None:
        sent = self._unanswered_close()
        return sent.code if sent is not None else self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        sent = self._unanswered_close()
        return sent.reason if sent is not None else self.protocol.close_reason

    def _unanswered_close(self) -> Any:
        """The close frame this side sent when the peer ended the connection without answering it
        (websockets then reports 1006, abnormal closure): the bridge's reason is the one to log, e.g.
        1009 for a frame over the size limit or 1008 for a peer that did not read."""
        if self.protocol.state is not State.CLOSED:
            return None
        ended = self.protocol.close_exc
        return ended.sent if ended.rcvd is None else None

    @property
    def write_high_water(self) -> int:
        return self.transport.get_write_buffer_limits()[1]

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    async def wait_closed(self) -> None:
        """Until the connection has ended (its TCP connection is closed)."""
        await asyncio.shield(self._closed)

    async def send_text(self, text: str) -> None:
        """Write `text`, then wait while the write buffer is above its high-water mark; raises
        `ConnectionEnded` when the connection is not open, or ends while the write waits."""
        if self.protocol.state is not State.OPEN:
            raise ConnectionEnded(f"the connection is {self.protocol.state.name.lower()}")
        self.write_text(text)
        while self._writing_paused and not self._closed.done():
            if self._write_waiter is None:
                self._write_waiter = self.loop.create_future()
            await asyncio.shield(self._write_waiter)
        if self._closed.done():
            raise ConnectionEnded("the connection ended while the write waited")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake (bounded by the close timeout); returns once the connection ended."""
        state = self.protocol.state
        if state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._send_data()
        elif state is State.CONNECTING and not self._closed.done():
            self.transport.abort()
        self._watch_close(self.close_timeout)
        await self.wait_closed()

    # --- writing ------------------------------------------------------------------------------

    def ping_now(self) -> bool:
        """Write a ping now (`adapters.ocpp.keepalive`); False when the connection is not open. Its pong
        is not matched: the next pong or message proves the peer alive (`last_received`)."""
        if self.protocol.state is not State.OPEN:
            return False
        self.protocol.send_ping(b"")
        self._send_data()
        return True

    def drop(self, code: int, reason: str) -> None:
        """Close now, without waiting for the peer to read what is buffered (see the module rules)."""
        self._failed = self._dropped = True
        self._backlog = []
        self._discard_unread()
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._send_data()
        if not self._paused and not self.transport.is_closing():
            # what it sends from now on is not read: a flood costs the loop nothing more
            self._paused = True
            self.transport.pause_reading()
        self._watch_close(self.close_timeout or 0.0)

    def write_text(self, text: str) -> None:
        """Write `text` as one text message now; skipped unless the connection is open."""
        if self.protocol.state is not State.OPEN or self.transport.is_closing():
            return
        payload = text.encode()
        if self._extended:  # compression: websockets frames it
            self.protocol.send_text(payload)
            self._send_data()
            return
        length = len(payload)
        if self._peer_masks:  # this is the server: its frames are not masked
            if length < 126:
                self.transport.write(bytes((0x81, length)) + payload)
            elif length < 65536:
                self.transport.write(b"\x81\x7e" + _UNSIGNED_16.pack(length) + payload)
            else:
                self.transport.write(b"\x81\x7f" + _UNSIGNED_64.pack(length) + payload)
            return
        mask = secrets.token_bytes(4)
        if length < 126:
            head = bytes((0x81, 0x80 | length))
        elif length < 65536:
            head = b"\x81\xfe" + _UNSIGNED_16.pack(length)
        else:
            head = b"\x81\xff" + _UNSIGNED_64.pack(length)
        self.transport.write(head + mask + apply_mask(payload, mask))

    # --- reading: the fast path, in turns ----------------------------------------------------------

    @property
    def holds_unread(self) -> bool:
        """Whether bytes read from the socket wait for this connection's next turn (module rules)."""
        return self._turn is not None

    def data_received(self, data: bytes) -> None:
        rest = self._rest
        if rest is None:
            self._read(data)
            return
        rest += data
        if self._turn is None:  # else they wait behind what is kept, for the next turn
            self._rest = None
            self._read(rest)

    def eof_received(self) -> bool | None:
        # what is kept first, in order, then the end of the stream
        while self._turn is not None:
            self._turn.cancel()
            self._turn = None
            rest, self._rest = self._rest, None
            if rest is not None:
                self._read(rest)
        self._hand_over()
        if not self._closed.done():
            self.protocol.receive_eof()
            self._process_events()
        # websockets' closing handshake ends the connection: nothing is written after the peer's
        # end of stream, so the transport closes itself (False)
        return None

    def _read(self, buffer: bytes | bytearray) -> None:
        """One turn's reading of `buffer` (what arrived, after what was kept): the fast path while it
        lasts, else websockets' parser; what the budget leaves is kept for the next turn."""
        if self._head is not None:
            taken = self._read_head(buffer)
            if taken == len(buffer):
                return
            buffer = buffer[taken:]
            if self.protocol.state is not State.OPEN:
                # what follows a refused or failed handshake (or a response's body): websockets
                # reads it, and everything after it
                self._in_step = False
        position = 0
        if self._splitting or self._may_split():
            self._splitting = True
            position, stop = self._split(buffer)
            if self._dropped:  # dropped meanwhile: read no more
                return
            if stop == _WAIT:
                if position == len(buffer):  # the usual end of a read: every frame complete
                    self._rest = None
                else:
                    self._keep(buffer, position, turn=False)
                return
            if stop == _SPENT:
                self._keep(buffer, position, turn=True)
                return
            # websockets' parser reads every byte from this frame on, for good
            self._splitting = self._in_step = False
            if position == len(buffer):
                self._rest = None
                return
        end = position + PARSER_BUDGET
        if position == 0 and len(buffer) <= PARSER_BUDGET:
            self._websockets_reads(buffer if type(buffer) is bytes else bytes(buffer))
            self._keep(buffer, len(buffer), turn=False)
            return
        self._websockets_reads(bytes(memoryview(buffer)[position:end]))
        if self._dropped:
            return
        self._keep(buffer, end, turn=end < len(buffer))

    def _read_head(self, buffer: bytes | bytearray) -> int:
        """The opening handshake: websockets reads the HTTP head and nothing after it, so its parser
        waits at a frame boundary once the connection is open. Returns the bytes of `buffer` taken."""
        tail = self._head or b""
        index = (tail + bytes(buffer)).find(_HEAD_END)
        if index < 0:
            self._head = (tail + bytes(buffer[-3:]))[-3:]
            self._websockets_reads(bytes(buffer))
            return len(buffer)
        self._head = None
        end = index + len(_HEAD_END) - len(tail)
        self._websockets_reads(bytes(buffer[:end]))
        return end

    def _keep(self, buffer: bytes | bytearray, position: int, *, turn: bool) -> None:
        """Keep `buffer` from `position` on; with `turn`, read it in the next turn, else wait for more."""
        if position >= len(buffer) or self._closed.done():
            self._rest = None
        elif type(buffer) is bytearray:
            del buffer[:position]
            self._rest = buffer
        else:
            self._rest = bytearray(memoryview(buffer)[position:])
        if turn and self._turn is None and self._rest is not None:
            self._turn = self.loop.call_soon(self._next_turn)
            self.transport.pause_reading()

    def _next_turn(self) -> None:
        self._turn = None
        rest, self._rest = self._rest, None
        if self.transport.is_closing():
            return
        if rest is not None:
            self._read(rest)
        if self._turn is None and not self._paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def _discard_unread(self) -> None:
        """Closed or dropped: what is kept is not read, as what the socket holds is not."""
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        self._rest = None

    def _may_split(self) -> bool:
        """Whether this connection may split the incoming bytes into frames itself: websockets'
        parser waits at a frame boundary, the connection is open, uses no extension and has not
        failed."""
        return (
            self._in_step
            and self.protocol.state is State.OPEN
            and not self._extended
            and not self._failed
        )

    def _split(self, buffer: bytes | bytearray) -> tuple[int, int]:
        """Read the frames at the start of `buffer`, within one turn's budget: an eligible one is
        handed over here, any other whole frame is given to websockets' parser alone. Returns how
        many bytes they took, and why it stopped: `_WAIT` (the bytes after them begin a frame that is
        not complete yet: they wait for more), `_PARSER` (websockets reads them, and every byte after
        them, for good) or `_SPENT`."""
        protocol = self.protocol
        limit = self._max_size
        masked = self._peer_masks
        end = len(buffer)
        position = 0
        frames = FRAME_BUDGET
        while True:
            if protocol.state is not State.OPEN or self._failed:
                return position, _PARSER  # closing or failed: websockets reads what follows
            if end - position < 2:
                return position, _WAIT
            if not frames or position >= BYTE_BUDGET:
                return position, _SPENT
            head1, head2 = buffer[position], buffer[position + 1]
            opcode = head1 & 0x0F
            if opcode not in _OPCODES or (head2 & 0x80 == 0x80) != masked:
                return position, _PARSER  # websockets fails it at its first two bytes
            length = head2 & 0x7F
            start = position + 2
            if length == 126:
                if end < start + 2:
                    return position, _WAIT
                (length,) = _UNSIGNED_16.unpack_from(buffer, start)
                start += 2
            elif length == 127:
                if end < start + 8:
                    return position, _WAIT
                (length,) = _UNSIGNED_64.unpack_from(buffer, start)
                start += 8
            if limit is not None:
                room = limit
                if opcode == _CONT:
                    room -= sum(map(len, self._fragments))
                if length > room:
                    return position, _PARSER  # websockets fails it at once, without its payload
            if masked:
                start += 4
            stop = start + length
            if end < stop:
                return position, _WAIT  # wait for the rest of this frame
            frames -= 1
            if (
                head1 & 0xF0 == 0x80  # FIN, no reserved bit
                and opcode in (_TEXT, _BINARY)
                and self._fragmented is None
            ):
                if masked:
                    payload = apply_mask(buffer[start:stop], buffer[start - 4 : start])
                else:
                    payload = bytes(buffer[start:stop])
                position = stop
                self._message(Opcode.TEXT if opcode == _TEXT else Opcode.BINARY, payload)
            else:
                # a control frame, a fragment, a frame with reserved bits: websockets reads it, and
                # answers or fails it as usual; its parser is at the next frame's start again
                frame = bytes(buffer[position:stop])
                position = stop
                self._websockets_reads(frame)

    def _hand_over(self) -> None:
        """From here websockets' parser reads every byte, starting with those this connection holds."""
        rest, self._rest = self._rest, None
        self._splitting = self._in_step = False
        if rest:
            self._websockets_reads(bytes(rest))

    # --- reading: messages from websockets' parser -----------------------------------------------

    def _data_frame(self, frame: Frame) -> None:
        if self._failed:
            return
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            if self._fragmented is None:  # websockets' protocol never lets this through
                return
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            opcode, data = self._fragmented, b"".join(self._fragments)
            self._fragmented, self._fragments = None, []
        elif not frame.fin:
            self._fragmented, self._fragments = opcode, [bytes(frame.data)]
            return
        else:
            data = bytes(frame.data)
        self._message(opcode, data)

    # --- handing messages over ------------------------------------------------------------------

    def _message(self, opcode: Opcode, data: bytes) -> None:
        if self._failed:
            return
        self.last_received = self.loop.time()
        if opcode is not Opcode.TEXT:
            self._fail(CloseCode.UNSUPPORTED_DATA, "OCPP-J messages are text frames")
            return
        try:
            message = data.decode()
        except UnicodeDecodeError as exc:
            self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            return
        if self._on_message is None:
            self._backlog.append(message)
            if len(self._backlog) >= BACKLOG and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        self._deliver(message)

    def _deliver(self, message: str) -> None:
        if self._failed:
            return
        assert self._on_message is not None
        try:
            self._on_message(message)
        except Exception:  # noqa: BLE001 - never into the transport, never silent
            get_logger().exception("websocket.listener_failed")
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _fail(self, code: CloseCode, reason: str) -> None:
        """Fail the connection as websockets' `recv()` does: no more messages, close with `code`."""
        self._failed = True
        self._backlog = []
        if self.protocol.state is State.OPEN:
            self.protocol.fail(code, reason)
            self._send_data()


# --- the server -------------------------------------------------------------------------------------


class DirectServerConnection(DirectConnection):
    """A charger's connection to the bridge (made by `serve`)."""

    __slots__ = ("_open_timer", "_server")

    def __init__(self, server: Server) -> None:
        protocol = ServerProtocol(
            extensions=enable_server_permessage_deflate(None) if server.compression else None,
            max_size=server.max_size,
        )
        super().__init__(protocol, max_size=server.max_size, close_timeout=server.close_timeout)
        self._server: Server | None = server
        self._open_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self._server is not None
        self._server.connections.add(self)
        if self._server.open_timeout is not None:
            self._open_timer = self.loop.call_later(
                self._server.open_timeout, self._open_timeout_passed
            )

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        server, self._server = self._server, None
        if server is not None:
            server.connections.discard(self)

    def _open_timeout_passed(self) -> None:
        self._open_timer = None
        if self.protocol.state is State.CONNECTING and not self._closed.done():
            self.transport.abort()

    def respond(self, status: http.HTTPStatus | int, text: str) -> Response:
        """An HTTP answer to the handshake instead of the upgrade (for `process_request`)."""
        protocol = self.protocol
        assert isinstance(protocol, ServerProtocol)
        return protocol.reject(status, text)

    def _handshake_event(self, event: Request | Response) -> None:
        protocol = self.protocol
        server = self._server
        if not isinstance(event, Request) or not isinstance(protocol, ServerProtocol):
            return
        if server is None:
            return
        self.request = event
        response: Response | None = None
        if not event.path.isascii():
            # a request-target is ASCII (RFC 9112 §3.2); websockets refuses other bytes in its
            # request line since 16.0, and hands them over before
            response = protocol.reject(http.HTTPStatus.BAD_REQUEST, "Bad request line.\n")
        elif server.process_request is not None:
            try:
                response = server.process_request(self, event)
            except Exception:  # noqa: BLE001 - answered 500, logged
                get_logger().exception("websocket.process_request_failed")
                response = protocol.reject(
                    http.HTTPStatus.INTERNAL_SERVER_ERROR,
                    "Failed to open a WebSocket connection.\n",
                )
        if response is None:
            response = protocol.accept(event)
            if response.status_code == 101 and server.select_subprotocol is not None:
                chosen = server.select_subprotocol(self, offered_subprotocols(event.headers))
                if chosen is not None:
                    response.headers["Sec-WebSocket-Protocol"] = chosen
        if response.status_code == 101 and server.closing:
            # accepted by the listener just before `close()`, its `connection_made` a turn later: it
            # was not among the connections closed then, so it is refused (websockets' own rule)
            response = protocol.reject(http.HTTPStatus.SERVICE_UNAVAILABLE, SHUTTING_DOWN)
        self.response = response
        protocol.send_response(response)
        if response.status_code == 101 and protocol.state is State.OPEN:
            self.subprotocol, self._extended = _negotiated(response)
            if self._open_timer is not None:
                self._open_timer.cancel()
                self._open_timer = None
            server.opened(self)

    def _send_data(self) -> None:
        exc = self.protocol.handshake_exc
        # why websockets could not read a request (its InvalidMessage's cause; before 14.0 the
        # parser's own exception)
        cause = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
        if self.request is None and isinstance(cause, ValueError):  # not EOFError: the client left
            # websockets gave up on the request line and queued only the end of the stream: a 400
            # goes first (once: what follows is discarded)
            if self.protocol.data_to_send() and not self.transport.is_closing():
                response = self.respond(http.HTTPStatus.BAD_REQUEST, "Bad request line.\n")
                self.transport.write(response.serialize())
                self.transport.close()
            return
        super()._send_data()


class Server:
    """The charger-facing listener of `serve` (see the module rules)."""

    def __init__(
        self,
        handler: Handler,
        *,
        process_request: ProcessRequest | None,
        select_subprotocol: SelectSubprotocol | None,
        compression: str | None,
        max_size: int | None,
        open_timeout: float | None,
        close_timeout: float | None,
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.select_subprotocol = select_subprotocol
        self.compression = compression == "deflate"
        self.max_size = max_size
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.connections: set[DirectServerConnection] = set()
        self.closing = False  # `close()` was called: handshakes read from now on are refused 503
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server is not None else ()

    def opened(self, connection: DirectServerConnection) -> None:
        task = asyncio.get_running_loop().create_task(self._session(connection))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _session(self, connection: DirectServerConnection) -> None:
        try:
            await self.handler(connection)
        except Exception:  # noqa: BLE001 - logged, the connection failed with 1011
            get_logger().exception("websocket.handler_failed")
            await connection.close(CloseCode.INTERNAL_ERROR)
        else:
            await connection.close()

    def close(self, close_connections: bool = True) -> None:
        """Stop listening; with `close_connections`, close every open connection with 1001 and abort
        those still in their opening handshake."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        if not close_connections:
            return
        loop = asyncio.get_running_loop()
        for connection in list(self.connections):
            if connection.protocol.state is State.CONNECTING:
                connection.transport.abort()
                continue
            task = loop.create_task(connection.close(CloseCode.GOING_AWAY))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def wait_closed(self) -> None:
        """Until the listener is closed and every connection and session has ended."""
        if self.server is not None:
            await self.server.wait_closed()
        while self._sessions or self._closing or self.connections:
            waits: list[Awaitable[Any]] = [*self._sessions, *self._closing]
            waits += [connection.wait_closed() for connection in self.connections]
            await asyncio.gather(*waits, return_exceptions=True)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


async def serve(
    handler: Handler,
    host: str | None,
    port: int,
    *,
    process_request: ProcessRequest | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    compression: str | None = "deflate",
    max_size: int | None = 1 << 20,
    open_timeout: float | None = OPEN_TIMEOUT,
    close_timeout: float | None = CLOSE_TIMEOUT,
    backlog: int = 100,
    ssl: ssl_module.SSLContext | None = None,
) -> Server:
    """Listen for WebSocket connections on `host:port` (see the module rules)."""
    server = Server(
        handler,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        compression=compression,
        max_size=max_size,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
    )
    server.server = await asyncio.get_running_loop().create_server(
        lambda: DirectServerConnection(server), host, port, backlog=backlog, ssl=ssl
    )
    return server


# --- the client -------------------------------------------------------------------------------------


class DirectClientConnection(DirectConnection):
    """The bridge's connection to the CSMS (made by `connect`)."""

    __slots__ = ("_headers", "_opened")

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        subprotocols: Sequence[Subprotocol] | None = None,
        additional_headers: Mapping[str, str] | None = None,
        compression: str | None = "deflate",
        max_size: int | None = 1 << 20,
        close_timeout: float | None = CLOSE_TIMEOUT,
    ) -> None:
        protocol = ClientProtocol(
            uri,
            extensions=enable_client_permessage_deflate(None) if compression == "deflate" else None,
            subprotocols=subprotocols,
            max_size=max_size,
        )
        super().__init__(protocol, max_size=max_size, close_timeout=close_timeout)
        self._headers = additional_headers
        self._opened: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        protocol = self.protocol
        assert isinstance(protocol, ClientProtocol)
        request = protocol.connect()
        if self._headers is not None:
            request.headers.update(self._headers)
        request.headers.setdefault("User-Agent", USER_AGENT)
        self._headers = None
        self.request = request
        protocol.send_request(request)
        self._send_data()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._opened.done():
            error = self.protocol.handshake_exc or ConnectionError(
                f"the connection ended during the opening handshake: {exc or 'closed'}"
            )
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved: `connect` may have given up already

    def _handshake_event(self, event: Request | Response) -> None:
        if not isinstance(event, Response) or self._opened.done():
            return
        self.response = event
        if self.protocol.handshake_exc is not None or self.protocol.state is not State.OPEN:
            return  # `_send_data` fails the handshake
        self.subprotocol, self._extended = _negotiated(event)
        self._opened.set_result(None)

    def _send_data(self) -> None:
        super()._send_data()
        exc = self.protocol.handshake_exc
        if exc is not None and not self._opened.done():
            self._opened.set_exception(exc)
            self._opened.exception()
            self.transport.close()

    async def opened(self) -> None:
        """Until the server's 101 has been read; raises why the handshake failed."""
        await asyncio.shield(self._opened)


class ProxyRefused(ConnectionError):
    """The HTTP proxy did not open the tunnel (its status line), or could not be reached."""


class _Tunnel(asyncio.Protocol):
    """A CONNECT request through an HTTP proxy, until its answer's head has been read."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self._head += data
        end = self._head.find(_HEAD_END)
        if end < 0:
            if len(self._head) > 16 << 10:
                self.answered.set_exception(ProxyRefused("the proxy's answer is too long"))
            return
        status_line = bytes(self._head[: self._head.find(b"\r\n")]).decode("latin-1")
        parts = status_line.split(" ", 2)
        if (
            len(parts) >= 2
            and parts[0].startswith("HTTP/1.")
            and parts[1].isdigit()
            and 200 <= int(parts[1]) < 300
            and end + len(_HEAD_END)
            == len(self._head)  # nothing from the server before the request
        ):
            self.answered.set_result(None)
            return
        self.answered.set_exception(ProxyRefused(f"the proxy answered {status_line!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ProxyRefused(f"the proxy closed the connection: {exc}"))


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (websockets' rule: the module rules), or None."""
    uri = parse_uri(url)
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    schemes = ["wss", "socks", "https"] if uri.secure else ["ws", "socks", "https", "http"]
    for scheme in schemes:
        proxy = proxies.get(scheme)
        if proxy is not None:
            if scheme == "socks" and proxy.startswith("http://"):
                proxy = "socks5h://" + proxy[len("http://") :]
            return proxy
    return None


def proxy_problem(proxy: str) -> str | None:
    """Why `proxy` cannot be used (None: it can): only HTTP CONNECT proxies are supported."""
    scheme = urllib.parse.urlsplit(proxy).scheme.lower()
    if scheme in ("http", "https"):
        return None
    return (
        f"proxy {scheme or proxy}:// is not supported (only http:// and https:// proxies, "
        "through CONNECT); unset it, or name the CSMS's host in no_proxy"
    )


async def _open_tunnel(proxy: str, uri: WebSocketURI) -> tuple[asyncio.Transport, _Tunnel]:
    """A TCP (or TLS, for an https:// proxy) connection through which `uri`'s host is reached."""
    problem = proxy_problem(proxy)
    if problem is not None:
        raise ProxyRefused(problem)
    parts = urllib.parse.urlsplit(proxy)
    secure = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    authority = f"[{uri.host}]:{uri.port}" if ":" in uri.host else f"{uri.host}:{uri.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    transport, tunnel = await loop.create_connection(
        lambda: _Tunnel(request),
        host,
        port,
        ssl=ssl_module.create_default_context() if secure else None,
    )
    try:
        await tunnel.answered
    except BaseException:
        transport.abort()
        raise
    return transport, tunnel


async def connect(
    url: str,
    *,
    subprotocols: Sequence[Subprotocol] | None = None,
    additional_headers: Mapping[str, str] | None = None,
    compression: str | None = "deflate",
    open_timeout: float | None = OPEN_TIMEOUT,
    close_timeout: float | None = CLOSE_TIMEOUT,
    max_size: int | None = 1 << 20,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    proxy: str | None = None,
) -> DirectClientConnection:
    """Open a WebSocket connection to `url` (see the module rules); raises websockets'
    `InvalidHandshake` (`InvalidStatus`: an HTTP answer), `OSError` or `TimeoutError`."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    context = (ssl or ssl_module.create_default_context()) if uri.secure else None

    def factory() -> DirectClientConnection:
        return DirectClientConnection(
            uri,
            subprotocols=subprotocols,
            additional_headers=additional_headers,
            compression=compression,
            max_size=max_size,
            close_timeout=close_timeout,
        )

    made: list[asyncio.Transport] = []
    try:
        async with asyncio.timeout(open_timeout):
            if proxy is None:
                transport, connection = await loop.create_connection(
                    factory,
                    uri.host,
                    uri.port,
                    ssl=context,
                    server_hostname=(server_hostname or uri.host) if context is not None else None,
                )
                made.append(transport)
            else:
                raw, tunnel = await _open_tunnel(proxy, uri)
                made.append(raw)
                transport = raw
                if context is not None:
                    upgraded = await loop.start_tls(
                        raw, tunnel, context, server_hostname=server_hostname or uri.host
                    )
                    if upgraded is None:  # pragma: no cover - the loop cannot
                        raise ProxyRefused("TLS through the proxy's tunnel is not possible")
                    transport = upgraded
                    made.append(transport)
                connection = factory()
                transport.set_protocol(connection)
                connection.connection_made(transport)
            assert isinstance(connection, DirectClientConnection)
            await connection.opened()
    except BaseException:
        for transport_made in made:
            transport_made.abort()
        raise
    return connection
