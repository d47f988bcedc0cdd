"""Issue 16 item 7: the bridge-owned OCPPCommCtrlr values a CSMS sets apply at once, not after a restart.

B05 SetVariables of HeartbeatInterval, MessageTimeout, MessageAttempts/MessageAttemptInterval on a running
1.6 and 104 station: the next heartbeat, the next call's timeout and the next retry use the new value.
"""

from __future__ import annotations

from bridge.effects import Side
from tests.core.station_harness import Bench
from tests.core.test_issue16_device_model import answer104, ask16, item, ready104, registered16

N, S = Side.NORTH, Side.SOUTH


def set16(bench: Bench, variable: str, instance: str | None, value: str) -> str:
    write = item("OCPPCommCtrlr", variable, instance, attributeValue=value)
    response = ask16(bench, "SetVariables", {"setVariableData": [write]})
    return str(response["setVariableResult"][0]["attributeStatus"])


class TestHeartbeatIntervalLive:
    def test_b05_g02_a_shorter_heartbeat_interval_applies_to_the_next_heartbeat_16(self) -> None:
        bench = registered16()  # the CSMS's boot said 300 s
        assert set16(bench, "HeartbeatInterval", None, "20") == "Accepted"
        bench.advance(21)
        bench.answer_all(N)
        assert len(bench.frames(N, "Heartbeat", 2)) == 1  # not after 300 s
        bench.advance(20)
        bench.answer_all(N)
        assert len(bench.frames(N, "Heartbeat", 2)) == 2

    def test_b05_g02_a_longer_heartbeat_interval_applies_at_once_104(self) -> None:
        bench = ready104()
        write = item("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="1000")
        answer104(bench, "SetVariables", {"setVariableData": [write]})
        bench.advance(900)
        assert bench.calls("Heartbeat") == []  # not at the old 300 s
        bench.advance(200)
        assert len(bench.calls("Heartbeat")) == 1

    def test_b05_g02_a_shorter_heartbeat_interval_applies_at_once_104(self) -> None:
        bench = ready104()
        write = item("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="15")
        answer104(bench, "SetVariables", {"setVariableData": [write]})
        bench.advance(16)
        assert len(bench.calls("Heartbeat")) == 1


class TestMessageTimeoutLive:
    def test_b05_message_timeout_is_accepted_and_used_from_the_next_call_16(self) -> None:
        bench = registered16()  # call timeout 30 s from the configuration
        assert set16(bench, "MessageTimeout", "Default", "5") == "Accepted"
        bench.charger("Authorize", {"idTag": "TAG-1"})
        assert bench.outstanding(N) is not None  # the CSMS does not answer
        bench.advance(6)
        answers = [f for f in bench.frames(S, "Authorize") if f.kind == 3]
        assert len(answers) == 1  # the charger got its answer at 5 s, not 30 s
        assert bench.core.north.call_timeout == 5

    def test_b05_message_timeout_applies_without_a_restart_104(self) -> None:
        bench = ready104()
        write = item("OCPPCommCtrlr", "MessageTimeout", "Default", attributeValue="7")
        response = answer104(bench, "SetVariables", {"setVariableData": [write]})
        assert response["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert bench.core.north.call_timeout == 7


class TestMessageAttemptsLive:
    def test_b05_e13_message_attempts_and_interval_apply_to_queued_retries_104(self) -> None:
        bench = ready104()
        writes = [
            item("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent", attributeValue="2"),
            item("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent", attributeValue="4"),
        ]
        answer104(bench, "SetVariables", {"setVariableData": writes})
        assert bench.core.north.outbox.message_attempts == 2
        assert bench.core.north.outbox.attempt_interval == 4
