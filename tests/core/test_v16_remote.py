"""bridge.stations.v16.remote: F01 remote start, F03 remote stop, B11/B12 reset, G03 change availability,
F05 unlock connector, F06 trigger message, P01 data transfer from the CSMS."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.outcome import Emulate, Forward, Reply
from bridge.stations.v16.remote import (
    change_availability,
    change_availability_response,
    data_transfer_down,
    data_transfer_down_response,
    request_start_transaction,
    request_start_transaction_response,
    request_stop_transaction,
    request_stop_transaction_response,
    reset,
    reset_response,
    trigger_message,
    trigger_message_response,
    unlock_connector,
    unlock_connector_response,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
TRANSACTIONS = {"tx-1": 41}


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def forwarded(result: Any, action: str) -> dict[str, Any]:
    assert isinstance(result, Forward), result
    assert result.action == action
    check(V16, action, REQ, result.payload)
    payload: dict[str, Any] = result.payload
    return payload


def replied(result: Any, action: str) -> dict[str, Any]:
    assert isinstance(result, Reply), result
    check(V201, action, RES, result.response)
    response: dict[str, Any] = result.response
    return response


TOKEN = {"idToken": "0123456789abcdef0123456789abcdef", "type": "eMAID"}
TX_PROFILE = {
    "id": 3,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": [
        {
            "id": 1,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
        }
    ],
}


class TestF01RequestStartTransaction:
    def test_with_evse_and_profile(self) -> None:
        request = {
            "evseId": 1,
            "remoteStartId": 77,
            "idToken": TOKEN,
            "chargingProfile": TX_PROFILE,
        }
        check(V201, "RequestStartTransaction", REQ, request)
        payload = forwarded(
            request_start_transaction(request, id_tag="ALIAS1"), "RemoteStartTransaction"
        )
        assert payload == {
            "idTag": "ALIAS1",
            "connectorId": 1,
            "chargingProfile": {
                "chargingProfileId": 3,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
                },
            },
        }

    def test_without_evse(self) -> None:
        request = {"remoteStartId": 1, "idToken": {"idToken": "A", "type": "Central"}}
        assert forwarded(
            request_start_transaction(request, id_tag="A"), "RemoteStartTransaction"
        ) == {"idTag": "A"}

    def test_token_without_idtag_is_rejected(self) -> None:
        request = {"remoteStartId": 1, "idToken": TOKEN}
        response = replied(
            request_start_transaction(request, id_tag=None), "RequestStartTransaction"
        )
        assert response["status"] == "Rejected"
        assert response["statusInfo"]["reasonCode"] == "InvalidIdToken"

    @pytest.mark.parametrize(
        ("profile", "reason"),
        [
            ({**TX_PROFILE, "chargingProfilePurpose": "TxDefaultProfile"}, "InvalidProfile"),
            ({**TX_PROFILE, "chargingSchedule": [{**TX_PROFILE["chargingSchedule"][0], "chargingSchedulePeriod": [{"startPeriod": 5, "limit": 1}]}]}, "InvalidSchedule"),
        ],
    )  # fmt: skip
    def test_bad_profile_is_rejected(self, profile: dict[str, Any], reason: str) -> None:
        request = {"remoteStartId": 1, "idToken": TOKEN, "chargingProfile": profile}
        check(V201, "RequestStartTransaction", REQ, request)
        response = replied(
            request_start_transaction(request, id_tag="A"), "RequestStartTransaction"
        )
        assert response["statusInfo"]["reasonCode"] == reason

    @pytest.mark.parametrize("status", ["Accepted", "Rejected"])
    def test_response(self, status: str) -> None:
        response = request_start_transaction_response({"status": status})
        assert response == {"status": status}
        check(V201, "RequestStartTransaction", RES, response)
        running = request_start_transaction_response({"status": status}, transaction_id="tx-1")
        assert running["transactionId"] == "tx-1"
        check(V201, "RequestStartTransaction", RES, running)


class TestF03RequestStopTransaction:
    def test_known_transaction(self) -> None:
        result = request_stop_transaction(
            {"transactionId": "tx-1"}, transaction_id_of=TRANSACTIONS.get
        )
        assert forwarded(result, "RemoteStopTransaction") == {"transactionId": 41}

    def test_unknown_transaction_is_rejected_locally(self) -> None:
        result = request_stop_transaction(
            {"transactionId": "nope"}, transaction_id_of=TRANSACTIONS.get
        )
        response = replied(result, "RequestStopTransaction")
        assert (response["status"], response["statusInfo"]["reasonCode"]) == (
            "Rejected",
            "UnknownTxId",
        )

    @pytest.mark.parametrize("status", ["Accepted", "Rejected"])
    def test_response(self, status: str) -> None:
        response = request_stop_transaction_response({"status": status})
        assert response == {"status": status}
        check(V201, "RequestStopTransaction", RES, response)


class TestB11B12Reset:
    @pytest.mark.parametrize(("kind", "type_16"), [("Immediate", "Hard"), ("OnIdle", "Soft")])
    def test_types(self, kind: str, type_16: str) -> None:
        assert forwarded(reset({"type": kind}), "Reset") == {"type": type_16}

    def test_evse_reset_is_rejected(self) -> None:
        request = {"type": "Immediate", "evseId": 1}
        check(V201, "Reset", REQ, request)
        response = replied(reset(request), "Reset")
        assert (response["status"], response["statusInfo"]["reasonCode"]) == (
            "Rejected",
            "UnsupportedParam",
        )

    @pytest.mark.parametrize("status", ["Accepted", "Rejected"])
    def test_response(self, status: str) -> None:
        response = reset_response({"status": status})
        assert response == {"status": status}
        check(V201, "Reset", RES, response)


class TestG03ChangeAvailability:
    @pytest.mark.parametrize(
        ("request_201", "payload_16"),
        [
            ({"operationalStatus": "Inoperative"}, {"connectorId": 0, "type": "Inoperative"}),
            ({"operationalStatus": "Operative", "evse": {"id": 2}}, {"connectorId": 2, "type": "Operative"}),
            ({"operationalStatus": "Operative", "evse": {"id": 2, "connectorId": 1}}, {"connectorId": 2, "type": "Operative"}),
        ],
    )  # fmt: skip
    def test_requests(self, request_201: dict[str, Any], payload_16: dict[str, Any]) -> None:
        check(V201, "ChangeAvailability", REQ, request_201)
        assert forwarded(change_availability(request_201), "ChangeAvailability") == payload_16

    def test_second_connector_of_an_evse_does_not_exist(self) -> None:
        request = {"operationalStatus": "Operative", "evse": {"id": 2, "connectorId": 2}}
        response = replied(change_availability(request), "ChangeAvailability")
        assert response["statusInfo"]["reasonCode"] == "UnknownConnectorId"

    @pytest.mark.parametrize("status", ["Accepted", "Rejected", "Scheduled"])
    def test_response(self, status: str) -> None:
        response = change_availability_response({"status": status})
        assert response == {"status": status}
        check(V201, "ChangeAvailability", RES, response)


class TestF05UnlockConnector:
    def test_request(self) -> None:
        assert forwarded(unlock_connector({"evseId": 3, "connectorId": 1}), "UnlockConnector") == {
            "connectorId": 3
        }

    def test_unknown_connector(self) -> None:
        response = replied(unlock_connector({"evseId": 3, "connectorId": 2}), "UnlockConnector")
        assert response == {"status": "UnknownConnector"}

    def test_ongoing_authorized_transaction_answered_by_the_bridge(self) -> None:
        result = unlock_connector(
            {"evseId": 3, "connectorId": 1}, ongoing_authorized_transaction=True
        )
        assert replied(result, "UnlockConnector") == {"status": "OngoingAuthorizedTransaction"}

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("Unlocked", "Unlocked"),
            ("UnlockFailed", "UnlockFailed"),
            ("NotSupported", "UnlockFailed"),
        ],
    )
    def test_response(self, status: str, expected: str) -> None:
        response = unlock_connector_response({"status": status})
        assert response["status"] == expected
        assert ("statusInfo" in response) is (status == "NotSupported")
        check(V201, "UnlockConnector", RES, response)


class TestF06TriggerMessage:
    @pytest.mark.parametrize(
        ("requested", "evse", "action", "payload"),
        [
            ("BootNotification", None, "TriggerMessage", {"requestedMessage": "BootNotification"}),
            ("StatusNotification", {"id": 2, "connectorId": 1}, "TriggerMessage",
             {"requestedMessage": "StatusNotification", "connectorId": 2}),
            ("MeterValues", {"id": 1}, "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}),
            ("FirmwareStatusNotification", None, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}),
            ("LogStatusNotification", None, "TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}),
            ("TransactionEvent", {"id": 2}, "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 2}),
            ("SignChargingStationCertificate", None, "ExtendedTriggerMessage",
             {"requestedMessage": "SignChargePointCertificate"}),
        ],
    )  # fmt: skip
    def test_translated(
        self, requested: str, evse: dict[str, Any] | None, action: str, payload: dict[str, Any]
    ) -> None:
        request: dict[str, Any] = {"requestedMessage": requested}
        if evse is not None:
            request["evse"] = evse
        check(V201, "TriggerMessage", REQ, request)
        assert forwarded(trigger_message(request), action) == payload

    def test_extended_when_asked(self) -> None:
        result = trigger_message(
            {"requestedMessage": "LogStatusNotification"}, extended_for={"LogStatusNotification"}
        )
        assert forwarded(result, "ExtendedTriggerMessage") == {
            "requestedMessage": "LogStatusNotification"
        }

    def test_second_connector_of_an_evse_does_not_exist(self) -> None:
        request = {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 2}}
        response = replied(trigger_message(request), "TriggerMessage")
        assert response["statusInfo"]["reasonCode"] == "UnknownConnectorId"

    def test_heartbeat_is_emulated(self) -> None:
        result = trigger_message({"requestedMessage": "Heartbeat"})
        assert isinstance(result, Emulate)
        assert result.kind == "Heartbeat"
        check(V201, "TriggerMessage", RES, result.response)

    def test_boot_after_accepted_boot_is_rejected(self) -> None:
        response = replied(
            trigger_message({"requestedMessage": "BootNotification"}, boot_accepted=True),
            "TriggerMessage",
        )
        assert response["status"] == "Rejected"

    @pytest.mark.parametrize(
        "requested",
        ["SignV2GCertificate", "SignCombinedCertificate", "PublishFirmwareStatusNotification"],
    )
    def test_no_counterpart_is_not_implemented(self, requested: str) -> None:
        response = replied(trigger_message({"requestedMessage": requested}), "TriggerMessage")
        assert response["status"] == "NotImplemented"

    @pytest.mark.parametrize("status", ["Accepted", "Rejected", "NotImplemented"])
    def test_response(self, status: str) -> None:
        response = trigger_message_response({"status": status})
        assert response == {"status": status}
        check(V201, "TriggerMessage", RES, response)


class TestP01DataTransferFromTheCsms:
    @pytest.mark.parametrize(
        ("data", "text"),
        [({"k": [1, True, None]}, '{"k":[1,true,null]}'), ("s", "s"), (1.5, "1.5")],
    )
    def test_data_becomes_text(self, data: Any, text: str) -> None:
        request = {"vendorId": "com.acme", "messageId": "m", "data": data}
        check(V201, "DataTransfer", REQ, request)
        assert forwarded(data_transfer_down(request), "DataTransfer") == {
            "vendorId": "com.acme",
            "messageId": "m",
            "data": text,
        }

    def test_response(self) -> None:
        response = data_transfer_down_response({"status": "Accepted", "data": "ok"})
        assert response == {"status": "Accepted", "data": "ok"}
        check(V201, "DataTransfer", RES, response)
