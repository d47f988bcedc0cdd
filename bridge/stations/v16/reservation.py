"""Reservations: ReserveNow and CancelReservation down, and the ReservationStatusUpdate the bridge
synthesises (1.6 has no such message).

Rules
- ReserveNow (H01): id → reservationId; expiryDateTime → expiryDate (UTC `Z`); idToken → idTag and
  groupIdToken → parentIdTag through the injected alias (`bridge.stations.v16.id_token`); a token with no idTag →
  Rejected (InvalidIdToken); a group token with none is dropped rather than refusing the reservation
  (the driver's own token still matches).
- No evseId → connector 0, which a 1.6 charger only honours with ReserveConnectorZeroSupported: when the
  core says it is not, the request is Rejected (MissingParam) without asking (H01.FR.19).
- connectorType (design choice): with an evseId the EVSE fixes the connector, so it is not needed; without
  one, 1.6 cannot restrict connector 0 to a type, so a specific type is refused (UnsupportedParam)
  rather than reserving a connector of any type. "Unknown" and "Undetermined" restrict nothing.
- ReservationStatusUpdate (design choice): 1.6 never says a reservation expired or was removed. The core
  keeps each accepted reservation's expiry and sends Expired when it passes unused (H04.FR.01), and
  Removed when the reserved connector turns Faulted or Unavailable (H01.FR.16/17) or Available again
  before the expiry without a transaction having used it (the charger dropped it). This module only
  builds the request.
"""

from __future__ import annotations

from bridge.ocppj.errors import BridgeMisuse
from bridge.stations.v16.enums import CANCEL_RESERVATION_STATUS_UP, RESERVE_NOW_STATUS_UP
from bridge.stations.v16.id_token import AliasFor, id_tag_for
from bridge.stations.v16.outcome import Forward, Payload, Reply, refuse
from bridge.timestamps import utc_for_charger

_ANY_CONNECTOR_TYPE = frozenset({"Unknown", "Undetermined"})


def reserve_now(
    request: Payload, *, alias: AliasFor | None = None, connector_zero_supported: bool = True
) -> Forward | Reply:
    """H01: ReserveNow → ReserveNow."""
    id_tag = id_tag_for(request["idToken"], alias)
    if id_tag is None:
        return refuse("Rejected", "InvalidIdToken", "the idToken has no OCPP 1.6 idTag")
    connector_type = request.get("connectorType")
    if "evseId" not in request:
        if not connector_zero_supported:
            return refuse(
                "Rejected", "MissingParam", "the charger only reserves a specific EVSE (evseId)"
            )
        if connector_type is not None and connector_type not in _ANY_CONNECTOR_TYPE:
            return refuse(
                "Rejected",
                "UnsupportedParam",
                "OCPP 1.6 cannot reserve any connector of a given type; name an evseId",
            )
    payload: Payload = {
        "connectorId": request.get("evseId", 0),
        "expiryDate": utc_for_charger(request["expiryDateTime"]),
        "idTag": id_tag,
        "reservationId": request["id"],
    }
    group = request.get("groupIdToken")
    if isinstance(group, dict):
        parent = id_tag_for(group, alias)
        if parent is not None:
            payload["parentIdTag"] = parent
    return Forward("ReserveNow", payload)


def reserve_now_response(response: Payload) -> Payload:
    return {"status": RESERVE_NOW_STATUS_UP.get(response.get("status", ""), "Rejected")}


def cancel_reservation(request: Payload) -> Forward:
    """H02: CancelReservation, identical."""
    return Forward("CancelReservation", {"reservationId": request["reservationId"]})


def cancel_reservation_response(response: Payload) -> Payload:
    return {"status": CANCEL_RESERVATION_STATUS_UP.get(response.get("status", ""), "Rejected")}


def reservation_status_update(reservation_id: int, status: str) -> Payload:
    """H04/H01.FR.16: the bridge-synthesised ReservationStatusUpdateRequest (Expired or Removed)."""
    if status not in ("Expired", "Removed"):
        raise BridgeMisuse(f"a reservation update is Expired or Removed, not {status!r}")
    return {"reservationId": reservation_id, "reservationUpdateStatus": status}
