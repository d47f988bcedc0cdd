"""GetVariables → GetConfiguration and SetVariables → ChangeConfiguration, through the compiled table.

Rules
- Two steps, so the core stays in charge of sending: `plan_*` reads the 2.0.1 request and says which 1.6
  calls to make (and which items it can already answer); `*_response` assembles the 2.0.1 response from
  the charger's answers, in the order of the request, with each item's component and variable echoed.
- Resolution of one item (B06/B05): a bridge-owned variable of that identity answers first (the core
  passes them; they win over the table); else the table's row for the item's attributeType (Actual when
  absent); else:
  - the variable is known but not with that attribute type → NotSupportedAttributeType, except a variable
    that 1.6 only knows the maximum of (a `maxLimit` row, e.g. LocalAuthListCtrlr.Entries), whose Actual
    is Rejected: it exists, 1.6 cannot read it;
  - the component is known (a table component, the legacy component, or a bridge component) →
    UnknownVariable; otherwise UnknownComponent.
- A fallback bridge variable (`BridgeVariable.fallback`: a variable 2.0.1 requires that the charger's
  configuration may lack, e.g. OCPPCommCtrlr.FileTransferProtocols) answers only when the charger does
  not have the key: GetVariables Accepted with its value instead of UnknownVariable, SetVariables
  Rejected (ReadOnly) instead of UnknownVariable.
- A legacy key (no row) whose value is a boolean ("true"/"false", any case) is a boolean
  (`device_model.data_type_of`): its value is normalized as one.
- GetVariables: the keys asked are deduplicated and split into GetConfiguration calls of at most
  `max_keys` (the charger's GetConfigurationMaxKeys). A key in `unknownKey` or absent → UnknownVariable;
  a key without value → Accepted with an empty value; a WriteOnly variable → Rejected (WriteOnly); a
  charger that did not answer → Rejected. Values converted by `device_model.value_up`.
- SetVariables: one ChangeConfiguration per item, in order. Refused without asking: a ReadOnly row or
  bridge variable (Rejected, ReadOnly); a value of the wrong type or too long (Rejected, InvalidValue /
  TooLargeElement). Answers through `CONFIGURATION_STATUS_UP` (NotSupported → UnknownVariable). Writes to
  bridge-owned ReadWrite variables are handed to the core (`bridge_writes`), which reports each status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.stations.v16.device_model import (
    BridgeVariable,
    ConfigTable,
    KeyMapping,
    VariableRef,
    data_type_of,
    value_down,
    value_up,
)
from bridge.stations.v16.enums import CONFIGURATION_STATUS_UP
from bridge.stations.v16.outcome import Forward, Payload, status_info


@dataclass(frozen=True, slots=True)
class _Item:
    index: int
    request: Payload
    result: Payload | None = None  # decided without the charger
    mapping: KeyMapping | None = None
    bridge: BridgeVariable | None = None
    value: str | None = None  # SetVariables: the value to send
    fallback: BridgeVariable | None = None  # answers when the charger does not have the key


@dataclass(frozen=True, slots=True)
class _Bridge:
    """The bridge's variables by identity: the ones that win over the table, and the fallbacks."""

    own: dict[VariableRef, BridgeVariable]
    fallback: dict[VariableRef, BridgeVariable]

    def knows_component(self, ref: VariableRef) -> bool:
        return any(
            other.component == ref.component and other.evse_id == ref.evse_id
            for other in (*self.own, *self.fallback)
        )


def _bridge_index(bridge_variables: Sequence[BridgeVariable]) -> _Bridge:
    bridge = _Bridge({}, {})
    for variable in bridge_variables:
        (bridge.fallback if variable.fallback else bridge.own)[variable.ref] = variable
    return bridge


def _result(request: Payload, status: str, reason: str | None = None, why: str = "") -> Payload:
    result: Payload = {
        "attributeStatus": status,
        "component": request["component"],
        "variable": request["variable"],
    }
    if "attributeType" in request:
        result["attributeType"] = request["attributeType"]
    if reason is not None:
        result["attributeStatusInfo"] = status_info(reason, why)
    return result


def _resolve(index: int, request: Payload, table: ConfigTable, bridge: _Bridge) -> _Item:
    ref = VariableRef.of(request["component"], request["variable"])
    attribute = request.get("attributeType", "Actual")
    attributes = table.mappings_for(ref)
    owned = bridge.own.get(ref)
    fallback = bridge.fallback.get(ref)
    if owned is None and attributes is None:
        owned = fallback  # the table does not map it: the bridge answers
    if owned is not None:
        if attribute != "Actual":
            return _Item(index, request, _result(request, "NotSupportedAttributeType"))
        return _Item(index, request, bridge=owned)
    if attributes is None:
        component_known = table.knows_component(ref) or bridge.knows_component(ref)
        status = "UnknownVariable" if component_known else "UnknownComponent"
        return _Item(index, request, _result(request, status))
    mapping = attributes.get(attribute)
    if mapping is None:
        if attribute == "Actual" and "maxLimit" in attributes:
            return _Item(
                index,
                request,
                _result(
                    request, "Rejected", "UnsupportedParam", "OCPP 1.6 reports only its maximum"
                ),
            )
        return _Item(index, request, _result(request, "NotSupportedAttributeType"))
    return _Item(
        index, request, mapping=mapping, fallback=fallback if attribute == "Actual" else None
    )


# --- GetVariables -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetVariablesPlan:
    items: tuple[_Item, ...]
    calls: tuple[Forward, ...]  # GetConfiguration calls, in order (maybe none)


def plan_get_variables(
    request: Payload,
    table: ConfigTable,
    *,
    bridge_variables: Sequence[BridgeVariable] = (),
    max_keys: int | None = None,
) -> GetVariablesPlan:
    """B06: what to ask the charger for a GetVariablesRequest."""
    bridge = _bridge_index(bridge_variables)
    items = tuple(
        _resolve(index, item, table, bridge)
        for index, item in enumerate(request["getVariableData"])
    )
    keys = list(dict.fromkeys(item.mapping.key for item in items if item.mapping is not None))
    size = max_keys if max_keys and max_keys > 0 else max(len(keys), 1)
    calls = tuple(
        Forward("GetConfiguration", {"key": keys[i : i + size]}) for i in range(0, len(keys), size)
    )
    return GetVariablesPlan(items, calls)


def get_variables_response(plan: GetVariablesPlan, answers: Sequence[Payload | None]) -> Payload:
    """B06: the GetVariablesResponse from the answers (None: that call failed) to `plan.calls`."""
    values: dict[str, str | None] = {}
    unanswered: set[str] = set()
    for call, answer in zip(plan.calls, answers, strict=True):
        if answer is None:
            unanswered.update(call.payload["key"])
            continue
        for entry in answer.get("configurationKey", []):
            values[entry["key"]] = entry.get("value")
            values.setdefault(entry["key"].lower(), entry.get("value"))
    results = []
    for item in plan.items:
        if item.result is not None:
            results.append(item.result)
        elif item.bridge is not None:
            results.append(_bridge_value(item.request, item.bridge))
        elif item.mapping is not None:
            result = _charger_value(item.request, item.mapping, values, unanswered)
            if result["attributeStatus"] == "UnknownVariable" and item.fallback is not None:
                result = _bridge_value(item.request, item.fallback)
            results.append(result)
    return {"getVariableResult": results}


def _bridge_value(request: Payload, variable: BridgeVariable) -> Payload:
    if variable.mutability == "WriteOnly":
        return _result(request, "Rejected", "WriteOnly")
    result = _result(request, "Accepted")
    result["attributeValue"] = variable.value or ""
    return result


def _charger_value(
    request: Payload,
    mapping: KeyMapping,
    values: Mapping[str, str | None],
    unanswered: set[str],
) -> Payload:
    if mapping.mutability == "WriteOnly":
        return _result(request, "Rejected", "WriteOnly")
    if mapping.key in unanswered:
        return _result(request, "Rejected", "Unspecified", "the charger did not answer")
    key = mapping.key if mapping.key in values else mapping.key.lower()
    if key not in values:
        return _result(request, "UnknownVariable")
    value = values[key]
    result = _result(request, "Accepted")
    result["attributeValue"] = (
        value_up(value, data_type_of(mapping, value)) if value is not None else ""
    )
    return result


# --- SetVariables ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetVariablesPlan:
    items: tuple[_Item, ...]
    calls: tuple[Forward, ...]  # ChangeConfiguration calls, in order
    bridge_writes: tuple[tuple[int, BridgeVariable, str], ...]  # (item index, variable, new value)


def plan_set_variables(
    request: Payload, table: ConfigTable, *, bridge_variables: Sequence[BridgeVariable] = ()
) -> SetVariablesPlan:
    """B05: one ChangeConfiguration per settable item."""
    bridge = _bridge_index(bridge_variables)
    items: list[_Item] = []
    writes: list[tuple[int, BridgeVariable, str]] = []
    for index, item_request in enumerate(request["setVariableData"]):
        item = _resolve(index, item_request, table, bridge)
        value = item_request["attributeValue"]
        owned = item.bridge
        if owned is not None:
            if owned.mutability == "ReadOnly":
                item = _Item(index, item_request, _result(item_request, "Rejected", "ReadOnly"))
            else:
                writes.append((index, owned, value))
        elif item.mapping is not None:
            item = _settable(item, item_request, item.mapping, value)
        items.append(item)
    calls = tuple(
        Forward("ChangeConfiguration", {"key": item.mapping.key, "value": item.value})
        for item in items
        if item.mapping is not None and item.value is not None
    )
    return SetVariablesPlan(tuple(items), calls, tuple(writes))


def _settable(item: _Item, request: Payload, mapping: KeyMapping, value: str) -> _Item:
    if mapping.mutability == "ReadOnly":
        return _Item(item.index, request, _result(request, "Rejected", "ReadOnly"))
    converted, reason = value_down(value, mapping.data_type)
    if converted is None:
        why = f"not a valid {mapping.data_type} for OCPP 1.6 key {mapping.key}"
        return _Item(item.index, request, _result(request, "Rejected", reason, why))
    return _Item(item.index, request, mapping=mapping, value=converted, fallback=item.fallback)


def set_variables_response(
    plan: SetVariablesPlan,
    answers: Sequence[Payload | None],
    bridge_statuses: Mapping[int, str | tuple[str, str]] | None = None,
) -> Payload:
    """B05: the SetVariablesResponse from the answers (None: failed) to `plan.calls`, and the core's
    status (Accepted, Rejected, RebootRequired), or (status, reason code), for each of
    `plan.bridge_writes` by item index."""
    answer_of = iter(answers)
    statuses = bridge_statuses or {}
    results = []
    for item in plan.items:
        if item.result is not None:
            results.append(item.result)
        elif item.bridge is not None:
            status = statuses.get(item.index, "Rejected")
            if isinstance(status, tuple):
                results.append(_result(item.request, status[0], status[1]))
            else:
                results.append(_result(item.request, status))
        elif item.mapping is not None:
            answer = next(answer_of, None)
            if answer is None:
                results.append(
                    _result(item.request, "Rejected", "Unspecified", "the charger did not answer")
                )
            else:
                status = CONFIGURATION_STATUS_UP.get(answer.get("status", ""), "Rejected")
                if status == "UnknownVariable" and item.fallback is not None:
                    results.append(_result(item.request, "Rejected", "ReadOnly"))  # the bridge's
                else:
                    results.append(_result(item.request, status))
    return {"setVariableResult": results}
