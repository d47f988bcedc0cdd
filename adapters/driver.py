"""Drives one station core: feeds it what its connections receive, carries out the effects it returns.

Rules
- The adapter loop of docs/architecture.md: feed the core, flush its effects, re-arm one timer. The core
  is called only from the event loop thread, never concurrently.
- Connections are `adapters.connection.Connection`s (WebSocket ones from `adapters.ocpp.ws_direct`,
  `MemoryConnection` in tests); the driver knows nothing else of them.
- Connections are attached before any is served, so no effect finds its connection missing; `attach`
  tells the core (`connection_made`), and the end of `serve` tells it the connection is gone.
- A `persistent` driver serves a core that outlives its connections (translated stations: the charger
  and the CSMS connect, drop and reconnect independently); its timer keeps running without any.
- Each connection is served by one `serve`, which has the connection hand every message to the core
  the moment it arrives (`Connection.listen`: no task is woken per message) until it closes. Effects
  are drained synchronously right after each input, so frames leave in exactly the order the core
  produced them.
- A `Send` is written at once (`Connection.write_text`, synchronous like websockets' `broadcast`)
  when nothing waits in that connection's queue and its write buffer is below the high-water mark
  (`write_buffer_size()`, `write_high_water`). Otherwise it joins the queue, which a writer task
  empties with `await send_text` (back-pressure); the task exists only while the queue holds
  something. Order is the same either way: `send_text` writes its frame before it waits, and nothing
  is written at once past a queued item. (Measured with bench/: a writer
  task woken per frame cost a third of what the bridge added to a relay hop, and a task and a queue per
  connection a few KiB per station.)
- `Close` effects are carried out by the writer after the frames queued before them.
- The queue is bounded by the connection's `send_limits` (`adapters.connection.SendLimits`, from
  `[south]` or `[csms]`): a frame that would take it past `max_frames` frames or `max_bytes` bytes
  (`sys.getsizeof` of the frames' text; a frame alone always fits), or a write (or close) that waits
  longer than `write_timeout` for the peer to read, drops the connection: what is queued is discarded
  at once, the peer is sent a close with 1008 and aborted after the close timeout
  (`Connection.drop`), the drop is logged (`connection.dropped`, a warning) and counted
  (`connections_dropped_total{side,reason}`, reason queue_full or write_timeout); nothing more is
  written to it. So what the bridge holds for a peer never depends on what the peer sends. A queue
  whose connection has ended is discarded at once too (the next write would fail as well).
- A run of `Persist` effects is one batch for the store, submitted to its writer thread
  (`Store.submit`, group commit); every later effect, of this input and of the inputs after it, is held
  in order and carried out only once the batch is durable, so nothing is acknowledged to a peer before
  it is on disk, and the event loop never waits for a disk. A held `Send` or `Close` is bound to the
  connection that was its side's when the core produced it: if that connection ended meanwhile, it is
  dropped, also when a new connection on that side is up by the time the batch is durable (an answer
  to a message id of the old connection means nothing on the new one). `Report` effects (log lines) do not end a
  run: the Persists of one input that are separated only by reports are one atomic batch, so a crash
  never keeps half of what one charger message changed (e.g. a transaction without its Started
  event). A store that cannot write fails the session (both connections closed with 1011) rather than
  acknowledge what it lost; what was held is dropped. A write refused by fencing (`FencedError`:
  another replica holds the station's lease) is a warning `store.fenced`, and both connections close
  with 1013 ("station served elsewhere"), as when the lease is lost. A held `Send` whose connection ended meanwhile
  is dropped as if written just before the end (the core has been told of the end).
- One `loop.call_at` handle per core, re-armed only when the core's next deadline comes before it: a
  deadline that moves later or goes away leaves the timer as it is, and when it fires for nothing due,
  it is armed again for the next deadline, if any. (Every call moves the deadline by a call timeout, so
  re-arming after each input cost a `call_at` and a `cancel` per frame.)
- A bug in the core (an exception from it) is logged with its traceback and ends the session: both
  connections are closed with 1011, and the core is never fed again (`failed`). It never passes silently.
- Reports are logged through a `adapters.ops.logs.DiagnosticLimiter` of the driver (per side and kind: a
  few lines a minute, then one carrying how many were left out; what is left out when a connection
  ends is logged as `diagnostics.suppressed`). Metrics count every report.
- With `metrics`, the core's late answers and resends are counted from its reports, and every frame
  read and every `Send` is counted (action and direction, from the frame's head
  only), and each served connection counts as connected (`BridgeMetrics.connected`) for as long as it is
  served, labelled with its WebSocket subprotocol.
- Cores with inputs and effects beyond websocket frames (IEC 104 stations): `feed(action)` runs
  `action(now, wall)` like any input, and a kind's own effects (`bridge.effects.KindEffect`) go to
  `on_effect` (`adapters.translated.StationKind.handle`), in
  order, after the Persist runs before them are committed.
- With `trace` (`adapters.ops.trace`), every input fed to the core opens a fresh correlation id; the frame
  read (if the input is one) and every `Send` queued while handling it are traced under that id, also
  when the `Send` waited for the store behind an earlier input's batch.
- With `metrics`, the time the bridge adds to a forwarded message is measured
  (`added_latency_seconds{direction,protocol}`, `adapters.ops.metrics`): each input from a peer (a frame,
  or the 104 link's events) takes `time.monotonic()` on arrival (the driver's one `_Origin`, reused:
  no allocation per frame; the core itself stays clock-free, and the loop's `now` is not used:
  uvloop's clock has millisecond steps), and the first `Send` that input produces for the other side
  is observed when its frame is handed to that connection's transport: written at once, or taken
  from the queue by the writer (the `_Timed` wrapper); for a 104 station the first effect for the
  link (a command) is observed when handed to `on_effect`. Effects held behind a store batch carry a
  copy of their input's `_Origin` as a marker in the held list, so the wait for the disk is in the
  figure. Several frames for the other side count once; none, not at all. The histogram is a plain
  list the driver updates itself (`_observe`, inlined on the frame path).
- With `activity` (`adapters.ops.status.StationActivity`, only when the status page is on), every frame
  read and every `Send`, the 104 link's events and effects, and each connection's start and end are
  told to it as they happen, for the status page.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import sys
from collections.abc import Callable
from time import monotonic, time
from typing import Any

from adapters.connection import Connection, ConnectionEnded, SendLimits
from adapters.ops.logs import DiagnosticLimiter, log_diagnostic
from adapters.ops.metrics import LATENCY_BUCKETS, BridgeMetrics
from adapters.ops.status import StationActivity
from adapters.ops.trace import StationTrace
from adapters.store_api import FencedError, StateStore, StoreError
from bridge.effects import (
    CLOSE_TRY_AGAIN_LATER,
    Close,
    KindEffect,
    Persist,
    Report,
    Send,
    Side,
    StationCore,
)

# RFC 6455 §7.4.1: the peer broke the bridge's policy (here: it does not read what it is sent)
CLOSE_POLICY_VIOLATION = 1008


class _TraceResume:
    """In held effects: those that follow were caused by the input of correlation id `corr`."""

    __slots__ = ("corr",)

    def __init__(self, corr: str) -> None:
        self.corr = corr


class _Origin:
    """An input from `side`'s peer that arrived at `t0` (`time.monotonic()`); `done` once the first
    frame it produced for the other side was handed over (and observed)."""

    __slots__ = ("done", "side", "t0")

    def __init__(self, side: Side | None, t0: float, done: bool = False) -> None:
        self.side = side
        self.t0 = t0
        self.done = done


# in held effects: the effects that follow came from an input that is not timed (a timer, no metrics)
_UNTIMED = _Origin(None, 0.0, done=True)


_bucket = bisect.bisect_left  # le: the first bound >= the value


def _observe(counts: list[float], seconds: float) -> None:
    """One sample into a histogram of `BridgeMetrics.added_latency`."""
    counts[_bucket(LATENCY_BUCKETS, seconds)] += 1
    counts[-1] += seconds


def _snapshot(origin: _Origin) -> _Origin:
    """The marker for held effects: a copy of the driver's live origin (which the next input reuses)."""
    return _UNTIMED if origin.done else _Origin(origin.side, origin.t0)


class _Timed:
    """A queued Send whose handing to the transport is observed as the added latency of its input,
    which arrived at `t0`."""

    __slots__ = ("send", "t0")

    def __init__(self, send: Send, t0: float) -> None:
        self.send = send
        self.t0 = t0


class _Bound:
    """A held Send or Close and the connection its side had when the core produced it."""

    __slots__ = ("connection", "effect")

    def __init__(self, effect: Send | Close, connection: Connection | None) -> None:
        self.effect = effect
        self.connection = connection


class CoreDriver:
    def __init__(
        self,
        core: StationCore,
        logs: dict[Side, Any],
        *,
        station_id: str = "",
        store: StateStore | None = None,
        metrics: BridgeMetrics | None = None,
        persistent: bool = False,
        trace: StationTrace | None = None,
        on_effect: Callable[[KindEffect], None] | None = None,
        activity: StationActivity | None = None,
        protocol: str = "ocpp2.0.1",
    ) -> None:
        self._core = core
        self._activity = activity
        self._trace = trace
        self._on_effect = on_effect
        self._metrics = metrics
        self._station_id = station_id
        self._store = store
        self._logs = logs
        self._loop = asyncio.get_running_loop()
        self._connections: dict[Side, Connection] = {}
        # side -> frames and closes waiting for the writer; a list, not a deque: it is empty almost
        # always, and an empty deque costs 624 bytes per connection
        self._outboxes: dict[Side, list[Send | Close | _Timed]] = {}
        self._writers: dict[Side, asyncio.Task[None]] = {}
        # side -> bytes its queue holds (`sys.getsizeof` of the frames), its connection's bounds
        self._queued_bytes: dict[Side, int] = {}
        self._limits: dict[Side, SendLimits] = {}
        # sides whose connection was dropped for not reading: nothing more is queued for it
        self._dropped: set[Side] = set()
        self._diagnostics = DiagnosticLimiter()
        # side -> (connection, its write buffer's high-water mark) of connections that may be
        # written to synchronously
        self._direct: dict[Side, tuple[Connection, int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._persistent = persistent
        # effects waiting for a batch in the store's writer (None: no batch in flight), in order
        self._held: list[Any] | None = None
        self.failed = False
        # destination side -> observe(seconds) of `added_latency_seconds` (None: not measured);
        # `_live`: the input being fed, while it is fed, when it came from a peer (else done)
        self._latency: dict[Side, list[float]] | None = None
        if metrics is not None:
            self._latency = {side: metrics.added_latency(side, protocol) for side in Side}
        self._live = _Origin(None, 0.0, done=True)

    def attach(self, side: Side, connection: Connection) -> None:
        """Register `side`'s connection, so effects for it are kept from now on.

        Attach every connection before serving any: a frame read on one side can produce a frame for
        the other at once.
        """
        if side in self._connections:
            raise RuntimeError(f"{side.value} already has a connection")
        self._connections[side] = connection
        self._outboxes[side] = []
        self._queued_bytes[side] = 0
        self._limits[side] = connection.send_limits
        self._direct[side] = (connection, connection.write_high_water)
        self._feed(self._core.connection_made, side)

    def connected(self, side: Side) -> bool:
        return side in self._connections

    def feed(self, action: Callable[[float, float], None], link_events: Any = None) -> None:
        """An input that is no websocket frame (IEC 104 link events): `action(now, wall)` on the core.
        `link_events`, when given, are what the trace records of this input."""
        if link_events is not None and self._activity is not None:
            self._activity.link_events(link_events)
        live = self._live
        if link_events is not None and self._latency is not None:
            live.side, live.t0, live.done = Side.SOUTH, monotonic(), False
        try:
            self._feed(action, link_events=link_events)
        finally:
            live.done = True

    def start(self) -> None:
        """Arm the timer of a persistent core that has work before any connection (a restart)."""
        self._rearm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed_for = None

    async def serve(self, side: Side) -> None:
        """Run `side`'s attached connection until it ends; then tell the core."""
        connection = self._connections[side]
        try:
            with self._counted(side, connection):
                if self._activity is not None:
                    self._activity.connected(side)
                connection.listen(self._receiver(side))
                await connection.wait_closed()
        finally:
            connection.stop_listening()
            if self._activity is not None:
                self._activity.disconnected(side)
            self._feed(self._core.connection_lost, side)
            writer = self._writers.get(side)
            if writer is not None:
                await writer  # what the core queued before the end still goes (a Close, typically)
            del self._outboxes[side]
            del self._connections[side]
            self._direct.pop(side, None)
            self._forget_queued(side)
            del self._queued_bytes[side], self._limits[side]
            self._dropped.discard(side)
            for lost_side, kind, count in self._diagnostics.take_suppressed():
                self._logs[lost_side].warning("diagnostics.suppressed", kind=kind, count=count)
            if not self._outboxes and not self._persistent:
                self.stop()

    def _receiver(self, side: Side) -> Callable[[str], None]:
        """What `side`'s connection calls with each message, on arrival (`Connection.listen`)."""
        count = self._metrics.frame_counter(side, received=True) if self._metrics else None
        activity = self._activity
        receive = self._core.receive
        feed = self._feed
        timed = self._latency is not None
        live = self._live

        def received(message: str) -> None:
            if self.failed:
                return  # a failed core is never fed again; its connections are being closed
            if timed:
                live.side, live.t0, live.done = side, monotonic(), False
            if count is not None:
                count(message)
            if activity is not None:
                activity.received(side, message)
            feed(receive, side, message, received=(side, message))  # catches what the core raises
            live.done = True

        return received

    def _counted(
        self, side: Side, connection: Connection
    ) -> contextlib.AbstractContextManager[None]:
        if self._metrics is None:
            return contextlib.nullcontext()
        # Reconnects are told apart by station id; cores built without one name it themselves.
        station_id = self._station_id or getattr(self._core, "station_id", None)
        protocol = connection.subprotocol or "none"
        return self._metrics.connected(side, protocol, station_id)

    def _feed(
        self,
        action: Callable[..., None],
        *args: Any,
        received: tuple[Side, str | bytes] | None = None,
        link_events: Any = None,
    ) -> None:
        """One input: `action(*args, now, wall)` on the core (the loop's monotonic clock and the wall
        clock, read here together), then its effects, then the timer."""
        if self.failed:
            return  # a failed core is never fed again (its owner may rebuild it from the store)
        if self._trace is not None:
            self._trace.input(received)  # a fresh correlation id for this input and what it sends
            if link_events is not None:
                self._trace.link_events(link_events)
        try:
            action(*args, self._loop.time(), time())
            effects = self._core.effects()
            if effects:
                self._apply(effects)
        except Exception as exc:  # noqa: BLE001 - a core bug or a store failure: logged, session ended
            self._fail(exc)
            return
        self._rearm()

    def _fail(self, error: BaseException) -> None:
        self.failed = True
        self._held = None
        if isinstance(error, FencedError):
            # another replica holds the station's lease (leases): expected during a failover
            self._logs[Side.SOUTH].warning("store.fenced", reason=str(error))
            for side in self._outboxes:
                self._queue(side, Close(side, CLOSE_TRY_AGAIN_LATER, "station served elsewhere"))
            return
        self._logs[Side.SOUTH].error("core.failed", exc_info=error)
        for side in self._outboxes:
            self._queue(side, Close(side, 1011, "internal error"))

    def _apply(self, effects: list[Any], *, released: bool = False) -> None:
        if self._held is not None:
            # behind a batch the store has not written yet
            if self._trace is not None:
                self._held.append(_TraceResume(self._trace.correlation()))
            if self._latency is not None:
                self._held.append(_snapshot(self._live))
            self._held.extend(self._bind(effects))
            return
        pending: list[Persist] = []
        origin = self._live
        for index, effect in enumerate(effects):
            kind = type(effect)
            if kind is _Origin:  # held effects: those that follow came from this input
                origin = effect
                continue
            if kind is _Bound:
                if pending:
                    self._persist(pending, effects[index:], origin)
                    return
                if self._connections.get(effect.effect.side) is not effect.connection:
                    continue  # its connection ended while the store wrote: never to another one
                effect = effect.effect
                kind = type(effect)
            if kind is Persist:
                pending.append(effect)
                continue
            if kind is Report:  # a log line: it never splits a run of Persist
                diagnostic = effect.diagnostic
                suppressed = self._diagnostics.admit(
                    effect.side, diagnostic.kind, self._loop.time()
                )
                if suppressed is not None:
                    log_diagnostic(self._logs[effect.side], diagnostic, suppressed)
                if self._metrics is not None:
                    self._metrics.diagnostic(effect.side, diagnostic.kind, diagnostic.fields)
                continue
            if kind is _TraceResume:  # nor does a change of input
                assert self._trace is not None
                self._trace.resume(effect.corr)
                continue
            if pending:
                self._persist(pending, effects[index:], origin)
                return
            if kind is Send:
                side = effect.side
                outbox = self._outboxes.get(side)
                if outbox is None:
                    if not released:
                        # The core sent on a side it knows is down: a core bug worth seeing.
                        self._logs[side].error("driver.send_without_connection")
                    continue
                timed = not origin.done and side is not origin.side
                if timed:
                    origin.done = True  # the first frame for the other peer: this one
                if outbox or not self._write_now(side, effect.frame):
                    self._queue(side, effect, origin.t0 if timed else None)
                elif timed:
                    assert self._latency is not None
                    elapsed = monotonic() - origin.t0  # `_observe`, inlined: every forwarded frame
                    counts = self._latency[side]
                    counts[_bucket(LATENCY_BUCKETS, elapsed)] += 1
                    counts[-1] += elapsed
                if self._metrics is not None:
                    self._metrics.frame_counter(side, received=False)(effect.frame)
                if self._trace is not None:
                    self._trace.sent(side, effect.frame)
                if self._activity is not None:
                    self._activity.sent(side, effect.frame)
            elif kind is Close:
                if effect.side in self._outboxes:
                    self._queue(effect.side, effect)
            elif self._on_effect is not None:
                if self._trace is not None:
                    self._trace.south_effect(effect)
                if self._activity is not None:
                    self._activity.south_effect(effect)
                self._on_effect(effect)  # an effect of the core's own kind (a 104 command)
                if not origin.done and origin.side is Side.NORTH:
                    origin.done = True  # handed to the 104 link: the first frame for the charger
                    assert self._latency is not None
                    _observe(self._latency[Side.SOUTH], monotonic() - origin.t0)
        if pending:
            self._persist(pending, [], origin)

    def _write_now(self, side: Side, frame: str) -> bool:
        """Write `frame` synchronously when the connection allows it; False: queue it instead."""
        direct = self._direct.get(side)
        if direct is None:
            return False
        connection, high_water = direct
        if connection.write_buffer_size() > high_water:
            return False
        # Skips a connection that is closing, as `send_text` would raise ConnectionEnded: the
        # connection ends and `serve` reports it to the core either way.
        connection.write_text(frame)
        return True

    def _persist(self, changes: list[Persist], after: list[Any], origin: _Origin) -> None:
        """Submit `changes`; `after` (and every later effect) waits until they are durable."""
        if self._store is None:
            raise RuntimeError("this station core persists state but has no store")
        held: list[Any] = [] if self._trace is None else [_TraceResume(self._trace.correlation())]
        if self._latency is not None:
            held.append(_snapshot(origin))
        held.extend(self._bind(after))
        self._held = held  # first: a store may answer within `submit`
        self._store.submit(self._station_id, changes, self._written)

    def _bind(self, effects: list[Any]) -> list[Any]:
        """`effects` with each Send and Close bound to its side's current connection."""
        connections = self._connections
        return [
            _Bound(effect, connections.get(effect.side))
            if type(effect) is Send or type(effect) is Close
            else effect
            for effect in effects
        ]

    def _written(self, error: StoreError | None) -> None:
        """The store's answer for the batch in flight."""
        if self.failed:
            return  # what was held is dropped with the session
        if error is not None:
            self._fail(error)
            return
        held, self._held = self._held, None
        if held:
            try:
                self._apply(held, released=True)
            except Exception as exc:  # noqa: BLE001 - as in `_feed`
                self._fail(exc)

    def _rearm(self) -> None:
        deadline = self._core.next_deadline()
        if deadline is None:
            return  # an armed timer stays: when it fires it finds nothing due and is not re-armed
        armed_for = self._armed_for
        if armed_for is not None and armed_for <= deadline:
            return  # it fires first, and is re-armed then for whatever is due next
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        deadline = self._core.next_deadline()
        if deadline is None:
            return
        if deadline > self._loop.time():
            self._rearm()  # armed for a deadline that has moved on since
            return
        self._feed(self._core.handle_timer)

    def _queue(self, side: Side, item: Send | Close, t0: float | None = None) -> None:
        if side in self._dropped:
            return  # the connection is being dropped: it is written nothing more
        outbox = self._outboxes[side]
        size = sys.getsizeof(item.frame) if type(item) is Send else 0
        if outbox:
            limits = self._limits[side]
            if len(outbox) >= limits.max_frames or (
                self._queued_bytes[side] + size > limits.max_bytes
            ):
                self._drop(side, "queue_full")
                return
        outbox.append(_Timed(item, t0) if t0 is not None and type(item) is Send else item)
        if size:
            self._queued_bytes[side] += size
            if self._metrics is not None:
                self._metrics.send_queued(side, size)
        if side not in self._writers:
            writer = asyncio.create_task(self._write(side, self._connections[side]))
            self._writers[side] = writer
            # A task cancelled before it ran never enters `_write`'s finally.
            writer.add_done_callback(lambda done: self._forget_writer(side, done))

    def _forget_writer(self, side: Side, writer: asyncio.Task[None]) -> None:
        if self._writers.get(side) is writer:
            del self._writers[side]

    def _forget_queued(self, side: Side) -> None:
        """Discard `side`'s queue at once (its connection is dropped or has ended)."""
        outbox = self._outboxes.get(side)
        if outbox:
            outbox.clear()
        size = self._queued_bytes.get(side, 0)
        if size:
            self._queued_bytes[side] = 0
            if self._metrics is not None:
                self._metrics.send_queued(side, -size)

    def _drop(self, side: Side, reason: str) -> None:
        """`side`'s peer does not read what is sent to it: discard its queue, close it (1008)."""
        connection = self._connections[side]
        limits = self._limits[side]
        self._logs[side].warning(
            "connection.dropped",
            reason=reason,
            queued_frames=len(self._outboxes[side]),
            queued_bytes=self._queued_bytes[side],
            max_frames=limits.max_frames,
            max_bytes=limits.max_bytes,
            write_timeout=limits.write_timeout,
        )
        if self._metrics is not None:
            self._metrics.connection_dropped(side, reason)
        self._dropped.add(side)
        self._direct.pop(side, None)
        self._forget_queued(side)
        text = "not reading: write timeout" if reason == "write_timeout" else "not reading"
        connection.drop(CLOSE_POLICY_VIOLATION, text)

    async def _write(self, side: Side, connection: Connection) -> None:
        outbox = self._outboxes[side]
        timeout = self._limits[side].write_timeout
        try:
            while outbox:
                item = outbox.pop(0)  # at most `max_frames` behind it
                if isinstance(item, _Timed):
                    assert self._latency is not None
                    _observe(self._latency[side], monotonic() - item.t0)  # `send` writes it first
                    item = item.send
                try:
                    async with asyncio.timeout(timeout):
                        if isinstance(item, Send):
                            self._unqueued(side, item.frame)
                            await connection.send_text(item.frame)
                        else:
                            await connection.close(item.code, item.reason)
                except ConnectionEnded:
                    # the reader sees the end and reports it to the core; every later write would
                    # fail the same way, so the rest goes at once (not one failed write per frame)
                    self._forget_queued(side)
                    return
                except TimeoutError:
                    if side not in self._dropped and self._connections.get(side) is connection:
                        self._drop(side, "write_timeout")
                    return
        finally:
            # At once, not in a done callback: an item queued right after this must start a writer.
            writer = asyncio.current_task()
            assert writer is not None  # this coroutine runs as the writer task
            self._forget_writer(side, writer)

    def _unqueued(self, side: Side, frame: str) -> None:
        size = sys.getsizeof(frame)
        self._queued_bytes[side] -= size
        if self._metrics is not None:
            self._metrics.send_queued(side, -size)
