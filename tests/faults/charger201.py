"""An OCPP 2.0.1 charger for the fault harness, and its oracle (`check201`).

`FaultCharger201` is `tests.faults.harness.QueuedCharger` speaking 2.0.1 (the `ocpp` package's 2.0.1
ChargePoint, `tests.peers.Charger201`) to a pass-through station of the bridge (protocol "ocpp2.0.1",
`bridge.stations.passthrough`). What it inherits: its own persistent queue, one call at a time, a call
unanswered within `CHARGER_CALL_TIMEOUT` taken as a lost link, reconnection with a short random
back-off and, given every replica's address, a move to the next replica on every connection failure,
link loss or unanswered call. Its own rules:

- It boots (BootNotification, reason PowerUp) once per power-up, i.e. once per run, on its first
  connection. It does not boot again on a new connection: a 2.0.1 charger that lost its link and
  reconnects has not rebooted (B01 is the power-up); the CSMS knows the station from its id.
- StatusNotifications (Occupied at plug-in, Available when the transaction ended) are best effort: only
  queued while connected, dropped when the link is lost, never resent.
- Transactions are its own (E01–E06): transactionId its own string (`<station>-T<n>`), seqNo 0, 1, ...
  per transaction: TransactionEvent Started (triggerReason Authorized, idToken, meterValue with context
  Transaction.Begin), Updated (MeterValuePeriodic, one Sample.Periodic register each), Ended
  (StopAuthorized, stoppedReason Local, meterValue Transaction.End). Each
  TransactionEvent stays in the queue until its CALLRESULT and is sent again, unchanged (same
  transactionId, seqNo and payload; a new message id) after a reconnect (E04.FR.01/02, E12.FR.01/02).
- `offline` (E04.FR.03: true "for any TransactionRequest that occurred while the Charging Station was
  offline") is decided when the event occurs: true when the charger was not connected then, else
  false, and part of the payload from then on. A message that occurred online and whose first send
  was lost is sent again with offline=false: the spec asks the flag for events that occurred offline,
  and an unchanged payload lets the CSMS (and the oracle) see the copies are one message.
- A CALLERROR for a TransactionEvent (the bridge answers InternalError when its CSMS connection failed
  under the call: the event may or may not have reached the CSMS) leaves it in the queue: it is sent
  again after a short wait (E13's retries, without MessageAttempts' limit: nothing is ever dropped
  here). Any other code is a problem.
- Every frame it sends and receives is recorded raw (`_Wire`): which message ids carried each queued
  message, and the CALLRESULT's payload; every frame it receives is checked by a `FrameOracle`.

The harness's CSMS tags its TransactionEvent answers for these stations (`FaultCsms.tag_answers`):
customData {"vendorId": "fault-csms", "answer": "<CSMS session>/<message id the CSMS read>"}. The
bridge's pass-through re-sends a charger's CALL under a message id of its own (part 4 §6.4: ids it sends
must never collide with the CSMS's; `bridge.stations.passthrough.core`) and forwards the answer's payload
untouched, so this tag is how a CALLRESULT the charger got is paired with the copy the CSMS answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ocpp.charge_point import ChargePoint as BaseChargePoint
from ocpp.exceptions import OCPPError
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection

from tests.faults.harness import (
    ANSWER_VENDOR,
    FaultCsms,
    Outgoing,
    QueuedCharger,
    Received,
    Txn,
    _LinkLost,
)
from tests.peers import Charger201, FrameOracle, Recording
from tests.peers import now_iso as _now_iso

CALLERROR_RETRY = 0.2  # seconds before a TransactionEvent answered with a CALLERROR goes again


@dataclass(frozen=True, slots=True)
class WireCall:
    """One CALL the charger wrote (or tried to write) to a connection."""

    at: float
    connection: int
    message_id: str
    action: str
    payload: dict[str, Any]


class _Wire(Recording):
    """A `Recording` that keeps every CALL the charger sent and every answer it received, raw."""

    def __init__(self, connection: Any, oracle: FrameOracle, charger: FaultCharger201) -> None:
        super().__init__(connection, oracle)
        self._charger = charger
        self._number = len(charger.connections)

    async def send(self, raw: str) -> None:
        frame = json.loads(raw)
        if frame[0] == 2:  # recorded before the write: a copy may arrive even if the write fails
            self._charger.wire.append(
                WireCall(time.monotonic(), self._number, frame[1], frame[2], frame[3])
            )
        await super().send(raw)

    async def recv(self) -> str | bytes:
        raw = await super().recv()
        try:
            frame = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(frame, list) and len(frame) >= 3 and frame[0] in (3, 4):
            self._charger.answers[frame[1]] = frame
        return raw


@dataclass(eq=False)
class Txn201(Txn):
    transaction_id: str = ""
    seq_no: int = 0  # the next event's

    def next_seq_no(self) -> int:
        seq_no, self.seq_no = self.seq_no, self.seq_no + 1
        return seq_no


@dataclass(eq=False)
class Outgoing201(Outgoing):
    key: tuple[str, int] | None = None  # (transactionId, seqNo) of a TransactionEvent
    calls: list[WireCall] = field(default_factory=list)  # every CALL that carried it
    result: list[Any] | None = None  # the CALLRESULT frame that took it off the queue
    errors: list[list[Any]] = field(default_factory=list)  # CALLERROR frames

    def request(self) -> Any:
        return getattr(call201, self.action)(**self.fields)


class FaultCharger201(QueuedCharger):
    """A 2.0.1 charger with its own persistent transaction queue (the module's docstring)."""

    prefix = "FI201"
    subprotocol = "ocpp2.0.1"
    oracle_version = "2.0.1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[WireCall] = []
        self.answers: dict[str, list[Any]] = {}  # message id → the CALLRESULT/CALLERROR frame
        self.connections: list[ClientConnection] = []
        self.sent_order: list[Outgoing201] = []  # TransactionEvents in the order they were queued
        self.boots = 0

    # --- what the charger does ---------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self.connection is not None and self._lost is not None and not self._lost.is_set()

    def status(self, status: str) -> None:
        if self.online:
            fields = {
                "timestamp": _now_iso(),
                "connector_status": status,
                "evse_id": 1,
                "connector_id": 1,
            }
            self._queue(Outgoing201("StatusNotification", fields, durable=False))

    def _sample(self, context: str, unsynced: bool) -> dict[str, Any]:
        return {
            "timestamp": self._stamp(unsynced),
            "sampled_value": [
                {
                    "value": self.register,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                }
            ],
        }

    def _event(
        self, txn: Txn201, event_type: str, trigger: str, sample: dict[str, Any], **extra: Any
    ) -> None:
        seq_no = txn.next_seq_no()
        fields = {
            "event_type": event_type,
            "timestamp": sample["timestamp"],
            "trigger_reason": trigger,
            "seq_no": seq_no,
            "offline": not self.online,  # E04.FR.03: fixed when the event occurs
            "evse": {"id": 1, "connector_id": 1},
            "meter_value": [sample],
            **extra,
        }
        message = Outgoing201(
            "TransactionEvent",
            fields,
            txn,
            register=self.register,
            key=(txn.transaction_id, seq_no),
        )
        txn.messages.append(message)
        self.sent_order.append(message)
        self._queue(message)

    def begin(self, unsynced: bool = False) -> Txn:
        index = len(self.txns)
        txn = Txn201(
            index,
            f"T201-{self.number}X{index}",
            self.register,
            transaction_id=f"{self.station_id}-T{index}",
        )
        self.txns.append(txn)
        self.status("Occupied")
        self._event(
            txn,
            "Started",
            "Authorized",
            self._sample("Transaction.Begin", unsynced),
            transaction_info={"transaction_id": txn.transaction_id, "charging_state": "Charging"},
            id_token={"id_token": txn.id_tag, "type": "ISO14443"},
        )
        return txn

    def meter(self, txn: Txn, unsynced: bool = False) -> None:
        assert isinstance(txn, Txn201)
        self.register += self.rng.randint(1, 5000)
        txn.meter_values.append(self.register)
        self._event(
            txn,
            "Updated",
            "MeterValuePeriodic",
            self._sample("Sample.Periodic", unsynced),
            transaction_info={"transaction_id": txn.transaction_id},
        )

    def end(self, txn: Txn, unsynced: bool = False) -> None:
        assert isinstance(txn, Txn201)
        self.register += self.rng.randint(1, 5000)
        txn.meter_stop = self.register
        self._event(
            txn,
            "Ended",
            "StopAuthorized",
            self._sample("Transaction.End", unsynced),
            transaction_info={
                "transaction_id": txn.transaction_id,
                "charging_state": "Idle",
                "stopped_reason": "Local",
            },
            id_token={"id_token": txn.id_tag, "type": "ISO14443"},
        )
        self.status("Available")

    # --- the connection -------------------------------------------------------------------------

    def _charge_point(self, connection: ClientConnection, oracle: FrameOracle) -> Any:
        self.connections.append(connection)
        return Charger201(self.station_id, _Wire(connection, oracle, self))

    def _boot_request(self) -> Any:
        self.boots += 1
        return call201.BootNotification(
            charging_station={
                "model": "Fault-201",
                "vendor_name": "Acme",
                "firmware_version": "1.0",
            },
            reason="PowerUp",
        )

    async def _send(
        self, charge_point: BaseChargePoint, head: Outgoing, watched: tuple[asyncio.Task[Any], ...]
    ) -> None:
        assert isinstance(head, Outgoing201)
        if head.sent:
            self.stats["resent"] += 1
            self.stats[f"resent-{head.action}"] += 1
        head.sent.append(time.monotonic())
        before = len(self.wire)
        try:
            await self._exchange(charge_point, head.request(), watched)
        except _LinkLost:
            if not head.durable:
                self.queue.popleft()
            raise
        except OCPPError as exc:
            error = self.answers.get(self.wire[-1].message_id) if len(self.wire) > before else None
            head.errors.append(error or [4, "?", type(exc).__name__, str(exc), {}])
            self.stats[f"callerror-{head.action}"] += 1
            if not head.durable:
                self.queue.popleft()
                return
            if getattr(exc, "code", None) != "InternalError":
                self.problems.append(f"{self.station_id}: {head.key} answered with {exc!r}")
            await asyncio.sleep(CALLERROR_RETRY)
            return
        finally:
            head.calls += self.wire[before:]
        head.conf_at = time.monotonic()
        head.result = self.answers.get(head.calls[-1].message_id) if head.calls else None
        self.queue.popleft()
        self.stats[f"conf-{head.action}"] += 1


# --- the oracle --------------------------------------------------------------------------------------


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def check201(csms: FaultCsms, chargers: list[FaultCharger201]) -> tuple[list[str], Counter[str]]:
    """The oracle for 2.0.1 pass-through chargers, per station. The bridge relays; it has no queue of
    its own for them and must neither lose, answer nor multiply anything:

    - every TransactionEvent the charger queued, (transactionId, seqNo), reached the CSMS at least
      once (the charger's queue is empty at the end: each got its CALLRESULT);
    - every copy the CSMS got equals the charger's payload (so all copies are identical), and no
      (transactionId, seqNo) arrived that the charger never sent;
    - the CSMS never got more copies of a message than the charger sent CALLs carrying it (a pass-
      through bridge never sends one on its own): for TransactionEvents, and for every other CALL too
      (BootNotification, StatusNotification), counted per identical payload;
    - the CALLRESULT that took a TransactionEvent off the charger's queue carries the CSMS's tag
      (`FaultCsms.tag_answers`) of a copy of that very (transactionId, seqNo) which the CSMS read and
      answered: the bridge never answers a pass-through TransactionEvent by itself, nor with another
      message's answer;
    - first arrivals at the CSMS in the charger's order (the order it queued them);
    - the charger booted once per power-up and got no CALLERROR other than InternalError for a
      TransactionEvent; every frame it received is valid (`FrameOracle`; the CSMS's frames are checked
      by `check`, which covers every CSMS session).
    """
    problems: list[str] = []
    stats: Counter[str] = Counter()
    for charger in chargers:
        problems += charger.problems
        problems += [
            f"{charger.station_id} frame check: {p}" for o in charger.oracles for p in o.problems
        ]
        problems += _check_station201(csms, charger, stats)
        stats.update(charger.stats)
    return problems, stats


def _check_station201(csms: FaultCsms, charger: FaultCharger201, stats: Counter[str]) -> list[str]:
    station = charger.station_id
    problems: list[str] = []
    received = [r for r in csms.received if r.station_id == station]
    events = [r for r in received if r.action == "TransactionEvent"]
    copies: dict[tuple[str, int], list[Received]] = defaultdict(list)
    for event in events:
        key = (event.payload["transactionInfo"]["transactionId"], event.payload["seqNo"])
        copies[key].append(event)
    queued = {m.key: m for m in charger.sent_order if m.key is not None}
    for key in copies.keys() - queued.keys():
        problems.append(f"{station} {key}: at the CSMS, never sent by the charger")
    by_id = {(r.session, r.message_id): r for r in received}
    for key, message in queued.items():
        found = copies.get(key, [])
        where = f"{station} {key} ({message.fields['event_type']})"
        stats["201-events"] += 1
        stats["201-redelivered"] += max(0, len(found) - 1)
        stats["201-sent-again"] += max(0, len(message.calls) - 1)
        if message in charger.queue:
            problems.append(f"{where}: still in the charger's queue")
        if not found:
            problems.append(f"{where}: never reached the CSMS (sent {len(message.calls)} times)")
            continue
        sent = {_canonical(c.payload) for c in message.calls}
        if len(sent) != 1:
            problems.append(f"{where}: the charger's own copies differ: {sorted(sent)}")
        for copy in found:
            if _canonical(copy.payload) not in sent:
                problems.append(f"{where}: the CSMS got {copy.payload}, the charger sent {sent}")
        if len(found) > len(message.calls):
            problems.append(
                f"{where}: the CSMS got {len(found)} copies, the charger sent {len(message.calls)}"
                f" (CSMS sessions {[c.session for c in found]})"
            )
        if message.result is None:
            problems.append(f"{where}: no CALLRESULT recorded (conf at {message.conf_at})")
            continue
        tag = (message.result[2].get("customData") or {}) if len(message.result) > 2 else {}
        answer = str(tag.get("answer", "")) if tag.get("vendorId") == ANSWER_VENDOR else ""
        session, _, message_id = answer.partition("/")
        answered = by_id.get((int(session), message_id)) if session.isdigit() else None
        if answered is None or answered not in found:
            problems.append(
                f"{where}: its CALLRESULT {message.result} is not the CSMS's answer to a copy of"
                f" it (copies {[(c.session, c.message_id) for c in found]})"
            )
        elif (answered.session, answered.message_id) not in csms.acked:
            problems.append(f"{where}: its CALLRESULT names a copy the CSMS never answered")
    # every other CALL: never more copies at the CSMS than the charger sent
    sent_others = Counter(
        (c.action, _canonical(c.payload)) for c in charger.wire if c.action != "TransactionEvent"
    )
    got_others = Counter(
        (r.action, _canonical(r.payload)) for r in received if r.action != "TransactionEvent"
    )
    for (action, payload), count in (got_others - sent_others).items():
        problems.append(f"{station}: the CSMS got {count} more {action} than sent: {payload}")
    if not charger.booted:
        problems.append(f"{station}: never booted ({charger.boots} BootNotifications sent)")
    # first arrivals in the charger's order
    position = {m.key: n for n, m in enumerate(charger.sent_order)}
    order: list[int] = []
    seen: set[tuple[str, int]] = set()
    for event in events:
        key = (event.payload["transactionInfo"]["transactionId"], event.payload["seqNo"])
        if key not in seen and key in position:
            seen.add(key)
            order.append(position[key])
    if order != sorted(order):
        problems.append(f"{station}: events out of order (queue positions): {order}")
    stats["201-transactions"] += len(charger.txns)
    stats["201-boots"] += charger.boots
    return problems
