"""Private ASDUs compiled: byte layouts of fields, and the rules the station core reads them by.

```python
rule = table.private_in[130, 0x7001]              # PrivateRule 'card_request', connector 1
ioa, data = split_object(raw.objects, 3)          # or a LayoutError
values = rule.layout.decode(data, zone)           # {'card': '1234567890123456'} or a LayoutError
answer = table.private["card_answer"]
data = answer.layout.encode({"result": 0, "balance": 0.0}, zone)
objects = object_bytes(answer.ioa_for(1), data, 3)  # the bytes after the data unit identifier
```

Rules
- A `Layout` is an ordered tuple of `FieldSpec`s at fixed offsets within the information object's data
  (the bytes after the IOA); `size` is the exact length of that data. Field types and sizes:
  uint8/int8 1, uint16/int16 2, uint32/int32 4, float32 4 (each little- or big-endian, default
  little), cp56 7 (CP56Time2a), and bcd, ascii, raw of a declared size.
- Decoded values (`FieldValue`): integers as int, or `raw × scale` as float when the field has a
  scale; float32 as float (× scale); bcd as a digit string, two digits per byte, the first digit in
  the high nibble of the first byte (trailing 0xF nibbles are padding and dropped); ascii as text with
  trailing NUL and space bytes stripped; cp56 as epoch seconds of the local time in the zone given
  (None when the tag is invalid or names no instant, `bridge.stations.iec104.timetags`); raw as bytes.
- `Layout.decode` never raises: exact size required, else a `LayoutError(what, offset)` with the
  offset where the data went wrong (a non-digit nibble, a non-ASCII byte, a short object).
- `Layout.encode` raises ValueError for a value that cannot be put on the wire unchanged: a missing or
  unknown field, an integer out of its range, a non-digit or too long BCD string (shorter ones are
  padded with leading zeros), non-ASCII or too long text (shorter padded with NUL), a time outside
  CP56's 2000..2099 (None sends an invalid tag), raw bytes of the wrong length.
- A `PrivateRule` is one declared private ASDU: per connector (`base` + (n − 1) × `stride`) or at one
  fixed IOA (`stride` None: the charger's, or a connector told by its common address).
- Meanings (`Authorize`, `AuthorizeAnswer`, `Settlement`, `SettlementAck`, `Tariff`) name fields of
  their rule's layout; `bridge.stations.iec104.frame_checks` guarantees the names and types, so the station
  core can index `values[meaning.id_token]` without checking.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from bridge.stations.iec104.timetags import Cp56, cp56_from_epoch, cp56_to_epoch

FieldType = Literal[
    "uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "bcd", "ascii", "cp56", "raw"
]
FIELD_TYPES: Final[tuple[str, ...]] = (
    "uint8",
    "uint16",
    "uint32",
    "int8",
    "int16",
    "int32",
    "float32",
    "bcd",
    "ascii",
    "cp56",
    "raw",
)
FIXED_SIZES: Final[dict[str, int]] = {
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "float32": 4,
    "cp56": 7,
}
SIZED_TYPES: Final = frozenset({"bcd", "ascii", "raw"})
INTEGER_TYPES: Final = frozenset({"uint8", "uint16", "uint32", "int8", "int16", "int32"})
NUMBER_TYPES: Final = INTEGER_TYPES | {"float32"}
Endian = Literal["little", "big"]
FieldValue = int | float | str | bytes | None


def integer_range(type_name: str) -> tuple[int, int]:
    """The raw values an integer field carries: uint8 → (0, 255), int16 → (−32768, 32767)."""
    bits = FIXED_SIZES[type_name] * 8
    if type_name.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class LayoutError(NamedTuple):
    """Why bytes do not fit a layout, and the offset within them where it went wrong."""

    what: str
    offset: int


_CP56: Final = struct.Struct("<HBBBBB")
_INVALID_CP56: Final = bytes((0, 0, 0x80, 0, 0, 0, 0))


def cp56_bytes(tag: Cp56) -> bytes:
    """The 7 bytes of a CP56Time2a tag (fields within their bit widths)."""
    return _CP56.pack(
        tag.milliseconds,
        tag.minute | tag.invalid << 7 | tag.substituted << 6,
        tag.hour | tag.summer << 7,
        tag.day | tag.weekday << 5,
        tag.month,
        tag.year,
    )


def cp56_tag(data: bytes) -> Cp56:
    """The CP56Time2a tag in 7 bytes (reserved bits ignored)."""
    ms, mi, h, d, mo, y = _CP56.unpack(data)
    return Cp56(
        ms, mi & 63, h & 31, d & 31, mo & 15, y & 127, d >> 5, mi > 127, h > 127, mi & 64 == 64
    )


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a layout. `size` is None only for a registration field that takes the rest."""

    name: str
    type: str
    offset: int
    size: int | None
    endian: Endian = "little"
    scale: float | None = None
    description: str | None = None

    def _struct(self) -> struct.Struct:
        code = {"uint8": "B", "uint16": "H", "uint32": "I", "int8": "b", "int16": "h"}.get(
            self.type, {"int32": "i", "float32": "f"}.get(self.type, "")
        )
        return struct.Struct(("<" if self.endian == "little" else ">") + code)

    def read(self, chunk: bytes, zone: tzinfo | None) -> FieldValue | LayoutError:
        """This field's value from exactly its bytes; a LayoutError's offset is within `chunk`."""
        kind = self.type
        if kind in NUMBER_TYPES:
            number: int | float = self._struct().unpack(chunk)[0]
            return number if self.scale is None else number * self.scale
        if kind == "bcd":
            return _bcd_text(chunk)
        if kind == "ascii":
            for index, byte in enumerate(chunk):
                if byte > 0x7F:
                    return LayoutError(f"{self.name}: byte {byte:#04x} is not ASCII", index)
            return chunk.decode("ascii").rstrip("\x00 ")
        if kind == "cp56":
            if zone is None:
                return LayoutError(f"{self.name}: a CP56 time needs the station's zone", 0)
            return cp56_to_epoch(cp56_tag(chunk), zone)
        return bytes(chunk)

    def write(self, value: FieldValue, zone: tzinfo | None, size: int | None = None) -> bytes:
        """The bytes of `value` (`size` for a field that takes the rest). Raises ValueError."""
        size = self.size if size is None else size
        kind = self.type
        name = self.name
        if kind in NUMBER_TYPES:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: {kind} needs a number, not {value!r}")
            raw: float = value if self.scale is None else value / self.scale
            if kind == "float32":
                try:
                    return self._struct().pack(raw)
                except (OverflowError, struct.error) as exc:
                    raise ValueError(f"{name}: {value!r} does not fit float32") from exc
            if not math.isfinite(raw):
                raise ValueError(f"{name}: {value!r} is not a finite number")
            if self.scale is None and not isinstance(value, int):
                raise ValueError(f"{name}: {kind} needs an integer, not {value!r}")
            number = round(raw)
            low, high = integer_range(kind)
            if not low <= number <= high:
                raise ValueError(f"{name}: {value!r} is {number} raw, outside {kind} {low}..{high}")
            return self._struct().pack(number)
        assert size is not None or kind == "cp56"
        if kind == "bcd":
            assert size is not None
            if not isinstance(value, str) or not value.isascii() or not value.isdigit():
                raise ValueError(f"{name}: BCD needs a string of digits, not {value!r}")
            if len(value) > 2 * size:
                raise ValueError(f"{name}: {len(value)} digits do not fit {size} BCD bytes")
            return bytes.fromhex(value.rjust(2 * size, "0"))
        if kind == "ascii":
            assert size is not None
            if not isinstance(value, str) or not value.isascii():
                raise ValueError(f"{name}: ascii needs ASCII text, not {value!r}")
            if len(value) > size:
                raise ValueError(f"{name}: {len(value)} characters do not fit {size} bytes")
            return value.encode("ascii").ljust(size, b"\x00")
        if kind == "cp56":
            if value is None:
                return _INVALID_CP56
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: a CP56 time is epoch seconds or None, not {value!r}")
            if zone is None:
                raise ValueError(f"{name}: a CP56 time needs the station's zone")
            return cp56_bytes(cp56_from_epoch(value, zone))
        if not isinstance(value, bytes | bytearray) or (size is not None and len(value) != size):
            raise ValueError(f"{name}: raw needs {size} bytes, not {value!r}")
        return bytes(value)


def _bcd_text(chunk: bytes) -> str | LayoutError:
    digits = chunk.hex().upper()
    text = digits.rstrip("F")
    for index, digit in enumerate(text):
        if not "0" <= digit <= "9":
            return LayoutError(f"BCD nibble {digit} is not a digit", index // 2)
    return text


@dataclass(frozen=True, slots=True)
class Layout:
    """The fields of one information object's data, at fixed offsets; `size` bytes in all."""

    fields: tuple[FieldSpec, ...]
    size: int

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def decode(self, data: bytes, zone: tzinfo) -> dict[str, FieldValue] | LayoutError:
        """Every field's value, or why `data` does not fit; never raises."""
        if len(data) != self.size:
            return LayoutError(
                f"{len(data)} bytes of data, the layout has {self.size}", min(len(data), self.size)
            )
        values: dict[str, FieldValue] = {}
        for spec in self.fields:
            assert spec.size is not None
            value = spec.read(data[spec.offset : spec.offset + spec.size], zone)
            if isinstance(value, LayoutError):
                what = (
                    value.what if value.what.startswith(spec.name) else f"{spec.name}: {value.what}"
                )
                return LayoutError(what, spec.offset + value.offset)
            values[spec.name] = value
        return values

    def encode(self, values: Mapping[str, FieldValue], zone: tzinfo) -> bytes:
        """The data for `values` (one per field, no others); bytes between fields are 0. Raises ValueError."""
        unknown = set(values) - {spec.name for spec in self.fields}
        if unknown:
            raise ValueError(f"no field named {', '.join(sorted(unknown))}")
        data = bytearray(self.size)
        for spec in self.fields:
            if spec.name not in values:
                raise ValueError(f"no value for the field {spec.name!r}")
            chunk = spec.write(values[spec.name], zone)
            data[spec.offset : spec.offset + len(chunk)] = chunk
        return bytes(data)


# --- meanings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorize:
    """In: the charger asks whether an id token may charge (OCPP Authorize)."""

    id_token: str  # a bcd or ascii field
    id_token_type: str  # OCPP 2.0.1 IdTokenEnumType
    answer: str  # the out rule (AuthorizeAnswer) that carries the answer
    offline: Literal["accept", "refuse"]  # the answer while the CSMS is unreachable

    def describe(self) -> str:
        return (
            f"Authorize: idToken ← {self.id_token} (type {self.id_token_type}); answered with"
            f" {self.answer}; while the CSMS is unreachable: {self.offline}"
        )


@dataclass(frozen=True, slots=True)
class AuthorizeAnswer:
    """Out: the answer to an Authorize, its status as a code."""

    result: str  # an integer field
    codes: Mapping[str, int]  # AuthorizationStatusEnumType → code
    default: int | None  # the code of a status not in `codes`
    balance: str | None  # a number field, sent as 0 (OCPP 2.0.1 has no balance)

    def code_for(self, status: str) -> int:
        """The code of an AuthorizationStatus (`codes`, else `default`; validation makes it total)."""
        code = self.codes.get(status, self.default)
        if code is None:
            raise KeyError(status)
        return code

    def values(self, status: str, layout: Layout) -> dict[str, FieldValue]:
        """The answer's field values for `status`: the code, the balance 0, other fields zero/empty."""
        values = {spec.name: _zero(spec) for spec in layout.fields}
        values[self.result] = self.code_for(status)
        return values

    def describe(self) -> str:
        codes = ", ".join(f"{status} {code}" for status, code in self.codes.items())
        default = "" if self.default is None else f", otherwise {self.default}"
        balance = "" if self.balance is None else f"; {self.balance} sent as 0 (no balance in OCPP)"
        return f"AuthorizeResponse idTokenInfo.status → {self.result}: {codes}{default}{balance}"


@dataclass(frozen=True, slots=True)
class MeterReading:
    field: str  # an integer field
    wh_per_count: float


@dataclass(frozen=True, slots=True)
class Amount:
    field: str  # a number field
    scale: float  # currency units per count


@dataclass(frozen=True, slots=True)
class StopReasonCodes:
    field: str  # an integer field
    codes: Mapping[int, str]  # code → OCPP 2.0.1 ReasonEnumType
    default: str | None

    def reason_of(self, code: int) -> str:
        """The stoppedReason of a code (validation makes the table total, or gives a default)."""
        reason = self.codes.get(code, self.default)
        return "Other" if reason is None else reason


@dataclass(frozen=True, slots=True)
class Settlement:
    """In: the record of a finished session (TransactionEvent Ended), acknowledged with `answer`."""

    id_token: str
    id_token_type: str
    started_at: str  # cp56 fields
    ended_at: str
    meter_start: MeterReading
    meter_stop: MeterReading
    amount: Amount | None
    stop_reason: StopReasonCodes | None
    answer: str  # the out rule (SettlementAck)
    answer_values: Mapping[str, FieldValue]  # every field of the answer's layout
    wins: Literal["record", "counters"]  # whose meter values win when they disagree

    def describe(self) -> str:
        parts = [
            f"TransactionEvent Ended: idToken ← {self.id_token} (type {self.id_token_type})",
            f"started {self.started_at}, ended {self.ended_at}",
            f"meterStart {self.meter_start.field} × {self.meter_start.wh_per_count:g} Wh",
            f"meterStop {self.meter_stop.field} × {self.meter_stop.wh_per_count:g} Wh",
        ]
        if self.amount is not None:
            parts.append(f"amount {self.amount.field} × {self.amount.scale:g}")
        if self.stop_reason is not None:
            codes = ", ".join(f"{code} {name}" for code, name in self.stop_reason.codes.items())
            default = self.stop_reason.default
            more = f", otherwise {default}" if default else ""
            parts.append(f"stoppedReason ← {self.stop_reason.field}: {codes}{more}")
        answer = ", ".join(f"{key} {value!r}" for key, value in self.answer_values.items())
        parts.append(
            f"acknowledged with {self.answer} ({answer}); on disagreement the {self.wins} win"
        )
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class SettlementAck:
    """Out: the acknowledgement of a settlement record."""

    result: str

    def describe(self) -> str:
        return f"acknowledges a settlement record; result in {self.result}"


@dataclass(frozen=True, slots=True)
class Tariff:
    """Out: sent when the CSMS sets the component's variables (SetVariables)."""

    component: str
    variables: Mapping[str, str]  # variable name → field
    confirmation: Literal["act_con", "none"]

    def describe(self) -> str:
        names = ", ".join(f"{self.component}.{name} → {f}" for name, f in self.variables.items())
        waits = "waits for ACT_CON" if self.confirmation == "act_con" else "no confirmation"
        return f"SetVariables {names}; {waits}"


Meaning = Authorize | AuthorizeAnswer | Settlement | SettlementAck | Tariff


def _zero(spec: FieldSpec) -> FieldValue:
    if spec.type in NUMBER_TYPES:
        return 0 if spec.scale is None and spec.type != "float32" else 0.0
    if spec.type in ("bcd", "ascii"):
        return ""
    if spec.type == "cp56":
        return None
    return bytes(spec.size or 0)


# --- rules -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrivateRule:
    """One private ASDU of a compiled table, for a station with `connectors` connectors."""

    name: str
    type_id: int
    direction: Literal["in", "out"]  # in: charger → bridge; out: bridge → charger
    cot: int
    base: int  # the IOA of connector 1, or the fixed IOA
    stride: int | None  # None: one fixed IOA
    connectors: int
    layout: Layout
    meaning: Meaning
    description: str | None = None

    @property
    def per_connector(self) -> bool:
        return self.stride is not None

    def ioa_for(self, connector: int | None) -> int:
        """The IOA for connector n (1-based); a fixed IOA whatever the connector."""
        if self.stride is None:
            return self.base
        if connector is None or not 1 <= connector <= self.connectors:
            raise KeyError(f"connector {connector} is not 1..{self.connectors}")
        return self.base + (connector - 1) * self.stride

    def connector_of(self, ioa: int) -> int | None:
        """The connector whose IOA this is; None for a fixed IOA or an IOA not this rule's."""
        if self.stride is None or ioa < self.base:
            return None
        index, rest = divmod(ioa - self.base, self.stride)
        return index + 1 if rest == 0 and index < self.connectors else None

    def ioas(self) -> tuple[int, ...]:
        if self.stride is None:
            return (self.base,)
        return tuple(self.ioa_for(n) for n in range(1, self.connectors + 1))


EMPTY: Final[Mapping[str, PrivateRule]] = MappingProxyType({})


def split_object(objects: bytes, ioa_size: int) -> tuple[int, bytes] | LayoutError:
    """(IOA, data) of the single information object in a private ASDU's bytes after the data unit
    identifier (`RawAsdu.objects`); never raises."""
    if len(objects) < ioa_size:
        return LayoutError(f"{len(objects)} bytes, shorter than an IOA ({ioa_size})", len(objects))
    return int.from_bytes(objects[:ioa_size], "little"), bytes(objects[ioa_size:])


def object_bytes(ioa: int, data: bytes, ioa_size: int) -> bytes:
    """The bytes after the data unit identifier for one object: IOA (little-endian) and data."""
    return ioa.to_bytes(ioa_size, "little") + data
