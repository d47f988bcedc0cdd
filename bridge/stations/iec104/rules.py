"""Compiled point rules: what one IOA of one charger means, and how its values convert.

One rule per IOA, frozen. Monitoring rules (status, measurement, enum, counter) decode values the
charger sends; control rules (command, setpoint) say what to send. Every rule carries its `meaning` and its
OCPP 2.0.1 `target` in words, for `mappings explain` and for diagnostics.

Rules
- Status: a single point is on when its value is true; a double point is on in state ON (2), off in state
  OFF (1) and unknown (None) in INTERMEDIATE (0) or INDETERMINATE (3); `invert` swaps on and off.
- Measurement: OCPP value = raw × scale + offset, in `unit`. Counter: raw × scale, in `unit`; `wh()` gives
  the same in Wh for the energy units Wh and kWh.
- Setpoint: `device_value(limit, rate_unit)` turns a charging-profile limit (A or W, the OCPP
  chargingRateUnit) into the value to send: converted to the setpoint's unit (A, W or kW), clamped to
  minimum/maximum, then ÷ scale (C_SE_NB_1: rounded and clamped to −32768..32767) or ÷ full_scale
  (C_SE_NA_1: clamped to −1..+32767/32768). A limit in the other rate unit is refused (ValueError): A ↔ W
  needs the voltage and phase count, which is the station core's knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.stations.iec104.points import CommandMode, DeviceVariable
from bridge.stations.iec104.vocabulary import (
    DOUBLE_POINT_TYPES,
    WH_PER_UNIT,
    CommandAction,
    Location,
    Measurand,
    Phase,
    RateUnit,
    SetpointUnit,
    TypeId,
)

_DOUBLE_ON = 2
_DOUBLE_OFF = 1
_NORMALIZED_MAX = 32767 / 32768


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rule:
    ioa: int
    type_id: TypeId
    key: str
    connector: int | None
    meaning: str
    target: str

    @property
    def scaling(self) -> str:
        """How raw values convert, in words (for `explain`)."""
        return "—"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRule(_Rule):
    invert: bool = False
    report: DeviceVariable | None = None

    def decode(self, raw: bool | int) -> bool | None:
        if self.type_id in DOUBLE_POINT_TYPES:
            if raw is True or raw is False or raw not in (_DOUBLE_ON, _DOUBLE_OFF):
                return None
            on = raw == _DOUBLE_ON
        else:
            on = bool(raw)
        return on != self.invert

    @property
    def scaling(self) -> str:
        return "inverted" if self.invert else "—"


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasurementRule(_Rule):
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    measurand: Measurand | None = None
    phase: Phase | None = None
    location: Location | None = None
    report: DeviceVariable | None = None

    def convert(self, raw: float) -> float:
        return raw * self.scale + self.offset

    @property
    def scaling(self) -> str:
        text = f"×{self.scale:g}"
        if self.offset:
            text += f" {self.offset:+g}"
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumRule(_Rule):
    values: Mapping[int, str]
    report: DeviceVariable | None = None

    def name_of(self, raw: float) -> str | None:
        if not float(raw).is_integer():
            return None
        return self.values.get(int(raw))

    @property
    def scaling(self) -> str:
        return ", ".join(f"{code} {name}" for code, name in self.values.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterRule(_Rule):
    scale: float = 1.0
    unit: str = "Wh"
    measurand: Measurand | None = None
    report: DeviceVariable | None = None

    def convert(self, raw: int) -> float:
        return raw * self.scale

    def wh(self, raw: int) -> float | None:
        """The count in Wh, or None for a counter of another quantity (varh, VAh)."""
        factor = WH_PER_UNIT.get(self.unit)
        return None if factor is None else raw * self.scale * factor

    @property
    def scaling(self) -> str:
        return f"×{self.scale:g} {self.unit}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRule(_Rule):
    actions: Mapping[CommandAction, str | int]
    qualifier: str = "none"
    mode: CommandMode = "direct"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetpointRule(_Rule):
    unit: SetpointUnit
    scale: float = 1.0
    full_scale: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    mode: CommandMode = "direct"

    @property
    def rate_unit(self) -> RateUnit:
        return "A" if self.unit == "A" else "W"

    def device_value(self, limit: float, rate_unit: RateUnit) -> float:
        if rate_unit != self.rate_unit:
            raise ValueError(
                f"setpoint {self.key!r} takes limits in {self.rate_unit}, not {rate_unit}"
            )
        value = limit / 1000 if self.unit == "kW" else limit
        if self.minimum is not None:
            value = max(value, self.minimum)
        if self.maximum is not None:
            value = min(value, self.maximum)
        if self.type_id == TypeId.C_SE_NA_1:
            assert self.full_scale is not None  # validated: C_SE_NA_1 needs full_scale
            return min(max(value / self.full_scale, -1.0), _NORMALIZED_MAX)
        if self.type_id == TypeId.C_SE_NB_1:
            return float(min(max(round(value / self.scale), -32768), 32767))
        return value / self.scale

    @property
    def scaling(self) -> str:
        if self.full_scale is not None:
            return f"1.0 = {self.full_scale:g} {self.unit}"
        return f"÷{self.scale:g} {self.unit}" if self.scale != 1 else self.unit


MonitoringRule = StatusRule | MeasurementRule | EnumRule | CounterRule
ControlRule = CommandRule | SetpointRule
PointRule = MonitoringRule | ControlRule


@dataclass(frozen=True, slots=True)
class CommandTarget:
    """What to send for one CSMS request on one connector (None: the charger as a whole)."""

    action: CommandAction
    connector: int | None
    ioa: int
    type_id: TypeId
    value: str | int
    qualifier: str
    mode: CommandMode
    key: str
