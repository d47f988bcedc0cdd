"""The OCPP 1.6J kind of translated station: a 1.6 charger shown to the CSMS as a 2.0.1 station.

```python
host = ocpp16_host(config, station, schemas=..., store=..., connector=..., new_message_id=..., logs=...)
await host.start()
await host.serve_south(connection)   # each time the charger connects (adapters.ocpp.south)
```

Rules
- The core is `bridge.stations.v16.core.Station16`, with the station's configuration-key table (`device_model`,
  else the shipped one; the runtime shares one table per file), its idTokenType rule and timestamp
  offset, and the `[south]`/`[csms]` timeouts; everything else (the CSMS link, the store, leases,
  rebuilding a failed core) is the host's (`adapters.translated.TranslatedHost`).
- The charger connects over OCPP-J through the bridge's WebSocket server, so the kind runs nothing of
  its own beside the CSMS link and has no effects of its own (`StationKind`'s defaults).
"""

from __future__ import annotations

from typing import Any

from adapters.config import BridgeConfig, OcppStation
from adapters.device_model_file import load_config_table
from adapters.leases import LeaseKeeper
from adapters.ocpp.north import CsmsConnector, owned_defaults
from adapters.ops.metrics import BridgeMetrics
from adapters.ops.status import StationActivity
from adapters.ops.trace import open_trace
from adapters.store_api import StateStore
from adapters.translated import (
    StationKind,
    TranslatedHost,
    backoff_policy,
    new_transaction_id,
    north_settings,
)
from bridge.effects import Side
from bridge.ocppj.rpc import MessageIdSource
from bridge.ocppj.schema import SchemaRegistry
from bridge.stations.v16.core import Station16, Station16Settings
from bridge.stations.v16.device_model import ConfigTable
from bridge.stations.v16.id_token import DEFAULT_RULE, IdTokenTypeRule
from bridge.timestamps import TimestampPolicy


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
        north=north_settings(config),
        offline_grace=station.offline_grace,
        offline_authorize=station.offline_authorize,
        owned=owned_defaults(config.csms),
    )


class Ocpp16Kind(StationKind[Station16]):
    __slots__ = ("_new_message_id", "_schemas", "settings", "station_id")
    protocol = "ocpp1.6"

    def __init__(
        self,
        station_id: str,
        settings: Station16Settings,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
    ) -> None:
        self.station_id = station_id
        self.settings = settings
        self._schemas = schemas
        self._new_message_id = new_message_id

    def build(self, state: dict[str, dict[str, Any]], now: float, wall: float) -> Station16:
        return Station16(
            self.station_id,
            self._schemas,
            self._new_message_id,
            new_transaction_id,
            state,
            now=now,
            wall=wall,
            settings=self.settings,
        )


def ocpp16_host(
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
) -> TranslatedHost[Station16]:
    """The host of a configured 1.6 station (`table`: its configuration-key table, loaded once)."""
    settings = station16_settings(config, station, table or load_config_table(station.device_model))
    return TranslatedHost(
        station.id,
        Ocpp16Kind(station.id, settings, schemas, new_message_id),
        store=store,
        connector=connector,
        policy=backoff_policy(config),
        logs=logs,
        metrics=metrics,
        activity=activity,
        leases=leases,
        trace=open_trace(config, station.id),
    )
