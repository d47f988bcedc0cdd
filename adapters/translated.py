"""Hosts one translated station (an OCPP 1.6J charger shown as 2.0.1) for the bridge's whole run.

Rules
- One `Station16` core and one persistent `CoreDriver` per configured 1.6 station, created at start-up
  from the station's durable state in the store.
- The CSMS connection is the station's own, kept up by a `NorthLink` (back-off, paced across stations)
  from the moment there is something to say: at start-up when the store knows the station (its identity
  or queued messages), otherwise when the charger first connects. It stays up when the charger drops:
  queued transaction events still drain, and the CSMS sees the connectors go Unavailable after the
  station's grace period, not a vanished station.
- Charger connections come and go through `serve_south`; a second one waits for the first to be gone
  (the south server enforces the duplicate policy).
- A core that failed (its driver closed both connections with 1011) is never fed again; the next
  connection on either side is served by a core rebuilt from the store (`core.rebuilt` in the log).
- `stop()` closes the CSMS connection with 1001 and stops the timer; the store already holds everything
  (each change was committed before it was acknowledged).
- Under leases (`[bridge] leases`, adapters/leases.py) the station is served only while this bridge
  holds its lease: a charger that connects takes it (force: it left its previous bridge), and a core
  whose epoch is not the lease's is rebuilt from the store first (the previous owner wrote since);
  the CSMS link starts with the lease, not at start-up. A station with queued messages that nobody
  serves (its lease free or expired: the bridge that held it died or lost the database) is adopted
  without force, at start-up and by the lease keeper's sweep, and its queue delivered from here. When the lease is lost (a renewal
  found it taken over, or a write was refused), the CSMS link stops and both connections close (1013,
  "station served elsewhere").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from adapters.config import BridgeConfig, OcppStation
from adapters.connection import Connection
from adapters.device_model_file import load_config_table
from adapters.driver import CoreDriver
from adapters.leases import LeaseKeeper
from adapters.metrics import BridgeMetrics
from adapters.north import CsmsConnector, NorthLink, owned_defaults
from adapters.status import StationActivity
from adapters.store_api import StateStore, StoreError
from adapters.trace import open_trace
from bridge.backoff import BackoffPolicy
from bridge.effects import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, Side
from bridge.north_station import NorthSettings
from bridge.rpc import MessageIdSource
from bridge.schema import SchemaRegistry
from bridge.v16.core import Station16, Station16Settings
from bridge.v16.device_model import ConfigTable
from bridge.v16.id_token import DEFAULT_RULE, IdTokenTypeRule
from bridge.v16.timestamps import TimestampPolicy


def new_transaction_id() -> str:
    return str(uuid.uuid4())


def station16_settings(
    config: BridgeConfig, station: OcppStation, table: ConfigTable
) -> Station16Settings:
    rule = (
        IdTokenTypeRule(fixed=station.id_token_type)
        if station.id_token_type is not None
        else DEFAULT_RULE
    )
    return Station16Settings(
        config_table=table,
        id_rule=rule,
        timestamps=TimestampPolicy(assumed_offset_minutes=station.timestamp_offset_minutes),
        charger_call_timeout=config.south.call_timeout,
        north=NorthSettings(
            call_timeout=config.csms.call_timeout,
            late_answer_wait=config.csms.late_answer_wait,
            naive_times_as_utc=not config.csms.strict_timestamps,
            message_attempts=config.csms.message_attempts,
            message_attempt_interval=config.csms.message_attempt_interval,
            outbox_max_bytes=config.bridge.outbox_max_bytes,
        ),
        offline_grace=station.offline_grace,
        offline_authorize=station.offline_authorize,
        owned=owned_defaults(config.csms),
    )


class TranslatedStation:
    def __init__(
        self,
        config: BridgeConfig,
        station: OcppStation,
        *,
        schemas: SchemaRegistry,
        store: StateStore,
        connector: CsmsConnector,
        new_message_id: MessageIdSource,
        logs: dict[Side, Any],
        table: ConfigTable | None = None,
        metrics: BridgeMetrics | None = None,
        activity: StationActivity | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self.station = station
        self._leases = leases
        self._epoch: int | None = None  # the lease epoch the core was built under (leases only)
        self._south: Connection | None = None
        self._closing: set[asyncio.Task[None]] = set()  # closes under way after a lease was lost
        self._activity = activity
        self._logs = logs
        self._settings = station16_settings(
            config, station, table or load_config_table(station.device_model)
        )
        self._schemas = schemas
        self._store = store
        self._new_message_id = new_message_id
        self._metrics = metrics
        self._trace = open_trace(config, station.id)
        self.core, self._driver = self._build()
        policy = BackoffPolicy(
            config.csms.retry_backoff_wait_minimum,
            config.csms.retry_backoff_random_range,
            config.csms.retry_backoff_repeat_times,
        )
        self._link = NorthLink(
            station.id,
            connector,
            policy,
            logs[Side.NORTH],
            policy_of=lambda: self.core.owned.backoff(),
            password_of=lambda: self.core.owned.password,
        )
        self._north_task: asyncio.Task[None] | None = None
        self._north: Connection | None = None

    def _build(self) -> tuple[Station16, CoreDriver]:
        """The core and its driver, from what the store holds for this station."""
        core = Station16(
            self.station.id,
            self._schemas,
            self._new_message_id,
            new_transaction_id,
            self._store.load(self.station.id),
            now=asyncio.get_running_loop().time(),
            wall=time.time(),
            settings=self._settings,
        )
        driver = CoreDriver(
            core,
            self._logs,
            station_id=self.station.id,
            store=self._store,
            persistent=True,
            metrics=self._metrics,
            trace=self._trace,
            activity=self._activity,
            protocol="ocpp1.6",
        )
        return core, driver

    def _revive(self) -> None:
        """A core that failed (a bug, a store that could not write) is rebuilt from the store before the
        next connection is served, as a restart of the bridge would do: the store holds everything
        that was acknowledged, and nothing else of the failed core is trusted."""
        if not self._driver.failed:
            return
        self._driver.stop()
        self._logs[Side.SOUTH].warning(
            "core.rebuilt", detail="station state reloaded from the store"
        )
        self.core, self._driver = self._build()
        self._driver.start()

    async def start(self) -> None:
        if self._leases is not None:
            self._leases.watch(self.station.id, self._lease_lost, self._adopt)
            if len(self.core.north.outbox) > 0:
                await self._adopt()
            return  # otherwise served where its charger connects (its core idle here until then)
        self._driver.start()
        if self.core.north.identity is not None or len(self.core.north.outbox) > 0:
            self._ensure_north()

    async def _adopt(self) -> None:
        """Serve the station if nobody does (its lease free or expired): its queued messages go to
        the CSMS from here (at start-up, and when the bridge that held it stopped renewing)."""
        try:
            if await self._take_lease(force=False):
                self._ensure_north()
        except StoreError as exc:
            self._logs[Side.NORTH].warning("lease.unavailable", reason=str(exc))

    async def _take_lease(self, *, force: bool) -> bool:
        """Hold the station's lease (module rules); the core rebuilt when its epoch is not the
        lease's. False: another bridge holds it. Raises StoreError."""
        assert self._leases is not None
        epoch = await self._leases.take(self.station.id, force=force)
        if epoch is None:
            return False
        if epoch != self._epoch:
            self._driver.stop()
            self.core, self._driver = self._build()
            self._driver.start()
            self._epoch = epoch
        return True

    def _lease_lost(self) -> None:
        """Another bridge serves the station now: stop the CSMS link, close both connections."""
        self._epoch = None
        task, self._north_task = self._north_task, None
        if task is not None:
            task.cancel()
        self._driver.stop()  # its timers: what it would write now is refused anyway
        for connection in (self._north, self._south):
            if connection is not None:
                closing = asyncio.create_task(
                    connection.close(CLOSE_TRY_AGAIN_LATER, "station served elsewhere")
                )
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    def _ensure_north(self) -> None:
        if self._north_task is None:
            self._north_task = asyncio.create_task(
                self._link.run(self._north_session), name=f"north:{self.station.id}"
            )

    async def _north_session(self, connection: Connection) -> None:
        self._north = connection
        try:
            self._revive()
            self._driver.attach(Side.NORTH, connection)
            await self._driver.serve(Side.NORTH)
        finally:
            self._north = None

    async def serve_south(self, connection: Connection) -> None:
        if self._leases is not None:
            try:
                await self._take_lease(force=True)
            except StoreError as exc:
                self._logs[Side.SOUTH].warning("lease.unavailable", reason=str(exc))
                await connection.close(CLOSE_TRY_AGAIN_LATER, "store unavailable")
                return
        self._ensure_north()
        self._logs[Side.SOUTH].info("charger.connected")
        self._revive()
        self._driver.attach(Side.SOUTH, connection)
        self._south = connection
        try:
            await self._driver.serve(Side.SOUTH)
        finally:
            self._south = None
        self._logs[Side.SOUTH].info("charger.disconnected", code=connection.close_code)

    def stop_reconnecting(self) -> None:
        """The bridge is stopping: no more CSMS connection attempts (the open one stays until `stop`)."""
        self._link.stop_reconnecting()

    async def stop(self) -> None:
        north = self._north
        if north is not None:
            await north.close(CLOSE_GOING_AWAY, "bridge shutting down")
        if self._north_task is not None:
            self._north_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._north_task
        self._driver.stop()
