"""The OCPP 2.0.1 charging station the CSMS sees, shared by every translated station kind (1.6J, IEC 104).

A `NorthStation` owns the CSMS-facing `RpcEndpoint` and everything a 2.0.1 station does toward its CSMS
regardless of what sits below it. The owning core (`bridge.stations.v16.core`, `bridge.stations.iec104.core`) feeds it
the CSMS connection's input and gets back the events only it can handle.

Rules
- Registration (B01–B03). The station's identity (BootNotificationRequest.chargingStation) is durable
  (table `north`, key `identity`). When the connection comes up and an identity is known, a
  BootNotification is sent, unless the CSMS already accepted this station since the bridge started: a
  reconnect is not a reboot, so the station is registered again at once. Pending and Rejected are retried
  after the interval the CSMS gave (`boot_retry_interval` when it gave 0), never earlier (B02.FR.04). Until
  Accepted, nothing but BootNotification is sent (B02, B03); CSMS requests are still handed to the owner,
  except while the CSMS has Rejected the station: then they are answered CALLERROR SecurityError here
  (B03.FR.08), and a GetVariables, SetVariables or GetReport beyond DeviceDataCtrlr's ItemsPerMessage or
  BytesPerMessage (the frame's bytes as received), answered its CALLERROR here (`bridge.north.device_data.over_limit`).
- The owner may send a BootNotification itself (`boot`, when the charger below rebooted): it goes at once
  and its answer updates the registration like the station's own.
- Heartbeat (G02): the station's own, every `heartbeat_interval` while registered (the accepted
  BootNotification's interval, or the HeartbeatInterval the CSMS set): counted from the last heartbeat, so
  a changed interval applies at once. `call_timeout` (MessageTimeout) may change too, from the next CALL.
- Connector status (G01, F06): `report_status` keeps the newest status per (evse, connector). A status
  the CSMS has not acknowledged on this connection (CALLRESULT) is sent, and sent again until it is: a
  CALLERROR is retried like an outbox entry (after `message_attempt_interval` × attempts, at most
  `message_attempts` times), a lost connection sends it on the next one. A triggered status
  (`triggered=True`, F06) is sent also when the CSMS has it; an unchanged, untriggered one changes
  nothing, not even the stored timestamp (a later resend carries the time the status began). After each
  registration every connector's status the CSMS does not have is sent, after each accepted
  BootNotification every connector's (B01.FR.05).
- One order, as things happened: statuses and outbox entries are numbered in one sequence
  (`Outbox.take_seq`) and go one at a time, lowest number first, so a status never overtakes a
  TransactionEvent queued before it (nor the reverse); an older status of the same connector is replaced,
  keeping the newer one's place.
- Late answers (`late_answer_wait`): a CALL unanswered at `call_timeout` stays outstanding and its late
  answer is its answer; nothing is resent on a live connection. The owner's calls are reported failed
  (TIMEOUT) at `call_timeout` so it can answer its charger, and may get the late answer after that. After
  `late_answer_wait` more seconds without an answer the connection is given up (`Close`, and an outbox
  entry counts one attempt); what was unconfirmed goes again on the next connection.
- The CSMS connection's call queue is bounded (`max_queued_calls`): when it is full, `call` returns False,
  a heartbeat is skipped, and statuses and the outbox wait until the CSMS has caught up, so a slow CSMS
  never makes the station raise `QueueFull`.
- Must-deliver messages (`enqueue`) go through the durable `Outbox`: TransactionEvent and the
  notifications the CSMS must not miss. A TransactionEvent queued while not registered carries
  `offline = true` (E04.FR.03). Payloads are validated when
  queued, so a stored entry is known good. Delivery: in order, one at a time, only while registered.
- Direct calls (`call`) are for requests that need an answer now (Authorize, DataTransfer, …): when the
  station is not registered, `call` returns False and the owner answers its charger from local state.
- Events for the owner: every CSMS request (`CallReceived`), the answers to its own calls
  (`ResultReceived`, `ErrorReceived`, `CallFailed`, with the owner's `context`), `BootAnswered` for
  every answer to a BootNotification, `Registered` after each acceptance, `Delivered` for each outbox entry the CSMS took, `GaveUp` for one it would not take.
- Effects are appended to the list the owner passes in, so they interleave in the order they happen;
  the owner calls `flush()` at the end of each input to turn written frames into `Send` effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bridge.effects import CLOSE_GOING_AWAY, Close, Effect, Persist, Report, Send, Side
from bridge.north.device_data import over_limit
from bridge.north.outbox import Entry, Outbox
from bridge.ocppj.directions import Sender
from bridge.ocppj.errors import Fault, OcppVersion, OutboundPayloadInvalid
from bridge.ocppj.frames import CallError
from bridge.ocppj.rpc import (
    CallFailed,
    CallOverdue,
    CallReceived,
    Diagnostic,
    ErrorReceived,
    FailureReason,
    MessageIdSource,
    ResultReceived,
    RpcEndpoint,
    RpcEvent,
    Unresponsive,
)
from bridge.ocppj.schema import PayloadKind, SchemaRegistry

TABLE: Final = "north"
DEFAULT_HEARTBEAT: Final = 300


@dataclass(frozen=True, slots=True)
class NorthSettings:
    call_timeout: float = 30.0
    message_attempts: int = 3
    message_attempt_interval: float = 60.0
    outbox_max_bytes: int = 16 << 20
    boot_retry_interval: float = 60.0
    max_queued_calls: int = 100
    late_answer_wait: float | None = 90.0  # None: a call fails at its timeout (and is retried)
    naive_times_as_utc: bool = True  # False: [csms] strict_timestamps, offset-less times refused


@dataclass(frozen=True, slots=True)
class Registered:
    """The CSMS accepted the station (after a BootNotification, or again after a reconnect)."""

    reconnect: bool


@dataclass(frozen=True, slots=True)
class BootAnswered:
    """The CSMS answered a BootNotification (the station's own or the owner's)."""

    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivered:
    action: str
    payload: dict[str, Any]
    response: dict[str, Any]
    seq: int = 0  # the outbox entry's number, as `enqueue` returned it


@dataclass(frozen=True, slots=True)
class GaveUp:
    action: str
    payload: dict[str, Any]
    reason: str
    seq: int = 0


OwnerEvent = (
    CallReceived
    | ResultReceived
    | ErrorReceived
    | CallFailed
    | Registered
    | BootAnswered
    | Delivered
    | GaveUp
)


class _Own:
    """Context of the station's own calls (the owner's contexts are anything else)."""

    def __init__(
        self, kind: str, entry: Entry | None = None, status: _Status | None = None
    ) -> None:
        self.kind = kind
        self.entry = entry
        self.status = status


@dataclass(slots=True, eq=False)
class _Status:
    """The newest status of one connector and its delivery."""

    key: tuple[int, int]
    status: str
    timestamp: str
    seq: int  # its place in the order of things (`Outbox.take_seq`)
    forced: bool = False  # triggered (F06): sent even when the CSMS has this status
    attempts: int = 0
    not_before: float = 0.0
    resend_reason: str | None = None


class NorthStation:
    def __init__(
        self,
        station_id: str,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        effects: list[Effect],
        state: dict[str, dict[str, Any]],
        *,
        now: float,
        settings: NorthSettings = NorthSettings(),
    ) -> None:
        self.station_id = station_id
        self.settings = settings
        self._schemas = schemas
        self._effects = effects
        self._endpoint = RpcEndpoint(
            OcppVersion.V201,
            schemas,
            new_message_id,
            call_timeout=settings.call_timeout,
            max_queued=settings.max_queued_calls,
            online=False,
            late_answer_wait=settings.late_answer_wait,
            naive_times_as_utc=settings.naive_times_as_utc,
            peer=Sender.CSMS,
        )
        north = state.get(TABLE, {})
        self._identity: dict[str, Any] | None = north.get("identity")
        self.outbox = Outbox(
            state,
            now=now,
            max_bytes=settings.outbox_max_bytes,
            message_attempts=settings.message_attempts,
            attempt_interval=settings.message_attempt_interval,
        )
        self.registered = False
        self.accepted_once = False  # since the bridge started
        self.boot_reason = "Unknown"  # of the station's own next BootNotification
        self.heartbeat_interval = DEFAULT_HEARTBEAT
        self._boot_in_flight = False
        self._boot_due: float | None = None
        self._heartbeat_since: float | None = None  # the interval counts from here
        self._rejected = False  # the CSMS's last answer to a BootNotification was Rejected
        self._boot_answer: str | None = None  # its status, on this connection
        self._status: dict[tuple[int, int], _Status] = {}  # the newest per connector
        self._csms_has: dict[tuple[int, int], str] = {}  # acknowledged on this connection
        self._status_in_flight: _Status | None = None

    # --- state ----------------------------------------------------------------------------------

    @property
    def call_timeout(self) -> float:
        """Seconds the CSMS has to answer a CALL (MessageTimeout): a change applies from the next
        CALL sent on."""
        return self._endpoint.call_timeout

    @call_timeout.setter
    def call_timeout(self, seconds: float) -> None:
        self._endpoint.call_timeout = seconds

    @property
    def _heartbeat_due(self) -> float | None:
        """The next heartbeat: `heartbeat_interval` after the last one (or the registration), so a
        changed interval applies at once."""
        since = self._heartbeat_since
        return None if since is None else since + self.heartbeat_interval

    @property
    def online(self) -> bool:
        return self._endpoint.online

    @property
    def identity(self) -> dict[str, Any] | None:
        return self._identity

    @property
    def boot_status(self) -> str:
        """The registration as the CSMS sees it (for status pages): "offline", "Accepted" (registered on
        this connection), "sent" (a BootNotification awaits its answer), the CSMS's last other answer
        ("Pending", "Rejected") or "not sent" (nothing to register with yet)."""
        if not self.online:
            return "offline"
        if self.registered:
            return "Accepted"
        if self._boot_in_flight:
            return "sent"
        return self._boot_answer or "not sent"

    def status_of(self, evse_id: int, connector_id: int = 1) -> str | None:
        entry = self._status.get((evse_id, connector_id))
        return entry.status if entry is not None else None

    def connectors(self) -> list[tuple[int, int]]:
        return sorted(self._status)

    def messages_in_queue(self, transaction_id: str) -> bool:
        return self.outbox.has_transaction(transaction_id)

    # --- connection -------------------------------------------------------------------------------

    def connection_made(self, now: float) -> list[OwnerEvent]:
        self._endpoint.go_online(now)
        self._csms_has.clear()  # the CSMS may have forgotten anything across a reconnect
        if self.accepted_once:
            return self._became_registered(now, reconnect=True)
        self._boot_due = now if self._identity is not None else None
        self._tick(now)
        return []

    def connection_lost(self, now: float) -> list[OwnerEvent]:
        events = self._owner_events(self._endpoint.go_offline(), now)
        self._went_offline()
        return events

    def _went_offline(self) -> None:
        self.registered = False
        self._boot_in_flight = False
        self._boot_answer = None
        self._boot_due = None
        self._heartbeat_since = None
        self.outbox.connection_lost()
        if self._status_in_flight is not None:
            self._status_in_flight.resend_reason = (
                self._status_in_flight.resend_reason or "reconnect"
            )
            self._status_in_flight = None

    # --- identity and registration ------------------------------------------------------------------

    def set_identity(self, charging_station: dict[str, Any], now: float) -> None:
        """The station's BootNotification identity (durable); boots now if the link waits for one."""
        self._keep_identity(charging_station)
        if self.online and not self.registered and not self._boot_in_flight:
            if self._boot_due is None:  # else a retry is scheduled: not earlier (B02.FR.04)
                self._boot_due = now
            self._tick(now)

    def _keep_identity(self, charging_station: dict[str, Any]) -> None:
        if charging_station != self._identity:
            self._identity = dict(charging_station)
            self._effects.append(Persist(TABLE, "identity", self._identity))

    def boot(self, payload: dict[str, Any], now: float, context: Any) -> bool:
        """Send the charger's own BootNotification; its answer comes back with `context`."""
        self._keep_identity(payload["chargingStation"])
        if not self.online:
            return False
        self._endpoint.call("BootNotification", payload, now, context=context)
        self._boot_in_flight = True
        self._boot_due = None
        return True

    def _send_boot(self, now: float) -> None:
        assert self._identity is not None
        payload = {"chargingStation": self._identity, "reason": self.boot_reason}
        self.boot_reason = "Unknown"
        self._endpoint.call("BootNotification", payload, now, context=_Own("boot"))
        self._boot_in_flight = True
        self._boot_due = None

    def _boot_answered(self, response: dict[str, Any], now: float) -> list[OwnerEvent]:
        self._boot_in_flight = False
        interval = response.get("interval", 0)
        answered: list[OwnerEvent] = [BootAnswered(response)]
        self._rejected = response.get("status") == "Rejected"
        status = response.get("status")
        self._boot_answer = status if isinstance(status, str) else None
        if response.get("status") == "Accepted":
            self.heartbeat_interval = interval if interval > 0 else DEFAULT_HEARTBEAT
            self.accepted_once = True
            self._csms_has.clear()  # B01.FR.05: every connector's status after an accepted boot
            return answered + self._became_registered(now, reconnect=False)
        self.registered = False
        self._boot_due = now + (interval if interval > 0 else self.settings.boot_retry_interval)
        return answered

    def _became_registered(self, now: float, *, reconnect: bool) -> list[OwnerEvent]:
        self.registered = True
        self._heartbeat_since = now
        self._tick(now)
        return [Registered(reconnect)]

    # --- calls ----------------------------------------------------------------------------------

    def call(
        self,
        action: str,
        payload: dict[str, Any],
        now: float,
        context: Any,
        *,
        asked_for: bool = False,
    ) -> bool:
        """A request that needs an answer now. False: not registered (or the CSMS is far behind),
        answer locally. `asked_for`: the CSMS requested this message (a NotifyReport after
        GetBaseReport, a triggered message), which B02.FR.02 allows while Pending."""
        allowed = self.registered or (asked_for and self.online and self._identity is not None)
        if not allowed or not self._room():
            return False
        self._endpoint.call(action, payload, now, context=context)
        return True

    def enqueue(self, action: str, payload: dict[str, Any], now: float) -> int:
        """A message the CSMS must get: made durable now, delivered in order when registered.

        Returns the entry's number (`Delivered.seq`, `GaveUp.seq`)."""
        if action == "TransactionEvent" and not self.registered:
            payload = {**payload, "offline": True}
        violation = self._schemas.check(OcppVersion.V201, action, PayloadKind.REQUEST, payload)
        if violation is not None:
            raise OutboundPayloadInvalid(action, PayloadKind.REQUEST.value, violation.describe())
        entry, changes = self.outbox.add(action, payload, now)
        self._effects.extend(changes)
        self._tick(now)
        return entry.seq

    def report_status(
        self,
        evse_id: int,
        connector_id: int,
        status: str,
        timestamp: str,
        now: float,
        *,
        triggered: bool = False,
    ) -> None:
        """The connector's status now; `triggered`: asked for by the CSMS (F06), sent even if unchanged."""
        key = (evse_id, connector_id)
        current = self._status.get(key)
        if current is not None and current.status == status and not triggered:
            return  # nothing happened: not even the time the status began changes
        self._status[key] = _Status(key, status, timestamp, self.outbox.take_seq(), triggered)
        self._tick(now)

    def _due_status(self) -> _Status | None:
        """The unacknowledged status that comes first in the order of things."""
        best: _Status | None = None
        for record in self._status.values():
            if record is self._status_in_flight:
                continue
            if not record.forced and self._csms_has.get(record.key) == record.status:
                continue
            if best is None or record.seq < best.seq:
                best = record
        return best

    def _next_in_order(self) -> Entry | _Status | None:
        """What goes next toward the CSMS in the order of things, due or not; None while one is out."""
        if self.outbox.in_flight is not None or self._status_in_flight is not None:
            return None
        head = self.outbox.head()
        status = self._due_status()
        if status is not None and (head is None or status.seq < head.seq):
            return status
        return head

    def _send_status(self, record: _Status, now: float) -> None:
        if record.resend_reason is not None:
            self._report_resend("StatusNotification", record.resend_reason)
            record.resend_reason = None
        self._status_in_flight = record
        payload = {
            "timestamp": record.timestamp,
            "connectorStatus": record.status,
            "evseId": record.key[0],
            "connectorId": record.key[1],
        }
        self._endpoint.call(
            "StatusNotification", payload, now, context=_Own("status", status=record)
        )

    def _report_resend(self, action: str, reason: str) -> None:
        self._effects.append(
            Report(
                Side.NORTH,
                Diagnostic(
                    "resend",
                    f"{action} sent again ({reason})",
                    action=action,
                    fields={"reason": reason},
                ),
            )
        )

    # --- answering the CSMS ------------------------------------------------------------------------

    def is_awaiting(self, message_id: str) -> bool:
        return self._endpoint.is_awaiting(message_id)

    def reply(self, message_id: str, payload: dict[str, Any]) -> None:
        self._endpoint.reply(message_id, payload)

    def reply_error(self, message_id: str, fault: Fault, description: str) -> None:
        self._endpoint.reply_error(message_id, fault, description)

    def forward_error(self, message_id: str, error: CallError) -> None:
        self._endpoint.forward_error(message_id, error)

    # --- input, time ----------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[OwnerEvent]:
        if not self.online:
            return []
        events = self._owner_events(self._endpoint.receive(data, now), now, data)
        self._tick(now)
        return events

    def handle_timer(self, now: float) -> list[OwnerEvent]:
        events = self._owner_events(self._endpoint.handle_timer(now), now)
        self._tick(now)
        return events

    def next_deadline(self) -> float | None:
        # Asked after every input: written out rather than as a min over a list.
        best = self._endpoint.next_deadline()
        due = self._boot_due
        if due is not None and (best is None or due < best):
            best = due
        if self.registered:
            due = self._heartbeat_due
            if due is not None and (best is None or due < best):
                best = due
            if self._room():
                following = self._next_in_order()
                due = following.not_before if following is not None else None
                if due is not None and due > 0 and (best is None or due < best):
                    best = due
        return best

    def flush(self) -> None:
        if self._endpoint.has_outgoing:
            for frame in self._endpoint.take_outgoing():
                self._effects.append(Send(Side.NORTH, frame))

    def _tick(self, now: float) -> None:
        """Start whatever is due: a boot, a heartbeat, the next outbox entry."""
        if not self.online:
            return
        if (
            self._boot_due is not None
            and self._boot_due <= now
            and not self._boot_in_flight
            and self._identity is not None
        ):
            self._send_boot(now)
        if not self.registered:
            return
        if self._heartbeat_due is not None and self._heartbeat_due <= now:
            self._heartbeat_since = now
            if self._room():  # else skipped: the CSMS has plenty of messages from this station
                self._endpoint.call("Heartbeat", {}, now, context=_Own("heartbeat"))
        following = self._next_in_order() if self._room() else None
        if following is None or following.not_before > now:
            return
        if isinstance(following, _Status):
            self._send_status(following, now)
            return
        entry = following
        if entry.resend_reason is not None:
            self._report_resend(entry.action, entry.resend_reason)
            entry.resend_reason = None
        self.outbox.sent(entry)
        self._endpoint.call(
            entry.action, entry.payload, now, context=_Own("outbox", entry), validated=True
        )

    def _room(self) -> bool:
        return self._endpoint.queued < self.settings.max_queued_calls

    def _owner_events(
        self, events: list[RpcEvent], now: float, received: str | bytes = b""
    ) -> list[OwnerEvent]:
        """The owner's share of `events`; `received` is the frame they came from, if any."""
        out: list[OwnerEvent] = []
        for event in events:
            if isinstance(event, Diagnostic):
                self._effects.append(Report(Side.NORTH, event))
            elif isinstance(event, Unresponsive):
                out.extend(self._unresponsive(event, now))
            elif isinstance(event, CallOverdue):
                if not isinstance(event.request.context, _Own):
                    # The owner answers its charger now; the late answer may still come.
                    failed = CallFailed(event.request, FailureReason.TIMEOUT, "no answer in time")
                    out.append(failed)
            elif isinstance(event, CallReceived) and self._rejected:
                self._endpoint.reply_error(
                    event.call.message_id,
                    Fault.SECURITY,
                    "B03.FR.08: the CSMS rejected this station's BootNotification",
                )
            elif isinstance(event, CallReceived):
                call = event.call
                refused = over_limit(call.action, call.payload, received)
                if refused is None:
                    out.append(event)
                else:  # B06.FR.16/17, B08.FR.17/18: beyond DeviceDataCtrlr's limits
                    self._endpoint.reply_error(call.message_id, *refused)
            elif isinstance(event.request.context, _Own):
                out.extend(self._own_answer(event, event.request.context, now))
            else:
                if event.request.action == "BootNotification":  # the owner's boot registers too
                    out.extend(self._own_answer(event, _Own("boot"), now))
                out.append(event)
        return out

    def _unresponsive(self, event: Unresponsive, now: float) -> list[OwnerEvent]:
        """The CSMS left a call unanswered too long: give the connection up; the next one resends."""
        self._effects.append(
            Report(
                Side.NORTH,
                Diagnostic(
                    "csms-unresponsive",
                    f"{event.detail}: closing the connection",
                    message_id=event.request.message_id,
                    action=event.request.action,
                ),
            )
        )
        self._effects.append(Close(Side.NORTH, CLOSE_GOING_AWAY, event.detail[:120]))
        out: list[OwnerEvent] = []
        own = event.request.context
        if isinstance(own, _Own) and own.kind in ("outbox", "status"):
            # No answer at all counts as an attempt (E13.FR.02); it goes again on the next connection.
            out.extend(self._own_failed(own, "unanswered", event.detail, now))
        self._went_offline()
        return out

    def _own_answer(
        self, event: ResultReceived | ErrorReceived | CallFailed, own: _Own, now: float
    ) -> list[OwnerEvent]:
        if own.kind == "status" and own.status is not None:
            return self._status_answer(event, own.status, now)
        if own.kind == "boot":
            if isinstance(event, ResultReceived):
                return self._boot_answered(event.payload, now)
            self._boot_in_flight = False
            if self.online:
                self._boot_due = now + self.settings.boot_retry_interval
            return []
        if own.kind != "outbox" or own.entry is None:
            return []  # heartbeat, status: nothing to do with the answer
        entry = own.entry
        if isinstance(event, ResultReceived):
            self._effects.append(self.outbox.delivered(entry))
            return [Delivered(entry.action, entry.payload, event.payload, entry.seq)]
        if isinstance(event, CallFailed) and event.reason is FailureReason.CONNECTION_LOST:
            if self.outbox.in_flight is entry:
                self.outbox.connection_lost()
            return []
        return self._own_failed(own, *_failure(event), now)

    def _status_answer(
        self, event: ResultReceived | ErrorReceived | CallFailed, record: _Status, now: float
    ) -> list[OwnerEvent]:
        if self._status_in_flight is record:
            self._status_in_flight = None
        if isinstance(event, ResultReceived):
            self._csms_has[record.key] = record.status
            record.forced = False
            return []
        if isinstance(event, CallFailed) and event.reason is FailureReason.CONNECTION_LOST:
            record.resend_reason = record.resend_reason or "reconnect"
            return []
        return self._own_failed(_Own("status", status=record), *_failure(event), now)

    def _own_failed(self, own: _Own, reason: str, why: str, now: float) -> list[OwnerEvent]:
        """An outbox entry or a status the CSMS did not take: retried later, or given up."""
        record = own.status
        if record is not None:
            if self._status_in_flight is record:
                self._status_in_flight = None
            record.attempts += 1
            record.resend_reason = reason
            if record.attempts < self.outbox.message_attempts:
                record.not_before = now + self.outbox.attempt_interval * record.attempts
                return []
            self._csms_has[record.key] = record.status  # given up: not sent again on this link
            record.forced = False
            self._effects.append(
                Report(
                    Side.NORTH,
                    Diagnostic(
                        "status-gave-up",
                        f"StatusNotification {record.status} of EVSE {record.key[0]} not taken"
                        f" after {record.attempts} attempts: {why}",
                        action="StatusNotification",
                    ),
                )
            )
            return []
        entry = own.entry
        assert entry is not None
        removed = self.outbox.failed(entry, now, reason)
        if removed is None:
            self._effects.append(
                Report(
                    Side.NORTH,
                    Diagnostic(
                        "outbox-retry",
                        f"{entry.action} not taken by the CSMS ({why}); attempt {entry.attempts}"
                        f" of {self.outbox.message_attempts}",
                        action=entry.action,
                    ),
                )
            )
            return []
        self._effects.append(removed)
        self._effects.append(
            Report(
                Side.NORTH,
                Diagnostic(
                    "outbox-gave-up",
                    f"{entry.action} discarded after {entry.attempts} attempts (E13.FR.04): {why}",
                    action=entry.action,
                    # What identifies the lost message, not its payload (idTokens stay out of logs).
                    fields=_identify(entry),
                ),
            )
        )
        return [GaveUp(entry.action, entry.payload, why, entry.seq)]


def _failure(event: ResultReceived | ErrorReceived | CallFailed) -> tuple[str, str]:
    """(resend reason, why) of a failed attempt."""
    if isinstance(event, ErrorReceived):
        return "callerror", f"CALLERROR {event.error.code}: {event.error.description}"
    if isinstance(event, CallFailed):
        return event.reason.value, event.detail
    return "callerror", "unexpected answer"


def _identify(entry: Entry) -> dict[str, Any]:
    fields: dict[str, Any] = {"outbox_seq": entry.seq}
    info = entry.payload.get("transactionInfo")
    if isinstance(info, dict):
        fields["transaction_id"] = info.get("transactionId")
        fields["seq_no"] = entry.payload.get("seqNo")
        fields["event_type"] = entry.payload.get("eventType")
    return fields
