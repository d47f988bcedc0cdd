"""The OCPP 2.0.1 device model of a 104 station, built from its mapping table (B06, B07, B08).

The charger has no device model; the bridge serves one made of the table and the live point values:

| component (evse)                 | variable                       | value, mutability                      |
|----------------------------------|--------------------------------|----------------------------------------|
| ChargingStation                  | VendorName, Model, SerialNumber, FirmwareVersion | the table's identity, ReadOnly |
| the bridge's own (`bridge.north.owned_variables`): OCPPCommCtrlr, SecurityCtrlr, DeviceDataCtrlr, ClockCtrlr, TxCtrlr, AuthCtrlr, SmartChargingCtrlr limits and Entries[ChargingProfiles], availability of ChargingStation, EVSE (n, with Power from its Power.Active.Import point), Connector (n, 1) | | the core's, source "owned" |
| SampledDataCtrlr                 | TxUpdatedInterval              | seconds between meter values, ReadWrite |
| SampledDataCtrlr                 | TxUpdatedMeasurands            | the measurands the table maps          |
| SmartChargingCtrlr               | Enabled, RateUnit              | true; the units the table has setpoints for |
| the `report` variable of a point | as written in the table        | the point's live value                 |
| Iec104Point (n or none)          | the point's name               | every monitoring point's live value    |

Rules
- A variable is identified by (component name, component instance, EVSE id, connector id, variable
  name, variable instance), as in a GetVariables request; only the Actual attribute exists. GetVariables
  of a WriteOnly variable is Rejected (B06.FR.09); a variable without a value answers "" (B06.FR.13).
- `source` says where the core finds the value: "identity:<field>", "status", "station-status",
  "tx-updated-interval", "tx-updated-measurands", "enabled", "rate-units", "point:<ioa>", "owned"
  (the bridge's own, `bridge.north.owned_variables`: settable ones are written there).
- List-typed variables (OptionList, MemberList) carry their valuesList.
- Reports: FullInventory lists every variable, ConfigurationInventory the writable ones,
  SummaryInventory the availability states; GetReport the ones its componentVariable and
  componentCriteria select (`bridge.north.device_data.custom_report`, keyed by `Variable.key`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bridge.north.owned_variables import Owned
from bridge.stations.iec104.compiled import CompiledTable
from bridge.stations.iec104.private import Tariff
from bridge.stations.iec104.rules import (
    CounterRule,
    EnumRule,
    MeasurementRule,
    MonitoringRule,
    StatusRule,
)
from bridge.stations.iec104.vocabulary import MEASURANDS

POINT_COMPONENT: Final = "Iec104Point"
TX_UPDATED_INTERVAL: Final = ("SampledDataCtrlr", "TxUpdatedInterval")
REPORT_BASES: Final = ("FullInventory", "ConfigurationInventory", "SummaryInventory")
_UNIT_MAX: Final = 16
OWNED_SOURCE: Final = "owned"

Key = tuple[str, str | None, int | None, int | None, str, str | None]


@dataclass(frozen=True, slots=True)
class Variable:
    component: str
    variable: str
    source: str
    evse: int | None = None
    connector: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None
    mutability: str = "ReadOnly"
    data_type: str = "string"
    unit: str | None = None
    values_list: str | None = None
    summary: bool = False

    @property
    def key(self) -> Key:
        return (
            self.component,
            self.component_instance,
            self.evse,
            self.connector,
            self.variable,
            self.variable_instance,
        )

    def component_json(self) -> dict[str, Any]:
        component: dict[str, Any] = {"name": self.component}
        if self.component_instance is not None:
            component["instance"] = self.component_instance
        if self.evse is not None:
            evse: dict[str, Any] = {"id": self.evse}
            if self.connector is not None:
                evse["connectorId"] = self.connector
            component["evse"] = evse
        return component

    def variable_json(self) -> dict[str, Any]:
        variable: dict[str, Any] = {"name": self.variable}
        if self.variable_instance is not None:
            variable["instance"] = self.variable_instance
        return variable

    def in_report(self, base: str) -> bool:
        if base == "ConfigurationInventory":
            return self.mutability != "ReadOnly"
        if base == "SummaryInventory":
            return self.summary
        return True

    def report_data(self, value: str | None) -> dict[str, Any]:
        attribute: dict[str, Any] = {"type": "Actual", "mutability": self.mutability}
        if value is not None:
            attribute["value"] = value[:2500]
        characteristics: dict[str, Any] = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.unit is not None:
            characteristics["unit"] = self.unit[:_UNIT_MAX]
        if self.values_list is not None:
            characteristics["valuesList"] = self.values_list
        return {
            "component": self.component_json(),
            "variable": self.variable_json(),
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }


def request_key(component: dict[str, Any], variable: dict[str, Any]) -> Key:
    """The key a GetVariables/SetVariables entry names."""
    evse = component.get("evse") or {}
    return (
        component["name"],
        component.get("instance"),
        evse.get("id"),
        evse.get("connectorId"),
        variable["name"],
        variable.get("instance"),
    )


class DeviceModel:
    """Every variable of one station, looked up by key."""

    def __init__(self, variables: list[Variable]) -> None:
        self.variables = tuple(variables)
        self._by_key = {variable.key: variable for variable in variables}
        self._components = {
            (v.component, v.component_instance, v.evse, v.connector) for v in variables
        }

    def __iter__(self) -> Iterator[Variable]:
        return iter(self.variables)

    def find(self, key: Key) -> Variable | None:
        return self._by_key.get(key)

    def knows_component(self, key: Key) -> bool:
        return key[:4] in self._components

    def get_result(
        self, request: dict[str, Any], value_of: Callable[[Variable], str | None]
    ) -> dict[str, Any]:
        """One GetVariableResult for one GetVariableData."""
        component, variable = request["component"], request["variable"]
        result: dict[str, Any] = {"component": component, "variable": variable}
        attribute_type = request.get("attributeType", "Actual")
        if attribute_type != "Actual":
            result["attributeType"] = attribute_type
        key = request_key(component, variable)
        found = self.find(key)
        if found is None:
            known = self.knows_component(key)
            result["attributeStatus"] = "UnknownVariable" if known else "UnknownComponent"
            return result
        if attribute_type != "Actual":
            result["attributeStatus"] = "NotSupportedAttributeType"
            return result
        if found.mutability == "WriteOnly":  # B06.FR.09
            result["attributeStatus"] = "Rejected"
            result["attributeStatusInfo"] = {"reasonCode": "WriteOnly"}
            return result
        value = value_of(found)
        result["attributeStatus"] = "Accepted"
        result["attributeValue"] = (value or "")[:2500]  # B06.FR.13: no value is an empty string
        return result


def tariff_source(source: str) -> tuple[str, str] | None:
    """(private ASDU name, field) of a tariff variable's source, else None."""
    if not source.startswith("tariff:"):
        return None
    name, _, field_name = source[7:].partition(":")
    return name, field_name


def build_device_model(
    table: CompiledTable, rate_units: list[str], owned: Sequence[Owned] = ()
) -> DeviceModel:
    """The station's variables: its identity, the bridge's own (`owned`: their descriptions; the core
    gives their values when asked), the sampled-data and smart-charging ones, and the points'."""
    identity = table.identity
    variables: list[Variable] = []
    for field_name, name in (
        ("vendor_name", "VendorName"),
        ("model", "Model"),
        ("serial_number", "SerialNumber"),
        ("firmware_version", "FirmwareVersion"),
    ):
        if getattr(identity, field_name) is not None:
            variables.append(Variable("ChargingStation", name, f"identity:{field_name}"))
    for item in owned:
        variables.append(
            Variable(
                item.component,
                item.variable,
                OWNED_SOURCE,
                evse=item.evse,
                connector=item.connector,
                variable_instance=item.variable_instance,
                mutability=item.mutability,
                data_type=item.data_type,
                unit=item.unit,
                values_list=",".join(item.values_list) if item.values_list else None,
                summary=item.summary,
            )
        )
    variables += [
        Variable(
            *TX_UPDATED_INTERVAL,
            "tx-updated-interval",
            mutability="ReadWrite",
            data_type="integer",
            unit="s",
        ),
        Variable(
            "SampledDataCtrlr",
            "TxUpdatedMeasurands",
            "tx-updated-measurands",
            data_type="MemberList",
            values_list=",".join(MEASURANDS),
        ),
        Variable("SmartChargingCtrlr", "Enabled", "enabled", data_type="boolean"),
        Variable(
            "SmartChargingCtrlr",
            "RateUnit",
            "rate-units",
            data_type="MemberList",
            values_list=",".join(rate_units) or "A,W",
        ),
    ]
    for private in table.private.values():
        meaning = private.meaning
        if isinstance(meaning, Tariff):
            for name, field_name in meaning.variables.items():
                spec = private.layout.field(field_name)
                numeric = spec.type not in ("ascii", "bcd", "raw", "cp56")
                variables.append(
                    Variable(
                        meaning.component,
                        name,
                        f"tariff:{private.name}:{field_name}",
                        mutability="ReadWrite",
                        data_type="decimal" if numeric else "string",
                    )
                )
    seen: set[Key] = {variable.key for variable in variables}
    for rule in table.monitoring.values():
        for variable in _point_variables(rule):
            if variable.key not in seen:
                seen.add(variable.key)
                variables.append(variable)
    return DeviceModel(variables)


def _point_variables(rule: MonitoringRule) -> list[Variable]:
    source = f"point:{rule.ioa}"
    data_type = "boolean" if isinstance(rule, StatusRule) else "decimal"
    unit: str | None = None
    values_list: str | None = None
    if isinstance(rule, MeasurementRule | CounterRule):
        unit = rule.unit
    if isinstance(rule, EnumRule):
        data_type = "OptionList"
        values_list = ",".join(rule.values.values())
    found = [
        Variable(
            POINT_COMPONENT,
            rule.key,
            source,
            evse=rule.connector,
            data_type=data_type,
            unit=unit,
            values_list=values_list,
        )
    ]
    if rule.report is not None:
        report = rule.report
        found.append(
            Variable(
                report.component,
                report.variable,
                source,
                evse=rule.connector,
                variable_instance=report.instance,
                data_type=data_type,
                unit=unit,
                values_list=values_list,
            )
        )
    return found


def text_of(value: bool | int | float | str | None) -> str | None:
    """A device-model value as text: true/false, integers without a decimal point."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}" if abs(value) < 1e6 else str(round(value, 3))
    return str(value)


_W_PER_UNIT: Final = {"W": 1.0, "kW": 1000.0}


def power_of(
    rules: Sequence[MonitoringRule], values: Mapping[int, bool | int | float]
) -> str | None:
    """EVSE.Power's Actual value: the connector's total Power.Active.Import point in W, if it has one
    and its value is known."""
    for rule in rules:
        if (
            isinstance(rule, MeasurementRule)
            and rule.measurand == "Power.Active.Import"
            and rule.phase is None
            and rule.unit in _W_PER_UNIT
        ):
            value = values.get(rule.ioa)
            if value is None or isinstance(value, bool):
                return None
            return text_of(float(value) * _W_PER_UNIT[rule.unit or ""])
    return None
