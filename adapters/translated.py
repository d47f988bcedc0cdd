"""Hosts one translated station (a 1.6J or IEC 104 charger shown to the CSMS as a 2.0.1 station) for the
bridge's whole run.

```python
host = TranslatedHost(station_id, kind, store=..., connector=..., policy=..., logs=...)
await host.start()                   # its CSMS link up when there is something to say (below)
await host.serve_south(connection)   # a kind whose charger connects over OCPP-J (1.6)
await host.stop()                    # CSMS connection closed with 1001; or `await host.run()`
```

What every translated station shares is here, once; what differs is its `StationKind`, a small declared
interface each kind implements in its own module: `adapters.ocpp.v16_station.Ocpp16Kind` (the core
`bridge.stations.v16.core.Station16`; its charger connects over the OCPP server, `adapters.ocpp.south`) and
`adapters.iec104.station.Iec104Kind` (the core `bridge.stations.iec104.core.Station104`; its charger's link,
dialled out or attached by the 104 listener). The runtime builds a host per configured station from a
registry by protocol (`adapters.runtime`), and knows nothing else of the kinds.

Rules
- One core and one persistent `CoreDriver` per station, built by the kind from the station's durable
  state in the store. Effects of the kind's own (`bridge.effects.KindEffect`, e.g. a 104 command) go
  to `StationKind.handle`, in order, after the store committed what came before them.
- The CSMS connection is the station's own, kept up by a `NorthLink` (OCPP-J back-off, the CSMS's
  `RetryBackOff*` variables once set, paced across stations) from the moment there is something to
  say: at start-up when the core has an identity (a 104 table's; a 1.6 station's once its charger
  booted) or queued messages, otherwise when the charger first connects. It stays up when the charger
  drops: queued transaction events still drain, and the CSMS sees the connectors go Unavailable after
  the station's grace period, not a vanished station. While the station is served here, whatever the
  kind runs besides (`StationKind.serving`: a 104 link) runs beside it; either may be down while the
  other is up.
- Charger connections over OCPP-J come and go through `serve_south`; a second one waits for the first
  to be gone (the south server enforces the duplicate policy).
- A core that failed (its driver closed its connections with 1011) is never fed again; the next
  connection on either side, or the next input of the kind's own (`revive()` before it), is served by a core rebuilt
  from the store (`core.rebuilt` in the log), as a restart of the bridge would do, and the kind tells
  it at once what it knows (`StationKind.rebuilt`: a 104 link that is up). A store that cannot be
  read then (PostgreSQL away) leaves the core failed: the connection that came is closed with 1013
  ("store unavailable"), a kind's input is dropped (a 104 link's points are read again by the
  interrogation a rebuilt core starts), and the next input tries again; one warning
  `core.revive_failed` per `REVIVE_LOG_SECONDS` says so, with how many it suppressed (a 104 link
  delivers events every few hundred milliseconds: one traceback each filled the log before).
- Under leases (`[bridge] leases`, adapters/leases.py) the station is served (its core driven, its
  CSMS link up, what the kind serves running) only while this bridge holds its lease. A charger that
  came to this bridge takes it with force (`admit`: it left its previous bridge; an OCPP-J one through
  `serve_south`, a dial-in 104 one through the listener). A station with queued messages that nobody
  serves (its lease free or expired: the bridge that held it died or lost the database) is adopted
  without force, at start-up and by the lease keeper's sweep, and its queue delivered from here. A
  kind that dials its charger (`StationKind.dials_out`) is spread over the live replicas instead:
  the lease keeper takes free leases in batches and calls `claimed(epoch)`, which serves,
  `give_up()` closes both connections with 1001 and releases
  the lease. A core whose epoch is not the lease's is rebuilt from the store first (the previous owner
  wrote since). The lease lost (a renewal found it taken over, or a write was refused): the CSMS
  connection and the charger's close with 1013 ("station served elsewhere"), the kind is told why
  (`leaving("lease_lost")`; given up: `"given_up"`), and nothing reconnects.
- `elsewhere`: under leases, another bridge serves the station (the lease keeper's last look) and this
  one does not: neither up nor down here (/ready, the status page, the 104 link gauge).
- A hand-over is no outage: once the station is no longer served here, inputs of the kind's own reach
  no core (a 104 link closed by the hand-over queues no "Unavailable" for the next owner to send).
- `stop()` (or cancelling `run()`): the CSMS connection closes with 1001, then what the kind serves,
  and the timers stop; the store already holds everything (each change was committed before it was
  acknowledged). `stop_reconnecting()` first, when the whole bridge stops: no CSMS attempt nor dial
  after it.
- A task of what the station serves that ends by itself with an error is a bug: logged
  (`station.task_failed`, with its traceback), never silent.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine
from typing import Any, Generic, Protocol, TypeVar

from adapters.config import BridgeConfig
from adapters.connection import Connection
from adapters.driver import CoreDriver
from adapters.leases import LeaseKeeper
from adapters.ocpp.north import CsmsConnector, NorthLink
from adapters.ops.metrics import BridgeMetrics
from adapters.ops.status import StationActivity
from adapters.ops.trace import StationTrace
from adapters.store_api import StateStore, StoreError
from bridge.effects import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, KindEffect, Side, StationCore
from bridge.north.backoff import BackoffPolicy
from bridge.north.owned_variables import OwnedValues
from bridge.north.station import NorthSettings, NorthStation


def new_transaction_id() -> str:
    return str(uuid.uuid4())


def north_settings(config: BridgeConfig) -> NorthSettings:
    """What every translated station's 2.0.1 side takes from the configuration."""
    return NorthSettings(
        call_timeout=config.csms.call_timeout,
        late_answer_wait=config.csms.late_answer_wait,
        naive_times_as_utc=not config.csms.strict_timestamps,
        message_attempts=config.csms.message_attempts,
        message_attempt_interval=config.csms.message_attempt_interval,
        outbox_max_bytes=config.bridge.outbox_max_bytes,
    )


def backoff_policy(config: BridgeConfig | None) -> BackoffPolicy:
    """The CSMS link's back-off until the CSMS sets its own (`RetryBackOff*`)."""
    if config is None:
        return BackoffPolicy()
    return BackoffPolicy(
        config.csms.retry_backoff_wait_minimum,
        config.csms.retry_backoff_random_range,
        config.csms.retry_backoff_repeat_times,
    )


class TranslatedCore(StationCore, Protocol):
    """A translated station's core, as its host sees it: a `StationCore` with the 2.0.1 station the
    CSMS sees (`north`) and the variables the bridge owns (`owned`: the CSMS link's back-off and
    password)."""

    north: NorthStation
    owned: OwnedValues


C = TypeVar("C", bound=TranslatedCore)

REVIVE_LOG_SECONDS = 30.0  # at most one `core.revive_failed` per station this often


class StationKind(abc.ABC, Generic[C]):
    """What one kind of translated station adds to `TranslatedHost` (module rules). The defaults fit a
    kind whose charger connects over OCPP-J (`TranslatedHost.serve_south`) and which has no effects of
    its own; a kind overrides what it needs."""

    __slots__ = ("host",)  # slots, as the host's: one of each per station
    protocol: str = ""  # the station's protocol, in logs and metrics ("ocpp1.6", "iec104")
    dials_out = False  # the bridge reaches the charger: under leases, spread over the replicas

    def bind(self, host: TranslatedHost[C]) -> None:
        """The host this kind serves (called once, before anything else)."""
        self.host = host

    @abc.abstractmethod
    def build(self, state: dict[str, dict[str, Any]], now: float, wall: float) -> C:
        """A core from the station's durable state (`state`: what the store holds)."""

    def rebuilt(self) -> None:
        """A new core drives the station (rebuilt from the store): tell it what the kind knows."""

    def handle(self, effect: KindEffect) -> None:
        """Carry out an effect of the kind's own (after the store committed what came before it)."""
        self.host.logs[Side.SOUTH].error("station.unknown_effect", effect=repr(effect))

    def serving(self) -> list[Coroutine[Any, Any, None]]:
        """What runs while the station is served here, beside its CSMS link (cancelled when not)."""
        return []

    def leaving(self, why: str) -> None:
        """The station is no longer served here (`lease_lost`, `given_up`)."""

    def show(self) -> None:
        """Whether the station is served here, or elsewhere, changed (for a kind's own gauges)."""

    def stop_reconnecting(self) -> None:
        """The bridge is stopping: no more attempts to reach the charger."""

    def close(self) -> None:
        """The station has stopped."""


class TranslatedHost(Generic[C]):
    """One translated station: its core and driver, its CSMS link, its lease; the rest is its kind's."""

    __slots__ = (
        "_activity",
        "_closing",
        "_elsewhere",
        "_epoch",
        "_leases",
        "_metrics",
        "_north",
        "_north_link",
        "_revive_failures",
        "_revive_logged_at",
        "_serving",
        "_south",
        "_stopped",
        "_store",
        "_trace",
        "core",
        "driver",
        "kind",
        "logs",
        "station_id",
    )

    def __init__(
        self,
        station_id: str,
        kind: StationKind[C],
        *,
        store: StateStore,
        connector: CsmsConnector,
        policy: BackoffPolicy,
        logs: dict[Side, Any],
        metrics: BridgeMetrics | None = None,
        activity: StationActivity | None = None,
        leases: LeaseKeeper | None = None,
        trace: StationTrace | None = None,
    ) -> None:
        self.station_id = station_id
        self.kind = kind
        self.logs = logs
        self._store = store
        self._metrics = metrics
        self._activity = activity
        self._leases = leases
        self._trace = trace
        self._epoch: int | None = None  # the lease epoch the core was built under (leases only)
        self._serving: list[asyncio.Task[None]] = []  # CSMS link and the kind's tasks while served
        self._closing: set[asyncio.Task[None]] = set()  # closes under way after a lease was lost
        self._stopped = False  # `stop` was called: nothing is served any more
        self._revive_failures = 0  # since the last `core.revive_failed` line
        self._revive_logged_at = float("-inf")
        self._elsewhere = False  # leases: another bridge holds the lease (the keeper's last look)
        self._north: Connection | None = None
        self._south: Connection | None = None
        kind.bind(self)
        self.core, self.driver = self._build()
        self._north_link = NorthLink(
            station_id,
            connector,
            policy,
            logs[Side.NORTH],
            policy_of=lambda: self.core.owned.backoff(),
            password_of=lambda: self.core.owned.password,
        )

    def _build(self, state: dict[str, dict[str, Any]] | None = None) -> tuple[C, CoreDriver]:
        """The core and its driver, from what the store holds for this station (`state` when the
        caller read it already)."""
        loop = asyncio.get_running_loop()
        if state is None:
            state = self._store.load(self.station_id)
        core = self.kind.build(state, loop.time(), time.time())
        driver = CoreDriver(
            core,
            self.logs,
            station_id=self.station_id,
            store=self._store,
            persistent=True,
            metrics=self._metrics,
            trace=self._trace,
            on_effect=self.kind.handle,
            activity=self._activity,
            protocol=self.kind.protocol,
        )
        return core, driver

    def _rebuild(self, state: dict[str, dict[str, Any]] | None = None) -> None:
        self.driver.stop()
        self.core, self.driver = self._build(state)
        self.driver.start()
        self.kind.rebuilt()

    def revive(self) -> bool:
        """A core that failed (a bug, a store that could not write) is rebuilt from the store before
        the next input is served (the host's connections; a kind before its own inputs, which it
        feeds to `driver.feed`), as a restart of the bridge would do: the store holds everything
        that was acknowledged, and nothing else of the failed core is trusted. False: the store
        could not be read (module rules); the input is not served."""
        if not self.driver.failed:
            return True
        try:
            self._rebuild()
        except StoreError as exc:
            self._revive_failures += 1
            now = asyncio.get_running_loop().time()
            if now >= self._revive_logged_at + REVIVE_LOG_SECONDS:
                self.logs[Side.SOUTH].warning(
                    "core.revive_failed",
                    reason=str(exc)[:300],
                    suppressed=self._revive_failures - 1,
                    detail="the store could not be read: tried again at the next input",
                )
                self._revive_failures = 0
                self._revive_logged_at = now
            return False
        self._revive_failures = 0
        self._revive_logged_at = float("-inf")
        self.logs[Side.SOUTH].warning(
            "core.rebuilt", detail="station state reloaded from the store"
        )
        return True

    # --- what the runtime and the kind use ------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def served_here(self) -> bool:
        """Without leases always; under leases while this bridge holds the station's lease."""
        return self._leases is None or bool(self._serving)

    @property
    def elsewhere(self) -> bool:
        """Under leases: another bridge serves the station (neither up nor down here)."""
        return not self.served_here and self._elsewhere

    @property
    def csms_online(self) -> bool:
        return self.core.north.online

    def queued(self) -> tuple[int, float | None]:
        """(messages queued toward the CSMS, when the oldest was queued: the loop's time, or None)."""
        outbox = self.core.north.outbox
        return len(outbox), outbox.oldest_queued_at()

    async def start(self) -> None:
        if self._leases is not None:
            if self.kind.dials_out:
                self._leases.watch(
                    self.station_id, self._lease_lost, elsewhere=self._held_elsewhere
                )
                self._leases.dial_out(self.station_id, self.claimed, self.give_up)
                return
            self._leases.watch(self.station_id, self._lease_lost, self._adopt, self._held_elsewhere)
            if len(self.core.north.outbox) > 0:
                await self._adopt()
            return  # otherwise served where its charger connects (its core idle here until then)
        self.driver.start()
        if self.core.north.identity is not None or len(self.core.north.outbox) > 0:
            self._serve()

    async def serve_south(self, connection: Connection) -> None:
        """A charger's OCPP-J connection, served until it ends."""
        if self._leases is None:
            self._serve()
        elif not await self.admit():
            await connection.close(CLOSE_TRY_AGAIN_LATER, "store unavailable")
            return
        self.logs[Side.SOUTH].info("charger.connected")
        if not self.revive():
            await connection.close(CLOSE_TRY_AGAIN_LATER, "store unavailable")
            return
        self.driver.attach(Side.SOUTH, connection)
        self._south = connection
        try:
            await self.driver.serve(Side.SOUTH)
        finally:
            self._south = None
        self.logs[Side.SOUTH].info("charger.disconnected", code=connection.close_code)

    def stop_reconnecting(self) -> None:
        """The bridge is stopping: no more CSMS connection attempts nor dials (what is up stays up
        until `stop`)."""
        self._north_link.stop_reconnecting()
        self.kind.stop_reconnecting()

    async def stop(self) -> None:
        """The CSMS connection closed with 1001 first, then what the kind serves; the timers stop."""
        self._stopped = True
        leaving = self._leave(CLOSE_GOING_AWAY, "bridge shutting down")
        if leaving is not None:
            await leaving
        self.driver.stop()
        self.kind.close()

    async def run(self) -> None:
        """`start`, then until cancelled; then `stop`."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # --- serving (module rules) -----------------------------------------------------------------

    def _serve(self) -> None:
        if self._serving or self._stopped:
            return  # served already, or stopped (a claim that finished after the stop)
        runs = [(f"north:{self.station_id}", self._north_link.run(self._north_session))]
        runs += [(f"{self.kind.protocol}:{self.station_id}", run) for run in self.kind.serving()]
        for name, run in runs:
            task = asyncio.create_task(run, name=name)
            task.add_done_callback(self._task_done)
            self._serving.append(task)
        self.kind.show()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self.logs[Side.SOUTH].error("station.task_failed", task=task.get_name(), exc_info=error)

    async def _north_session(self, connection: Connection) -> None:
        self._north = connection
        try:
            if not self.revive():
                await connection.close(CLOSE_TRY_AGAIN_LATER, "store unavailable")
                return
            self.driver.attach(Side.NORTH, connection)
            await self.driver.serve(Side.NORTH)
        finally:
            self._north = None

    def _leave(
        self, code: int, reason: str, why: str | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """No longer served here: at once, nothing more is started; what closes the connections
        (`code`) and then cancels the tasks is returned, to be awaited (None: nothing was served)."""
        tasks, self._serving = self._serving, []
        if not tasks:
            return None
        if why is not None:
            self.kind.leaving(why)
        if not self._stopped:
            self.kind.show()
        connections = [c for c in (self._north, self._south) if c is not None]
        return self._close(tasks, connections, code, reason)

    @staticmethod
    async def _close(
        tasks: list[asyncio.Task[None]], connections: list[Connection], code: int, reason: str
    ) -> None:
        if connections:
            closes = asyncio.gather(*(c.close(code, reason) for c in connections))
            with contextlib.suppress(Exception):
                await asyncio.shield(closes)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a failure was logged already (`_task_done`)

    # --- leases (module rules) ------------------------------------------------------------------

    def _held_elsewhere(self, elsewhere: bool) -> None:
        """The lease keeper's look at the lease: held by another bridge, or not."""
        self._elsewhere = elsewhere
        if not self._stopped:
            self.kind.show()

    async def _take(self, *, force: bool) -> bool:
        """Hold the station's lease; the core rebuilt when its epoch is not the lease's. False:
        another bridge holds it. Raises StoreError."""
        assert self._leases is not None
        epoch = await self._leases.take(self.station_id, force=force)
        if epoch is None:
            return False
        if epoch != self._epoch:
            self._rebuild()
            self._epoch = epoch
        return True

    async def admit(self) -> bool:
        """A charger came to this bridge, which therefore serves it (force). False: the store could
        not be reached."""
        return await self._take_and_serve(force=True)

    async def claim(self) -> bool:
        """Serve the station if nobody does (its lease free or expired)."""
        return await self._take_and_serve(force=False)

    async def claimed(self, epoch: int, state: dict[str, dict[str, Any]]) -> bool:
        """The lease keeper took this dial-out station's lease for this bridge (`epoch`, one of a
        batch) and read its `state` after taking it: served, the core rebuilt from that state first
        when the epoch is not its own (the previous owner wrote since). True: served."""
        assert self._leases is not None
        if epoch != self._epoch:
            self._rebuild(state)
            self._epoch = epoch
        self._serve()
        return True

    async def _take_and_serve(self, force: bool) -> bool:
        try:
            taken = await self._take(force=force)
        except StoreError as exc:
            self.logs[Side.SOUTH].warning("lease.unavailable", reason=str(exc))
            return False
        if taken:
            self._serve()
        return taken

    async def _adopt(self) -> None:
        await self.claim()

    async def give_up(self) -> None:
        """Leave the station to another replica (more than this bridge's share)."""
        assert self._leases is not None
        self._elsewhere = True  # the replica that made this bridge give it up claims it
        leaving = self._leave(CLOSE_GOING_AWAY, "station moved to another bridge", "given_up")
        if leaving is not None:
            await leaving
        self.driver.stop()
        self._epoch = None
        try:
            await self._leases.release(self.station_id)
        except StoreError as exc:  # the lease runs out on its own
            self.logs[Side.SOUTH].warning("lease.unavailable", reason=str(exc))

    def _lease_lost(self) -> None:
        """Another bridge serves the station now: both connections close, nothing reconnects."""
        self._epoch = None
        self._elsewhere = True
        self.driver.stop()  # its timers: what it would write now is refused anyway
        leaving = self._leave(CLOSE_TRY_AGAIN_LATER, "station served elsewhere", "lease_lost")
        if leaving is not None:
            closing = asyncio.create_task(leaving)
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
