"""Cross-checks of `registration:`, `private_asdus:`, the link's field sizes and per-connector addresses.

Rules
- Like `bridge.stations.iec104.checks`, every problem names its path in the table's data, so the adapter turns
  it into PATH:LINE:COLUMN. `check_frames` runs with the point cross-checks (stage 2 of
  `validate_table`); `frame_address_problems` with the IOA checks for `max_count` connectors (stage 3).
- Layouts (`build_layout`): field names are unique; bcd, ascii and raw need a `size`, the other types
  have their own (a `size` that differs is refused); `size: rest` only in the registration, for its
  last field; `scale` only on numbers; `endian` only on numbers of 2 or more bytes; no cp56 in the
  registration (it has no time zone before the station is known); fields must not overlap.
- A private ASDU: a type id of 128..255, or a standard one that no point of the table uses; one
  object (data unit identifier + IOA + data) fits one APDU (249 bytes after the 4 control bytes);
  its meaning's direction (authorize and settlement in, the others out); each field a meaning names
  exists and has a type that can carry it (an id token: bcd or ascii; a time: cp56; a meter reading,
  a result or a stop reason: an integer; an amount or a balance: a number); an `answer` names an out
  private ASDU of the matching kind; code tables hold only codes the field can carry and are total
  (every AuthorizationStatus the CSMS may answer; every code the field can carry) or have a
  `default`; `answer_values` and a tariff's `variables` give every field of their ASDU a value.
- Addresses: IOAs (points' and private ASDUs') fit `link.ioa_size`; a private ASDU's IOA is no
  point's IOA; two private ASDUs of one type and direction do not share an IOA; common addresses fit
  `link.ca_size` (one byte: 1..254), and `station.common_addresses` names connectors 1..max_count,
  each with its own address.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from bridge.stations.iec104.addresses import Placement
from bridge.stations.iec104.asdu import TYPE_IDS, TYPE_NAMES
from bridge.stations.iec104.frames import (
    AUTHORIZATION_STATUSES,
    IN_MEANINGS,
    AuthorizeAnswerMeaning,
    AuthorizeMeaning,
    FieldDef,
    IoaBlock,
    PrivateAsduDef,
    RegistrationDef,
    SettlementAckMeaning,
    SettlementMeaning,
    TariffMeaning,
    hex_to_bytes,
)
from bridge.stations.iec104.model import MappingTable
from bridge.stations.iec104.points import AnyPoint
from bridge.stations.iec104.private import (
    FIXED_SIZES,
    INTEGER_TYPES,
    NUMBER_TYPES,
    SIZED_TYPES,
    FieldSpec,
    integer_range,
)
from bridge.stations.iec104.problems import Path, TableProblem
from bridge.stations.iec104.registration import CHECKSUM_SIZES, DEFAULT_MAX_PAYLOAD
from bridge.stations.iec104.vocabulary import format_ioa, hint

MAX_ASDU = 249  # 253 octets of APDU length minus the 4 control octets


def asdu_overhead(table: MappingTable) -> int:
    """Bytes of one object's ASDU before its data: type, VSQ, COT, common address, IOA."""
    link = table.link
    return 2 + link.cot_size + link.ca_size + link.ioa_size


def max_ioa(table: MappingTable) -> int:
    return (1 << (8 * table.link.ioa_size)) - 1


def build_layout(
    fields: list[FieldDef], path: Path, *, registration: bool = False
) -> tuple[tuple[FieldSpec, ...], list[TableProblem]]:
    """The fields at their offsets, and the problems of the list (see the module rules)."""
    problems: list[TableProblem] = []
    specs: list[FieldSpec] = []
    names: dict[str, int] = {}
    position = 0
    for index, item in enumerate(fields):
        where: Path = (*path, index)
        if item.name in names:
            problems.append(
                TableProblem(
                    (*where, "name"),
                    f"a second field named {item.name!r}",
                    related=(*path, names[item.name], "name"),
                )
            )
        names.setdefault(item.name, index)
        size: int | None
        if item.type in SIZED_TYPES:
            if item.size is None:
                problems.append(
                    TableProblem(where, f"missing key 'size': how many bytes of {item.type}", True)
                )
                size = 1
            elif item.size == "rest":
                if not registration:
                    problems.append(
                        TableProblem(
                            (*where, "size"), "size: rest is for the registration's payload only"
                        )
                    )
                    size = 1
                elif index != len(fields) - 1:
                    problems.append(
                        TableProblem((*where, "size"), "only the last field may take the rest")
                    )
                    size = 1
                else:
                    size = None
            else:
                size = item.size
        else:
            size = FIXED_SIZES[item.type]
            if item.size is not None and item.size != size:
                problems.append(
                    TableProblem((*where, "size"), f"{item.type} has {size} bytes; remove `size`")
                )
        if item.type == "cp56" and registration:
            problems.append(
                TableProblem(
                    (*where, "type"),
                    "no cp56 in the registration: its time zone is the station's, not known yet",
                )
            )
        if item.scale is not None and item.type not in NUMBER_TYPES:
            problems.append(
                TableProblem((*where, "scale"), f"scale applies to numbers, not {item.type}")
            )
        if "endian" in item.model_fields_set and (
            item.type not in NUMBER_TYPES or FIXED_SIZES[item.type] == 1
        ):
            problems.append(
                TableProblem(
                    (*where, "endian"),
                    f"endian applies to numbers of 2 or more bytes, not {item.type}",
                )
            )
        offset = position if item.offset is None else item.offset
        end = offset + (size or 0)
        for other_index, other in enumerate(specs):
            other_end = other.offset + (other.size or 0)
            if offset < other_end and other.offset < max(end, offset + 1):
                problems.append(
                    TableProblem(
                        (*where, "offset") if item.offset is not None else where,
                        f"{item.name!r} (bytes {offset}..{end - 1}) overlaps {other.name!r}"
                        f" (bytes {other.offset}..{other_end - 1})",
                        related=(*path, other_index),
                    )
                )
                break
        specs.append(
            FieldSpec(item.name, item.type, offset, size, item.endian, item.scale, item.description)
        )
        position = end
    return tuple(specs), problems


def layout_size(specs: tuple[FieldSpec, ...]) -> int:
    return max((spec.offset + (spec.size or 0) for spec in specs), default=0)


def check_frames(
    table: MappingTable, points: dict[str, tuple[Path, AnyPoint]]
) -> list[TableProblem]:
    """Problems of the registration, the private ASDUs and the station's addresses (stage 2)."""
    problems = list(_check_addresses(table))
    if table.registration is not None:
        problems.extend(_check_registration(table))
    used_types = {_type_number(point.type) for _path, point in points.values()}
    for name, rule in table.private_asdus.items():
        problems.extend(_PrivateChecker(table, name, rule, used_types).check())
    return problems


def _type_number(type_name: str) -> int:
    return TYPE_IDS[type_name]


def _check_addresses(table: MappingTable) -> Iterator[TableProblem]:
    station = table.station
    top = 254 if table.link.ca_size == 1 else 65534
    if station.common_address > top:
        yield TableProblem(
            ("station", "common_address"),
            f"common address {station.common_address} does not fit link.ca_size 1 (1..254)",
        )
    addresses = station.common_addresses or {}
    seen: dict[int, int] = {}
    for connector, address in addresses.items():
        where: Path = ("station", "common_addresses", connector)
        if connector > table.connectors.max_count:
            yield TableProblem(
                where,
                f"connector {connector}: this table describes 1 to {table.connectors.max_count}",
                True,
            )
        if address > top:
            yield TableProblem(
                where, f"common address {address} does not fit link.ca_size 1 (1..254)"
            )
        if address in seen:
            yield TableProblem(
                where,
                f"connectors {seen[address]} and {connector} both have common address {address}",
                related=("station", "common_addresses", seen[address]),
            )
        seen.setdefault(address, connector)
    if addresses:
        missing = [n for n in range(1, max(addresses) + 1) if n not in addresses]
        if missing:
            yield TableProblem(
                ("station", "common_addresses"),
                "connectors are numbered from 1 without gaps: no address for connector"
                f" {', '.join(map(str, missing))}",
            )


def _check_registration(table: MappingTable) -> Iterator[TableProblem]:
    registration = table.registration
    assert registration is not None
    path: Path = ("registration",)
    specs, problems = build_layout(registration.fields, (*path, "fields"), registration=True)
    yield from problems
    names = [spec.name for spec in specs]
    if registration.id not in names:
        yield TableProblem(
            (*path, "id"), f"no field named {registration.id!r}{hint(registration.id, names)}"
        )
    length = registration.length
    cks = CHECKSUM_SIZES[registration.checksum.rule]
    most = _most_payload(registration)
    fixed = layout_size(specs)
    if registration.max_payload is not None and registration.max_payload > most:
        yield TableProblem(
            (*path, "max_payload"),
            f"a {length.size}-byte length counts at most {most} bytes of payload here",
        )
    limit = max_payload(registration)
    if fixed > limit:
        yield TableProblem(
            (*path, "fields"), f"the fields need {fixed} bytes; the payload holds at most {limit}"
        )
    if "endian" in registration.checksum.model_fields_set and cks != 2:
        yield TableProblem((*path, "checksum", "endian"), "endian applies to crc16_modbus only")
    if "endian" in length.model_fields_set and length.size != 2:
        yield TableProblem((*path, "length", "endian"), "endian applies to a 2-byte length only")


def _most_payload(registration: RegistrationDef) -> int:
    """The longest payload the length field can count."""
    length = registration.length
    cks = CHECKSUM_SIZES[registration.checksum.rule]
    start = len(hex_to_bytes(registration.start))
    extra = {"payload": 0, "payload_and_checksum": cks, "frame": start + length.size + cks}
    return (1 << (8 * length.size)) - 1 - extra[length.counts]


def max_payload(registration: RegistrationDef) -> int:
    """The longest payload the registration accepts: `max_payload`, else 1024 or what the length can
    count."""
    return registration.max_payload or max(0, min(_most_payload(registration), DEFAULT_MAX_PAYLOAD))


_UTC = datetime.UTC


class _PrivateChecker:
    def __init__(
        self, table: MappingTable, name: str, rule: PrivateAsduDef, used_types: set[int]
    ) -> None:
        self.table = table
        self.name = name
        self.rule = rule
        self.used_types = used_types
        self.path: Path = ("private_asdus", name)
        self.problems: list[TableProblem] = []
        self.specs: dict[str, FieldSpec] = {}

    def add(
        self, path: Path, message: str, on_key: bool = False, related: Path | None = None
    ) -> None:
        self.problems.append(TableProblem(path, message, on_key, related))

    def check(self) -> list[TableProblem]:
        rule, path = self.rule, self.path
        if rule.type < 128 and rule.type in self.used_types:
            self.add(
                (*path, "type"),
                f"type {rule.type} ({TYPE_NAMES.get(rule.type, '?')}) is used by points of this"
                " table; private types are 128..255",
            )
        specs, problems = build_layout(rule.fields, (*path, "fields"))
        self.problems.extend(problems)
        self.specs = {spec.name: spec for spec in reversed(specs)}
        total = asdu_overhead(self.table) + layout_size(specs)
        if total > MAX_ASDU:
            self.add(
                (*path, "fields"),
                f"the ASDU has {total} bytes ({asdu_overhead(self.table)} before the data,"
                f" {layout_size(specs)} of data); one APDU carries at most {MAX_ASDU}",
            )
        meaning = rule.meaning
        wanted = "in" if meaning.kind in IN_MEANINGS else "out"
        if rule.direction != wanted:
            sender = "the charger" if wanted == "in" else "the bridge"
            self.add(
                (*path, "direction"),
                f"a {meaning.kind} ASDU is sent by {sender}: direction {wanted}",
            )
        mpath: Path = (*path, "meaning")
        if isinstance(meaning, AuthorizeMeaning):
            self.field(meaning.id_token, (*mpath, "id_token"), {"bcd", "ascii"}, "an id token")
            self.answer(meaning.answer, (*mpath, "answer"), "authorize_answer")
        elif isinstance(meaning, AuthorizeAnswerMeaning):
            self.authorize_answer(meaning, mpath)
        elif isinstance(meaning, SettlementMeaning):
            self.settlement(meaning, mpath)
        elif isinstance(meaning, SettlementAckMeaning):
            self.field(meaning.result, (*mpath, "result"), None, "the result")
        else:
            self.tariff(meaning, mpath)
        return self.problems

    def field(
        self, name: str, path: Path, types: set[str] | frozenset[str] | None, what: str
    ) -> FieldSpec | None:
        spec = self.specs.get(name)
        if spec is None:
            self.add(path, f"no field named {name!r}{hint(name, self.specs)} in {self.name!r}")
            return None
        if types is not None and spec.type not in types:
            allowed = " or ".join(sorted(types)) if len(types) <= 3 else _kind_of(types)
            self.add(path, f"{name!r} is a {spec.type} field; {what} needs {allowed}")
            return None
        return spec

    def answer(self, name: str, path: Path, kind: str) -> PrivateAsduDef | None:
        others = self.table.private_asdus
        other = others.get(name)
        if other is None:
            self.add(path, f"no private ASDU named {name!r}{hint(name, others)}")
            return None
        if other.direction != "out" or other.meaning.kind != kind:
            self.add(
                path,
                f"{name!r} is a {other.meaning.kind} ASDU ({other.direction}); the answer is an"
                f" out ASDU with meaning {kind}",
            )
            return None
        return other

    def codes_fit(self, spec: FieldSpec, codes: list[tuple[Path, int]]) -> None:
        low, high = integer_range(spec.type)
        for path, code in codes:
            if not low <= code <= high:
                self.add(
                    path, f"code {code} does not fit {spec.name!r} ({spec.type}: {low}..{high})"
                )

    def authorize_answer(self, meaning: AuthorizeAnswerMeaning, path: Path) -> None:
        spec = self.field(meaning.result, (*path, "result"), INTEGER_TYPES, "the result")
        if spec is not None:
            codes = [((*path, "codes", status), code) for status, code in meaning.codes.items()]
            if meaning.default is not None:
                codes.append(((*path, "default"), meaning.default))
            self.codes_fit(spec, codes)
        missing = [status for status in AUTHORIZATION_STATUSES if status not in meaning.codes]
        if missing and meaning.default is None:
            self.add(
                (*path, "codes"),
                f"no code for {', '.join(missing)}, which the CSMS may answer: add them or a"
                " `default` code",
            )
        if meaning.balance is not None:
            self.field(meaning.balance, (*path, "balance"), NUMBER_TYPES, "the balance")

    def settlement(self, meaning: SettlementMeaning, path: Path) -> None:
        self.field(meaning.id_token, (*path, "id_token"), {"bcd", "ascii"}, "an id token")
        for key in ("started_at", "ended_at"):
            self.field(getattr(meaning, key), (*path, key), {"cp56"}, "a time")
        for key in ("meter_start", "meter_stop"):
            reading = getattr(meaning, key)
            self.field(reading.field, (*path, key, "field"), INTEGER_TYPES, "a meter reading")
        if meaning.amount is not None:
            self.field(meaning.amount.field, (*path, "amount", "field"), NUMBER_TYPES, "an amount")
        reason = meaning.stop_reason
        if reason is not None:
            where: Path = (*path, "stop_reason")
            spec = self.field(reason.field, (*where, "field"), INTEGER_TYPES, "a stop reason")
            if spec is not None:
                self.codes_fit(spec, [((*where, "codes", code), code) for code in reason.codes])
                low, high = integer_range(spec.type)
                total = high - low + 1 <= 256 and all(
                    code in reason.codes for code in range(low, high + 1)
                )
                if not total and reason.default is None:
                    self.add(
                        (*where, "codes"),
                        f"{spec.name!r} ({spec.type}) carries {low}..{high}: give every code a"
                        " reason or add a `default` reason",
                    )
        answer = self.answer(meaning.answer, (*path, "answer"), "settlement_ack")
        if answer is not None:
            specs, _ = build_layout(answer.fields, ())
            by_name = {spec.name: spec for spec in specs}
            values_path: Path = (*path, "answer_values")
            for key, value in meaning.answer_values.items():
                spec = by_name.get(key)
                if spec is None:
                    self.add(
                        (*values_path, key),
                        f"{meaning.answer!r} has no field {key!r}{hint(key, by_name)}",
                        True,
                    )
                    continue
                try:
                    spec.write(value, _UTC)
                except ValueError as exc:
                    self.add((*values_path, key), str(exc))
            missing = [name for name in by_name if name not in meaning.answer_values]
            if missing:
                self.add(
                    values_path if meaning.answer_values else path,
                    f"no value for {', '.join(repr(m) for m in missing)} of {meaning.answer!r}:"
                    " give it in `answer_values`",
                    not meaning.answer_values,
                )

    def tariff(self, meaning: TariffMeaning, path: Path) -> None:
        named: set[str] = set()
        for variable, name in meaning.variables.items():
            spec = self.field(
                name, (*path, "variables", variable), NUMBER_TYPES | {"bcd", "ascii"}, "a variable"
            )
            if spec is not None:
                named.add(name)
        missing = [name for name in self.specs if name not in named]
        if missing and len(named) == len(set(meaning.variables.values())):
            self.add(
                (*path, "variables"),
                f"no variable gives {', '.join(repr(m) for m in missing)} a value",
            )


def _kind_of(types: set[str] | frozenset[str]) -> str:
    if set(types) <= INTEGER_TYPES:
        return "an integer type (uint8/16/32, int8/16/32)"
    if set(types) <= NUMBER_TYPES:
        return "a number type (an integer or float32)"
    return "a number, bcd or ascii"


# --- addresses (stage 3) -------------------------------------------------------------------------


def _ioa_path(rule: PrivateAsduDef, path: Path) -> Path:
    return (*path, "ioa", "base") if isinstance(rule.ioa, IoaBlock) else (*path, "ioa")


def private_ioas(rule: PrivateAsduDef, connectors: int) -> list[tuple[int | None, int]]:
    """(connector or None, IOA) of a private ASDU for `connectors` connectors."""
    if isinstance(rule.ioa, IoaBlock):
        return [(n, rule.ioa.base + (n - 1) * rule.ioa.stride) for n in range(1, connectors + 1)]
    return [(None, rule.ioa)]


def frame_address_problems(
    table: MappingTable, placements: list[Placement], connectors: int
) -> list[TableProblem]:
    """Private ASDUs' IOAs for `connectors` connectors: within `link.ioa_size`, no point's IOA, and
    one ASDU per (type, direction, IOA)."""
    problems: list[TableProblem] = []
    top = max_ioa(table)
    points = {placement.ioa: placement for placement in placements}
    seen: dict[tuple[int, str, int], tuple[str, int | None]] = {}
    for name, rule in table.private_asdus.items():
        path: Path = ("private_asdus", name)
        where = _ioa_path(rule, path)
        reported = False
        for connector, ioa in private_ioas(rule, connectors):
            owner = "" if connector is None else f" (connector {connector})"
            if ioa > top:
                problems.append(
                    TableProblem(
                        where,
                        f"IOA {format_ioa(ioa)} of {name!r}{owner} does not fit"
                        f" link.ioa_size {table.link.ioa_size} (up to {format_ioa(top)})",
                    )
                )
                break
            point = points.get(ioa)
            key = (rule.type, rule.direction, ioa)
            if point is not None and not reported:
                problems.append(
                    TableProblem(
                        where,
                        f"IOA {format_ioa(ioa)} of {name!r}{owner} is {point.describe()}",
                        related=point.address_path,
                    )
                )
                reported = True
            elif key in seen and not reported:
                other, other_connector = seen[key]
                other_owner = "" if other_connector is None else f" (connector {other_connector})"
                problems.append(
                    TableProblem(
                        where,
                        f"IOA {format_ioa(ioa)} of {name!r}{owner} is also {other!r}{other_owner}'s,"
                        f" of the same type {rule.type} and direction",
                        related=_ioa_path(table.private_asdus[other], ("private_asdus", other)),
                    )
                )
                reported = True
            seen.setdefault(key, (name, connector))
    return problems
