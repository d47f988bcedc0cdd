"""Point definitions of the mapping language: one model per rule kind, discriminated by `kind`.

| kind        | type ids                                   | what it feeds                                        |
|-------------|--------------------------------------------|------------------------------------------------------|
| status      | M_SP_NA_1, M_SP_TB_1, M_DP_NA_1, M_DP_TB_1 | a boolean input of the derived rules                 |
| measurement | M_ME_NA_1 … M_ME_TF_1                      | an OCPP measurand (MeterValues, TransactionEvent)    |
| enum        | M_ME_NB_1, M_ME_NC_1, M_ME_TE_1, M_ME_TF_1 | named values (work status) for the derived rules     |
| counter     | M_IT_NA_1, M_IT_TB_1                       | an energy register (Energy.Active.Import.Register)   |
| command     | C_SC_NA_1, C_DC_NA_1, C_RP_NA_1            | CSMS requests: start/stop, unlock, availability, reset |
| setpoint    | C_SE_NA_1, C_SE_NB_1, C_SE_NC_1            | SetChargingProfile limits, in A, W or kW             |

Rules
- A charger-level point has an absolute `ioa`; a point in a connector block has `at`, its position in the
  block: IOA = base + (connector − 1) × stride + at. Each kind exists in both forms.
- Values: OCPP value = raw × scale + offset (measurements), raw × scale (counters); a setpoint sends
  limit ÷ scale in its own unit (C_SE_NA_1: limit ÷ full_scale, normalized to −1..+1).
- A wrong type id for the kind is refused by name ("a counter needs M_IT_NA_1 or M_IT_TB_1, not
  M_SP_NA_1 (single point)"). Checks that involve several fields (unit versus measurand, command values
  versus type id) live in `bridge.stations.iec104.checks`, so each can name the exact key at fault.
- `report` publishes a point as an OCPP device-model variable (NotifyEvent when it changes) in addition to,
  or instead of, its OCPP target.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from bridge.stations.iec104.conditions import Action, Name, StrictModel
from bridge.stations.iec104.vocabulary import (
    COUNTER_UNITS,
    LOCATIONS,
    MAX_IOA,
    MEASURANDS,
    PHASES,
    SETPOINT_UNITS,
    TYPE_DESCRIPTIONS,
    TYPES_BY_KIND,
    UNITS,
    Location,
    Measurand,
    Phase,
    SetpointUnit,
    TypeId,
    Unit,
    one_of,
    parse_address,
)

_KIND_ARTICLE = {"enum": "an enum", "measurement": "a measurement"}


def _type_check(kind: str) -> BeforeValidator:
    allowed = TYPES_BY_KIND[kind]

    def check(value: object) -> object:
        if not isinstance(value, str):
            return value
        if value not in TypeId.__members__:
            raise ValueError(one_of(value, TypeId.__members__, "type id"))
        if value not in allowed:
            article = _KIND_ARTICLE.get(kind, f"a {kind}")
            names = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
            type_id = TypeId(value)
            direction = "control" if type_id.startswith("C_") else "monitoring"
            described = f"{TYPE_DESCRIPTIONS[type_id]}, a {direction} type"
            raise ValueError(f"{article} point needs {names}, not {value} ({described})")
        return value

    return BeforeValidator(check)


def _type_schema(kind: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": [str(t) for t in TYPES_BY_KIND[kind]]})


def choice(known: tuple[str, ...], what: str) -> BeforeValidator:
    """Refuses an unknown name with a hint before pydantic lists every accepted value."""

    def check(value: object) -> object:
        if isinstance(value, str) and value not in known:
            raise ValueError(one_of(value, known, what))
        return value

    return BeforeValidator(check)


_ADDRESS_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_IOA},
        {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{1,6}$"},
    ]
}
_OFFSET_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_IOA},
        {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{1,6}$"},
    ]
}
IOA = Annotated[int, BeforeValidator(parse_address), WithJsonSchema(_ADDRESS_SCHEMA)]
Offset = Annotated[
    int,
    BeforeValidator(lambda value: parse_address(value, minimum=0, what="offset")),
    WithJsonSchema(_OFFSET_SCHEMA),
]

StatusType = Annotated[TypeId, _type_check("status"), _type_schema("status")]
MeasurementType = Annotated[TypeId, _type_check("measurement"), _type_schema("measurement")]
EnumType = Annotated[TypeId, _type_check("enum"), _type_schema("enum")]
CounterType = Annotated[TypeId, _type_check("counter"), _type_schema("counter")]
CommandType = Annotated[TypeId, _type_check("command"), _type_schema("command")]
SetpointType = Annotated[TypeId, _type_check("setpoint"), _type_schema("setpoint")]

MeasurandName = Annotated[Measurand, choice(MEASURANDS, "measurand")]
UnitName = Annotated[Unit, choice(UNITS, "unit")]
CounterUnit = Annotated[
    Literal["Wh", "kWh", "varh", "kvarh", "VAh", "kVAh"], choice(COUNTER_UNITS, "counter unit")
]
PhaseName = Annotated[Phase, choice(PHASES, "phase")]
LocationName = Annotated[Location, choice(LOCATIONS, "location")]
SetpointUnitName = Annotated[SetpointUnit, choice(SETPOINT_UNITS, "setpoint unit")]
CommandMode = Literal["direct", "select-execute"]


def _command_value(value: object) -> object:
    # YAML true/false would otherwise pass as the integers 1 and 0
    ok = value in ("on", "off") or (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255
    )
    if not ok:
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise ValueError(
            f"{shown} cannot be sent: write on or off (C_SC_NA_1, C_DC_NA_1)"
            " or a qualifier 1..255 (C_RP_NA_1)"
        )
    return value


# C_SC_NA_1 and C_DC_NA_1 send on/off; C_RP_NA_1 sends its qualifier (1 = general reset of process).
CommandValue = Annotated[
    str | int,
    BeforeValidator(_command_value),
    WithJsonSchema(
        {"anyOf": [{"enum": ["on", "off"]}, {"type": "integer", "minimum": 1, "maximum": 255}]}
    ),
]
Description = Annotated[str, Field(max_length=200)]
ComponentName = Annotated[str, Field(min_length=1, max_length=50)]


class DeviceVariable(StrictModel):
    """An OCPP 2.0.1 device-model variable (component and variable names, each up to 50 characters)."""

    component: ComponentName = Field(description="e.g. ChargingStation, EVSE, Connector")
    variable: ComponentName = Field(description="e.g. Problem, Tripped, Temperature")
    instance: ComponentName | None = Field(None, description="the variable's instance, if any")


class _Point(StrictModel):
    description: Description | None = Field(
        None, description="the meaning, for people (defaults to the point's name)"
    )


class _Monitored(_Point):
    report: DeviceVariable | None = Field(
        None, description="also publish as this device-model variable (NotifyEvent on change)"
    )


class StatusDef(_Monitored):
    kind: Literal["status"]
    type: StatusType
    invert: bool = Field(False, description="the point is active-low: off means true")


class MeasurementDef(_Monitored):
    kind: Literal["measurement"]
    type: MeasurementType
    scale: float = Field(1.0, description="OCPP value = raw × scale + offset")
    offset: float = Field(0.0, description="OCPP value = raw × scale + offset")
    unit: UnitName | None = Field(None, description="the OCPP unit of the scaled value")
    measurand: MeasurandName | None = Field(
        None, description="the OCPP measurand; none keeps the point informational"
    )
    phase: PhaseName | None = None
    location: LocationName | None = None

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: float) -> float:
        if scale == 0:
            raise ValueError("scale must not be 0")
        return scale


class EnumDef(_Monitored):
    kind: Literal["enum"]
    type: EnumType
    values: dict[int, Name] = Field(min_length=1, description="raw value → name, e.g. 3: charging")

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: dict[int, str]) -> dict[int, str]:
        seen: dict[str, int] = {}
        for code, name in values.items():
            if name in seen:
                raise ValueError(f"{name!r} names both {seen[name]} and {code}")
            seen[name] = code
        return values


class CounterDef(_Monitored):
    kind: Literal["counter"]
    type: CounterType
    scale: float = Field(1.0, gt=0, description="units per count, e.g. 10 (Wh) per count")
    unit: CounterUnit = Field("Wh", description="the unit of count × scale")
    measurand: MeasurandName | None = Field(
        None, description="usually Energy.Active.Import.Register; none keeps it informational"
    )


class CommandDef(_Point):
    kind: Literal["command"]
    type: CommandType
    actions: dict[Action, CommandValue] = Field(
        min_length=1,
        description="CSMS request → value sent: on/off (C_SC_NA_1, C_DC_NA_1) or 1..255 (C_RP_NA_1)",
    )
    qualifier: Literal["none", "short_pulse", "long_pulse", "persistent"] = Field(
        "none", description="qualifier of command (QU) for C_SC_NA_1 and C_DC_NA_1"
    )
    mode: CommandMode | None = Field(None, description="overrides the station's command_mode")


class SetpointDef(_Point):
    kind: Literal["setpoint"]
    type: SetpointType
    unit: SetpointUnitName = Field(description="the unit the charger expects: A, W or kW")
    scale: float = Field(1.0, gt=0, description="value sent = limit (in unit) ÷ scale")
    full_scale: float | None = Field(
        None, gt=0, description="C_SE_NA_1 only: the limit that is sent as 1.0"
    )
    minimum: float | None = Field(None, ge=0, description="limits below are raised to this")
    maximum: float | None = Field(None, gt=0, description="limits above are lowered to this")
    mode: CommandMode | None = Field(None, description="overrides the station's command_mode")


class _Absolute(StrictModel):
    ioa: IOA = Field(description="information object address, 1..0xFFFFFF (hex welcome: 0x6100)")


class _InBlock(StrictModel):
    at: Offset = Field(description="position in the block: IOA = base + (n − 1) × stride + at")


class ChargerStatusPoint(StatusDef, _Absolute):
    pass


class ChargerMeasurementPoint(MeasurementDef, _Absolute):
    pass


class ChargerEnumPoint(EnumDef, _Absolute):
    pass


class ChargerCounterPoint(CounterDef, _Absolute):
    pass


class ChargerCommandPoint(CommandDef, _Absolute):
    pass


class ChargerSetpointPoint(SetpointDef, _Absolute):
    pass


class StatusPoint(StatusDef, _InBlock):
    pass


class MeasurementPoint(MeasurementDef, _InBlock):
    pass


class EnumPoint(EnumDef, _InBlock):
    pass


class CounterPoint(CounterDef, _InBlock):
    pass


class CommandPoint(CommandDef, _InBlock):
    pass


class SetpointPoint(SetpointDef, _InBlock):
    pass


ChargerPoint = Annotated[
    ChargerStatusPoint
    | ChargerMeasurementPoint
    | ChargerEnumPoint
    | ChargerCounterPoint
    | ChargerCommandPoint
    | ChargerSetpointPoint,
    Field(discriminator="kind"),
]
BlockPoint = Annotated[
    StatusPoint | MeasurementPoint | EnumPoint | CounterPoint | CommandPoint | SetpointPoint,
    Field(discriminator="kind"),
]
AnyPoint = (
    ChargerStatusPoint
    | ChargerMeasurementPoint
    | ChargerEnumPoint
    | ChargerCounterPoint
    | ChargerCommandPoint
    | ChargerSetpointPoint
    | StatusPoint
    | MeasurementPoint
    | EnumPoint
    | CounterPoint
    | CommandPoint
    | SetpointPoint
)
