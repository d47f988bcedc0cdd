"""A stateful model of call correlation (OCPP-J part 4 §4.1.1, §4.1.4).

Hypothesis drives one RpcEndpoint with any interleaving of calls, right answers, wrong-id answers, late
answers, errors, time and disconnects, and checks after every step:
- at most one CALL is outstanding, and only the outstanding one was sent without being answered;
- every CALL frame ever sent carries an id never sent before;
- every ResultReceived/ErrorReceived belongs to the call whose id the answer carried;
- calls leave in the order they were made.
"""

from __future__ import annotations

import itertools

import orjson
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.rpc import (
    CallFailed,
    Diagnostic,
    ErrorReceived,
    PendingCall,
    ResultReceived,
    RpcEndpoint,
)

SCHEMAS = OfficialSchemas()
RESULT = {"currentTime": "2026-11-22T10:00:00Z"}
TIMEOUT = 10.0


class CorrelationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        counter = itertools.count()
        self.ep = RpcEndpoint(
            OcppVersion.V201, SCHEMAS, lambda: f"id{next(counter)}", call_timeout=TIMEOUT
        )
        self.now = 0.0
        self.made: list[PendingCall] = []  # in the order made
        self.sent_ids: list[str] = []
        self.sent_order: list[PendingCall] = []
        self.resolved: set[int] = set()  # id() of calls answered, failed or timed out

    def _drain(self) -> None:
        for text in self.ep.take_outgoing():
            frame = orjson.loads(text)
            if frame[0] == 2:
                assert frame[1] not in self.sent_ids, "a message id was reused"
                self.sent_ids.append(frame[1])
                outstanding = self.ep.outstanding
                assert outstanding is not None and outstanding.message_id == frame[1]
                self.sent_order.append(outstanding)

    def _account(self, events: list[object], answered_id: str | None = None) -> None:
        for event in events:
            if isinstance(event, ResultReceived | ErrorReceived):
                assert event.request.message_id == answered_id, "answer matched to another call"
                assert id(event.request) not in self.resolved
                self.resolved.add(id(event.request))
            elif isinstance(event, CallFailed):
                assert id(event.request) not in self.resolved
                self.resolved.add(id(event.request))
            else:
                assert isinstance(event, Diagnostic)
        self._drain()

    @rule()
    def make_call(self) -> None:
        self.made.append(self.ep.call("Heartbeat", {}, self.now))
        self._drain()

    @precondition(lambda self: self.ep.outstanding is not None)
    @rule(error=st.booleans())
    def answer_outstanding(self, error: bool) -> None:
        outstanding = self.ep.outstanding
        assert outstanding is not None
        message_id = outstanding.message_id
        frame = [4, message_id, "GenericError", "", {}] if error else [3, message_id, RESULT]
        self._account(self.ep.receive(orjson.dumps(frame), self.now), message_id)

    @precondition(lambda self: bool(self.sent_ids))
    @rule(data=st.data())
    def answer_an_old_id(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(self.sent_ids))
        outstanding = self.ep.outstanding
        events = self.ep.receive(orjson.dumps([3, message_id, RESULT]), self.now)
        if outstanding is None or outstanding.message_id != message_id:
            assert all(isinstance(e, Diagnostic) for e in events)
        self._account(events, message_id)

    @rule(message_id=st.text(min_size=1, max_size=36))
    def answer_an_unknown_id(self, message_id: str) -> None:
        outstanding = self.ep.outstanding
        events = self.ep.receive(orjson.dumps([3, message_id, RESULT]), self.now)
        if outstanding is None or outstanding.message_id != message_id:
            assert all(isinstance(e, Diagnostic) for e in events)
        self._account(events, message_id)

    @rule(seconds=st.floats(min_value=0, max_value=2 * TIMEOUT))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self._account(self.ep.handle_timer(self.now))

    @rule()
    def reconnect(self) -> None:
        self._account(self.ep.go_offline())
        self.ep.go_online(self.now)
        self._drain()

    @invariant()
    def at_most_one_outstanding_and_fifo(self) -> None:
        unresolved_sent = [c for c in self.sent_order if id(c) not in self.resolved]
        assert len(unresolved_sent) <= 1
        if unresolved_sent:
            assert self.ep.outstanding is unresolved_sent[0]
        # calls leave in the order they were made (those that left at all)
        made_positions = {id(c): i for i, c in enumerate(self.made)}
        positions = [made_positions[id(c)] for c in self.sent_order]
        assert positions == sorted(positions)


CorrelationMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestCorrelation = CorrelationMachine.TestCase
