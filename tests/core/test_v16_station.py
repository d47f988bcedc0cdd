"""bridge.stations.v16.station: B01 boot, G01 status notification (+ N07-style error events), P01 data transfer."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import BridgeMisuse, OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.enums import ERROR_CODE_EVENT
from bridge.stations.v16.station import (
    boot_identity_variables,
    boot_notification_request,
    boot_notification_response,
    charging_state,
    data_transfer_up,
    data_transfer_up_response,
    effective_status,
    error_event_data,
    heartbeat_response,
    is_error,
    notify_event_request,
    station_status_requests,
    status_notification_request,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
NOW = "2026-03-01T12:00:00Z"


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


FULL_BOOT = {
    "chargePointVendor": "ACME",
    "chargePointModel": "Wallbox 22",
    "chargePointSerialNumber": "SN-1",
    "chargeBoxSerialNumber": "BOX-1",
    "firmwareVersion": "1.2.3",
    "iccid": "8949",
    "imsi": "26201",
    "meterType": "EEM-350",
    "meterSerialNumber": "M-77",
}


class TestB01Boot:
    def test_identity_is_carried_over(self) -> None:
        check(V16, "BootNotification", REQ, FULL_BOOT)
        request = boot_notification_request(FULL_BOOT, reason="PowerUp")
        assert request == {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "Wallbox 22",
                "vendorName": "ACME",
                "serialNumber": "SN-1",
                "firmwareVersion": "1.2.3",
                "modem": {"iccid": "8949", "imsi": "26201"},
            },
        }
        check(V201, "BootNotification", REQ, request)

    def test_minimal_boot_and_box_serial_fallback(self) -> None:
        boot = {"chargePointVendor": "ACME", "chargePointModel": "M", "chargeBoxSerialNumber": "B"}
        request = boot_notification_request(boot, reason="RemoteReset")
        assert request == {
            "reason": "RemoteReset",
            "chargingStation": {"model": "M", "vendorName": "ACME", "serialNumber": "B"},
        }
        check(V201, "BootNotification", REQ, request)

    def test_fields_without_a_slot_become_variables(self) -> None:
        variables = {(v.component, v.variable): v.value for v in boot_identity_variables(FULL_BOOT)}
        assert variables[("FiscalMetering", "Model")] == "EEM-350"
        assert variables[("FiscalMetering", "SerialNumber")] == "M-77"
        assert variables[("OCPP16LegacyCtrlr", "ChargeBoxSerialNumber")] == "BOX-1"
        assert variables[("DataLink", "ICCID")] == "8949"

    @pytest.mark.parametrize("status", ["Accepted", "Pending", "Rejected"])
    def test_response(self, status: str) -> None:
        answer = {"currentTime": NOW, "interval": 300, "status": status}
        answer_with_info = {**answer, "statusInfo": {"reasonCode": "X"}}
        check(V201, "BootNotification", RES, answer_with_info)
        response = boot_notification_response(answer_with_info)
        assert response == {"status": status, "currentTime": NOW, "interval": 300}
        check(V16, "BootNotification", RES, response)
        assert boot_notification_response(answer, interval=60)["interval"] == 60


def test_heartbeat_answered_locally() -> None:
    response = heartbeat_response(NOW)
    assert response == {"currentTime": NOW}
    check(V16, "Heartbeat", RES, response)


class TestG01StatusNotification:
    @pytest.mark.parametrize(
        ("status", "connector_status", "state"),
        [
            ("Available", "Available", "Idle"),
            ("Preparing", "Occupied", "EVConnected"),
            ("Charging", "Occupied", "Charging"),
            ("SuspendedEV", "Occupied", "SuspendedEV"),
            ("SuspendedEVSE", "Occupied", "SuspendedEVSE"),
            ("Finishing", "Occupied", "EVConnected"),
            ("Reserved", "Reserved", None),
            ("Unavailable", "Unavailable", None),
            ("Faulted", "Faulted", None),
        ],
    )
    def test_each_status(self, status: str, connector_status: str, state: str | None) -> None:
        request = status_notification_request(2, status, NOW)
        assert request == {
            "timestamp": NOW,
            "connectorStatus": connector_status,
            "evseId": 2,
            "connectorId": 1,
        }
        assert charging_state(status) == state
        check(V201, "StatusNotification", REQ, request)

    @pytest.mark.parametrize(
        ("station", "connector", "effective"),
        [
            (None, "Charging", "Charging"),
            ("Available", "Charging", "Charging"),
            ("Unavailable", "Charging", "Unavailable"),
            ("Faulted", "Unavailable", "Faulted"),
            ("Unavailable", "Faulted", "Faulted"),
        ],
    )
    def test_effective_status(self, station: str | None, connector: str, effective: str) -> None:
        assert effective_status(station, connector) == effective

    def test_connector_zero_fans_out(self) -> None:
        requests = station_status_requests(
            "Faulted", {0: "Available", 1: "Charging", 2: "Available"}, NOW
        )
        assert [(r["evseId"], r["connectorStatus"]) for r in requests] == [
            (1, "Faulted"),
            (2, "Faulted"),
        ]
        for request in requests:
            check(V201, "StatusNotification", REQ, request)

    def test_connector_zero_available_restores_each_connector(self) -> None:
        requests = station_status_requests("Available", {1: "Charging", 2: "Reserved"}, NOW)
        assert [(r["evseId"], r["connectorStatus"]) for r in requests] == [
            (1, "Occupied"),
            (2, "Reserved"),
        ]


class TestErrorCodesAsEvents:
    @pytest.mark.parametrize("code", sorted(ERROR_CODE_EVENT))
    def test_every_error_code_raises_a_valid_event(self, code: str) -> None:
        status = {
            "connectorId": 1,
            "errorCode": code,
            "status": "Faulted",
            "info": "contactor welded",
            "vendorId": "com.acme",
            "vendorErrorCode": "E42",
        }
        check(V16, "StatusNotification", REQ, status)
        assert is_error(code)
        data = error_event_data(status, event_id=11, timestamp=NOW)
        component, variable, on_connector = ERROR_CODE_EVENT[code]
        assert data["component"]["name"] == component
        assert data["component"]["evse"] == (
            {"id": 1, "connectorId": 1} if on_connector else {"id": 1}
        )
        assert data["variable"] == {"name": variable}
        assert (data["actualValue"], data["techCode"], data["trigger"]) == ("true", code, "Delta")
        assert data["techInfo"] == "info=contactor welded; vendorId=com.acme; vendorErrorCode=E42"
        assert "cleared" not in data
        check(V201, "NotifyEvent", REQ, notify_event_request([data], generated_at=NOW))

    def test_no_error_is_no_event(self) -> None:
        assert not is_error("NoError")
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        with pytest.raises(BridgeMisuse):
            error_event_data(status, event_id=1, timestamp=NOW)

    def test_clearing_the_previous_error(self) -> None:
        status = {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
        data = error_event_data(
            status, event_id=12, timestamp=NOW, error_code="GroundFailure", cleared=True
        )
        assert data["component"] == {"name": "RCD"}
        assert (data["actualValue"], data["cleared"]) == ("false", True)
        check(V201, "NotifyEvent", REQ, notify_event_request([data], generated_at=NOW))


class TestP01DataTransferFromTheCharger:
    def test_request_passes_unchanged(self) -> None:
        request = {"vendorId": "com.acme", "messageId": "Hello", "data": '{"a":1}'}
        check(V16, "DataTransfer", REQ, request)
        up = data_transfer_up(request)
        assert up == request
        check(V201, "DataTransfer", REQ, up)

    @pytest.mark.parametrize(
        ("data", "text"), [("plain", "plain"), ({"a": [1, 2]}, '{"a":[1,2]}'), (5, "5")]
    )
    def test_response_data_becomes_text(self, data: Any, text: str) -> None:
        answer = {"status": "Accepted", "data": data, "statusInfo": {"reasonCode": "NoError"}}
        check(V201, "DataTransfer", RES, answer)
        response = data_transfer_up_response(answer)
        assert response == {"status": "Accepted", "data": text}
        check(V16, "DataTransfer", RES, response)

    @pytest.mark.parametrize("status", ["Rejected", "UnknownMessageId", "UnknownVendorId"])
    def test_statuses(self, status: str) -> None:
        assert data_transfer_up_response({"status": status}) == {"status": status}
