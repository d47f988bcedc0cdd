"""The 2.0.1 fault oracle (`tests.faults.charger201.check201`) on hand-made records: it passes a clean
relay and finds each fault a pass-through bridge could commit (a copy of its own, an answer of its
own, a changed or lost message, a reordering). Without this, a run with no problems could also be an
oracle that cannot fail."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from ocpp.charge_point import serialize_as_dict, snake_to_camel_case

from tests.faults.charger201 import FaultCharger201, Outgoing201, WireCall, check201
from tests.faults.harness import ANSWER_VENDOR, FaultCsms, Received, Taps


def _charger() -> FaultCharger201:
    charger = FaultCharger201(1, ["ws://127.0.0.1:1/ocpp"], random.Random(1), Taps())
    charger.booted = True
    charger.boots = 1
    txn = charger.begin()
    charger.meter(txn)
    charger.end(txn)
    return charger


def _relay(charger: FaultCharger201, csms: FaultCsms) -> None:
    """What a faithful relay leaves behind: each queued TransactionEvent sent once, forwarded once
    under a bridge message id, answered by the CSMS with its tag, the answer back at the charger."""
    for n, message in enumerate(list(charger.queue)):
        assert isinstance(message, Outgoing201)
        payload = message.request()  # what the `ocpp` package writes, camelCase
        raw = _camel(payload)
        call = WireCall(float(n), 0, f"charger-{n}", message.action, raw)
        message.calls.append(call)
        charger.wire.append(call)
        csms.received.append(
            Received(float(n), 1, charger.station_id, f"bridge-{n}", message.action, raw)
        )
        csms.acked[(1, f"bridge-{n}")] = float(n)
        custom = {"vendorId": ANSWER_VENDOR, "answer": f"1/bridge-{n}"}
        message.result = [3, call.message_id, {"customData": custom}]
        message.conf_at = float(n)
    charger.queue.clear()


def _camel(request: Any) -> dict[str, Any]:
    """The payload as the `ocpp` package writes it."""
    result: dict[str, Any] = snake_to_camel_case(serialize_as_dict(request))
    return result


def _duplicate_at_csms(charger: FaultCharger201, csms: FaultCsms) -> None:
    first = csms.received[0]
    csms.received.append(
        Received(9.0, 2, first.station_id, "bridge-9", first.action, dict(first.payload))
    )


def _answered_by_bridge(charger: FaultCharger201, csms: FaultCsms) -> None:
    message = charger.sent_order[1]
    assert message.result is not None
    message.result = [3, message.result[1], {}]


def _answer_of_another(charger: FaultCharger201, csms: FaultCsms) -> None:
    message = charger.sent_order[2]
    assert message.result is not None
    message.result = [
        3,
        message.result[1],
        {"customData": {"vendorId": ANSWER_VENDOR, "answer": "1/bridge-0"}},
    ]


def _changed(charger: FaultCharger201, csms: FaultCsms) -> None:
    event = csms.received[1]
    payload = dict(event.payload, offline=not event.payload["offline"])
    csms.received[1] = Received(
        event.at, event.session, event.station_id, event.message_id, event.action, payload
    )


def _lost(charger: FaultCharger201, csms: FaultCsms) -> None:
    del csms.received[2]


def _reordered(charger: FaultCharger201, csms: FaultCsms) -> None:
    csms.received[0], csms.received[1] = csms.received[1], csms.received[0]


def test_check201_passes_a_faithful_relay() -> None:
    charger, csms = _charger(), FaultCsms(Taps())
    _relay(charger, csms)
    problems, stats = check201(csms, [charger])
    assert problems == []
    assert stats["201-events"] == 3 and stats["201-transactions"] == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (_duplicate_at_csms, "the CSMS got 2 copies, the charger sent 1"),
        (_answered_by_bridge, "is not the CSMS's answer to a copy of it"),
        (_answer_of_another, "is not the CSMS's answer to a copy of it"),
        (_changed, "the CSMS got"),
        (_lost, "never reached the CSMS"),
        (_reordered, "events out of order"),
    ],
)
def test_check201_finds_what_a_relay_could_get_wrong(
    fault: Callable[[FaultCharger201, FaultCsms], None], expected: str
) -> None:
    charger, csms = _charger(), FaultCsms(Taps())
    _relay(charger, csms)
    fault(charger, csms)
    problems, _ = check201(csms, [charger])
    assert any(expected in p for p in problems), problems
