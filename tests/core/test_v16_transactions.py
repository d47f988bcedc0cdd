"""bridge.stations.v16.transactions: E01/E02 start, E02 updates, E06 stop, J01 meter values outside transactions,
F01 remote start trigger reason."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.transactions import (
    meter_trigger_reason,
    meter_values_request,
    start_transaction_response,
    stop_transaction_response,
    transaction_ended,
    transaction_started,
    transaction_updated,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
RECEIVED = "2026-03-01T12:00:00Z"
T0 = "2026-03-01T10:00:00Z"
TX = "0f3c7c1e-6a1b-4c43-9d8e-0d2a1f7b5e11"


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


START = {"connectorId": 2, "idTag": "04A2B3C4", "meterStart": 1500, "timestamp": T0}


class TestE02StartTransaction:
    def test_started_event(self) -> None:
        check(V16, "StartTransaction", REQ, START)
        result = transaction_started(START, transaction_id=TX, received_at=RECEIVED)
        assert result.problems == []
        assert result.payload == {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": TX},
            "evse": {"id": 2, "connectorId": 1},
            "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"},
            "meterValue": [
                {
                    "timestamp": T0,
                    "sampledValue": [
                        {
                            "value": 1500,
                            "context": "Transaction.Begin",
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
                        }
                    ],
                }
            ],
        }
        check(V201, "TransactionEvent", REQ, result.payload)

    def test_f01_remote_start_offline_and_reservation(self) -> None:
        request = {**START, "reservationId": 9}
        token = {"idToken": "a-token-longer-than-twenty-chars", "type": "eMAID"}
        result = transaction_started(
            request,
            transaction_id=TX,
            received_at=RECEIVED,
            remote_start_id=77,
            offline=True,
            id_token=token,
        )
        payload = result.payload
        assert payload is not None
        assert payload["triggerReason"] == "RemoteStart"
        assert payload["transactionInfo"] == {"transactionId": TX, "remoteStartId": 77}
        assert (payload["offline"], payload["reservationId"], payload["idToken"]) == (
            True,
            9,
            token,
        )
        check(V201, "TransactionEvent", REQ, payload)

    def test_unsynchronised_clock_replaced_and_reported(self) -> None:
        result = transaction_started(
            {**START, "timestamp": "1970-01-01T00:00:00Z"}, transaction_id=TX, received_at=RECEIVED
        )
        assert result.payload is not None
        assert result.payload["timestamp"] == RECEIVED
        assert result.payload["meterValue"][0]["timestamp"] == RECEIVED
        assert [p.kind for p in result.problems] == ["unsynchronised-clock"]

    @pytest.mark.parametrize(
        ("answer", "id_tag_info"),
        [
            (None, {"status": "Accepted"}),
            ({}, {"status": "Accepted"}),
            ({"idTokenInfo": {"status": "Blocked"}}, {"status": "Blocked"}),
            ({"idTokenInfo": {"status": "NoCredit"}}, {"status": "Invalid"}),
        ],
    )
    def test_response(self, answer: dict[str, Any] | None, id_tag_info: dict[str, Any]) -> None:
        if answer is not None:
            check(V201, "TransactionEvent", RES, answer)
        response = start_transaction_response(answer, transaction_id=41)
        assert response == {"transactionId": 41, "idTagInfo": id_tag_info}
        check(V16, "StartTransaction", RES, response)


def meter_values(context: str | None = None, transaction: bool = True) -> dict[str, Any]:
    sample: dict[str, Any] = {"value": "2500", "unit": "Wh"}
    if context is not None:
        sample["context"] = context
    request: dict[str, Any] = {
        "connectorId": 2,
        "meterValue": [
            {"timestamp": T0, "sampledValue": [sample]},
            {
                "timestamp": "2026-03-01T10:05:00Z",
                "sampledValue": [{"value": "30.5", "measurand": "Temperature"}],
            },
        ],
    }
    if transaction:
        request["transactionId"] = 41
    check(V16, "MeterValues", REQ, request)
    return request


class TestE02MeterValuesInATransaction:
    @pytest.mark.parametrize(
        ("context", "trigger"),
        [
            (None, "MeterValuePeriodic"),
            ("Sample.Periodic", "MeterValuePeriodic"),
            ("Sample.Clock", "MeterValueClock"),
            ("Trigger", "Trigger"),
        ],
    )
    def test_updated_event(self, context: str | None, trigger: str) -> None:
        result = transaction_updated(
            meter_values(context), transaction_id=TX, seq_no=3, received_at=RECEIVED
        )
        payload = result.payload
        assert payload is not None
        assert payload["eventType"] == "Updated"
        assert (payload["triggerReason"], payload["seqNo"]) == (trigger, 3)
        assert payload["evse"] == {"id": 2, "connectorId": 1}
        assert payload["timestamp"] == T0
        assert [mv["sampledValue"][0]["value"] for mv in payload["meterValue"]] == [2500]
        # the Temperature reading left for a NotifyEvent
        assert [r.measurand for r in result.readings] == ["Temperature"]
        check(V201, "TransactionEvent", REQ, payload)

    def test_nothing_left_to_send(self) -> None:
        request = {
            "connectorId": 1,
            "transactionId": 41,
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": "n/a"}]}],
        }
        result = transaction_updated(request, transaction_id=TX, seq_no=1, received_at=RECEIVED)
        assert result.payload is None
        assert [p.kind for p in result.problems] == ["non-numeric-value"]

    def test_trigger_reason_priorities(self) -> None:
        values = [
            {"timestamp": T0, "sampledValue": [{"value": 1, "context": "Sample.Clock"}]},
            {"timestamp": T0, "sampledValue": [{"value": 1, "context": "Trigger"}]},
        ]
        assert meter_trigger_reason(values) == "Trigger"


class TestJ01MeterValuesOutsideATransaction:
    @pytest.mark.parametrize("connector_id", [0, 1])
    def test_meter_values_request(self, connector_id: int) -> None:
        request = {**meter_values("Sample.Clock", transaction=False), "connectorId": connector_id}
        result = meter_values_request(request, received_at=RECEIVED)
        assert result.payload is not None
        assert result.payload["evseId"] == connector_id
        assert len(result.payload["meterValue"]) == 1
        check(V201, "MeterValues", REQ, result.payload)


STOP = {"transactionId": 41, "meterStop": 2800, "timestamp": "2026-03-01T11:00:00Z"}


class TestE06StopTransaction:
    @pytest.mark.parametrize(
        ("reason", "id_tag", "stopped", "trigger", "token_sent"),
        [
            (None, None, "Local", "StopAuthorized", False),
            (None, "04A2B3C4", "Local", "StopAuthorized", True),
            ("Local", "04A2B3C4", "Local", "StopAuthorized", True),
            ("Remote", "04A2B3C4", "Remote", "RemoteStop", False),
            ("EVDisconnected", None, "EVDisconnected", "EVCommunicationLost", False),
            ("EmergencyStop", None, "EmergencyStop", "AbnormalCondition", False),
            ("HardReset", "04A2B3C4", "ImmediateReset", "ResetCommand", False),
            ("SoftReset", None, "ImmediateReset", "ResetCommand", False),
            ("UnlockCommand", None, "Other", "UnlockCommand", False),
            ("DeAuthorized", "04A2B3C4", "DeAuthorized", "Deauthorized", True),
            ("PowerLoss", None, "PowerLoss", "AbnormalCondition", False),
            ("Reboot", None, "Reboot", "AbnormalCondition", False),
            ("Other", None, "Other", "AbnormalCondition", False),
            ("Other", "04A2B3C4", "Other", "StopAuthorized", True),
        ],
    )
    def test_reasons(
        self, reason: str | None, id_tag: str | None, stopped: str, trigger: str, token_sent: bool
    ) -> None:
        request = dict(STOP)
        if reason is not None:
            request["reason"] = reason
        if id_tag is not None:
            request["idTag"] = id_tag
        check(V16, "StopTransaction", REQ, request)
        result = transaction_ended(
            request, transaction_id=TX, seq_no=5, evse_id=2, received_at=RECEIVED
        )
        payload = result.payload
        assert payload is not None
        assert payload["eventType"] == "Ended"
        assert payload["transactionInfo"] == {"transactionId": TX, "stoppedReason": stopped}
        assert payload["triggerReason"] == trigger
        assert ("idToken" in payload) is token_sent
        check(V201, "TransactionEvent", REQ, payload)

    def test_transaction_end_register_from_meter_stop(self) -> None:
        result = transaction_ended(
            STOP, transaction_id=TX, seq_no=5, evse_id=2, received_at=RECEIVED
        )
        assert result.payload is not None
        [end] = result.payload["meterValue"]
        assert end["sampledValue"][0] == {
            "value": 2800,
            "context": "Transaction.End",
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
        }

    def test_charger_end_register_is_not_duplicated(self) -> None:
        request = {
            **STOP,
            "transactionData": [
                {
                    "timestamp": "2026-03-01T11:00:00Z",
                    "sampledValue": [{"value": "2.8", "unit": "kWh", "context": "Transaction.End"}],
                },
                {"timestamp": "1970-01-01T00:00:00Z", "sampledValue": [{"value": "oops"}]},
            ],
        }
        check(V16, "StopTransaction", REQ, request)
        result = transaction_ended(
            request, transaction_id=TX, seq_no=5, evse_id=2, received_at=RECEIVED, offline=True
        )
        assert result.payload is not None
        assert result.payload["offline"] is True
        assert [mv["sampledValue"][0]["value"] for mv in result.payload["meterValue"]] == [2.8]
        assert [p.path for p in result.problems] == [
            "transactionData.1.timestamp",
            "transactionData.1.sampledValue.0.value",
        ]
        check(V201, "TransactionEvent", REQ, result.payload)

    @pytest.mark.parametrize(
        ("answer", "response"),
        [
            (None, {}),
            ({"totalCost": 3.5}, {}),
            (
                {"idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": "G1", "type": "Central"}}},
                {"idTagInfo": {"status": "Accepted", "parentIdTag": "G1"}},
            ),
        ],
    )  # fmt: skip
    def test_response(self, answer: dict[str, Any] | None, response: dict[str, Any]) -> None:
        if answer is not None:
            check(V201, "TransactionEvent", RES, answer)
        assert stop_transaction_response(answer) == response
        check(V16, "StopTransaction", RES, response)
