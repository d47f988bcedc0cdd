"""The IEC 104 kind of translated station: a 104 charger shown to the CSMS as a 2.0.1 station.

```python
table = load_table(station)          # at start-up: an invalid table is refused with PATH:LINE:COLUMN
host = iec104_host(station, connector=..., schemas=..., store=..., new_message_id=..., logs=..., table=table)
await host.run()                     # until cancelled (the runtime: host.start() ... host.stop())
host.kind.link                       # the station's Iec104Link
```

Rules
- What every translated station shares (its CSMS link, the store, leases, rebuilding a failed core,
  start and stop) is `adapters.translated.TranslatedHost`'s; `Iec104Kind` is the 104 part.
- The core is `Station104` (`bridge.stations.iec104.core`), with the station's compiled mapping table and its
  time zone; the link's events reach it through `CoreDriver.feed` (`TranslatedHost.revive` first), one batch
  per read or timer of the link.
- The link is an `Iec104Link` (`adapters.iec104.link`) on the bridge's event loop, around the station's
  `Session104` (`bridge.stations.iec104.session`: the APCI link, the codec, commands and interrogations, with
  the table's timers t0–t3, k, w and time zone). Dial-out stations dial `host:port` (TLS with
  `tls = true`); dial-in stations wait for the listener (`adapters.iec104.listener`) to attach the
  charger's connection. The link runs while the station is served here (`StationKind.serving`).
- The core's 104 effects (`KindEffect`s) reach the link through `Iec104Kind.handle`, after the state
  written before them is committed: `Send104Command` → `Iec104Link.command`, `Interrogate104` →
  `Iec104Link.interrogate`, `Send104Private` → `Iec104Link.send_private`.
- The CSMS connection is up from start-up (the identity comes from the table, so the station can
  register before the charger answers); the 104 link runs beside it. Either may be down while the
  other is up.
- The station's `common_address` in the configuration overrides the table's when it is set.
- A core rebuilt from the store (it failed, or a lease's epoch changed) is told at once that the link
  is up, when it is, and the charger is interrogated (the new core knows no values yet).
- With a configuration, message traces follow its `[bridge] trace_*` settings (`adapters.ops.trace`).
- With `metrics`, the link's state is `ocpp_bridge_iec104_links{state="up"|"down"|"elsewhere"}` from
  start to stop (down until the first LinkUp; `elsewhere` under leases while another bridge holds the
  station's lease: neither up nor down here, so "104 link down" alerts only where it is served), every drop counts in `ocpp_bridge_iec104_link_drops_total{reason}` and
  every notice (foreign common address, unreadable or unmapped ASDU) in
  `ocpp_bridge_iec104_notices_total{kind}`; the runtime reads `link.received` and the core's outbox at
  scrape time.
- Under leases (the host's rules): a dial-in station is served once its charger dialled in here (the
  listener hands the connection over once `admit()` took the lease); a dial-out one is spread over the
  live replicas (`dials_out`). The 104 connection closes with the link drop kind `lease_lost` or
  `given_up` when the station is no longer served here; its events then reach no core, so the 104
  link closed by the hand-over queues no "Unavailable" StatusNotification for the next owner to send;
  the next owner's core, rebuilt from the store, reports what its own link finds.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from adapters.config import BridgeConfig, Iec104Station
from adapters.iec104.link import DialOut, Iec104Link
from adapters.leases import LeaseKeeper
from adapters.mapping_files import (
    SUFFIXES,
    MappingFileError,
    MappingProblem,
    compile_file,
    load_reference,
    shipped_tables,
)
from adapters.ocpp.north import CsmsConnector, owned_defaults
from adapters.ops.metrics import BridgeMetrics
from adapters.ops.status import StationActivity
from adapters.ops.trace import open_trace
from adapters.store_api import StateStore
from adapters.tls import iec104_client_context
from adapters.translated import (
    StationKind,
    TranslatedHost,
    backoff_policy,
    new_transaction_id,
    north_settings,
)
from bridge.effects import KindEffect, Side
from bridge.north.backoff import BackoffPolicy
from bridge.ocppj.rpc import MessageIdSource
from bridge.ocppj.schema import SchemaRegistry
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.apci import LinkParameters
from bridge.stations.iec104.compiled import asdu_format
from bridge.stations.iec104.core import Station104, Station104Settings
from bridge.stations.iec104.session import LinkNotice, Session104, SessionSettings
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    Interrogate104,
    LinkDown,
    LinkEvent,
    LinkUp,
    Send104Command,
    Send104Private,
)


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
    return Station104Settings(north=north_settings(config), owned=owned_defaults(config.csms))


class Iec104Kind(StationKind[Station104]):
    """One 104 station's own part: its mapping table, 104 session and link (module rules)."""

    __slots__ = (
        "_link_state",
        "_log",
        "_new_message_id",
        "_schemas",
        "_settings",
        "dials_out",
        "link",
        "session",
        "station",
        "table",
    )
    protocol = "iec104"

    def __init__(
        self,
        station: Iec104Station,
        *,
        table: CompiledTable,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        settings: Station104Settings,
        log: Any,
        metrics: BridgeMetrics | None = None,
        dial_out: DialOut | None = None,
    ) -> None:
        self.station = station
        self.table = table
        self._schemas = schemas
        self._new_message_id = new_message_id
        self._settings = settings
        self._log = log
        self.session = Session104(
            session_settings(station, table), now=asyncio.get_running_loop().time()
        )
        self.link = Iec104Link(
            station.id,
            self.session,
            consumer=self._link_events,
            log=log,
            dial_out=dial_out if dial_out is not None else dial_out_of(station),
            connect_timeout=table.link.t0,
            on_drop=metrics.iec104_drop if metrics is not None else None,
            on_notice=self._notice,
        )
        self.dials_out = self.link.dial_out is not None
        self._link_state = metrics.iec104_link("down") if metrics is not None else None

    def build(self, state: dict[str, dict[str, Any]], now: float, wall: float) -> Station104:
        return Station104(
            self.station.id,
            self.table,
            self._schemas,
            self._new_message_id,
            new_transaction_id,
            state,
            now=now,
            wall=wall,
            settings=self._settings,
            zone=zoneinfo.ZoneInfo(self.table.station.time_zone),
        )

    def rebuilt(self) -> None:
        if self.link.is_up:
            self.host.driver.feed(self.host.core.link_up)
            self.link.interrogate(False)  # the new core knows no values yet

    def handle(self, effect: KindEffect) -> None:
        if isinstance(effect, Send104Command):
            self.link.command(effect)
        elif isinstance(effect, Interrogate104):
            self.link.interrogate(effect.counters)
        elif isinstance(effect, Send104Private):
            self.link.send_private(effect)
        else:
            self._log.error("iec104.unknown_effect", effect=repr(effect))

    def serving(self) -> list[Coroutine[Any, Any, None]]:
        return [self.link.run()]

    def leaving(self, why: str) -> None:
        self.link.closing_for(why, why.replace("_", " "))

    def stop_reconnecting(self) -> None:
        self.link.stop_dialing()

    def close(self) -> None:
        if self._link_state is not None:
            self._link_state.close()

    def show(self) -> None:
        host = self.host
        if self._link_state is None or host.stopped:
            return
        if not host.served_here:
            self._link_state.set("elsewhere" if host.elsewhere else "down")
        else:
            self._link_state.set("up" if self.link.is_up else "down")

    def _notice(self, notice: LinkNotice) -> None:
        self._log.warning(
            "iec104.notice", kind=notice.kind, detail=notice.detail, suppressed=notice.suppressed
        )

    def _link_events(self, events: list[LinkEvent]) -> None:
        host = self.host
        if not host.served_here:
            # the link closed by a hand-over (given up, lease lost): not the charger's status, and
            # the next owner reports what its own link finds (module rules)
            self.show()
            return
        if not host.revive():
            return  # the store cannot be read: a rebuilt core interrogates again (host rules)
        core = host.core
        for event in events:
            kind = type(event)
            if kind is CommandConfirmed:
                assert isinstance(event, CommandConfirmed)
                self._log.info(
                    "iec104.command",
                    command=event.command_id,
                    ioa=f"0x{event.ioa:04X}",
                    positive=event.positive,
                    detail=event.detail,
                )
            elif kind is LinkUp or kind is LinkDown:
                self.show()

        def feed(now: float, wall: float) -> None:
            for event in events:
                core.handle_link_event(event, now, wall)

        host.driver.feed(feed, link_events=events)


def iec104_host(
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
) -> TranslatedHost[Station104]:
    """The host of a configured 104 station (`table`: its compiled mapping table, loaded once)."""
    kind = Iec104Kind(
        station,
        table=table or load_table(station),
        schemas=schemas,
        new_message_id=new_message_id,
        settings=settings or station104_settings(config),
        log=logs[Side.SOUTH],
        metrics=metrics,
        dial_out=dial_out,
    )
    return TranslatedHost(
        station.id,
        kind,
        store=store,
        connector=connector,
        policy=policy or backoff_policy(config),
        logs=logs,
        metrics=metrics,
        activity=activity,
        leases=leases,
        trace=open_trace(config, station.id) if config is not None else None,
    )
