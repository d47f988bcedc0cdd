"""Pre-built OCPP payloads for the charger swarm and the CSMS sink.

Rules
- The swarm's requests are valid against the official schemas (`tests/test_bench_smoke.py` checks them),
  built once per process; a request costs the swarm one string concatenation, not a JSON encode.
- The sink answers every 2.0.1 CALL with the smallest schema-valid CALLRESULT payload of that action,
  derived from the official response schema (required properties only, first enum value), with a few
  chosen values: BootNotification is Accepted with a one-day heartbeat interval (so no Heartbeat traffic
  disturbs the measurement), Authorize is Accepted.
- Message kinds: `status`, `meter`, `authorize`, `heartbeat`, `boot`; each exists in both 1.6 and 2.0.1
  spelling. The direct path (swarm → sink) always uses the 2.0.1 spelling.
"""

from __future__ import annotations

import importlib.resources
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
ID_TAG = "04A2B3C4D5E6F7"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def requests(protocol: str, stamp: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """kind -> (action, payload) in the protocol's spelling."""
    stamp = stamp or now_iso()
    if protocol == V16:
        return {
            "boot": (
                "BootNotification",
                {"chargePointVendor": "Bench", "chargePointModel": "Swarm-16"},
            ),
            "heartbeat": ("Heartbeat", {}),
            "status": (
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "NoError",
                    "status": "Available",
                    "timestamp": stamp,
                },
            ),
            "meter": (
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {
                            "timestamp": stamp,
                            "sampledValue": [
                                {
                                    "value": "12345.6",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                }
                            ],
                        }
                    ],
                },
            ),
            "authorize": ("Authorize", {"idTag": ID_TAG}),
        }
    return {
        "boot": (
            "BootNotification",
            {"reason": "PowerUp", "chargingStation": {"model": "Swarm-201", "vendorName": "Bench"}},
        ),
        "heartbeat": ("Heartbeat", {}),
        "status": (
            "StatusNotification",
            {"timestamp": stamp, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ),
        "meter": (
            "MeterValues",
            {
                "evseId": 1,
                "meterValue": [
                    {
                        "timestamp": stamp,
                        "sampledValue": [
                            {
                                "value": 12345.6,
                                "measurand": "Energy.Active.Import.Register",
                                "unitOfMeasure": {"unit": "Wh"},
                            }
                        ],
                    }
                ],
            },
        ),
        "authorize": ("Authorize", {"idToken": {"idToken": ID_TAG, "type": "ISO14443"}}),
    }


class FrameTemplate:
    """`[2,"<id>","<action>",<payload>]` with the payload encoded once."""

    def __init__(self, action: str, payload: dict[str, Any]) -> None:
        self.action = action
        self._tail = '","' + action + '",' + json.dumps(payload, separators=(",", ":")) + "]"

    def frame(self, message_id: str) -> str:
        return '[2,"' + message_id + self._tail


# --- the sink's answers -----------------------------------------------------------------------------


def _minimal(schema: dict[str, Any], definitions: dict[str, Any], stamp: str) -> Any:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _minimal(definitions[name], definitions, stamp)
    if "enum" in schema:
        values = schema["enum"]
        return "Accepted" if "Accepted" in values else values[0]
    kind = schema.get("type")
    if kind == "object":
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        return {key: _minimal(properties[key], definitions, stamp) for key in required}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [_minimal(schema.get("items", {}), definitions, stamp) for _ in range(count)]
    if kind == "string":
        if schema.get("format") == "date-time":
            return stamp
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return {}


_CHOSEN: dict[str, dict[str, Any]] = {
    "BootNotification": {"interval": 86400, "status": "Accepted"},
    "Authorize": {"idTokenInfo": {"status": "Accepted"}},
}


@cache
def _response_schemas() -> dict[str, dict[str, Any]]:
    folder = importlib.resources.files("ocpp").joinpath("v201/schemas")
    schemas = {}
    for entry in folder.iterdir():
        if entry.name.endswith("Response.json"):
            text = entry.read_bytes().decode("utf-8-sig")
            schemas[entry.name.removesuffix("Response.json")] = json.loads(text)
    return schemas


def sink_answers(stamp: str | None = None) -> dict[str, str]:
    """2.0.1 action -> the JSON text of a minimal valid response payload."""
    stamp = stamp or now_iso()
    answers = {}
    for action, schema in _response_schemas().items():
        payload = _minimal(schema, schema.get("definitions", {}), stamp)
        payload.update(_CHOSEN.get(action, {}))
        answers[action] = json.dumps(payload, separators=(",", ":"))
    return answers
