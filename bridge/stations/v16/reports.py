"""GetBaseReport / GetReport → NotifyReport, synthesised from the charger's GetConfiguration.

Rules
- Both ask the charger for its whole configuration (GetConfiguration with no key); the core answers the
  CSMS only once the answer is in, since the response depends on it (EmptyResultSet), then sends the
  NotifyReport parts. No answer from the charger → Rejected (B07.FR.13: temporarily unable).
- Each 1.6 key goes where the table puts it (`ConfigTable.mapping_for_key`; hidden keys nowhere); keys
  feeding one variable merge into one reportData: attribute rows become `variableAttribute` entries
  (value converted, mutability from the row or the charger's readonly flag), a `maxLimit` row becomes
  `variableCharacteristics.maxLimit`. A variable known only by its maximum still reports its Actual
  attribute, without value (B07.FR.11: supported attribute types are reported even when unset).
  Characteristics: dataType, unit and valuesList from the table, supportsMonitoring false (1.6 has no
  monitoring); a legacy key whose value is "true"/"false" is typed boolean. Bridge-owned variables (passed in) are added and win over a table entry of the same identity; a fallback one
  (`BridgeVariable.fallback`) is added only when the charger's configuration did not give it.
- GetBaseReport (B07): FullInventory = everything; ConfigurationInventory = variables the operator can set
  (an attribute that is ReadWrite or WriteOnly); SummaryInventory = the bridge variables flagged `summary`
  (the availability of the station, its EVSEs and connectors: 1.6 configuration says nothing about
  them; the core serves it without asking the charger, `configuration` = {}).
- GetReport (B08): `componentVariable` and `componentCriteria` filter as `bridge.north.device_data` says (shared
  with IEC 104 stations). Nothing left → EmptyResultSet and no NotifyReport.
- Parts (`bridge.north.device_data.notify_report_parts`): at most `max_items` (ItemsPerMessage) reportData
  each; seqNo from 0; tbc true on every part but the last; all with the request's requestId and the
  caller's `generated_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.north import device_data
from bridge.stations.v16.device_model import (
    ATTRIBUTE_TYPES,
    BridgeVariable,
    ConfigTable,
    KeyMapping,
    VariableRef,
    data_type_of,
    number_of,
    value_up,
)
from bridge.stations.v16.outcome import Forward, Payload

DEFAULT_MAX_ITEMS = device_data.ITEMS_PER_MESSAGE


def get_configuration_for_report(request: Payload) -> Forward:
    """B07/B08: the 1.6 call whose answer feeds the report."""
    return Forward("GetConfiguration", {})


@dataclass(slots=True)
class ReportEntry:
    ref: VariableRef
    attributes: dict[str, Payload] = field(default_factory=dict)
    characteristics: Payload = field(default_factory=dict)
    summary: bool = False

    def report_data(self) -> Payload:
        attributes = [self.attributes[t] for t in ATTRIBUTE_TYPES if t in self.attributes]
        if not attributes:
            attributes = [{"type": "Actual", "mutability": "ReadOnly"}]
        characteristics = {"supportsMonitoring": False, **self.characteristics}
        characteristics.setdefault("dataType", "string")
        return {
            "component": self.ref.component_payload(),
            "variable": self.ref.variable_payload(),
            "variableAttribute": attributes,
            "variableCharacteristics": characteristics,
        }

    def settable(self) -> bool:
        return any(
            a.get("mutability") in ("ReadWrite", "WriteOnly") for a in self.attributes.values()
        )

    def actual(self) -> str | None:
        value = self.attributes.get("Actual", {}).get("value")
        return value if isinstance(value, str) else None


def _characteristics(mapping: KeyMapping, entry: ReportEntry, value: object) -> None:
    chars = entry.characteristics
    if mapping.target != "maxLimit" or "dataType" not in chars:
        chars["dataType"] = data_type_of(mapping, value if isinstance(value, str) else None)
    if mapping.unit is not None:
        chars["unit"] = mapping.unit
    if mapping.values_list is not None:
        chars["valuesList"] = ",".join(mapping.values_list)


def collect_entries(
    configuration: Payload, table: ConfigTable, bridge_variables: Sequence[BridgeVariable] = ()
) -> list[ReportEntry]:
    """Every reportable variable, in the charger's key order, then the bridge's own."""
    entries: dict[VariableRef, ReportEntry] = {}
    for item in configuration.get("configurationKey", []):
        mapping = table.mapping_for_key(item["key"])
        if mapping is None:
            continue
        entry = entries.setdefault(mapping.ref, ReportEntry(mapping.ref))
        value = item.get("value")
        _characteristics(mapping, entry, value)
        if mapping.target == "maxLimit":
            limit = number_of(value) if isinstance(value, str) else None
            if limit is not None:
                entry.characteristics["maxLimit"] = limit
            continue
        mutability = mapping.mutability or ("ReadOnly" if item.get("readonly") else "ReadWrite")
        attribute: Payload = {"type": mapping.target, "mutability": mutability}
        if value is not None and mutability != "WriteOnly":
            attribute["value"] = value_up(value, data_type_of(mapping, value))
        entry.attributes[mapping.target] = attribute
    for variable in bridge_variables:
        if not variable.fallback or variable.ref not in entries:
            entries[variable.ref] = _bridge_entry(variable)
    return list(entries.values())


def _bridge_entry(variable: BridgeVariable) -> ReportEntry:
    attribute: Payload = {"type": "Actual", "mutability": variable.mutability}
    if variable.value is not None and variable.mutability != "WriteOnly":
        attribute["value"] = variable.value
    characteristics: Payload = {"dataType": variable.data_type}
    if variable.unit is not None:
        characteristics["unit"] = variable.unit
    if variable.values_list is not None:
        characteristics["valuesList"] = ",".join(variable.values_list)
    if variable.max_limit is not None:
        characteristics["maxLimit"] = variable.max_limit
    return ReportEntry(variable.ref, {"Actual": attribute}, characteristics, variable.summary)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    response: Payload  # GetBaseReportResponse or GetReportResponse
    reports: list[Payload]  # NotifyReportRequest payloads, in order


def _parts(
    entries: Sequence[ReportEntry], request_id: int, generated_at: str, max_items: int
) -> ReportOutcome:
    if not entries:
        return ReportOutcome({"status": "EmptyResultSet"}, [])
    data = [entry.report_data() for entry in entries]
    parts = device_data.notify_report_parts(data, request_id, generated_at, max_items)
    return ReportOutcome({"status": "Accepted"}, parts)


_UNABLE = ReportOutcome({"status": "Rejected"}, [])


def base_report(
    request: Payload,
    configuration: Payload | None,
    table: ConfigTable,
    *,
    generated_at: str,
    bridge_variables: Sequence[BridgeVariable] = (),
    max_items: int = DEFAULT_MAX_ITEMS,
) -> ReportOutcome:
    """B07: GetBaseReport's response and NotifyReport parts (`configuration`: GetConfiguration.conf)."""
    if configuration is None:
        return _UNABLE
    entries = collect_entries(configuration, table, bridge_variables)
    base = request["reportBase"]
    if base == "ConfigurationInventory":
        entries = [entry for entry in entries if entry.settable()]
    elif base == "SummaryInventory":
        entries = [entry for entry in entries if entry.summary]
    return _parts(entries, request["requestId"], generated_at, max_items)


def custom_report(
    request: Payload,
    configuration: Payload | None,
    table: ConfigTable,
    *,
    generated_at: str,
    bridge_variables: Sequence[BridgeVariable] = (),
    max_items: int = DEFAULT_MAX_ITEMS,
) -> ReportOutcome:
    """B08: GetReport's response and NotifyReport parts."""
    if configuration is None:
        return _UNABLE
    entries = collect_entries(configuration, table, bridge_variables)
    entries = device_data.custom_report(request, entries, _identity, ReportEntry.actual)
    return _parts(entries, request["requestId"], generated_at, max_items)


def _identity(entry: ReportEntry) -> device_data.Identity:
    ref = entry.ref
    return (
        ref.component,
        ref.component_instance,
        ref.evse_id,
        ref.connector_id,
        ref.variable,
        ref.variable_instance,
    )
