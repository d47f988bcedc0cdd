"""bridge.stations.v16.actions: every 2.0.1 CSMS action has a treatment, and the NotSupported-style answers are
valid 2.0.1 responses; docs/ocpp16-mapping.md states the same table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import BridgeMisuse, OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16 import core
from bridge.stations.v16.actions import (
    CHARGER_ACTIONS,
    CSMS_ACTIONS,
    Treatment,
    answer_unsupported,
    transaction_status_response,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
DOC = Path(__file__).resolve().parents[2] / "docs" / "ocpp16-mapping.md"

# 2.0.1 actions a charging station initiates (part 2, per functional block); the rest are the CSMS's.
STATION_INITIATED = {
    "Authorize", "BootNotification", "ClearedChargingLimit", "FirmwareStatusNotification",
    "Get15118EVCertificate", "GetCertificateStatus", "Heartbeat", "LogStatusNotification",
    "MeterValues", "NotifyChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages",
    "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport",
    "NotifyReport", "PublishFirmwareStatusNotification", "ReportChargingProfiles",
    "ReservationStatusUpdate", "SecurityEventNotification", "SignCertificate", "StatusNotification",
    "TransactionEvent",
}  # fmt: skip
BOTH_WAYS = {"DataTransfer"}

# 1.6J (+ security) actions a charge point initiates.
CHARGER_INITIATED_16 = {
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
    "StatusNotification", "StopTransaction", "LogStatusNotification", "SecurityEventNotification",
    "SignCertificate", "SignedFirmwareStatusNotification",
}  # fmt: skip

# A schema-valid request for each ANSWERED action.
SAMPLE_REQUESTS: dict[str, dict[str, Any]] = {
    "ClearDisplayMessage": {"id": 3},
    "ClearVariableMonitoring": {"id": [1, 2]},
    "GetDisplayMessages": {"requestId": 1},
    "GetMonitoringReport": {"requestId": 1},
    "SetMonitoringBase": {"monitoringBase": "All"},
    "SetVariableMonitoring": {
        "setMonitoringData": [
            {
                "value": 10,
                "type": "UpperThreshold",
                "severity": 5,
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
            }
        ]
    },
    "UnpublishFirmware": {"checksum": "0" * 32},
}


def test_every_csms_action_has_a_treatment() -> None:
    all_201 = SCHEMAS.actions(V201)
    assert set(CSMS_ACTIONS) == (all_201 - STATION_INITIATED) | BOTH_WAYS
    assert len(CSMS_ACTIONS) == 40


def test_dispatch_tables_are_the_documented_tables() -> None:
    """The core dispatches on its own handler tables; the docs render `CSMS_ACTIONS` and
    `CHARGER_ACTIONS`. A CSMS action the table calls translated or emulated must have a handler
    (else `_csms_call` fails it with a KeyError, reported as a translation failure), and one
    answered by the bridge or refused must not (it would never be reached); every charger action
    the table lists has a handler, and no other (a handler missing from the table is undocumented)."""
    handled = {
        action
        for action, entry in CSMS_ACTIONS.items()
        if entry.treatment in (Treatment.TRANSLATED, Treatment.EMULATED)
    }
    assert set(core._CSMS_HANDLERS) == handled
    assert set(core._CHARGER_HANDLERS) == set(CHARGER_ACTIONS)


def test_every_charger_action_has_a_treatment() -> None:
    assert set(CHARGER_ACTIONS) == CHARGER_INITIATED_16
    assert SCHEMAS.actions(V16) >= CHARGER_INITIATED_16


@pytest.mark.parametrize(
    "action", sorted(a for a, t in CSMS_ACTIONS.items() if t.treatment is Treatment.ANSWERED)
)
def test_answered_actions_get_a_valid_truthful_response(action: str) -> None:
    request = SAMPLE_REQUESTS[action]
    assert SCHEMAS.check(V201, action, REQ, request) is None
    response = answer_unsupported(action, request)
    violation = SCHEMAS.check(V201, action, RES, response)
    assert violation is None, violation
    statuses = [response.get("status")] + [
        item["status"] for key in ("clearMonitoringResult", "setMonitoringResult") for item in response.get(key, [])
    ]  # fmt: skip
    assert "Accepted" not in statuses


def test_clear_variable_monitoring_answers_every_id() -> None:
    response = answer_unsupported("ClearVariableMonitoring", {"id": [4, 5]})
    assert [(r["id"], r["status"]) for r in response["clearMonitoringResult"]] == [
        (4, "NotFound"),
        (5, "NotFound"),
    ]


@pytest.mark.parametrize("action", ["Reset", "CostUpdated", "NoSuchAction"])
def test_answer_unsupported_refuses_other_actions(action: str) -> None:
    with pytest.raises(BridgeMisuse):
        answer_unsupported(action, {})


@pytest.mark.parametrize(("ongoing", "queued"), [(None, False), (True, True), (False, False)])
def test_e14_get_transaction_status(ongoing: bool | None, queued: bool) -> None:
    response = transaction_status_response(ongoing=ongoing, messages_in_queue=queued)
    assert response["messagesInQueue"] is queued
    assert response.get("ongoingIndicator") is ongoing
    assert SCHEMAS.check(V201, "GetTransactionStatus", RES, response) is None


def _doc_rows(heading: str) -> dict[str, str]:
    """`| Action | status | ...` rows of the table under `heading` in the mapping document."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\|\s*(\w+)\s*\|\s*([^|]+?)\s*\|", line)
        if match and match.group(1) not in ("Action",):
            rows[match.group(1)] = match.group(2)
    return rows


def test_document_states_every_csms_action_with_its_treatment() -> None:
    rows = _doc_rows("## CSMS → charger")
    assert {action: rows.get(action) for action in CSMS_ACTIONS} == {
        action: entry.treatment.value for action, entry in CSMS_ACTIONS.items()
    }


def test_document_states_every_charger_action_with_its_treatment() -> None:
    rows = _doc_rows("## Charger → CSMS")
    assert {action: rows.get(action) for action in CHARGER_ACTIONS} == {
        action: entry.treatment.value for action, entry in CHARGER_ACTIONS.items()
    }
