"""bridge.north.ledger.TransactionLedger: the bridge-owned transaction ids (E01–E06), table-driven and properties.

Every change is checked through its Persist effects: they are applied to a dict store and a ledger
rebuilt from that store must agree with the live one (a crash between any two changes loses nothing).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.effects import Persist
from bridge.north.ledger import (
    KEEP_ENDED,
    MAX_LOCAL_ID,
    MAX_TRANSACTION_ID_LENGTH,
    META,
    TABLE,
    Transaction,
    TransactionLedger,
)

State = dict[str, dict[str, Any]]


def apply(store: State, changes: list[Persist]) -> None:
    for change in changes:
        rows = store.setdefault(change.table, {})
        if change.value is None:
            rows.pop(change.key, None)
        else:
            rows[change.key] = json.loads(json.dumps(change.value))


def fresh(store: State, start: int = 1) -> TransactionLedger:
    counter = itertools.count(start)
    return TransactionLedger(lambda: f"tx-{next(counter)}", json.loads(json.dumps(store)))


def snapshot(ledger: TransactionLedger) -> dict[str, dict[str, Any]]:
    return {t.transaction_id: t.record() for t in ledger._by_id.values()}


# --- id minting ------------------------------------------------------------------------------------


def test_e01_start_mints_the_injected_id_and_a_local_integer() -> None:
    store: State = {}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=2, start_key="k", with_local_id=True)
    apply(store, changes)
    assert transaction.transaction_id == "tx-1"
    assert transaction.local_id == 1
    assert transaction.evse_id == 2
    assert store[META]["next_local_id"] == 2
    assert store[TABLE]["tx-1"]["start_key"] == "k"
    assert ledger.by_id("tx-1") is ledger.by_local_id(1) is ledger.by_start_key("k") is transaction


def test_e01_without_local_id_no_counter_is_used() -> None:
    store: State = {}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=1)
    assert transaction.local_id is None
    assert [c.table for c in changes] == [TABLE]


@pytest.mark.parametrize(
    ("generated", "ok"),
    [
        ("x" * MAX_TRANSACTION_ID_LENGTH, True),
        ("x" * (MAX_TRANSACTION_ID_LENGTH + 1), False),
        ("5f0c7a9e-2d7b-4d7e-9a51-1c6f0e3c8b2a", True),  # a UUID: 36 characters
    ],
)
def test_e01_minted_ids_fit_the_2_0_1_transaction_id(generated: str, ok: bool) -> None:
    ledger = TransactionLedger(lambda: generated, {})
    if ok:
        transaction, _ = ledger.start(evse_id=1)
        assert len(transaction.transaction_id) <= 36
    else:
        with pytest.raises(ValueError, match="unusable"):
            ledger.start(evse_id=1)


def test_e01_a_repeated_id_from_the_source_is_refused() -> None:
    ledger = TransactionLedger(lambda: "same", {})
    ledger.start(evse_id=1)
    with pytest.raises(ValueError, match="unusable"):
        ledger.start(evse_id=2)


# --- the local id counter -------------------------------------------------------------------------


def test_e01_local_counter_is_persisted_and_survives_a_restart() -> None:
    store: State = {}
    ledger = fresh(store)
    for key in ("a", "b", "c"):
        _, changes = ledger.start(evse_id=1, start_key=key, with_local_id=True)
        apply(store, changes)
    rebuilt = fresh(store, start=100)
    transaction, _ = rebuilt.start(evse_id=1, start_key="d", with_local_id=True)
    assert transaction.local_id == 4


@pytest.mark.parametrize(
    ("next_local", "taken", "expected", "then"),
    [
        (MAX_LOCAL_ID, [], MAX_LOCAL_ID, 1),  # the last id, then wrap to 1
        (MAX_LOCAL_ID, [MAX_LOCAL_ID], 1, 2),  # wraps past a taken last id
        (1, [1, 2, 3], 4, 5),  # skips ids still in the ledger
        (MAX_LOCAL_ID - 1, [MAX_LOCAL_ID - 1, MAX_LOCAL_ID, 1], 2, 3),  # skip, wrap, skip
    ],
)
def test_e01_local_counter_wraps_and_skips_ids_in_use(
    next_local: int, taken: list[int], expected: int, then: int
) -> None:
    records = {
        f"old-{n}": {"transaction_id": f"old-{n}", "evse_id": 1, "local_id": n} for n in taken
    }
    store: State = {META: {"next_local_id": next_local}, TABLE: records}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=1, with_local_id=True)
    assert transaction.local_id == expected
    assert Persist(META, "next_local_id", then) in changes
    assert 1 <= transaction.local_id <= MAX_LOCAL_ID


def test_e01_ended_transactions_kept_for_resends_keep_their_local_id() -> None:
    store: State = {META: {"next_local_id": MAX_LOCAL_ID}}
    ledger = fresh(store)
    first, changes = ledger.start(evse_id=1, start_key="first", with_local_id=True)
    apply(store, changes)
    apply(store, ledger.end(first))
    assert first.local_id == MAX_LOCAL_ID
    # a restart with the counter pointing at the ended (but kept) transaction's id skips it
    store[META]["next_local_id"] = MAX_LOCAL_ID
    rebuilt = fresh(store, start=10)
    second, _ = rebuilt.start(evse_id=1, start_key="second", with_local_id=True)
    assert second.local_id == 1
    assert rebuilt.by_local_id(MAX_LOCAL_ID) is not None


# --- start-key idempotency ------------------------------------------------------------------------


def test_e01_a_start_key_already_in_the_ledger_is_refused() -> None:
    ledger = fresh({})
    ledger.start(evse_id=1, start_key="1|TAG|2026-01-01T00:00:00Z|0", with_local_id=True)
    with pytest.raises(ValueError, match="already in the ledger"):
        ledger.start(evse_id=1, start_key="1|TAG|2026-01-01T00:00:00Z|0", with_local_id=True)


def test_e01_start_key_survives_a_restart() -> None:
    store: State = {}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=1, start_key="key", with_local_id=True)
    apply(store, changes)
    rebuilt = fresh(store)
    found = rebuilt.by_start_key("key")
    assert found is not None
    assert (found.transaction_id, found.local_id) == (transaction.transaction_id, 1)


# --- seqNo ------------------------------------------------------------------------------------------


def test_e04_seq_no_is_contiguous_from_zero_and_persisted_with_each_number() -> None:
    store: State = {}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=1)
    apply(store, changes)
    numbers = []
    for _ in range(5):
        seq_no, persist = ledger.take_seq_no(transaction)
        numbers.append(seq_no)
        assert persist.table == TABLE and persist.key == transaction.transaction_id
        assert isinstance(persist.value, dict) and persist.value["next_seq_no"] == seq_no + 1
        apply(store, [persist])
    assert numbers == [0, 1, 2, 3, 4]
    rebuilt = fresh(store)
    again = rebuilt.by_id(transaction.transaction_id)
    assert again is not None
    assert rebuilt.take_seq_no(again)[0] == 5


def test_e04_persisted_record_is_a_snapshot_not_a_live_view() -> None:
    ledger = fresh({})
    transaction, _ = ledger.start(evse_id=1)
    _, persist = ledger.take_seq_no(transaction)
    ledger.take_seq_no(transaction)
    assert isinstance(persist.value, dict) and persist.value["next_seq_no"] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    id_token=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    extra=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    seq=st.integers(0, 1000),
    state=st.none() | st.text(max_size=10),
)
def test_e04_record_is_what_asdict_makes_and_shares_nothing_mutable(
    id_token: dict[str, Any] | None, extra: dict[str, Any], seq: int, state: str | None
) -> None:
    transaction = Transaction(
        "tx-1", 2, local_id=7, next_seq_no=seq, id_token=id_token, charging_state=state, extra=extra
    )
    record = transaction.record()
    assert record == dataclasses.asdict(transaction)
    assert list(record) == [f.name for f in dataclasses.fields(Transaction)]
    if id_token is not None:
        assert record["id_token"] is not id_token
    assert record["extra"] is not extra
    for key, value in extra.items():
        if isinstance(value, dict | list):
            assert record["extra"][key] is not value


# --- ending and pruning -------------------------------------------------------------------------------


def test_e06_end_marks_ended_once() -> None:
    store: State = {}
    ledger = fresh(store)
    transaction, changes = ledger.start(evse_id=1, with_local_id=True)
    apply(store, changes)
    changes = ledger.end(transaction)
    apply(store, changes)
    assert transaction.ended and store[TABLE][transaction.transaction_id]["ended"] is True
    assert ledger.end(transaction) == []
    assert ledger.active_on(1) is None
    assert list(ledger.active()) == []


def test_e06_only_the_newest_ended_transactions_are_kept() -> None:
    store: State = {}
    ledger = fresh(store)
    running, changes = ledger.start(evse_id=99, start_key="running", with_local_id=True)
    apply(store, changes)
    ended = []
    for n in range(KEEP_ENDED + 5):
        transaction, changes = ledger.start(evse_id=1, start_key=f"k{n}", with_local_id=True)
        apply(store, changes)
        apply(store, ledger.end(transaction))
        ended.append(transaction)
    assert len(ledger) == KEEP_ENDED + 1  # the kept ended ones + the running one
    assert len(store[TABLE]) == KEEP_ENDED + 1
    for old in ended[:5]:  # the oldest are forgotten everywhere
        assert ledger.by_id(old.transaction_id) is None
        assert old.local_id is not None and ledger.by_local_id(old.local_id) is None
        assert old.start_key is not None and ledger.by_start_key(old.start_key) is None
        assert old.transaction_id not in store[TABLE]
    for kept in ended[5:]:
        assert ledger.by_id(kept.transaction_id) is kept
    assert ledger.by_id(running.transaction_id) is running  # a running one is never pruned
    rebuilt = fresh(store)
    assert snapshot(rebuilt) == snapshot(ledger)


def test_e06_pruning_order_survives_a_restart() -> None:
    store: State = {}
    ledger = fresh(store)
    ids = []
    for n in range(KEEP_ENDED):
        transaction, changes = ledger.start(evse_id=1, start_key=f"k{n}")
        apply(store, changes)
        apply(store, ledger.end(transaction))
        ids.append(transaction.transaction_id)
    rebuilt = fresh(store, start=1000)
    transaction, changes = rebuilt.start(evse_id=1, start_key="new")
    apply(store, changes)
    changes = rebuilt.end(transaction)
    apply(store, changes)
    assert Persist(TABLE, ids[0], None) in changes  # the oldest goes, not any other
    assert rebuilt.by_id(ids[1]) is not None


# --- rebuilding -------------------------------------------------------------------------------------


def test_e01_rebuild_restores_every_index() -> None:
    store: State = {}
    ledger = fresh(store)
    a, changes = ledger.start(
        evse_id=1,
        connector_id=1,
        start_key="a",
        with_local_id=True,
        remote_start_id=7,
        id_token={"idToken": "X", "type": "Central"},
        meter_start_wh=12.5,
        started_at="2026-01-01T00:00:00Z",
    )
    apply(store, changes)
    b, changes = ledger.start(evse_id=2, start_key="b", with_local_id=True)
    apply(store, changes)
    apply(store, [ledger.take_seq_no(a)[1]])
    apply(store, ledger.end(b))
    rebuilt = fresh(store)
    assert snapshot(rebuilt) == snapshot(ledger)
    assert rebuilt.active_on(1) is not None and rebuilt.active_on(2) is None
    assert [t.transaction_id for t in rebuilt.active()] == [a.transaction_id]
    again = rebuilt.by_local_id(1)
    assert again is not None and again.remote_start_id == 7 and again.id_token == a.id_token


# --- property: any sequence of changes, persisted, rebuilds to the same ledger ---------------------

_op = st.one_of(
    st.tuples(st.just("start"), st.integers(1, 3), st.integers(0, 6)),
    st.tuples(st.just("seq"), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("end"), st.integers(0, 30), st.just(0)),
)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(_op, max_size=60), first_local=st.integers(MAX_LOCAL_ID - 3, MAX_LOCAL_ID))
def test_e04_any_history_rebuilds_identically(
    ops: list[tuple[str, int, int]], first_local: int
) -> None:
    store: State = {META: {"next_local_id": first_local}}
    ledger = fresh(store)
    issued: dict[str, list[int]] = {}
    for op, a, b in ops:
        everything = list(ledger._by_id.values())
        if op == "start":
            key = f"{a}|{b}"
            if ledger.by_start_key(key) is not None:
                continue
            transaction, changes = ledger.start(evse_id=a, start_key=key, with_local_id=True)
            apply(store, changes)
            # never two live transactions with one local id
            locals_ = [t.local_id for t in ledger._by_id.values()]
            assert len(locals_) == len(set(locals_))
        elif everything:
            transaction = everything[a % len(everything)]
            if op == "seq":
                seq_no, persist = ledger.take_seq_no(transaction)
                apply(store, [persist])
                issued.setdefault(transaction.transaction_id, []).append(seq_no)
            else:
                apply(store, ledger.end(transaction))
        rebuilt = fresh(store)
        assert snapshot(rebuilt) == snapshot(ledger)
        assert rebuilt._next_local == ledger._next_local
    for numbers in issued.values():
        assert numbers == list(range(len(numbers)))
