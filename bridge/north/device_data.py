"""What the device model of a translated station (1.6J and IEC 104) shares: DeviceDataCtrlr's limits,
GetReport's filters and the NotifyReport parts (B05-B08).

Rules
- Limits (DeviceDataCtrlr, instances GetReport, GetVariables, SetVariables): at most `ITEMS_PER_MESSAGE`
  items (getVariableData, setVariableData, componentVariable) and `BYTES_PER_MESSAGE` bytes (the CALL
  frame as received: its length on the wire, `frame_bytes`, which `NorthStation.receive` is given) in one
  request. More items → CALLERROR OccurrenceConstraintViolation (B06.FR.16,
  B08.FR.17, and the same for SetVariables, whose CSMS B05.FR.11 forbids it), more bytes → CALLERROR
  FormatViolation (B06.FR.17, B08.FR.18); the items are checked first. `NorthStation` applies them before
  the station's core sees the request. Pass-through stations have the charger's device model and limits.
- A variable is identified by (component, component instance, EVSE id, connector id, variable, variable
  instance): `Identity`, as each core keys its variables.
- GetReport (B08): `componentVariable` keeps the variables one selector matches: its component name, and
  its instance and EVSE id and connector id when given (B08.FR.22-25), and, when a variable is given,
  its name and its instance when given (B08.FR.20, B08.FR.21); `componentCriteria` keeps the components
  meeting any of them (B08.FR.13): Active, Available or Enabled, a component whose variable so named
  (without instance) has the Actual value "true", or that has no such variable (B08.FR.07-09); Problem, a
  component whose Problem is "true" (B08.FR.10: a component without Problem has none); both given → both apply (B08.FR.05). Nothing left → EmptyResultSet (B08.FR.15).
- NotifyReport parts: at most `ITEMS_PER_MESSAGE` reportData and `BYTES_PER_MESSAGE` bytes (as a CALL
  frame) each: the limits the station declares for GetReport, seqNo
  from 0 (B07.FR.10, B08.FR.14), tbc true on every part but the last, each with the request's requestId and
  one generatedAt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import orjson

from bridge.ocppj.errors import Fault

ITEMS_PER_MESSAGE: Final = 50
BYTES_PER_MESSAGE: Final = 65536
LIMITED: Final = {
    "GetVariables": "getVariableData",
    "SetVariables": "setVariableData",
    "GetReport": "componentVariable",
}

CRITERIA: Final = ("Active", "Available", "Enabled", "Problem")  # ComponentCriterionEnumType
Identity = tuple[str, str | None, int | None, int | None, str, str | None]
Payload = dict[str, Any]
T = TypeVar("T")
_FRAME_OVERHEAD: Final = (
    len('[2,"","NotifyReport",]') + 36
)  # a message id has at most 36 characters


def frame_bytes(data: str | bytes) -> int:
    """The length in bytes of a received frame (a text frame's UTF-8 bytes, as on the wire)."""
    if isinstance(data, bytes):
        return len(data)
    if data.isascii():
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def over_limit(action: str, payload: Payload, received: str | bytes) -> tuple[Fault, str] | None:
    """The CALLERROR a request (`received`: its frame) beyond DeviceDataCtrlr's limits gets, or None."""
    field = LIMITED.get(action)
    if field is None:
        return None
    items = payload.get(field) or ()
    if len(items) > ITEMS_PER_MESSAGE:
        return (
            Fault.OCCURRENCE,
            f"{len(items)} {field} items; ItemsPerMessage[{action}] is {ITEMS_PER_MESSAGE}",
        )
    size = frame_bytes(received)
    if size > BYTES_PER_MESSAGE:
        return Fault.FORMAT, f"{size} bytes; BytesPerMessage[{action}] is {BYTES_PER_MESSAGE}"
    return None


def selects(selector: Payload, identity: Identity) -> bool:
    """Whether one componentVariable of a GetReportRequest names this variable."""
    component = selector["component"]
    if component["name"] != identity[0]:
        return False
    if "instance" in component and component["instance"] != identity[1]:
        return False
    evse = component.get("evse")
    if evse is not None and (
        evse["id"] != identity[2] or ("connectorId" in evse and evse["connectorId"] != identity[3])
    ):
        return False
    variable = selector.get("variable")
    if variable is None:
        return True
    if variable["name"] != identity[4]:
        return False
    return "instance" not in variable or variable["instance"] == identity[5]


def custom_report(
    request: Payload,
    variables: Sequence[T],
    identity: Callable[[T], Identity],
    actual: Callable[[T], str | None],
) -> list[T]:
    """B08: the variables a GetReportRequest asks for, in their order."""
    found = list(variables)
    wanted = request.get("componentVariable")
    if wanted:
        found = [v for v in found if any(selects(w, identity(v)) for w in wanted)]
    criteria = request.get("componentCriteria")
    if criteria:
        qualifying = meeting(criteria, variables, identity, actual)
        found = [v for v in found if identity(v)[:4] in qualifying]
    return found


def meeting(
    criteria: Sequence[str],
    variables: Sequence[T],
    identity: Callable[[T], Identity],
    actual: Callable[[T], str | None],
) -> set[tuple[str, str | None, int | None, int | None]]:
    """The components meeting any of `criteria` (B08.FR.13): for Active, Available and Enabled, a
    component whose variable so named (without instance) is "true" or that has no such variable
    (B08.FR.07-09); for Problem, only one whose Problem is "true" (B08.FR.10)."""
    states: dict[tuple[str, str | None, int | None, int | None], dict[str, bool]] = {}
    for variable in variables:
        key = identity(variable)
        known = states.setdefault(key[:4], {})
        if key[4] in CRITERIA and key[5] is None:
            known[key[4]] = (actual(variable) or "").strip().lower() == "true"
    return {
        component
        for component, known in states.items()
        if any(known.get(c, c != "Problem") for c in criteria)
    }


def notify_report_parts(
    report_data: Sequence[Payload],
    request_id: int,
    generated_at: str,
    max_items: int = ITEMS_PER_MESSAGE,
    max_bytes: int = BYTES_PER_MESSAGE,
) -> list[Payload]:
    """The NotifyReportRequest payloads carrying `report_data` (none when it is empty): each at most
    `max_items` reportData and, as a CALL frame (compact JSON, any message id up to 36 characters), at
    most `max_bytes` bytes, unless one reportData alone is larger (it then goes alone)."""
    size = max(1, max_items)
    header = _FRAME_OVERHEAD + len(
        orjson.dumps(
            {
                "requestId": request_id,
                "generatedAt": generated_at,
                "seqNo": 2**31 - 1,
                "tbc": True,
                "reportData": [],
            }
        )
    )
    chunks: list[list[Payload]] = []
    used = max_bytes + 1
    for data in report_data:
        cost = len(orjson.dumps(data)) + 1  # the item and its comma
        if chunks and len(chunks[-1]) < size and used + cost <= max_bytes:
            chunks[-1].append(data)
            used += cost
        else:
            chunks.append([data])
            used = header + cost
    parts = []
    for seq_no, chunk in enumerate(chunks):
        part: Payload = {
            "requestId": request_id,
            "generatedAt": generated_at,
            "seqNo": seq_no,
            "reportData": chunk,
        }
        if seq_no < len(chunks) - 1:
            part["tbc"] = True
        parts.append(part)
    return parts
