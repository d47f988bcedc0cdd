"""A simulated IEC 104 charger (the controlled station, "outstation") laid out per any compiled table.

`ocpp-bridge simulate iec104` and the demo's dial-in card charger run it. It speaks with the product's
own codecs (`bridge.stations.iec104.asdu`, `registration`, `private`, `timetags`) and the table's ASDU field
sizes; it is a simulator for operators, not an independent test peer.

```python
sim = Outstation(table, serial="SN20260001", price=1.5)
await sim.dial_in("127.0.0.1", 2405)        # registration frame, then 104; reconnects until stopped
# or: host, port = await sim.listen("127.0.0.1", 0)      (the bridge dials it)
await sim.wait_ready()                       # STARTDT con sent and the first interrogation answered
await sim.plug_in(1)
status = await sim.swipe("1234567890123456")  # the bridge's answer: "Accepted" → it starts charging
await sim.deliver(1, 2_000, power_kw=60.0)
await sim.swipe("1234567890123456")          # stops: charging off, then the settlement record
await sim.wait_settled()
await sim.stop()
```

Rules
- Link (IEC 60870-5-104 §5, controlled side): STARTDT act and TESTFR act are confirmed; STOPDT act is
  confirmed and stops its I-frames; received I-frames are acknowledged by an S-frame after w of them
  or half of t2 (the table's `link`) after the oldest, and by every I-frame it sends; at most k of its
  own I-frames are unacknowledged, the rest wait in order. A frame it cannot read closes the
  connection.
- Application: C_IC_NA_1 → ACT_CON, every monitoring point but the counters (COT 20, objects of one
  type grouped), ACT_TERM; C_CI_NA_1 → ACT_CON, the counters (COT 37), ACT_TERM; C_CS_NA_1 and
  C_RP_NA_1 → ACT_CON; C_RD_NA_1 → the point (COT 5); every command and setpoint → ACT_CON (negative
  for the IOAs in `refuse`), ACT_TERM too when the table expects it; a select only selects. With
  `react`, a positive start/stop command (the table's RequestStartTransaction/RequestStopTransaction)
  makes it start or stop charging `react_delay` seconds later, as a real charger does.
- Registration: with a table that declares one, the first bytes on every connection (dial-in and
  listen) are the registration frame with `serial` in the id field; it then reads the answer (the
  table's `accepted` or `refused` frame). Refused: reported, the connection closed, no retry.
- Private ASDUs, where the table declares them: `swipe(card)` sends the authorize request (the card per
  the field's type, bcd or ascii) and returns the status the answer's code means. An accepted card
  starts charging on a plugged-in connector that is not charging (or when it is plugged in later), and
  stops a connector that is charging. When charging stops, a session ends: with a settlement ASDU in
  the table it sends the record (the session's card, empty for a session without one; start and end
  as CP56 in the table's time zone; meter start and stop from its energy counter; amount = kWh ×
  `price` per kWh; stop reason: the table's code for Local, else 0) and keeps it until acknowledged,
  sending it again after every reconnect.
- Everything it does is told to `on_event` (one short line each, for a live view) and every frame is
  logged at debug (`sim104.frame`, direction and hex). `stop()` ends every task and connection it
  started.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import zoneinfo
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.ops.logs import get_logger
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.asdu import (
    TYPE_IDS,
    TYPE_NAMES,
    Asdu,
    AsduError,
    Cp24,
    InfoObject,
    cp56_from_epoch,
    decode_asdu,
    encode_asdu,
)
from bridge.stations.iec104.compiled import asdu_format
from bridge.stations.iec104.private import (
    NUMBER_TYPES,
    Authorize,
    AuthorizeAnswer,
    FieldSpec,
    FieldValue,
    LayoutError,
    PrivateRule,
    Settlement,
    SettlementAck,
    integer_range,
    object_bytes,
    split_object,
)
from bridge.stations.iec104.rules import CounterRule, EnumRule

DEFAULT_SERIAL: Final = "SIM0001"
DOUBLE_OFF, DOUBLE_ON = 1, 2
COT_PERIODIC, COT_SPONT, COT_REQ, COT_ACT, COT_CON, COT_TERM = 1, 3, 5, 6, 7, 10
COT_INROGEN, COT_REQCOGEN = 20, 37
C_IC, C_CI, C_RD, C_CS, C_RP = 100, 101, 102, 103, 105
COMMANDS: Final = frozenset({45, 46, 47, 48, 49, 50, 51, 58, 59, 60, 61, 62, 63, 64})
GROUP: Final = 10  # objects per interrogation ASDU (the largest object, 15 bytes: 156-byte ASDUs)
_MODULO: Final = 32768
STARTDT_ACT, STARTDT_CON, STOPDT_ACT, STOPDT_CON, TESTFR_ACT, TESTFR_CON = (
    0x07,
    0x0B,
    0x13,
    0x23,
    0x43,
    0x83,
)


class RegistrationRefused(Exception):
    """The bridge answered the registration frame with the table's `refused` frame."""


@dataclass(slots=True)
class _Session:
    card: str
    started: float  # epoch seconds
    meter_start: int  # the energy counter's raw value


@dataclass(slots=True)
class _Connector:
    plugged: bool = False
    charging: bool = False
    authorized: str | None = None  # an accepted card waiting for the plug
    session: _Session | None = None


@dataclass(slots=True)
class _Conn:
    """One TCP connection's APCI state (the controlled station's side)."""

    writer: asyncio.StreamWriter
    started: bool = False
    vs: int = 0  # N(S) of our next I-frame
    vr: int = 0  # N(S) the next received I-frame carries
    acked: int = 0  # the peer's latest N(R)
    unacked_received: int = 0
    ack_timer: asyncio.TimerHandle | None = None
    queue: deque[bytes] = field(default_factory=deque)


class Outstation:
    def __init__(
        self,
        table: CompiledTable,
        *,
        common_address: int | None = None,
        serial: str | None = None,
        price: float = 1.0,
        initial: dict[int, Any] | None = None,
        react: bool = True,
        react_delay: float = 0.3,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.table = table
        self.format = asdu_format(table)
        self.common_address = (
            table.station.common_address if common_address is None else common_address
        )
        self.serial = serial or DEFAULT_SERIAL
        self.price = price
        self.react = react
        self.react_delay = react_delay
        self.zone = zoneinfo.ZoneInfo(table.station.time_zone)
        self.on_event = on_event
        self.log = get_logger("ocpp_bridge.simulate")
        self.values: dict[int, Any] = {}
        self.commands: list[tuple[int, Any]] = []
        self.refuse: set[int] = set()
        self.connectors = {n: _Connector() for n in range(1, table.connectors + 1)}
        self.acknowledged: list[bytes] = []  # settlement records the bridge acknowledged
        self.events: list[str] = []
        self.refused = False
        self._pending: deque[tuple[int, bytes]] = deque()  # settlement records: (connector, ASDU)
        self._answers: dict[int, asyncio.Future[str]] = {}  # connector → the swipe's answer
        self._conn: _Conn | None = None
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self._lock = asyncio.Lock()  # charging changes one after the other
        self._start_stop: dict[int, int] = {}
        for action in ("RequestStartTransaction", "RequestStopTransaction"):
            for connector in range(1, table.connectors + 1):
                target = table.command(action, connector)
                if target is not None:
                    self._start_stop[target.ioa] = connector
        for rule in table.monitoring.values():
            type_name = str(rule.type_id)
            self.values[rule.ioa] = DOUBLE_OFF if type_name.startswith("M_DP") else 0
        for connector in self.connectors:
            for key, value in (("gun_holstered", True), ("output_contactor", DOUBLE_OFF)):
                ioa = self.ioa(key, connector)
                if ioa is not None:
                    self.values[ioa] = value
            self._set_enum(connector, "work_status", "idle")
            meter = self._meter_ioa(connector)
            if meter is not None:
                self.values[meter] = 100_000
        self.values.update(initial or {})

    # --- what it has ------------------------------------------------------------------------------

    def rule(self, kind: type) -> PrivateRule | None:
        """The table's private ASDU whose meaning is of `kind` (Authorize, Settlement, …)."""
        for rule in self.table.private.values():
            if isinstance(rule.meaning, kind):
                return rule
        return None

    @property
    def has_cards(self) -> bool:
        return self.rule(Authorize) is not None

    @property
    def link_up(self) -> bool:
        return self._ready.is_set()

    def ioa(self, key: str, connector: int | None = None) -> int | None:
        for rule in self.table.monitoring.values():
            if rule.key == key and rule.connector == connector:
                return rule.ioa
        return None

    def _meter_ioa(self, connector: int) -> int | None:
        transaction = self.table.logic_for(connector).transaction
        if transaction is not None and transaction.meter_ioa is not None:
            return transaction.meter_ioa
        return self.ioa("energy_total", connector)

    def meter_wh(self, connector: int) -> float:
        ioa = self._meter_ioa(connector)
        if ioa is None:
            return 0.0
        rule = self.table.monitoring[ioa]
        raw = int(self.values.get(ioa, 0))
        if isinstance(rule, CounterRule):
            return rule.wh(raw) or 0.0
        return float(raw)

    def _tell(self, text: str) -> None:
        self.events.append(text)
        del self.events[:-100]
        self.log.info("sim104.event", what=text)
        if self.on_event is not None:
            self.on_event(text)

    # --- connections ------------------------------------------------------------------------------

    async def dial_in(
        self, host: str, port: int, retry: float = 1.0, others: tuple[tuple[str, int], ...] = ()
    ) -> None:
        """Connect to the bridge's iec104_listen (again after every drop) until `stop`. With `others`
        (every replica's address, as a charger behind no load balancer is given), each new attempt
        after a drop or a refused connection goes to the next address in turn."""
        self._spawn(self._dial_loop([(host, port), *others], retry))

    async def _dial_loop(self, addresses: list[tuple[str, int]], retry: float) -> None:
        turn = 0
        while not self._closing and not self.refused:
            host, port = addresses[turn % len(addresses)]
            turn += 1
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                self._tell(f"cannot reach {host}:{port} ({exc.strerror or exc}); retrying")
                await asyncio.sleep(retry)
                continue
            self._tell(f"connected to {host}:{port}")
            await self._connection(reader, writer)
            if not self._closing and not self.refused:
                await asyncio.sleep(retry)

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """A TCP server the bridge dials (a new connection replaces the previous one)."""

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                old = self._conn
                if old is not None:
                    old.writer.close()
                peer = writer.get_extra_info("peername")
                self._tell(f"bridge connected from {peer[0]}:{peer[1]}" if peer else "connected")
                await self._connection(reader, writer)
            except asyncio.CancelledError:
                # stop(): ends quietly. A connection callback's task that ends cancelled makes
                # asyncio (3.11) log "Exception in callback ... CancelledError" with a traceback.
                if not self._closing:
                    raise
            finally:
                if task is not None:
                    self._tasks.discard(task)

        self._server = await asyncio.start_server(accepted, host, port)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def stop(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._conn is not None:
            self._conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def wait_ready(self, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            await self._ready.wait()

    async def wait_settled(self, within: float = 30.0) -> None:
        """Until every settlement record was acknowledged."""
        async with asyncio.timeout(within):
            await self._settled.wait()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            spec = self.table.registration
            if spec is not None:
                frame = self._registration_frame()
                self._frame_log("out", frame, "registration")
                writer.write(frame)
                answer = await asyncio.wait_for(reader.readexactly(len(spec.accepted)), 30)
                self._frame_log("in", answer, "registration answer")
                if answer != spec.accepted:
                    self.refused = answer == spec.refused
                    self._tell(f"registration {self.serial} refused ({answer.hex(' ')})")
                    return
                self._tell(f"registered as {self.serial}")
            conn = _Conn(writer)
            self._conn = conn
            while True:
                head = await reader.readexactly(2)
                if head[0] != 0x68 or head[1] < 4:
                    self._tell(f"unreadable frame start {head.hex(' ')}: closing")
                    return
                body = await reader.readexactly(head[1])
                self._apdu(conn, body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, OSError):
            pass
        finally:
            if self._conn is not None and self._conn.writer is writer:
                self._conn = None
                if self._ready.is_set():
                    self._tell("link down")
                self._ready.clear()
                for future in self._answers.values():
                    if not future.done():
                        future.set_result("(no answer: link down)")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _registration_frame(self) -> bytes:
        spec = self.table.registration
        assert spec is not None
        payload = bytearray()
        for field_spec in spec.fields:
            if field_spec.name == spec.id_field:
                chunk = field_spec.write(self.serial, self.zone, len(self.serial))
            else:
                chunk = field_spec.write(_zero(field_spec), self.zone)
            payload[field_spec.offset : field_spec.offset + len(chunk)] = chunk
        return spec.frame(bytes(payload))

    def _frame_log(self, direction: str, data: bytes, what: str) -> None:
        self.log.debug("sim104.frame", direction=direction, what=what, hex=data.hex(" "))

    # --- APCI -------------------------------------------------------------------------------------

    def _write(self, conn: _Conn, data: bytes, what: str) -> None:
        self._frame_log("out", data, what)
        conn.writer.write(data)

    def _apdu(self, conn: _Conn, body: bytes) -> None:
        control = body[0]
        if control & 1 == 0:
            ns = int.from_bytes(body[0:2], "little") >> 1
            nr = int.from_bytes(body[2:4], "little") >> 1
            self._frame_log("in", b"\x68" + bytes([len(body)]) + body, f"I N(S)={ns} N(R)={nr}")
            if ns != conn.vr:
                self._tell(f"sequence error: N(S)={ns}, expected {conn.vr}: closing")
                conn.writer.close()
                return
            conn.vr = (conn.vr + 1) % _MODULO
            self._acknowledged(conn, nr)
            conn.unacked_received += 1
            if conn.unacked_received >= self.table.link.w:
                self._send_s(conn)
            elif conn.ack_timer is None:
                delay = self.table.link.t2 / 2
                conn.ack_timer = asyncio.get_running_loop().call_later(delay, self._send_s, conn)
            self._asdu(conn, body[4:])
        elif control & 3 == 1:
            nr = int.from_bytes(body[2:4], "little") >> 1
            self._frame_log("in", b"\x68\x04" + body, f"S N(R)={nr}")
            self._acknowledged(conn, nr)
        else:
            self._frame_log("in", b"\x68\x04" + body, f"U {control:#04x}")
            if control == STARTDT_ACT:
                self._write(conn, _u(STARTDT_CON), "STARTDT con")
                conn.started = True
                self._tell("data transfer started")
                self._pump(conn)
            elif control == STOPDT_ACT:
                self._send_s(conn)
                self._write(conn, _u(STOPDT_CON), "STOPDT con")
                conn.started = False
            elif control == TESTFR_ACT:
                self._write(conn, _u(TESTFR_CON), "TESTFR con")

    def _acknowledged(self, conn: _Conn, nr: int) -> None:
        if (nr - conn.acked) % _MODULO <= (conn.vs - conn.acked) % _MODULO:
            conn.acked = nr
            self._pump(conn)

    def _send_s(self, conn: _Conn) -> None:
        if conn.ack_timer is not None:
            conn.ack_timer.cancel()
            conn.ack_timer = None
        if conn.unacked_received and not conn.writer.is_closing():
            conn.unacked_received = 0
            self._write(conn, bytes([0x68, 4, 1, 0]) + (conn.vr << 1).to_bytes(2, "little"), "S")

    def _send(self, asdu: Asdu) -> None:
        """Queue one ASDU on the current connection (dropped when there is none)."""
        conn = self._conn
        if conn is None:
            return
        conn.queue.append(encode_asdu(asdu, self.format))
        self._pump(conn)

    def _pump(self, conn: _Conn) -> None:
        while (
            conn.started
            and conn.queue
            and (conn.vs - conn.acked) % _MODULO < self.table.link.k
            and not conn.writer.is_closing()
        ):
            payload = conn.queue.popleft()
            control = (conn.vs << 1).to_bytes(2, "little") + (conn.vr << 1).to_bytes(2, "little")
            name = TYPE_NAMES.get(payload[0], f"type {payload[0]}")
            self._write(conn, bytes([0x68, len(payload) + 4]) + control + payload, f"I {name}")
            conn.vs = (conn.vs + 1) % _MODULO
            conn.unacked_received = 0
            if conn.ack_timer is not None:
                conn.ack_timer.cancel()
                conn.ack_timer = None

    # --- ASDUs ------------------------------------------------------------------------------------

    def _asdu(self, conn: _Conn, data: bytes) -> None:
        asdu = decode_asdu(data, self.format)
        if isinstance(asdu, AsduError):
            self._tell(f"unreadable ASDU ({asdu.what}): ignored")
            return
        type_id = asdu.type_id
        if type_id >= 128 or asdu.raw:
            self._private(asdu)
            return
        reply = asdu._replace(cot=COT_CON, common_address=self.common_address)
        if type_id == C_IC:
            self._send(reply)
            self._interrogation(counters=False)
            self._send(reply._replace(cot=COT_TERM))
            if not self._ready.is_set():
                self._ready.set()
                self._tell("link up")
                self._resend_settlements()
        elif type_id == C_CI:
            self._send(reply)
            self._interrogation(counters=True)
            self._send(reply._replace(cot=COT_TERM))
        elif type_id in (C_CS, C_RP):
            self._send(reply)
        elif type_id == C_RD:
            for obj in asdu.objects:
                if obj.ioa in self.values:
                    self._send_points([obj.ioa], COT_REQ)
        elif type_id in COMMANDS:
            self._command(asdu, reply)

    def _command(self, asdu: Asdu, reply: Asdu) -> None:
        obj = asdu.objects[0]
        select = bool(obj.qualifier & 0x80)
        refused = obj.ioa in self.refuse or self.table.controls.get(obj.ioa) is None
        self._send(reply._replace(negative=refused))
        if select or refused:
            return
        self.commands.append((obj.ioa, obj.value))
        if self.table.station.expects_act_term:
            self._send(reply._replace(cot=COT_TERM))
        connector = self._start_stop.get(obj.ioa)
        name = TYPE_NAMES.get(asdu.type_id, str(asdu.type_id))
        self._tell(f"command {name} IOA 0x{obj.ioa:04X} = {obj.value!r}")
        if connector is not None and self.react:
            on = obj.value == DOUBLE_ON if asdu.type_id in (46, 59) else bool(obj.value)
            self._spawn(self._react(connector, on))

    async def _react(self, connector: int, on: bool) -> None:
        await asyncio.sleep(self.react_delay)
        if on and not self.connectors[connector].plugged:
            return
        await self.set_charging(connector, on)

    def _interrogation(self, *, counters: bool) -> None:
        ioas = [
            ioa
            for ioa, rule in sorted(self.table.monitoring.items())
            if str(rule.type_id).startswith("M_IT") == counters
        ]
        self._send_points(ioas, COT_REQCOGEN if counters else COT_INROGEN)

    def _send_points(self, ioas: list[int], cot: int) -> None:
        by_type: dict[int, list[InfoObject]] = {}
        for ioa in ioas:
            type_name = str(self.table.monitoring[ioa].type_id)
            by_type.setdefault(TYPE_IDS[type_name], []).append(self._object(ioa, type_name))
        for type_id, objects in by_type.items():
            for start in range(0, len(objects), GROUP):
                chunk = tuple(objects[start : start + GROUP])
                self._send(Asdu(type_id, cot, self.common_address, chunk))

    def _object(self, ioa: int, type_name: str) -> InfoObject:
        value = self.values.get(ioa, 0)
        if type_name.startswith("M_SP"):
            value = bool(value)
        elif type_name.startswith("M_DP") or type_name.startswith("M_IT"):
            value = int(value)
        elif type_name in ("M_ME_NB_1", "M_ME_TB_1", "M_ME_TE_1", "M_ST_NA_1"):
            value = round(float(value))
        elif type_name in ("M_ME_NA_1", "M_ME_TA_1", "M_ME_TD_1", "M_ME_ND_1"):
            value = max(-1.0, min(32767 / 32768, float(value)))
        else:
            value = float(value)
        stamp: Any = None
        if type_name[5] == "T":  # time-tagged: TA (CP24) or TB..TF (CP56)
            now = time.time()
            stamp = cp56_from_epoch(now, self.zone)
            if type_name[6] == "A":
                stamp = Cp24(stamp.milliseconds, stamp.minute)
        return InfoObject(ioa, value, time=stamp)

    # --- private ASDUs ----------------------------------------------------------------------------

    def _private(self, asdu: Asdu) -> None:
        split = split_object(asdu.raw, self.format.ioa_size)
        if isinstance(split, LayoutError):
            self._tell(f"private type {asdu.type_id}: {split.what}")
            return
        ioa, data = split
        rule = next(
            (
                r
                for r in self.table.private.values()
                if r.direction == "out" and r.type_id == asdu.type_id and ioa in r.ioas()
            ),
            None,
        )
        if rule is None:
            self._tell(f"private type {asdu.type_id} at IOA 0x{ioa:04X}: not in the table")
            return
        values = rule.layout.decode(data, self.zone)
        if isinstance(values, LayoutError):
            self._tell(f"{rule.name}: {values.what}")
            return
        connector = rule.connector_of(ioa) or 1
        meaning = rule.meaning
        if isinstance(meaning, AuthorizeAnswer):
            code = values.get(meaning.result)
            status = next((s for s, c in meaning.codes.items() if c == code), f"code {code!r}")
            future = self._answers.get(connector)
            if future is not None and not future.done():
                future.set_result(status)
            else:
                self._tell(f"card answer {status} that nothing asked for")
        elif isinstance(meaning, SettlementAck):
            result = values.get(meaning.result)
            if self._pending:
                _, record = self._pending.popleft()
                self.acknowledged.append(record)
            if not self._pending:
                self._settled.set()
            self._tell(f"settlement acknowledged (result {result!r})")
        else:
            self._tell(f"{rule.name} received: {values}")

    async def swipe(self, card: str, connector: int = 1, within: float = 15.0) -> str:
        """Present a card; the bridge's answer as an AuthorizationStatus (or why there is none)."""
        rule = self.rule(Authorize)
        if rule is None:
            self._tell("this table declares no card authorization")
            return "(no cards in this table)"
        meaning = rule.meaning
        assert isinstance(meaning, Authorize)
        await self.wait_ready(within)
        try:
            data = rule.layout.encode(_values(rule, {meaning.id_token: card}), self.zone)
        except ValueError as exc:
            self._tell(f"card {card}: {exc}")
            return "(not a card this table can send)"
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answers[connector] = future
        self._send_private(rule, connector, data)
        self._tell(f"card {card} presented")
        try:
            async with asyncio.timeout(within):
                status = await future
        except TimeoutError:
            status = "(no answer)"
        self._tell(f"card {card}: {status}")
        if status == "Accepted":
            state = self.connectors[connector]
            if state.charging:
                await self.set_charging(connector, False)
            elif state.plugged:
                await self.set_charging(connector, True, card=card)
            else:
                state.authorized = card
        return status

    def _send_private(self, rule: PrivateRule, connector: int, data: bytes) -> None:
        ioa = rule.ioa_for(connector if rule.per_connector else None)
        raw = object_bytes(ioa, data, self.format.ioa_size)
        self._send(Asdu(rule.type_id, rule.cot, self.common_address, raw=raw, raw_count=1))

    def _settlement(self, connector: int, session: _Session) -> None:
        rule = self.rule(Settlement)
        if rule is None:
            return
        meaning = rule.meaning
        assert isinstance(meaning, Settlement)
        meter = self._meter_ioa(connector)
        stop_raw = int(self.values.get(meter, 0)) if meter is not None else 0
        wh_start = self._wh(meter, session.meter_start)
        wh_stop = self._wh(meter, stop_raw)
        given: dict[str, FieldValue] = {
            meaning.id_token: session.card or _zero(rule.layout.field(meaning.id_token)),
            meaning.started_at: session.started,
            meaning.ended_at: time.time(),
            meaning.meter_start.field: round(wh_start / meaning.meter_start.wh_per_count),
            meaning.meter_stop.field: round(wh_stop / meaning.meter_stop.wh_per_count),
        }
        if meaning.amount is not None:
            amount = (wh_stop - wh_start) / 1000 * self.price / meaning.amount.scale
            spec = rule.layout.field(meaning.amount.field)
            given[meaning.amount.field] = amount if spec.type == "float32" else round(amount)
        if meaning.stop_reason is not None:
            codes = meaning.stop_reason.codes
            given[meaning.stop_reason.field] = next(
                (code for code, reason in codes.items() if reason == "Local"), 0
            )
        data = rule.layout.encode(_values(rule, given), self.zone)
        ioa = rule.ioa_for(connector if rule.per_connector else None)
        record = Asdu(
            rule.type_id,
            rule.cot,
            self.common_address,
            raw=object_bytes(ioa, data, self.format.ioa_size),
            raw_count=1,
        )
        self._pending.append((connector, encode_asdu(record, self.format)))
        self._settled.clear()
        kwh = (wh_stop - wh_start) / 1000
        self._tell(f"settlement sent: {kwh:.2f} kWh, card {session.card or '-'}")
        self._send(record)

    def _resend_settlements(self) -> None:
        for _, record in self._pending:
            decoded = decode_asdu(record, self.format)
            if isinstance(decoded, Asdu):
                self._send(decoded)
                self._tell("settlement sent again (not acknowledged yet)")

    def _wh(self, meter: int | None, raw: int) -> float:
        if meter is None:
            return 0.0
        rule = self.table.monitoring[meter]
        return (rule.wh(raw) or 0.0) if isinstance(rule, CounterRule) else float(raw)

    # --- points and a session, as the charger lives it --------------------------------------------

    def set(self, ioa: int, value: Any) -> None:
        self.values[ioa] = value

    async def update(self, ioa: int, value: Any) -> None:
        """Change a point and report it spontaneously."""
        self.values[ioa] = value
        if self.link_up:
            self._send_points([ioa], COT_SPONT)

    async def update_named(self, connector: int, **values: Any) -> None:
        for key, value in values.items():
            ioa = self.ioa(key, connector)
            if ioa is not None:
                await self.update(ioa, value)

    def _set_enum(self, connector: int, key: str, name: str) -> int | None:
        ioa = self.ioa(key, connector)
        rule = self.table.monitoring.get(ioa) if ioa is not None else None
        if not isinstance(rule, EnumRule):
            return None
        code = next((c for c, n in rule.values.items() if n == name), None)
        if code is not None:
            assert ioa is not None
            self.values[ioa] = float(code)
        return code

    async def _update_enum(self, connector: int, key: str, name: str) -> None:
        if self._set_enum(connector, key, name) is not None:
            ioa = self.ioa(key, connector)
            assert ioa is not None
            await self.update(ioa, self.values[ioa])

    async def plug_in(self, connector: int = 1) -> None:
        state = self.connectors[connector]
        state.plugged = True
        await self.update_named(connector, gun_holstered=False, plug_connected=True)
        self._tell(f"connector {connector} plugged in")
        if state.authorized is not None:
            card, state.authorized = state.authorized, None
            await self.set_charging(connector, True, card=card)

    async def unplug(self, connector: int = 1) -> None:
        state = self.connectors[connector]
        if state.charging:
            await self.set_charging(connector, False)
        state.plugged = False
        await self.update_named(connector, plug_connected=False, gun_holstered=True)
        await self._update_enum(connector, "work_status", "idle")
        self._tell(f"connector {connector} unplugged")

    async def set_charging(self, connector: int, on: bool, *, card: str = "") -> None:
        """Power flows (contactor closed, lock engaged) or stops; a stop ends the session."""
        async with self._lock:
            state = self.connectors[connector]
            if state.charging == on:
                return
            state.charging = on
            if on:
                meter = self._meter_ioa(connector)
                start = int(self.values.get(meter, 0)) if meter is not None else 0
                state.session = _Session(card, time.time(), start)
                await self.update_named(connector, lock_engaged=True, output_contactor=DOUBLE_ON)
                await self._update_enum(connector, "work_status", "charging")
                await self.update_named(connector, charging=True)
                self._tell(f"connector {connector} charging" + (f" (card {card})" if card else ""))
                return
            await self.update_named(connector, output_current=0.0, output_power=0.0)
            await self.update_named(connector, charging=False, output_contactor=DOUBLE_OFF)
            await self.update_named(connector, lock_engaged=False)
            await self._update_enum(connector, "work_status", "finished")
            self._tell(f"connector {connector} stopped charging")
            session, state.session = state.session, None
            if session is not None:
                self._settlement(connector, session)

    async def deliver(
        self, connector: int, wh: float, *, power_kw: float, voltage: float = 400.0
    ) -> None:
        """`wh` more on the connector's energy register, with the output measurements of `power_kw`."""
        await self.update_named(
            connector,
            output_voltage=voltage,
            output_current=round(power_kw * 1000 / voltage, 1),
            output_power=power_kw,
        )
        ioa = self._meter_ioa(connector)
        if ioa is None:
            return
        rule = self.table.monitoring[ioa]
        per_count = (rule.wh(1) or 1.0) if isinstance(rule, CounterRule) else 1.0
        await self.update(ioa, int(self.values.get(ioa, 0)) + math.floor(wh / per_count + 0.5))


def _u(code: int) -> bytes:
    return bytes([0x68, 4, code, 0, 0, 0])


def _zero(spec: FieldSpec) -> FieldValue:
    if spec.type in NUMBER_TYPES:
        return 0.0 if spec.type == "float32" or spec.scale is not None else 0
    if spec.type == "bcd":
        return "0"
    if spec.type == "ascii":
        return ""
    if spec.type == "cp56":
        return None
    return bytes(spec.size or 0)


def _values(rule: PrivateRule, given: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """Every field of the rule's layout: the given ones (integers clamped to their range), others 0."""
    values: dict[str, FieldValue] = {}
    for spec in rule.layout.fields:
        value = given.get(spec.name, _zero(spec))
        if spec.type in NUMBER_TYPES and spec.type != "float32" and isinstance(value, int | float):
            raw = value / spec.scale if spec.scale else value
            low, high = integer_range(spec.type)
            raw = max(low, min(high, round(raw)))
            value = raw * spec.scale if spec.scale else raw
        values[spec.name] = value
    return values
