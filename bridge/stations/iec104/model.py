"""The mapping table: how one model of IEC 104 charger appears to a CSMS as an OCPP 2.0.1 station.

```yaml
extends: gb-dc-charger            # optional: start from a shipped table (or ./a/relative/path.yaml)
description: Example DC charger
station: {time_zone: Asia/Shanghai, general_interrogation_interval: 900, command_mode: direct}
identity: {vendor_name: Example, model: DC-120}
charger:
  points:
    emergency_stop: {kind: status, ioa: 0x0001, type: M_SP_NA_1}
connectors:
  max_count: 2
  blocks:
    status:
      base: 0x0021
      stride: 0x20
      points:
        plug_connected: {kind: status, at: 0, type: M_SP_NA_1}
rules:
  connector_status:
    - {status: Faulted, when: emergency_stop}
    - {status: Occupied, when: plug_connected}
    - {status: Available}
registration: …                   # optional: a vendor's frames (bridge.stations.iec104.frames)
private_asdus: …
```

Rules
- Every model forbids unknown keys; every value is checked where it stands, cross-references between
  points and rules are checked by `bridge.stations.iec104.checks.validate_table`, which is the entry point.
- Point names are unique across the charger and all connector blocks: rules name points without saying
  where they are, and an override (`extends`) addresses a point by its name.
- Connector n (1-based) is OCPP EVSE n with connector 1; charger-level points belong to the station.
- `link` holds the 104 timers and windows and the ASDU field sizes (cot_size, ca_size, ioa_size);
  `station.common_addresses` gives connectors their own common address on one connection.
- Derived rules are ordered lists: the first rule whose condition is true gives the connector status
  (or charging state); a rule without `when` always matches and must come last.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bridge.stations.iec104.conditions import Condition, Name, StrictModel
from bridge.stations.iec104.frames import PrivateAsduDef, RegistrationDef
from bridge.stations.iec104.points import (
    IOA,
    BlockPoint,
    ChargerPoint,
    CommandMode,
    Description,
    Offset,
    choice,
)
from bridge.stations.iec104.vocabulary import (
    CHARGING_STATES,
    CONNECTOR_STATUSES,
    STOP_REASONS,
    ChargingState,
    ConnectorStatus,
    StopReason,
)

CommonAddress = Annotated[int, Field(ge=1, le=65534)]
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
StatusName = Annotated[ConnectorStatus, choice(CONNECTOR_STATUSES, "connector status")]
StateName = Annotated[ChargingState, choice(CHARGING_STATES, "charging state")]
ReasonName = Annotated[StopReason, choice(STOP_REASONS, "stop reason")]


class StationOptions(StrictModel):
    """How the bridge talks to the charger's 104 outstation."""

    common_address: CommonAddress = Field(
        1, description="ASDU common address (the station's config may override it)"
    )
    time_zone: str = Field(
        "UTC",
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="IANA time zone of the charger's clock and time tags, e.g. Asia/Shanghai",
    )
    general_interrogation_interval: int = Field(
        900, ge=0, description="seconds between general interrogations; 0: only after connecting"
    )
    counter_interrogation_interval: int = Field(
        300, ge=0, description="seconds between counter interrogations; 0: never"
    )
    clock_sync: bool = Field(True, description="send a clock synchronisation after connecting")
    command_mode: CommandMode = Field(
        "direct", description="direct, or select-execute (select before operate)"
    )
    expects_act_term: bool = Field(
        False, description="the charger sends ACT_TERM after executing a command"
    )
    command_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds to wait for a command's confirmation"
    )
    common_addresses: dict[Annotated[int, Field(ge=1, le=255)], CommonAddress] | None = Field(
        None,
        description="connector → its own ASDU common address, when the charger uses one per"
        " connector on one connection",
    )
    meter_interval: int = Field(
        60,
        ge=0,
        description="seconds between meter values during a transaction (the default of"
        " SampledDataCtrlr.TxUpdatedInterval, which the CSMS may change); 0: none",
    )


class LinkOptions(StrictModel):
    """The IEC 104 link's timers and windows (IEC 60870-5-104 §9.6; the defaults are the standard's).

    Chargers on weak cellular links may need a longer t1 and t3."""

    t0: float = Field(30.0, gt=0, le=255, description="seconds to open the TCP connection")
    t1: float = Field(
        15.0, gt=0, le=255, description="seconds to wait for the acknowledgement of a sent frame"
    )
    t2: float = Field(
        10.0, gt=0, le=255, description="seconds before received I-frames are acknowledged (< t1)"
    )
    t3: float = Field(
        20.0, gt=0, le=172800, description="seconds of silence before a test frame (TESTFR act)"
    )
    k: int = Field(12, ge=1, le=32767, description="most I-frames sent and not yet acknowledged")
    w: int = Field(8, ge=1, le=32767, description="acknowledge after at most w received I-frames")
    cot_size: Literal[1, 2] = Field(
        2, description="bytes of the cause of transmission (2: with the originator address)"
    )
    ca_size: Literal[1, 2] = Field(2, description="bytes of the ASDU common address")
    ioa_size: Literal[1, 2, 3] = Field(3, description="bytes of an information object address")

    @model_validator(mode="after")
    def _ordered(self) -> LinkOptions:
        if self.t2 >= self.t1:
            raise ValueError(f"t2 ({self.t2:g} s) must be shorter than t1 ({self.t1:g} s)")
        if self.w > self.k:
            raise ValueError(f"w ({self.w}) must not exceed k ({self.k})")
        return self


class Identity(StrictModel):
    """The BootNotification chargingStation (OCPP 2.0.1 ChargingStationType, same length limits)."""

    vendor_name: str = Field(min_length=1, max_length=50, description="vendorName")
    model: str = Field(min_length=1, max_length=20, description="model")
    serial_number: str | None = Field(None, max_length=25, description="serialNumber")
    firmware_version: str | None = Field(None, max_length=50, description="firmwareVersion")


class ChargerSection(StrictModel):
    """Points of the charger as a whole, each at an absolute IOA."""

    points: dict[Name, ChargerPoint] = Field(default_factory=dict)


class Block(StrictModel):
    """A block of points repeated per connector: IOA = base + (connector − 1) × stride + at."""

    description: Description | None = None
    base: IOA = Field(description="IOA of the block's first point for connector 1")
    stride: Offset = Field(description="IOA distance between two connectors' blocks")
    points: dict[Name, BlockPoint] = Field(min_length=1)


class ConnectorsSection(StrictModel):
    max_count: int = Field(
        ge=1, le=255, description="the most connectors this table describes; checked for overlaps"
    )
    blocks: dict[Name, Block] = Field(min_length=1)


class StatusRule(StrictModel):
    status: StatusName = Field(description="the OCPP ConnectorStatus when `when` is true")
    when: Condition | None = Field(None, description="no condition: always (must come last)")


class ChargingStateRule(StrictModel):
    state: StateName = Field(description="the TransactionEvent chargingState when `when` is true")
    when: Condition | None = Field(None, description="no condition: always (must come last)")


class EndRule(StrictModel):
    when: Condition = Field(description="the transaction ends when this becomes true")
    reason: ReasonName = Field("Other", description="TransactionEvent stoppedReason")


class TransactionRules(StrictModel):
    starts_when: Condition = Field(description="a transaction starts when this becomes true")
    ends: list[EndRule] = Field(
        min_length=1, description="checked in order; the first gives the reason"
    )
    meter: Name | None = Field(
        None, description="the energy point (Wh or kWh) read for the meter start and stop values"
    )


class Rules(StrictModel):
    connector_status: list[StatusRule] = Field(min_length=1)
    charging_state: list[ChargingStateRule] = Field(default_factory=list)
    transaction: TransactionRules | None = None


class MappingTable(StrictModel):
    """A whole table. Validate with `bridge.stations.iec104.checks.validate_table`, which adds the cross-checks."""

    extends: str | None = Field(
        None,
        description="a shipped table's name (gb-dc-charger) or a path relative to this file"
        " (./base.yaml); this table's keys override it, `null` removes a key",
    )
    description: Description | None = None
    station: StationOptions = Field(default_factory=StationOptions)
    link: LinkOptions = Field(default_factory=LinkOptions)
    identity: Identity
    charger: ChargerSection = Field(default_factory=ChargerSection)
    connectors: ConnectorsSection
    rules: Rules
    registration: RegistrationDef | None = Field(
        None, description="the frame the charger sends on connect, before (or instead of) STARTDT"
    )
    private_asdus: dict[Name, PrivateAsduDef] = Field(
        default_factory=dict, description="the charger's private ASDU types, by name"
    )
