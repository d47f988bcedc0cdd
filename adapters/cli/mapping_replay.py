"""`mappings replay`: recorded 104 point changes through a table and the station core, with a fake clock.

Events file: JSON lines (blank lines are skipped), in time order, each an object with `t` and one of
- a point change: `{"t": 5, "ioa": "0x0021", "type": "M_SP_NA_1", "value": true}`; optional `quality`
  (a list of flag names, e.g. ["Invalid"]) and `time_tag` (RFC 3339, the point's own time stamp);
- the link: `{"t": 60, "link": "down"}` or `"up"`;
- a CSMS request: `{"t": 9, "csms": "RequestStartTransaction", "payload": {...}}`;
- a vendor table's registration frame, as hex: `{"t": 0, "registration": "AA 55 0A 53 4E ... 2C"}`
  (shown as what the table reads from it: the id, or why it refuses it);
- a vendor table's private ASDU from the charger, by name, with its fields:
  `{"t": 3, "private": "card_request", "connector": 1, "fields": {"card": "1234567890123456"}}`;
- how the fake CSMS answers Authorize from then on: `{"t": 0, "token_status": {"1111": "Blocked"}}`
  (Accepted otherwise).
`t` is seconds since the replay's start (`start`, default 2026-01-01T00:00:00Z) or an RFC 3339 time.
IOAs are integers or hex strings; values are booleans, numbers, or for double points 0..3.

Rules
- The same pure core as the running bridge (`bridge.stations.iec104.core.Station104`), with an in-memory state,
  ids `r1, r2, …` and transaction ids `TX-0001, …`. Time advances from event to event, firing every
  deadline on the way (register waits, meter values, profile periods, the link grace); after the last
  event it runs on for `settle` seconds.
- A fake CSMS is connected from the start and accepts everything: BootNotification Accepted (interval
  300), every other CALL answered with the smallest valid response.
- Every frame toward the CSMS goes to `on_frame(seconds, frame, problem)`, where `problem` is None when the
  frame is valid against the official 2.0.1 schema (CALLs against their request schema, answers to the
  replayed CSMS requests against the response schema), else the reason. 104 commands are confirmed
  positively at once; they, interrogations, the private ASDUs the bridge sends (decoded by the table)
  and the core's diagnostics go to `on_note(seconds, text)`.
- A broken events file raises `ReplayError` naming the line.
"""

from __future__ import annotations

import itertools
import json
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.effects import Persist, Report, Send, Side
from bridge.ocppj.errors import OcppVersion, OutboundPayloadInvalid
from bridge.ocppj.schema import PayloadKind, SchemaRegistry
from bridge.stations.iec104 import CompiledTable, TypeId, format_ioa, parse_ioa
from bridge.stations.iec104.core import Station104, Station104Settings
from bridge.stations.iec104.private import object_bytes
from bridge.stations.iec104.registration import Registered, RegistrationError, spaced_hex
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    Interrogate104,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    RawAsdu,
    Send104Command,
    Send104Private,
)
from bridge.timestamps import parse_timestamp

DEFAULT_START = "2026-01-01T00:00:00Z"
_MONITORING_TYPES = {t.value for t in TypeId if t.value.startswith("M_")}


class ReplayError(Exception):
    """The events file cannot be replayed (the message names the line)."""


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    at: float  # seconds since the start
    link: LinkEvent | None = None
    csms: tuple[str, dict[str, Any]] | None = None
    registration: bytes | None = None
    private: tuple[str, int | None, dict[str, Any]] | None = None
    token_status: dict[str, str] | None = None


def _seconds(value: object, start: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ReplayError(f"{where}: t must be seconds or an RFC 3339 time")
    if isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is None:
            raise ReplayError(f"{where}: t {value!r} is no RFC 3339 time")
        return moment.timestamp() - start
    return float(value)


def parse_events(text: str, source: str, start: float) -> list[Event]:
    events: list[Event] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(raw)
        except ValueError as exc:
            raise ReplayError(f"{where}: not JSON: {exc}") from None
        if not isinstance(item, dict) or "t" not in item:
            raise ReplayError(f"{where}: each line is an object with t")
        at = _seconds(item["t"], start, where)
        if events and at < events[-1].at:
            raise ReplayError(f"{where}: t goes back in time")
        events.append(_event(item, number, at, where))
    return events


def _event(item: dict[str, Any], number: int, at: float, where: str) -> Event:
    if "link" in item:
        if item["link"] not in ("up", "down"):
            raise ReplayError(f"{where}: link is up or down")
        return Event(number, at, link=LinkUp() if item["link"] == "up" else LinkDown("replay"))
    if "registration" in item:
        try:
            frame = bytes.fromhex(str(item["registration"]))
        except ValueError:
            raise ReplayError(f"{where}: registration is hex bytes") from None
        return Event(number, at, registration=frame)
    if "private" in item:
        connector, fields = item.get("connector"), item.get("fields", {})
        if not isinstance(item["private"], str) or not isinstance(fields, dict):
            raise ReplayError(f"{where}: private names an ASDU of the table, fields is an object")
        if connector is not None and (
            isinstance(connector, bool) or not isinstance(connector, int)
        ):
            raise ReplayError(f"{where}: connector is a number")
        return Event(number, at, private=(item["private"], connector, fields))
    if "token_status" in item:
        statuses = item["token_status"]
        if not isinstance(statuses, dict) or not all(isinstance(v, str) for v in statuses.values()):
            raise ReplayError(f"{where}: token_status maps idTokens to statuses")
        return Event(number, at, token_status=dict(statuses))
    if "csms" in item:
        payload = item.get("payload", {})
        if not isinstance(item["csms"], str) or not isinstance(payload, dict):
            raise ReplayError(f"{where}: csms names an action, payload is an object")
        return Event(number, at, csms=(item["csms"], payload))
    unknown = set(item) - {"t", "ioa", "type", "value", "quality", "time_tag"}
    if unknown:
        raise ReplayError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        ioa = parse_ioa(item.get("ioa"))
    except ValueError as exc:
        raise ReplayError(f"{where}: {exc}") from None
    type_id = item.get("type")
    if type_id not in _MONITORING_TYPES:
        raise ReplayError(f"{where}: type must be a monitoring type id such as M_SP_NA_1")
    value = item.get("value")
    if value is not None and not isinstance(value, bool | int | float):
        raise ReplayError(f"{where}: value must be a boolean or a number")
    quality = item.get("quality", [])
    if not isinstance(quality, list) or not all(isinstance(q, str) for q in quality):
        raise ReplayError(f"{where}: quality is a list of flag names")
    tag = item.get("time_tag")
    stamp = parse_timestamp(tag) if isinstance(tag, str) else None
    if tag is not None and stamp is None:
        raise ReplayError(f"{where}: time_tag {tag!r} is no RFC 3339 time")
    update = PointUpdate(
        ioa,
        type_id,
        value,
        frozenset(quality),
        stamp.timestamp() if stamp is not None else None,
    )
    return Event(number, at, link=update)


def needed_connectors(table: CompiledTable, events: list[Event]) -> int:
    """The fewest connectors whose points cover every IOA of the events (`table` for max_count)."""
    count = 1
    for event in events:
        if isinstance(event.link, PointUpdate):
            rule = table.rule_at(event.link.ioa)
            if rule is not None and rule.connector is not None:
                count = max(count, rule.connector)
    return count


_ANSWERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "BootNotification": lambda now: {"status": "Accepted", "currentTime": now, "interval": 300},
    "Heartbeat": lambda now: {"currentTime": now},
    "Authorize": lambda now: {"idTokenInfo": {"status": "Accepted"}},
}


class Replay:
    def __init__(
        self,
        table: CompiledTable,
        schemas: SchemaRegistry,
        *,
        start: float,
        on_frame: Callable[[float, str, str | None], None],
        on_note: Callable[[float, str], None],
        settings: Station104Settings | None = None,
    ) -> None:
        self.schemas = schemas
        self.start = start
        self.now = 0.0
        self.on_frame = on_frame
        self.on_note = on_note
        self.invalid = 0
        self.frames = 0
        ids = itertools.count(1)
        tx_ids = itertools.count(1)
        self._csms_ids = itertools.count(1)
        self._csms_calls: dict[str, str] = {}  # id → action of the replayed CSMS requests
        self._confirmations: list[CommandConfirmed] = []
        self.table = table
        self.zone = zoneinfo.ZoneInfo(table.station.time_zone)
        self.token_status: dict[str, str] = {}
        self.core = Station104(
            "REPLAY",
            table,
            schemas,
            lambda: f"r{next(ids)}",
            lambda: f"TX-{next(tx_ids):04d}",
            {},
            now=0.0,
            wall=self.wall(),
            settings=settings,
            zone=self.zone,
        )
        self.core.connection_made(Side.NORTH, 0.0, self.wall())
        self._drain()

    def wall(self) -> float:
        return self.start + self.now

    def run(self, events: list[Event], settle: float) -> None:
        for event in events:
            self.advance_to(event.at)
            try:
                if event.link is not None:
                    self.core.handle_link_event(event.link, self.now, self.wall())
                elif event.registration is not None:
                    self._registration(event.registration, event.line)
                elif event.private is not None:
                    self._private(*event.private, line=event.line)
                elif event.token_status is not None:
                    self.token_status.update(event.token_status)
                elif event.csms is not None:
                    action, payload = event.csms
                    message_id = f"csms-{next(self._csms_ids)}"
                    self._csms_calls[message_id] = action
                    frame = json.dumps([2, message_id, action, payload])
                    self.core.receive(Side.NORTH, frame, self.now, self.wall())
            except OutboundPayloadInvalid as exc:  # a frame the core would have refused to send
                self.invalid += 1
                self.on_note(self.now, f"INVALID (line {event.line}): {exc}")
            self._drain()
        self.advance_to((events[-1].at if events else 0.0) + settle)

    def advance_to(self, target: float) -> None:
        for _ in range(100_000):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now, self.wall())
            self._drain()
        self.now = max(self.now, target)

    def _drain(self) -> None:
        for _ in range(1_000):
            effects = self.core.effects()
            for effect in effects:
                if isinstance(effect, Send):
                    self._frame(effect.frame)
                elif isinstance(effect, Send104Command):
                    shown = format_ioa(effect.ioa)
                    mode = "select-execute" if effect.select else "direct"
                    self.on_note(
                        self.now,
                        f"104 command {effect.type_id} {shown} = {effect.value!r} ({mode},"
                        f" {effect.purpose}): confirmed",
                    )
                    self._confirmations.append(
                        CommandConfirmed(effect.command_id, effect.ioa, True, "replay")
                    )
                elif isinstance(effect, Send104Private):
                    self.on_note(self.now, self._private_note(effect))
                elif isinstance(effect, Interrogate104):
                    kind = "counter" if effect.counters else "general"
                    self.on_note(self.now, f"104 {kind} interrogation ({effect.reason})")
                elif isinstance(effect, Report):
                    diagnostic = effect.diagnostic
                    self.on_note(self.now, f"{diagnostic.kind}: {diagnostic.message}")
                elif not isinstance(effect, Persist):
                    self.on_note(self.now, f"effect {effect!r}")
            if not self._confirmations and not effects:
                return
            confirmations, self._confirmations = self._confirmations, []
            for confirmation in confirmations:
                self.core.handle_link_event(confirmation, self.now, self.wall())
        raise RuntimeError("the core keeps producing effects")  # pragma: no cover

    def _frame(self, raw: str) -> None:
        self.frames += 1
        message = json.loads(raw)
        problem: str | None = None
        if message[0] == 2:
            action, payload = message[2], message[3]
            violation = self.schemas.check(OcppVersion.V201, action, PayloadKind.REQUEST, payload)
            problem = None if violation is None else f"{action}: {violation.describe()}"
        elif message[0] == 3:
            action = self._csms_calls.pop(message[1], "")
            if action:
                violation = self.schemas.check(
                    OcppVersion.V201, action, PayloadKind.RESPONSE, message[2]
                )
                problem = None if violation is None else f"{action}: {violation.describe()}"
        if problem is not None:
            self.invalid += 1
        self.on_frame(self.now, raw, problem)
        if message[0] == 2:
            self._answer(message[1], message[2], message[3])

    def _registration(self, frame: bytes, line: int) -> None:
        spec = self.table.registration
        if spec is None:
            raise ReplayError(f"line {line}: the table declares no registration frame")
        found = spec.parse(frame)
        if isinstance(found, Registered):
            self.on_note(
                self.now, f"registration: id {found.id!r}, answered {spaced_hex(spec.accepted)}"
            )
        elif isinstance(found, RegistrationError):
            self.on_note(self.now, f"registration refused at byte {found.offset}: {found.reason}")
        else:
            self.on_note(self.now, f"registration incomplete: {len(frame)} bytes")

    def _private(
        self, name: str, connector: int | None, fields: dict[str, Any], *, line: int
    ) -> None:
        rule = self.table.private.get(name)
        if rule is None or rule.direction != "in":
            known = ", ".join(r.name for r in self.table.private.values() if r.direction == "in")
            raise ReplayError(f"line {line}: no private ASDU {name!r} from the charger ({known})")
        try:
            ioa = rule.ioa_for(connector if rule.per_connector else None)
            data = rule.layout.encode(fields, self.zone)
        except (KeyError, ValueError) as exc:
            raise ReplayError(f"line {line}: {name}: {exc}") from None
        objects = object_bytes(ioa, data, self.table.link.ioa_size)
        address = self.table.station.common_address
        self.core.handle_link_event(
            RawAsdu(rule.type_id, rule.cot, address, 1, False, objects), self.now, self.wall()
        )

    def _private_note(self, effect: Send104Private) -> str:
        ioa_size = self.table.link.ioa_size
        ioa = int.from_bytes(effect.objects[:ioa_size], "little")
        for rule in self.table.private.values():
            if rule.direction == "out" and rule.type_id == effect.type_id:
                values = rule.layout.decode(effect.objects[ioa_size:], self.zone)
                if isinstance(values, dict):
                    shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
                    return f"104 private {rule.name} {format_ioa(ioa)}: {shown} ({effect.purpose})"
        return f"104 private type {effect.type_id} {format_ioa(ioa)} ({effect.purpose})"

    def _answer(self, message_id: str, action: str, payload: dict[str, Any]) -> None:
        stamp = datetime.fromtimestamp(self.wall(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        answering = _ANSWERS.get(action)
        answer = answering(stamp) if answering is not None else {}
        if action == "Authorize":
            token = payload.get("idToken", {}).get("idToken", "")
            answer = {"idTokenInfo": {"status": self.token_status.get(token, "Accepted")}}
        self.core.receive(Side.NORTH, json.dumps([3, message_id, answer]), self.now, self.wall())


def replay_file(
    table_for: Callable[[int | None], CompiledTable],
    events_path: Path,
    schemas: SchemaRegistry,
    *,
    connectors: int | None,
    start: str,
    settle: float,
    on_frame: Callable[[float, str, str | None], None],
    on_note: Callable[[float, str], None],
) -> Replay:
    """Parse `events_path` and replay it through the table `table_for(connectors)` compiles."""
    begin = parse_timestamp(start)
    if begin is None:
        raise ReplayError(f"--start {start!r} is no RFC 3339 time")
    try:
        text = events_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{events_path}: cannot read: {exc.strerror or exc}") from None
    events = parse_events(text, str(events_path), begin.timestamp())
    if connectors is None:
        connectors = needed_connectors(table_for(None), events)
    replay = Replay(
        table_for(connectors), schemas, start=begin.timestamp(), on_frame=on_frame, on_note=on_note
    )
    replay.run(events, settle)
    return replay
