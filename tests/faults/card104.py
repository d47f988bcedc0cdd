"""The dial-in card charger of the fault runs: a vendor 104 charger per mappings/example-dialin-card.yaml.

`FaultCardCharger` is built on the byte-level dial-in charger of the end-to-end tests
(`tests.e2e.test_iec104_dial_in.WireCharger`, `tests.e2e.test_iec104_cards.CardCharger`: every byte
spelled out there, independent of the bridge's codecs). It dials in to the bridge's `[south]
iec104_listen`, sends its registration frame (`AA 55 | n | serial | sum8`), and once the bridge
started the link (STARTDT act) it is "connected". One `CardCharger` per TCP connection; the points and
the energy counter are the charger's and shared by all of them (an interrogation on any connection
answers the current values; a change is reported spontaneously on the live connection, if any).

A card session, as its user and the charger make it (`workload_card`):

    [a card the CSMS blocks: answer 2] → the session's card until it is accepted (answer 0; an
    offline refusal or a lost answer: swiped again) → plug in → charging rises → the counter (0x6401,
    10 Wh per count) grows → the card again to stop → the counter's last step, charging falls → the
    settlement record (132: card, start and end time, meter start/stop = the counter at plug-in and
    at the fall, amount, stop reason 0) → unplug → wait for the 133 acknowledgement

The settlement record is kept until the acknowledgement arrives: it goes on the live connection at
once, again after every reconnect (registration again), and again on the same connection when no
acknowledgement came in `ACK_RESEND` seconds. The bridge answers card requests in the order it
received them, so the n-th 131 on a connection answers its n-th request; a 133 names no record, so it
acknowledges the one outstanding record (`_read_acks`).

Faults of its own: `drop` closes or resets the TCP connection at any moment (the fault injector's
"drop-card"), and the charger drops it itself right after sending a settlement record, before reading
the acknowledgement (`DROP_AFTER_RECORD`). It dials in again after a short random pause.

The workload's rules, which the oracle (`harness.check_card`) relies on, are those of
`tests.faults.charger104`: the counter grows only while charging and after the session's Started
reached the CSMS, and takes a last step at the fall (every session's Begin register is unique and the
counter stands still from the fall until the next session charges); charging does not fall before the
Started reached the CSMS; the next session does not begin before the previous one's record was
acknowledged and its Ended reached the CSMS. Every session has its own card number (a stream of
customers), so the Started's and the Ended's idToken name the session too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tests.e2e.test_iec104_cards import (
    ACCEPTED,
    CARD_ANSWER,
    SETTLEMENT,
    SETTLEMENT_ACK,
    SETTLEMENT_IOA,
    CardCharger,
    bcd,
    private,
    registration,
)
from tests.e2e.test_iec104_dial_in import (
    CHARGING,
    COT_SPONT,
    ENERGY,
    HOLSTERED,
    IDLE_POINTS,
    M_IT_NA_1,
    PLUG,
    STARTDT_ACT,
    WORK_STATUS,
    asdu,
    element,
)

if TYPE_CHECKING:
    from tests.faults.harness import FaultCsms, Taps

MAPPING_NAME = "example-dialin-card"
ZONE = ZoneInfo("Asia/Shanghai")  # the table's time zone (gb-dc-charger)
WH_PER_COUNT = 10
FEN_PER_COUNT = 1.2  # the tariff: 1.20 yuan per kWh = 1.2 fen (0.01 yuan) per count of 0.01 kWh
ACCEPTED_CODE, UNKNOWN_CODE, BLOCKED_CODE = 0, 1, 2
IDLE_STATUS, CHARGING_STATUS, FINISHED_STATUS = 2.0, 3.0, 4.0
# long enough for a CSMS outage, a bridge restart and a reconnect together, and for an Ended that
# waits the bridge's settlement_wait (30 s) for a record that cannot arrive
SEE_TIMEOUT = 60.0
ACK_TIMEOUT = 90.0
ANSWER_TIMEOUT = 20.0  # the bridge answers a card request within its CSMS call timeout (10 s)
ACK_RESEND = 10.0
STARTDT_TIMEOUT = 10.0
DROP_AFTER_RECORD = 0.25
SWIPES = 200  # attempts at most for one card to be accepted


def cp56(moment: float) -> bytes:
    """CP56Time2a in the table's time zone: ms (2), minute, hour, day | weekday << 5, month, year."""
    local = datetime.fromtimestamp(moment, ZONE)
    ms = local.second * 1000 + local.microsecond // 1000
    return struct.pack("<H", ms) + bytes(
        [
            local.minute,
            local.hour,
            local.day | (local.isoweekday() << 5),
            local.month,
            local.year % 100,
        ]
    )


@dataclass(eq=False)
class CardSession:
    """One card session as the charger knows it (counter values in counts)."""

    index: int
    card: str
    begin: int
    started_at: float  # wall clock
    end: int | None = None  # the counter when charging fell
    amount: int = 0  # 0.01 yuan
    record: bytes | None = None  # the settlement record ASDU, the same bytes every time
    record_sends: int = 0
    acked: bool = False
    stop_answers: list[int | None] = field(default_factory=list)

    @property
    def begin_wh(self) -> float:
        return float(self.begin * WH_PER_COUNT)

    @property
    def end_wh(self) -> float | None:
        return None if self.end is None else float(self.end * WH_PER_COUNT)


@dataclass(eq=False)
class _Connection:
    """One TCP connection to the bridge and the requests sent on it, in order."""

    link: CardCharger
    swipes: int = 0
    records: list[CardSession] = field(default_factory=list)  # one per record sent, in order
    acks_read: int = 0
    record_sent_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.link.closed.is_set()


class FaultCardCharger:
    """A dial-in card charger with one connector whose card sessions the fault run drives."""

    def __init__(
        self, number: int, port: int, rng: random.Random, csms: FaultCsms, taps: Taps
    ) -> None:
        self.number = number
        self.station_id = f"FICARD-{number}"
        self.serial = f"SNFI{number:06d}"
        self.port = port  # the bridge's iec104_listen
        self.rng = rng
        self.csms = csms
        self.taps = taps
        self.blocked_card = f"99{number:02d}{0:012d}"
        csms.token_status[self.blocked_card] = "Blocked"
        self.points: dict[int, tuple[int, Any]] = dict(IDLE_POINTS)
        self.counter = 300_000 * number
        self.counters = {ENERGY: self.counter}
        self.sessions: list[CardSession] = []
        self.phase = "idle"  # idle → charging → stopped → idle
        self.unacked: CardSession | None = None
        self.connection: _Connection | None = None  # the live one (the bridge started the link)
        self.problems: list[str] = []
        self.stats: Counter[str] = Counter()
        self._connections: list[_Connection] = []
        self._task: asyncio.Task[None] | None = None

    # --- the connection --------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"card-charger:{self.station_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for connection in self._connections:
            await self._close(connection)
        self._connections.clear()

    async def _close(self, connection: _Connection) -> None:
        try:
            await asyncio.wait_for(connection.link.close(), 5)
        except (TimeoutError, OSError, ConnectionError):
            pass
        except Exception as exc:  # the byte reader refused what the bridge sent
            self.problems.append(f"{self.station_id}: the connection failed: {exc!r}")

    def drop(self, mode: str) -> bool:
        """Lose the link: "close" (FIN) or "abort" (TCP reset). False when not connected."""
        connection = self.connection
        writer = connection.link._writer if connection is not None else None
        if connection is None or writer is None or connection.closed:
            return False
        if mode == "close":
            writer.close()
        elif mode == "abort":
            writer.transport.abort()
        else:
            raise ValueError(mode)
        self.connection = None
        self.stats[f"drop-{mode}"] += 1
        return True

    async def _run(self) -> None:
        while True:
            connection = await self._dial()
            if connection is not None:
                self._connections.append(connection)
                try:
                    await self._serve(connection)
                finally:
                    if self.connection is connection:
                        self.connection = None
                    await self._close(connection)
                    self._connections.remove(connection)
            await asyncio.sleep(self.rng.uniform(0.02, 0.3))

    async def _dial(self) -> _Connection | None:
        """Connect and register; None when the bridge is not there or did not accept."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 3
            )
        except (OSError, TimeoutError):
            self.stats["connect-failed"] += 1
            return None
        try:
            writer.write(registration(self.serial.encode()))
            answer = await asyncio.wait_for(reader.readexactly(4), 5)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            self.stats["register-failed"] += 1
            answer = None
        if answer != ACCEPTED:
            if answer is not None:
                self.problems.append(f"{self.station_id}: registration answered {answer.hex()}")
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
            return None
        link = CardCharger()
        link.points = self.points  # shared: an interrogation reads the charger's current values
        link.counters = self.counters
        link.serve(reader, writer)
        self.stats["registered"] += 1
        return _Connection(link)

    async def _serve(self, connection: _Connection) -> None:
        link = connection.link
        deadline = time.monotonic() + STARTDT_TIMEOUT
        while STARTDT_ACT not in link.u_received:  # no I-frame before the bridge starts the link
            if connection.closed:
                return
            if time.monotonic() >= deadline:
                self.stats["startdt-timeout"] += 1
                return
            await asyncio.sleep(0.01)
        self.connection = connection
        self.stats["connected"] += 1
        while not connection.closed:
            self._read_acks(connection)
            session = self.unacked
            if session is not None and connection is self.connection:
                sent = connection.record_sent_at
                if sent is None or time.monotonic() - sent >= ACK_RESEND:
                    if sent is not None:
                        self.stats["record-resent-live"] += 1
                    self._send_record(connection, session)
            await asyncio.sleep(0.02)
        self._read_acks(connection)

    def _read_acks(self, connection: _Connection) -> None:
        """A 133 names no record: as a real charger, take it as the acknowledgement of the one
        outstanding record (there is never more than one). More acknowledgements on a connection
        than records sent on it are counted (`ack-beyond-sends`): the bridge wrote there the
        acknowledgement of a record the charger had sent on an earlier connection."""
        acks = connection.link.answers(SETTLEMENT_ACK)
        for data in acks[connection.acks_read :]:
            connection.acks_read += 1
            if connection.acks_read > len(connection.records):
                self.stats["ack-beyond-sends"] += 1
            if data != b"\x00":
                self.problems.append(f"{self.station_id}: a record answered {data.hex()}")
                continue
            self.stats["record-acks"] += 1
            session = self.unacked
            if session is None:
                self.stats["record-acked-again"] += 1
                continue
            if session not in connection.records and not connection.records:
                self.stats["ack-before-any-record-sent"] += 1
            session.acked = True
            self.unacked = None

    def _send_record(self, connection: _Connection, session: CardSession) -> None:
        assert session.record is not None
        connection.link.send(session.record)
        connection.records.append(session)
        connection.record_sent_at = time.monotonic()
        session.record_sends += 1
        self.stats["record-sends"] += 1
        if session.record_sends > 1:
            self.stats["record-sent-again"] += 1
        self.taps.notify("charger-sent")
        if self.rng.random() < DROP_AFTER_RECORD and self.drop(self.rng.choice(("close", "abort"))):
            self.stats["drop-after-record"] += 1

    def _set(self, address: int, value: Any) -> None:
        """Set a point now; report it spontaneously on the live connection."""
        connection = self.connection
        if connection is not None and not connection.closed:
            connection.link.update(address, value)
        else:
            self.points[address] = (self.points[address][0], value)

    def _set_counter(self, value: int) -> None:
        self.counter = value
        self.counters[ENERGY] = value
        connection = self.connection
        if connection is not None and not connection.closed:
            frame = asdu(
                M_IT_NA_1, COT_SPONT, connection.link.ca, ENERGY, element(M_IT_NA_1, value)
            )
            connection.link.send(frame)

    async def _live(self, timeout: float) -> _Connection | None:
        deadline = time.monotonic() + timeout
        while self.connection is None or self.connection.closed:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)
        return self.connection

    # --- what happens at the charger -------------------------------------------------------------

    async def swipe(self, card: str) -> int | None:
        """A card authorization request; the bridge's result code, or None (no link, link lost,
        no answer in time)."""
        connection = await self._live(5.0)
        if connection is None:
            self.stats["swipe-no-link"] += 1
            return None
        index = connection.swipes
        connection.swipes += 1
        connection.link.swipe(card)
        self.stats["swipes"] += 1
        self.taps.notify("charger-sent")
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while len(answers := connection.link.answers(CARD_ANSWER)) <= index:
            if connection.closed:
                self.stats["swipe-link-lost"] += 1
                return None
            if time.monotonic() >= deadline:
                self.problems.append(
                    f"{self.station_id}: card {card}: no answer in {ANSWER_TIMEOUT:g} s on a live link"
                )
                return None
            await asyncio.sleep(0.02)
        code = answers[index][0]
        self.stats[f"card-answer-{code}"] += 1
        return code

    async def authorize(self, card: str) -> bool:
        """Swipe until the card is accepted (an offline refusal or a lost answer: again)."""
        deadline = time.monotonic() + SEE_TIMEOUT
        for _ in range(SWIPES):
            code = await self.swipe(card)
            if code == ACCEPTED_CODE:
                return True
            if code not in (None, UNKNOWN_CODE):
                self.problems.append(f"{self.station_id}: card {card} answered {code}")
                return False
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(self.rng.uniform(0.05, 0.4))
        self.problems.append(f"{self.station_id}: card {card} not accepted in {SEE_TIMEOUT:g} s")
        return False

    async def blocked_swipe(self) -> None:
        code = await self.swipe(self.blocked_card)
        if code == ACCEPTED_CODE:
            self.problems.append(
                f"{self.station_id}: the blocked card {self.blocked_card} accepted"
            )

    def plug_in_and_charge(self, card: str) -> CardSession:
        assert self.phase == "idle"
        session = CardSession(len(self.sessions), card, self.counter, time.time())
        self.sessions.append(session)
        self.phase = "charging"
        self._set(HOLSTERED, False)
        self._set(PLUG, True)
        self._set(WORK_STATUS, CHARGING_STATUS)
        self._set(CHARGING, True)
        self.taps.notify("charger-sent")
        return session

    def grow(self, session: CardSession) -> None:
        if self.phase == "charging" and self.started_id(session) is not None:
            self._set_counter(self.counter + self.rng.randint(1, 500))

    def fall(self, session: CardSession) -> None:
        """The counter's last step, charging falls, the settlement record goes out."""
        assert self.phase == "charging"
        self._set_counter(self.counter + self.rng.randint(1, 500))
        session.end = self.counter
        self.phase = "stopped"
        self._set(CHARGING, False)
        self._set(WORK_STATUS, FINISHED_STATUS)
        session.amount = round((session.end - session.begin) * FEN_PER_COUNT)
        numbers = struct.pack("<IIIB", session.begin, session.end, session.amount, 0)
        data = bcd(session.card) + cp56(session.started_at) + cp56(time.time()) + numbers
        session.record = private(SETTLEMENT, SETTLEMENT_IOA, data)
        self.unacked = session
        connection = self.connection
        if connection is not None and not connection.closed:
            self._send_record(connection, session)
        self.taps.notify("charger-sent")

    def unplug(self) -> None:
        self.phase = "idle"
        self._set(PLUG, False)
        self._set(HOLSTERED, True)
        self._set(WORK_STATUS, IDLE_STATUS)

    # --- what the CSMS sees (FaultCsms indexes the TransactionEvents it received) -----------------

    def started_id(self, session: CardSession) -> str | None:
        found = self.csms.begins.get(self.station_id, {}).get(session.begin_wh)
        return found[-1] if found else None

    def ended(self, session: CardSession) -> bool:
        transaction_id = self.started_id(session)
        return (
            transaction_id is not None and (self.station_id, transaction_id) in self.csms.ended_ids
        )

    async def wait_until(self, what: str, session: CardSession, timeout: float, seen: Any) -> bool:
        deadline = time.monotonic() + timeout
        while not seen():
            if time.monotonic() >= deadline:
                self.problems.append(
                    f"{self.station_id}: session {session.index} (card {session.card}, begin"
                    f" {session.begin_wh:g} Wh): {what} not within {timeout:g} s"
                )
                return False
            await asyncio.sleep(0.05)
        return True


async def workload_card(
    charger: FaultCardCharger,
    rng: random.Random,
    *,
    transactions: int | None,
    done: asyncio.Event,
    pace: float = 0.15,
) -> None:
    """`transactions` card sessions one after another, or with None until `done`; a session begun
    is always finished."""
    count = 0
    while count < transactions if transactions is not None else not done.is_set():
        card = f"62{charger.number:02d}{len(charger.sessions):012d}"
        if rng.random() < 0.3:
            await charger.blocked_swipe()
        if not await charger.authorize(card):
            count += 1
            continue
        await asyncio.sleep(rng.uniform(0, pace))
        session = charger.plug_in_and_charge(card)
        started = await charger.wait_until(
            "Started at the CSMS",
            session,
            SEE_TIMEOUT,
            lambda s=session: charger.started_id(s) is not None,
        )
        if started:
            for _ in range(rng.randint(0, 4)):
                await asyncio.sleep(rng.uniform(0, 2 * pace))
                charger.grow(session)
        await asyncio.sleep(rng.uniform(0, pace))
        for _ in range(3):  # the same card stops it; the charger stops anyway after three tries
            code = await charger.swipe(card)
            session.stop_answers.append(code)
            if code == ACCEPTED_CODE:
                break
            await asyncio.sleep(rng.uniform(0.05, 0.3))
        charger.fall(session)
        await asyncio.sleep(rng.uniform(0, pace))
        charger.unplug()
        await charger.wait_until(
            "the record's acknowledgement", session, ACK_TIMEOUT, lambda s=session: s.acked
        )
        await charger.wait_until(
            "Ended at the CSMS", session, SEE_TIMEOUT, lambda s=session: charger.ended(s)
        )
        await asyncio.sleep(rng.uniform(0, pace))
        count += 1
