"""A sans-I/O test bench for the stateful cores: a fake store, a fake clock, and a Station16 driven
frame by frame with every frame it sends checked against the official schemas.

Rules the bench itself enforces on every drain (so every test checks them):
- every Send is a well-formed OCPP-J frame; a CALL validates against its request schema, a CALLRESULT
  against the response schema of the call it answers, a CALLERROR carries a code of that side's version;
- every answer (CALLRESULT / CALLERROR) answers a call the peer made and that is still waiting: no call is
  answered twice, none is answered that was never made;
- Persist effects are applied to the fake store in order; a run of consecutive Persist effects is one
  atomic commit (as `adapters.driver` does), so a "crash" can fall between two runs or between any two
  other effects, never inside a run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.device_model_file import load_config_table
from adapters.schemas import OfficialSchemas
from bridge.effects import Close, Effect, Persist, Report, Send, Side
from bridge.north.station import NorthSettings
from bridge.ocppj.errors import VALID_CODES, OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.core import Station16, Station16Settings

SCHEMAS = OfficialSchemas()
CONFIG_TABLE = load_config_table()
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: wall clock = T0 + monotonic now

VERSION = {Side.SOUTH: OcppVersion.V16, Side.NORTH: OcppVersion.V201}

Payload = dict[str, Any]


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the store ------------------------------------------------------------------------------------


class FakeStore:
    """adapters/store.py in a dict: values go through JSON, `load` returns rows in key order."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.commits = 0

    def apply(self, changes: list[Persist]) -> None:
        self.commits += 1
        for change in changes:
            rows = self.tables.setdefault(change.table, {})
            if change.value is None:
                rows.pop(change.key, None)
            else:
                rows[change.key] = json.loads(json.dumps(change.value))

    def load(self) -> dict[str, dict[str, Any]]:
        return {
            table: {key: json.loads(json.dumps(rows[key])) for key in sorted(rows)}
            for table, rows in sorted(self.tables.items())
            if rows
        }


def apply_effects(
    effects: list[Effect], store: FakeStore, crash_after: int | None = None
) -> tuple[list[Effect], bool]:
    """Carry out effects in order (a run of Persists = one commit). With `crash_after`, only that many
    units (a commit or one other effect) happen. Returns what was carried out and whether it crashed."""
    done: list[Effect] = []
    units = 0
    index = 0
    while index < len(effects):
        if crash_after is not None and units >= crash_after:
            return done, True
        if isinstance(effects[index], Persist):
            run: list[Persist] = []
            while index < len(effects) and isinstance(effects[index], Persist):
                effect = effects[index]
                assert isinstance(effect, Persist)
                run.append(effect)
                index += 1
            store.apply(run)
            done.extend(run)
        else:
            done.append(effects[index])
            index += 1
        units += 1
    return done, False


def count_units(effects: list[Effect]) -> int:
    units = 0
    previous_persist = False
    for effect in effects:
        is_persist = isinstance(effect, Persist)
        if not (is_persist and previous_persist):
            units += 1
        previous_persist = is_persist
    return units


# --- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame the core sent, parsed."""

    side: Side
    kind: int  # 2 CALL, 3 CALLRESULT, 4 CALLERROR
    message_id: str
    action: str  # the CALL's action, or the action of the call answered
    payload: Payload  # CALL/CALLRESULT payload; for CALLERROR {"code", "description", "details"}

    @property
    def code(self) -> str:
        return str(self.payload.get("code", ""))


# --- the station bench ----------------------------------------------------------------------------

CSMS_DEFAULT_ANSWERS: dict[str, Callable[[Payload, float], Payload]] = {
    "BootNotification": lambda p, w: {"status": "Accepted", "currentTime": iso(w), "interval": 300},
    "Heartbeat": lambda p, w: {"currentTime": iso(w)},
    "Authorize": lambda p, w: {"idTokenInfo": {"status": "Accepted"}},
    "TransactionEvent": lambda p, w: {},
    "DataTransfer": lambda p, w: {"status": "Accepted"},
    "SignCertificate": lambda p, w: {"status": "Accepted"},
}


def csms_default_answer(action: str, payload: Payload, wall: float) -> Payload:
    answer = CSMS_DEFAULT_ANSWERS.get(action)
    return answer(payload, wall) if answer is not None else {}


CHARGER_DEFAULT_ANSWERS: dict[str, Payload] = {
    "CancelReservation": {"status": "Accepted"},
    "CertificateSigned": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "ChangeConfiguration": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "DataTransfer": {"status": "Accepted"},
    "DeleteCertificate": {"status": "Accepted"},
    "ExtendedTriggerMessage": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "GetConfiguration": {
        "configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "LocalPreAuthorize", "readonly": False, "value": "false"},
            {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        ]
    },
    "GetDiagnostics": {"fileName": "diagnostics.log"},
    "GetInstalledCertificateIds": {"status": "NotFound"},
    "GetLocalListVersion": {"listVersion": 1},
    "GetLog": {"status": "Accepted", "filename": "security.log"},
    "InstallCertificate": {"status": "Accepted"},
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "ReserveNow": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "SignedUpdateFirmware": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "UpdateFirmware": {},
}

BOOT16 = {"chargePointVendor": "ACME", "chargePointModel": "Wallbox 22", "firmwareVersion": "1.0"}


def make_settings(
    *,
    north: NorthSettings | None = None,
    offline_authorize: bool = False,
    offline_grace: float = 30.0,
) -> Station16Settings:
    return Station16Settings(
        config_table=CONFIG_TABLE,
        north=north or NorthSettings(),
        offline_authorize=offline_authorize,
        offline_grace=offline_grace,
    )


@dataclass
class Bench:
    """One Station16 and its two fake peers. `now` is monotonic; the wall clock is T0 + now."""

    settings: Station16Settings = field(default_factory=make_settings)
    store: FakeStore = field(default_factory=FakeStore)
    now: float = 0.0
    core: Station16 = field(init=False)
    online: dict[Side, bool] = field(default_factory=lambda: {Side.SOUTH: False, Side.NORTH: False})
    sent: list[Frame] = field(default_factory=list)  # every frame the core sent, in order
    reports: list[Report] = field(default_factory=list)
    closes: list[Close] = field(default_factory=list)
    # calls the peers made that the core has not answered yet: id -> action
    waiting: dict[Side, dict[str, str]] = field(
        default_factory=lambda: {Side.SOUTH: {}, Side.NORTH: {}}
    )
    # calls the core made that the peers have not answered yet: id -> frame
    pending: dict[Side, dict[str, Frame]] = field(
        default_factory=lambda: {Side.SOUTH: {}, Side.NORTH: {}}
    )
    crashes: int = 0

    def __post_init__(self) -> None:
        self._message_ids = itertools.count(1)
        self._transaction_ids = itertools.count(1)
        self._peer_ids = itertools.count(1)
        self.core = self._build()

    # --- construction and crash -------------------------------------------------------------

    def _build(self) -> Station16:
        return Station16(
            "CP-1",
            SCHEMAS,
            lambda: f"m{next(self._message_ids)}",
            lambda: f"TX-{next(self._transaction_ids):04d}",
            self.store.load(),
            now=self.now,
            wall=self.wall(),
            settings=self.settings,
        )

    def wall(self) -> float:
        return T0 + self.now

    def restart(self) -> None:
        """The process died: a new core from the store; both connections are gone."""
        self.crashes += 1
        self.core = self._build()
        for side in Side:
            self.online[side] = False
            self.waiting[side].clear()
            self.pending[side].clear()

    # --- effects ------------------------------------------------------------------------------

    def drain(self, crash_after: int | None = None) -> list[Frame]:
        """Carry out the core's effects; with `crash_after`, crash after that many units."""
        effects = self.core.effects()
        done, crashed = apply_effects(effects, self.store, crash_after)
        frames = [self._sent(effect) for effect in done if isinstance(effect, Send)]
        for effect in done:
            if isinstance(effect, Report):
                self.reports.append(effect)
            elif isinstance(effect, Close):
                self.closes.append(effect)
        if crashed:
            self.restart()
        for effect in done:  # the adapter closes the connection; the core hears of its end
            if isinstance(effect, Close) and self.online[effect.side]:
                frames += self.disconnect(effect.side)
        return frames

    def _sent(self, send: Send) -> Frame:
        side = send.side
        assert self.online[side], f"the core sent on {side.value}, which is not connected"
        version = VERSION[side]
        message = json.loads(send.frame)
        assert isinstance(message, list) and message and message[0] in (2, 3, 4), send.frame
        kind, message_id = message[0], message[1]
        assert isinstance(message_id, str) and 0 < len(message_id) <= 36
        if kind == 2:
            assert len(message) == 4
            action, payload = message[2], message[3]
            violation = SCHEMAS.check(version, action, PayloadKind.REQUEST, payload)
            assert violation is None, f"{side.value} {action} request invalid: {violation}"
            assert message_id not in self.pending[side], "message id reused"
            frame = Frame(side, 2, message_id, action, payload)
            self.pending[side][message_id] = frame
        elif kind == 3:
            assert len(message) == 3
            assert message_id in self.waiting[side], f"answer to no waiting call: {send.frame}"
            action = self.waiting[side].pop(message_id)
            violation = SCHEMAS.check(version, action, PayloadKind.RESPONSE, message[2])
            assert violation is None, f"{side.value} {action} response invalid: {violation}"
            frame = Frame(side, 3, message_id, action, message[2])
        else:
            assert len(message) == 5
            assert message[2] in VALID_CODES[version], message[2]
            assert isinstance(message[3], str) and isinstance(message[4], dict)
            assert message_id in self.waiting[side], f"error to no waiting call: {send.frame}"
            action = self.waiting[side].pop(message_id)
            frame = Frame(
                side,
                4,
                message_id,
                action,
                {"code": message[2], "description": message[3], "details": message[4]},
            )
        self.sent.append(frame)
        return frame

    # --- connections, time ----------------------------------------------------------------------

    def connect(self, side: Side) -> list[Frame]:
        self.online[side] = True
        self.core.connection_made(side, self.now, self.wall())
        return self.drain()

    def disconnect(self, side: Side) -> list[Frame]:
        self.core.connection_lost(side, self.now, self.wall())
        frames = self.drain()
        self.online[side] = False
        self.waiting[side].clear()
        self.pending[side].clear()
        return frames

    def advance(self, seconds: float) -> list[Frame]:
        """Let time pass, firing every deadline on the way."""
        target = self.now + seconds
        frames: list[Frame] = []
        for _ in range(10_000):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now, self.wall())
            frames += self.drain()
        else:  # pragma: no cover - a core that never stops asking for the timer
            raise AssertionError("the core's deadline does not move")
        self.now = target
        self.core.handle_timer(self.now, self.wall())
        return frames + self.drain()

    # --- the peers --------------------------------------------------------------------------------

    def _peer_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._peer_ids)}"

    def send(
        self,
        side: Side,
        action: str,
        payload: Payload,
        message_id: str | None = None,
        crash_after: int | None = None,
    ) -> list[Frame]:
        """The peer on `side` sends a CALL."""
        message_id = message_id or self._peer_id("c" if side is Side.SOUTH else "s")
        self.waiting[side][message_id] = action
        self.core.receive(side, json.dumps([2, message_id, action, payload]), self.now, self.wall())
        return self.drain(crash_after)

    def charger(self, action: str, payload: Payload, **kwargs: Any) -> list[Frame]:
        return self.send(Side.SOUTH, action, payload, **kwargs)

    def csms(self, action: str, payload: Payload, **kwargs: Any) -> list[Frame]:
        return self.send(Side.NORTH, action, payload, **kwargs)

    def outstanding(self, side: Side) -> Frame | None:
        """The oldest call of the core on `side` the peer has not answered."""
        return next(iter(self.pending[side].values()), None)

    def answer(
        self,
        side: Side,
        payload: Payload | None = None,
        *,
        message_id: str | None = None,
        crash_after: int | None = None,
    ) -> list[Frame]:
        """The peer answers the core's call (the oldest one by default)."""
        frame = self.pending[side][message_id] if message_id else self.outstanding(side)
        assert frame is not None, f"no call of the core waits on {side.value}"
        if payload is None:
            if side is Side.NORTH:
                payload = csms_default_answer(frame.action, frame.payload, self.wall())
            else:
                payload = CHARGER_DEFAULT_ANSWERS.get(frame.action, {})
        del self.pending[side][frame.message_id]
        self.core.receive(side, json.dumps([3, frame.message_id, payload]), self.now, self.wall())
        return self.drain(crash_after)

    def error(
        self, side: Side, code: str = "InternalError", *, message_id: str | None = None
    ) -> list[Frame]:
        frame = self.pending[side][message_id] if message_id else self.outstanding(side)
        assert frame is not None
        del self.pending[side][frame.message_id]
        self.core.receive(
            side, json.dumps([4, frame.message_id, code, "", {}]), self.now, self.wall()
        )
        return self.drain()

    def answer_all(self, side: Side, limit: int = 100) -> list[Frame]:
        """Answer the core's calls on `side` (default answers) until none waits."""
        frames: list[Frame] = []
        for _ in range(limit):
            if self.outstanding(side) is None:
                return frames
            frames += self.answer(side)
        raise AssertionError(f"the core keeps calling on {side.value}")

    # --- scenarios --------------------------------------------------------------------------------

    def boot(self, *, csms_status: str = "Accepted") -> None:
        """Charger and CSMS connected, the charger booted and the CSMS answered its boot."""
        if not self.online[Side.NORTH]:
            self.connect(Side.NORTH)
        if not self.online[Side.SOUTH]:
            self.connect(Side.SOUTH)
        self.charger("BootNotification", BOOT16)
        boot = self.outstanding(Side.NORTH)
        assert boot is not None and boot.action == "BootNotification"
        self.answer(
            Side.NORTH,
            {"status": csms_status, "currentTime": iso(self.wall()), "interval": 300},
        )

    def frames(
        self, side: Side | None = None, action: str | None = None, kind: int | None = None
    ) -> list[Frame]:
        return [
            f
            for f in self.sent
            if (side is None or f.side is side)
            and (action is None or f.action == action)
            and (kind is None or f.kind == kind)
        ]

    def events(self) -> list[Payload]:
        """Every TransactionEvent request sent to the CSMS, in order (redeliveries included)."""
        return [f.payload for f in self.frames(Side.NORTH, "TransactionEvent", 2)]

    def report_kinds(self) -> list[str]:
        return [r.diagnostic.kind for r in self.reports]


def select(frames: list[Frame], action: str | None = None, kind: int | None = None) -> list[Frame]:
    return [
        f
        for f in frames
        if (action is None or f.action == action) and (kind is None or f.kind == kind)
    ]


def only(frames: list[Frame], action: str | None = None, kind: int | None = None) -> Frame:
    chosen = select(frames, action, kind)
    assert len(chosen) == 1, f"expected one {action or ''} frame, got {chosen}"
    return chosen[0]
