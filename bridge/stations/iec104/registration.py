"""A charger's registration frame compiled: parse what it sends on connect, before (or instead of) STARTDT.

```python
spec = table.registration                  # RegistrationSpec | None
result = spec.parse(buffer)                # NeedMore | Registered | RegistrationError
if isinstance(result, Registered):
    station = by_registration_id[result.id]; buffer = buffer[result.consumed:]
    transport.write(spec.accepted)         # or spec.refused
```

Frame: start bytes, a length field, the payload (fields at offsets), a checksum:

    | start | length (1|2 bytes) | payload: fields … | checksum (0|1|2 bytes) |

Rules
- `parse` never raises for any bytes. It returns `NeedMore` while the buffer is a proper prefix of a
  frame (the caller keeps at most `max_size` bytes; more without a frame is the caller's error),
  `Registered(id, consumed, fields)` for the first complete frame (bytes after `consumed` belong to
  what follows: STARTDT, ASDUs), or `RegistrationError(reason, offset)` with the offset in the buffer
  where it went wrong: wrong start bytes, a length outside what the layout allows, a checksum that
  does not match, a field that does not decode, an empty id.
- The length field counts the payload (`payload`), the payload and the checksum
  (`payload_and_checksum`) or the whole frame (`frame`); one payload field may take the rest of the
  payload (`size` None), which is what the length leaves after the fixed fields.
- Checksums: `none`; `sum8` (sum of the bytes mod 256) and `xor8`, one byte; `crc16_modbus`
  (polynomial 0xA001 reflected, initial 0xFFFF), two bytes, low byte first unless big-endian. Each is
  computed over the payload or over the whole frame before the checksum.
- The id is the id field's value as text: ascii and bcd as decoded, integers in decimal, raw bytes in
  upper-case hex. It is matched to a station's `registration_id` by the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from bridge.stations.iec104.private import FieldSpec, FieldValue, LayoutError

ChecksumRule = Literal["none", "sum8", "xor8", "crc16_modbus"]
CHECKSUM_RULES: Final[tuple[str, ...]] = ("none", "sum8", "xor8", "crc16_modbus")
CHECKSUM_SIZES: Final[dict[str, int]] = {"none": 0, "sum8": 1, "xor8": 1, "crc16_modbus": 2}
DEFAULT_MAX_PAYLOAD: Final = 1024


class NeedMore(NamedTuple):
    """The buffer is the start of a frame; `needed` is the least total length known so far."""

    needed: int = 0


class Registered(NamedTuple):
    id: str
    consumed: int
    fields: dict[str, object]


class RegistrationError(NamedTuple):
    reason: str
    offset: int


def checksum(rule: str, data: bytes) -> int:
    """The checksum of `data` by `rule` (0 for none)."""
    if rule == "sum8":
        return sum(data) & 0xFF
    if rule == "xor8":
        value = 0
        for byte in data:
            value ^= byte
        return value
    if rule == "crc16_modbus":
        crc = 0xFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        return crc
    return 0


def spaced_hex(data: bytes) -> str:
    """AA 55 01"""
    return data.hex(" ").upper()


@dataclass(frozen=True, slots=True)
class RegistrationSpec:
    start: bytes
    length_size: int  # 1 | 2
    length_endian: Literal["little", "big"]
    length_counts: Literal["payload", "payload_and_checksum", "frame"]
    fields: tuple[FieldSpec, ...]  # offsets within the payload; at most one with size None
    checksum: ChecksumRule
    checksum_over: Literal["payload", "frame"]
    checksum_endian: Literal["little", "big"]
    id_field: str
    accepted: bytes
    refused: bytes
    max_payload: int = DEFAULT_MAX_PAYLOAD

    @property
    def checksum_size(self) -> int:
        return CHECKSUM_SIZES[self.checksum]

    @property
    def header_size(self) -> int:
        return len(self.start) + self.length_size

    @property
    def min_payload(self) -> int:
        """The fixed fields' end (a field taking the rest may be empty)."""
        return max((f.offset + (f.size or 0) for f in self.fields), default=0)

    @property
    def max_size(self) -> int:
        """The longest frame: what the caller buffers at most before a frame is complete."""
        return self.header_size + self.max_payload + self.checksum_size

    def _extra(self) -> int:
        """What the length counts besides the payload."""
        if self.length_counts == "payload":
            return 0
        if self.length_counts == "payload_and_checksum":
            return self.checksum_size
        return self.header_size + self.checksum_size

    def parse(self, buffer: bytes) -> NeedMore | Registered | RegistrationError:
        """The first frame in `buffer` (see the module rules); never raises."""
        start = self.start
        head = bytes(buffer[: len(start)])
        if head != start[: len(head)]:
            wrong = next(i for i, (a, b) in enumerate(zip(head, start, strict=False)) if a != b)
            return RegistrationError(
                f"start bytes {spaced_hex(head)}, expected {spaced_hex(start)}", wrong
            )
        header = self.header_size
        if len(buffer) < header:
            return NeedMore(header)
        length = int.from_bytes(buffer[len(start) : header], self.length_endian)
        payload_size = length - self._extra()
        if not self.min_payload <= payload_size <= self.max_payload:
            low, high = self.min_payload + self._extra(), self.max_payload + self._extra()
            return RegistrationError(
                f"length {length}, expected {low}..{high} ({self._counted()})", len(start)
            )
        end = header + payload_size
        total = end + self.checksum_size
        if len(buffer) < total:
            return NeedMore(total)
        payload = bytes(buffer[header:end])
        if self.checksum != "none":
            covered = payload if self.checksum_over == "payload" else bytes(buffer[:end])
            expected = checksum(self.checksum, covered)
            got = int.from_bytes(buffer[end:total], self.checksum_endian)
            if got != expected:
                width = 2 * self.checksum_size
                return RegistrationError(
                    f"checksum 0x{got:0{width}X}, expected 0x{expected:0{width}X}"
                    f" ({self.checksum} of the {self.checksum_over})",
                    end,
                )
        values: dict[str, object] = {}
        for spec in self.fields:
            size = spec.size if spec.size is not None else payload_size - spec.offset
            value = spec.read(payload[spec.offset : spec.offset + size], None)
            if isinstance(value, LayoutError):
                return RegistrationError(
                    f"{spec.name}: {value.what.removeprefix(spec.name + ': ')}",
                    header + spec.offset + value.offset,
                )
            values[spec.name] = value
        ident = _text(values[self.id_field])
        if not ident:
            offset = header + next(f.offset for f in self.fields if f.name == self.id_field)
            return RegistrationError(f"the id field {self.id_field!r} is empty", offset)
        return Registered(ident, total, values)

    def _counted(self) -> str:
        return {
            "payload": "the payload's bytes",
            "payload_and_checksum": "the bytes of the payload and the checksum",
            "frame": "the frame's bytes",
        }[self.length_counts]

    def frame(self, payload: bytes) -> bytes:
        """A frame around `payload` as a charger would send it (for tests and simulators)."""
        length = len(payload) + self._extra()
        head = self.start + length.to_bytes(self.length_size, self.length_endian)
        if self.checksum == "none":
            return head + payload
        covered = payload if self.checksum_over == "payload" else head + payload
        value = checksum(self.checksum, covered)
        return head + payload + value.to_bytes(self.checksum_size, self.checksum_endian)


def _text(value: FieldValue | object) -> str:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)
