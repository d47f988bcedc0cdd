"""A vendor table's accepted card across a bridge restart (mappings/example-dialin-card.yaml).

Found by the fault harness (tests/faults/card104.py, seed 1357746314): the bridge answered a card
request Accepted (131, result 0), was SIGKILLed before the charger's session started, and the
restarted bridge sent a Started without the card (triggerReason ChargingStateChanged, no idToken):
the accepted card lived in memory only. It is stored (`meta` key `card:<evse>`) before the charger
hears Accepted and removed in the commit of the Started that takes it, like an accepted
RequestStartTransaction (`remote:<evse>`).
"""

from __future__ import annotations

from adapters.mapping_files import load_reference
from bridge.effects import Persist, Side
from bridge.stations.iec104.southbound import PointUpdate, RawAsdu, Send104Private
from tests.core.iec104_bench import CHARGING, ENERGY, HOLSTERED, PLUG, Bench, idle, it, sp

TABLE = load_reference("example-dialin-card").compile(2)
CARD = "1234567890123456"
TOKEN = {"idToken": CARD, "type": "Local"}


def swipe(bench: Bench, card: str = CARD) -> None:
    """Card authorization request (130, COT 3) on connector 1: IOA 0x7001, the card in packed BCD."""
    objects = (0x7001).to_bytes(3, "little") + bytes.fromhex(card)
    bench.core.handle_link_event(RawAsdu(130, 3, 1, 1, False, objects), bench.now, bench.wall())
    bench.drain()


def answers(bench: Bench) -> list[bytes]:
    return [p.objects[3:] for p in bench.privates if p.type_id == 131]


def start_charging(bench: Bench) -> dict[str, object]:
    bench.points(sp(HOLSTERED, False), sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)  # past meter_wait: the Started goes with the last known register
    (started,) = [e for e in bench.events() if e["eventType"] == "Started"]
    return started


def test_a_restart_between_the_accepted_card_and_the_start_keeps_the_card() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    assert answers(bench)[0][0] == 0  # Accepted
    assert bench.store["meta"]["card:1"]["idToken"] == TOKEN
    bench.restart()
    bench.ready()
    started = start_charging(bench)
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"] == TOKEN
    assert "card:1" not in bench.store["meta"]  # gone with the Started, in its commit


def test_the_card_is_durable_before_the_charger_hears_accepted() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    bench.auto_answer = False  # the CSMS answers the Authorize below, by hand
    swipe(bench)
    (message_id,) = [m for m, f in bench.pending.items() if f.action == "Authorize"]
    del bench.pending[message_id]
    answer = f'[3, "{message_id}", {{"idTokenInfo": {{"status": "Accepted"}}}}]'
    bench.core.receive(Side.NORTH, answer, bench.now, bench.wall())
    effects = bench.core.effects()
    stored = next(
        i for i, e in enumerate(effects) if isinstance(e, Persist) and e.key == "card:1" and e.value
    )
    answered = next(i for i, e in enumerate(effects) if isinstance(e, Send104Private))
    assert stored < answered


def test_without_a_restart_the_card_starts_once_and_is_forgotten() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    started = start_charging(bench)
    assert (started["triggerReason"], started["idToken"]) == ("Authorized", TOKEN)
    assert "card:1" not in bench.store["meta"]
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False), sp(PLUG, False))
    bench.advance(31)  # the Ended waits settlement_wait for the record
    bench.points(sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    second = [e for e in bench.events() if e["eventType"] == "Started"][-1]
    assert second["triggerReason"] != "Authorized"
    assert "idToken" not in second


def test_an_expired_card_is_forgotten_at_restart() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    bench.advance(121)  # CARD_VALIDITY
    bench.restart()
    bench.ready()
    started = start_charging(bench)
    assert started["triggerReason"] != "Authorized"
    assert "card:1" not in bench.store["meta"]


def test_a_stop_card_stores_nothing() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    start_charging(bench)
    swipe(bench)  # in a transaction: the card that stops it
    assert len(answers(bench)) == 2
    assert "card:1" not in bench.store["meta"]


def settlement(card: str = CARD, start: int = 100_000, stop: int = 100_100) -> RawAsdu:
    """Settlement record (132, COT 3) on connector 1: card, two CP56 times, meters, amount, reason."""
    times = bytes.fromhex("0000000a270c1a00001e0a270c1a")
    numbers = start.to_bytes(4, "little") + stop.to_bytes(4, "little") + bytes(4) + b"\x00"
    objects = (0x7101).to_bytes(3, "little") + bytes.fromhex(card) + times + numbers
    return RawAsdu(132, 3, 1, 1, False, objects)


def test_a_record_after_its_ended_went_without_it_is_late_also_after_a_restart() -> None:
    """The fault harness's card charger (1,000-fault seeds): a session's Ended went from the
    counters; the bridge restarted; then the record came. It belongs to that session: reported as
    late and acknowledged, never a session of its own (which re-used the transaction and ended it
    twice) — and the next session still starts."""
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    start_charging(bench)
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(31)  # no record within settlement_wait: the Ended goes from the counters
    assert [e["eventType"] for e in bench.events()] == ["Started", "Ended"]
    bench.restart()
    bench.ready()
    bench.core.handle_link_event(settlement(), bench.now, bench.wall())
    bench.drain()
    assert [e["eventType"] for e in bench.events()] == ["Started", "Ended"]
    assert "late-settlement" in bench.report_kinds()
    assert [p.type_id for p in bench.privates].count(133) == 1  # acknowledged
    swipe(bench)
    bench.points(sp(PLUG, False))
    bench.points(sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    kinds = [e["eventType"] for e in bench.events()]
    assert kinds == ["Started", "Ended", "Started"]


def test_a_record_naming_the_running_transaction_is_its_own_not_the_late_one() -> None:
    """A session's Ended went from the counters and its record never came (the unsettled mark
    stays); the next session's record arrives before the bridge saw its charging fall. Its meter
    start is the running transaction's Begin register and its card the transaction's idToken: it
    ends that transaction, it is not taken for the earlier session's late record (whose Ended
    then went from the counters again, without the record)."""
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    start_charging(bench)
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(31)  # no record: the Ended goes from the counters, marked unsettled
    assert "unsettled:1" in bench.store["meta"]
    following = "1234567890123458"
    swipe(bench, following)
    bench.points(sp(PLUG, False))
    bench.points(sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    begin = [e for e in bench.events() if e["eventType"] == "Started"][-1]
    assert begin["meterValue"][0]["sampledValue"][0]["value"] == 1_001_000
    bench.core.handle_link_event(settlement(following, 100_100, 100_250), bench.now, bench.wall())
    bench.drain()
    assert "late-settlement" not in bench.report_kinds()
    ended = bench.events()[-1]
    assert ended["eventType"] == "Ended"
    assert ended["transactionInfo"]["transactionId"] == begin["transactionInfo"]["transactionId"]
    assert ended["customData"]["settlement"]["meterStopWh"] == 1_002_500
    assert "unsettled:1" in bench.store["meta"]  # still waiting for the earlier session's record


def charging_again() -> list[PointUpdate]:
    """A general interrogation's answer with connector 1's next vehicle plugged in and charging."""
    now = {PLUG: True, HOLSTERED: False, CHARGING: True}
    return [sp(u.ioa, now[u.ioa]) if u.ioa in now else u for u in idle(1)]


def test_a_restart_while_the_ended_waits_for_its_record_keeps_that_session_ended() -> None:
    """The bridge saw the session's charging fall; its Ended waits for the record (settlement_wait);
    the bridge restarts; the charger's next session is charging by then. The restarted bridge
    knows the transaction ended (meta `ending:<evse>`): the next charging is a transaction of its
    own, started at once behind the Ended, and the late record settles the first one. Failed
    before: the next charging was taken for the still-open transaction, the record ended it, and
    the next session reached the CSMS only at its end, as a Started and Ended from its record."""
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    first = start_charging(bench)["transactionInfo"]["transactionId"]
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(5)  # the Ended waits for the record
    assert [e["eventType"] for e in bench.events()] == ["Started"]
    bench.restart()
    bench.connect_csms()
    bench.link_up(*charging_again(), it(ENERGY, 100_110))
    bench.advance(3.5)
    bench.core.handle_link_event(
        settlement(), bench.now, bench.wall()
    )  # the first session's record
    bench.drain()
    events = [(e["eventType"], e["transactionInfo"]["transactionId"]) for e in bench.events()]
    assert events[:3] == [("Started", first), ("Ended", first), ("Started", events[2][1])]
    assert events[2][1] != first
    ended = bench.events()[1]
    assert ended["customData"]["settlement"]["meterStopWh"] == 1_001_000
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert "late-settlement" not in bench.report_kinds()
    assert [p.type_id for p in bench.privates].count(133) == 1
    assert "ending:1" not in bench.store["meta"]  # gone in the Ended's commit
    # the second session ends by its own record
    bench.points(it(ENERGY, 100_250), sp(CHARGING, False))
    bench.core.handle_link_event(settlement(CARD, 100_100, 100_250), bench.now, bench.wall())
    bench.drain()
    events = [(e["eventType"], e["transactionInfo"]["transactionId"]) for e in bench.events()]
    assert events[3:] == [("Ended", events[2][1])]


def test_a_restart_while_the_ended_waits_and_no_record_comes_ends_it_from_the_counters() -> None:
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    first = start_charging(bench)["transactionInfo"]["transactionId"]
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(20)
    bench.restart()
    bench.connect_csms()
    bench.link_up(*charging_again(), it(ENERGY, 100_110))
    bench.advance(12)  # settlement_wait ran out (30 s since the end, in wall-clock time)
    events = [(e["eventType"], e["transactionInfo"]["transactionId"]) for e in bench.events()]
    assert events[:2] == [("Started", first), ("Ended", first)]
    assert events[2][0] == "Started" and events[2][1] != first
    assert "unsettled:1" in bench.store["meta"]
    assert "ending:1" not in bench.store["meta"]


def test_an_ended_waiting_for_its_record_keeps_its_own_register_when_the_next_session_charges() -> (
    None
):
    """The Ended waits for the record (settlement_wait) while the charger's next session already
    charges and the register climbs; the record never comes. The Ended goes from the counters with
    the register as it stood at its own end, not the next session's (it took every reading that
    came during the wait, then the newest at its deadline)."""
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    start_charging(bench)
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(5)  # the Ended waits for the record
    swipe(bench, "1234567890123458")
    bench.points(sp(PLUG, False))
    bench.points(sp(PLUG, True), sp(CHARGING, True))
    bench.points(it(ENERGY, 100_150))
    bench.advance(10)
    bench.points(it(ENERGY, 100_200))
    bench.advance(20)  # settlement_wait ran out: the Ended goes from the counters
    ended = [e for e in bench.events() if e["eventType"] == "Ended"]
    assert len(ended) == 1
    (sample,) = ended[0]["meterValue"]
    assert sample["sampledValue"][0]["value"] == 1_001_000
    begin = [e for e in bench.events() if e["eventType"] == "Started"][-1]
    assert begin["transactionInfo"]["transactionId"] != ended[0]["transactionInfo"]["transactionId"]
