"""bridge.stations.v16.device_model (+ adapters.device_model_file): the 1.6 key ⇄ 2.0.1 variable table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.device_model_file import DeviceModelFileError, load_config_table, parse_config_table
from bridge.stations.v16.device_model import (
    LEGACY_COMPONENT,
    ConfigTableError,
    VariableRef,
    compile_config_table,
    number_of,
    value_down,
    value_up,
)

SHIPPED = load_config_table()

# Reference §2.5 (EVerest's table), with the 2.0.1 standard name where the appendix has one.
EXPECTED_ROWS = [
    ("AllowOfflineTxForUnknownId", "AuthCtrlr", "OfflineTxForUnknownIdEnabled", None, "Actual"),
    ("AuthorizationCacheEnabled", "AuthCacheCtrlr", "Enabled", None, "Actual"),
    ("AuthorizeRemoteTxRequests", "AuthCtrlr", "AuthorizeRemoteStart", None, "Actual"),
    ("ClockAlignedDataInterval", "AlignedDataCtrlr", "Interval", None, "Actual"),
    ("ConnectionTimeOut", "TxCtrlr", "EVConnectionTimeOut", None, "Actual"),
    ("HeartbeatInterval", LEGACY_COMPONENT, "HeartbeatInterval", None, "Actual"),
    ("LocalAuthorizeOffline", "AuthCtrlr", "LocalAuthorizeOffline", None, "Actual"),
    ("LocalPreAuthorize", "AuthCtrlr", "LocalPreAuthorize", None, "Actual"),
    ("MaxEnergyOnInvalidId", "TxCtrlr", "MaxEnergyOnInvalidId", None, "Actual"),
    ("MeterValuesAlignedData", "AlignedDataCtrlr", "Measurands", None, "Actual"),
    ("MeterValuesAlignedDataMaxLength", "AlignedDataCtrlr", "Measurands", None, "maxLimit"),
    ("MeterValuesSampledData", "SampledDataCtrlr", "TxUpdatedMeasurands", None, "Actual"),
    ("MeterValuesSampledDataMaxLength", "SampledDataCtrlr", "TxUpdatedMeasurands", None, "maxLimit"),
    ("MeterValueSampleInterval", "SampledDataCtrlr", "TxUpdatedInterval", None, "Actual"),
    ("ResetRetries", "OCPPCommCtrlr", "ResetRetries", None, "Actual"),
    ("StopTransactionOnInvalidId", "TxCtrlr", "StopTxOnInvalidId", None, "Actual"),
    ("StopTxnAlignedData", "AlignedDataCtrlr", "TxEndedMeasurands", None, "Actual"),
    ("StopTxnAlignedDataMaxLength", "AlignedDataCtrlr", "TxEndedMeasurands", None, "maxLimit"),
    ("StopTxnSampledData", "SampledDataCtrlr", "TxEndedMeasurands", None, "Actual"),
    ("StopTxnSampledDataMaxLength", "SampledDataCtrlr", "TxEndedMeasurands", None, "maxLimit"),
    ("TransactionMessageAttempts", LEGACY_COMPONENT, "TransactionMessageAttempts", None, "Actual"),
    ("TransactionMessageRetryInterval", LEGACY_COMPONENT, "TransactionMessageRetryInterval", None, "Actual"),
    ("WebSocketPingInterval", "OCPPCommCtrlr", "WebSocketPingInterval", None, "Actual"),
    ("LocalAuthListEnabled", "LocalAuthListCtrlr", "Enabled", None, "Actual"),
    ("LocalAuthListMaxLength", "LocalAuthListCtrlr", "Entries", None, "maxLimit"),
    ("SendLocalListMaxLength", "LocalAuthListCtrlr", "ItemsPerMessage", None, "Actual"),
    ("ChargeProfileMaxStackLevel", "SmartChargingCtrlr", "ProfileStackLevel", None, "Actual"),
    ("ChargingScheduleAllowedChargingRateUnit", "SmartChargingCtrlr", "RateUnit", None, "Actual"),
    ("ChargingScheduleMaxPeriods", "SmartChargingCtrlr", "PeriodsPerSchedule", None, "Actual"),
    ("ConnectorSwitch3to1PhaseSupported", "SmartChargingCtrlr", "Phases3to1", None, "Actual"),
    ("MaxChargingProfilesInstalled", "SmartChargingCtrlr", "Entries", "ChargingProfiles", "maxLimit"),
    ("SupportedFileTransferProtocols", "OCPPCommCtrlr", "FileTransferProtocols", None, "Actual"),
    ("CpoName", "SecurityCtrlr", "OrganizationName", None, "Actual"),
    ("CertificateSignedMaxChainSize", "SecurityCtrlr", "MaxCertificateChainSize", None, "Actual"),
    ("CertificateStoreMaxLength", "SecurityCtrlr", "CertificateEntries", None, "maxLimit"),
    ("ISO15118PnCEnabled", "ISO15118Ctrlr", "PnCEnabled", None, "Actual"),
    ("StopTransactionOnEVSideDisconnect", "TxCtrlr", "StopTxOnEVSideDisconnect", None, "Actual"),
    ("UnlockConnectorOnEVSideDisconnect", "OCPPCommCtrlr", "UnlockOnEVSideDisconnect", None, "Actual"),
    ("ReserveConnectorZeroSupported", "ReservationCtrlr", "NonEvseSpecific", None, "Actual"),
    ("BlinkRepeat", LEGACY_COMPONENT, "BlinkRepeat", None, "Actual"),
    ("ConnectorPhaseRotation", LEGACY_COMPONENT, "PhaseRotation", None, "Actual"),
    ("NumberOfConnectors", LEGACY_COMPONENT, "NumberOfConnectors", None, "Actual"),
]  # fmt: skip


class TestShippedTable:
    @pytest.mark.parametrize(("key", "component", "variable", "instance", "target"), EXPECTED_ROWS)
    def test_row(
        self, key: str, component: str, variable: str, instance: str | None, target: str
    ) -> None:
        mapping = SHIPPED.mapping_for_key(key)
        assert mapping is not None
        assert mapping.ref == VariableRef(component, variable, variable_instance=instance)
        assert mapping.target == target

    @pytest.mark.parametrize(
        "key", ["AuthorizationKey", "SecurityProfile", "CentralSystemURI", "ChargePointId"]
    )
    def test_link_keys_are_hidden(self, key: str) -> None:
        assert SHIPPED.mapping_for_key(key) is None

    def test_unlisted_key_lives_on_the_legacy_component(self) -> None:
        mapping = SHIPPED.mapping_for_key("VendorSpecificThing")
        assert mapping is not None
        assert (mapping.ref, mapping.legacy) == (
            VariableRef(LEGACY_COMPONENT, "VendorSpecificThing"),
            True,
        )

    def test_legacy_name_taken_by_a_row_wins(self) -> None:
        # ConnectorPhaseRotation is reported as PhaseRotation: a charger key of that name has no place
        assert SHIPPED.mapping_for_key("PhaseRotation") is None

    def test_lookup_by_variable(self) -> None:
        ref = VariableRef("SampledDataCtrlr", "TxUpdatedMeasurands")
        attributes = SHIPPED.mappings_for(ref)
        assert attributes is not None
        assert {t: m.key for t, m in attributes.items()} == {
            "Actual": "MeterValuesSampledData",
            "maxLimit": "MeterValuesSampledDataMaxLength",
        }
        legacy = SHIPPED.mappings_for(VariableRef(LEGACY_COMPONENT, "LightIntensity"))
        assert legacy is not None and legacy["Actual"].key == "LightIntensity"
        # the charger's heartbeat to the bridge; OCPPCommCtrlr.HeartbeatInterval is the bridge's own
        assert SHIPPED.mappings_for(VariableRef("OCPPCommCtrlr", "HeartbeatInterval")) is None
        assert SHIPPED.mappings_for(VariableRef(LEGACY_COMPONENT, "BlinkRepeat")) is not None
        assert SHIPPED.mappings_for(VariableRef(LEGACY_COMPONENT, "AuthorizationKey")) is None
        assert SHIPPED.mappings_for(VariableRef("OCPPCommCtrlr", "Nope")) is None

    def test_known_components(self) -> None:
        assert SHIPPED.knows_component(VariableRef("OCPPCommCtrlr", "x"))
        assert SHIPPED.knows_component(VariableRef(LEGACY_COMPONENT, "x"))
        assert not SHIPPED.knows_component(VariableRef("DisplayMessageCtrlr", "x"))
        assert not SHIPPED.knows_component(VariableRef("OCPPCommCtrlr", "x", evse_id=1))

    def test_load_from_a_path(self, tmp_path: Path) -> None:
        path = tmp_path / "table.yaml"
        path.write_text(
            "keys:\n  Foo: {component: C, variable: V, data_type: integer}\n", encoding="utf-8"
        )
        table = load_config_table(path)
        assert table.rows["Foo"].ref == VariableRef("C", "V")


class TestTableErrors:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"keys": {"A": {"componnt": "X"}}}, "A: componnt: Extra inputs are not permitted"),
            ({"keys": {"A": {"target": "maxLimit"}}}, "A: Value error, a maxLimit comes from a number"),
            ({"keys": {"A": {"hidden": True, "component": "X"}}}, "A: Value error, a hidden key"),
            ({"keys": {"A": {"data_type": "float"}}}, "A: data_type: Input should be"),
            ({"keys": {"A": {"component": "X" * 51}}}, "A: component: String should have at most 50"),
            ({"keys": {"A": {"component": "C", "variable": "V"}, "B": {"component": "C", "variable": "V"}}},
             "B: C.V Actual is already fed by A"),
            ({"keys": {"K" * 51: {}}}, "a 1.6 key has 1 to 50 characters"),
            ({"tables": {}}, "keys: Field required"),
        ],
    )  # fmt: skip
    def test_problems_name_the_key(self, data: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigTableError) as error:
            compile_config_table(data)
        assert any(message in p.describe() for p in error.value.problems), error.value

    def test_adapter_reports_file_line_and_column(self) -> None:
        text = "keys:\n  Good: {component: C, variable: V}\n  Bad:\n    target: Sometimes\n"
        with pytest.raises(DeviceModelFileError) as error:
            parse_config_table(text, "t.yaml")
        assert error.value.problems[0].startswith("t.yaml:3:3: Bad: target:")

    def test_adapter_reports_yaml_syntax_errors(self) -> None:
        with pytest.raises(DeviceModelFileError) as error:
            parse_config_table("keys: {a: [}\n", "t.yaml")
        assert error.value.problems[0].startswith("t.yaml:1:")

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DeviceModelFileError):
            load_config_table(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("value", "data_type", "expected"),
    [
        ("True", "boolean", "true"),
        (" FALSE ", "boolean", "false"),
        ("yes", "boolean", "yes"),  # not a boolean: the charger's text goes unchanged
        ("0300", "integer", "300"),
        ("+5", "integer", "5"),
        ("5 s", "integer", "5 s"),
        ("1.50", "decimal", "1.50"),
        ("+2", "decimal", "2"),
        ("Energy.Active.Import.Register, Current.Import ,", "MemberList", "Energy.Active.Import.Register,Current.Import"),
        ("a, b", "string", "a, b"),
    ],
)  # fmt: skip
def test_value_up(value: str, data_type: str, expected: str) -> None:
    assert value_up(value, data_type) == expected


@pytest.mark.parametrize(
    ("value", "data_type", "expected"),
    [
        ("true", "boolean", ("true", "")),
        ("True", "boolean", (None, "InvalidValue")),
        ("300", "integer", ("300", "")),
        ("0300", "integer", (None, "InvalidValue")),
        ("-1", "integer", ("-1", "")),
        ("1.5", "integer", (None, "InvalidValue")),
        ("1.5", "decimal", ("1.5", "")),
        ("abc", "decimal", (None, "InvalidValue")),
        ("A, W", "MemberList", ("A,W", "")),
        ("x" * 501, "string", (None, "TooLargeElement")),
    ],
)
def test_value_down(value: str, data_type: str, expected: tuple[str | None, str]) -> None:
    assert value_down(value, data_type) == expected


@pytest.mark.parametrize(("value", "number"), [("10", 10), (" 7 ", 7), ("2.5", 2.5), ("x", None)])
def test_number_of(value: str, number: float | None) -> None:
    assert number_of(value) == number
