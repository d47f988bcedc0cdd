"""The connection a station's driver, the keepalive and the hosts talk to: one declared interface.

```python
connection.listen(on_message)        # every text message, the moment it arrives (a str)
connection.write_text(frame)         # now, when connection.write_buffer_size() <= write_high_water
await connection.send_text(frame)    # waits until the peer has read enough; raises ConnectionEnded
await connection.close(code, reason) # the closing handshake
connection.drop(code, reason)        # close now, without waiting for the peer to read
await connection.wait_closed()       # the connection has ended: close_code, close_reason
```

Rules
- `Connection` is a `typing.Protocol`: what `adapters.driver`, `adapters.ocpp.keepalive`, `adapters.ocpp.south`,
  `adapters.ocpp.north` and the hosts need of a connection, and nothing of how it is made. WebSocket
  connections implement it (`adapters.ocpp.ws_direct`); `MemoryConnection` implements it in memory, for
  tests (the only test double a connection needs, in the manner of httpx's mock transport).
- Messages are handed over with `listen(on_message)` on the event loop's thread, in order; what arrives
  before `listen` (or after `stop_listening`) is kept and handed to the next listener. `on_message` must
  not raise.
- Writing: `write_text` is synchronous and never waits: the caller checks `write_buffer_size()`
  against `write_high_water` first (the driver does). `send_text` waits for the peer to read (back
  pressure) and raises `ConnectionEnded` when the connection has ended or ends meanwhile: the one
  exception of a connection, whatever library is under it.
- `send_limits` bound what the bridge keeps for a peer that does not read (`SendLimits`), set by whoever
  made the connection (`adapters.ocpp.south` from `[south]`, `adapters.ocpp.north` from `[csms]`) and enforced by
  the driver; past them the driver `drop`s the connection with 1008.
- Liveness (`adapters.ocpp.keepalive`): `last_received` is when the peer last sent a message or a pong (loop
  time), `ping_now()` writes a ping (False when the connection is not open), `ping_sent_at` is the
  keepalive's own note of its unanswered ping.
- Peer information: `subprotocol` (None: none was agreed), `remote_address`, and once the connection
  has ended `close_code` and `close_reason`: those of the closing handshake, or, when this side closed
  and the peer went away without answering, what this side sent (why the bridge closed it, not
  "abnormal closure").
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

OnMessage = Callable[[str], None]


class ConnectionEnded(Exception):
    """`send_text` on a connection that has ended, or that ended while the write waited."""


@dataclass(frozen=True, slots=True)
class SendLimits:
    """What may wait in the bridge for one peer to read it, beyond the connection's own write buffer
    (which holds at most `write_high_water` bytes plus one frame): `max_frames` frames taking
    `max_bytes` bytes of memory (`sys.getsizeof` of their text; a frame alone in the queue always
    fits), and `write_timeout` seconds one write may wait for the peer to read. Past any of them the
    peer is dropped (`adapters.driver`)."""

    max_frames: int = 1000
    max_bytes: int = 1 << 20
    write_timeout: float = 60.0


DEFAULT_SEND_LIMITS = SendLimits()

# RFC 6455 §7.4.1: no close frame was received (the connection ended without a closing handshake)
CLOSE_ABNORMAL = 1006


class Connection(Protocol):
    """One text-message connection to a peer (a charger or the CSMS); see the module rules."""

    send_limits: SendLimits
    last_received: float
    ping_sent_at: float | None

    @property
    def subprotocol(self) -> str | None: ...

    @property
    def remote_address(self) -> Any: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    @property
    def is_open(self) -> bool: ...

    @property
    def write_high_water(self) -> int: ...

    def listen(self, on_message: OnMessage) -> None: ...

    def stop_listening(self) -> None: ...

    def write_buffer_size(self) -> int: ...

    def write_text(self, text: str) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def drop(self, code: int, reason: str) -> None: ...

    def ping_now(self) -> bool: ...

    async def wait_closed(self) -> None: ...


class MemoryConnection:
    """A `Connection` held in memory, for tests. The test plays the peer:

    - `deliver(text)`: the peer sends a message (kept until someone listens, as on a real connection);
    - `sent`: every frame written, in order; `closed` / `dropped`: the (code, reason) of `close` /
      `drop`; `pings`: pings written;
    - `reading = False`: the peer stops reading: what is written piles up in the write buffer
      (`write_buffer_size()`), and `send_text` waits until `reading` is True again or the connection
      ends;
    - `write_high_water`: the mark the driver compares the write buffer with before writing at once
      (-1: never, every frame goes through the driver's queue and `send_text`);
    - `end(code, reason)`: the connection ends (the peer went away, or answered the close).

    `close` ends the connection, with the closing handshake answered at once; `drop` does not (a real
    connection is aborted only at its close timeout): `end` it when the test wants it over.
    """

    def __init__(
        self,
        subprotocol: str | None = "ocpp2.0.1",
        *,
        send_limits: SendLimits = DEFAULT_SEND_LIMITS,
        write_high_water: int = 64 << 10,
        remote_address: Any = ("127.0.0.1", 50000),
    ) -> None:
        self.subprotocol = subprotocol
        self.remote_address = remote_address
        self.send_limits = send_limits
        self.write_high_water = write_high_water
        self.last_received = asyncio.get_running_loop().time()
        self.ping_sent_at: float | None = None
        self.sent: list[str] = []
        self.pings = 0
        self.closed: tuple[int, str] | None = None
        self.dropped: tuple[int, str] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._on_message: OnMessage | None = None
        self._backlog: list[str] = []
        self._buffered = 0
        self._reading = True
        self._wake = asyncio.Event()  # set when the peer reads again or the connection ends
        self._ended = asyncio.Event()

    # --- the peer's side (the test) -------------------------------------------------------------

    @property
    def reading(self) -> bool:
        return self._reading

    @reading.setter
    def reading(self, value: bool) -> None:
        self._reading = value
        if value:
            self._buffered = 0
            self._wake.set()

    def deliver(self, text: str) -> None:
        """The peer sends `text`."""
        if self._ended.is_set() or self.dropped is not None:
            return
        self.last_received = asyncio.get_running_loop().time()
        if self._on_message is None:
            self._backlog.append(text)
        else:
            self._on_message(text)

    def end(self, code: int = CLOSE_ABNORMAL, reason: str = "") -> None:
        """The connection ends (`wait_closed` returns, waiting writes raise `ConnectionEnded`)."""
        if not self._ended.is_set():
            self.close_code, self.close_reason = code, reason
            self._ended.set()
            self._wake.set()  # a waiting `send_text` sees the end

    # --- Connection ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return not self._ended.is_set() and self.closed is None and self.dropped is None

    def listen(self, on_message: OnMessage) -> None:
        if self._on_message is not None:
            raise RuntimeError("this connection already has a listener")
        self._on_message = on_message
        backlog, self._backlog = self._backlog, []
        for text in backlog:
            on_message(text)

    def stop_listening(self) -> None:
        self._on_message = None

    def write_buffer_size(self) -> int:
        return self._buffered

    def write_text(self, text: str) -> None:
        if not self.is_open:
            return  # skipped, as a real connection skips a write once it is closing
        self.sent.append(text)
        if not self._reading:
            self._buffered += sys.getsizeof(text)

    async def send_text(self, text: str) -> None:
        if self._ended.is_set():
            raise ConnectionEnded("the connection has ended")
        self.write_text(text)
        while not self._reading:
            self._wake.clear()
            await self._wake.wait()
            if self._ended.is_set():
                raise ConnectionEnded("the connection ended while the write waited")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self.end(code, reason)

    def drop(self, code: int, reason: str) -> None:
        self.dropped = (code, reason)
        self._backlog = []

    def ping_now(self) -> bool:
        if not self.is_open:
            return False
        self.pings += 1
        return True

    async def wait_closed(self) -> None:
        await self._ended.wait()
