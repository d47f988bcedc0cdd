"""The running bridge: wires configuration, schemas, the charger-facing server and the CSMS connections.

Rules
- One `Runtime` per process. `start()` loads the official schemas, builds the TLS contexts once, opens the
  charger-facing listener; `stop()` shuts down gracefully: the listener stops, every charger connection is
  closed with 1001, and with it each station's CSMS connection (1001), within `shutdown_timeout`.
- Per station kind:
  - `ocpp2.0.1`: pass-through (`bridge.passthrough`). When the charger's connection is up the CSMS
    connection is opened (part 4 §6.2); if the CSMS cannot be reached the charger is closed with 1013
    ("try again later") and retries with its own back-off, queueing as it would with a direct link.
  - `ocpp1.6` and `iec104` are refused at start-up until their translators exist, with a clear message.
- Message ids come from one process-wide source (random prefix + counter).
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.server import ServerConnection

from adapters.config import BridgeConfig, ConfigError, OcppStation
from adapters.driver import CoreDriver
from adapters.ids import message_id_source
from adapters.logs import get_logger, station_logger
from adapters.north import CsmsConnector, CsmsUnavailable, Pacer
from adapters.schemas import OfficialSchemas
from adapters.south import SouthServer
from adapters.tls import csms_client_context, south_server_context
from bridge.effects import CLOSE_TRY_AGAIN_LATER, Side
from bridge.passthrough import PassThroughStation

SUPPORTED_PROTOCOLS = frozenset({"ocpp2.0.1"})


def check_supported(config: BridgeConfig) -> None:
    problems = [
        f"stations: {station.id!r}: protocol {station.protocol} is not supported by this version"
        " of ocpp-bridge yet"
        for station in config.stations
        if station.protocol not in SUPPORTED_PROTOCOLS
    ]
    if problems:
        raise ConfigError(problems)


class Runtime:
    def __init__(self, config: BridgeConfig, *, schemas: OfficialSchemas | None = None) -> None:
        check_supported(config)
        self.config = config
        self._schemas = schemas
        self._log = get_logger()
        self._south: SouthServer | None = None
        self._connector: CsmsConnector | None = None
        self._new_message_id = message_id_source()
        self.south_address: tuple[str, int] | None = None

    async def start(self) -> None:
        if self._schemas is None:
            self._schemas = await asyncio.to_thread(OfficialSchemas)
        csms = self.config.csms
        self._connector = CsmsConnector(
            csms,
            self.config.csms_password_for,
            csms_client_context(csms),
            Pacer(csms.connect_rate, csms.connect_burst),
        )
        self._south = SouthServer(
            self.config, self._serve_station, south_server_context(self.config.south)
        )
        self.south_address = await self._south.start()
        self._log.info(
            "south.listening",
            host=self.south_address[0],
            port=self.south_address[1],
            stations=len(self.config.stations),
        )

    async def stop(self) -> None:
        if self._south is None:
            return
        self._log.info("bridge.stopping")
        try:
            await asyncio.wait_for(self._south.close(), self.config.bridge.shutdown_timeout)
        except TimeoutError:
            self._log.error("bridge.shutdown_timeout")
        self._log.info("bridge.stopped")

    @property
    def connected_stations(self) -> list[str]:
        return sorted(self._south.connected) if self._south is not None else []

    async def _serve_station(self, station: OcppStation, south: ServerConnection) -> None:
        await self._serve_passthrough(station, south)

    async def _serve_passthrough(self, station: OcppStation, south: ServerConnection) -> None:
        assert self._connector is not None and self._schemas is not None
        logs: dict[Side, Any] = {
            side: station_logger(station.id, side, station.protocol) for side in Side
        }
        try:
            north = await self._connector.connect(station.id)
        except CsmsUnavailable as exc:
            logs[Side.NORTH].warning("csms.connect_failed", reason=exc.reason, status=exc.status)
            await south.close(CLOSE_TRY_AGAIN_LATER, "CSMS unavailable")
            return
        logs[Side.NORTH].info("csms.connected")
        core = PassThroughStation(
            station.id,
            self._schemas,
            self._new_message_id,
            csms_call_timeout=self.config.csms.call_timeout,
            charger_call_timeout=self.config.south.call_timeout,
        )
        driver = CoreDriver(core, logs)
        driver.attach(Side.SOUTH, south)
        driver.attach(Side.NORTH, north)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(driver.serve(Side.SOUTH))
                group.create_task(driver.serve(Side.NORTH))
        finally:
            await north.close()
            logs[Side.NORTH].info("csms.disconnected", code=north.close_code)
