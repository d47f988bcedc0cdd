"""bridge.north.outbox.Outbox: the durable queue toward the CSMS (E04, E12, E13), table-driven and properties."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.effects import Persist
from bridge.north.outbox import TABLE, Entry, Outbox, Priority, priority_of

State = dict[str, dict[str, Any]]


def apply(store: State, changes: list[Persist] | Persist | None) -> None:
    if changes is None:
        return
    for change in [changes] if isinstance(changes, Persist) else changes:
        rows = store.setdefault(change.table, {})
        if change.value is None:
            rows.pop(change.key, None)
        else:
            rows[change.key] = json.loads(json.dumps(change.value))


def load(store: State) -> State:
    """As adapters/store.py returns it: rows in key order."""
    return {
        t: {k: json.loads(json.dumps(rows[k])) for k in sorted(rows)} for t, rows in store.items()
    }


def outbox(
    store: State | None = None,
    *,
    max_bytes: int = 1 << 20,
    attempts: int = 3,
    interval: float = 60.0,
    now: float = 0.0,
) -> Outbox:
    return Outbox(
        load(store or {}),
        now=now,
        max_bytes=max_bytes,
        message_attempts=attempts,
        attempt_interval=interval,
    )


def event(kind: str, seq_no: int, tx: str = "T1", pad: int = 0) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx},
    }
    if pad:
        payload["customData"] = {"vendorId": "x" * pad}
    return payload


def seq_nos(box: Outbox) -> list[int]:
    return [entry.payload["seqNo"] for entry in box._entries]


def send_next(box: Outbox, now: float) -> Entry:
    entry = box.ready(now)
    assert entry is not None
    box.sent(entry)
    return entry


# --- order, one at a time -------------------------------------------------------------------------


def test_e04_entries_leave_in_order_one_at_a_time() -> None:
    store: State = {}
    box = outbox()
    for n in range(3):
        _, changes = box.add("TransactionEvent", event("Updated", n), now=0)
        apply(store, changes)
    delivered = []
    for _ in range(3):
        entry = send_next(box, 0)
        assert box.ready(0) is None, "a second entry while one is in flight"
        assert box.next_deadline() is None
        apply(store, box.delivered(entry))
        delivered.append(entry.payload["seqNo"])
    assert delivered == [0, 1, 2]
    assert len(box) == 0 and store[TABLE] == {}
    assert box.ready(0) is None


def test_e04_keys_are_zero_padded_so_key_order_is_delivery_order() -> None:
    box = outbox()
    keys = [box.add("NotifyEvent", {"n": n}, now=0)[0].key for n in range(12)]
    assert keys == sorted(keys)
    assert all(len(key) == 16 for key in keys)


def test_e04_transaction_lookups() -> None:
    box = outbox()
    box.add("NotifyEvent", {"generatedAt": "x"}, now=0)
    assert not box.has_transaction_events()
    box.add("TransactionEvent", event("Started", 0, tx="A"), now=0)
    assert box.has_transaction("A") and not box.has_transaction("B")
    assert box.has_transaction_events()


# --- E13 retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "interval"), [(3, 60.0), (1, 10.0), (5, 1.5)])
def test_e13_retry_waits_interval_times_attempts_then_gives_up(
    attempts: int, interval: float
) -> None:
    store: State = {}
    box = outbox(attempts=attempts, interval=interval)
    apply(store, box.add("TransactionEvent", event("Started", 0), now=0)[1])
    now = 100.0
    for attempt in range(1, attempts + 1):
        entry = send_next(box, now)
        removed = box.failed(entry, now)
        if attempt == attempts:  # E13.FR.04: the final attempt failed, the entry is discarded
            assert removed == Persist(TABLE, entry.key, None)
            apply(store, removed)
            break
        assert removed is None
        assert entry.attempts == attempt
        due = now + interval * attempt  # E13.FR.03
        assert box.next_deadline() == due
        assert box.ready(due - 0.001) is None
        assert box.ready(due) is entry
        now = due
    assert len(box) == 0 and store[TABLE] == {}


def test_e13_the_next_entry_goes_after_a_give_up() -> None:
    box = outbox(attempts=1)
    box.add("TransactionEvent", event("Started", 0), now=0)
    box.add("TransactionEvent", event("Ended", 1), now=0)
    assert box.failed(send_next(box, 0), 0) is not None
    assert send_next(box, 0).payload["eventType"] == "Ended"


def test_e12_connection_loss_is_not_an_attempt() -> None:
    box = outbox(attempts=2, interval=60)
    box.add("TransactionEvent", event("Started", 0), now=0)
    box.add("TransactionEvent", event("Updated", 1), now=0)
    entry = send_next(box, 0)
    box.connection_lost()
    assert entry.attempts == 0
    assert box.ready(0) is entry  # the same head goes again at once
    box.failed(send_next(box, 0), 5)
    box.connection_lost()
    assert entry.attempts == 1
    assert box.ready(5) is None and box.ready(65) is entry


def test_e13_zero_attempts_setting_still_tries_once() -> None:
    box = outbox(attempts=0)
    box.add("NotifyEvent", {}, now=0)
    assert box.failed(send_next(box, 0), 0) is not None


# --- E04.FR.07/08 dropping when full ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "payload", "priority"),
    [
        ("TransactionEvent", {"eventType": "Started"}, Priority.KEEP),
        ("TransactionEvent", {"eventType": "Updated"}, Priority.DROPPABLE),
        ("TransactionEvent", {"eventType": "Ended"}, Priority.KEEP),
        ("MeterValues", {}, Priority.DROPPABLE),
        ("NotifyEvent", {}, Priority.KEEP),
        ("StatusNotification", {}, Priority.KEEP),
        ("SecurityEventNotification", {}, Priority.KEEP),
    ],
)
def test_e04_priorities(action: str, payload: dict[str, Any], priority: Priority) -> None:
    assert priority_of(action, payload) is priority


def _entry_size(payload: dict[str, Any]) -> int:
    probe = outbox()
    return probe.add("TransactionEvent", payload, now=0)[0].size


def test_e04_fr_08_drops_every_other_updated_from_the_oldest() -> None:
    size = _entry_size(event("Updated", 10))
    store: State = {}
    # room for Started + 6 Updated; the 7th Updated overflows by one entry
    box = outbox(max_bytes=_entry_size(event("Started", 0)) + 6 * size)
    apply(store, box.add("TransactionEvent", event("Started", 0), now=0)[1])
    for n in range(1, 7):
        apply(store, box.add("TransactionEvent", event("Updated", n), now=0)[1])
    assert box.dropped == 0
    _, changes = box.add("TransactionEvent", event("Updated", 7), now=0)
    apply(store, changes)
    assert box.dropped == 1
    assert seq_nos(box) == [0, 2, 3, 4, 5, 6, 7]  # the 1st Updated went
    assert box.size_bytes <= box.max_bytes
    assert sorted(store[TABLE]) == [e.key for e in box._entries]


def test_e04_fr_08_drops_1st_3rd_5th_when_more_room_is_needed() -> None:
    small = _entry_size(event("Updated", 1))
    box = outbox(max_bytes=_entry_size(event("Started", 0)) + 8 * small)
    box.add("TransactionEvent", event("Started", 0), now=0)
    for n in range(1, 9):
        box.add("TransactionEvent", event("Updated", n), now=0)
    assert box.dropped == 0 and box.size_bytes == box.max_bytes
    # an Ended a bit smaller than three Updated needs their room: the 1st, 3rd and 5th Updated go
    pad = next(p for p in range(1, 1000) if _entry_size(event("Ended", 9, pad=p)) >= 3 * small - 2)
    box.add("TransactionEvent", event("Ended", 9, pad=pad), now=0)
    assert box.dropped == 3
    assert seq_nos(box) == [0, 2, 4, 6, 7, 8, 9]
    assert box.size_bytes <= box.max_bytes


def test_e04_started_ended_and_notifications_are_never_dropped() -> None:
    box = outbox(max_bytes=10)  # far too small for anything
    box.add("TransactionEvent", event("Started", 0), now=0)
    box.add("NotifyEvent", {"generatedAt": "2026-01-01T00:00:00Z", "seqNo": 0}, now=0)
    box.add("TransactionEvent", event("Updated", 1), now=0)
    box.add("TransactionEvent", event("Updated", 2), now=0)
    box.add("TransactionEvent", event("Ended", 3), now=0)
    kinds = [(e.action, e.payload.get("eventType")) for e in box._entries]
    assert kinds == [
        ("TransactionEvent", "Started"),
        ("NotifyEvent", None),
        ("TransactionEvent", "Ended"),
    ]
    assert box.size_bytes > box.max_bytes  # over its bound rather than lose a billing event
    assert box.dropped == 2


def test_e04_the_entry_in_flight_is_never_dropped() -> None:
    size = _entry_size(event("Updated", 10))
    box = outbox(max_bytes=3 * size)
    box.add("TransactionEvent", event("Updated", 1), now=0)
    in_flight = send_next(box, 0)
    box.add("TransactionEvent", event("Updated", 2), now=0)
    box.add("TransactionEvent", event("Updated", 3), now=0)
    box.add("TransactionEvent", event("Updated", 4), now=0)
    assert in_flight in box._entries and box.in_flight is in_flight
    assert seq_nos(box) == [1, 3, 4]


# --- rebuilding -------------------------------------------------------------------------------------


def test_e12_rebuild_from_persisted_rows_keeps_order_and_continues_numbering() -> None:
    store: State = {}
    box = outbox()
    for n in range(5):
        apply(store, box.add("TransactionEvent", event("Updated", n), now=0)[1])
    apply(store, box.delivered(send_next(box, 0)))
    rebuilt = outbox(store, now=50)
    assert seq_nos(rebuilt) == [1, 2, 3, 4]
    assert rebuilt.in_flight is None and rebuilt.size_bytes == box.size_bytes
    assert rebuilt.oldest_queued_at() == 50
    entry, changes = rebuilt.add("TransactionEvent", event("Updated", 5), now=50)
    assert entry.key > max(store[TABLE])
    apply(store, changes)
    assert seq_nos(outbox(store)) == [1, 2, 3, 4, 5]


def test_e12_rebuild_sorts_rows_whatever_order_the_store_gives() -> None:
    store: State = {}
    box = outbox()
    for n in range(12):
        apply(store, box.add("TransactionEvent", event("Updated", n), now=0)[1])
    rows = list(store[TABLE].items())
    random.Random(7).shuffle(rows)
    rebuilt = Outbox(
        {TABLE: dict(rows)}, now=0, max_bytes=1 << 20, message_attempts=3, attempt_interval=60
    )
    assert seq_nos(rebuilt) == list(range(12))
    new, _ = rebuilt.add("TransactionEvent", event("Updated", 12), now=0)
    assert new.key not in store[TABLE]  # never overwrites a queued entry


def test_e12_empty_rebuild_starts_at_one() -> None:
    assert outbox().add("NotifyEvent", {}, now=0)[0].key == "0000000000000001"


# --- property: the model of a FIFO with drops -----------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["Started", "Updated", "Ended", "Notify"]), st.integers(0, 40)),
        st.tuples(st.sampled_from(["send", "deliver", "fail", "lost", "rebuild"]), st.just(0)),
        st.tuples(st.just("wait"), st.integers(0, 200)),
    ),
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(ops=_ops, max_bytes=st.integers(200, 2000), attempts=st.integers(1, 4))
def test_e04_e13_queue_model(ops: list[tuple[str, int]], max_bytes: int, attempts: int) -> None:
    store: State = {}
    box = outbox(max_bytes=max_bytes, attempts=attempts, interval=10)
    now = 0.0
    added: list[int] = []  # numbers in the order added
    gone: set[int] = set()  # delivered, given up or dropped
    kept_kinds: set[int] = set()  # entries that must never be dropped (all but Updated)
    counter = 0
    for op, arg in ops:
        if op in ("Started", "Updated", "Ended", "Notify"):
            counter += 1
            if op == "Notify":
                action, payload = "NotifyEvent", {"n": counter, "pad": "x" * arg}
            else:
                action, payload = "TransactionEvent", event(op, counter, pad=arg)
                payload["seqNo"] = counter
            if op != "Updated":
                kept_kinds.add(counter)
            before = {_number(e) for e in box._entries}
            in_flight = box.in_flight
            _, changes = box.add(action, payload, now)
            apply(store, changes)
            added.append(counter)
            dropped = before - {_number(e) for e in box._entries}
            # E04.FR.08: only intermediate messages are dropped, never the one in flight
            assert not dropped & kept_kinds
            assert in_flight is None or in_flight is box.in_flight
        elif op == "send":
            entry = box.ready(now)
            if entry is not None:
                box.sent(entry)
        elif op == "deliver" and box.in_flight is not None:
            apply(store, box.delivered(box.in_flight))
        elif op == "fail" and box.in_flight is not None:
            apply(store, box.failed(box.in_flight, now))
        elif op == "lost":
            box.connection_lost()
        elif op == "rebuild":
            box = outbox(store, max_bytes=max_bytes, attempts=attempts, interval=10, now=now)
        elif op == "wait":
            now += arg
        live = [_number(e) for e in box._entries]
        gone |= set(added) - set(live)
        # FIFO: what is left is in the order it was added
        assert live == [n for n in added if n not in gone]
        # the store holds exactly the live entries, in the same order
        assert [_number(v) for _, v in sorted(store.get(TABLE, {}).items())] == live
        # at most one in flight, and it is the head
        if box.in_flight is not None:
            assert box._entries and box._entries[0] is box.in_flight
        assert box.size_bytes == sum(e.size for e in box._entries)


def _number(entry: Entry | dict[str, Any]) -> int:
    payload = entry.payload if isinstance(entry, Entry) else entry["payload"]
    return int(payload["seqNo"] if "seqNo" in payload else payload["n"])
