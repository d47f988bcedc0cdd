"""One IEC 104 charger's link on the bridge's event loop: a `Session104` fed by an asyncio connection.

```python
link = Iec104Link(station_id, session, consumer=..., log=..., dial_out=DialOut(host, port))
await link.run()             # dial-out: connect, reconnect with back-off; dial-in: wait for attach()
link.attach(transport)       # dial-in: the listener hands over an identified charger's connection
link.command(send104); link.interrogate(counters)
```

Rules
- Everything about the 104 protocol is in the core (`bridge.stations.iec104.session`): this module moves bytes
  between the socket and the session, arms one timer at the session's `next_deadline` (lazily: a timer
  that fires early finds nothing due and is armed again), and hands the session's `LinkEvent`s to the
  consumer in one batch per read or timer. No threads, no worker processes: a malformed frame is a
  `LinkFailed` from the core, never a crash.
- Dial-out: the host name is resolved at every attempt; a connection that does not open within the
  table's t0 is an attempt failed; attempts are retried after `RECONNECT` back-off (1 s doubling to
  32 s, plus up to 1 s of random jitter) and the count starts over once the link came up. After
  `WARN_AFTER` failed attempts in a row the link logs `iec104.unreachable` (a warning) and `problem`
  says why, for `/ready`'s detail. `stop_dialing` (the bridge stopping) ends a back-off wait or an
  attempt under way at once: no connection line after `bridge.stopping`.
- Dial-in: `attach` takes a connection the listener (`adapters.iec104.listener`) identified; a
  connection already attached is closed first (the listener applies the duplicate policy).
- TLS (both directions) is the `ssl.SSLContext` given; the handshake is part of connecting.
- Every link drop is logged (`iec104.link_down`) with its reason and counted by kind through
  `on_drop(kind)`: t1, testfr, sequence, bad_frame, protocol, overflow (the core's `LinkFailed`),
  peer_closed, connection_error, replaced, stopping; under leases (adapters/leases.py) a link closed
  because another bridge serves the station now is `lease_lost` ("lease lost") or `given_up` ("given
  up": this bridge's fair share of dial-out stations), as its host said through `closing_for`.
- Turns: a read is handed to the session at most `READ_BUDGET` (16 KiB, about 70 ASDUs of 22
  points) at a time; the rest waits, in order, for the following turns of the event loop with the
  socket's reading paused, so one charger's burst never holds up the other connections.
- Writes never wait: what the session has to send goes to the transport at once. A peer that does not
  read fills at most the k window of command frames plus acknowledgements; the transport's buffer is
  bounded by `MAX_WRITE_BUFFER`, past which the link is dropped (`overflow`).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from adapters.stopping import Stopped, unless_stopped
from bridge.north.backoff import BackoffPolicy
from bridge.stations.iec104.apci import ApciLink
from bridge.stations.iec104.session import LinkNotice, Session104
from bridge.stations.iec104.southbound import LinkEvent, Send104Command, Send104Private

RECONNECT: Final = BackoffPolicy(wait_minimum=1.0, random_range=1.0, repeat_times=5)
WARN_AFTER: Final = 3
MAX_WRITE_BUFFER: Final = 256 << 10
READ_BUDGET: Final = 16 << 10  # bytes of one read handed to the session per event-loop turn
# drops logged at info: the bridge closed the link on purpose (stopping, or another bridge serves it)
_QUIET_KINDS: Final = frozenset({"stopping", "lease_lost", "given_up"})


@dataclass(frozen=True, slots=True)
class DialOut:
    host: str
    port: int
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


class _Protocol(asyncio.Protocol):
    """The asyncio side of one TCP connection: forwards to its link, `READ_BUDGET` bytes a turn."""

    __slots__ = ("_backlog", "closed", "link", "reason", "transport")

    def __init__(self, link: Iec104Link) -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.reason = "peer closed"
        self._backlog: bytearray | None = None  # the rest of a large read, for the next turns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, though not an asyncio.Transport subclass under uvloop (the bridge's
        # default loop): an isinstance check would refuse every connection there
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._backlog is not None:
            self._backlog += data  # behind what waits for its turn
            return
        if len(data) <= READ_BUDGET:
            self.link.data_received(self, data)
            return
        # one large read must not hold the loop: the rest waits for later turns, unread for now
        self._backlog = bytearray(data)
        if self.transport is not None:
            self.transport.pause_reading()
        self._turn()

    def _turn(self) -> None:
        backlog = self._backlog
        transport = self.transport
        if backlog is None or transport is None or transport.is_closing():
            self._backlog = None
            return
        chunk = bytes(backlog[:READ_BUDGET])
        del backlog[:READ_BUDGET]
        self.link.data_received(self, chunk)
        if backlog and self._backlog is not None:
            asyncio.get_running_loop().call_soon(self._turn)
            return
        self._backlog = None
        if not transport.is_closing():
            transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._backlog = None  # as unread bytes in the socket would be
        if exc is not None and self.reason == "peer closed":
            self.reason = f"connection error: {exc}"
        self.link.connection_lost(self)
        if not self.closed.done():
            self.closed.set_result(None)


class Iec104Link:
    """The 104 link of one charger, for as long as `run()` runs."""

    def __init__(
        self,
        station_id: str,
        session: Session104,
        *,
        consumer: Callable[[list[LinkEvent]], None],
        log: Any,
        dial_out: DialOut | None = None,
        connect_timeout: float = 30.0,
        on_drop: Callable[[str], None] | None = None,
        on_notice: Callable[[LinkNotice], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.station_id = station_id
        self.session = session
        self.dial_out = dial_out
        self._consumer = consumer
        self._log = log
        self._connect_timeout = connect_timeout
        self._on_drop = on_drop
        self._on_notice = on_notice
        self._rand = rand
        self._loop = asyncio.get_running_loop()
        self._protocol: _Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopping = False
        self._close_for: tuple[str, str] | None = (
            None  # `closing_for`: (kind, reason) of the next close
        )
        self._no_more_dials = asyncio.Event()  # `stop_dialing`
        self.failed_attempts = 0
        self._came_up = False
        self.problem: str | None = None  # why the link is not up, once that is worth a warning
        self.last_drop: str | None = None

    # --- state -------------------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self.session.is_up

    @property
    def received(self) -> int:
        """Point updates handed to the core, for the metrics and the benchmark."""
        return self.session.points_received

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: dial out and keep the link up, or (dial-in) serve what `attach` brings."""
        try:
            if self.dial_out is None:
                await asyncio.Event().wait()
            else:
                await self._dial_forever(self.dial_out)
        finally:
            self._stopping = True
            protocol = self._protocol
            kind, reason = self._close_for or ("stopping", "bridge stopping")
            self._close_for = None
            if protocol is not None:
                self._close(protocol, kind, reason)
            self._cancel_timer()

    def closing_for(self, kind: str, reason: str) -> None:
        """The end of the current `run` (its cancellation) closes the connection with this kind and
        reason rather than "bridge stopping": `lease_lost` / `given_up` (module rules)."""
        self._close_for = (kind, reason)

    def stop_dialing(self) -> None:
        """Dial-out: no more attempts (the bridge is stopping): a back-off wait or an attempt under
        way ends at once; a link that is up stays up until `run` is cancelled."""
        self._no_more_dials.set()

    async def _dial_forever(self, dial: DialOut) -> None:
        attempt = 0
        while not self._no_more_dials.is_set():
            try:
                _, protocol = await unless_stopped(self._no_more_dials, self._dial(dial))
            except Stopped:
                return
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    reason = f"no connection within {self._connect_timeout:g} s (t0)"
                self._attempt_failed(dial, reason)
                if self._on_drop is not None:
                    self._on_drop("connection_error")
            else:
                self._came_up = False
                if protocol.closed.done():
                    # lost before this task resumed (a charger that closes at once): there is no
                    # connection to start; writing to it raises under uvloop
                    self.last_drop = protocol.reason
                else:
                    self._started(protocol)
                await protocol.closed
                if not self._came_up:
                    self._attempt_failed(dial, self.last_drop or "closed before data transfer")
            attempt = 0 if self.failed_attempts == 0 else attempt + 1
            try:
                await unless_stopped(
                    self._no_more_dials, asyncio.sleep(RECONNECT.delay(attempt, self._rand()))
                )
            except Stopped:
                return

    async def _dial(self, dial: DialOut) -> tuple[asyncio.BaseTransport, _Protocol]:
        async with asyncio.timeout(self._connect_timeout):
            return await self._loop.create_connection(
                lambda: _Protocol(self),
                dial.host,
                dial.port,
                ssl=dial.ssl,
                server_hostname=dial.server_hostname if dial.ssl is not None else None,
            )

    def _attempt_failed(self, dial: DialOut, reason: str) -> None:
        self.failed_attempts += 1
        self.last_drop = reason
        if self.failed_attempts == WARN_AFTER:
            self.problem = f"104 link not up after {WARN_AFTER} attempts: {reason}"
            self._log.warning(
                "iec104.unreachable",
                host=dial.host,
                port=dial.port,
                attempts=self.failed_attempts,
                reason=reason,
            )
        else:
            self._log.info("iec104.connect_failed", host=dial.host, port=dial.port, reason=reason)

    def attach(
        self, transport: asyncio.Transport, link: ApciLink, asdus: list[bytes], rest: bytes
    ) -> None:
        """Dial-in: take over a connection the listener identified (its link started, `asdus` are
        the ASDUs it read meanwhile; `rest`, bytes after a registration frame, not read yet)."""
        old = self._protocol
        if old is not None:
            self._close(old, "replaced", "replaced by a new connection from the charger")
        protocol = _Protocol(self)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        self._protocol = protocol
        self._came_up = False
        self._adopted(protocol, link, asdus, rest)

    # --- a connection --------------------------------------------------------------------------------

    def _started(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        self._came_up = False
        now = self._loop.time()
        events = self.session.connection_made(now, time.time())
        self._log.info("iec104.connected", peer=_peer(protocol))
        self._after(protocol, events)

    def _adopted(
        self, protocol: _Protocol, link: ApciLink, asdus: list[bytes], rest: bytes
    ) -> None:
        now = self._loop.time()
        session = self.session
        wall = time.time()
        events = session.connection_made(now, wall, link)  # LinkUp if the link is started
        for asdu in asdus:
            events += session.receive_asdu(asdu, now)
        if rest:
            events += session.receive_data(rest, now, wall)
        self._log.info("iec104.connected", peer=_peer(protocol), dial="in")
        self._after(protocol, events)

    def data_received(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return
        events = self.session.receive_data(data, self._loop.time(), time.time())
        self._after(protocol, events)

    def connection_lost(self, protocol: _Protocol) -> None:
        failure = self.session.failure if protocol is self._protocol else None
        if failure is not None:
            self._lost(protocol, failure.kind, failure.reason)
        else:
            self._lost(protocol, _drop_kind(protocol.reason), protocol.reason)

    def _lost(self, protocol: _Protocol, kind: str, reason: str) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        self._cancel_timer()
        was_up = self.session.is_up
        events = self.session.connection_lost(self._loop.time(), reason)
        self.last_drop = reason
        if was_up or kind not in ("peer_closed", "connection_error", "stopping"):
            log = self._log.info if kind in _QUIET_KINDS else self._log.warning
            log("iec104.link_down", reason=reason, kind=kind)
        if self._on_drop is not None and kind != "stopping":
            self._on_drop(kind)
        self._deliver(events)

    def _after(self, protocol: _Protocol, events: list[LinkEvent]) -> None:
        """After every input: write, hand the events over, close on a failure, re-arm the timer."""
        session = self.session
        out = session.data_to_send()
        transport = protocol.transport
        if out and transport is not None and not transport.is_closing():
            # (a closing transport: its connection_lost reports the drop; uvloop raises on a write)
            transport.write(out)
            if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                self._close(protocol, "overflow", "the charger does not read what the bridge sends")
                self._deliver(events)
                return
        if not self._came_up and session.is_up:
            self._came_up = True
            if self.problem is not None:
                self._log.info("iec104.reachable", after_attempts=self.failed_attempts)
            self.failed_attempts = 0
            self.problem = None
        self._deliver(events)
        if self._on_notice is not None and session.has_notices:
            for notice in session.notices():
                self._on_notice(notice)
        failure = session.failure
        if failure is not None:
            self._close(protocol, failure.kind, failure.reason)
            return
        self._arm(session.next_deadline())

    def _close(self, protocol: _Protocol, kind: str, reason: str) -> None:
        """Close our side: the drop is reported now, with its own reason (the transport's
        connection_lost later finds another protocol current and is ignored)."""
        self._lost(protocol, kind, reason)
        transport = protocol.transport
        if transport is not None:
            if kind == "overflow":
                transport.abort()
            else:
                transport.close()

    # --- timer ----------------------------------------------------------------------------------------

    def _arm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        armed = self._timer_at
        if armed is not None and armed <= deadline:
            return  # fires early, finds nothing due, re-arms
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._fire)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        protocol = self._protocol
        if protocol is None:
            return
        events = self.session.handle_timer(self._loop.time(), time.time())
        self._after(protocol, events)

    # --- requests from the core ----------------------------------------------------------------------

    def command(self, command: Send104Command) -> None:
        """Send `command`; its CommandConfirmed arrives through the consumer."""
        events = self.session.command(command, self._loop.time())
        protocol = self._protocol
        if protocol is not None:
            self._after(protocol, events)
        else:
            self._deliver(events)

    def send_private(self, effect: Send104Private) -> None:
        if not self.session.send_private(effect, self._loop.time()):
            # the link is down, or the request it answers came on a connection now gone
            self._log.info("iec104.private_not_sent", purpose=effect.purpose)
            return
        protocol = self._protocol
        if protocol is not None:
            self._after(protocol, [])

    def interrogate(self, counters: bool) -> None:
        self.session.interrogate(counters, self._loop.time())
        protocol = self._protocol
        if protocol is not None:
            self._after(protocol, [])

    def _deliver(self, events: list[LinkEvent]) -> None:
        if not events:
            return
        try:
            self._consumer(events)
        except Exception:  # noqa: BLE001 - the consumer's bug must not stop the link
            self._log.exception("iec104.consumer_failed")


def _peer(protocol: _Protocol) -> str:
    transport = protocol.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _drop_kind(reason: str) -> str:
    return "peer_closed" if reason == "peer closed" else "connection_error"
