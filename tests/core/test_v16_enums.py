"""Every enumeration table of bridge.stations.v16.enums against the official 1.6 and 2.0.1 schemas.

The enumerations are read from the schemas the `ocpp` package ships, so a table that forgets a value or
maps to a value the other version does not have fails here.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from functools import cache
from typing import Any

import orjson
import pytest

from bridge.stations.v16 import enums as E


@cache
def _schema(version: str, file: str) -> dict[str, Any]:
    path = importlib.resources.files("ocpp").joinpath(f"{version}/schemas/{file}")
    return orjson.loads(path.read_bytes().decode("utf-8-sig"))


def enum_values(version: str, file: str, prop: str) -> frozenset[str]:
    """Every enum value a property named `prop` takes anywhere in the schema."""
    schema = _schema(version, file)
    definitions = schema.get("definitions", {})

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = definitions[node["$ref"].split("/")[-1]]
        return node

    values: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, child in node.get("properties", {}).items():
                target = resolve(child)
                if target.get("type") == "array":
                    target = resolve(target["items"])
                if name == prop and "enum" in target:
                    values.update(target["enum"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    assert values, f"no enumeration {prop} in {version}/{file}"
    return frozenset(values)


def v16(file: str, prop: str) -> frozenset[str]:
    return enum_values("v16", f"{file}.json", prop)


def v201(file: str, prop: str) -> frozenset[str]:
    return enum_values("v201", f"{file}.json", prop)


# (name, table, the whole source enumeration, the target enumeration); keys must equal the source.
UP_TABLES = [
    ("authorization", E.AUTHORIZATION_STATUS_UP, v16("AuthorizeResponse", "status"),
     v201("AuthorizeResponse", "status")),
    ("send local list", E.SEND_LOCAL_LIST_STATUS_UP, v16("SendLocalListResponse", "status"),
     v201("SendLocalListResponse", "status")),
    ("clear cache", E.CLEAR_CACHE_STATUS_UP, v16("ClearCacheResponse", "status"),
     v201("ClearCacheResponse", "status")),
    ("remote start", E.REMOTE_START_STOP_STATUS_UP, v16("RemoteStartTransactionResponse", "status"),
     v201("RequestStartTransactionResponse", "status")),
    ("remote stop", E.REMOTE_START_STOP_STATUS_UP, v16("RemoteStopTransactionResponse", "status"),
     v201("RequestStopTransactionResponse", "status")),
    ("reset", E.RESET_STATUS_UP, v16("ResetResponse", "status"), v201("ResetResponse", "status")),
    ("availability", E.AVAILABILITY_STATUS_UP, v16("ChangeAvailabilityResponse", "status"),
     v201("ChangeAvailabilityResponse", "status")),
    ("unlock", E.UNLOCK_STATUS_UP, v16("UnlockConnectorResponse", "status"),
     v201("UnlockConnectorResponse", "status")),
    ("trigger", E.TRIGGER_STATUS_UP, v16("TriggerMessageResponse", "status"),
     v201("TriggerMessageResponse", "status")),
    ("extended trigger", E.TRIGGER_STATUS_UP, v16("ExtendedTriggerMessageResponse", "status"),
     v201("TriggerMessageResponse", "status")),
    ("reserve now", E.RESERVE_NOW_STATUS_UP, v16("ReserveNowResponse", "status"),
     v201("ReserveNowResponse", "status")),
    ("cancel reservation", E.CANCEL_RESERVATION_STATUS_UP, v16("CancelReservationResponse", "status"),
     v201("CancelReservationResponse", "status")),
    ("purpose up", E.CHARGING_PROFILE_PURPOSE_UP, v16("SetChargingProfile", "chargingProfilePurpose"),
     v201("SetChargingProfileRequest", "chargingProfilePurpose")),
    ("set profile", E.CHARGING_PROFILE_STATUS_UP, v16("SetChargingProfileResponse", "status"),
     v201("SetChargingProfileResponse", "status")),
    ("clear profile", E.CLEAR_CHARGING_PROFILE_STATUS_UP, v16("ClearChargingProfileResponse", "status"),
     v201("ClearChargingProfileResponse", "status")),
    ("composite", E.COMPOSITE_SCHEDULE_STATUS_UP, v16("GetCompositeScheduleResponse", "status"),
     v201("GetCompositeScheduleResponse", "status")),
    ("configuration", E.CONFIGURATION_STATUS_UP, v16("ChangeConfigurationResponse", "status"),
     v201("SetVariablesResponse", "attributeStatus")),
    ("firmware", E.FIRMWARE_STATUS_UP, v16("FirmwareStatusNotification", "status"),
     v201("FirmwareStatusNotificationRequest", "status")),
    ("signed firmware", E.SIGNED_FIRMWARE_STATUS_UP, v16("SignedFirmwareStatusNotification", "status"),
     v201("FirmwareStatusNotificationRequest", "status")),
    ("diagnostics", E.DIAGNOSTICS_STATUS_UP, v16("DiagnosticsStatusNotification", "status"),
     v201("LogStatusNotificationRequest", "status")),
    ("log status", E.LOG_STATUS_UP, v16("LogStatusNotification", "status"),
     v201("LogStatusNotificationRequest", "status")),
    ("get log", E.GET_LOG_STATUS_UP, v16("GetLogResponse", "status"), v201("GetLogResponse", "status")),
    ("signed update", E.SIGNED_UPDATE_FIRMWARE_STATUS_UP, v16("SignedUpdateFirmwareResponse", "status"),
     v201("UpdateFirmwareResponse", "status")),
    ("certificate use", E.CERTIFICATE_USE_UP, v16("InstallCertificate", "certificateType"),
     v201("InstallCertificateRequest", "certificateType")),
    ("install certificate", E.INSTALL_CERTIFICATE_STATUS_UP, v16("InstallCertificateResponse", "status"),
     v201("InstallCertificateResponse", "status")),
    ("delete certificate", E.DELETE_CERTIFICATE_STATUS_UP, v16("DeleteCertificateResponse", "status"),
     v201("DeleteCertificateResponse", "status")),
    ("certificate signed", E.CERTIFICATE_SIGNED_STATUS_UP, v16("CertificateSignedResponse", "status"),
     v201("CertificateSignedResponse", "status")),
    ("installed ids", E.GET_INSTALLED_CERTIFICATE_STATUS_UP,
     v16("GetInstalledCertificateIdsResponse", "status"),
     v201("GetInstalledCertificateIdsResponse", "status")),
    ("data transfer up", E.DATA_TRANSFER_STATUS, v16("DataTransferResponse", "status"),
     v201("DataTransferResponse", "status")),
    ("context", E.READING_CONTEXT, v16("MeterValues", "context"), v201("MeterValuesRequest", "context")),
    ("phase", E.PHASE, v16("MeterValues", "phase"), v201("MeterValuesRequest", "phase")),
    ("location", E.LOCATION, v16("MeterValues", "location"), v201("MeterValuesRequest", "location")),
    ("unit", E.UNIT_UP, v16("MeterValues", "unit") | v16("StopTransaction", "unit"),
     frozenset({"Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V", "K",
                "Celsius", "Fahrenheit", "Percent", "Hz"})),  # 2.0.1 appendix 7 (units of measure)
]  # fmt: skip

DOWN_TABLES = [
    ("authorization", E.AUTHORIZATION_STATUS_DOWN, v201("AuthorizeResponse", "status"),
     v16("AuthorizeResponse", "status")),
    ("registration", E.REGISTRATION_STATUS_DOWN, v201("BootNotificationResponse", "status"),
     v16("BootNotificationResponse", "status")),
    ("data transfer down", E.DATA_TRANSFER_STATUS, v201("DataTransferResponse", "status"),
     v16("DataTransferResponse", "status")),
    ("reset type", E.RESET_TYPE_DOWN, v201("ResetRequest", "type"), v16("Reset", "type")),
    ("operational status", E.OPERATIONAL_STATUS_DOWN, v201("ChangeAvailabilityRequest", "operationalStatus"),
     v16("ChangeAvailability", "type")),
    ("update type", E.UPDATE_TYPE_DOWN, v201("SendLocalListRequest", "updateType"),
     v16("SendLocalList", "updateType")),
    ("profile kind", E.CHARGING_PROFILE_KIND_DOWN, v201("SetChargingProfileRequest", "chargingProfileKind"),
     v16("SetChargingProfile", "chargingProfileKind")),
    ("recurrency", E.RECURRENCY_KIND_DOWN, v201("SetChargingProfileRequest", "recurrencyKind"),
     v16("SetChargingProfile", "recurrencyKind")),
    ("rate unit", E.CHARGING_RATE_UNIT, v201("SetChargingProfileRequest", "chargingRateUnit"),
     v16("SetChargingProfile", "chargingRateUnit")),
    ("log type", E.LOG_TYPE_DOWN, v201("GetLogRequest", "logType"), v16("GetLog", "logType")),
    ("hash", E.HASH_ALGORITHM, v201("DeleteCertificateRequest", "hashAlgorithm"),
     v16("DeleteCertificate", "hashAlgorithm")),
    ("sign certificate", E.GENERIC_STATUS_DOWN, v201("SignCertificateResponse", "status"),
     v16("SignCertificateResponse", "status")),
]  # fmt: skip

# Tables that cover part of the 2.0.1 enumeration on purpose: (table, 2.0.1 values, the values left out).
PARTIAL_DOWN_TABLES = [
    ("purpose", E.CHARGING_PROFILE_PURPOSE_DOWN,
     v201("SetChargingProfileRequest", "chargingProfilePurpose"),
     v16("SetChargingProfile", "chargingProfilePurpose"), {"ChargingStationExternalConstraints"}),
    ("certificate use", E.CERTIFICATE_USE_DOWN, v201("GetInstalledCertificateIdsRequest", "certificateType"),
     v16("GetInstalledCertificateIds", "certificateType"),
     {"V2GRootCertificate", "MORootCertificate", "V2GCertificateChain"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "table", "source", "target"), UP_TABLES, ids=lambda x: x)
def test_up_table_covers_every_16_value_and_maps_into_201(
    name: str, table: Mapping[str, str], source: frozenset[str], target: frozenset[str]
) -> None:
    assert set(table) == set(source)
    assert set(table.values()) <= target


@pytest.mark.parametrize(("name", "table", "source", "target"), DOWN_TABLES, ids=lambda x: x)
def test_down_table_covers_every_201_value_and_maps_into_16(
    name: str, table: Mapping[str, str], source: frozenset[str], target: frozenset[str]
) -> None:
    assert set(table) == set(source)
    assert set(table.values()) <= target


@pytest.mark.parametrize(
    ("name", "table", "source", "target", "left_out"), PARTIAL_DOWN_TABLES, ids=lambda x: x
)
def test_partial_down_table_leaves_out_exactly_the_values_1_6_lacks(
    name: str,
    table: Mapping[str, str],
    source: frozenset[str],
    target: frozenset[str],
    left_out: set[str],
) -> None:
    assert set(source) - set(table) == left_out
    assert set(table.values()) == set(target)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        E.RESET_TYPE_DOWN["Immediate"] = "Soft"  # type: ignore[index]


class TestLossyMappingsCollapseToTheTruthfulValue:
    @pytest.mark.parametrize(
        "status",
        ["NoCredit", "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime", "Unknown"],
    )
    def test_2_0_1_only_authorization_statuses_become_invalid(self, status: str) -> None:
        assert E.AUTHORIZATION_STATUS_DOWN[status] == "Invalid"

    def test_unlock_not_supported_is_unlock_failed(self) -> None:
        assert E.UNLOCK_STATUS_UP["NotSupported"] == "UnlockFailed"

    def test_upload_failed_is_upload_failure(self) -> None:
        assert E.DIAGNOSTICS_STATUS_UP["UploadFailed"] == "UploadFailure"

    def test_change_configuration_not_supported_is_unknown_variable(self) -> None:
        assert E.CONFIGURATION_STATUS_UP["NotSupported"] == "UnknownVariable"

    def test_purposes_are_renamed(self) -> None:
        assert (
            E.CHARGING_PROFILE_PURPOSE_DOWN["ChargingStationMaxProfile"] == "ChargePointMaxProfile"
        )
        assert E.CHARGING_PROFILE_PURPOSE_UP["ChargePointMaxProfile"] == "ChargingStationMaxProfile"

    def test_reset_types(self) -> None:
        assert dict(E.RESET_TYPE_DOWN) == {"Immediate": "Hard", "OnIdle": "Soft"}


def test_connector_status_covers_every_charge_point_status() -> None:
    assert set(E.CONNECTOR_STATUS_UP) == v16("StatusNotification", "status")
    statuses = v201("StatusNotificationRequest", "connectorStatus")
    states = v201("TransactionEventRequest", "chargingState")
    for connector_status, charging_state in E.CONNECTOR_STATUS_UP.values():
        assert connector_status in statuses
        assert charging_state is None or charging_state in states
    for name in ("Charging", "SuspendedEV", "SuspendedEVSE"):
        assert E.CONNECTOR_STATUS_UP[name] == ("Occupied", name)


def test_error_codes_cover_every_charge_point_error_code() -> None:
    assert set(E.ERROR_CODE_EVENT) | {E.NO_ERROR} == v16("StatusNotification", "errorCode")
    # standard components and variables of the 2.0.1 device model (appendix 3)
    standard_components = {
        "ConnectorPlugRetentionLock", "ConnectedEV", "RCD", "TemperatureSensor", "Controller",
        "LocalAuthListCtrlr", "Connector", "OverCurrentProtection", "ElectricalFeed",
        "ControlMetering", "PowerContactor", "TokenReader", "DataLink",
    }  # fmt: skip
    for component, variable, _ in E.ERROR_CODE_EVENT.values():
        assert component in standard_components
        assert variable in {"Problem", "Tripped"}


def test_stop_reasons_cover_every_1_6_reason() -> None:
    assert set(E.STOP_REASON_UP) - {""} == v16("StopTransaction", "reason")
    stopped = v201("TransactionEventRequest", "stoppedReason")
    triggers = v201("TransactionEventRequest", "triggerReason")
    for stopped_reason, trigger_reason in E.STOP_REASON_UP.values():
        assert stopped_reason in stopped
        assert trigger_reason in triggers
    assert E.STOP_REASON_UP["HardReset"] == ("ImmediateReset", "ResetCommand")
    assert E.STOP_REASON_UP["UnlockCommand"] == ("Other", "UnlockCommand")
    assert E.STOP_REASON_UP[""][0] == "Local"


def test_trigger_messages_partition_the_2_0_1_enumeration() -> None:
    requested = v201("TriggerMessageRequest", "requestedMessage")
    down, emulated, absent = (
        set(E.TRIGGER_MESSAGE_DOWN),
        E.TRIGGER_EMULATED,
        E.TRIGGER_NOT_IMPLEMENTED,
    )
    assert down | emulated | absent == requested
    assert not (down & emulated) and not (down & absent) and not (emulated & absent)
    plain = v16("TriggerMessage", "requestedMessage")
    extended = v16("ExtendedTriggerMessage", "requestedMessage")
    for action, message in E.TRIGGER_MESSAGE_DOWN.values():
        assert message in (plain if action == "TriggerMessage" else extended)
    assert set(E.EXTENDED_TRIGGER_DOWN) <= requested
    assert set(E.EXTENDED_TRIGGER_DOWN.values()) == extended


def test_measurands_only_1_6_has_are_exactly_the_ones_moved_to_events() -> None:
    only_16 = v16("MeterValues", "measurand") - v201("MeterValuesRequest", "measurand")
    assert set(E.V16_ONLY_MEASURAND_VARIABLE) == only_16 == {"Temperature", "RPM"}
    assert set(E.MEASURAND_DEFAULT_UNIT) <= v16("MeterValues", "measurand")


def test_context_trigger_reasons_exist_in_2_0_1() -> None:
    assert set(E.CONTEXT_TRIGGER_REASON) == v16("MeterValues", "context")
    assert set(E.CONTEXT_TRIGGER_REASON.values()) <= v201(
        "TransactionEventRequest", "triggerReason"
    )


def test_boot_reasons_are_the_2_0_1_enumeration() -> None:
    assert v201("BootNotificationRequest", "reason") == E.BOOT_REASONS
