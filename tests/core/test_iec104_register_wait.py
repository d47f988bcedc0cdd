"""The transaction register of a Started or Ended whose counter interrogation the link's loss cut off.

Regression of the fault harness (tests/faults, FAULT_SEED=90210777, 1,000 faults): an Ended's
Transaction.End register was lower than the charger's counter when charging fell. Charging fell while
the 104 link was down; at the link's return the general interrogation's status points showed it (the
end), and the link dropped again before the counter arrived. The Ended waited `meter_wait` (3 s) for a
counter interrogation that the lost link could not answer, then went with the last value known from
before the fall. The bridge's own 104 link reconnects after 1-2 s, doubling while the charger does not
answer, so a link down longer than `meter_wait` is common. Now the wait does not run out while the link
is down (a link's return brings the counter: the session interrogates counters at every start); only
when the link stays down past `link_grace` does the event go with the last known value.
"""

from __future__ import annotations

from bridge.stations.iec104.core import Station104Settings
from tests.core.iec104_bench import CHARGING, ENERGY, HOLSTERED, PLUG, Bench, idle, it, sp


def _register(event: dict[str, object], context: str) -> float | None:
    for meter in event.get("meterValue", []):  # type: ignore[union-attr]
        for sampled in meter["sampledValue"]:
            if sampled["context"] == context:
                return float(sampled["value"])
    return None


def _charging(bench: Bench) -> None:
    bench.ready()
    bench.points(sp(PLUG, True), sp(HOLSTERED, False), sp(CHARGING, True))
    bench.points(it(ENERGY, 100_000))  # the counter interrogation's answer
    bench.points(it(ENERGY, 100_200))
    (started,) = bench.events()
    assert _register(started, "Transaction.Begin") == 1_000_000


def _status_points(*, charging: bool) -> list[object]:
    """A general interrogation's status points, plugged in (its counter comes later)."""
    back = [u for u in idle(1) if u.ioa not in (PLUG, CHARGING, HOLSTERED)]
    return [*back, sp(PLUG, True), sp(HOLSTERED, False), sp(CHARGING, charging)]


def test_an_ended_whose_counter_the_lost_link_cut_off_waits_for_the_link() -> None:
    bench = Bench(settings=Station104Settings(link_grace=10))
    _charging(bench)
    bench.link_down()  # meanwhile the counter takes its last step (100,300) and charging falls
    bench.advance(1.5)
    bench.link_up(*_status_points(charging=False))  # the end, before the counter arrives
    bench.link_down()
    bench.advance(4.0)  # down longer than meter_wait
    assert [e["eventType"] for e in bench.events()] == ["Started"]
    bench.link_up(*_status_points(charging=False), it(ENERGY, 100_300))
    events = bench.events()
    assert [e["eventType"] for e in events] == ["Started", "Ended"]
    assert _register(events[-1], "Transaction.End") == 1_003_000


def test_an_ended_goes_with_the_last_known_register_when_the_link_stays_down() -> None:
    bench = Bench(settings=Station104Settings(link_grace=10))
    _charging(bench)
    bench.link_down()
    bench.advance(1.5)
    bench.link_up(*_status_points(charging=False))
    bench.link_down()
    bench.advance(9.0)
    assert [e["eventType"] for e in bench.events()] == ["Started"]
    bench.advance(1.5)  # link_grace over: the last value known
    events = bench.events()
    assert [e["eventType"] for e in events] == ["Started", "Ended"]
    assert _register(events[-1], "Transaction.End") == 1_002_000


def test_an_ended_with_the_link_up_still_waits_only_meter_wait() -> None:
    bench = Bench(settings=Station104Settings(link_grace=10))
    _charging(bench)
    bench.points(it(ENERGY, 100_300), sp(CHARGING, False))
    bench.advance(3.1)  # the counter interrogation is never answered
    events = bench.events()
    assert [e["eventType"] for e in events] == ["Started", "Ended"]
    assert _register(events[-1], "Transaction.End") == 1_003_000
