"""Who may send which CALL (bridge.ocppj.directions), checked against the official schemas' action lists and
the 1.6 station's own tables; a CALL in the wrong direction is answered NotSupported by the endpoint."""

from __future__ import annotations

import json

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.directions import BOTH_WAYS, CHARGER_SENDS, Sender, may_send
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.rpc import CallReceived, Diagnostic, RpcEndpoint
from bridge.stations.v16.actions import CHARGER_ACTIONS, CSMS_ACTIONS

V16, V201 = OcppVersion.V16, OcppVersion.V201

CSMS_SENDS_201 = {
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache",
    "ClearChargingProfile", "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated",
    "CustomerInformation", "DataTransfer", "DeleteCertificate", "GetBaseReport", "GetChargingProfiles",
    "GetCompositeSchedule", "GetDisplayMessages", "GetInstalledCertificateIds", "GetLocalListVersion",
    "GetLog", "GetMonitoringReport", "GetReport", "GetTransactionStatus", "GetVariables",
    "InstallCertificate", "PublishFirmware", "RequestStartTransaction", "RequestStopTransaction",
    "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
    "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring",
    "SetVariables", "TriggerMessage", "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
}  # fmt: skip


def senders(schemas: OfficialSchemas, version: OcppVersion, sender: Sender) -> set[str]:
    return {a for a in schemas.actions(version) if may_send(version, sender, a)}


@pytest.mark.parametrize("version", [V16, V201])
def test_every_action_has_a_sender_and_only_data_transfer_has_two(
    schemas: OfficialSchemas, version: OcppVersion
) -> None:
    assert CHARGER_SENDS[version] <= schemas.actions(version)
    charger = senders(schemas, version, Sender.CHARGER)
    csms = senders(schemas, version, Sender.CSMS)
    assert charger | csms == schemas.actions(version)
    assert charger & csms == BOTH_WAYS


def test_the_201_sides_match_the_specification_and_the_16_stations_table(
    schemas: OfficialSchemas,
) -> None:
    csms = senders(schemas, V201, Sender.CSMS)
    assert csms == CSMS_SENDS_201
    assert csms == set(CSMS_ACTIONS)  # what a 1.6 station answers for the CSMS: every one of them
    assert len(senders(schemas, V201, Sender.CHARGER)) == 25


def test_the_16_charger_side_is_what_the_16_station_handles(schemas: OfficialSchemas) -> None:
    assert senders(schemas, V16, Sender.CHARGER) == set(CHARGER_ACTIONS)


@pytest.mark.parametrize(
    ("version", "peer", "action", "payload"),
    [
        (V201, Sender.CSMS, "Heartbeat", {}),
        (V201, Sender.CSMS, "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}}),
        (V201, Sender.CHARGER, "Reset", {"type": "Immediate"}),
        (V201, Sender.CHARGER, "RequestStartTransaction", {"idToken": {"idToken": "T", "type": "Central"}, "remoteStartId": 1}),
        (V16, Sender.CHARGER, "RemoteStartTransaction", {"idTag": "T"}),
        (V16, Sender.CHARGER, "ClearCache", {}),
    ],
)  # fmt: skip
def test_a_call_in_the_wrong_direction_is_not_supported(
    schemas: OfficialSchemas,
    version: OcppVersion,
    peer: Sender,
    action: str,
    payload: dict[str, object],
) -> None:
    endpoint = RpcEndpoint(version, schemas, lambda: "x", call_timeout=30, peer=peer)
    events = endpoint.receive(json.dumps([2, "w1", action, payload]), 0.0)
    assert not any(isinstance(e, CallReceived) for e in events)
    assert isinstance(events[0], Diagnostic)
    frames = [json.loads(f) for f in endpoint.take_outgoing()]
    assert [f[:3] for f in frames] == [[4, "w1", "NotSupported"]]
    assert not endpoint.is_awaiting("w1")
    # the same CALL from the other party is taken
    other = Sender.CSMS if peer is Sender.CHARGER else Sender.CHARGER
    endpoint = RpcEndpoint(version, schemas, lambda: "x", call_timeout=30, peer=other)
    assert isinstance(
        endpoint.receive(json.dumps([2, "w1", action, payload]), 0.0)[-1], CallReceived
    )


def test_data_transfer_goes_both_ways(schemas: OfficialSchemas) -> None:
    for version, payload in ((V16, {"vendorId": "v"}), (V201, {"vendorId": "v"})):
        for peer in Sender:
            endpoint = RpcEndpoint(version, schemas, lambda: "x", call_timeout=30, peer=peer)
            events = endpoint.receive(json.dumps([2, "d", "DataTransfer", payload]), 0.0)
            assert isinstance(events[-1], CallReceived)
