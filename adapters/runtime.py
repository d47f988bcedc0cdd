"""The running bridge: wires configuration, schemas, the charger-facing server and the CSMS connections.

Rules
- One `Runtime` per process. `start()` loads the official schemas, builds the TLS contexts once, opens the
  charger-facing listener (every port, the 104 and health ones too, is bound before any station starts;
  one that cannot be is a `ConfigError` of one line, what had started is stopped again, and a charger
  connecting meanwhile waits for its station); `stop()` shuts down gracefully: the listener stops, every charger connection is
  closed with 1001, and with it each station's CSMS connection (1001), within `shutdown_timeout`;
  before anything is closed, every CSMS link and 104 dial-out stops reconnecting (no attempt, wait
  or line about one after `bridge.stopping`).
- Per station kind:
  - `ocpp2.0.1`: pass-through (`bridge.stations.passthrough.core`). When the charger's connection is up the CSMS
    connection is opened (part 4 §6.2); if the CSMS cannot be reached the charger is closed with 1013
    ("try again later") and retries with its own back-off, queueing as it would with a direct link.
    Under `[bridge] leases` the charger's connection holds the station's lease while it lasts
    (`adapters.leases.ConnectionLeases`: taken before the CSMS connection opens; lost, the charger is
    closed with 1013 "station served elsewhere"); the store is then opened even with no translated
    station.
  - translated (`TRANSLATED`, a registry: protocol → how the station's host is made): one long-lived
    `adapters.translated.TranslatedHost` per configured station, its state in the store (`[bridge]
    store`, opened at start, closed at stop), its own CSMS connection kept up independently of the
    charger's; its kind is `ocpp1.6` (`adapters.ocpp.v16_station`: the charger connects to the OCPP
    server, which hands the connection to the host) or `iec104` (`adapters.iec104.station`: the host
    runs the station's 104 link; its mapping table is compiled at start-up and a broken one is refused
    with `PATH:LINE:COLUMN: message`; dial-in links are attached by the one 104 listener). The runtime
    builds, starts, admits (leases) and stops every host the same way; `stop()` stops them (CSMS
    connections closed with 1001) before the store is closed.
- Tables are loaded once per file (`StationTables`): a 1.6 configuration-key table and a compiled 104
  mapping table are immutable, so every station naming the same file (and, for 104, the same connector
  count) shares one. (Parsed per station, the shipped configuration-key table alone cost 34 KiB of every
  1.6 station's 83 KiB, measured with `make bench-quick`.)
- Message ids come from one process-wide source (random prefix + counter).
- Health and metrics (`adapters.ops.health`, `adapters.ops.metrics`): when `[bridge] health` is set, the endpoint
  starts once the charger-facing listener is up, with a task sampling the event loop's lag; `stop()` turns
  /ready to 503 first (so a load balancer drains), closes the connections, then stops the endpoint. Every
  `CoreDriver` gets `metrics=self.metrics`: it counts frames and connected stations by itself.
- Readiness: /ready's status is `readiness()` (configuration loaded, charger listener up and not
  stopping, store open when a station needs one). Its `stations` body is `stations_report()`: every
  station's charger side (OCPP: connected, else since when and the close code; 104: link up, else the
  last drop reason or failed attempts) and CSMS side (connected, else the last connect failure;
  registered: the CSMS's answer to the BootNotification when it is not Accepted), counted over all
  stations, the first `MAX_LISTED_STATIONS` down listed by id. Under leases a station another replica
  serves (`served_elsewhere`) is neither up nor down here: counted as `elsewhere`; with leases,
  `replicas_config_differs` lists the live replicas whose station list differs. A pass-through station's registration
  is known only with the status page on (its frames are read only then).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.config import BridgeConfig, ConfigError, Iec104Station, OcppStation
from adapters.connection import Connection
from adapters.device_model_file import DeviceModelFileError, load_config_table
from adapters.driver import CoreDriver
from adapters.ids import message_id_source
from adapters.iec104.link import Iec104Link
from adapters.iec104.listener import Iec104Listener
from adapters.iec104.station import (
    Iec104Kind,
    common_address_of,
    iec104_host,
    link_parameters,
    load_table,
)
from adapters.leases import ConnectionLeases, LeaseKeeper, station_list_hash
from adapters.mapping_files import MappingFileError
from adapters.ocpp.north import CsmsConnector, CsmsUnavailable, Pacer
from adapters.ocpp.south import SouthServer
from adapters.ocpp.v16_station import ocpp16_host
from adapters.ops.health import HealthServer
from adapters.ops.logs import get_logger, station_logger
from adapters.ops.metrics import BridgeMetrics
from adapters.ops.status import StationActivity, StatusQuery, snapshot
from adapters.ops.trace import open_trace
from adapters.schemas import OfficialSchemas
from adapters.store_api import StateStore, StoreError
from adapters.store_open import open_store
from adapters.store_pg import PgStore
from adapters.tls import csms_client_context, iec104_server_context, south_server_context
from adapters.translated import TranslatedHost
from bridge.effects import CLOSE_TRY_AGAIN_LATER, Side
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.apci import LinkParameters
from bridge.stations.iec104.registration import RegistrationSpec
from bridge.stations.passthrough.core import PassThroughStation
from bridge.stations.v16.device_model import ConfigTable

SUPPORTED_PROTOCOLS = frozenset({"ocpp2.0.1", "ocpp1.6", "iec104"})
# /ready lists at most this many stations that are down (the counts cover all of them)
MAX_LISTED_STATIONS = 100


class StationTables:
    """Each table file the stations name, loaded (and compiled) once and shared by those stations."""

    def __init__(self) -> None:
        self._config: dict[Path | None, ConfigTable] = {}
        self._mappings: dict[tuple[Path, int], CompiledTable] = {}

    def config_table(self, path: Path | None) -> ConfigTable:
        """A 1.6 station's configuration-key table (None: the shipped one). Raises
        DeviceModelFileError."""
        table = self._config.get(path)
        if table is None:
            table = self._config[path] = load_config_table(path)
        return table

    def mapping_table(self, station: Iec104Station) -> CompiledTable:
        """A 104 station's mapping table compiled for its connectors. Raises MappingFileError."""
        key = (station.mapping, station.connectors)
        table = self._mappings.get(key)
        if table is None:
            table = self._mappings[key] = load_table(station)
        return table


def check_supported(config: BridgeConfig, tables: StationTables | None = None) -> StationTables:
    """Refuse, at start-up, what this version cannot run and every station file that is broken.

    Returns the tables it loaded, for the stations to share."""
    tables = tables or StationTables()
    problems = [
        f"stations: {station.id!r}: protocol {station.protocol} is not supported by this version"
        " of ocpp-bridge yet"
        for station in config.stations
        if station.protocol not in SUPPORTED_PROTOCOLS
    ]
    dial_in: dict[int, str] = {}
    registered: dict[str, str] = {}
    for index, station in enumerate(config.stations):
        if isinstance(station, Iec104Station):
            where = config.where(("stations", index, "mapping"))
            try:
                table = tables.mapping_table(station)
            except MappingFileError as exc:
                problems.extend(f"{where}: stations: {station.id!r}: {p}" for p in exc.problems)
                continue
            if station.registration_id is not None and table.registration is None:
                problems.append(
                    f"stations: {station.id!r}: registration_id is set, but its table"
                    f" ({station.mapping}) declares no registration frame"
                )
            if station.registration_id is not None:
                other_id = registered.setdefault(station.registration_id, station.id)
                if other_id != station.id:
                    problems.append(
                        f"stations: {other_id!r} and {station.id!r} have the same"
                        f" registration_id {station.registration_id!r}"
                    )
            if station.dial == "in" and station.registration_id is None:
                address = common_address_of(station, table)
                other = dial_in.setdefault(address, station.id)
                if other != station.id:
                    problems.append(
                        f"stations: {other!r} and {station.id!r} dial in with the same common"
                        f" address {address} (it is how the bridge tells them apart)"
                    )
        if isinstance(station, OcppStation) and (
            station.protocol == "ocpp1.6" or station.device_model is not None
        ):
            try:
                tables.config_table(station.device_model)
            except DeviceModelFileError as exc:
                where = config.where(("stations", index, "device_model"))
                problems.extend(f"{where}: stations: {station.id!r}: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return tables


def bind_reason(exc: OSError) -> str:
    """Why a listening socket could not be opened, in the operating system's words."""
    if isinstance(exc, socket.gaierror):
        return f"host name does not resolve ({exc.strerror})"
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _more_lenient(a: LinkParameters, b: LinkParameters) -> LinkParameters:
    """Timers for a dial-in connection before it is known which table applies: the longest of each."""
    return LinkParameters(
        t0=max(a.t0, b.t0), t1=max(a.t1, b.t1), t2=max(a.t2, b.t2), t3=max(a.t3, b.t3),
        k=max(a.k, b.k), w=max(a.w, b.w),
    )  # fmt: skip


def _ocpp16_host(runtime: Runtime, station: Any) -> TranslatedHost[Any]:
    assert isinstance(station, OcppStation)
    table = runtime.tables.config_table(station.device_model)
    return ocpp16_host(runtime.config, station, table=table, **runtime.host_parts(station))


def _iec104_host(runtime: Runtime, station: Any) -> TranslatedHost[Any]:
    assert isinstance(station, Iec104Station)
    table = runtime.tables.mapping_table(station)
    return iec104_host(station, config=runtime.config, table=table, **runtime.host_parts(station))


# protocol -> how a translated station's host is made (stations of other protocols are passed through)
TRANSLATED: dict[str, Callable[[Runtime, Any], TranslatedHost[Any]]] = {
    "ocpp1.6": _ocpp16_host,
    "iec104": _iec104_host,
}


class Runtime:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        schemas: OfficialSchemas | None = None,
        tables: StationTables | None = None,
    ) -> None:
        self.tables = tables if tables is not None else check_supported(config)
        self.config = config
        self._schemas = schemas
        self._log = get_logger()
        self._south: SouthServer | None = None
        self._connector: CsmsConnector | None = None
        self._hosts: dict[str, TranslatedHost[Any]] = {}  # translated stations by id
        self._links: dict[str, Iec104Kind] = {}  # 104 stations by id: the listener's, and reports
        self._iec104_listener: Iec104Listener | None = None
        self.iec104_address: tuple[str, int] | None = None
        self._new_message_id = message_id_source()
        self.south_address: tuple[str, int] | None = None
        self.metrics = BridgeMetrics(protocols={station.protocol for station in config.stations})
        self.metrics.set_outbox_source(self.outbox_stats)
        self.metrics.set_iec104_points_source(
            lambda: sum(kind.link.received for kind in self._links.values())
        )
        self.metrics.set_iec104_notices_source(self._iec104_notice_counts)
        self._health: HealthServer | None = None
        self._lag_watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._stations_started = asyncio.Event()
        self.health_address: tuple[str, int] | None = None
        # The durable store, once open (stations that keep state); /ready waits for it.
        self.store: StateStore | None = None
        # station leases (`[bridge] leases`, PostgreSQL store): held, renewed, lost
        self.leases: LeaseKeeper | None = None
        self._connection_leases: ConnectionLeases | None = None  # pass-through stations'
        self._closing: set[asyncio.Task[None]] = set()
        self._lease_renewal: asyncio.Task[None] | None = None
        # station id -> what the status page shows beyond the cores' state (none when it is off)
        self.activities: dict[str, StationActivity] = (
            {station.id: StationActivity() for station in config.stations}
            if config.bridge.status_page
            else {}
        )
        self.started_wall: float | None = None
        # OCPP station id -> how its charger's last connection ended (for /ready's detail)
        self._charger_left: dict[str, str] = {}
        # pass-through stations whose CSMS connection is open now
        self._passthrough_north: set[str] = set()
        self._stations_by_id = sorted(config.stations, key=lambda station: station.id)  # /ready

    async def start(self) -> None:
        """Start everything. A port that cannot be bound raises ConfigError (one line: which key,
        the address, why) after what had started is stopped again."""
        try:
            await self._start()
        except BaseException:
            await self._abort()
            raise

    async def _start(self) -> None:
        self.started_wall = time.time()
        if self._schemas is None:
            self._schemas = await asyncio.to_thread(OfficialSchemas)
        csms = self.config.csms
        self._connector = CsmsConnector(
            csms,
            self.config.csms_password_for,
            csms_client_context(csms),
            Pacer(csms.connect_rate, csms.connect_burst),
        )
        self._connector.on_failure = self.metrics.csms_connect_failed
        translated = [s for s in self.config.stations if s.protocol in TRANSLATED]
        if translated or self.config.bridge.leases:
            try:
                self.store = open_store(
                    self.config.bridge.store,
                    lease_seconds=self.config.bridge.lease_seconds,
                    require_leases=self.config.bridge.leases,
                )
            except StoreError as exc:
                raise ConfigError([f"bridge.store: {exc}"]) from None
            self.store.on_written = self.metrics.store_write.observe
            if self.config.bridge.leases:  # replicas (issue 20): adapters/leases.py
                assert isinstance(self.store, PgStore)  # the configuration checked it
                self.leases = LeaseKeeper(
                    self.store, self._log, station_list_hash(self.config.stations)
                )
                self.metrics.set_leases_source(self.leases.figures)
                self._lease_renewal = asyncio.create_task(self.leases.run(), name="leases")
                self._connection_leases = ConnectionLeases(self.leases, self._log)
                for station in self.config.stations:
                    if station.protocol not in TRANSLATED:
                        self._connection_leases.watch(station.id)
            for station in translated:
                host = self._hosts[station.id] = TRANSLATED[station.protocol](self, station)
                if isinstance(host.kind, Iec104Kind):
                    self._links[station.id] = host.kind
        # Every port is bound before any station starts: one that cannot be is refused with one line,
        # and nothing has been logged or connected by then.
        dial_in = [kind for kind in self._links.values() if kind.station.dial == "in"]
        if dial_in and self.config.south.iec104_listen:
            await self._start_iec104_listener(dial_in)
        south = SouthServer(
            self.config,
            self._serve_station,
            south_server_context(self.config.south),
            on_refused=self.metrics.south_refusal,
        )
        try:
            self.south_address = await south.start()
        except OSError as exc:
            raise ConfigError(
                [f"south.listen: cannot listen on {self.config.south.listen}: {bind_reason(exc)}"]
            ) from None
        self._south = south
        if self.config.bridge.health:
            await self._start_health(self.config.bridge.health)
        for host in self._hosts.values():
            await host.start()
        if self.leases is not None:
            self.leases.kick()  # dial-out 104 stations claimed at once, not a renewal later
        self._stations_started.set()
        self._log.info(
            "south.listening",
            host=self.south_address[0],
            port=self.south_address[1],
            stations=len(self.config.stations),
        )

    def host_parts(self, station: Any) -> dict[str, Any]:
        """What every translated station's host gets from the runtime (`TRANSLATED`)."""
        assert self.store is not None and self._connector is not None and self._schemas is not None
        return {
            "schemas": self._schemas,
            "store": self.store,
            "connector": self._connector,
            "new_message_id": self._new_message_id,
            "logs": {side: station_logger(station.id, side, station.protocol) for side in Side},
            "metrics": self.metrics,
            "activity": self.activities.get(station.id),
            "leases": self.leases,
        }

    async def _admit(self, station_id: str) -> bool:
        """Under leases: a charger is served by the bridge it came to."""
        return await self._hosts[station_id].admit()

    async def _start_iec104_listener(self, stations: list[Iec104Kind]) -> None:
        south = self.config.south
        links: dict[int, Iec104Link] = {}
        registered_links: dict[str, Iec104Link] = {}
        registrations: list[RegistrationSpec] = []
        lenient = LinkParameters()
        for kind in stations:
            station = kind.station
            if station.registration_id is not None:
                registered_links[station.registration_id] = kind.link
            else:
                links[common_address_of(station, kind.table)] = kind.link
            spec = kind.table.registration
            if spec is not None and spec not in registrations:
                registrations.append(spec)
            lenient = _more_lenient(lenient, link_parameters(kind.table))
        listener = Iec104Listener(
            south.iec104_listen,
            links,
            registered_links=registered_links,
            registrations=tuple(registrations),
            log=self._log.bind(side="south", protocol="iec104"),
            duplicate=south.duplicate_connection,
            ssl_context=iec104_server_context(south),
            parameters=lenient,
            backlog=south.listen_backlog,
            on_refused=self.metrics.iec104_refusal,
            admit=self._admit if self.leases is not None else None,
        )
        try:
            self.iec104_address = await listener.start()
        except OSError as exc:
            raise ConfigError(
                [f"south.iec104_listen: cannot listen on {south.iec104_listen}: {bind_reason(exc)}"]
            ) from None
        self._iec104_listener = listener

    async def _start_health(self, address: str) -> None:
        health = HealthServer(
            address,
            self.metrics,
            self.readiness,
            self.stations_report,
            status=self.status if self.config.bridge.status_page else None,
        )
        try:
            self.health_address = await health.start()
        except OSError as exc:
            raise ConfigError(
                [f"bridge.health: cannot listen on {address}: {bind_reason(exc)}"]
            ) from None
        self._health = health
        self._lag_watch = asyncio.create_task(self.metrics.watch_event_loop())

    async def _abort(self) -> None:
        """Stop what a failed `start` had started (quietly: the bridge never was up)."""
        self._stopping = True
        if self._south is not None:
            await self._south.close()
            self._south = None
        await self._stop_stations()
        await self._stop_health()

    async def stop(self) -> None:
        if self._south is None:
            return
        self._stopping = True
        self._log.info("bridge.stopping")
        # first of all, no link reconnects any more: nothing after bridge.stopping is about a new attempt
        for host in self._hosts.values():
            host.stop_reconnecting()
        try:
            await asyncio.wait_for(self._south.close(), self.config.bridge.shutdown_timeout)
        except TimeoutError:
            self._log.error("bridge.shutdown_timeout")
        await self._stop_stations()
        await self._stop_health()
        self._log.info("bridge.stopped")

    async def _stop_stations(self) -> None:
        if self._iec104_listener is not None:
            await self._iec104_listener.close()
            self._iec104_listener = None
        await asyncio.gather(*(host.stop() for host in self._hosts.values()))
        self._hosts.clear()
        self._links.clear()
        if self._lease_renewal is not None:
            self._lease_renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_renewal
            self._lease_renewal = None
        if self.store is not None:
            self.store.close()  # a PostgreSQL store releases its leases
            self.store = None
        if self._connector is not None:
            self._connector.keepalive.close()

    async def _stop_health(self) -> None:
        if self._lag_watch is not None:
            self._lag_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_watch
            self._lag_watch = None
        if self._health is not None:
            await self._health.close()
            self._health = None

    def readiness(self) -> dict[str, str | None]:
        """Each readiness check: None when it passes, else why not. GET /ready is 200 when all pass."""
        return {
            # A Runtime exists only for a loaded, validated configuration.
            "config": None,
            "south": "shutting down"
            if self._stopping
            else (None if self.south_address is not None else "listener not up"),
            "store": self._store_problem(),
        }

    def _store_problem(self) -> str | None:
        """None when the store is open or no station keeps state (OCPP 2.0.1 pass-through keeps none)."""
        needs_store = any(station.protocol != "ocpp2.0.1" for station in self.config.stations)
        if needs_store and self.store is None:
            return "not open"
        return None

    def outbox_stats(self) -> tuple[int, float]:
        """(messages queued toward the CSMS across every station, age in seconds of the oldest one).

        Translated stations (1.6 and 104) queue; pass-through stations queue nothing. Read at each /metrics scrape, on the event loop's thread.
        An entry found in the store at start-up counts as queued since then.
        """
        depth = 0
        oldest: float | None = None
        for host in self._hosts.values():
            queued, queued_at = host.queued()
            depth += queued
            if queued_at is not None and (oldest is None or queued_at < oldest):
                oldest = queued_at
        if oldest is None:
            return depth, 0.0
        return depth, max(0.0, asyncio.get_running_loop().time() - oldest)

    def _iec104_notice_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for link in self._links.values():
            for kind, count in link.session.notice_counts.items():
                counts[kind] = counts.get(kind, 0) + count
        return counts

    def station_problems(
        self, station: Any, chargers: Mapping[str, object]
    ) -> tuple[str | None, str | None]:
        """(why the charger side is not up, why the CSMS side is not up) for one station; None where
        that side is up. `chargers`: the OCPP chargers connected now (`chargers_connected`)."""
        last_failure = self._connector.last_failure if self._connector is not None else {}
        link104 = self._links.get(station.id)
        host = self._hosts.get(station.id)
        charger: str | None = None
        if link104 is not None:
            link = link104.link
            if not link.is_up:
                if link.problem is not None:
                    charger = link.problem
                elif link.failed_attempts and link.last_drop is not None:
                    charger = (
                        f"104 link not up after {link.failed_attempts} attempt(s): {link.last_drop}"
                    )
                elif link.last_drop is not None:
                    charger = f"104 link down: {link.last_drop}"
                elif station.dial == "in":
                    charger = "104 link not up: the charger has not dialled in"
                else:
                    charger = "104 link not up yet (connecting)"
        else:
            if station.id not in chargers:
                charger = "charger not connected" + (
                    f" ({left})"
                    if (left := self._charger_left.get(station.id))
                    else " since the start"
                )
            if host is None:  # pass-through: the CSMS connection follows the charger's
                if station.id in self._passthrough_north:
                    activity = self.activities.get(station.id)
                    boot = activity.boot if activity is not None else None
                    if boot is not None and boot != "Accepted":
                        return charger, f"boot not accepted (CSMS answered {boot})"
                    return charger, None
                failure = last_failure.get(station.id)
                if failure is not None:
                    return charger, f"CSMS not connected: {failure}"
                return charger, (
                    "CSMS not connected (opened when the charger connects)"
                    if charger is not None
                    else "CSMS not connected yet"
                )
        assert host is not None  # a translated station (1.6 or 104)
        north = host.core.north
        if north.identity is None and not north.online:
            failure = last_failure.get(station.id)
            return charger, (
                f"CSMS not connected: {failure}"
                if failure is not None
                else "CSMS not connected (opened once the charger has booted)"
            )
        if not north.online:
            failure = last_failure.get(station.id)
            return charger, "CSMS not connected" + (f": {failure}" if failure is not None else "")
        boot = north.boot_status
        if boot != "Accepted":
            return charger, (
                "boot not accepted yet (BootNotification sent)"
                if boot == "sent"
                else "boot not accepted yet (nothing to register with)"
                if boot == "not sent"
                else f"boot not accepted (CSMS answered {boot})"
            )
        return charger, None

    def stations_report(self) -> dict[str, Any]:
        """/ready's `stations`: counts over every station and the first `MAX_LISTED_STATIONS` that
        are down (by id), each with why on each side. Informational: it never makes /ready 503."""
        chargers = self.chargers_connected
        listed: list[dict[str, Any]] = []
        down = charger_down = csms_down = elsewhere = 0
        for station in self._stations_by_id:
            if self.served_elsewhere(station.id):
                elsewhere += 1
                continue
            charger, csms = self.station_problems(station, chargers)
            if charger is None and csms is None:
                continue
            down += 1
            charger_down += charger is not None
            csms_down += csms is not None
            if len(listed) < MAX_LISTED_STATIONS:
                listed.append(
                    {
                        "id": station.id,
                        "protocol": station.protocol,
                        "charger": charger,
                        "csms": csms,
                    }
                )
        total = len(self.config.stations)
        return {
            "total": total,
            "up": total - down - elsewhere,
            "down": down,
            "charger_side_down": charger_down,
            "csms_side_down": csms_down,
            "listed": listed,
            "more": down - len(listed),
            # `[bridge] leases`: the stations this replica serves, and those another one serves
            **(
                {
                    "leases_held": self.leases.held(),
                    "elsewhere": elsewhere,
                    # live replicas whose station list is not this one's (lease.config_differs)
                    "replicas_config_differs": self.leases.config_differs,
                }
                if self.leases is not None
                else {}
            ),
        }

    def served_elsewhere(self, station_id: str) -> bool:
        """Under leases: another replica holds the station's lease and this one does not serve it
        (neither up nor down here)."""
        if station_id in self.chargers_connected:
            return False
        host = self._hosts.get(station_id)
        if host is not None:
            return host.elsewhere
        return self.leases is not None and self.leases.is_elsewhere(station_id)

    @property
    def connected_stations(self) -> list[str]:
        return sorted(self._south.connected) if self._south is not None else []

    # --- what the status page reads (`adapters.ops.status`) ------------------------------------------

    def status(self, query: str) -> dict[str, object]:
        """The status page's snapshot for a URL query string (`adapters.ops.status.StatusQuery`)."""
        return snapshot(self, StatusQuery.parse(query))

    @property
    def chargers_connected(self) -> Mapping[str, object]:
        """OCPP stations whose charger is connected now (by id)."""
        return self._south.connected if self._south is not None else {}

    @property
    def translated_hosts(self) -> Mapping[str, TranslatedHost[Any]]:
        """Every translated station's host (1.6 and 104), by id."""
        return self._hosts

    @property
    def iec104_links(self) -> Mapping[str, Iec104Kind]:
        """The 104 part of every 104 station's host (its link, session, table), by id."""
        return self._links

    def chargers_up(self) -> int:
        """Chargers connected now: OCPP connections and 104 links that are up."""
        links = sum(1 for kind in self._links.values() if kind.link.is_up)
        return len(self.chargers_connected) + links

    def csms_up(self) -> int:
        """Stations connected to the CSMS now."""
        up = sum(1 for host in self._hosts.values() if host.csms_online)
        return up + sum(
            1
            for station_id, activity in self.activities.items()
            if station_id not in self._hosts and Side.NORTH in activity.up
        )

    async def _serve_station(self, station: OcppStation, south: Connection) -> None:
        await (
            self._stations_started.wait()
        )  # a charger quicker than the start waits for its station
        host = self._hosts.get(station.id)
        try:
            if host is not None:
                await host.serve_south(south)
            else:
                await self._serve_passthrough(station, south)
        finally:
            self._charger_left[station.id] = (
                f"disconnected at {_utc_now()}, close code {south.close_code}"
            )

    async def _serve_passthrough(self, station: OcppStation, south: Connection) -> None:
        assert self._connector is not None and self._schemas is not None
        logs: dict[Side, Any] = {
            side: station_logger(station.id, side, station.protocol) for side in Side
        }
        if self._connection_leases is None:
            await self._relay_passthrough(station, south, logs)
            return
        lease = await self._connection_leases.take(station.id, lambda: self._elsewhere(south))
        if lease is None:
            await south.close(CLOSE_TRY_AGAIN_LATER, "store unavailable")
            return
        try:
            await self._relay_passthrough(station, south, logs)
        finally:
            await self._connection_leases.release(station.id, lease)

    def _elsewhere(self, south: Connection) -> None:
        """A pass-through station's lease was lost: another replica's charger connection serves it."""
        closing = asyncio.create_task(
            south.close(CLOSE_TRY_AGAIN_LATER, "station served elsewhere")
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _relay_passthrough(
        self, station: OcppStation, south: Connection, logs: dict[Side, Any]
    ) -> None:
        assert self._connector is not None and self._schemas is not None
        try:
            north = await self._connector.connect(station.id)
        except CsmsUnavailable as exc:
            logs[Side.NORTH].warning("csms.connect_failed", reason=exc.reason, status=exc.status)
            await south.close(CLOSE_TRY_AGAIN_LATER, "CSMS unavailable")
            return
        logs[Side.NORTH].info("csms.connected")
        self._passthrough_north.add(station.id)
        core = PassThroughStation(
            station.id,
            self._schemas,
            self._new_message_id,
            csms_call_timeout=self.config.csms.call_timeout,
            charger_call_timeout=self.config.south.call_timeout,
            late_answer_wait=self.config.csms.late_answer_wait,
            naive_times_as_utc=not self.config.csms.strict_timestamps,
        )
        driver = CoreDriver(
            core,
            logs,
            metrics=self.metrics,
            trace=open_trace(self.config, station.id),
            activity=self.activities.get(station.id),
        )
        driver.attach(Side.SOUTH, south)
        driver.attach(Side.NORTH, north)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(driver.serve(Side.SOUTH))
                group.create_task(driver.serve(Side.NORTH))
        finally:
            self._passthrough_north.discard(station.id)
            await north.close()
            logs[Side.NORTH].info("csms.disconnected", code=north.close_code)
