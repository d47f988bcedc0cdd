"""Hosts one IEC 104 charger as an OCPP 2.0.1 station for the bridge's whole run.

```python
table = load_table(station)          # at start-up: an invalid table is refused with PATH:LINE:COLUMN
host = Iec104Host(station, connector=..., schemas=..., store=..., new_message_id=..., logs=..., table=table)
await host.run()                     # until cancelled
```

Rules
- One `Station104` core (`bridge.iec104.station`) per configured 104 station, created from the station's
  durable state in the store, driven by a persistent `CoreDriver`: CSMS frames and timers as for every
  station, and the link's events through `CoreDriver.feed`, one batch per read or timer of the link.
- The link is an `Iec104Link` (`adapters.iec104_link`) on the bridge's event loop, around the station's
  `Session104` (`bridge.iec104.session`: the APCI link, the codec, commands and interrogations, with
  the table's timers t0–t3, k, w and time zone). Dial-out stations dial `host:port` (TLS with
  `tls = true`); dial-in stations wait for the listener (`adapters.iec104_listener`) to attach the
  charger's connection.
- The core's 104 effects reach the link through the driver's `on_effect` hook, after the state
  written before them is committed: `Send104Command` → `Iec104Link.command`, `Interrogate104` →
  `Iec104Link.interrogate`.
- The CSMS connection is the station's own, kept up by a `NorthLink` from start-up (the identity comes
  from the table, so the station can register before the charger answers); the 104 link runs beside
  it. Either may be down while the other is up.
- The station's `common_address` in the configuration overrides the table's when it is set.
- A core that failed (its driver closed the CSMS connection with 1011) is never fed again; the next link
  event or CSMS connection is served by a core rebuilt from the store (`core.rebuilt` in the log).
- With a configuration, message traces follow its `[bridge] trace_*` settings (`adapters.trace`).
- With `metrics`, the link's state is `ocpp_bridge_iec104_links{state="up"|"down"|"elsewhere"}` from
  start to stop (down until the first LinkUp; `elsewhere` under leases while another bridge holds the
  station's lease: neither up nor down here, so "104 link down" alerts only where it is served), every drop counts in `ocpp_bridge_iec104_link_drops_total{reason}` and
  every notice (foreign common address, unreadable or unmapped ASDU) in
  `ocpp_bridge_iec104_notices_total{kind}`; the runtime reads `link.received` and the core's outbox at
  scrape time.
- Under leases (`[bridge] leases`, adapters/leases.py) the station is served (its core driven, its
  104 link dialled or attached, its CSMS link up) only while this bridge holds its lease. Dial-in: the
  listener hands a charger's connection over once `admit()` took the lease (force: the charger left
  its previous bridge). Dial-out: the lease keeper spreads the stations over the live replicas
  (`claim()` takes a free lease and dials; `give_up()` closes both connections with 1001 and releases
  the lease). A dial-in station with queued messages nobody serves is adopted as translated stations
  are (its CSMS link only, until its charger dials in). A core whose epoch is not the lease's is
  rebuilt from the store first (the previous owner wrote since). The lease lost (a renewal found it
  taken over, or a write was refused): the CSMS connection closes with 1013 ("station served
  elsewhere"), the 104 connection closes (kind `lease_lost`; given up: `given_up`), dialling stops.
- A hand-over is no outage: once the station is no longer served here (given up, lease lost) its link
  events reach no core, so the 104 link closed by the hand-over queues no "Unavailable"
  StatusNotification for the next owner to send; the next owner's core, rebuilt from the store,
  reports what its own link finds.
- Cancelling `Iec104Host.run` stops the station: the CSMS connection is closed with 1001, the 104
  connection closed, the timers cancelled; everything the core acknowledged is already in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

from adapters.config import BridgeConfig, Iec104Station
from adapters.connection import Connection
from adapters.driver import CoreDriver
from adapters.iec104_link import DialOut, Iec104Link
from adapters.leases import LeaseKeeper
from adapters.mapping_files import (
    SUFFIXES,
    MappingFileError,
    MappingProblem,
    compile_file,
    load_reference,
    shipped_tables,
)
from adapters.metrics import BridgeMetrics
from adapters.north import CsmsConnector, NorthLink, owned_defaults
from adapters.status import StationActivity
from adapters.store_api import StateStore, StoreError
from adapters.tls import iec104_client_context
from adapters.trace import open_trace
from bridge.backoff import BackoffPolicy
from bridge.effects import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, Side
from bridge.iec104 import CompiledTable
from bridge.iec104.apci import LinkParameters
from bridge.iec104.compiled import asdu_format
from bridge.iec104.session import LinkNotice, Session104, SessionSettings
from bridge.iec104.southbound import (
    CommandConfirmed,
    Interrogate104,
    LinkDown,
    LinkEvent,
    LinkUp,
    Send104Command,
    Send104Private,
)
from bridge.iec104.station import Station104, Station104Settings
from bridge.north_station import NorthSettings
from bridge.rpc import MessageIdSource
from bridge.schema import SchemaRegistry


def new_transaction_id() -> str:
    return str(uuid.uuid4())


def load_table(station: Iec104Station) -> CompiledTable:
    """The station's mapping table compiled for its connectors. Raises MappingFileError.

    `mapping` is a shipped table's name (`gb-dc-charger`: no '/', no .yaml suffix), found in the
    installed package from any working directory, or a table file's path. `mappings/<name>.yaml` (the
    repository's layout, as in the configuration examples) that is no file relative to the working
    directory is the installed package's file of that name."""
    reference = str(station.mapping)
    if "/" not in reference and not reference.endswith(SUFFIXES):
        if reference not in shipped_tables():
            known = ", ".join(shipped_tables())
            raise MappingFileError(
                [
                    MappingProblem(
                        reference, 1, 1, f"no shipped table of that name (shipped: {known})"
                    )
                ]
            )
        return load_reference(reference).compile(station.connectors)
    path = Path(reference)
    if not path.exists() and path.stem in shipped_tables():
        if path.parent.name == "mappings" and path.suffix == ".yaml":
            return load_reference(path.stem).compile(station.connectors)
        hint = f'no such file (the shipped table is mapping = "{path.stem}")'
        raise MappingFileError([MappingProblem(reference, 1, 1, hint)])
    return compile_file(path, station.connectors)


def common_address_of(station: Iec104Station, table: CompiledTable) -> int:
    if "common_address" in station.model_fields_set:
        return station.common_address
    return table.station.common_address


def link_parameters(table: CompiledTable) -> LinkParameters:
    link = table.link
    return LinkParameters(t0=link.t0, t1=link.t1, t2=link.t2, t3=link.t3, k=link.k, w=link.w)


def session_settings(station: Iec104Station, table: CompiledTable) -> SessionSettings:
    options = table.station
    return SessionSettings(
        common_address=common_address_of(station, table),
        time_zone=zoneinfo.ZoneInfo(options.time_zone),
        link=link_parameters(table),
        command_timeout=options.command_timeout,
        expects_act_term=options.expects_act_term,
        general_interrogation_interval=options.general_interrogation_interval,
        counter_interrogation_interval=options.counter_interrogation_interval,
        clock_sync=options.clock_sync,
        asdu_format=asdu_format(table),
        registration=table.registration,
        registration_id=station.registration_id,
        private_types=frozenset(rule.type_id for rule in table.private.values()),
        other_addresses=frozenset(table.connector_addresses.values()),
        address_of_ioa={
            ioa: table.connector_addresses[rule.connector]
            for ioa, rule in table.controls.items()
            if rule.connector is not None and rule.connector in table.connector_addresses
        },
    )


def dial_out_of(station: Iec104Station) -> DialOut | None:
    """Where a dial-out station's charger listens, with its TLS context; None for dial-in."""
    if station.dial != "out" or station.host is None:
        return None
    context = iec104_client_context(station)
    return DialOut(station.host, station.port, context, station.host if context else None)


def station104_settings(config: BridgeConfig | None) -> Station104Settings:
    if config is None:
        return Station104Settings()
    return Station104Settings(
        north=NorthSettings(
            call_timeout=config.csms.call_timeout,
            late_answer_wait=config.csms.late_answer_wait,
            naive_times_as_utc=not config.csms.strict_timestamps,
            message_attempts=config.csms.message_attempts,
            message_attempt_interval=config.csms.message_attempt_interval,
            outbox_max_bytes=config.bridge.outbox_max_bytes,
        ),
        owned=owned_defaults(config.csms),
    )


def backoff_policy(config: BridgeConfig | None) -> BackoffPolicy:
    if config is None:
        return BackoffPolicy()
    return BackoffPolicy(
        config.csms.retry_backoff_wait_minimum,
        config.csms.retry_backoff_random_range,
        config.csms.retry_backoff_repeat_times,
    )


class Iec104Host:
    """One 104 station: its core, driver, 104 link and CSMS link."""

    def __init__(
        self,
        station: Iec104Station,
        *,
        connector: CsmsConnector,
        schemas: SchemaRegistry,
        store: StateStore,
        new_message_id: MessageIdSource,
        logs: dict[Side, Any],
        config: BridgeConfig | None = None,
        table: CompiledTable | None = None,
        settings: Station104Settings | None = None,
        policy: BackoffPolicy | None = None,
        metrics: BridgeMetrics | None = None,
        dial_out: DialOut | None = None,
        activity: StationActivity | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self.station = station
        self._activity = activity
        self._leases = leases
        self._epoch: int | None = None  # the lease epoch the core was built under (leases only)
        self._serving: list[asyncio.Task[None]] = []  # link and CSMS link while served (leases)
        self._closing: set[asyncio.Task[None]] = set()  # closes under way after a lease was lost
        self._stopped = False  # `run` ended: nothing is served any more
        self._elsewhere = False  # leases: another bridge holds the lease (the keeper's last look)
        self._logs = logs
        self.table = table or load_table(station)
        self._schemas = schemas
        self._store = store
        self._new_message_id = new_message_id
        self._settings = settings or station104_settings(config)
        self._metrics = metrics
        self._trace = open_trace(config, station.id) if config is not None else None
        self.core, self.driver = self._build()
        loop = asyncio.get_running_loop()
        self.session = Session104(session_settings(station, self.table), now=loop.time())
        self.link = Iec104Link(
            station.id,
            self.session,
            consumer=self._link_events,
            log=logs[Side.SOUTH],
            dial_out=dial_out if dial_out is not None else dial_out_of(station),
            connect_timeout=self.table.link.t0,
            on_drop=metrics.iec104_drop if metrics is not None else None,
            on_notice=self._notice,
        )
        self._north_link = NorthLink(
            station.id,
            connector,
            policy or backoff_policy(config),
            logs[Side.NORTH],
            policy_of=lambda: self.core.owned.backoff(),
            password_of=lambda: self.core.owned.password,
        )
        self._north: Connection | None = None
        self._link_state = metrics.iec104_link("down") if metrics is not None else None
        if leases is not None:
            if self.link.dial_out is None:
                leases.watch(station.id, self._lease_lost, self._adopt, self._held_elsewhere)
            else:
                leases.watch(station.id, self._lease_lost, elsewhere=self._held_elsewhere)
                leases.dial_out(station.id, self.claim, self.give_up)

    def _notice(self, notice: LinkNotice) -> None:
        self._logs[Side.SOUTH].warning(
            "iec104.notice", kind=notice.kind, detail=notice.detail, suppressed=notice.suppressed
        )

    def _build(self) -> tuple[Station104, CoreDriver]:
        """The core and its driver, from what the store holds for this station."""
        core = Station104(
            self.station.id,
            self.table,
            self._schemas,
            self._new_message_id,
            new_transaction_id,
            self._store.load(self.station.id),
            now=asyncio.get_running_loop().time(),
            wall=time.time(),
            settings=self._settings,
            zone=zoneinfo.ZoneInfo(self.table.station.time_zone),
        )
        driver = CoreDriver(
            core,  # type: ignore[arg-type]  # its effects() also yields 104 effects
            self._logs,
            station_id=self.station.id,
            store=self._store,
            persistent=True,
            metrics=self._metrics,
            trace=self._trace,
            on_effect=self._south_effect,
            activity=self._activity,
            protocol="iec104",
        )
        return core, driver

    def _revive(self) -> None:
        """A core that failed (a bug, a store that could not write) is rebuilt from the store, as a
        restart of the bridge would do; it learns at once whether the 104 link is up."""
        if not self.driver.failed:
            return
        self.driver.stop()
        self._logs[Side.SOUTH].warning(
            "core.rebuilt", detail="station state reloaded from the store"
        )
        self.core, self.driver = self._build()
        self.driver.start()
        if self.link.is_up:
            self.driver.feed(self.core.link_up)
            self.link.interrogate(False)  # the new core knows no values yet

    @property
    def served_here(self) -> bool:
        """Without leases always; under leases while this bridge holds the station's lease."""
        return self._leases is None or bool(self._serving)

    @property
    def elsewhere(self) -> bool:
        """Under leases: another bridge serves the station (neither up nor down here)."""
        return not self.served_here and self._elsewhere

    def _held_elsewhere(self, elsewhere: bool) -> None:
        """The lease keeper's look at the lease: held by another bridge, or not."""
        self._elsewhere = elsewhere
        self._show_state()

    def _show_state(self) -> None:
        if self._link_state is None or self._stopped:
            return
        if not self.served_here:
            self._link_state.set("elsewhere" if self._elsewhere else "down")
        else:
            self._link_state.set("up" if self.link.is_up else "down")

    def _link_events(self, events: list[LinkEvent]) -> None:
        if not self.served_here:
            # the link closed by a hand-over (given up, lease lost): not the charger's status, and
            # the next owner reports what its own link finds (module rules)
            self._show_state()
            return
        self._revive()
        core = self.core
        for event in events:
            kind = type(event)
            if kind is CommandConfirmed:
                assert isinstance(event, CommandConfirmed)
                self._logs[Side.SOUTH].info(
                    "iec104.command",
                    command=event.command_id,
                    ioa=f"0x{event.ioa:04X}",
                    positive=event.positive,
                    detail=event.detail,
                )
            elif kind is LinkUp or kind is LinkDown:
                self._show_state()

        def feed(now: float, wall: float) -> None:
            for event in events:
                core.handle_link_event(event, now, wall)

        self.driver.feed(feed, link_events=events)

    def _south_effect(self, effect: Any) -> None:
        if isinstance(effect, Send104Command):
            self.link.command(effect)
        elif isinstance(effect, Interrogate104):
            self.link.interrogate(effect.counters)
        elif isinstance(effect, Send104Private):
            self.link.send_private(effect)
        else:
            self._logs[Side.SOUTH].error("iec104.unknown_effect", effect=repr(effect))

    async def _north_session(self, connection: Connection) -> None:
        self._north = connection
        try:
            self._revive()
            self.driver.attach(Side.NORTH, connection)
            await self.driver.serve(Side.NORTH)
        finally:
            self._north = None

    def stop_reconnecting(self) -> None:
        """The bridge is stopping: no more CSMS connection attempts nor 104 dials (what is up stays up
        until `run` is cancelled)."""
        self._north_link.stop_reconnecting()
        self.link.stop_dialing()

    # --- leases (module rules) -----------------------------------------------------------------------

    async def _take(self, *, force: bool) -> bool:
        """Hold the station's lease; the core rebuilt when its epoch is not the lease's. False:
        another bridge holds it. Raises StoreError."""
        assert self._leases is not None
        epoch = await self._leases.take(self.station.id, force=force)
        if epoch is None:
            return False
        if epoch != self._epoch:
            self.driver.stop()
            self.core, self.driver = self._build()
            self.driver.start()
            self._epoch = epoch
            if self.link.is_up:
                self.driver.feed(self.core.link_up)
                self.link.interrogate(False)
        return True

    async def admit(self) -> bool:
        """Dial-in: the charger dialled into this bridge, which therefore serves it (force)."""
        return await self._take_and_serve(force=True)

    async def claim(self) -> bool:
        """Dial-out: serve the station if nobody does (its lease free or expired)."""
        return await self._take_and_serve(force=False)

    async def _take_and_serve(self, force: bool) -> bool:
        try:
            taken = await self._take(force=force)
        except StoreError as exc:
            self._logs[Side.SOUTH].warning("lease.unavailable", reason=str(exc))
            return False
        if taken:
            self._serve()
        return taken

    async def _adopt(self) -> None:
        await self.claim()

    async def give_up(self) -> None:
        """Dial-out: leave the station to another replica (more than this bridge's share)."""
        assert self._leases is not None
        self._elsewhere = True  # the replica that made this bridge give it up claims it
        await self._unserve(CLOSE_GOING_AWAY, "station moved to another bridge", "given_up")
        self.driver.stop()
        self._epoch = None
        try:
            await self._leases.release(self.station.id)
        except StoreError as exc:  # the lease runs out on its own
            self._logs[Side.SOUTH].warning("lease.unavailable", reason=str(exc))

    def _lease_lost(self) -> None:
        """Another bridge serves the station now: both connections close, no more dialling."""
        self._epoch = None
        self._elsewhere = True
        self.driver.stop()  # its timers: what it would write now is refused anyway
        closing = asyncio.create_task(
            self._unserve(CLOSE_TRY_AGAIN_LATER, "station served elsewhere", "lease_lost")
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _serve(self) -> None:
        if self._serving or self._stopped:
            return  # served already, or `run` ended (a claim that finished after the stop)
        self._serving = [
            asyncio.create_task(self.link.run(), name=f"iec104:{self.station.id}"),
            asyncio.create_task(
                self._north_link.run(self._north_session), name=f"north:{self.station.id}"
            ),
        ]
        self._show_state()

    async def _unserve(self, code: int, reason: str, kind: str | None = None) -> None:
        """The CSMS connection closed with `code`, then the 104 link (its run's end closes it, with
        the link drop `kind`: lease_lost, given_up; None: the bridge stopping)."""
        tasks, self._serving = self._serving, []
        if not tasks:
            return
        if kind is not None:
            self.link.closing_for(kind, kind.replace("_", " "))
        self._show_state()
        north = self._north
        if north is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(north.close(code, reason))
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run_leased(self) -> None:
        """Under leases: served while the lease is held (above); until cancelled."""
        try:
            await asyncio.Event().wait()
        finally:
            self._stopped = True
            await self._unserve(CLOSE_GOING_AWAY, "bridge shutting down")
            self.driver.stop()
            if self._link_state is not None:
                self._link_state.close()

    async def run(self) -> None:
        """Until cancelled; then the CSMS connection is closed with 1001 first, then the link."""
        if self._leases is not None:
            await self._run_leased()
            return
        self.driver.start()
        tasks = [
            asyncio.create_task(self.link.run(), name=f"iec104:{self.station.id}"),
            asyncio.create_task(
                self._north_link.run(self._north_session), name=f"north:{self.station.id}"
            ),
        ]
        try:
            # wait(), not a TaskGroup: cancelling this coroutine must not cancel the CSMS link
            # before it is closed with 1001 below.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a link that ended by itself is a bug: let it be seen
        finally:
            north = self._north
            if north is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(north.close(CLOSE_GOING_AWAY, "bridge shutting down"))
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task  # a failure was raised above already
            self.driver.stop()
            if self._link_state is not None:
                self._link_state.close()
