"""bridge.stations.v16.meter: 1.6 MeterValue[] → 2.0.1 (J01 meter values, E02 transaction meter values)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.meter import (
    ExtraReading,
    SignedMeterDefaults,
    begin_meter_value,
    convert_meter_values,
    end_meter_value,
    has_register,
    parse_value,
    reading_event_data,
    with_transaction_end,
)
from bridge.stations.v16.station import notify_event_request
from bridge.timestamps import TimestampPolicy

SCHEMAS = OfficialSchemas()
RECEIVED = "2026-03-01T12:00:00Z"
T0 = "2026-03-01T10:00:00Z"


def assert_valid_meter_values(meter_values: list[dict[str, Any]]) -> None:
    payload = {"evseId": 1, "meterValue": meter_values}
    check = SCHEMAS.check(OcppVersion.V201, "MeterValues", PayloadKind.REQUEST, payload)
    assert check is None, check


def assert_valid_16_meter_values(meter_values: list[dict[str, Any]]) -> None:
    payload = {"connectorId": 1, "meterValue": meter_values}
    check = SCHEMAS.check(OcppVersion.V16, "MeterValues", PayloadKind.REQUEST, payload)
    assert check is None, check


def one(sample: dict[str, Any], timestamp: str = T0) -> list[dict[str, Any]]:
    return [{"timestamp": timestamp, "sampledValue": [sample]}]


def convert(meter_values: list[dict[str, Any]], **kwargs: Any) -> Any:
    assert_valid_16_meter_values(meter_values)
    result = convert_meter_values(meter_values, received_at=RECEIVED, **kwargs)
    if result.meter_values:
        assert_valid_meter_values(result.meter_values)
    return result


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ({"value": "1234"}, {"value": 1234, "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}),
        (
            {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {
                "value": 12.5,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "kWh", "multiplier": 0},
            },
        ),
        (
            {"value": " 7.4e3 ", "measurand": "Power.Active.Import", "unit": "W", "phase": "L1"},
            {
                "value": 7400.0,
                "measurand": "Power.Active.Import",
                "phase": "L1",
                "unitOfMeasure": {"unit": "W", "multiplier": 0},
            },
        ),
        (
            {"value": "16", "measurand": "Current.Import", "context": "Sample.Clock"},
            {
                "value": 16,
                "context": "Sample.Clock",
                "measurand": "Current.Import",
                "unitOfMeasure": {"unit": "A", "multiplier": 0},
            },
        ),
        (
            {"value": "230.1", "measurand": "Voltage", "location": "Inlet", "phase": "L1-N"},
            {
                "value": 230.1,
                "measurand": "Voltage",
                "phase": "L1-N",
                "location": "Inlet",
                "unitOfMeasure": {"unit": "V", "multiplier": 0},
            },
        ),
        (
            {"value": "80", "measurand": "SoC", "context": "Transaction.End", "location": "EV"},
            {
                "value": 80,
                "context": "Transaction.End",
                "measurand": "SoC",
                "location": "EV",
                "unitOfMeasure": {"unit": "Percent", "multiplier": 0},
            },
        ),
        (
            {"value": "0.98", "measurand": "Power.Factor"},
            {"value": 0.98, "measurand": "Power.Factor"},
        ),
        (
            {"value": "50", "measurand": "Frequency"},
            {
                "value": 50,
                "measurand": "Frequency",
                "unitOfMeasure": {"unit": "Hz", "multiplier": 0},
            },
        ),
        (
            {"value": "-3", "measurand": "Power.Reactive.Export", "unit": "kvar"},
            {
                "value": -3,
                "measurand": "Power.Reactive.Export",
                "unitOfMeasure": {"unit": "kvar", "multiplier": 0},
            },
        ),
    ],
)
def test_j01_sampled_values_become_numbers_with_units(
    sample: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = convert(one(sample))
    assert result.problems == []
    assert result.meter_values == [{"timestamp": T0, "sampledValue": [expected]}]


@pytest.mark.parametrize("text", ["12,5", "n/a", "NaN", "Infinity", "1e400", "", "0x10", "1.2.3"])
def test_non_numeric_value_is_skipped_and_reported(text: str) -> None:
    meter_values = [
        {"timestamp": T0, "sampledValue": [{"value": text}, {"value": "42"}]},
        {"timestamp": "2026-03-01T10:01:00Z", "sampledValue": [{"value": text}]},
    ]
    result = convert(meter_values)
    # the second MeterValue has nothing left: dropped (2.0.1 needs one sample)
    assert result.meter_values == [
        {
            "timestamp": T0,
            "sampledValue": [{"value": 42, "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}],
        }
    ]
    assert [(p.kind, p.path) for p in result.problems] == [
        ("non-numeric-value", "meterValue.0.sampledValue.0.value"),
        ("non-numeric-value", "meterValue.1.sampledValue.0.value"),
    ]


def test_celcius_misspelling_and_temperature_leave_the_meter_values() -> None:
    result = convert(
        one({"value": "41.5", "measurand": "Temperature", "unit": "Celcius", "location": "Body"})
    )
    assert result.meter_values == []
    assert result.readings == [
        ExtraReading(T0, "Temperature", "Temperature", 41.5, "Celsius", "Body", None, None)
    ]


def test_rpm_reading_becomes_fan_speed() -> None:
    result = convert(one({"value": "1200", "measurand": "RPM"}))
    assert result.meter_values == []
    [reading] = result.readings
    assert (reading.variable, reading.value, reading.unit) == ("FanSpeed", 1200, "RPM")


@pytest.mark.parametrize(
    ("unit", "value", "celsius"),
    [("Celsius", 20, "20"), ("K", 300.15, "27"), ("Fahrenheit", 212, "100"), (None, 20.5, "20.5")],
)
def test_temperature_events_are_in_celsius(unit: str | None, value: float, celsius: str) -> None:
    reading = ExtraReading(T0, "Temperature", "Temperature", value, unit, "Outlet", "L1", None)
    data = reading_event_data(reading, event_id=7, connector_id=2)
    assert data["actualValue"] == celsius
    assert data["component"] == {"name": "EVSE", "evse": {"id": 2}}
    assert data["variable"] == {"name": "Temperature", "instance": "Outlet-L1"}
    request = notify_event_request([data], generated_at=RECEIVED)
    assert SCHEMAS.check(OcppVersion.V201, "NotifyEvent", PayloadKind.REQUEST, request) is None


def test_station_level_reading_event() -> None:
    reading = ExtraReading(T0, "RPM", "FanSpeed", 900, "RPM", None, None, "Sample.Clock")
    data = reading_event_data(reading, event_id=1, connector_id=0)
    assert data["component"] == {"name": "ChargingStation"}
    assert data["variable"] == {"name": "FanSpeed"}
    assert data["trigger"] == "Periodic"
    assert "Sample.Clock" in data["techInfo"]
    request = notify_event_request([data], generated_at=RECEIVED, seq_no=3, tbc=True)
    assert SCHEMAS.check(OcppVersion.V201, "NotifyEvent", PayloadKind.REQUEST, request) is None


class TestSignedData:
    OCMF = (
        'OCMF|{"FV":"1.0","RD":[{"TM":"2026-03-01T10:00:00,000+0000 S","TX":"B","RV":1.234,'
        '"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3045"}'
    )

    def test_hex_signed_data_joins_its_raw_partner_as_base64(self) -> None:
        meter_values = [
            {
                "timestamp": T0,
                "sampledValue": [
                    {"value": "1234", "context": "Sample.Periodic"},
                    {"value": "DEADBEEF", "format": "SignedData", "context": "Sample.Periodic"},
                ],
            }
        ]
        defaults = SignedMeterDefaults("ECDSA", "EDL", "cHVi")
        result = convert(meter_values, signed=defaults)
        assert result.problems == []
        [sample] = result.meter_values[0]["sampledValue"]
        assert sample["value"] == 1234
        assert sample["signedMeterValue"] == {
            "signedMeterData": base64.b64encode(bytes.fromhex("DEADBEEF")).decode(),
            "signingMethod": "ECDSA",
            "encodingMethod": "EDL",
            "publicKey": "cHVi",
        }

    def test_signed_data_pairs_by_measurand(self) -> None:
        meter_values = [
            {
                "timestamp": T0,
                "sampledValue": [
                    {"value": "5", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "1234"},
                    {"value": "00FF", "format": "SignedData"},
                ],
            }
        ]
        result = convert(meter_values)
        power, energy = result.meter_values[0]["sampledValue"]
        assert "signedMeterValue" not in power
        assert energy["signedMeterValue"]["signedMeterData"] == "AP8="

    def test_ocmf_text_sets_the_encoding_and_signing_method(self) -> None:
        meter_values = [
            {
                "timestamp": T0,
                "sampledValue": [{"value": "1234"}, {"value": self.OCMF, "format": "SignedData"}],
            }
        ]
        result = convert(meter_values)
        signed = result.meter_values[0]["sampledValue"][0]["signedMeterValue"]
        assert signed["encodingMethod"] == "OCMF"
        assert signed["signingMethod"] == "ECDSA-secp256r1-SHA256"
        assert base64.b64decode(signed["signedMeterData"]).decode() == self.OCMF

    def test_unpaired_ocmf_keeps_its_reading(self) -> None:
        result = convert(one({"value": self.OCMF, "format": "SignedData"}))
        assert result.problems == []
        [sample] = result.meter_values[0]["sampledValue"]
        assert sample["value"] == 1.234
        assert sample["unitOfMeasure"] == {"unit": "kWh", "multiplier": 0}
        assert sample["signedMeterValue"]["encodingMethod"] == "OCMF"

    def test_unpaired_opaque_signed_data_is_reported(self) -> None:
        result = convert(one({"value": "CAFE", "format": "SignedData"}))
        assert result.meter_values == []
        assert [p.kind for p in result.problems] == ["signed-value-without-reading"]

    def test_too_long_signed_data_is_reported_and_the_reading_kept(self) -> None:
        meter_values = [
            {
                "timestamp": T0,
                "sampledValue": [{"value": "1"}, {"value": "AB" * 2000, "format": "SignedData"}],
            }
        ]
        result = convert(meter_values)
        assert result.meter_values[0]["sampledValue"] == [
            {"value": 1, "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}
        ]
        assert [p.kind for p in result.problems] == ["signed-data-too-long"]


def test_unsynchronised_timestamp_is_replaced_and_reported() -> None:
    result = convert(one({"value": "1"}, timestamp="1970-01-01T00:01:00Z"))
    assert result.meter_values[0]["timestamp"] == RECEIVED
    assert [(p.kind, p.path) for p in result.problems] == [
        ("unsynchronised-clock", "meterValue.0.timestamp")
    ]


def test_timestamp_without_offset_uses_the_station_policy() -> None:
    meter_values = [{"timestamp": "2026-03-01T11:00:00", "sampledValue": [{"value": "1"}]}]
    result = convert_meter_values(
        meter_values, received_at=RECEIVED, policy=TimestampPolicy(assumed_offset_minutes=60)
    )
    assert result.meter_values[0]["timestamp"] == "2026-03-01T10:00:00Z"


class TestTransactionRegisters:
    def test_begin_and_end_samples(self) -> None:
        begin, end = begin_meter_value(1000, T0), end_meter_value(2500, T0)
        assert begin["sampledValue"] == [
            {
                "value": 1000,
                "context": "Transaction.Begin",
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
            }
        ]
        assert end["sampledValue"][0]["context"] == "Transaction.End"
        assert_valid_meter_values([begin, end])

    def test_end_register_appended_once(self) -> None:
        values = with_transaction_end([], 2500, T0)
        assert has_register(values, "Transaction.End")
        assert with_transaction_end(values, 9999, T0) == values

    def test_per_phase_end_register_does_not_count(self) -> None:
        phase_only = [
            {
                "timestamp": T0,
                "sampledValue": [{"value": 5, "context": "Transaction.End", "phase": "L1"}],
            }
        ]
        assert not has_register(phase_only, "Transaction.End")
        assert len(with_transaction_end(phase_only, 10, T0)) == 2


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", 0), ("-0", 0), ("+15", 15), ("1.50", 1.5), (".5", 0.5), ("5.", 5.0), ("1E3", 1000.0)],
)
def test_parse_value(text: str, number: float) -> None:
    parsed = parse_value(text)
    assert parsed == number
    assert type(parsed) is type(number)


def test_huge_integer_becomes_a_float_json_can_carry() -> None:
    parsed = parse_value("9" * 30)
    assert isinstance(parsed, float)
    orjson.dumps(parsed)


@given(st.lists(st.one_of(st.text(max_size=12), st.from_regex(r"-?\d{1,25}(\.\d{1,8})?", fullmatch=True)), min_size=1, max_size=5))  # fmt: skip
def test_any_values_give_valid_samples_or_problems(values: list[str]) -> None:
    meter_values = [{"timestamp": T0, "sampledValue": [{"value": v} for v in values]}]
    result = convert_meter_values(meter_values, received_at=RECEIVED)
    samples = [s for mv in result.meter_values for s in mv["sampledValue"]]
    assert len(samples) + len(result.problems) == len(values)
    if result.meter_values:
        assert_valid_meter_values(result.meter_values)
        orjson.dumps(result.meter_values)
