"""WebSocket connections that hand every incoming message to a callback the moment it arrives.

Rules
- Both implement `adapters.connection.Connection`, the interface the driver, the keepalive and the hosts
  use (`send_text` is websockets' `send` with its `ConnectionClosed` translated to `ConnectionEnded`).
- `DirectServerConnection` and `DirectClientConnection` are websockets' own asyncio connections, made
  through the public `create_connection` hook of `serve` and `connect`: the handshake, pings and pongs,
  the closing handshake, size limits, compression and every protocol error are websockets'. What differs:
  - the read side: instead of queueing messages for `recv()`, the connection calls `on_message(message)`
    (str for a text message, bytes for a binary one) from the transport's `data_received`, on the event
    loop's thread. `recv()` is not used on these connections;
  - `write_text(text)` writes a text message synchronously (no back-pressure: the caller checks the
    transport's write buffer), as websockets' `broadcast` does;
  - `last_received` (loop time) notes when the peer last sent a message or a pong (not a ping of its
    own: that proves it can send, not that it reads), for `adapters.keepalive`, whose pings
    `ping_now()` writes synchronously.
- `listen(on_message)` starts the delivery, `stop_listening()` ends it. Messages that arrive while
  nobody listens (between the handshake and the start of the session, or after its end) are kept in
  order and handed over by the next `listen`; once `BACKLOG` wait, the connection stops reading from
  its socket until `listen` is called, as websockets does when nobody calls `recv()`.
- A fragmented message is assembled before it is handed over; websockets' protocol enforces `max_size`
  over the whole message. A text message that is not valid UTF-8 fails the connection with 1007, as
  websockets' `recv()` does, and nothing more is handed over. A binary message fails it with 1003
  (unsupported data): OCPP-J is text (OCPP-J 1.6 §3, 2.0.1 part 4 §3), and a binary frame answered as
  OCPP would be a frame the peer never sent as one.
- A handshake request that websockets cannot read at all because of its request line (raw non-ASCII
  bytes in the path, a malformed line) is answered 400 before the connection closes: websockets itself
  closes without an answer, which a client sees as a network failure.
- `on_message` must not raise. If it does anyway, the error is logged and the connection is failed with
  1011: an exception must neither escape into the transport nor pass silently.
- The frame fast path. websockets' parser is only ever given whole frames once the connection is
  open, so it always waits at a frame boundary, known by construction (no look into its state):
  during the opening handshake it is given the HTTP head and nothing after it (a client's 101 and
  the server's first frames often share a segment), and from then on the connection splits the
  incoming bytes into frames itself. A complete frame that websockets would turn into exactly one
  message and nothing else (FIN set, text or binary, reserved bits clear, no fragmented message in
  progress) is unmasked and handed over here; any other complete frame (a control frame, a
  fragment, reserved bits set) is given to websockets' parser alone, through its public
  `receive_data`, which answers or fails it as usual. A frame websockets fails at its first two
  bytes (an unknown opcode, masked wrongly for the side, longer than `max_size`) is given to it at
  once with every byte after it, as is everything once the connection is no longer open, has
  failed, or uses an extension (compression), and everything a client sent before the handshake
  was answered (RFC 6455 §4.1 says it must wait): the fast path is then off for good on that
  connection. So websockets sees every frame that has any effect besides a message, in order,
  and errors are its own.
  Likewise `write_text` builds an unfragmented text frame itself when the connection is open, uses no
  extension and no fragmented send is in progress, and leaves everything else to `broadcast`.
- Why: per request/response pair through the bridge, websockets' generator-based parser, frame objects
  and its reader task cost more CPU than the bridge's own work on the message (bench/README.md).
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
  to read: set by whoever made the connection (`adapters.south` from `[south]`, `adapters.north` from `[csms]`) and enforced
  by the driver that writes to it (`adapters.driver`).
- `drop(code, reason)` closes at once without waiting for the peer to read: nothing more is read or
  handed over, the close frame goes after what the transport holds (the peer sees it if it ever
  reads), and the connection is aborted at the close timeout (its answer to the close is not read). (websockets'
  `close()` first waits, without a deadline, until the peer has read what is buffered.)
- A closing handshake the peer started is given the close timeout: if the connection has not
  ended by then, it is aborted (websockets enforces this only while a coroutine awaits `recv()` or
  `close()`, which nobody does here).
- A closed connection holds no reference cycle: it is freed by reference counting, not left to the
  rare full collections of `adapters.gc_policy`. websockets makes three, broken at `connection_lost`:
  `serve`'s subprotocol closure; its parser generator, left suspended, whose frame holds the
  protocol; the exception that ended the parser or the handshake, whose traceback holds that frame
  (every connection that ends without a closing handshake: a bare TCP connect, a vanished charger).
  Measured (issue 17's connection storm, 200,000 connections, the bridge process): RSS +39 MB and
  rising before, +11 MB and flat after.
- Everything else (close codes, `wait_closed()`, `subprotocol`, `request`, `remote_address`) is the
  websockets connection's, unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import struct
import traceback
from typing import TYPE_CHECKING, Any, cast

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection as WebsocketsConnection
from websockets.asyncio.messages import Assembler
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Side, State
from websockets.speedups import apply_mask

from adapters.connection import DEFAULT_SEND_LIMITS, ConnectionEnded, OnMessage, SendLimits
from adapters.logs import get_logger

__all__ = [
    "DEFAULT_SEND_LIMITS",
    "DirectClientConnection",
    "DirectConnection",
    "DirectServerConnection",
    "SendLimits",
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


class _NoRecv:
    """Stands for websockets' message queue (`recv_messages`), which these connections never fill:
    about 400 bytes less per connection."""

    def close(self) -> None:
        pass

    def put(self, frame: Any) -> None:
        raise RuntimeError("messages go to the listener of a direct connection")

    async def get(self, decode: Any = None) -> Any:
        raise RuntimeError("a direct connection has no recv(): use listen()")

    def get_iter(self, decode: Any = None) -> Any:
        raise RuntimeError("a direct connection has no recv_streaming(): use listen()")


_NO_RECV = _NoRecv()


if TYPE_CHECKING:
    # what the mixin finds in the websockets class it mixes into (at run time: nothing, so the
    # mixin's methods come first and call websockets' through `super()`)
    _WebsocketsConnection = WebsocketsConnection
else:
    _WebsocketsConnection = object


class _DirectDelivery(_WebsocketsConnection):
    """The read and write sides shared by both connection classes (a mixin before websockets' class)."""

    # Slots, not the instance dict: websockets' connection has so many attributes that ten more
    # made its dict grow, 1.5 KiB per connection.
    __slots__ = (
        "_backlog",
        "_close_timer",
        "_dropped",
        "_failed",
        "_failing",
        "_fragmented",
        "_fragments",
        "_head",
        "_in_step",
        "_on_message",
        "_paused",
        "_peer_masks",
        "_rest",
        "_splitting",
        "_turn",
        "last_received",
        "ping_sent_at",
        "send_limits",
    )

    def _direct_init(self) -> None:
        # a list rather than websockets' deque (600 bytes empty): it holds a waiter only while a
        # write waits for the buffer to drain
        self.drain_waiters = cast("collections.deque[asyncio.Future[None]]", [])
        self._on_message: OnMessage | None = None
        self._backlog: list[str] = []
        self._paused = False
        # a fragmented message being received: its opcode and its fragments so far
        self._fragments: list[bytes] = []
        self._fragmented: Opcode | None = None
        self._failed = False
        self._dropped = False
        self._failing: asyncio.Task[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # whether this connection splits the incoming bytes into frames itself (else websockets'
        # parser reads them), and the start of a frame it is splitting that is not complete yet
        self._splitting = False
        self._rest: bytearray | None = None
        # websockets' parser is known to wait at a frame boundary (it has been given the HTTP head
        # and whole frames only); else the fast path stays off for good
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
        self._peer_masks = self.protocol.side is Side.SERVER
        self.send_limits = DEFAULT_SEND_LIMITS

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.recv_messages = cast(Assembler, _NO_RECV)
        self.last_received = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._discard_unread()
        # websockets' `serve` gives the protocol a closure over this connection to select the
        # subprotocol: a reference cycle, so a closed connection waited for the cyclic garbage
        # collector, which the bridge's GC policy runs rarely (adapters/gc_policy). Broken here, a
        # closed connection is freed at once.
        vars(self.protocol).pop("select_subprotocol", None)
        # websockets keeps the exception that ended its parser or the handshake (`parser_exc`,
        # `handshake_exc`, and what caused them); their tracebacks hold the frame of the protocol's
        # parser, whose locals hold the protocol: another cycle, made by every connection that ends
        # without a closing handshake (a bare TCP connect, a charger that vanishes). The frames'
        # locals are dropped; the tracebacks' lines stay.
        _clear_frames(self.protocol.parser_exc, self.protocol.handshake_exc)
        # and its parser, a generator suspended at its last `yield` (or, when the connection was
        # closed before the peer's end of stream was read, waiting for it): its frame holds the
        # protocol, which holds it. Nothing feeds the protocol once the connection is lost
        # (websockets' `connection_lost` has given it the end of the stream).
        self.protocol.parser.close()

    # --- the listener -------------------------------------------------------------------------

    def listen(self, on_message: OnMessage) -> None:
        """Hand every message to `on_message` from now on, starting with those that waited."""
        if self._on_message is not None:
            raise RuntimeError("this connection already has a listener")
        self._on_message = on_message
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            self._deliver(message)
        if self._paused:
            self._paused = False
            if self._turn is None:  # else reading resumes at the end of the turns
                self.transport.resume_reading()

    def stop_listening(self) -> None:
        """Keep what arrives from now on (up to `BACKLOG`, then stop reading), as before `listen`."""
        self._on_message = None

    # --- the rest of `adapters.connection.Connection` -----------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    @property
    def write_high_water(self) -> int:
        return self.transport.get_write_buffer_limits()[1]

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    async def send_text(self, text: str) -> None:
        """websockets' `send`, its `ConnectionClosed` translated to `ConnectionEnded`."""
        try:
            await self.send(text)
        except ConnectionClosed as exc:
            raise ConnectionEnded(str(exc)) from exc

    # --- writing ------------------------------------------------------------------------------

    def ping_now(self) -> bool:
        """Write a ping now (`adapters.keepalive`); False when the connection is not open. Its pong
        is not matched: the next pong or message proves the peer alive (`last_received`)."""
        if self.protocol.state is not State.OPEN:
            return False
        self.protocol.send_ping(b"")
        self.send_data()
        return True

    def drop(self, code: int, reason: str) -> None:
        """Close now, without waiting for the peer to read what is buffered (see the module rules)."""
        self._failed = self._dropped = True
        self._backlog = []
        self._discard_unread()
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self.send_data()
        if not self._paused and not self.transport.is_closing():
            # what it sends from now on is not read: a flood costs the loop nothing more
            self._paused = True
            self.transport.pause_reading()
        if self.close_deadline is None:
            timeout = self.close_timeout or 0.0
            self.close_deadline = self.loop.time() + timeout
        self._watch_close_deadline()

    def write_text(self, text: str) -> None:
        """Write `text` as one text message now; skipped, as by `broadcast`, unless the connection is
        open."""
        protocol = self.protocol
        if (
            protocol.state is not State.OPEN
            or protocol.extensions
            or protocol.expect_continuation_frame
            or self.send_in_progress is not None
            or self.transport.is_closing()
        ):
            broadcast((self,), text)
            return
        payload = text.encode()
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

    def eof_received(self) -> None:
        # what is kept first, in order, then the end of the stream
        while self._turn is not None:
            self._turn.cancel()
            self._turn = None
            rest, self._rest = self._rest, None
            if rest is not None:
                self._read(rest)
        self._hand_over()
        super().eof_received()
        self._watch_close_deadline()

    def _read(self, buffer: bytes | bytearray) -> None:
        """One turn's reading of `buffer` (what arrived, after what was kept): the fast path while it
        lasts, else websockets' parser; what the budget leaves is kept for the next turn."""
        if self._head is not None:
            taken = self._read_head(buffer)
            if taken == len(buffer):
                return
            buffer = buffer[taken:]
            if self.protocol.state is not State.OPEN:
                # frames before the handshake completed (a client that did not wait for the
                # server's answer), or what follows a refusal: websockets reads them, and from now
                # on everything else
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
        if position >= len(buffer):
            self._rest = None
        elif type(buffer) is bytearray:
            del buffer[:position]
            self._rest = buffer
        else:
            self._rest = bytearray(memoryview(buffer)[position:])
        if turn and self._turn is None:
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
        protocol = self.protocol
        return (
            self._in_step
            and protocol.state is State.OPEN
            and not protocol.extensions
            and not self._failed
        )

    def _split(self, buffer: bytes | bytearray) -> tuple[int, int]:
        """Read the frames at the start of `buffer`, within one turn's budget: an eligible one is
        handed over here, any other whole frame is given to websockets' parser alone. Returns how
        many bytes they took, and why it stopped: `_WAIT` (the bytes after them begin a frame that is
        not complete yet: they wait for more), `_PARSER` (websockets reads them, and every byte after
        them, for good) or `_SPENT`."""
        protocol = self.protocol
        limit = protocol.max_message_size
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

    def _websockets_reads(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_close_deadline()

    def _watch_close_deadline(self) -> None:
        """websockets sets a deadline for the closing handshake when the peer starts it, but only
        a coroutine awaiting `recv()` or `close()` enforces it; nobody does here, so a timer does:
        a peer that sends its close frame and then neither reads nor closes the TCP connection would
        otherwise hold the connection (and its station's session) for as long as it likes."""
        deadline = self.close_deadline
        if deadline is None or self._close_timer is not None:
            return
        self._close_timer = self.loop.call_at(deadline, self._close_deadline_passed)

    def _close_deadline_passed(self) -> None:
        if self.protocol.state is not State.CLOSED:
            self.transport.abort()

    # --- reading: messages from websockets' parser -----------------------------------------------

    def process_event(self, event: Any) -> None:
        # Handshake events (the Request or the Response) and control frames go to websockets.
        if not isinstance(event, Frame) or event.opcode not in _DATA:
            if isinstance(event, Frame) and event.opcode is Opcode.PONG:
                self.last_received = self.loop.time()
            super().process_event(event)
            return
        if self._failed:
            return
        opcode = event.opcode
        if opcode is Opcode.CONT:
            if self._fragmented is None:  # websockets' protocol never lets this through
                return
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            opcode, data = self._fragmented, b"".join(self._fragments)
            self._fragmented, self._fragments = None, []
        elif not event.fin:
            self._fragmented, self._fragments = opcode, [bytes(event.data)]
            return
        else:
            data = bytes(event.data)
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
        if self._failing is None:
            self._failing = asyncio.get_running_loop().create_task(self._send_failure(code, reason))

    async def _send_failure(self, code: CloseCode, reason: str) -> None:
        # websockets' own sequence in `recv()` for a message it cannot decode: fail the protocol in
        # its send context, which writes the close frame and enforces the close timeout.
        with contextlib.suppress(ConnectionClosed):
            async with self.send_context():
                self.protocol.fail(code, reason)


class DirectServerConnection(_DirectDelivery, ServerConnection):
    """A charger's connection to the bridge (`serve(..., create_connection=DirectServerConnection)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct_init()

    def send_data(self) -> None:
        exc = self.protocol.handshake_exc
        if (
            self.request is None
            and isinstance(exc, InvalidMessage)
            and isinstance(exc.__cause__, ValueError)  # not EOFError: the client went away
        ):
            # websockets gave up on the request line and queued only the end of the stream (once:
            # it discards whatever follows): a 400 goes first.
            if self.protocol.data_to_send():
                response = self.protocol.reject(400, "Bad request line.\n")
                self.transport.write(response.serialize())
                self.transport.close()
            return
        super().send_data()


class DirectClientConnection(_DirectDelivery, ClientConnection):
    """The bridge's connection to the CSMS (`connect(..., create_connection=DirectClientConnection)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct_init()


DirectConnection = DirectServerConnection | DirectClientConnection
