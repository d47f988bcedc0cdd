"""bridge.stations.v16.reservation: H01 ReserveNow, H02 CancelReservation, H04 ReservationStatusUpdate."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import BridgeMisuse, OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.outcome import Forward, Payload, Reply
from bridge.stations.v16.reservation import (
    cancel_reservation,
    cancel_reservation_response,
    reservation_status_update,
    reserve_now,
    reserve_now_response,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
LONG = "long-token-of-more-than-twenty"


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def alias(token: Payload) -> str | None:
    return "ALIAS-LONG" if token["idToken"] == LONG else None


def reserve(**fields: Any) -> dict[str, Any]:
    request = {
        "id": 12,
        "expiryDateTime": "2026-03-01T13:00:00+01:00",
        "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"},
        **fields,
    }
    check(V201, "ReserveNow", REQ, request)
    return request


class TestH01ReserveNow:
    def test_specific_evse_with_group(self) -> None:
        request = reserve(
            evseId=2, groupIdToken={"idToken": LONG, "type": "Central"}, connectorType="cType2"
        )
        result = reserve_now(request, alias=alias)
        assert result == Forward(
            "ReserveNow",
            {
                "connectorId": 2,
                "expiryDate": "2026-03-01T12:00:00Z",
                "idTag": "04A2B3C4",
                "reservationId": 12,
                "parentIdTag": "ALIAS-LONG",
            },
        )
        check(V16, "ReserveNow", REQ, result.payload)

    def test_no_evse_reserves_connector_zero(self) -> None:
        result = reserve_now(reserve(connectorType="Unknown"))
        assert isinstance(result, Forward)
        assert result.payload["connectorId"] == 0
        check(V16, "ReserveNow", REQ, result.payload)

    @pytest.mark.parametrize(
        ("request_201", "options", "reason"),
        [
            (reserve(), {"connector_zero_supported": False}, "MissingParam"),
            (reserve(connectorType="cCCS2"), {}, "UnsupportedParam"),
            (reserve(idToken={"idToken": "z" * 25, "type": "Central"}), {}, "InvalidIdToken"),
        ],
    )
    def test_refused_truthfully(
        self, request_201: dict[str, Any], options: dict[str, Any], reason: str
    ) -> None:
        result = reserve_now(request_201, alias=alias, **options)
        assert isinstance(result, Reply)
        assert (result.response["status"], result.response["statusInfo"]["reasonCode"]) == (
            "Rejected",
            reason,
        )
        check(V201, "ReserveNow", RES, result.response)

    def test_group_without_idtag_is_dropped(self) -> None:
        result = reserve_now(
            reserve(evseId=1, groupIdToken={"idToken": "q" * 30, "type": "Central"})
        )
        assert isinstance(result, Forward)
        assert "parentIdTag" not in result.payload

    @pytest.mark.parametrize(
        "status", ["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]
    )
    def test_response(self, status: str) -> None:
        response = reserve_now_response({"status": status})
        assert response == {"status": status}
        check(V201, "ReserveNow", RES, response)


class TestH02CancelReservation:
    def test_request_and_response(self) -> None:
        result = cancel_reservation({"reservationId": 12})
        assert result == Forward("CancelReservation", {"reservationId": 12})
        check(V16, "CancelReservation", REQ, result.payload)
        for status in ("Accepted", "Rejected"):
            response = cancel_reservation_response({"status": status})
            assert response == {"status": status}
            check(V201, "CancelReservation", RES, response)


class TestH04ReservationStatusUpdate:
    @pytest.mark.parametrize("status", ["Expired", "Removed"])
    def test_synthesised_update(self, status: str) -> None:
        request = reservation_status_update(12, status)
        assert request == {"reservationId": 12, "reservationUpdateStatus": status}
        check(V201, "ReservationStatusUpdate", REQ, request)

    def test_other_status_is_a_bridge_bug(self) -> None:
        with pytest.raises(BridgeMisuse):
            reservation_status_update(12, "Accepted")
