"""A sans-I/O bench for the IEC 104 station core: a fake store, a fake clock, a fake CSMS and a fake link.

Every frame the core sends toward the CSMS is parsed and checked against the official 2.0.1 schemas
(CALLs against the request schema, answers against the response schema of the call they answer); every
Persist is applied to a dict store, so a test can restart the core from what it made durable.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.mapping_files import compile_file
from adapters.schemas import OfficialSchemas
from bridge.effects import Persist, Report, Send, Side
from bridge.ocppj.errors import VALID_CODES, OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.core import Station104, Station104Settings
from bridge.stations.iec104.southbound import (
    Interrogate104,
    PointUpdate,
    Send104Command,
    Send104Private,
)

SCHEMAS = OfficialSchemas()
ROOT = Path(__file__).resolve().parents[2]
DC_TABLE = compile_file(ROOT / "mappings" / "gb-dc-charger.yaml", 2)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: wall clock = T0 + monotonic now

Payload = dict[str, Any]

# connector 1 of gb-dc-charger.yaml
EMERGENCY_STOP = 0x0001
PLUG, HOLSTERED, CHARGING, FAULTED, OUT_OF_SERVICE = 0x0021, 0x0022, 0x0023, 0x0027, 0x002D
CONTACTOR = 0x0025
VOLTAGE, CURRENT, POWER, SOC, WORK_STATUS = 0x4001, 0x4002, 0x4003, 0x4004, 0x400F
ENERGY = 0x6401
START_STOP, UNLOCK, SERVICE = 0x6001, 0x6002, 0x6003
POWER_LIMIT, CURRENT_LIMIT = 0x6201, 0x6202
RESET = 0x6100


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sp(ioa: int, on: bool) -> PointUpdate:
    return PointUpdate(ioa, "M_SP_NA_1", on)


def fl(ioa: int, value: float) -> PointUpdate:
    return PointUpdate(ioa, "M_ME_NC_1", value)


def it(ioa: int, count: int) -> PointUpdate:
    return PointUpdate(ioa, "M_IT_NA_1", count)


def idle(connector: int = 1) -> list[PointUpdate]:
    """A general interrogation's answer: the charger is fine, connector `connector` idle."""
    base = 0x0021 + (connector - 1) * 0x20
    updates = [sp(ioa, False) for ioa in range(0x0001, 0x000D)]
    updates += [sp(base + at, at == 1) for at in range(13) if at != 4]
    updates.append(PointUpdate(base + 4, "M_DP_NA_1", 1))
    updates.append(fl(0x400F + (connector - 1) * 0x40, 2.0))  # work status: idle
    return updates


@dataclass
class Frame:
    kind: int
    message_id: str
    action: str
    payload: Payload


@dataclass
class Bench:
    table: CompiledTable = DC_TABLE
    settings: Station104Settings = field(default_factory=Station104Settings)
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: float = 0.0
    csms_online: bool = False
    sent: list[Frame] = field(default_factory=list)
    commands: list[Send104Command] = field(default_factory=list)
    interrogations: list[Interrogate104] = field(default_factory=list)
    privates: list[Send104Private] = field(default_factory=list)  # a vendor table's answers
    reports: list[Report] = field(default_factory=list)
    pending: dict[str, Frame] = field(default_factory=dict)  # the core's CALLs not yet answered
    waiting: dict[str, str] = field(default_factory=dict)  # the CSMS's CALLs not yet answered
    auto_answer: bool = True

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._tx_ids = itertools.count(1)
        self._csms_ids = itertools.count(1)
        self.core = self._build()

    def _build(self) -> Station104:
        return Station104(
            "GB104-1",
            self.table,
            SCHEMAS,
            lambda: f"m{next(self._ids)}",
            lambda: f"TX-{next(self._tx_ids):04d}",
            json.loads(json.dumps(self.store)),
            now=self.now,
            wall=self.wall(),
            settings=self.settings,
        )

    def wall(self) -> float:
        return T0 + self.now

    def restart(self) -> None:
        self.core = self._build()
        self.csms_online = False
        self.pending.clear()
        self.waiting.clear()

    # --- effects ------------------------------------------------------------------------------

    def drain(self) -> None:
        for _ in range(100):
            effects = self.core.effects()
            if not effects:
                return
            for effect in effects:
                if isinstance(effect, Persist):
                    rows = self.store.setdefault(effect.table, {})
                    if effect.value is None:
                        rows.pop(effect.key, None)
                    else:
                        rows[effect.key] = json.loads(json.dumps(effect.value))
                elif isinstance(effect, Send):
                    assert effect.side is Side.NORTH
                    self._frame(effect.frame)
                elif isinstance(effect, Report):
                    self.reports.append(effect)
                elif isinstance(effect, Send104Command):
                    self.commands.append(effect)
                elif isinstance(effect, Interrogate104):
                    self.interrogations.append(effect)
                elif isinstance(effect, Send104Private):
                    self.privates.append(effect)
                else:  # pragma: no cover
                    raise AssertionError(f"unexpected effect {effect}")
            if self.auto_answer:
                self.answer_all()
        raise AssertionError("the core does not stop producing effects")

    def _frame(self, raw: str) -> None:
        assert self.csms_online, "a frame while the CSMS is not connected"
        message = json.loads(raw)
        kind, message_id = message[0], message[1]
        if kind == 2:
            action, payload = message[2], message[3]
            violation = SCHEMAS.check(OcppVersion.V201, action, PayloadKind.REQUEST, payload)
            assert violation is None, f"{action} request invalid: {violation} {payload}"
            frame = Frame(2, message_id, action, payload)
            self.pending[message_id] = frame
        elif kind == 3:
            action = self.waiting.pop(message_id)
            violation = SCHEMAS.check(OcppVersion.V201, action, PayloadKind.RESPONSE, message[2])
            assert violation is None, f"{action} response invalid: {violation} {message[2]}"
            frame = Frame(3, message_id, action, message[2])
        else:
            assert message[2] in VALID_CODES[OcppVersion.V201]
            action = self.waiting.pop(message_id)
            frame = Frame(4, message_id, action, {"code": message[2], "description": message[3]})
        self.sent.append(frame)

    def answer_all(self) -> None:
        while self.pending:
            message_id, frame = next(iter(self.pending.items()))
            del self.pending[message_id]
            answer: Payload = {}
            if frame.action == "BootNotification":
                answer = {"status": "Accepted", "currentTime": iso(self.wall()), "interval": 300}
            elif frame.action == "Heartbeat":
                answer = {"currentTime": iso(self.wall())}
            elif frame.action == "Authorize":
                answer = {"idTokenInfo": {"status": "Accepted"}}
            self.core.receive(
                Side.NORTH, json.dumps([3, message_id, answer]), self.now, self.wall()
            )

    # --- inputs ------------------------------------------------------------------------------

    def connect_csms(self) -> None:
        self.csms_online = True
        self.core.connection_made(Side.NORTH, self.now, self.wall())
        self.drain()

    def disconnect_csms(self) -> None:
        self.core.connection_lost(Side.NORTH, self.now, self.wall())
        self.drain()
        self.csms_online = False
        self.pending.clear()
        self.waiting.clear()

    def link_up(self, *updates: PointUpdate) -> None:
        self.core.link_up(self.now, self.wall())
        self.drain()
        self.points(*updates)

    def link_down(self) -> None:
        self.core.link_down(self.now, self.wall(), "test")
        self.drain()

    def points(self, *updates: PointUpdate) -> None:
        for update in updates:
            self.core.point_updated(update, self.now, self.wall())
            self.drain()

    def confirm(self, command: Send104Command | None = None, positive: bool = True) -> None:
        command = command or self.commands[-1]
        self.core.command_confirmed(command.command_id, positive, self.now, self.wall(), "test")
        self.drain()

    def csms(self, action: str, payload: Payload) -> str:
        message_id = f"s{next(self._csms_ids)}"
        self.waiting[message_id] = action
        self.core.receive(
            Side.NORTH, json.dumps([2, message_id, action, payload]), self.now, self.wall()
        )
        self.drain()
        return message_id

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        for _ in range(10_000):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now, self.wall())
            self.drain()
        self.now = target
        self.core.handle_timer(self.now, self.wall())
        self.drain()

    # --- reading what happened ----------------------------------------------------------------

    def calls(self, action: str) -> list[Payload]:
        return [f.payload for f in self.sent if f.kind == 2 and f.action == action]

    def answer_to(self, message_id: str) -> Frame | None:
        return next((f for f in self.sent if f.kind in (3, 4) and f.message_id == message_id), None)

    def events(self) -> list[Payload]:
        return self.calls("TransactionEvent")

    def statuses(self, evse: int = 1) -> list[str]:
        return [
            p["connectorStatus"] for p in self.calls("StatusNotification") if p["evseId"] == evse
        ]

    def report_kinds(self) -> list[str]:
        return [r.diagnostic.kind for r in self.reports]

    def ready(self) -> None:
        """CSMS connected and accepted, link up, connector 1 idle and known."""
        self.connect_csms()
        self.link_up(*idle(1), *idle(2), it(ENERGY, 100_000), it(ENERGY + 0x10, 5))
