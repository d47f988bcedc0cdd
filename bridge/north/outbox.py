"""The durable outbox toward the CSMS: what must reach it, in order, exactly once from the station's side.

Rules
- Every TransactionEvent and every notification the CSMS must not miss is added here, and the `Persist`
  effect that records it is emitted before the charger is acknowledged (OCPP 2.0.1 E04, E12).
- Entries leave in the order they were added, one at a time: `ready` gives the head only when nothing is in
  flight and its retry time has come. Each attempt is a new CALL with a fresh message id (the endpoint's).
- An entry is removed on the CSMS's CALLRESULT, or after `message_attempts` failed attempts (a CALLERROR
  or no answer within the call timeout: E13.FR.02/FR.04, MessageAttemptsTransactionEvent); the owner
  reports such a loss loudly, it is never silent. The wait before a retry is `attempt_interval` times the
  attempts so far (E13.FR.03, MessageAttemptIntervalTransactionEvent). A lost connection is not an
  attempt: the entry stays at the head and goes again once the station is back (E12).
- The queue is bounded in bytes (`max_bytes`). When full, intermediate entries (TransactionEvent
  Updated, MeterValues outside a transaction) are dropped, every other one from the oldest (E04.FR.07/08);
  Started, Ended and notifications never are: the queue then goes over its bound rather than lose a
  billing event.
- The numbers are also the station's order of things: `take_seq` numbers a message that is not queued here
  (a connector status) in the same sequence, so its sender can keep it behind the entries added before
  it. Such numbers leave gaps in the keys, which only need to be ordered.
- An entry that goes again after an attempt that got no answer it could use carries `resend_reason`
  (reconnect, callerror, timeout, unanswered) until it is sent.
- Durable state: table `outbox`, key = the zero-padded sequence number (so key order is delivery order),
  value = {action, payload}.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import orjson

from bridge.effects import Persist

TABLE: Final = "outbox"
_KEY_DIGITS: Final = 16


class Priority(enum.Enum):
    KEEP = "keep"  # never dropped: Started, Ended, notifications
    DROPPABLE = "droppable"  # dropped first when the queue is full: Updated, MeterValues


def priority_of(action: str, payload: dict[str, Any]) -> Priority:
    if action == "TransactionEvent":
        return Priority.DROPPABLE if payload.get("eventType") == "Updated" else Priority.KEEP
    if action == "MeterValues":
        return Priority.DROPPABLE
    return Priority.KEEP


@dataclass(slots=True, eq=False)
class Entry:
    seq: int
    action: str
    payload: dict[str, Any]
    size: int
    queued_at: float
    attempts: int = 0
    not_before: float = 0.0
    resend_reason: str | None = None  # why it goes again, when it does

    @property
    def key(self) -> str:
        return f"{self.seq:0{_KEY_DIGITS}d}"

    @property
    def transaction_id(self) -> str | None:
        if self.action != "TransactionEvent":
            return None
        info = self.payload.get("transactionInfo")
        return info.get("transactionId") if isinstance(info, dict) else None


class Outbox:
    def __init__(
        self,
        state: dict[str, dict[str, Any]],
        *,
        now: float,
        max_bytes: int,
        message_attempts: int,
        attempt_interval: float,
    ) -> None:
        self.max_bytes = max_bytes
        self.message_attempts = max(1, message_attempts)
        self.attempt_interval = attempt_interval
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self.in_flight: Entry | None = None
        self.dropped = 0
        # Sorted here too: a queued entry must never be overtaken (or its key reused) because a store
        # returned the rows in another order.
        for key, value in sorted(state.get(TABLE, {}).items()):
            self._append(Entry(int(key), value["action"], value["payload"], 0, now))
        self._next_seq = self._entries[-1].seq + 1 if self._entries else 1

    def _append(self, entry: Entry) -> None:
        entry.size = len(orjson.dumps(entry.payload)) + len(entry.action)
        self._entries.append(entry)
        self._bytes += entry.size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def oldest_queued_at(self) -> float | None:
        return self._entries[0].queued_at if self._entries else None

    def has_transaction(self, transaction_id: str) -> bool:
        return any(entry.transaction_id == transaction_id for entry in self._entries)

    def has_transaction_events(self) -> bool:
        return any(entry.action == "TransactionEvent" for entry in self._entries)

    def take_seq(self) -> int:
        """A number in the order of things for a message kept elsewhere (not made durable)."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def head(self) -> Entry | None:
        return self._entries[0] if self._entries else None

    def add(self, action: str, payload: dict[str, Any], now: float) -> tuple[Entry, list[Persist]]:
        entry = Entry(self._next_seq, action, payload, 0, now)
        self._next_seq += 1
        self._append(entry)
        changes = [Persist(TABLE, entry.key, {"action": action, "payload": payload})]
        changes.extend(self._make_room())
        return entry, changes

    def _make_room(self) -> list[Persist]:
        """Drop every other droppable entry (1st, 3rd, 5th, … E04.FR.08) until the queue fits."""
        changes: list[Persist] = []
        while self._bytes > self.max_bytes:
            droppable = [
                entry
                for entry in self._entries
                if entry is not self.in_flight
                and entry is not self._entries[-1]
                and priority_of(entry.action, entry.payload) is Priority.DROPPABLE
            ]
            if not droppable:
                break
            for entry in droppable[::2]:
                if self._bytes <= self.max_bytes:
                    break
                changes.append(self._remove(entry))
                self.dropped += 1
        return changes

    def _remove(self, entry: Entry) -> Persist:
        if entry not in self._entries:  # dropped or given up meanwhile: its deletion is repeated
            return Persist(TABLE, entry.key, None)
        self._entries.remove(entry)
        self._bytes -= entry.size
        if entry is self.in_flight:
            self.in_flight = None
        return Persist(TABLE, entry.key, None)

    def ready(self, now: float) -> Entry | None:
        """The head, if it may be sent now (nothing in flight, its retry time has come)."""
        if self.in_flight is not None or not self._entries:
            return None
        head = self._entries[0]
        return head if head.not_before <= now else None

    def next_deadline(self) -> float | None:
        if self.in_flight is not None or not self._entries:
            return None
        head = self._entries[0]
        return head.not_before if head.not_before > 0 else None

    def sent(self, entry: Entry) -> None:
        self.in_flight = entry

    def delivered(self, entry: Entry) -> Persist:
        return self._remove(entry)

    def failed(self, entry: Entry, now: float, reason: str = "callerror") -> Persist | None:
        """A CALLERROR or no answer. Returns the deletion when the entry is given up."""
        if self.in_flight is entry:
            self.in_flight = None
        entry.attempts += 1
        entry.resend_reason = reason
        if entry.attempts >= self.message_attempts:
            return self._remove(entry)
        entry.not_before = now + self.attempt_interval * entry.attempts
        return None

    def connection_lost(self) -> None:
        if self.in_flight is not None:
            self.in_flight.resend_reason = self.in_flight.resend_reason or "reconnect"
        self.in_flight = None
