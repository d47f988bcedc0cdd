"""The closed vocabularies of the mapping language: IEC 104 type ids, OCPP 2.0.1 enumerations, IOAs.

Rules
- Type ids are spelled by their IEC 60870-5-101/104 names (`M_SP_NA_1`). Each point kind accepts only the
  type ids listed for it in `TYPES_BY_KIND`; a counter on `M_SP_NA_1` is refused by name.
- Measurands, phases, locations, units, connector statuses, charging states and stop reasons are the
  OCPP 2.0.1 values, copied from the official JSON schemas (MeterValuesRequest, TransactionEventRequest,
  StatusNotificationRequest) and appendix units_of_measure.csv: the product never reads the specification.
- A measurand only takes the units that describe its quantity (`UNITS_BY_MEASURAND`): Voltage in V,
  Current.* in A, Power.Active.* in W or kW, energy registers in Wh or kWh, SoC in Percent…
- An IOA (information object address) has 3 bytes: 0x000001..0xFFFFFF (0 addresses the station itself).
  It is written as a YAML integer (`0x0021`, `33`) or a string holding one (`"0x0021"`).
- Unknown names get a "did you mean" hint from the closest known name.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable
from typing import Final, Literal, get_args


class TypeId(enum.StrEnum):
    """The ASDU types a mapping table may use (IEC 60870-5-101 §7.2.1.1 names)."""

    M_SP_NA_1 = "M_SP_NA_1"
    M_SP_TB_1 = "M_SP_TB_1"
    M_DP_NA_1 = "M_DP_NA_1"
    M_DP_TB_1 = "M_DP_TB_1"
    M_ME_NA_1 = "M_ME_NA_1"
    M_ME_NB_1 = "M_ME_NB_1"
    M_ME_NC_1 = "M_ME_NC_1"
    M_ME_TD_1 = "M_ME_TD_1"
    M_ME_TE_1 = "M_ME_TE_1"
    M_ME_TF_1 = "M_ME_TF_1"
    M_IT_NA_1 = "M_IT_NA_1"
    M_IT_TB_1 = "M_IT_TB_1"
    C_SC_NA_1 = "C_SC_NA_1"
    C_DC_NA_1 = "C_DC_NA_1"
    C_RP_NA_1 = "C_RP_NA_1"
    C_SE_NA_1 = "C_SE_NA_1"
    C_SE_NB_1 = "C_SE_NB_1"
    C_SE_NC_1 = "C_SE_NC_1"


TYPE_DESCRIPTIONS: Final[dict[TypeId, str]] = {
    TypeId.M_SP_NA_1: "single point",
    TypeId.M_SP_TB_1: "single point with time tag",
    TypeId.M_DP_NA_1: "double point",
    TypeId.M_DP_TB_1: "double point with time tag",
    TypeId.M_ME_NA_1: "normalized measurement",
    TypeId.M_ME_NB_1: "scaled measurement",
    TypeId.M_ME_NC_1: "float measurement",
    TypeId.M_ME_TD_1: "normalized measurement with time tag",
    TypeId.M_ME_TE_1: "scaled measurement with time tag",
    TypeId.M_ME_TF_1: "float measurement with time tag",
    TypeId.M_IT_NA_1: "integrated total",
    TypeId.M_IT_TB_1: "integrated total with time tag",
    TypeId.C_SC_NA_1: "single command",
    TypeId.C_DC_NA_1: "double command",
    TypeId.C_RP_NA_1: "reset process command",
    TypeId.C_SE_NA_1: "normalized setpoint command",
    TypeId.C_SE_NB_1: "scaled setpoint command",
    TypeId.C_SE_NC_1: "float setpoint command",
}

PointKind = Literal["status", "measurement", "counter", "enum", "command", "setpoint"]
POINT_KINDS: Final = get_args(PointKind)

_T = TypeId
TYPES_BY_KIND: Final[dict[str, tuple[TypeId, ...]]] = {
    "status": (_T.M_SP_NA_1, _T.M_SP_TB_1, _T.M_DP_NA_1, _T.M_DP_TB_1),
    "measurement": (
        _T.M_ME_NA_1,
        _T.M_ME_NB_1,
        _T.M_ME_NC_1,
        _T.M_ME_TD_1,
        _T.M_ME_TE_1,
        _T.M_ME_TF_1,
    ),
    # a normalized value (-1..+1) cannot carry the integer codes of an enumeration
    "enum": (_T.M_ME_NB_1, _T.M_ME_NC_1, _T.M_ME_TE_1, _T.M_ME_TF_1),
    "counter": (_T.M_IT_NA_1, _T.M_IT_TB_1),
    "command": (_T.C_SC_NA_1, _T.C_DC_NA_1, _T.C_RP_NA_1),
    "setpoint": (_T.C_SE_NA_1, _T.C_SE_NB_1, _T.C_SE_NC_1),
}
DOUBLE_POINT_TYPES: Final = frozenset({_T.M_DP_NA_1, _T.M_DP_TB_1})
SWITCH_COMMAND_TYPES: Final = frozenset({_T.C_SC_NA_1, _T.C_DC_NA_1})


def kind_of_type(type_id: TypeId) -> str:
    """The point kind a type id is usually read as (measurement for M_ME_*, which may also be an enum)."""
    for kind, types in TYPES_BY_KIND.items():
        if type_id in types:
            return kind
    raise AssertionError(type_id)  # every TypeId is listed above


# --- OCPP 2.0.1 enumerations (copied from the official schemas) ---------------------------------

Measurand = Literal[
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Active.Net",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Energy.Reactive.Net",
    "Energy.Apparent.Net",
    "Energy.Apparent.Import",
    "Energy.Apparent.Export",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "SoC",
    "Voltage",
]
MEASURANDS: Final[tuple[str, ...]] = get_args(Measurand)

Phase = Literal["L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1"]
PHASES: Final[tuple[str, ...]] = get_args(Phase)

Location = Literal["Body", "Cable", "EV", "Inlet", "Outlet"]
LOCATIONS: Final[tuple[str, ...]] = get_args(Location)

Unit = Literal[
    "A",
    "ASU",
    "B",
    "Celsius",
    "dB",
    "dBm",
    "Deg",
    "Fahrenheit",
    "Hz",
    "K",
    "lx",
    "m",
    "ms2",
    "N",
    "Ohm",
    "kPa",
    "Percent",
    "RH",
    "RPM",
    "s",
    "V",
    "VA",
    "kVA",
    "VAh",
    "kVAh",
    "var",
    "kvar",
    "varh",
    "kvarh",
    "W",
    "kW",
    "Wh",
    "kWh",
]
UNITS: Final[tuple[str, ...]] = get_args(Unit)

ConnectorStatus = Literal["Available", "Occupied", "Reserved", "Unavailable", "Faulted"]
CONNECTOR_STATUSES: Final[tuple[str, ...]] = get_args(ConnectorStatus)

ChargingState = Literal["Charging", "EVConnected", "SuspendedEV", "SuspendedEVSE", "Idle"]
CHARGING_STATES: Final[tuple[str, ...]] = get_args(ChargingState)

StopReason = Literal[
    "DeAuthorized",
    "EmergencyStop",
    "EnergyLimitReached",
    "EVDisconnected",
    "GroundFault",
    "ImmediateReset",
    "Local",
    "LocalOutOfCredit",
    "MasterPass",
    "Other",
    "OvercurrentFault",
    "PowerLoss",
    "PowerQuality",
    "Reboot",
    "Remote",
    "SOCLimitReached",
    "StoppedByEV",
    "TimeLimitReached",
    "Timeout",
]
STOP_REASONS: Final[tuple[str, ...]] = get_args(StopReason)

# The CSMS requests a 104 command can serve. ChangeAvailability is split by its operationalStatus because
# the two directions usually send opposite values to the same point.
CommandAction = Literal[
    "RequestStartTransaction",
    "RequestStopTransaction",
    "UnlockConnector",
    "ChangeAvailability.Operative",
    "ChangeAvailability.Inoperative",
    "Reset",
]
COMMAND_ACTIONS: Final[tuple[str, ...]] = get_args(CommandAction)
# Charger-level commands serve requests without an EVSE; the others need a connector.
CHARGER_ACTIONS: Final = frozenset(
    {"ChangeAvailability.Operative", "ChangeAvailability.Inoperative", "Reset"}
)

# The charging-rate units of a ChargingSchedule (OCPP 2.0.1 ChargingRateUnitEnumType) and the units a
# setpoint may be sent in.
RateUnit = Literal["A", "W"]
SetpointUnit = Literal["A", "W", "kW"]
SETPOINT_UNITS: Final[tuple[str, ...]] = get_args(SetpointUnit)

_ENERGY: Final = ("Wh", "kWh")
UNITS_BY_MEASURAND: Final[dict[str, tuple[str, ...]]] = {
    "Current.Export": ("A",),
    "Current.Import": ("A",),
    "Current.Offered": ("A",),
    "Energy.Active.Export.Register": _ENERGY,
    "Energy.Active.Import.Register": _ENERGY,
    "Energy.Reactive.Export.Register": ("varh", "kvarh"),
    "Energy.Reactive.Import.Register": ("varh", "kvarh"),
    "Energy.Active.Export.Interval": _ENERGY,
    "Energy.Active.Import.Interval": _ENERGY,
    "Energy.Active.Net": _ENERGY,
    "Energy.Reactive.Export.Interval": ("varh", "kvarh"),
    "Energy.Reactive.Import.Interval": ("varh", "kvarh"),
    "Energy.Reactive.Net": ("varh", "kvarh"),
    "Energy.Apparent.Net": ("VAh", "kVAh"),
    "Energy.Apparent.Import": ("VAh", "kVAh"),
    "Energy.Apparent.Export": ("VAh", "kVAh"),
    "Frequency": ("Hz",),
    "Power.Active.Export": ("W", "kW"),
    "Power.Active.Import": ("W", "kW"),
    # a ratio: OCPP gives it no unit
    "Power.Factor": (),
    "Power.Offered": ("W", "kW"),
    "Power.Reactive.Export": ("var", "kvar"),
    "Power.Reactive.Import": ("var", "kvar"),
    "SoC": ("Percent",),
    "Voltage": ("V",),
}
COUNTER_UNITS: Final = ("Wh", "kWh", "varh", "kvarh", "VAh", "kVAh")
WH_PER_UNIT: Final[dict[str, float]] = {"Wh": 1.0, "kWh": 1000.0}


# --- names and addresses -------------------------------------------------------------------------

MAX_IOA: Final = 0xFFFFFF
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_DECIMAL = re.compile(r"[0-9]+")


def hint(value: str, known: Iterable[str]) -> str:
    """' (did you mean 'X'?)' when a known name is close to `value`, else ''."""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(value: str, known: Iterable[str], what: str) -> str:
    """An 'unknown X' message with a hint and, for short lists, every accepted value."""
    known = list(known)
    listed = f"; expected one of {', '.join(known)}" if len(known) <= 8 else ""
    return f"unknown {what} {value!r}{hint(value, known)}{listed}"


def parse_address(value: object, *, minimum: int = 1, what: str = "IOA") -> int:
    """An IOA (or an IOA offset/stride when `minimum` is 0) from a YAML integer or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"an {what} is a number such as 0x0021, not {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if _HEX.fullmatch(text):
            number = int(text, 16)
        elif _DECIMAL.fullmatch(text):
            number = int(text, 10)
        else:
            raise ValueError(f"{value!r} is not an {what}: write a number such as 0x0021")
    else:
        number = value
    if not minimum <= number <= MAX_IOA:
        shown = format_ioa(number) if number >= 0 else str(number)
        raise ValueError(
            f"{what} {shown} is out of range: IOAs have 3 bytes,"
            f" {format_ioa(minimum) if minimum else '0'}..0xFFFFFF"
        )
    return number


def parse_ioa(value: object) -> int:
    """An information object address, 1..0xFFFFFF."""
    return parse_address(value)


def format_ioa(ioa: int) -> str:
    """0x0021 for IOAs up to 0xFFFF, 0x012345 above: the way point tables print them."""
    return f"0x{ioa:04X}" if ioa <= 0xFFFF else f"0x{ioa:06X}"
