"""IEC 60870-5-104 fuzz frames, built byte by byte with `struct`: nothing here imports the product.

A charger's side of the link (the controlled station), as a fuzzer plays it:

```python
gen = FrameGen(random.Random(seed), ca=201, mapped=frozenset({0x21, 0x23}), foreign=[1, 202])
kind, frame, i_frames = gen.mid(ns, nr)     # inside a started link: the link survives it
kind, frame = gen.killer(ns, nr)             # the connection's last frame: breaks the link (mostly)
kind, frame = gen.garbage()                  # before STARTDT: never brings the link up
```

Frames
- Valid APCI (I, S, U) around valid ASDUs of the charger-side types (monitoring types with and
  without time tags, end of initialisation, confirmations of command and system types), and their
  mutations: random bytes, bit flips, truncation, over-long length octets and over-long ASDUs, wrong
  N(S)/N(R), SQ and object-count lies (the M_ME_NC_1 SQ=1 I-frame that declares 20 objects and
  carries 2), foreign common addresses, unknown and private types (128–255), U-frames at the wrong
  time, the `68 11 "REG…"` registration frame some chargers send before STARTDT, and (for the
  caller) connect-and-close.
- `mid` frames are well framed (length octet = what follows, N(S) = the expected one): the link
  survives them, so one connection carries many. A station's own common address only ever goes with
  information object addresses its table does not map (`mapped`), unless the ASDU is unreadable
  (poison: mapped addresses with values that would start a transaction, under a lie that must make
  the receiver drop them). `applies_mapped` is the oracle: an independent reading of an ASDU that
  says whether a correct receiver would apply a mapped point of the station; every frame this
  module hands out is checked with it (and `accepted_asdus` for frames that break the framing) and
  drawn again when it would. So a station that gets only these frames has nothing to report to the
  CSMS but its link state.
- `garbage` frames never contain a well-framed STARTDT con (`brings_link_up`), so a connection that
  sends only them is never started and never identified.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Final

START: Final = 0x68
MAX_LENGTH: Final = 253  # the APDU length octet's largest legal value
MAX_ASDU: Final = MAX_LENGTH - 4
STARTDT_ACT, STARTDT_CON = 0x07, 0x0B
STOPDT_ACT, STOPDT_CON = 0x13, 0x23
TESTFR_ACT, TESTFR_CON = 0x43, 0x83
MODULO: Final = 32768
MAX_IOA: Final = 0xFFFFFF

# Element size after the 3-octet IOA (information elements and time tag) of the charger-side types.
ELEMENT: Final[dict[int, int]] = {
    1: 1, 2: 4, 3: 1, 4: 4, 5: 2, 6: 5, 7: 5, 8: 8, 9: 3, 10: 6, 11: 3, 12: 6, 13: 5, 14: 8,
    15: 5, 16: 8, 21: 2, 30: 8, 31: 8, 32: 9, 33: 12, 34: 10, 35: 10, 36: 12, 37: 12,
    70: 1,  # M_EI_NA_1
    45: 1, 46: 1, 47: 1, 48: 3, 49: 3, 50: 5,  # command confirmations
    100: 1, 101: 1, 103: 7, 104: 2, 105: 1, 107: 9,  # system confirmations
}  # fmt: skip
MONITORING: Final = frozenset(t for t in ELEMENT if t < 45)
TIME7: Final = frozenset({30, 31, 32, 33, 34, 35, 36, 37, 103, 107})
UNKNOWN_STANDARD: Final = tuple(t for t in range(1, 128) if t not in ELEMENT)
_DUI = struct.Struct("<BBBBH")  # type, VSQ, COT, originator, common address
_APCI = struct.Struct("<BBHH")

KILLERS: Final = (
    "wrong-ns",
    "wrong-nr",
    "bad-s-frame",
    "over-long-length",
    "short-length",
    "bad-start",
    "apci-bit-flip",
    "u-wrong-time",
    "unknown-u",
    "random-bytes",
    "truncated-frame",
    "empty-i-frame",
    "close",
)
GARBAGE: Final = (
    "reg-frame",
    "i-before-startdt",
    "random-bytes",
    "over-long-length",
    "short-length",
    "bad-start",
    "u-wrong-time",
    "unknown-u",
    "apci-bit-flip",
    "truncated-frame",
    "empty-i-frame",
    "bad-s-frame",
)
MID: Final = (
    ("valid", 30),
    ("foreign-ca", 10),
    ("sq-lie", 8),
    ("count-lie", 8),
    ("sq-overflow", 2),
    ("truncated-asdu", 6),
    ("over-long-asdu", 6),
    ("private-type", 5),
    ("unknown-type", 3),
    ("random-asdu", 6),
    ("bit-flip", 10),
    ("wrong-cot", 4),
    ("confirmation", 4),
    ("u-unsolicited", 3),
    ("s-frame", 3),
)


def i_frame(ns: int, nr: int, asdu: bytes) -> bytes:
    return _APCI.pack(START, len(asdu) + 4, (ns % MODULO) << 1, (nr % MODULO) << 1) + asdu


def s_frame(nr: int) -> bytes:
    return _APCI.pack(START, 4, 0x01, (nr % MODULO) << 1)


def u_frame(code: int) -> bytes:
    return bytes((START, 4, code, 0, 0, 0))


def asdu(
    type_id: int,
    ca: int,
    objects: bytes,
    count: int,
    *,
    sq: bool = False,
    cot: int = 3,
    originator: int = 0,
) -> bytes:
    return _DUI.pack(type_id, (0x80 if sq else 0) | (count & 0x7F), cot, originator, ca) + objects


def ioa_bytes(ioa: int) -> bytes:
    return ioa.to_bytes(3, "little")


# --- the oracle: what a correct receiver would do with these bytes ---------------------------------


def asdu_ioas(data: bytes) -> tuple[int, int, list[int]] | None:
    """(type id, common address, IOAs) of a readable ASDU of a type in ELEMENT; None when a correct
    receiver must drop it (too short, 0 objects, length not exactly what type/SQ/count need, SQ
    addresses past the last one) or does not know the type."""
    if len(data) < _DUI.size:
        return None
    type_id, vsq, _cot, _orig, ca = _DUI.unpack_from(data)
    size = ELEMENT.get(type_id)
    count = vsq & 0x7F
    if size is None or count == 0:
        return None
    body = len(data) - _DUI.size
    if vsq & 0x80:
        if body != 3 + count * size:
            return None
        first = int.from_bytes(data[6:9], "little")
        if first + count - 1 > MAX_IOA:
            return None
        return type_id, ca, list(range(first, first + count))
    if body != count * (3 + size):
        return None
    step = 3 + size
    return (
        type_id,
        ca,
        [int.from_bytes(data[6 + k * step : 9 + k * step], "little") for k in range(count)],
    )


def applies_mapped(data: bytes, ca: int, mapped: frozenset[int]) -> bool:
    """Would a correct receiver apply a point of the station `ca` whose table maps `mapped`?"""
    read = asdu_ioas(data)
    if read is None:
        return False
    type_id, common_address, ioas = read
    return common_address == ca and type_id in MONITORING and any(i in mapped for i in ioas)


def frames_of(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset, length octet) of each frame a receiver would delimit, until the framing breaks."""
    pos, n = 0, len(data)
    while pos + 1 < n and data[pos] == START and 4 <= data[pos + 1] <= MAX_LENGTH:
        yield pos, data[pos + 1]
        pos += 2 + data[pos + 1]


def accepted_asdus(data: bytes, ns: int) -> list[bytes]:
    """The ASDUs of complete I-frames a lenient receiver expecting N(S)=`ns` would accept from `data`
    (a superset of what a strict one accepts: N(R) and the rest are not checked)."""
    found = []
    for pos, length in frames_of(data):
        end = pos + 2 + length
        if end > len(data):
            break
        if data[pos + 2] & 1 == 0 and length > 4:
            if (struct.unpack_from("<H", data, pos + 2)[0] >> 1) != ns % MODULO:
                break
            found.append(data[pos + 6 : end])
            ns += 1
    return found


def brings_link_up(data: bytes) -> bool:
    """Could `data`, sent before STARTDT con, contain a well-framed STARTDT con (conservatively)?"""
    return any(data[pos + 2] == STARTDT_CON for pos, _ in frames_of(data) if pos + 2 < len(data))


# --- the generator ---------------------------------------------------------------------------------


def weighted(choices: Iterable[tuple[str, int]]) -> tuple[list[str], list[int]]:
    pairs = list(choices)
    return [k for k, _ in pairs], [w for _, w in pairs]


class FrameGen:
    """Frames for one station whose common address is `ca` (see the module docstring)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        ca: int,
        mapped: frozenset[int],
        foreign: list[int],
        poison: list[tuple[int, int, bytes]] | None = None,
    ) -> None:
        self.rng = rng
        self.ca = ca
        self.mapped = mapped
        self._foreign = sorted({*foreign, 0, 0xFFFF, 0xFFFE, 2})
        # (type id, IOA, element) triples that would start or end a transaction if applied
        self.poison = poison or [(1, i, b"\x01") for i in sorted(mapped)[:4]]
        self._mid_kinds, self._mid_weights = weighted(MID)
        self.redrawn = 0  # frames drawn again because the oracle said they would apply a point

    @property
    def foreign(self) -> list[int]:
        """Common addresses other than the station's (`ca` may change: a client's identity)."""
        return [c for c in self._foreign if c != self.ca]

    # -- pieces --

    def _time7(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.5:
            t = time.gmtime(time.time() + rng.uniform(-1e8, 1e8))
            ms = t.tm_sec * 1000 + rng.randrange(1000)
            return struct.pack(
                "<HBBBBB",
                ms,
                t.tm_min,
                t.tm_hour,
                t.tm_mday | (t.tm_wday + 1) << 5,
                t.tm_mon,
                t.tm_year % 100,
            )
        return rng.randbytes(7)  # month 0, hour 31, minute 63, IV…: named instants or none

    def _element(self, type_id: int) -> bytes:
        rng = self.rng
        size = ELEMENT[type_id]
        if type_id in TIME7:
            return rng.randbytes(size - 7) + self._time7()
        if type_id in (13, 14, 36, 50) and rng.random() < 0.3:  # floats: NaN, infinities, huge
            special = rng.choice((float("nan"), float("inf"), float("-inf"), 3.4e38, -0.0))
            return struct.pack("<f", special) + rng.randbytes(size - 4)
        return rng.randbytes(size)

    def _free_ioa(self) -> int:
        while True:
            ioa = self.rng.choice((self.rng.randrange(1, 0x10000), self.rng.randrange(MAX_IOA + 1)))
            if ioa not in self.mapped:
                return ioa

    def valid_asdu(self, type_id: int | None = None, ca: int | None = None) -> bytes:
        """A readable ASDU of a charger-side type at addresses the table does not map."""
        rng = self.rng
        type_id = type_id if type_id is not None else rng.choice(tuple(ELEMENT))
        size = ELEMENT[type_id]
        limit = (MAX_ASDU - 6 - 3) // size
        sq = rng.random() < 0.3 and limit >= 2
        if sq:
            count = rng.randint(1, min(limit, 127))
            while True:
                first = rng.randrange(0, MAX_IOA - count + 2)
                if not any(i in self.mapped for i in range(first, first + count)):
                    break
            body = ioa_bytes(first) + b"".join(self._element(type_id) for _ in range(count))
        else:
            count = rng.randint(1, min((MAX_ASDU - 6) // (3 + size), 127))
            body = b"".join(
                ioa_bytes(self._free_ioa()) + self._element(type_id) for _ in range(count)
            )
        cot = rng.choice((3, 3, 3, 20, 5, 1, 2, 37, 7, 10))
        return asdu(type_id, self.ca if ca is None else ca, body, count, sq=sq, cot=cot)

    def poison_asdu(self, ca: int, count: int | None = None, sq: bool = False) -> tuple[bytes, int]:
        """Mapped addresses with values that would change the station: (ASDU, objects carried)."""
        rng = self.rng
        type_id, ioa, element = rng.choice(self.poison)
        n = count if count is not None else rng.randint(1, 4)
        if sq:
            body = ioa_bytes(ioa) + element * n
        else:
            body = b"".join(ioa_bytes(ioa) + element for _ in range(n))
        return asdu(type_id, ca, body, n, sq=sq, cot=3), n

    # -- mid-connection frames --

    def mid(self, ns: int, nr: int) -> tuple[str, bytes, int]:
        """(kind, frame, I-frames in it): a well-framed frame the link survives."""
        kind = self.rng.choices(self._mid_kinds, self._mid_weights)[0]
        for _ in range(50):
            frame = self._mid(kind, ns, nr)
            if isinstance(frame, bytes):
                return kind, frame, 0
            if not applies_mapped(frame[1], self.ca, self.mapped):
                return kind, i_frame(ns, nr, frame[1]), 1
            self.redrawn += 1
        return "valid", i_frame(ns, nr, self.valid_asdu(70)), 1

    def _mid(self, kind: str, ns: int, nr: int) -> bytes | tuple[None, bytes]:
        rng = self.rng
        if kind == "u-unsolicited":
            return u_frame(rng.choice((STARTDT_CON, STOPDT_CON, TESTFR_CON, TESTFR_ACT)))
        if kind == "s-frame":
            return s_frame(nr)
        return None, self._mid_asdu(kind)

    def _mid_asdu(self, kind: str) -> bytes:
        rng = self.rng
        if kind == "valid":
            return self.valid_asdu()
        if kind == "foreign-ca":
            if rng.random() < 0.5:
                return self.poison_asdu(rng.choice(self.foreign))[0]
            return self.valid_asdu(ca=rng.choice(self.foreign))
        if kind == "sq-lie":
            if rng.random() < 0.3:  # the frame that crashed c104/lib60870: 20 declared, 2 carried
                body = ioa_bytes(rng.choice(sorted(self.mapped))) + struct.pack(
                    "<fBfB", 1.0, 0, 2.0, 0
                )
                return asdu(13, self.ca, body, 20, sq=True)
            data, _ = self.poison_asdu(self.ca, count=rng.randint(2, 4), sq=rng.random() < 0.5)
            return data[:1] + bytes((data[1] ^ 0x80,)) + data[2:]  # SQ flipped, count kept
        if kind == "count-lie":
            data, n = self.poison_asdu(self.ca, sq=rng.random() < 0.5)
            lie = rng.choice(
                [c for c in (0, n - 1, n + 1, n + 2, 127, rng.randint(0, 127)) if c != n and c >= 0]
            )
            return data[:1] + bytes(((data[1] & 0x80) | lie,)) + data[2:]
        if kind == "sq-overflow":  # SQ=1 running past the last IOA
            count = rng.randint(2, 20)
            first = MAX_IOA - rng.randint(0, count - 2)
            body = ioa_bytes(first) + b"\x01" * count
            return asdu(1, self.ca, body, count, sq=True)
        if kind == "truncated-asdu":
            data = self.poison_asdu(self.ca)[0] if rng.random() < 0.5 else self.valid_asdu()
            return data[: rng.randint(1, len(data) - 1)]
        if kind == "over-long-asdu":
            data = self.poison_asdu(self.ca)[0] if rng.random() < 0.5 else self.valid_asdu()
            room = MAX_ASDU - len(data)
            return data + rng.randbytes(rng.randint(1, max(1, room))) if room > 0 else data[:-1]
        if kind == "private-type":
            count = rng.randint(0, 127) | (0x80 if rng.random() < 0.3 else 0)
            ca = self.ca if rng.random() < 0.7 else rng.choice(self.foreign)
            return _DUI.pack(
                rng.randint(128, 255), count, rng.randrange(256), 0, ca
            ) + rng.randbytes(rng.randint(0, 60))
        if kind == "unknown-type":
            count = rng.randint(0, 127)
            return _DUI.pack(rng.choice(UNKNOWN_STANDARD), count, 3, 0, self.ca) + rng.randbytes(
                rng.randint(0, 40)
            )
        if kind == "random-asdu":
            return rng.randbytes(rng.randint(1, MAX_ASDU))
        if kind == "bit-flip":
            data = bytearray(
                self.poison_asdu(self.ca)[0] if rng.random() < 0.5 else self.valid_asdu()
            )
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return bytes(data)
        if kind == "wrong-cot":
            data = bytearray(self.valid_asdu())
            data[2] = rng.choice((0, 44, 45, 46, 47, 63, rng.randrange(256)))
            return bytes(data)
        if kind == "confirmation":  # command/system confirmations nobody asked for
            type_id = rng.choice((45, 46, 47, 48, 49, 50, 100, 101, 103, 104, 105, 107))
            data = bytearray(self.valid_asdu(type_id))
            data[2] = rng.choice((7, 10, 7 | 0x40, 44, 47))
            if rng.random() < 0.5:  # at an address the table maps (a command point, a point)
                data[6:9] = ioa_bytes(rng.choice(sorted(self.mapped)))
            return bytes(data)
        raise ValueError(kind)

    # -- frames that end a connection --

    def killer(self, ns: int, nr: int) -> tuple[str, bytes]:
        """(kind, bytes): what the connection sends last; it breaks the link (or is a close)."""
        kind = self.rng.choice(KILLERS)
        for _ in range(50):
            data = self._killer(kind, ns, nr)
            if not any(applies_mapped(a, self.ca, self.mapped) for a in accepted_asdus(data, ns)):
                return kind, data
            self.redrawn += 1
        return "close", b""

    def _killer(self, kind: str, ns: int, nr: int) -> bytes:
        rng = self.rng
        if kind == "wrong-ns":
            return i_frame(ns + rng.choice((1, 2, -1, 100, MODULO // 2)), nr, self.valid_asdu())
        if kind == "wrong-nr":
            return i_frame(
                ns, nr + rng.choice((50, 1000, MODULO // 2, MODULO - 1000)), self.valid_asdu()
            )
        if kind == "close":
            return b""
        return self._broken(kind, ns, nr)

    def _broken(self, kind: str, ns: int, nr: int) -> bytes:
        """Frames no receiver may accept, at any time."""
        rng = self.rng
        if kind == "bad-s-frame":
            choice = rng.randrange(3)
            if choice == 0:
                return bytes((START, 4, 0x01, 0x00)) + struct.pack(
                    "<H", ((nr + rng.randint(100, 20000)) % MODULO) << 1
                )
            if choice == 1:
                return bytes((START, 4, 0x01, 0x00, 0x01, 0x00))  # reserved bit
            return bytes((START, 6, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00))  # S-frame with a payload
        if kind == "over-long-length":
            length = rng.randint(MAX_LENGTH + 1, 255)
            return bytes((START, length)) + rng.randbytes(rng.randint(0, length + 10))
        if kind == "short-length":
            return bytes((START, rng.randint(0, 3))) + rng.randbytes(rng.randint(0, 8))
        if kind == "bad-start":
            first = rng.choice([b for b in range(256) if b != START])
            return bytes((first,)) + rng.randbytes(rng.randint(0, 40))
        if kind == "apci-bit-flip":
            data = bytearray(i_frame(ns, nr, self.valid_asdu()))
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(6)] ^= 1 << rng.randrange(8)
            return bytes(data)
        if kind == "u-wrong-time":
            return u_frame(rng.choice((STARTDT_ACT, STOPDT_ACT)))
        if kind == "unknown-u":
            if rng.random() < 0.5:  # a U-frame of length 6, or a known code with the reserved bit
                return bytes((START, 6, TESTFR_CON, 0, 0, 0, 0, 0))
            code = rng.choice(
                [c for c in range(3, 256, 4) if c not in (7, 0x0B, 0x13, 0x23, 0x43, 0x83)]
            )
            return bytes((START, 4, code, 0, 0, 0))
        if kind == "random-bytes":
            return rng.randbytes(rng.randint(1, 300))
        if kind == "truncated-frame":
            data = i_frame(ns, nr, self.valid_asdu())
            return data[: rng.randint(1, len(data) - 1)]
        if kind == "empty-i-frame":
            return _APCI.pack(START, 4, (ns % MODULO) << 1, (nr % MODULO) << 1)
        if kind == "reg-frame":
            ident = rng.choice((b"REG", b"REG:", b"REG ")) + str(rng.randrange(10**14)).encode()
            ident = (ident + b"\x00" * 17)[:17]
            return bytes((START, 0x11)) + ident
        if kind == "i-before-startdt":
            return i_frame(0, 0, self.valid_asdu(70))
        raise ValueError(kind)

    # -- frames before STARTDT that must never start the link --

    def garbage(self) -> tuple[str, bytes]:
        kind = self.rng.choice(GARBAGE)
        for _ in range(50):
            data = self._broken(kind, 0, 0)
            if not brings_link_up(data):
                return kind, data
            self.redrawn += 1
        return "bad-start", b"\x00"

    def greeting(self, ns: int, nr: int, ca: int) -> bytes:
        """End of initialisation (M_EI_NA_1, COT 4) from common address `ca`: what a dialling-in
        charger sends first."""
        return i_frame(ns, nr, asdu(70, ca, ioa_bytes(0) + b"\x00", 1, cot=4))


class Incoming:
    """The bridge's bytes as the charger reads them: I-frames counted (for N(R)), U-frames seen."""

    def __init__(self) -> None:
        self._buf = b""
        self.i_frames = 0
        self.u_frames: list[int] = []
        self.broken = False

    def feed(self, data: bytes) -> list[int]:
        """The U-frame control octets in `data` (in order)."""
        buf = self._buf + data
        codes = []
        pos = 0
        while pos + 2 <= len(buf):
            if buf[pos] != START or buf[pos + 1] < 4:
                self.broken = True
                break
            end = pos + 2 + buf[pos + 1]
            if end > len(buf):
                break
            c1 = buf[pos + 2]
            if c1 & 1 == 0:
                self.i_frames += 1
            elif c1 & 3 == 3:
                codes.append(c1)
            pos = end
        self._buf = buf[pos:] if not self.broken else b""
        self.u_frames += codes
        return codes
