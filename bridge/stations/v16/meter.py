"""OCPP 1.6 MeterValue[] → OCPP 2.0.1 MeterValue[], and the Transaction.Begin/End register samples.

Rules
- Values: the 1.6 string becomes a JSON number: an integer when written as one (up to 2^53), else a float.
  Text that is no finite decimal number (`"12,5"`, `"n/a"`, `"NaN"`) is skipped and reported as a
  `Problem`; a MeterValue left with no sample is dropped (2.0.1 needs at least one).
- Units: every 1.6 unit exists in 2.0.1 under the same name (`Celcius` → `Celsius`, the `ocpp` package's
  `Hertz` → `Hz`) and is sent as `unitOfMeasure {unit, multiplier: 0}`: the value is not rescaled. With no
  unit, 1.6 only defines Wh for energy; 2.0.1 readers assume Wh for *every* measurand, so the SI unit of
  the measurand is written explicitly (W, A, V, Hz, var, varh, Percent; Power.Factor stays unitless).
- measurand, context, phase and location keep their value (same enumerations; same defaults, so an absent
  field stays absent).
- 1.6-only measurands (design choice): Temperature and RPM are not 2.0.1 measurands. They leave the meter
  values and come back as `ExtraReading`s, which `reading_event_data` turns into NotifyEvent data on the
  standard device-model variables Temperature (in Celsius; K and Fahrenheit converted) and FanSpeed
  (component ChargingStation for connector 0, else EVSE; variable instance = location[-phase]).
- Signed data (design choice): a 1.6 `format=SignedData` sample (hex per 1.6, though many chargers send
  OCMF text) is attached as `signedMeterValue` to the Raw sample of the same MeterValue with the same
  measurand, context, location and phase. `signedMeterData` is the signed bytes in Base64 (hex decoded
  first; other text encoded as UTF-8), as 2.0.1 requires. 1.6 has no signing method, encoding method or
  public key: for OCMF, encodingMethod is "OCMF" and signingMethod the signature's "SA"; otherwise, and for
  the public key, the station's configured `SignedMeterDefaults` (empty strings by default). A signed
  sample with no Raw partner keeps its reading when it is OCMF (the last reading's RV), else it is
  skipped and reported. Signed data longer than 2500 Base64 characters cannot travel: reported.
- Timestamps go through `bridge.timestamps`: an unusable one is replaced by the receive time and
  reported.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from bridge.stations.v16.enums import MEASURAND_DEFAULT_UNIT, UNIT_UP, V16_ONLY_MEASURAND_VARIABLE
from bridge.stations.v16.outcome import Payload, Problem
from bridge.timestamps import UTC_POLICY, TimestampPolicy, timestamp_or

REGISTER: Final = "Energy.Active.Import.Register"
DEFAULT_CONTEXT: Final = "Sample.Periodic"
DEFAULT_LOCATION: Final = "Outlet"
MAX_SIGNED_DATA: Final = 2500
MAX_METHOD: Final = 50
_MAX_EXACT_INT: Final = 2**53

_DECIMAL = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


@dataclass(frozen=True, slots=True)
class SignedMeterDefaults:
    """What 1.6 signed data does not say, configured per station."""

    signing_method: str = ""
    encoding_method: str = ""
    public_key: str = ""


NO_SIGNING_INFO: Final = SignedMeterDefaults()


@dataclass(frozen=True, slots=True)
class ExtraReading:
    """A reading of a 1.6-only measurand (Temperature, RPM), for a NotifyEvent."""

    timestamp: str
    measurand: str
    variable: str
    value: float | int
    unit: str | None
    location: str | None
    phase: str | None
    context: str | None


@dataclass(slots=True)
class MeterConversion:
    meter_values: list[Payload] = field(default_factory=list)
    readings: list[ExtraReading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_value(text: Any) -> int | float | None:
    """A 1.6 sampled value as a JSON number, or None when it is no finite decimal."""
    if not isinstance(text, str) or not _DECIMAL.match(text):
        return None
    if _INTEGER.match(text):
        number = int(text)
        return number if abs(number) <= _MAX_EXACT_INT else float(number)
    value = float(text)
    return value if math.isfinite(value) else None


def convert_meter_values(
    meter_values: Sequence[Payload],
    *,
    received_at: str,
    policy: TimestampPolicy = UTC_POLICY,
    signed: SignedMeterDefaults = NO_SIGNING_INFO,
    path: str = "meterValue",
) -> MeterConversion:
    """Convert a 1.6 `meterValue` (or `transactionData`) list."""
    result = MeterConversion()
    for index, meter_value in enumerate(meter_values):
        where = f"{path}.{index}"
        stamp = timestamp_or(
            meter_value.get("timestamp"), received_at, policy, path=f"{where}.timestamp"
        )
        if stamp.problem is not None:
            result.problems.append(stamp.problem)
        samples = _convert_samples(meter_value.get("sampledValue", []), stamp.value, where, signed)
        result.readings.extend(samples.readings)
        result.problems.extend(samples.problems)
        if samples.sampled_values:
            result.meter_values.append(
                {"timestamp": stamp.value, "sampledValue": samples.sampled_values}
            )
    return result


def _key(sample: Payload) -> tuple[str, str, str, str]:
    return (
        sample.get("measurand", REGISTER),
        sample.get("context", DEFAULT_CONTEXT),
        sample.get("location", DEFAULT_LOCATION),
        sample.get("phase", ""),
    )


@dataclass(slots=True)
class _Samples:
    """The 2.0.1 SampledValues of one MeterValue, and what left it."""

    sampled_values: list[Payload] = field(default_factory=list)
    readings: list[ExtraReading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _convert_samples(
    samples: Sequence[Payload], timestamp: str, where: str, signed: SignedMeterDefaults
) -> _Samples:
    out = _Samples()
    pending_signed: list[tuple[str, Payload]] = []
    for index, sample in enumerate(samples):
        at = f"{where}.sampledValue.{index}"
        if sample.get("format") == "SignedData":
            pending_signed.append((at, sample))
            continue
        value = parse_value(sample.get("value"))
        if value is None:
            out.problems.append(
                Problem("non-numeric-value", f"{at}.value", f"{str(sample.get('value'))[:40]!r}")
            )
            continue
        measurand = sample.get("measurand", REGISTER)
        if measurand in V16_ONLY_MEASURAND_VARIABLE:
            out.readings.append(_extra_reading(sample, value, timestamp))
            continue
        out.sampled_values.append(_sampled_value(sample, value))
    partners = {id(v): False for v in out.sampled_values}
    for at, sample in pending_signed:
        _attach_signed(sample, at, out, partners, signed)
    return out


def _sampled_value(sample: Payload, value: int | float, unit: str | None = None) -> Payload:
    converted: Payload = {"value": value}
    for name in ("context", "measurand", "phase", "location"):
        if name in sample:
            converted[name] = sample[name]
    unit = unit or _unit(sample)
    if unit is not None:
        converted["unitOfMeasure"] = {"unit": unit, "multiplier": 0}
    return converted


def _unit(sample: Payload) -> str | None:
    unit = sample.get("unit")
    if isinstance(unit, str) and unit:
        return UNIT_UP.get(unit, unit[:20])
    return MEASURAND_DEFAULT_UNIT.get(sample.get("measurand", REGISTER))


def _extra_reading(sample: Payload, value: int | float, timestamp: str) -> ExtraReading:
    measurand = sample.get("measurand", REGISTER)
    return ExtraReading(
        timestamp=timestamp,
        measurand=measurand,
        variable=V16_ONLY_MEASURAND_VARIABLE[measurand],
        value=value,
        unit=_unit(sample),
        location=sample.get("location"),
        phase=sample.get("phase"),
        context=sample.get("context"),
    )


# --- signed data ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Signed:
    data: str  # Base64
    signing_method: str
    encoding_method: str
    ocmf_value: int | float | None
    ocmf_unit: str | None


def _attach_signed(
    sample: Payload,
    at: str,
    out: _Samples,
    partners: dict[int, bool],
    defaults: SignedMeterDefaults,
) -> None:
    decoded = _decode_signed(str(sample.get("value", "")), defaults)
    if len(decoded.data) > MAX_SIGNED_DATA:
        out.problems.append(
            Problem("signed-data-too-long", at, f"{len(decoded.data)} Base64 characters > 2500")
        )
        return
    signed_value = {
        "signedMeterData": decoded.data,
        "signingMethod": decoded.signing_method[:MAX_METHOD],
        "encodingMethod": decoded.encoding_method[:MAX_METHOD],
        "publicKey": defaults.public_key[:MAX_SIGNED_DATA],
    }
    key = _key(sample)
    for candidate in out.sampled_values:
        if not partners.get(id(candidate), True) and _key(candidate) == key:
            candidate["signedMeterValue"] = signed_value
            partners[id(candidate)] = True
            return
    if decoded.ocmf_value is None:
        out.problems.append(
            Problem(
                "signed-value-without-reading",
                at,
                "SignedData with no Raw sample of the same measurand and no readable OCMF reading",
            )
        )
        return
    unit = UNIT_UP.get(decoded.ocmf_unit or "") if "unit" not in sample else None
    converted = _sampled_value(sample, decoded.ocmf_value, unit)
    converted["signedMeterValue"] = signed_value
    out.sampled_values.append(converted)
    partners[id(converted)] = True


def _decode_signed(text: str, defaults: SignedMeterDefaults) -> _Signed:
    stripped = text.strip()
    raw = bytes.fromhex(stripped) if _HEX.match(stripped) else text.encode("utf-8")
    data = base64.b64encode(raw).decode("ascii")
    if raw.startswith(b"OCMF|"):
        signing, value, unit = _read_ocmf(raw)
        return _Signed(data, signing or defaults.signing_method, "OCMF", value, unit)
    return _Signed(data, defaults.signing_method, defaults.encoding_method, None, None)


def _read_ocmf(raw: bytes) -> tuple[str | None, int | float | None, str | None]:
    """(signature algorithm "SA", last reading "RV", its unit "RU") of an OCMF record, where readable."""
    text = raw.decode("utf-8", "replace")[len("OCMF|") :]
    split = text.rfind("|{")
    payload_text, signature_text = (text[:split], text[split + 1 :]) if split >= 0 else (text, "")
    payload, signature = _json_object(payload_text), _json_object(signature_text)
    algorithm = signature.get("SA")
    readings = payload.get("RD")
    value: int | float | None = None
    unit: str | None = None
    if isinstance(readings, list) and readings and isinstance(readings[-1], dict):
        reading = readings[-1].get("RV")
        if isinstance(reading, int | float) and not isinstance(reading, bool):
            value = reading if math.isfinite(reading) else None
        unit = readings[-1].get("RU") if isinstance(readings[-1].get("RU"), str) else None
    return (algorithm if isinstance(algorithm, str) else None), value, unit


def _json_object(text: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --- transaction register values -------------------------------------------------------------------


def register_meter_value(meter_wh: int, timestamp: str, context: str) -> Payload:
    """One MeterValue with the Energy.Active.Import.Register reading `meter_wh` (Wh) in `context`."""
    return {
        "timestamp": timestamp,
        "sampledValue": [
            {
                "value": meter_wh,
                "context": context,
                "measurand": REGISTER,
                "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
            }
        ],
    }


def begin_meter_value(meter_start: int, timestamp: str) -> Payload:
    """The Transaction.Begin register sample of StartTransaction.meterStart."""
    return register_meter_value(meter_start, timestamp, "Transaction.Begin")


def end_meter_value(meter_stop: int, timestamp: str) -> Payload:
    """The Transaction.End register sample of StopTransaction.meterStop."""
    return register_meter_value(meter_stop, timestamp, "Transaction.End")


def has_register(meter_values: Sequence[Payload], context: str) -> bool:
    """Whether 2.0.1 `meter_values` hold a whole-meter (no phase) import register sample in `context`."""
    return any(
        sample.get("measurand", REGISTER) == REGISTER
        and sample.get("context", DEFAULT_CONTEXT) == context
        and "phase" not in sample
        for meter_value in meter_values
        for sample in meter_value.get("sampledValue", [])
    )


def with_transaction_end(
    meter_values: Sequence[Payload], meter_stop: int, timestamp: str
) -> list[Payload]:
    """`meter_values` plus the Transaction.End register from meterStop, unless the charger sent one."""
    values = list(meter_values)
    if not has_register(values, "Transaction.End"):
        values.append(end_meter_value(meter_stop, timestamp))
    return values


# --- readings of 1.6-only measurands → NotifyEvent --------------------------------------------------


def _celsius(reading: ExtraReading) -> float | int:
    if reading.unit == "K":
        return round(reading.value - 273.15, 3)
    if reading.unit == "Fahrenheit":
        return round((reading.value - 32) * 5 / 9, 3)
    return reading.value


def reading_event_data(reading: ExtraReading, *, event_id: int, connector_id: int) -> Payload:
    """NotifyEvent eventData for a Temperature or RPM reading of `connector_id` (0 = the station)."""
    value = _celsius(reading) if reading.variable == "Temperature" else reading.value
    component: Payload = (
        {"name": "ChargingStation"}
        if connector_id == 0
        else {"name": "EVSE", "evse": {"id": connector_id}}
    )
    variable: Payload = {"name": reading.variable}
    instance = "-".join(part for part in (reading.location, reading.phase) if part)
    if instance:
        variable["instance"] = instance
    return {
        "eventId": event_id,
        "timestamp": reading.timestamp,
        "trigger": "Periodic",
        "actualValue": _number_text(value),
        "techInfo": f"OCPP 1.6 measurand {reading.measurand}, context "
        f"{reading.context or DEFAULT_CONTEXT}",
        "eventNotificationType": "HardWiredMonitor",
        "component": component,
        "variable": variable,
    }


def _number_text(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
