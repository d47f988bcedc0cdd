"""The IEC 60870-5-101/104 ASDU codec: bytes from the type id onward ↔ `Asdu`, sans-IO and pure.

Rules
- `decode_asdu` never raises for any byte string: it returns an `Asdu` or an `AsduError` saying what
  is wrong and at which byte offset (0..len(data)). Everything is checked: the data unit identifier is
  complete, the VSQ number is 1..127, the length is exactly what the type, SQ and number need, and
  with SQ=1 the last address (first IOA + number − 1) still fits the IOA field.
- `encode_asdu` raises ValueError for anything it cannot put on the wire unchanged: a value out of
  range, a quality or qualifier bit the element has no room for, a time tag missing or of the wrong
  kind, SQ=1 with addresses that do not follow each other. What it accepts, `decode_asdu` reads back
  equal (normalized values are rounded to the nearest 1/32768, float values to float32).
- The 6-byte APCI is not part of this module (`bridge.stations.iec104.apci`); the field sizes of the data unit
  identifier and the IOA are parameters of the link (`AsduFormat`, IEC 104 standard: 2/2/3). An
  invalid `AsduFormat` is a configuration error and raises ValueError on both sides.
- Types the codec does not know (including the private range 128..255) decode to an `Asdu` with
  `raw` = the bytes after the data unit identifier and `raw_count` = the VSQ number, `objects` empty;
  they encode back byte for byte.
- Element mapping (value / quality / qualifier): quality holds the quality bits exactly as on the wire
  with the value bits and reserved bits masked out (SIQ, DIQ: & 0xF0; QDS: whole byte; BCR: & 0xE0);
  qualifier holds the command qualifier (SCO/DCO/RCO & 0xFC, QOS, QOI, QCC, QRP, COI), the VTI
  transient bit or the BCR sequence number. Reserved bits (SIQ/DIQ bits 1..3, SCO bit 1) are ignored
  on reading and sent as 0. Time tags are `Cp56`/`Cp24` (`bridge.stations.iec104.timetags`).
- Speed: one struct pass over the objects per field group (IOAs, payload, time tags) and one list
  comprehension per ASDU; no function call per element. Objects are built with `tuple.__new__`,
  which is what a NamedTuple's constructor does, without its Python-level argument handling.
- `single_point_reader(fmt)` reads the commonest spontaneous ASDU, one monitoring object without a
  time tag, in one struct call and without an `Asdu` (the session's hot path): the same type id,
  common address, IOA, value and quality as `decode_asdu`, or None for anything else.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NamedTuple, cast

from bridge.stations.iec104.timetags import Cp24, Cp56, cp56_from_epoch, cp56_to_epoch

__all__ = [
    "KNOWN_TYPES",
    "STANDARD",
    "TYPE_IDS",
    "TYPE_NAMES",
    "Asdu",
    "AsduError",
    "AsduFormat",
    "Cp24",
    "Cp56",
    "InfoObject",
    "cp56_from_epoch",
    "cp56_to_epoch",
    "decode_asdu",
    "encode_asdu",
    "single_point_reader",
]


class AsduFormat(NamedTuple):
    """Field sizes of the data unit identifier and the IOA: parameters of the link."""

    cot_size: int = 2  # 1 | 2 (with 2, the second byte is the originator address)
    ca_size: int = 2  # 1 | 2
    ioa_size: int = 3  # 1 | 2 | 3


STANDARD: Final = AsduFormat()


class InfoObject(NamedTuple):
    """One information object: address, value, quality bits, time tag, qualifier (see the table)."""

    ioa: int
    value: bool | int | float | None = None
    quality: int = 0
    time: Cp56 | Cp24 | None = None
    qualifier: int = 0


class Asdu(NamedTuple):
    """One ASDU. Unknown types carry their bytes after the data unit identifier in `raw`."""

    type_id: int
    cot: int  # cause of transmission, 0..63
    common_address: int
    objects: tuple[InfoObject, ...] = ()
    sequence: bool = False  # SQ=1: consecutive IOAs, only the first one on the wire
    negative: bool = False  # P/N
    test: bool = False  # T
    originator: int = 0  # only with cot_size 2
    raw: bytes = b""  # unknown types: the bytes after the data unit identifier
    raw_count: int = 0  # unknown types: the VSQ number of objects


class AsduError(NamedTuple):
    """Why a byte string is not an ASDU, and the offset within it where it went wrong."""

    what: str
    offset: int


# Element shapes: how the payload fields (after the IOA, before the time tag) map to InfoObject.
_SP, _DP, _ST, _VQ, _NQ, _IT, _N, _SCO, _DCO, _NQOS, _VQOS, _QUAL, _NONE, _UINT = range(14)

# type id: (name, shape, payload struct format, time tag size 0 | 3 | 7)
_TYPES: Final[dict[int, tuple[str, int, str, int]]] = {
    1: ("M_SP_NA_1", _SP, "B", 0),
    2: ("M_SP_TA_1", _SP, "B", 3),
    3: ("M_DP_NA_1", _DP, "B", 0),
    4: ("M_DP_TA_1", _DP, "B", 3),
    5: ("M_ST_NA_1", _ST, "BB", 0),
    6: ("M_ST_TA_1", _ST, "BB", 3),
    7: ("M_BO_NA_1", _VQ, "IB", 0),
    8: ("M_BO_TA_1", _VQ, "IB", 3),
    9: ("M_ME_NA_1", _NQ, "hB", 0),
    10: ("M_ME_TA_1", _NQ, "hB", 3),
    11: ("M_ME_NB_1", _VQ, "hB", 0),
    12: ("M_ME_TB_1", _VQ, "hB", 3),
    13: ("M_ME_NC_1", _VQ, "fB", 0),
    14: ("M_ME_TC_1", _VQ, "fB", 3),
    15: ("M_IT_NA_1", _IT, "iB", 0),
    16: ("M_IT_TA_1", _IT, "iB", 3),
    21: ("M_ME_ND_1", _N, "h", 0),
    30: ("M_SP_TB_1", _SP, "B", 7),
    31: ("M_DP_TB_1", _DP, "B", 7),
    32: ("M_ST_TB_1", _ST, "BB", 7),
    33: ("M_BO_TB_1", _VQ, "IB", 7),
    34: ("M_ME_TD_1", _NQ, "hB", 7),
    35: ("M_ME_TE_1", _VQ, "hB", 7),
    36: ("M_ME_TF_1", _VQ, "fB", 7),
    37: ("M_IT_TB_1", _IT, "iB", 7),
    45: ("C_SC_NA_1", _SCO, "B", 0),
    46: ("C_DC_NA_1", _DCO, "B", 0),
    47: ("C_RC_NA_1", _DCO, "B", 0),
    48: ("C_SE_NA_1", _NQOS, "hB", 0),
    49: ("C_SE_NB_1", _VQOS, "hB", 0),
    50: ("C_SE_NC_1", _VQOS, "fB", 0),
    58: ("C_SC_TA_1", _SCO, "B", 7),
    59: ("C_DC_TA_1", _DCO, "B", 7),
    60: ("C_RC_TA_1", _DCO, "B", 7),
    61: ("C_SE_TA_1", _NQOS, "hB", 7),
    62: ("C_SE_TB_1", _VQOS, "hB", 7),
    63: ("C_SE_TC_1", _VQOS, "fB", 7),
    70: ("M_EI_NA_1", _QUAL, "B", 0),
    100: ("C_IC_NA_1", _QUAL, "B", 0),
    101: ("C_CI_NA_1", _QUAL, "B", 0),
    102: ("C_RD_NA_1", _NONE, "", 0),
    103: ("C_CS_NA_1", _NONE, "", 7),
    104: ("C_TS_NA_1", _UINT, "H", 0),
    105: ("C_RP_NA_1", _QUAL, "B", 0),
    107: ("C_TS_TA_1", _UINT, "H", 7),
}

TYPE_IDS: Final[dict[str, int]] = {name: tid for tid, (name, *_) in _TYPES.items()}
TYPE_NAMES: Final[dict[int, str]] = {tid: name for name, tid in TYPE_IDS.items()}
KNOWN_TYPES: Final[frozenset[int]] = frozenset(_TYPES)

_new = tuple.__new__
_NO_TIMES: Final = itertools.repeat(None)

# ---------------------------------------------------------------------------------------- decoding
_Rows = Iterator[tuple[Any, ...]]
_Ioas = Iterable[int]
_Times = Iterable[Cp56 | Cp24 | None]
_Shape = Callable[[_Ioas, _Rows, _Times], list[InfoObject]]
_IO = InfoObject


def _d_sp(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, b & 1 == 1, b & 0xF0, t, 0))
        for i, (b,), t in zip(ioas, rows, times, strict=False)
    ]


def _d_dp(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, b & 3, b & 0xF0, t, 0)) for i, (b,), t in zip(ioas, rows, times, strict=False)
    ]


def _d_st(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    # VTI bits 0..6 are a 7-bit two's complement number; bit 7 is the transient flag.
    return [
        _new(_IO, (i, (v & 0x3F) - (v & 0x40), q, t, v >> 7))
        for i, (v, q), t in zip(ioas, rows, times, strict=False)
    ]


def _d_vq(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [_new(_IO, (i, v, q, t, 0)) for i, (v, q), t in zip(ioas, rows, times, strict=False)]


def _d_nq(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, v / 32768, q, t, 0)) for i, (v, q), t in zip(ioas, rows, times, strict=False)
    ]


def _d_it(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, v, b & 0xE0, t, b & 0x1F))
        for i, (v, b), t in zip(ioas, rows, times, strict=False)
    ]


def _d_n(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, v / 32768, 0, t, 0)) for i, (v,), t in zip(ioas, rows, times, strict=False)
    ]


def _d_sco(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, b & 1 == 1, 0, t, b & 0xFC))
        for i, (b,), t in zip(ioas, rows, times, strict=False)
    ]


def _d_dco(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, b & 3, 0, t, b & 0xFC)) for i, (b,), t in zip(ioas, rows, times, strict=False)
    ]


def _d_nqos(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [
        _new(_IO, (i, v / 32768, 0, t, q)) for i, (v, q), t in zip(ioas, rows, times, strict=False)
    ]


def _d_vqos(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [_new(_IO, (i, v, 0, t, q)) for i, (v, q), t in zip(ioas, rows, times, strict=False)]


def _d_qual(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [_new(_IO, (i, None, 0, t, q)) for i, (q,), t in zip(ioas, rows, times, strict=False)]


def _d_none(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [_new(_IO, (i, None, 0, t, 0)) for i, t in zip(ioas, times, strict=False)]


def _d_uint(ioas: _Ioas, rows: _Rows, times: _Times) -> list[InfoObject]:
    return [_new(_IO, (i, v, 0, t, 0)) for i, (v,), t in zip(ioas, rows, times, strict=False)]


_DECODE_SHAPES: Final[dict[int, _Shape]] = {
    _SP: _d_sp,
    _DP: _d_dp,
    _ST: _d_st,
    _VQ: _d_vq,
    _NQ: _d_nq,
    _IT: _d_it,
    _N: _d_n,
    _SCO: _d_sco,
    _DCO: _d_dco,
    _NQOS: _d_nqos,
    _VQOS: _d_vqos,
    _QUAL: _d_qual,
    _NONE: _d_none,
    _UINT: _d_uint,
}


def _cp56_list(rows: _Rows) -> list[Cp56]:
    return [
        _new(
            Cp56,
            (
                ms,
                mi & 63,
                h & 31,
                d & 31,
                mo & 15,
                y & 127,
                d >> 5,
                mi > 127,
                h > 127,
                mi & 64 == 64,
            ),
        )
        for ms, mi, h, d, mo, y in rows
    ]


def _cp24_list(rows: _Rows) -> list[Cp24]:
    return [_new(Cp24, (ms, mi & 0x3F, mi > 127, mi & 0x40 == 0x40)) for ms, mi in rows]


def _fmt(skip: int, body: str, tail: int) -> struct.Struct:
    return struct.Struct("<" + (f"{skip}x" if skip else "") + body + (f"{tail}x" if tail else ""))


_IOA_FMT: Final = {1: "B", 2: "H", 3: "HB"}
_TIME_FMT: Final = {3: "HB", 7: "HBBBBB"}


class _Decoder(NamedTuple):
    name: str
    shape: _Shape
    time_size: int
    element: int  # bytes per object with SQ=0 (IOA included)
    step: int  # bytes per object with SQ=1 (IOA excluded)
    ioas0: struct.Struct  # SQ=0: the IOA of each object
    rows0: struct.Struct | None  # SQ=0: the payload of each object (None: no payload)
    times0: struct.Struct | None  # SQ=0: the time tag of each object
    rows1: struct.Struct | None  # SQ=1, after the first IOA
    times1: struct.Struct | None


def _decoder(ioa_size: int, name: str, shape: int, payload: str, time_size: int) -> _Decoder:
    pay = struct.calcsize("<" + payload)
    step = pay + time_size
    element = ioa_size + step
    tfmt = _TIME_FMT.get(time_size)
    return _Decoder(
        name=name,
        shape=_DECODE_SHAPES[shape],
        time_size=time_size,
        element=element,
        step=step,
        ioas0=_fmt(0, _IOA_FMT[ioa_size], step),
        rows0=_fmt(ioa_size, payload, time_size) if payload else None,
        times0=_fmt(ioa_size + pay, tfmt, 0) if tfmt else None,
        rows1=_fmt(0, payload, time_size) if payload else None,
        times1=_fmt(pay, tfmt, 0) if tfmt else None,
    )


_DECODERS: Final[dict[int, dict[int, _Decoder]]] = {
    size: {tid: _decoder(size, *spec) for tid, spec in _TYPES.items()} for size in (1, 2, 3)
}


class _Layout(NamedTuple):
    header: struct.Struct  # type, VSQ, COT, [originator], CA
    dui: int  # size of the data unit identifier
    with_originator: bool
    ioa_size: int
    max_ioa: int
    max_ca: int
    decoders: dict[int, _Decoder]


def _layout(fmt: AsduFormat) -> _Layout:
    cot, ca, ioa = fmt
    header = "<BBB" + ("B" if cot == 2 else "") + ("H" if ca == 2 else "B")
    return _Layout(
        struct.Struct(header),
        2 + cot + ca,
        cot == 2,
        ioa,
        (1 << (8 * ioa)) - 1,
        (1 << (8 * ca)) - 1,
        _DECODERS[ioa],
    )


_LAYOUTS: Final[dict[AsduFormat, _Layout]] = {
    AsduFormat(c, a, i): _layout(AsduFormat(c, a, i))
    for c in (1, 2)
    for a in (1, 2)
    for i in (1, 2, 3)
}


def _layout_of(fmt: AsduFormat) -> _Layout:
    layout = _LAYOUTS.get(fmt)
    if layout is None:
        raise ValueError(f"no such ASDU format {fmt!r}: cot_size 1|2, ca_size 1|2, ioa_size 1|2|3")
    return layout


def decode_asdu(data: bytes, fmt: AsduFormat = STANDARD) -> Asdu | AsduError:
    """Decode one ASDU (type id byte onward); never raises for any `data`."""
    layout = _LAYOUTS.get(fmt) or _layout_of(fmt)
    size = len(data)
    dui = layout.dui
    if size < dui:
        if size == 0:
            return AsduError("empty ASDU", 0)
        return AsduError(f"{size} bytes, shorter than a data unit identifier ({dui} bytes)", size)
    if layout.with_originator:
        type_id, vsq, cot, originator, ca = layout.header.unpack_from(data)
    else:
        type_id, vsq, cot, ca = layout.header.unpack_from(data)
        originator = 0
    count = vsq & 0x7F
    sq = vsq > 127
    decoder = layout.decoders.get(type_id)
    if count == 0:
        name = decoder.name if decoder else f"type {type_id}"
        return AsduError(f"{name} declares 0 objects (VSQ {vsq:#04x})", 1)
    if decoder is None:
        return _new(
            Asdu,
            (
                type_id,
                cot & 63,
                ca,
                (),
                sq,
                cot & 64 == 64,
                cot > 127,
                originator,
                bytes(data[dui:]),
                count,
            ),
        )
    ioa_size = layout.ioa_size
    needed = dui + (ioa_size + count * decoder.step if sq else count * decoder.element)
    if size != needed:
        return AsduError(
            f"{decoder.name} with SQ={int(sq)} declares {count} object{'s' * (count != 1)} in {size} bytes"
            f" (needs {needed})",
            min(size, needed),
        )
    ioas: _Ioas
    if sq:
        first = int.from_bytes(data[dui : dui + ioa_size], "little")
        if first + count - 1 > layout.max_ioa:
            return AsduError(
                f"{decoder.name} with SQ=1 runs from IOA {first} past the last address"
                f" {layout.max_ioa} ({count} objects)",
                dui,
            )
        ioas = range(first, first + count)
        body = data[dui + ioa_size :]
        rows_s, times_s = decoder.rows1, decoder.times1
    else:
        body = data[dui:]
        if ioa_size == 3:
            ioas = [lo | hi << 16 for lo, hi in decoder.ioas0.iter_unpack(body)]
        else:
            ioas = [i for (i,) in decoder.ioas0.iter_unpack(body)]
        rows_s, times_s = decoder.rows0, decoder.times0
    rows: _Rows = rows_s.iter_unpack(body) if rows_s is not None else iter(())
    times: _Times = _NO_TIMES
    if times_s is not None:
        if decoder.time_size == 7:
            times = _cp56_list(times_s.iter_unpack(body))
        else:
            times = _cp24_list(times_s.iter_unpack(body))
    objects = tuple(decoder.shape(ioas, rows, times))
    return _new(
        Asdu,
        (type_id, cot & 0x3F, ca, objects, sq, cot & 0x40 == 0x40, cot > 127, originator, b"", 0),
    )


# ------------------------------------------------------------------- one point without a time tag

# Monitoring types without a time tag whose single object the session reads without building an
# `Asdu`: (value, quality) from the payload fields, exactly as `decode_asdu`'s shapes do.
_SINGLE_SHAPES: Final = frozenset({_SP, _DP, _VQ, _NQ, _IT})


def single_point_reader(
    fmt: AsduFormat = STANDARD,
) -> Callable[[bytes], tuple[int, int, int, bool | int | float, int] | None]:
    """A reader for the commonest spontaneous ASDU, one monitoring object without a time tag (SQ=0,
    VSQ 1): `read(data)` → (type id, common address, IOA, value, quality), equal to what
    `decode_asdu` gives for it (its one object's value and quality); None for anything else, which
    `decode_asdu` then reads (or refuses). Never raises."""
    layout = _layout_of(fmt)
    cot_size, ca_size, ioa_size = fmt
    head = f"<{2 + cot_size}x" + ("H" if ca_size == 2 else "B") + _IOA_FMT[ioa_size]
    table: dict[int, tuple[int, Callable[[bytes], tuple[Any, ...]], int]] = {}
    for type_id, (name, shape, payload, time_size) in _TYPES.items():
        if name.startswith("M_") and time_size == 0 and shape in _SINGLE_SHAPES:
            reader = struct.Struct(head + payload)
            table[type_id] = (reader.size, reader.unpack, shape)
    assert layout.dui + ioa_size == struct.calcsize(head)
    wide = ioa_size == 3
    get = table.get

    def read(data: bytes) -> tuple[int, int, int, bool | int | float, int] | None:
        spec = get(data[0]) if data else None
        if spec is None or len(data) != spec[0] or data[1] != 1:
            return None
        fields = spec[1](data)
        ca = fields[0]
        if wide:
            ioa = fields[1] | fields[2] << 16
            value = fields[3]
            quality = fields[4] if len(fields) > 4 else 0
        else:
            ioa = fields[1]
            value = fields[2]
            quality = fields[3] if len(fields) > 3 else 0
        shape = spec[2]
        if shape == _VQ:
            return (data[0], ca, ioa, value, quality)
        if shape == _NQ:
            return (data[0], ca, ioa, value / 32768, quality)
        if shape == _IT:
            return (data[0], ca, ioa, value, quality & 0xE0)
        return (data[0], ca, ioa, (value & 1 == 1) if shape == _SP else value & 3, value & 0xF0)

    return read


# ---------------------------------------------------------------------------------------- encoding
_Value = bool | int | float | None


def _fail(name: str, obj: InfoObject, why: str) -> ValueError:
    return ValueError(f"{name} IOA {obj.ioa}: {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(name: str, obj: InfoObject, what: str, value: object, lo: int, hi: int) -> int:
    if not _is_int(value) or not lo <= cast(int, value) <= hi:
        raise _fail(name, obj, f"{what} must be an int {lo}..{hi}, not {value!r}")
    return cast(int, value)


def _bit(name: str, obj: InfoObject, value: _Value) -> int:
    if value is True or value is False or (_is_int(value) and value in (0, 1)):
        return int(cast(int, value))
    raise _fail(name, obj, f"value must be a bool, not {value!r}")


def _normalized(name: str, obj: InfoObject, value: _Value) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            scaled = round(value * 32768)
        except (ValueError, OverflowError):
            scaled = None
        if scaled is not None and -32768 <= scaled <= 32767:
            return scaled
    raise _fail(name, obj, f"normalized value must be a number in -1..1-2^-15, not {value!r}")


def _real(name: str, obj: InfoObject, value: _Value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise _fail(name, obj, f"value must be a number, not {value!r}")


def _none(name: str, obj: InfoObject, what: str, given: object) -> None:
    # The decoder reads an absent value as None and an absent quality or qualifier as 0.
    if given is None if what == "value" else (given == 0 and _is_int(given)):
        return
    raise _fail(name, obj, f"{name} carries no {what} ({given!r} given)")


def _fields(name: str, shape: int, payload: str, obj: InfoObject) -> tuple[Any, ...]:
    """The payload struct fields of one object, checked; raises ValueError."""
    value, quality, qualifier = obj.value, obj.quality, obj.qualifier
    if shape in (_SP, _DP):
        bits = _bit(name, obj, value) if shape == _SP else _int_in(name, obj, "DPI", value, 0, 3)
        q = _int_in(name, obj, "quality", quality, 0, 0xFF)
        if q & 0x0F:
            raise _fail(name, obj, f"quality {q:#04x} has bits outside 0xF0")
        _none(name, obj, "qualifier", qualifier)
        return (bits | q,)
    if shape in (_SCO, _DCO):
        bits = _bit(name, obj, value) if shape == _SCO else _int_in(name, obj, "value", value, 0, 3)
        q = _int_in(name, obj, "qualifier", qualifier, 0, 0xFF)
        if q & 0x03:
            raise _fail(name, obj, f"qualifier {q:#04x} has bits outside 0xFC")
        _none(name, obj, "quality", quality)
        return (bits | q,)
    if shape == _QUAL:
        _none(name, obj, "value", value)
        _none(name, obj, "quality", quality)
        return (_int_in(name, obj, "qualifier", qualifier, 0, 0xFF),)
    if shape == _NONE:
        _none(name, obj, "value", value)
        _none(name, obj, "quality", quality)
        _none(name, obj, "qualifier", qualifier)
        return ()
    if shape == _UINT:
        _none(name, obj, "quality", quality)
        _none(name, obj, "qualifier", qualifier)
        return (_int_in(name, obj, "value", value, 0, 0xFFFF),)
    if shape == _ST:
        v = _int_in(name, obj, "VTI value", value, -64, 63)
        transient = _int_in(name, obj, "transient qualifier", qualifier, 0, 1)
        return (v & 0x7F | transient << 7, _int_in(name, obj, "quality", quality, 0, 0xFF))
    if shape == _IT:
        v = _int_in(name, obj, "counter", value, -(1 << 31), (1 << 31) - 1)
        seq = _int_in(name, obj, "sequence number", qualifier, 0, 31)
        q = _int_in(name, obj, "quality", quality, 0, 0xFF)
        if q & 0x1F:
            raise _fail(name, obj, f"quality {q:#04x} has bits outside 0xE0")
        return (v, seq | q)
    if shape == _N:
        _none(name, obj, "quality", quality)
        _none(name, obj, "qualifier", qualifier)
        return (_normalized(name, obj, value),)
    # value + QDS or value + QOS
    with_qds = shape in (_VQ, _NQ)
    if with_qds:
        _none(name, obj, "qualifier", qualifier)
        second = _int_in(name, obj, "quality", quality, 0, 0xFF)
    else:
        _none(name, obj, "quality", quality)
        second = _int_in(name, obj, "qualifier", qualifier, 0, 0xFF)
    if shape in (_NQ, _NQOS):
        return (_normalized(name, obj, value), second)
    kind = payload[0]
    if kind == "f":
        return (_real(name, obj, value), second)
    if kind == "h":
        return (_int_in(name, obj, "value", value, -32768, 32767), second)
    return (_int_in(name, obj, "value", value, 0, 0xFFFFFFFF), second)


_CP56: Final = struct.Struct("<HBBBBB")
_CP24: Final = struct.Struct("<HB")


def _time_bytes(name: str, obj: InfoObject, size: int) -> bytes:
    tag = obj.time
    if size == 0:
        if tag is not None:
            raise _fail(name, obj, f"{name} carries no time tag")
        return b""
    if size == 7:
        if not isinstance(tag, Cp56):
            raise _fail(name, obj, f"{name} needs a Cp56 time tag, not {tag!r}")
        ms, minute, hour, day, month, year, weekday, invalid, summer, substituted = tag
        for what, field, top in (
            ("milliseconds", ms, 0xFFFF),
            ("minute", minute, 0x3F),
            ("hour", hour, 0x1F),
            ("day", day, 0x1F),
            ("month", month, 0x0F),
            ("year", year, 0x7F),
            ("weekday", weekday, 7),
        ):
            _int_in(name, obj, f"CP56 {what}", field, 0, top)
        return _CP56.pack(
            ms,
            minute | bool(invalid) << 7 | bool(substituted) << 6,
            hour | bool(summer) << 7,
            day | weekday << 5,
            month,
            year,
        )
    if not isinstance(tag, Cp24):
        raise _fail(name, obj, f"{name} needs a Cp24 time tag, not {tag!r}")
    ms, minute, invalid, substituted = tag
    _int_in(name, obj, "CP24 milliseconds", ms, 0, 0xFFFF)
    _int_in(name, obj, "CP24 minute", minute, 0, 0x3F)
    return _CP24.pack(ms, minute | bool(invalid) << 7 | bool(substituted) << 6)


_PAYLOADS: Final[dict[int, struct.Struct]] = {
    tid: struct.Struct("<" + payload) for tid, (_, _, payload, _) in _TYPES.items()
}


def encode_asdu(asdu: Asdu, fmt: AsduFormat = STANDARD) -> bytes:
    """Encode one ASDU (type id byte onward); raises ValueError for what it cannot encode."""
    layout = _layout_of(fmt)
    type_id, cot, ca, objects, sequence, negative, test, originator, raw, raw_count = asdu
    if not _is_int(type_id) or not 0 <= type_id <= 255:
        raise ValueError(f"type id must be 0..255, not {type_id!r}")
    if not _is_int(cot) or not 0 <= cot <= 63:
        raise ValueError(f"cause of transmission must be 0..63, not {cot!r}")
    if not _is_int(ca) or not 0 <= ca <= layout.max_ca:
        raise ValueError(f"common address must be 0..{layout.max_ca}, not {ca!r}")
    if not _is_int(originator) or not 0 <= originator <= (255 if layout.with_originator else 0):
        raise ValueError(
            f"originator address {originator!r} does not fit a {fmt.cot_size}-byte COT"
        )
    spec = _TYPES.get(type_id)
    if spec is None:
        if objects:
            raise ValueError(f"type {type_id} is unknown to the codec: give raw bytes, not objects")
        count = raw_count
    else:
        if raw or raw_count:
            raise ValueError(f"{spec[0]} is encoded from its objects, not from raw bytes")
        count = len(objects)
    if not _is_int(count) or not 1 <= count <= 127:
        raise ValueError(f"an ASDU holds 1..127 objects, not {count!r}")
    cot_byte = cot | bool(negative) << 6 | bool(test) << 7
    head = (type_id, count | bool(sequence) << 7, cot_byte)
    if layout.with_originator:
        header = layout.header.pack(*head, originator, ca)
    else:
        header = layout.header.pack(*head, ca)
    if spec is None:
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError(f"raw must be bytes, not {type(raw).__name__}")
        return header + bytes(raw)
    name, shape, payload, time_size = spec
    pack = _PAYLOADS[type_id].pack
    ioa_size, max_ioa = layout.ioa_size, layout.max_ioa
    parts = [header]
    first = objects[0].ioa
    for n, obj in enumerate(objects):
        if not isinstance(obj, InfoObject):
            raise ValueError(f"{name}: objects must be InfoObject, not {type(obj).__name__}")
        ioa = obj.ioa
        if not _is_int(ioa) or not 0 <= ioa <= max_ioa:
            raise ValueError(f"{name}: IOA must be 0..{max_ioa}, not {ioa!r}")
        if sequence:
            if ioa != first + n:
                raise _fail(name, obj, f"SQ=1 needs consecutive IOAs ({first + n} expected)")
            if n == 0:
                parts.append(ioa.to_bytes(ioa_size, "little"))
        else:
            parts.append(ioa.to_bytes(ioa_size, "little"))
        try:
            parts.append(pack(*_fields(name, shape, payload, obj)))
        except (struct.error, OverflowError) as exc:  # a float beyond float32
            raise _fail(name, obj, f"cannot encode {obj.value!r}: {exc}") from exc
        parts.append(_time_bytes(name, obj, time_size))
    return b"".join(parts)
