"""A 1.6J charger as an OCPP 2.0.1 charging station: the stateful core that the pure converters serve.

The south side is the charger's OCPP 1.6J connection (an `RpcEndpoint` of version 1.6); the north side
is a `NorthStation` (registration, heartbeat, status cache, durable outbox). The message-by-message
translations live in the sibling modules; this module keeps the state they take as arguments.

Rules
- The core lives as long as the bridge: charger and CSMS connections come and go (`connection_made`,
  `connection_lost`), and what must survive a restart is in the store (tables below), loaded at creation.
- Transaction ids (E01–E06) are the ledger's (`bridge.north.ledger`): the bridge mints the 2.0.1 transactionId
  and the 1.6 integer. A StartTransaction whose (connector, idTag, timestamp, meterStart) is already in
  the ledger is a resend: it gets the same integer and produces no second Started; a MeterValues equal
  to the newest one taken for its transaction is a resend too (no second Updated). The Started/Updated/
  Ended events and their seqNo are made durable (ledger + outbox `Persist`) before the charger's .conf
  is sent, so a crash can neither lose nor duplicate them. StopTransaction and MeterValues naming an
  unknown transaction are accepted (the charger must not retry them forever) and reported.
- Authorization: Authorize goes to the CSMS when it is reachable; otherwise it is answered from the
  bridge's cache of the CSMS's earlier answers (`auth` table); unknown tokens are then accepted only if
  the station's `offline_authorize` says so. Start/StopTransaction.conf carry the cached idTagInfo.
- idTokens longer than a 1.6 idTag travel as a durable alias (`alias` table): a deterministic 20-character
  tag derived from the token; every token sent down is remembered (`token` table) so the charger's idTag
  comes back up as the original IdTokenType.
- RequestStartTransaction's remoteStartId waits (`remote` table) for the StartTransaction with that idTag
  and goes into its Started event (triggerReason RemoteStart).
- Reset OnIdle while a transaction runs is answered Scheduled; the Soft reset is sent to the charger when
  the last transaction has ended (`meta` key `deferred_reset`).
- Heartbeats from the charger are answered here; the CSMS gets the NorthStation's own.
- A StatusNotification the CSMS asked for (TriggerMessage StatusNotification, F06) is forwarded even when
  the status did not change: the charger's next StatusNotification of each connector the trigger named
  (every connector without an EVSE), until the charger's call timeout has passed.
- When the charger's connection is gone for `offline_grace` seconds its connectors are reported
  Unavailable; when it comes back the bridge asks it for its statuses (TriggerMessage StatusNotification).
- Every CSMS request gets an answer: translated, answered from bridge state, or a truthful NotSupported
  (see `bridge.stations.v16.actions`). A request that needs the charger while it is not connected gets CALLERROR
  InternalError saying so. A bug in a converter is answered InternalError and reported; it never ends the
  session.
- Durable tables: ledger `tx`/`meta`, outbox `outbox`, NorthStation `north`, and here `auth`, `alias`,
  `token`, `remote`, `profiles`, `reservations`, `meta` (request ids, deferred reset, counters).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from bridge.effects import Effect, Persist, Report, Send, Side
from bridge.north import owned_variables
from bridge.north.ledger import TransactionIdSource, TransactionLedger, request_digest
from bridge.north.station import (
    BootAnswered,
    Delivered,
    GaveUp,
    NorthSettings,
    NorthStation,
    OwnerEvent,
    Registered,
)
from bridge.ocppj.directions import Sender
from bridge.ocppj.errors import BridgeMisuse, Fault, OcppVersion, OutboundPayloadInvalid, QueueFull
from bridge.ocppj.frames import CallError
from bridge.ocppj.rpc import (
    CallFailed,
    CallReceived,
    Diagnostic,
    ErrorReceived,
    MessageIdSource,
    ResultReceived,
    RpcEndpoint,
    RpcEvent,
)
from bridge.ocppj.schema import PayloadKind, SchemaRegistry
from bridge.stations.v16 import (
    auth,
    charging,
    firmware,
    remote,
    reports,
    reservation,
    security,
    station,
    transactions,
    variables,
)
from bridge.stations.v16.actions import CSMS_ACTIONS, Treatment, answer_unsupported
from bridge.stations.v16.actions import transaction_status_response as _transaction_status
from bridge.stations.v16.device_model import BridgeVariable, ConfigTable, VariableRef
from bridge.stations.v16.id_token import DEFAULT_RULE, IdTokenTypeRule, id_tag_for
from bridge.stations.v16.meter import reading_event_data
from bridge.stations.v16.outcome import (
    Emulate,
    Forward,
    ForwardAll,
    Payload,
    Problem,
    Reply,
    status_info,
)
from bridge.timestamps import (
    UTC_POLICY,
    TimestampPolicy,
    format_utc,
    parse_timestamp,
    timestamp_or,
)

META: Final = "meta"


@dataclass(frozen=True, slots=True)
class Station16Settings:
    config_table: ConfigTable
    id_rule: IdTokenTypeRule = DEFAULT_RULE
    timestamps: TimestampPolicy = UTC_POLICY
    charger_call_timeout: float = 30.0
    north: NorthSettings = field(default_factory=NorthSettings)
    offline_grace: float = 30.0
    offline_authorize: bool = False
    offline_boot_interval: int = 60
    owned: owned_variables.Defaults = field(default_factory=owned_variables.Defaults)


@dataclass(eq=False, slots=True)
class _Job:
    """A CSMS request being served with one or more calls to the charger."""

    message_id: str
    action: str
    request: Payload
    calls: tuple[Forward, ...]
    finish: Callable[[list[Payload | None]], Payload]
    answers: list[Payload | None] = field(default_factory=list)
    errors: list[CallError | None] = field(default_factory=list)
    waiting: int = 0
    # A failed charger call is answered through `finish` (per-item Rejected, B05/B06/B07.FR.13)
    # instead of as a CALLERROR.
    finish_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class _HeldStart:
    """A StartTransaction.conf waiting for the CSMS's answer to its Started event."""

    message_id: str
    local_id: int
    id_tag: str
    due: float


_NEEDS_REGISTRATION: Final = frozenset({"RequestStartTransaction", "RequestStopTransaction"})
_FINISH_ON_FAILURE: Final = frozenset(
    {"GetBaseReport", "GetReport", "GetVariables", "SetVariables"}
)
_START_HOLD: Final = 5.0  # seconds a StartTransaction.conf may wait for the CSMS's idTokenInfo


@dataclass(frozen=True, slots=True)
class _Own:
    """Context of the core's own calls to the charger (no CSMS request behind them)."""

    kind: str


class Station16:
    def __init__(
        self,
        station_id: str,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        new_transaction_id: TransactionIdSource,
        state: dict[str, dict[str, Any]],
        *,
        now: float,
        wall: float,
        settings: Station16Settings,
    ) -> None:
        self.station_id = station_id
        self.settings = settings
        self._schemas = schemas
        # Wall time (seconds since the epoch, UTC) of the input being handled: an argument of every
        # entry point, like `now`; the core reads no clock.
        self._wall = wall
        self._effects: list[Effect] = []
        self._south = RpcEndpoint(
            OcppVersion.V16,
            schemas,
            new_message_id,
            call_timeout=settings.charger_call_timeout,
            online=False,
            peer=Sender.CHARGER,
        )
        self.owned = owned_variables.OwnedValues(state, settings.owned, settings.north)
        self.north = NorthStation(
            station_id,
            schemas,
            new_message_id,
            self._effects,
            state,
            now=now,
            settings=self.owned.north_settings(),
        )
        owned_variables.apply(self.owned, self.north)
        self.ledger = TransactionLedger(new_transaction_id, state)
        self._meta: dict[str, Any] = dict(state.get(META, {}))
        self._auth: dict[str, Payload] = dict(state.get("auth", {}))
        self._aliases: dict[str, Payload] = dict(state.get("alias", {}))
        self._tokens: dict[str, Payload] = dict(state.get("token", {}))
        self._remote: dict[str, Payload] = dict(state.get("remote", {}))
        self._profiles: dict[str, Payload] = dict(state.get("profiles", {}))
        self._reservations: dict[str, Payload] = dict(state.get("reservations", {}))
        self._connector_status: dict[int, str] = {}  # the charger's own 1.6 status per connector
        self._station_status: str | None = None  # connector 0
        self._errors: dict[int, str] = {}  # the error code each connector last reported
        self._unavailable_due: float | None = None
        self._asked_statuses = False
        self._first_call_seen = False
        self._reservation_due: float | None = None
        self._held_starts: dict[int, _HeldStart] = {}  # outbox entry → the charger's call
        self._held_boot: str | None = None  # a charger BootNotification waiting for the CSMS
        self._held_boot_due: float | None = None
        self._pending_tags: dict[str, str] = {}  # Authorize call id → idTag, for the answer
        self._pending_reports: list[Payload] = []  # NotifyReport parts, sent after the response
        # A StatusNotification trigger of the CSMS's: connectors (None: all) whose next status is
        # forwarded even when unchanged, until `_triggered_due`; those already seen.
        self._triggered: set[int] | None = set()
        self._triggered_seen: set[int] = set()
        self._triggered_due = 0.0
        boot16 = self._meta.get("boot16")
        self._identity_variables = (
            station.boot_identity_variables(boot16) if isinstance(boot16, dict) else []
        )
        self._schedule_reservations(now)

    # --- the StationCore interface ----------------------------------------------------------

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.connection_made(now), now)
        else:
            self._south.go_online(now)
            self._unavailable_due = None
            self._first_call_seen = False
            self._asked_statuses = False
        self._flush()

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.connection_lost(now), now)
            self._release_starts(now, all_of_them=True)
        elif self._south.online:
            self._south_events(self._south.go_offline(), now)
            self._unavailable_due = now + self.settings.offline_grace
        self._flush()

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.receive(data, now), now)
        elif self._south.online:
            self._south_events(self._south.receive(data, now), now)
        self._flush()

    def handle_timer(self, now: float, wall: float) -> None:
        self._wall = wall
        self._south_events(self._south.handle_timer(now), now)
        self._north_events(self.north.handle_timer(now), now)
        if self._unavailable_due is not None and now >= self._unavailable_due:
            self._unavailable_due = None
            self._charger_unavailable(now)
        if self._reservation_due is not None and now >= self._reservation_due:
            self._expire_reservations(now)
        if self._held_boot_due is not None and now >= self._held_boot_due:
            self._release_boot(None)
        self._release_starts(now)
        self._flush()

    def next_deadline(self) -> float | None:
        # Asked after every input: written out rather than as a min over a list.
        best = self._south.next_deadline()
        for due in (
            self.north.next_deadline(),
            self._unavailable_due,
            self._reservation_due,
            self._held_boot_due,
        ):
            if due is not None and (best is None or due < best):
                best = due
        for held in self._held_starts.values():
            if best is None or held.due < best:
                best = held.due
        return best

    def effects(self) -> list[Effect]:
        effects = self._effects[:]
        self._effects.clear()
        return effects

    # --- small helpers ------------------------------------------------------------------------

    @property
    def charger_online(self) -> bool:
        return self._south.online

    def _flush(self) -> None:
        self.north.flush()
        if self._south.has_outgoing:
            for frame in self._south.take_outgoing():
                self._effects.append(Send(Side.SOUTH, frame))

    def _iso(self) -> str:
        return format_utc(datetime.fromtimestamp(self._wall, UTC))

    def _persist(self, table: str, key: str, value: Any) -> None:
        self._effects.append(Persist(table, key, value))

    def _set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = value
        self._persist(META, key, value)

    def _report(self, side: Side, kind: str, message: str, **fields: Any) -> None:
        self._effects.append(Report(side, Diagnostic(kind, message, fields=fields)))

    def _report_problems(self, problems: Sequence[Problem], action: str) -> None:
        for problem in problems:
            diagnostic = Diagnostic(
                problem.kind, problem.detail, action=action, fields={"path": problem.path}
            )
            self._effects.append(Report(Side.SOUTH, diagnostic))

    def _next_event_id(self) -> int:
        event_id = int(self._meta.get("event_id", 0)) + 1
        self._set_meta("event_id", event_id)
        return event_id

    # --- idTokens -----------------------------------------------------------------------------

    def _alias_for(self, id_token: Payload) -> str | None:
        """A durable 20-character idTag for a token that does not fit one."""
        token = str(id_token.get("idToken", ""))
        digest = hashlib.sha256(f"{id_token.get('type', '')}:{token}".encode()).digest()
        tag = "A" + base64.b32encode(digest).decode("ascii")[:19]
        if tag.upper() not in self._aliases:
            self._aliases[tag.upper()] = dict(id_token)
            self._persist("alias", tag.upper(), dict(id_token))
        return tag

    def _id_tag_down(self, id_token: Payload) -> str | None:
        tag = id_tag_for(id_token, self._alias_for)
        if tag is not None:
            self._remember_token(tag, id_token)
        return tag

    def _remember_token(self, tag: str, id_token: Payload) -> None:
        token = {"idToken": id_token["idToken"], "type": id_token["type"]}
        if self._tokens.get(tag.upper()) != token and tag.upper() not in self._aliases:
            self._tokens[tag.upper()] = token
            self._persist("token", tag.upper(), token)

    def _known(self, id_tag: str) -> Payload | None:
        return self._aliases.get(id_tag.upper()) or self._tokens.get(id_tag.upper())

    def _local_id_of(self, transaction_id: str) -> int | None:
        transaction = self.ledger.by_id(transaction_id)
        if transaction is None or transaction.ended:
            return None
        return transaction.local_id

    def _cached_tag_info(self, id_tag: str) -> Payload:
        cached = self._auth.get(id_tag.upper())
        return dict(cached) if cached is not None else {"status": "Accepted"}

    def _cache_auth(self, id_tag: str, tag_info: Payload) -> None:
        info = {k: v for k, v in tag_info.items() if k in ("status", "expiryDate", "parentIdTag")}
        if self._auth.get(id_tag.upper()) != info:
            self._auth[id_tag.upper()] = info
            self._persist("auth", id_tag.upper(), info)

    # === charger → bridge ===================================================================

    def _south_events(self, events: list[RpcEvent], now: float) -> None:
        for event in events:
            if isinstance(event, Diagnostic):
                self._effects.append(Report(Side.SOUTH, event))
            elif isinstance(event, CallReceived):
                self._charger_call(event, now)
            elif isinstance(event, ResultReceived | ErrorReceived | CallFailed):
                self._charger_answer(event, now)
            # (CallOverdue and Unresponsive: the charger's endpoint has no late_answer_wait)

    def _charger_call(self, event: CallReceived, now: float) -> None:
        call = event.call
        handler = _CHARGER_HANDLERS.get(call.action)
        if handler is None:
            self._south.reply_error(
                call.message_id, Fault.NOT_SUPPORTED, f"the bridge does not relay {call.action}"
            )
            return
        first = not self._first_call_seen
        self._first_call_seen = True
        try:
            handler(self, call.message_id, call.payload, now)
        except (OutboundPayloadInvalid, BridgeMisuse, KeyError, TypeError, ValueError) as exc:
            self._report(Side.SOUTH, "translation-failed", f"{call.action}: {exc!r}")
            if self._south.is_awaiting(call.message_id):
                self._south.reply_error(
                    call.message_id, Fault.INTERNAL, f"the bridge could not translate {call.action}"
                )
        if first and call.action != "BootNotification" and not self._asked_statuses:
            self._ask_statuses(now)

    def _ask_statuses(self, now: float) -> None:
        """The charger reconnected without booting: ask for its statuses (they may have changed)."""
        self._asked_statuses = True
        self._south.call(
            "TriggerMessage",
            {"requestedMessage": "StatusNotification"},
            now,
            context=_Own("trigger-status"),
        )

    # --- BootNotification, Heartbeat ----------------------------------------------------------------

    def _on_boot(self, message_id: str, request: Payload, now: float) -> None:
        self._asked_statuses = True  # a booting charger sends its statuses itself
        self._set_meta("boot16", request)
        self._identity_variables = station.boot_identity_variables(request)
        # B01.FR.09: why the charger booted, as far as the bridge knows (a reset or a firmware update
        # it forwarded), else PowerUp.
        reason = self._meta.get("boot_reason") or "PowerUp"
        if self._meta.get("boot_reason"):
            self._set_meta("boot_reason", None)
        payload = station.boot_notification_request(request, reason=reason)
        if self.north.online:
            self.north.boot(payload, now, context=("boot", message_id))
            return
        # The CSMS connection is not up (yet): its own boot, when it comes, answers the charger; if
        # it does not come in time, the bridge answers from what it knows. A reboot is announced
        # even if the CSMS accepted the station before (B01.FR.03): no re-registration without it.
        self.north.set_identity(payload["chargingStation"], now)
        self.north.boot_reason = reason
        self.north.accepted_once = False
        self._held_boot = message_id
        self._held_boot_due = now + self.settings.charger_call_timeout / 2

    def _release_boot(self, response: Payload | None) -> None:
        message_id, self._held_boot, self._held_boot_due = self._held_boot, None, None
        if message_id is None or not self._south.is_awaiting(message_id):
            return
        if response is None:
            self._answer_boot_locally(message_id)
        else:
            self._south.reply(message_id, station.boot_notification_response(response))

    def _answer_boot_locally(self, message_id: str) -> None:
        if not self._south.is_awaiting(message_id):
            return
        accepted = self.north.accepted_once or bool(self._meta.get("csms_accepted"))
        self._south.reply(
            message_id,
            {
                "status": "Accepted" if accepted else "Pending",
                "currentTime": self._iso(),
                "interval": self.north.heartbeat_interval
                if accepted
                else self.settings.offline_boot_interval,
            },
        )

    def _on_heartbeat(self, message_id: str, request: Payload, now: float) -> None:
        self._south.reply(message_id, station.heartbeat_response(self._iso()))

    # --- StatusNotification --------------------------------------------------------------------------

    def _was_triggered(self, connector_id: int, now: float) -> bool:
        """Whether this StatusNotification answers the CSMS's TriggerMessage (F06)."""
        wanted = self._triggered
        if now > self._triggered_due or connector_id in self._triggered_seen:
            return False
        if wanted is not None and connector_id not in wanted:
            return False
        self._triggered_seen.add(connector_id)
        return True

    def _on_status(self, message_id: str, request: Payload, now: float) -> None:
        connector_id = request["connectorId"]
        stamp = self._timestamp(request.get("timestamp"), "StatusNotification")
        status = request["status"]
        triggered = self._was_triggered(connector_id, now)
        self._error_events(connector_id, request, stamp, now)
        if connector_id == 0:
            self._station_status = status
            statuses = {c: s for c, s in self._connector_status.items()} or {}
            for payload in station.station_status_requests(status, statuses, stamp):
                self.north.report_status(
                    payload["evseId"],
                    1,
                    payload["connectorStatus"],
                    stamp,
                    now,
                    triggered=triggered and payload["evseId"] not in self._triggered_seen,
                )
        else:
            self._connector_status[connector_id] = status
            effective = station.effective_status(self._station_status, status)
            payload = station.status_notification_request(connector_id, effective, stamp)
            self.north.report_status(
                connector_id, 1, payload["connectorStatus"], stamp, now, triggered=triggered
            )
            self._charging_state(connector_id, status, stamp, now)
            if status in ("Faulted", "Unavailable"):
                self._reservations_removed(connector_id, now)
        self._south.reply(message_id, {})

    def _error_events(self, connector_id: int, request: Payload, stamp: str, now: float) -> None:
        code = request["errorCode"]
        previous = self._errors.get(connector_id)
        events: list[Payload] = []
        if previous is not None and previous != code:
            events.append(
                station.error_event_data(
                    request,
                    event_id=self._next_event_id(),
                    timestamp=stamp,
                    error_code=previous,
                    cleared=True,
                )
            )
            del self._errors[connector_id]
        if station.is_error(code) and previous != code:
            events.append(
                station.error_event_data(request, event_id=self._next_event_id(), timestamp=stamp)
            )
            self._errors[connector_id] = code
        if events:
            self.north.enqueue(
                "NotifyEvent", station.notify_event_request(events, generated_at=stamp), now
            )

    def _charging_state(self, connector_id: int, status: str, stamp: str, now: float) -> None:
        state = station.charging_state(status)
        transaction = self.ledger.active_on(connector_id)
        if transaction is None or state is None or state == transaction.charging_state:
            return
        transaction.charging_state = state
        seq_no, persist = self.ledger.take_seq_no(transaction)
        self._effects.append(persist)
        self.north.enqueue(
            "TransactionEvent",
            {
                "eventType": "Updated",
                "timestamp": stamp,
                "triggerReason": "ChargingStateChanged",
                "seqNo": seq_no,
                "transactionInfo": {
                    "transactionId": transaction.transaction_id,
                    "chargingState": state,
                },
                "evse": {"id": connector_id, "connectorId": 1},
            },
            now,
        )

    def _restore_statuses(self, now: float) -> None:
        """The charger will not report its statuses again: show the last ones it reported."""
        stamp = self._iso()
        for connector_id, status in sorted(self._connector_status.items()):
            effective = station.effective_status(self._station_status, status)
            payload = station.status_notification_request(connector_id, effective, stamp)
            self.north.report_status(connector_id, 1, payload["connectorStatus"], stamp, now)

    def _charger_unavailable(self, now: float) -> None:
        stamp = self._iso()
        for evse_id, connector_id in self.north.connectors():
            self.north.report_status(evse_id, connector_id, "Unavailable", stamp, now)

    def _timestamp(self, text: Any, action: str) -> str:
        outcome = timestamp_or(text, self._iso(), self.settings.timestamps)
        if outcome.problem is not None:
            self._report_problems([outcome.problem], action)
        return outcome.value

    # --- Authorize, DataTransfer, certificates ------------------------------------------------------

    def _on_authorize(self, message_id: str, request: Payload, now: float) -> None:
        payload = auth.authorize_request(request, rule=self.settings.id_rule, known=self._known)
        if not self.north.call("Authorize", payload, now, context=("authorize", message_id)):
            self._south.reply(message_id, {"idTagInfo": self._offline_tag_info(request["idTag"])})
        else:
            self._pending_tags[message_id] = request["idTag"]

    def _offline_tag_info(self, id_tag: str) -> Payload:
        cached = self._auth.get(id_tag.upper())
        if cached is not None:
            return dict(cached)
        return {"status": "Accepted" if self.settings.offline_authorize else "Invalid"}

    def _on_data_transfer(self, message_id: str, request: Payload, now: float) -> None:
        payload = station.data_transfer_up(request)
        if not self.north.call("DataTransfer", payload, now, context=("data", message_id)):
            self._south.reply(message_id, {"status": "Rejected"})

    def _on_sign_certificate(self, message_id: str, request: Payload, now: float) -> None:
        payload = security.sign_certificate(request)
        if not self.north.call("SignCertificate", payload, now, context=("sign", message_id)):
            self._south.reply(message_id, {"status": "Rejected"})

    # --- notifications (durable) ---------------------------------------------------------------------

    def _on_firmware_status(self, message_id: str, request: Payload, now: float) -> None:
        request_id = self._meta.get("firmware_request_id")
        payload = firmware.firmware_status_notification(request, request_id=request_id)
        if request["status"] == "Installed":
            self._set_meta("boot_reason", "FirmwareUpdate")  # the reboot that follows
        self.north.enqueue("FirmwareStatusNotification", payload, now)
        self._south.reply(message_id, {})

    def _on_signed_firmware_status(self, message_id: str, request: Payload, now: float) -> None:
        payload = firmware.signed_firmware_status_notification(request)
        self.north.enqueue("FirmwareStatusNotification", payload, now)
        self._south.reply(message_id, {})

    def _on_diagnostics_status(self, message_id: str, request: Payload, now: float) -> None:
        request_id = self._meta.get("log_request_id")
        payload = firmware.diagnostics_status_notification(request, request_id=request_id)
        self.north.enqueue("LogStatusNotification", payload, now)
        self._south.reply(message_id, {})

    def _on_log_status(self, message_id: str, request: Payload, now: float) -> None:
        self.north.enqueue("LogStatusNotification", firmware.log_status_notification(request), now)
        self._south.reply(message_id, {})

    def _on_security_event(self, message_id: str, request: Payload, now: float) -> None:
        payload, problem = security.security_event_notification(
            request, received_at=self._iso(), policy=self.settings.timestamps
        )
        if problem is not None:
            self._report_problems([problem], "SecurityEventNotification")
        self.north.enqueue("SecurityEventNotification", payload, now)
        self._south.reply(message_id, {})

    # --- transactions --------------------------------------------------------------------------------

    def _on_start(self, message_id: str, request: Payload, now: float) -> None:
        connector_id = request["connectorId"]
        id_tag = request["idTag"]
        key = f"{connector_id}|{id_tag}|{request['timestamp']}|{request['meterStart']}"
        existing = self.ledger.by_start_key(key)
        if existing is not None:
            # E01 resent (the .conf was lost): same id, no second Started.
            self._report(
                Side.SOUTH,
                "start-resent",
                "StartTransaction resent; answered with the same transaction id",
                transaction_id=existing.transaction_id,
                local_id=existing.local_id,
            )
            self._south.reply(
                message_id,
                {"transactionId": existing.local_id, "idTagInfo": self._cached_tag_info(id_tag)},
            )
            return
        pending = self._remote.pop(id_tag.upper(), None)
        if pending is not None:
            self._persist("remote", id_tag.upper(), None)
        received_at = self._iso()
        transaction, changes = self.ledger.start(
            evse_id=connector_id,
            start_key=key,
            with_local_id=True,
            remote_start_id=pending["remoteStartId"] if pending else None,
            id_token=pending["idToken"] if pending else self._known(id_tag),
            meter_start_wh=request["meterStart"],
            started_at=received_at,
        )
        self._effects.extend(changes)
        seq_no, persist = self.ledger.take_seq_no(transaction)
        self._effects.append(persist)
        translated = transactions.transaction_started(
            request,
            transaction_id=transaction.transaction_id,
            received_at=received_at,
            seq_no=seq_no,
            remote_start_id=transaction.remote_start_id,
            id_token=pending["idToken"] if pending else None,
            rule=self.settings.id_rule,
            known=self._known,
            policy=self.settings.timestamps,
        )
        seq: int | None = None
        if translated.payload is not None:
            known_status = self._connector_status.get(connector_id)
            charging_state = station.charging_state(known_status) if known_status else None
            if charging_state is not None:
                translated.payload["transactionInfo"]["chargingState"] = charging_state
                transaction.charging_state = charging_state
                self._effects.append(self.ledger.save(transaction))
            seq = self.north.enqueue("TransactionEvent", translated.payload, now)
        # Reported after the event is queued: a diagnostic between the ledger's and the outbox's
        # Persist effects would split them into two commits, and a crash between them lose the event.
        self._report_problems(translated.problems, "StartTransaction")
        if "reservationId" in request:
            self._forget_reservation(str(request["reservationId"]))
        assert transaction.local_id is not None
        if seq is not None and self.north.registered and len(self.north.outbox) == 1:
            # The event is on disk and the CSMS is about to get it: let its idTokenInfo answer the
            # charger (E05 / 1.6 StopTransactionOnInvalidId), unless it is slow to come.
            self._held_starts[seq] = _HeldStart(
                message_id, transaction.local_id, id_tag, now + _START_HOLD
            )
            return
        self._answer_start(message_id, transaction.local_id, id_tag, None)

    def _answer_start(
        self, message_id: str, local_id: int, id_tag: str, response: Payload | None
    ) -> None:
        if not self._south.is_awaiting(message_id):
            return
        answer = transactions.start_transaction_response(
            response, transaction_id=local_id, alias=self._alias_for
        )
        if response is None or "idTokenInfo" not in response:
            answer["idTagInfo"] = self._cached_tag_info(id_tag)
        self._south.reply(message_id, answer)

    def _release_starts(self, now: float, *, all_of_them: bool = False) -> None:
        for seq, held in list(self._held_starts.items()):
            if all_of_them or now >= held.due:
                del self._held_starts[seq]
                self._answer_start(held.message_id, held.local_id, held.id_tag, None)

    def _on_meter_values(self, message_id: str, request: Payload, now: float) -> None:
        received_at = self._iso()
        local_id = request.get("transactionId")
        transaction = self.ledger.by_local_id(local_id) if local_id is not None else None
        if local_id is not None and (transaction is None or transaction.ended):
            self._report(
                Side.SOUTH,
                "unknown-transaction",
                f"MeterValues for transaction {local_id}, which the bridge does not know as"
                " running; sent as MeterValues",
                local_id=local_id,
            )
            transaction = None
        if transaction is not None:
            digest = request_digest(request)
            if transaction.last_meter_values == digest:  # its .conf was lost: not a new sample
                self._report(
                    Side.SOUTH,
                    "meter-values-resent",
                    "MeterValues resent; already queued as an Updated event",
                    transaction_id=transaction.transaction_id,
                )
                self._south.reply(message_id, {})
                return
            transaction.last_meter_values = digest  # saved with the seqNo below
            seq_no, persist = self.ledger.take_seq_no(transaction)
            translated = transactions.transaction_updated(
                request,
                transaction_id=transaction.transaction_id,
                seq_no=seq_no,
                received_at=received_at,
                policy=self.settings.timestamps,
            )
            if translated.payload is not None:
                self._effects.append(persist)
                self.north.enqueue("TransactionEvent", translated.payload, now)
            else:
                transaction.next_seq_no -= 1
        else:
            translated = transactions.meter_values_request(
                request, received_at=received_at, policy=self.settings.timestamps
            )
            if translated.payload is not None:
                self.north.enqueue("MeterValues", translated.payload, now)
        self._report_problems(translated.problems, "MeterValues")
        self._readings(translated.readings, request["connectorId"], received_at, now)
        self._south.reply(message_id, {})

    def _readings(self, readings: Sequence[Any], connector_id: int, stamp: str, now: float) -> None:
        if not readings:
            return
        events = [
            reading_event_data(r, event_id=self._next_event_id(), connector_id=connector_id)
            for r in readings
        ]
        self.north.enqueue(
            "NotifyEvent", station.notify_event_request(events, generated_at=stamp), now
        )

    def _on_stop(self, message_id: str, request: Payload, now: float) -> None:
        local_id = request["transactionId"]
        transaction = self.ledger.by_local_id(local_id)
        id_tag = request.get("idTag")
        answer: Payload = {"idTagInfo": self._cached_tag_info(id_tag)} if id_tag else {}
        if transaction is None:
            self._report(
                Side.SOUTH,
                "unknown-transaction",
                f"StopTransaction for transaction {local_id}, which the bridge never issued;"
                " accepted so the charger does not retry it forever",
                local_id=local_id,
            )
            self._south.reply(message_id, answer)
            return
        if transaction.ended:
            self._report(
                Side.SOUTH,
                "stop-resent",
                "StopTransaction resent; no second Ended",
                transaction_id=transaction.transaction_id,
            )
            self._south.reply(message_id, answer)
            return
        seq_no, persist = self.ledger.take_seq_no(transaction)
        self._effects.append(persist)
        received_at = self._iso()
        translated = transactions.transaction_ended(
            request,
            transaction_id=transaction.transaction_id,
            seq_no=seq_no,
            evse_id=transaction.evse_id,
            received_at=received_at,
            rule=self.settings.id_rule,
            known=self._known,
            policy=self.settings.timestamps,
        )
        self._effects.extend(self.ledger.end(transaction))
        if translated.payload is not None:
            self.north.enqueue("TransactionEvent", translated.payload, now)
        self._report_problems(translated.problems, "StopTransaction")  # after: one commit
        self._readings(translated.readings, transaction.evse_id, received_at, now)
        self._south.reply(message_id, answer)
        self._maybe_deferred_reset(now)

    def _maybe_deferred_reset(self, now: float) -> None:
        if not self._meta.get("deferred_reset") or any(True for _ in self.ledger.active()):
            return
        self._set_meta("deferred_reset", None)
        self._set_meta("boot_reason", "ScheduledReset")
        self._south.call("Reset", {"type": "Soft"}, now, context=_Own("deferred-reset"))

    # --- answers from the charger to the bridge's calls --------------------------------------------

    def _charger_answer(
        self, event: ResultReceived | ErrorReceived | CallFailed, now: float
    ) -> None:
        context = event.request.context
        if isinstance(context, _Own):
            if context.kind == "trigger-status" and (
                not isinstance(event, ResultReceived) or event.payload.get("status") != "Accepted"
            ):
                self._restore_statuses(now)
            if not isinstance(event, ResultReceived):
                self._report(
                    Side.SOUTH,
                    "bridge-call-failed",
                    f"{event.request.action} ({context.kind}) was not accepted by the charger",
                )
            return
        job, index = context
        if isinstance(event, ResultReceived):
            job.answers[index] = event.payload
        elif isinstance(event, ErrorReceived):
            job.errors[index] = event.error
        else:
            job.errors[index] = None
            self._report(
                Side.SOUTH,
                "charger-call-failed",
                f"{event.request.action} for {job.action}: {event.reason.value} ({event.detail})",
            )
        job.waiting -= 1
        if job.waiting == 0:
            self._finish_job(job, now)

    def _finish_job(self, job: _Job, now: float) -> None:
        if not self.north.is_awaiting(job.message_id):
            return  # the CSMS connection that asked is gone
        if len(job.calls) == 1 and job.answers[0] is None and not job.finish_on_failure:
            error = job.errors[0]
            if error is not None:
                self.north.forward_error(job.message_id, error)
            else:
                self.north.reply_error(
                    job.message_id,
                    Fault.INTERNAL,
                    f"the charger did not answer {job.calls[0].action}",
                )
            return
        self._pending_reports = []
        try:
            response = job.finish(job.answers)
            self.north.reply(job.message_id, response)
            # B07/B08: the NotifyReport parts follow the response.
            for report in self._pending_reports:
                self.north.call("NotifyReport", report, now, context=None, asked_for=True)
        except (OutboundPayloadInvalid, BridgeMisuse, KeyError, TypeError, ValueError) as exc:
            self._report(Side.NORTH, "translation-failed", f"{job.action} answer: {exc!r}")
            if self.north.is_awaiting(job.message_id):
                self.north.reply_error(
                    job.message_id, Fault.INTERNAL, f"the bridge could not translate {job.action}"
                )

    # === CSMS → bridge =====================================================================

    def _north_events(self, events: list[OwnerEvent], now: float) -> None:
        for event in events:
            if isinstance(event, CallReceived):
                self._csms_call(event, now)
            elif isinstance(event, Registered):
                if not self._meta.get("csms_accepted"):
                    self._set_meta("csms_accepted", True)
            elif isinstance(event, BootAnswered):
                kept = owned_variables.boot_answered(self.owned, self.north, event.response)
                if kept is not None:
                    self._effects.append(kept)
                self._release_boot(event.response)
            elif isinstance(event, Delivered):
                self._delivered(event, now)
            elif isinstance(event, GaveUp):
                held = self._held_starts.pop(event.seq, None)  # the loss itself is reported
                if held is not None:
                    self._answer_start(held.message_id, held.local_id, held.id_tag, None)
            else:
                self._csms_answer(event, now)

    def _delivered(self, event: Delivered, now: float) -> None:
        """The CSMS took a TransactionEvent: learn what it said about the token, answer a held
        StartTransaction with it, and stop a transaction it deauthorized after the charger's start
        was already confirmed (E05)."""
        info = event.response.get("idTokenInfo")
        token = event.payload.get("idToken")
        if isinstance(info, dict) and isinstance(token, dict):
            tag = id_tag_for(token, self._alias_for)
            if tag is not None:
                self._cache_auth(tag, auth.id_tag_info(info, self._alias_for))
        held = self._held_starts.pop(event.seq, None)
        if held is not None:
            self._answer_start(held.message_id, held.local_id, held.id_tag, event.response)
            return
        if (
            event.payload.get("eventType") == "Started"
            and isinstance(info, dict)
            and info.get("status") not in (None, "Accepted")
        ):
            transaction = self.ledger.by_id(event.payload["transactionInfo"]["transactionId"])
            if transaction is not None and not transaction.ended and self._south.online:
                self._south.call(
                    "RemoteStopTransaction",
                    {"transactionId": transaction.local_id},
                    now,
                    context=_Own("deauthorized"),
                )

    def _csms_answer(self, event: ResultReceived | ErrorReceived | CallFailed, now: float) -> None:
        context = event.request.context
        if not isinstance(context, tuple):
            return  # a report or heartbeat the bridge sent: nothing waits for it
        kind, message_id = context
        if not self._south.is_awaiting(message_id):
            return
        if kind == "boot":
            if isinstance(event, ResultReceived):
                self._south.reply(message_id, station.boot_notification_response(event.payload))
            else:
                self._answer_boot_locally(message_id)
        elif kind == "authorize":
            id_tag = self._pending_tags.pop(message_id, "")
            if isinstance(event, ResultReceived):
                answer = auth.authorize_response(event.payload, alias=self._alias_for)
                self._cache_auth(id_tag, answer["idTagInfo"])
                self._south.reply(message_id, answer)
            else:
                self._south.reply(message_id, {"idTagInfo": self._offline_tag_info(id_tag)})
        elif kind == "data":
            if isinstance(event, ResultReceived):
                self._south.reply(message_id, station.data_transfer_up_response(event.payload))
            else:
                self._south.reply(message_id, {"status": "Rejected"})
        elif kind == "sign":
            if isinstance(event, ResultReceived):
                self._south.reply(message_id, security.sign_certificate_response(event.payload))
            else:
                self._south.reply(message_id, {"status": "Rejected"})

    def _csms_call(self, event: CallReceived, now: float) -> None:
        call = event.call
        treatment = CSMS_ACTIONS.get(call.action)
        try:
            if treatment is None or treatment.treatment is Treatment.CALLERROR:
                self.north.reply_error(
                    call.message_id,
                    Fault.NOT_SUPPORTED,
                    f"an OCPP 1.6 charger has no counterpart of {call.action}",
                )
            elif treatment.treatment is Treatment.ANSWERED:
                self.north.reply(call.message_id, answer_unsupported(call.action, call.payload))
            elif call.action in _NEEDS_REGISTRATION and not self.north.registered:
                self.north.reply(
                    call.message_id,
                    {
                        "status": "Rejected",
                        "statusInfo": status_info(
                            "InvalidMessageSeq", "B02.FR.05: the station is not accepted yet"
                        ),
                    },
                )
            else:
                _CSMS_HANDLERS[call.action](self, call.message_id, call.payload, now)
        except QueueFull:
            if self.north.is_awaiting(call.message_id):
                self.north.reply_error(
                    call.message_id, Fault.GENERIC, "too many requests wait for the charger"
                )
        except (OutboundPayloadInvalid, BridgeMisuse, KeyError, TypeError, ValueError) as exc:
            self._report(Side.NORTH, "translation-failed", f"{call.action}: {exc!r}")
            if self.north.is_awaiting(call.message_id):
                self.north.reply_error(
                    call.message_id, Fault.INTERNAL, f"the bridge could not translate {call.action}"
                )

    def _run(
        self,
        message_id: str,
        action: str,
        request: Payload,
        outcome: Forward | ForwardAll | Reply | Emulate,
        finish: Callable[[list[Payload | None]], Payload],
        now: float,
    ) -> None:
        """Serve a CSMS request: answer at once, or ask the charger and `finish` with its answers."""
        if isinstance(outcome, Reply):
            self.north.reply(message_id, outcome.response)
            return
        if isinstance(outcome, Emulate):
            self.north.reply(message_id, outcome.response)
            return
        calls = outcome.calls if isinstance(outcome, ForwardAll) else (outcome,)
        if not self._south.online:
            self.north.reply_error(
                message_id,
                Fault.INTERNAL,
                "the charging station's OCPP 1.6 charger is not connected to the bridge",
            )
            return
        for call in calls:  # all or nothing: check before the first goes
            violation = self._schemas.check(
                OcppVersion.V16, call.action, PayloadKind.REQUEST, call.payload
            )
            if violation is not None:
                raise OutboundPayloadInvalid(call.action, "request", violation.describe())
        job = _Job(
            message_id,
            action,
            request,
            calls,
            finish,
            answers=[None] * len(calls),
            errors=[None] * len(calls),
            waiting=len(calls),
            finish_on_failure=action in _FINISH_ON_FAILURE,
        )
        for index, call in enumerate(calls):
            self._south.call(call.action, call.payload, now, context=(job, index), validated=True)

    # --- transactions --------------------------------------------------------------------------------

    def _request_start(self, message_id: str, request: Payload, now: float) -> None:
        id_tag = self._id_tag_down(request["idToken"])
        outcome = remote.request_start_transaction(
            request, id_tag=id_tag, transaction_id_of=self._local_id_of
        )
        if isinstance(outcome, Forward) and id_tag is not None:
            pending = {
                "remoteStartId": request["remoteStartId"],
                "idToken": {
                    "idToken": request["idToken"]["idToken"],
                    "type": request["idToken"]["type"],
                },
                "evseId": request.get("evseId"),
            }
            self._remote[id_tag.upper()] = pending
            self._persist("remote", id_tag.upper(), pending)

        def finish(answers: list[Payload | None]) -> Payload:
            answer = answers[0] or {}
            if (
                answer.get("status") != "Accepted"
                and id_tag is not None
                and self._remote.pop(id_tag.upper(), None) is not None
            ):
                self._persist("remote", id_tag.upper(), None)
            return remote.request_start_transaction_response(answer)

        self._run(message_id, "RequestStartTransaction", request, outcome, finish, now)

    def _request_stop(self, message_id: str, request: Payload, now: float) -> None:
        outcome = remote.request_stop_transaction(request, transaction_id_of=self._local_id_of)
        self._run(
            message_id,
            "RequestStopTransaction",
            request,
            outcome,
            lambda a: remote.request_stop_transaction_response(a[0] or {}),
            now,
        )

    def _get_transaction_status(self, message_id: str, request: Payload, now: float) -> None:
        transaction_id = request.get("transactionId")
        if transaction_id is None:
            queued = self.north.outbox.has_transaction_events()
            self.north.reply(
                message_id, _transaction_status(ongoing=None, messages_in_queue=queued)
            )
            return
        transaction = self.ledger.by_id(transaction_id)
        self.north.reply(
            message_id,
            _transaction_status(
                ongoing=transaction is not None and not transaction.ended,
                messages_in_queue=self.north.messages_in_queue(transaction_id),
            ),
        )

    # --- station control -----------------------------------------------------------------------------

    def _reset(self, message_id: str, request: Payload, now: float) -> None:
        busy = any(True for _ in self.ledger.active())
        if request["type"] == "OnIdle" and "evseId" not in request and busy:
            self._set_meta("deferred_reset", "Soft")
            self.north.reply(message_id, {"status": "Scheduled"})
            return
        outcome = remote.reset(request)

        def finish(answers: list[Payload | None]) -> Payload:
            response = remote.reset_response(answers[0] or {})
            if response["status"] == "Accepted":
                self._set_meta("boot_reason", "RemoteReset")
            return response

        self._run(message_id, "Reset", request, outcome, finish, now)

    def _change_availability(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "ChangeAvailability",
            request,
            remote.change_availability(request),
            lambda a: remote.change_availability_response(a[0] or {}),
            now,
        )

    def _unlock(self, message_id: str, request: Payload, now: float) -> None:
        ongoing = self.ledger.active_on(request["evseId"]) is not None
        self._run(
            message_id,
            "UnlockConnector",
            request,
            remote.unlock_connector(request, ongoing_authorized_transaction=ongoing),
            lambda a: remote.unlock_connector_response(a[0] or {}),
            now,
        )

    def _trigger(self, message_id: str, request: Payload, now: float) -> None:
        outcome = remote.trigger_message(request, boot_accepted=self.north.registered)
        if isinstance(outcome, Emulate):
            self.north.reply(message_id, outcome.response)
            self.north.call("Heartbeat", {}, now, context=None)
            return
        if isinstance(outcome, Forward) and request["requestedMessage"] == "StatusNotification":
            evse = request.get("evse")
            self._triggered = {evse["id"]} if isinstance(evse, dict) else None
            self._triggered_seen = set()
            self._triggered_due = now + self.settings.charger_call_timeout
        self._run(
            message_id,
            "TriggerMessage",
            request,
            outcome,
            lambda a: remote.trigger_message_response(a[0] or {}),
            now,
        )

    def _data_transfer(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "DataTransfer",
            request,
            remote.data_transfer_down(request),
            lambda a: remote.data_transfer_down_response(a[0] or {}),
            now,
        )

    # --- smart charging ------------------------------------------------------------------------------

    def _set_charging_profile(self, message_id: str, request: Payload, now: float) -> None:
        outcome = charging.set_charging_profile(request, self._local_id_of)

        def finish(answers: list[Payload | None]) -> Payload:
            response = charging.set_charging_profile_response(answers[0] or {})
            if response.get("status") == "Accepted":
                profile = charging.as_installed(request["chargingProfile"])
                key = f"{request['evseId']}:{profile['id']}"
                record = {"evseId": request["evseId"], "profile": profile}
                self._profiles[key] = record
                self._persist("profiles", key, record)
            return response

        self._run(message_id, "SetChargingProfile", request, outcome, finish, now)

    def _clear_charging_profile(self, message_id: str, request: Payload, now: float) -> None:
        outcome = charging.clear_charging_profile(request)

        def finish(answers: list[Payload | None]) -> Payload:
            response = charging.clear_charging_profile_response(answers[0] or {})
            if response.get("status") == "Accepted":
                for key in [k for k, v in self._profiles.items() if _cleared(v, request)]:
                    del self._profiles[key]
                    self._persist("profiles", key, None)
            return response

        self._run(message_id, "ClearChargingProfile", request, outcome, finish, now)

    def _get_charging_profiles(self, message_id: str, request: Payload, now: float) -> None:
        installed = [
            charging.InstalledProfile(v["evseId"], v["profile"]) for v in self._profiles.values()
        ]
        response, reports_out = charging.get_charging_profiles(request, installed)
        self.north.reply(message_id, response)
        for report in reports_out:
            self.north.call("ReportChargingProfiles", report, now, context=None)

    def _get_composite_schedule(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "GetCompositeSchedule",
            request,
            charging.get_composite_schedule(request),
            lambda a: charging.get_composite_schedule_response(
                a[0] or {}, request=request, now=self._iso()
            ),
            now,
        )

    # --- local authorization list and cache ----------------------------------------------------------

    def _send_local_list(self, message_id: str, request: Payload, now: float) -> None:
        for entry in request.get("localAuthorizationList", []):
            self._id_tag_down(entry["idToken"])
        self._run(
            message_id,
            "SendLocalList",
            request,
            auth.send_local_list(request, alias=self._alias_for),
            lambda a: auth.send_local_list_response(a[0] or {}),
            now,
        )

    def _get_local_list_version(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "GetLocalListVersion",
            request,
            auth.get_local_list_version(request),
            lambda a: auth.get_local_list_version_response(a[0] or {}),
            now,
        )

    def _clear_cache(self, message_id: str, request: Payload, now: float) -> None:
        def finish(answers: list[Payload | None]) -> Payload:
            response = auth.clear_cache_response(answers[0] or {})
            if response.get("status") == "Accepted":
                for tag in list(self._auth):
                    self._persist("auth", tag, None)
                self._auth.clear()
            return response

        self._run(message_id, "ClearCache", request, auth.clear_cache(request), finish, now)

    # --- reservations --------------------------------------------------------------------------------

    def _reserve_now(self, message_id: str, request: Payload, now: float) -> None:
        if "idToken" in request:
            self._id_tag_down(request["idToken"])
        outcome = reservation.reserve_now(request, alias=self._alias_for)

        def finish(answers: list[Payload | None]) -> Payload:
            response = reservation.reserve_now_response(answers[0] or {})
            if response.get("status") == "Accepted":
                expiry = parse_timestamp(request["expiryDateTime"])
                record = {
                    "evseId": request.get("evseId", 0),
                    "expiry": expiry.timestamp() if expiry is not None else None,
                }
                self._reservations[str(request["id"])] = record
                self._persist("reservations", str(request["id"]), record)
                self._schedule_reservations(now)
            return response

        self._run(message_id, "ReserveNow", request, outcome, finish, now)

    def _cancel_reservation(self, message_id: str, request: Payload, now: float) -> None:
        def finish(answers: list[Payload | None]) -> Payload:
            response = reservation.cancel_reservation_response(answers[0] or {})
            if response.get("status") == "Accepted":
                self._forget_reservation(str(request["reservationId"]))
            return response

        self._run(
            message_id,
            "CancelReservation",
            request,
            reservation.cancel_reservation(request),
            finish,
            now,
        )

    def _forget_reservation(self, reservation_id: str) -> None:
        if self._reservations.pop(reservation_id, None) is not None:
            self._persist("reservations", reservation_id, None)

    def _schedule_reservations(self, now: float) -> None:
        expiries = [r["expiry"] for r in self._reservations.values() if r.get("expiry")]
        if not expiries:
            self._reservation_due = None
            return
        self._reservation_due = now + max(0.0, min(expiries) - self._wall)

    def _expire_reservations(self, now: float) -> None:
        wall = self._wall
        for reservation_id, record in list(self._reservations.items()):
            if record.get("expiry") and record["expiry"] <= wall:
                self._forget_reservation(reservation_id)
                self.north.enqueue(
                    "ReservationStatusUpdate",
                    reservation.reservation_status_update(int(reservation_id), "Expired"),
                    now,
                )
        self._schedule_reservations(now)

    def _reservations_removed(self, connector_id: int, now: float) -> None:
        for reservation_id, record in list(self._reservations.items()):
            if record.get("evseId") == connector_id:
                self._forget_reservation(reservation_id)
                self.north.enqueue(
                    "ReservationStatusUpdate",
                    reservation.reservation_status_update(int(reservation_id), "Removed"),
                    now,
                )
        self._schedule_reservations(now)

    # --- firmware, logs, certificates ----------------------------------------------------------------

    def _update_firmware(self, message_id: str, request: Payload, now: float) -> None:
        outcome = firmware.update_firmware(request)
        if isinstance(outcome, Forward):
            self._set_meta("firmware_request_id", request["requestId"])
            action = outcome.action
            self._run(
                message_id,
                "UpdateFirmware",
                request,
                outcome,
                lambda a: firmware.update_firmware_response(action, a[0] or {}),
                now,
            )
        else:
            self.north.reply(message_id, outcome.response)

    def _get_log(self, message_id: str, request: Payload, now: float) -> None:
        outcome = firmware.get_log(request)
        if isinstance(outcome, Forward):
            self._set_meta("log_request_id", request["requestId"])
            action = outcome.action
            self._run(
                message_id,
                "GetLog",
                request,
                outcome,
                lambda a: firmware.get_log_response(action, a[0] or {}),
                now,
            )
        else:
            self.north.reply(message_id, outcome.response)

    def _certificate_signed(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "CertificateSigned",
            request,
            security.certificate_signed(request),
            lambda a: security.certificate_signed_response(a[0] or {}),
            now,
        )

    def _install_certificate(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "InstallCertificate",
            request,
            security.install_certificate(request),
            lambda a: security.install_certificate_response(a[0] or {}),
            now,
        )

    def _delete_certificate(self, message_id: str, request: Payload, now: float) -> None:
        self._run(
            message_id,
            "DeleteCertificate",
            request,
            security.delete_certificate(request),
            lambda a: security.delete_certificate_response(a[0] or {}),
            now,
        )

    def _get_installed_certificate_ids(self, message_id: str, request: Payload, now: float) -> None:
        outcome = security.get_installed_certificate_ids(request)
        calls = outcome.calls if isinstance(outcome, ForwardAll) else ()
        self._run(
            message_id,
            "GetInstalledCertificateIds",
            request,
            outcome,
            lambda a: security.get_installed_certificate_ids_response(calls, a),
            now,
        )

    # --- device model --------------------------------------------------------------------------------

    def _bridge_variables(self) -> list[BridgeVariable]:
        owned = [
            BridgeVariable(VariableRef(v.component, v.variable), v.value)
            for v in self._identity_variables
        ]
        facts = owned_variables.StationFacts(
            station_id=self.station_id,
            security_profile=self.settings.owned.security_profile,
            now_iso=self._iso(),
            station_state=self._station_state(),
            evses={evse: self.north.status_of(evse) for evse in self._evses()},
        )
        fallbacks = owned_variables.fallbacks_16()
        for variable in self.owned.variables() + owned_variables.facts(facts) + fallbacks:
            owned.append(
                BridgeVariable(
                    VariableRef(
                        variable.component,
                        variable.variable,
                        variable_instance=variable.variable_instance,
                        evse_id=variable.evse,
                        connector_id=variable.connector,
                    ),
                    variable.value,
                    data_type=variable.data_type,
                    mutability=variable.mutability,
                    unit=variable.unit,
                    values_list=variable.values_list,
                    summary=variable.summary,
                    fallback=variable in fallbacks,
                )
            )
        return owned

    def _station_state(self) -> str:
        if not self._south.online or self._station_status in ("Unavailable", "Faulted"):
            return "Unavailable" if self._station_status != "Faulted" else "Faulted"
        return "Available"

    def _evses(self) -> list[int]:
        """The EVSEs the device model shows: those with a status, and as many as the charger's
        NumberOfConnectors said (durable, `meta` key `connectors`)."""
        known = {evse for evse, _ in self.north.connectors() if evse > 0}
        count = self._meta.get("connectors")
        if isinstance(count, int):
            known.update(range(1, count + 1))
        return sorted(known)

    def _learn_connectors(self, configuration: Payload | None) -> None:
        for item in (configuration or {}).get("configurationKey", []):
            if item.get("key") == "NumberOfConnectors":
                value = str(item.get("value") or "").strip()
                if (
                    value.isdigit()
                    and 0 < int(value) <= 100
                    and self._meta.get("connectors") != int(value)
                ):
                    self._set_meta("connectors", int(value))

    def _write_owned(self, variable: BridgeVariable, value: str) -> str | tuple[str, str]:
        ref = variable.ref
        key = owned_variables.settable_key(ref.component, ref.variable, ref.variable_instance)
        if key is None:
            return "Rejected"
        written = owned_variables.write(self.owned, self.north, key, value, self._effects)
        return (written.status, written.reason) if written.reason else written.status

    def _get_variables(self, message_id: str, request: Payload, now: float) -> None:
        plan = variables.plan_get_variables(
            request, self.settings.config_table, bridge_variables=self._bridge_variables()
        )
        if not plan.calls:
            self.north.reply(message_id, variables.get_variables_response(plan, []))
            return
        self._run(
            message_id,
            "GetVariables",
            request,
            ForwardAll(plan.calls) if len(plan.calls) > 1 else plan.calls[0],
            lambda a: variables.get_variables_response(plan, a),
            now,
        )

    def _set_variables(self, message_id: str, request: Payload, now: float) -> None:
        plan = variables.plan_set_variables(
            request, self.settings.config_table, bridge_variables=self._bridge_variables()
        )
        statuses = {
            index: self._write_owned(variable, value)
            for index, variable, value in plan.bridge_writes
        }
        if not plan.calls:
            self.north.reply(message_id, variables.set_variables_response(plan, [], statuses))
            return
        self._run(
            message_id,
            "SetVariables",
            request,
            ForwardAll(plan.calls) if len(plan.calls) > 1 else plan.calls[0],
            lambda a: variables.set_variables_response(plan, a, statuses),
            now,
        )

    def _report_request(self, message_id: str, request: Payload, now: float, *, base: bool) -> None:
        if base and request["reportBase"] == "SummaryInventory":  # bridge variables only
            outcome = reports.base_report(
                request,
                {},
                self.settings.config_table,
                generated_at=self._iso(),
                bridge_variables=self._bridge_variables(),
            )
            self.north.reply(message_id, outcome.response)
            for report in outcome.reports:
                self.north.call("NotifyReport", report, now, context=None, asked_for=True)
            return

        def finish(answers: list[Payload | None]) -> Payload:
            self._learn_connectors(answers[0])
            build = reports.base_report if base else reports.custom_report
            outcome = build(
                request,
                answers[0],
                self.settings.config_table,
                generated_at=self._iso(),
                bridge_variables=self._bridge_variables(),
            )
            self._pending_reports.extend(outcome.reports)
            return outcome.response

        action = "GetBaseReport" if base else "GetReport"
        self._run(
            message_id, action, request, reports.get_configuration_for_report(request), finish, now
        )


def _cleared(record: Payload, request: Payload) -> bool:
    profile = record["profile"]
    if "chargingProfileId" in request:
        return bool(profile["id"] == request["chargingProfileId"])
    criteria = request.get("chargingProfileCriteria", {})
    if "evseId" in criteria and record["evseId"] != criteria["evseId"]:
        return False
    for name in ("chargingProfilePurpose", "stackLevel"):
        if name in criteria and profile.get(name) != criteria[name]:
            return False
    return True


_Handler = Callable[[Station16, str, Payload, float], None]

_CHARGER_HANDLERS: Final[dict[str, _Handler]] = {
    "Authorize": Station16._on_authorize,
    "BootNotification": Station16._on_boot,
    "DataTransfer": Station16._on_data_transfer,
    "DiagnosticsStatusNotification": Station16._on_diagnostics_status,
    "FirmwareStatusNotification": Station16._on_firmware_status,
    "Heartbeat": Station16._on_heartbeat,
    "MeterValues": Station16._on_meter_values,
    "StartTransaction": Station16._on_start,
    "StatusNotification": Station16._on_status,
    "StopTransaction": Station16._on_stop,
    "LogStatusNotification": Station16._on_log_status,
    "SecurityEventNotification": Station16._on_security_event,
    "SignCertificate": Station16._on_sign_certificate,
    "SignedFirmwareStatusNotification": Station16._on_signed_firmware_status,
}

_CSMS_HANDLERS: Final[dict[str, _Handler]] = {
    "CancelReservation": Station16._cancel_reservation,
    "CertificateSigned": Station16._certificate_signed,
    "ChangeAvailability": Station16._change_availability,
    "ClearCache": Station16._clear_cache,
    "ClearChargingProfile": Station16._clear_charging_profile,
    "DataTransfer": Station16._data_transfer,
    "DeleteCertificate": Station16._delete_certificate,
    "GetBaseReport": lambda s, m, r, n: s._report_request(m, r, n, base=True),
    "GetChargingProfiles": Station16._get_charging_profiles,
    "GetCompositeSchedule": Station16._get_composite_schedule,
    "GetInstalledCertificateIds": Station16._get_installed_certificate_ids,
    "GetLocalListVersion": Station16._get_local_list_version,
    "GetLog": Station16._get_log,
    "GetReport": lambda s, m, r, n: s._report_request(m, r, n, base=False),
    "GetTransactionStatus": Station16._get_transaction_status,
    "GetVariables": Station16._get_variables,
    "InstallCertificate": Station16._install_certificate,
    "RequestStartTransaction": Station16._request_start,
    "RequestStopTransaction": Station16._request_stop,
    "ReserveNow": Station16._reserve_now,
    "Reset": Station16._reset,
    "SendLocalList": Station16._send_local_list,
    "SetChargingProfile": Station16._set_charging_profile,
    "SetVariables": Station16._set_variables,
    "TriggerMessage": Station16._trigger,
    "UnlockConnector": Station16._unlock,
    "UpdateFirmware": Station16._update_firmware,
}
