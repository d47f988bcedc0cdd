"""An IEC 104 charger as an OCPP 2.0.1 charging station: the stateful core that runs its mapping table.

The north side is a `NorthStation` (registration, heartbeat, status cache, durable outbox); the south
side is the charger's 104 link, fed in as typed calls (`bridge.stations.iec104.southbound`): `point_updated`,
`command_confirmed`, `link_up`, `link_down`. 104 traffic the core needs goes out as `Send104Command`
and `Interrogate104` effects, interleaved with the ordinary effects in the order they happen.

Rules
- Points. Each update is looked up in the compiled table. An IOA the table does not map, or a type id
  that is neither the table's nor its time-tagged twin (M_SP_NA_1 ~ M_SP_TB_1, …), is reported once
  (a `Report` with a Diagnostic) and changes nothing; at most `MAX_POINT_PROBLEMS` distinct ones per
  station are remembered and reported (a charger sending random addresses cannot grow memory or
  the log), the last one saying that later ones are not. An update with the Invalid quality flag makes the
  point unknown. Decoded values (status → bool, measurement → OCPP unit, enum → raw code, counter →
  its unit) feed the derived rules of every connector that reads the point.
  Points the rules read that still have no value `points_wait` (60 s) after the link came up are
  reported once by name (`points-missing`): their rules cannot decide, which would otherwise be silent.
- Connector status: the first status rule that is true; unknown keeps what was sent last. A change
  waits while the connector's transaction events wait (their register, a settlement record), and goes
  right after them: statuses never overtake the transaction events of what happened before them. A
  change goes to the CSMS as StatusNotification (the NorthStation sends only real changes).
- Transactions (E01–E07): a transaction starts when `starts_when` becomes true on a connector without
  one, and ends at the first end rule that becomes true (edges, see `bridge.stations.iec104.logic`). The 2.0.1
  transactionId and seqNo come from the ledger; Started and Ended carry the register (Transaction.Begin
  / Transaction.End) after a counter interrogation asked for at that moment, or the last known value
  after `meter_wait`; a wait that runs out while the link is down goes on until the link returns
  (then `meter_wait` for the counter its return brings) or `link_grace` ends: the interrogation was
  lost with the link, and the last known value may be older than the counter when charging fell. Charging-state changes are Updated (ChargingStateChanged); every
  `SampledDataCtrlr.TxUpdatedInterval` seconds an Updated carries a meter sample (MeterValuePeriodic).
  Everything goes through the durable outbox.
- The link. While it is down the point values are unknown; after `link_grace` seconds down the
  connectors are reported Unavailable. When it returns, the general interrogation brings the values
  back and the rules report the real status; a transaction that ran before continues (the ledger holds
  it: no second Started), and ends if the points say it ended meanwhile. An end is an edge of a rule
  between known results: an unknown result (link down, interrogation half way) keeps the last known
  one, and during a transaction the last known results are durable (`meta` key `ends:<evse>`, until
  the commit that records the Ended), so neither a link's return nor a restart ends a transaction
  whose end rule was already true when it started (plugged in, remotely started, not charging yet);
  one that became true meanwhile does, also when the bridge stopped while the Ended it had found
  waited for its register (the in-memory Ended is lost; the stored memory finds the end again).
- CSMS requests served with 104 commands (RequestStart/StopTransaction, UnlockConnector,
  ChangeAvailability, Reset, SetChargingProfile): the command is sent and the request answered when
  the charger confirms (ACT_CON), or after `answer_timeout` (4 s) with the response's failure status
  and a statusInfo saying why; with the link down at once. A request the table has no command for is
  answered CALLERROR NotSupported. A positive confirmation counts for `command_accepted` rules for
  `command_acceptance` seconds, until a transaction consumes it; for RequestStartTransaction only
  when the CSMS was told Accepted and no transaction runs on the connector: a confirmation after
  the CSMS got NoConfirmation (reported, `late-confirmation`) or one finding the vehicle charging
  already counts for nothing (it would start a transaction the charger never had, on the plug still
  in after the session or at the next plug-in, under that request's id). An accepted RequestStartTransaction
  (its remoteStartId, idToken, chargingProfile and how long its acceptance lasts, in wall-clock time)
  is stored (`meta` key `remote:<evse>`) before the CSMS is told Accepted, so a restart in between
  still links the Started to it (F01.FR.17: remoteStartId) and keeps `command_accepted` true; it is
  removed in the commit that records the Started it became (a restart while that Started waits for
  its register finds the record and starts the transaction again, linked).
- Charging profiles are evaluated here (`bridge.stations.iec104.profiles`) and written to the table's setpoints:
  at once, at every period boundary (`next_deadline`), and again after the link returns. A profile
  whose stackLevel is above ProfileStackLevel (`owned_variables.PROFILE_STACK_LEVEL`, 8) is Rejected
  InvalidStackLevel.
- GetVariables, SetVariables, GetBaseReport and GetReport (filtered and split by `bridge.north.device_data`,
  shared with 1.6 stations) are served from `bridge.stations.iec104.variables`, the bridge's
  own variables (heartbeat, retries, back-off, BasicAuthPassword, OrganizationName,
  LimitChangeSignificance: durable, table `owned`) from
  `bridge.north.owned_variables`; TriggerMessage (StatusNotification, Heartbeat, MeterValues,
  TransactionEvent), GetTransactionStatus, ClearChargingProfile and GetChargingProfiles (K09: the
  stored profiles, reported with ReportChargingProfiles) from bridge state. Every other CSMS request is
  answered CALLERROR NotSupported.
- Vendor tables: private ASDUs (card authorization, card sessions, settlement records) are read by
  `bridge.stations.iec104.vendor`, which says what to do. SetVariables on a tariff component (`kind: tariff`)
  sends the table's ASDU with every variable of it (those not set keep their stored value); with
  `confirmation: act_con` the answer waits for the charger's ACT_CON (Rejected on a negative one,
  NoConfirmation after `answer_timeout`), and a link that is down is Rejected (TargetOffline).
- Durable tables: ledger `tx`/`meta`, outbox `outbox`, NorthStation `north`, `owned`, and here `profiles`,
  `vars` (TxUpdatedInterval, `tariff:<name>`) and `meta` keys `deferred_reset`, `event_id`,
  `ends:<evse>`, `remote:<evse>`, `card:<evse>` (an accepted card waiting for the connector's next
  transaction: stored before the charger hears Accepted, removed in the commit of the Started that
  took it), `settled` (the last settlement records acknowledged), `ending:<evse>` (an Ended that
  waits for its settlement record: a restart meanwhile keeps that transaction ended, and charging it
  sees is a new transaction queued behind the Ended; removed in the Ended's commit).
  What one input writes is one commit: `effects` puts its Persists ahead of its other effects (the
  driver commits a run of Persists as one batch and holds the rest until it is durable).
- Pure: time comes in with every input as `now` (monotonic seconds) and `wall` (seconds since the
  epoch, UTC); ids are injected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from bridge.effects import Effect, Persist, Report, Side
from bridge.north import device_data, owned_variables
from bridge.north.ledger import Transaction, TransactionIdSource, TransactionLedger
from bridge.north.station import BootAnswered, NorthSettings, NorthStation, OwnerEvent
from bridge.ocppj.errors import BridgeMisuse, Fault, OutboundPayloadInvalid, QueueFull
from bridge.ocppj.frames import Call
from bridge.ocppj.rpc import (
    CallFailed,
    CallOverdue,
    CallReceived,
    Diagnostic,
    ErrorReceived,
    MessageIdSource,
    ResultReceived,
)
from bridge.ocppj.schema import SchemaRegistry
from bridge.stations.iec104.compiled import CompiledTable
from bridge.stations.iec104.logic import ConnectorLogic, Value
from bridge.stations.iec104.private import LayoutError, Tariff, object_bytes, split_object
from bridge.stations.iec104.profiles import (
    STATION_PURPOSES,
    TX_PURPOSES,
    Installed,
    Limit,
    TxContext,
    epoch,
    in_force,
)
from bridge.stations.iec104.rules import (
    CommandTarget,
    CounterRule,
    EnumRule,
    MeasurementRule,
    MonitoringRule,
    SetpointRule,
    StatusRule,
)
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    Interrogate104,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    RawAsdu,
    Send104Command,
    Send104Private,
)
from bridge.stations.iec104.transactions import (
    MeterRule,
    Pending,
    end_trigger,
    meter_value,
    register_value,
    start_trigger,
    to_wh,
    transaction_event,
)
from bridge.stations.iec104.variables import (
    OWNED_SOURCE,
    REPORT_BASES,
    TX_UPDATED_INTERVAL,
    DeviceModel,
    Key,
    Variable,
    build_device_model,
    power_of,
    request_key,
    tariff_source,
    text_of,
)
from bridge.stations.iec104.vendor import (
    SETTLED_KEY,
    Answer,
    AuthorizeAtCsms,
    Problem,
    Record,
    Settle,
    VendorAsdus,
)
from bridge.stations.iec104.vocabulary import CommandAction, RateUnit, TypeId, format_ioa
from bridge.stations.v16.charging import InstalledProfile, get_charging_profiles
from bridge.timestamps import format_utc

META: Final = "meta"
PROFILES: Final = "profiles"
VARS: Final = "vars"
Payload = dict[str, Any]

# A type id and its time-tagged twin carry the same information.
_TWINS: Final[dict[str, str]] = {
    "M_SP_NA_1": "M_SP_TB_1",
    "M_DP_NA_1": "M_DP_TB_1",
    "M_ME_NA_1": "M_ME_TD_1",
    "M_ME_NB_1": "M_ME_TE_1",
    "M_ME_NC_1": "M_ME_TF_1",
    "M_IT_NA_1": "M_IT_TB_1",
}
_TWIN_OF: Final = {**_TWINS, **{tagged: plain for plain, tagged in _TWINS.items()}}
MAX_POINT_PROBLEMS: Final = 256
_RATE_UNITS: Final[tuple[RateUnit, ...]] = ("A", "W")


@dataclass(frozen=True, slots=True)
class Station104Settings:
    north: NorthSettings = field(default_factory=NorthSettings)
    answer_timeout: float = 4.0
    link_grace: float = 10.0
    meter_wait: float = 3.0
    command_acceptance: float = 120.0
    points_wait: float = 60.0  # after the link comes up: rules' points still unknown are reported
    settlement_wait: float = 30.0  # how long an Ended waits for the charger's settlement record
    owned: owned_variables.Defaults = field(default_factory=owned_variables.Defaults)


@dataclass(slots=True, eq=False)
class _Connector:
    evse: int
    logic: ConnectorLogic
    meter_rules: list[MeterRule]
    status: str | None = None  # what the rules say
    reported: str | None = None  # what went to the NorthStation
    charging_state: str | None = None
    starts_prev: bool = False
    ends_prev: tuple[bool | None, ...] = ()  # each end rule's last known result
    ends_saved: tuple[bool | None, ...] | None = None  # what `meta` holds for the transaction
    in_tx: bool = False  # in a transaction (its Started may still be waiting)
    txn: Transaction | None = None  # the ledger's, once Started has been sent
    started_wall: float | None = None
    pending: deque[Pending] = field(default_factory=deque)
    accepted: dict[CommandAction, float] = field(default_factory=dict)  # action → until (monotonic)
    remote: Payload | None = None
    tx_profile: Payload | None = None  # RequestStartTransaction.chargingProfile, for the next start
    stop_requested: bool = False
    meter_due: float | None = None
    register_wh: float | None = None  # the last known transaction register, kept across link loss

    def accepted_now(self, now: float) -> frozenset[CommandAction]:
        return frozenset(action for action, until in self.accepted.items() if until > now)


@dataclass(slots=True, eq=False)
class _Job:
    """A CSMS request waiting for the charger's confirmations."""

    message_id: str
    action: str
    waiting: set[int]
    deadline: float
    success: Payload
    failure: Callable[[str, str], Payload]
    problem: str | None = None
    # run just before a success is answered: what must be durable before the CSMS hears it
    before_success: Callable[[], None] | None = None


@dataclass(slots=True, eq=False)
class _TariffReply:
    """A SetVariables answer waiting for the charger to confirm its tariff ASDUs."""

    message_id: str
    results: list[Payload]
    waiting: list[tuple[int, int, list[int]]]  # (type id, IOA, the results it decides)
    deadline: float


@dataclass(slots=True, eq=False)
class _Sent:
    command: Send104Command
    job: _Job | None
    on_result: Callable[[bool, float], None] | None


class Station104:
    def __init__(
        self,
        station_id: str,
        table: CompiledTable,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        new_transaction_id: TransactionIdSource,
        state: dict[str, dict[str, Any]],
        *,
        now: float,
        wall: float,
        settings: Station104Settings | None = None,
        zone: tzinfo | None = None,
    ) -> None:
        self.station_id = station_id
        self.table = table
        self.settings = settings or Station104Settings()
        # Wall time (seconds since the epoch, UTC) of the input being handled: an argument of every
        # entry point, like `now`; the core reads no clock.
        self._wall = wall
        # Effects of both sides in order (the 104 ones are `KindEffect`s), shared with NorthStation.
        self._effects: list[Effect] = []
        self.owned = owned_variables.OwnedValues(state, self.settings.owned, self.settings.north)
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
        settled = self._meta.get(SETTLED_KEY)
        self._vendor = VendorAsdus(
            table, zone or UTC, settled=list(settled) if isinstance(settled, list) else []
        )
        self._vars: dict[str, Any] = dict(state.get(VARS, {}))
        self._profiles: dict[int, Installed] = {}
        for record in state.get(PROFILES, {}).values():
            installed = Installed(record["evse_id"], record["profile"], record["installed_at"])
            self._profiles[installed.profile_id] = installed
        self._values: dict[int, Value] = {}
        self._notified: dict[int, Value] = {}
        self._reported_problems: set[tuple[str, int, str]] = set()
        self._link_up = False
        self._unavailable_due: float | None = now + self.settings.link_grace
        self._jobs: list[_Job] = []
        self._tariff_replies: list[_TariffReply] = []
        self._missing_due: float | None = None  # when points the rules read must have arrived
        self._missing_reported = False
        self._sent: dict[int, _Sent] = {}
        self._next_command = 1
        self._written: dict[int, float] = {}  # setpoint IOA → value last written
        self._limited: set[int] = set()  # setpoints a profile currently limits
        self._profile_due: float | None = None
        self._connectors: dict[int, _Connector] = {}
        for evse in range(1, table.connectors + 1):
            connector = _Connector(evse, table.logic_for(evse), self._meter_rules(evse))
            self._connectors[evse] = connector
            transaction = self.ledger.active_on(evse)
            ending = self._meta.get(_ending_key(evse))
            if transaction is not None and _ends_it(ending, transaction):
                self._restore_ending(connector, transaction, ending, now)
            elif transaction is not None:  # the bridge restarted during a transaction
                connector.in_tx = True
                connector.txn = transaction
                connector.starts_prev = True
                saved = self._meta.get(_ends_key(evse))
                if isinstance(saved, list):
                    connector.ends_prev = connector.ends_saved = tuple(saved)
                connector.charging_state = transaction.charging_state
                connector.started_wall = epoch(transaction.started_at)
                connector.meter_due = self._meter_due(now)
            elif _ends_key(evse) in self._meta:
                self._set_meta(_ends_key(evse), None)  # of a transaction that never got recorded
            if ending is not None and not connector.pending:
                self._set_meta(_ending_key(evse), None)  # of a transaction no longer open
            self._restore_remote(connector, now)
            self._restore_card(connector, now)
        self._register_of: dict[int, list[_Connector]] = {}  # register IOA → its connectors
        for connector in self._connectors.values():
            meter = self._register_rule(connector)
            if meter is not None:
                self._register_of.setdefault(meter.ioa, []).append(connector)
        self._model: DeviceModel | None = None  # built when the CSMS first asks (`model`)
        self._owned_now: dict[Key, str | None] = {}
        self.north.set_identity(self._identity(), now)

    def _restore_ending(
        self, connector: _Connector, transaction: Transaction, saved: Any, now: float
    ) -> None:
        """A transaction whose end the bridge had seen, its Ended waiting for the settlement record
        when it stopped: ended, not running. Its Ended waits again for what is left of
        `settlement_wait` (wall-clock time), then goes from the counters; charging seen now is a
        transaction of its own, queued behind that Ended."""
        connector.txn = transaction
        connector.starts_prev = bool(saved.get("starts"))
        connector.started_wall = epoch(transaction.started_at)
        state = saved.get("state")
        connector.charging_state = state if isinstance(state, str) else None
        if _ends_key(connector.evse) in self._meta:
            self._set_meta(_ends_key(connector.evse), None)  # the ended transaction's memory
        token = saved.get("idToken")
        register = saved.get("register_wh")
        left = max(0.0, float(saved.get("until", 0.0)) - self._wall)
        connector.pending.append(
            Pending(
                "Ended",
                str(saved.get("trigger")),
                str(saved.get("timestamp")),
                state if isinstance(state, str) else None,
                stopped_reason=str(saved.get("reason")),
                register_context="Transaction.End",
                register_wh=float(register) if isinstance(register, int | float) else None,
                id_token=token if isinstance(token, dict) else None,
                awaiting_settlement=True,
                waiting_until=now + left,
            )
        )

    def _restore_remote(self, connector: _Connector, now: float) -> None:
        """An accepted remote start the bridge stored before it stopped: still accepted while its
        wall-clock acceptance lasts, forgotten after."""
        key = _remote_key(connector.evse)
        saved = self._meta.get(key)
        if not isinstance(saved, dict):
            return
        left = float(saved.get("until", 0.0)) - self._wall
        if connector.in_tx or left <= 0:
            self._set_meta(key, None)
            return
        connector.accepted["RequestStartTransaction"] = now + left
        connector.remote = saved.get("remote")
        connector.tx_profile = saved.get("profile")

    def _restore_card(self, connector: _Connector, now: float) -> None:
        """An accepted start card the bridge stored before it answered the charger: still the next
        transaction's idToken while its wall-clock validity lasts, forgotten after."""
        key = _card_key(connector.evse)
        saved = self._meta.get(key)
        if not isinstance(saved, dict):
            return
        left = float(saved.get("until", 0.0)) - self._wall
        token = saved.get("idToken")
        if connector.in_tx or left <= 0 or not isinstance(token, dict):
            self._set_meta(key, None)
            return
        self._vendor.restore_start_card(connector.evse, token, now + left)

    # --- the StationCore interface (north side) ------------------------------------------------

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.connection_made(now), now)
        self._flush()

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.connection_lost(now), now)
        self._flush()

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        self._wall = wall
        if side is Side.NORTH:
            self._north_events(self.north.receive(data, now), now)
        self._flush()

    def handle_timer(self, now: float, wall: float) -> None:
        self._wall = wall
        self._north_events(self.north.handle_timer(now), now)
        if self._unavailable_due is not None and now >= self._unavailable_due:
            self._unavailable_due = None
            self._report_unavailable(now)
        if self._missing_due is not None and now >= self._missing_due:
            self._missing_due = None
            self._report_missing()
        for job in [job for job in self._jobs if job.deadline <= now]:
            self._finish(
                job,
                False,
                "NoConfirmation",
                f"the charger did not confirm within {self.settings.answer_timeout:g} s",
            )
        for connector in self._connectors.values():
            for event in connector.pending:
                if event.waiting_until is not None and event.waiting_until <= now:
                    if self._register_held(event, now):
                        continue
                    event.waiting_until = None
                    if event.awaiting_settlement:
                        event.awaiting_settlement = False  # goes from the counters
                        if connector.in_tx:
                            continue  # the register is the next session's: keep its own
                    event.register_wh = connector.register_wh
            if connector.in_tx and connector.meter_due is not None and connector.meter_due <= now:
                connector.meter_due = self._meter_due(now)
                self._periodic(connector, now)
            self._send_pending(connector, now)
        if self._tariff_replies:
            self._answer_tariffs(now)
        if self._profile_due is not None and now >= self._profile_due:
            self._profile_due = None
            self._apply_profiles(now)
        self._flush()

    def _register_held(self, event: Pending, now: float) -> bool:
        """A register wait that ran out while the link is down keeps waiting, until `link_grace`
        ends: the counter interrogation asked for was lost with the link, and the last known value
        may be older than the charger's counter (the link's return brings it: the session
        interrogates counters at every start)."""
        due = self._unavailable_due
        if event.awaiting_settlement or self._link_up or due is None or due <= now:
            return False
        event.waiting_until = due
        return True

    def next_deadline(self) -> float | None:
        # Asked after every input (every 104 read): written out rather than as a min over a list.
        best = self.north.next_deadline()
        for due in (
            self._unavailable_due,
            self._profile_due,
            self._missing_due if self._link_up else None,
        ):
            if due is not None and (best is None or due < best):
                best = due
        for job in self._jobs:
            if job.deadline is not None and (best is None or job.deadline < best):
                best = job.deadline
        for reply in self._tariff_replies:
            if reply.deadline is not None and (best is None or reply.deadline < best):
                best = reply.deadline
        for connector in self._connectors.values():
            due = connector.meter_due if connector.in_tx else None
            if due is not None and (best is None or due < best):
                best = due
            for event in connector.pending:
                due = event.waiting_until
                if due is not None and (best is None or due < best):
                    best = due
        return best

    def effects(self) -> list[Effect]:
        """One input's effects, its store writes (Persists) ahead of everything else: the driver
        commits a run of Persists as one batch and carries out any other effect only after it, so
        a write after a frame or a command would be a second commit, and a crash between the two
        would keep half of what the input decided (a Started durable without the end rules'
        memory its step wrote after it: an end already true was lost at the restart)."""
        effects: list[Effect] = self._effects[:]
        self._effects.clear()
        if len(effects) > 1:
            seen_other = False
            for effect in effects:
                if type(effect) is Persist:
                    if seen_other:
                        durable = [e for e in effects if type(e) is Persist]
                        return durable + [e for e in effects if type(e) is not Persist]
                elif type(effect) is not Report:
                    seen_other = True
        return effects

    # --- the 104 side ---------------------------------------------------------------------------

    def handle_link_event(self, event: LinkEvent, now: float, wall: float) -> None:
        self._wall = wall
        if isinstance(event, PointUpdate):
            self.point_updated(event, now, wall)
        elif isinstance(event, CommandConfirmed):
            self.command_confirmed(event.command_id, event.positive, now, wall, event.detail)
        elif isinstance(event, LinkUp):
            self.link_up(now, wall)
        elif isinstance(event, LinkDown):
            self.link_down(now, wall, event.reason)
        elif isinstance(event, RawAsdu):
            self._private(event, now)

    def link_up(self, now: float, wall: float) -> None:
        self._wall = wall
        self._link_up = True
        self._unavailable_due = None
        self._missing_due = now + self.settings.points_wait
        self._written.clear()  # the charger may have restarted: write the limits again
        wait = now + self.settings.meter_wait
        for connector in self._connectors.values():
            for event in connector.pending:  # held while the link was down (`_register_held`)
                held = event.waiting_until is not None and event.waiting_until > wait
                if held and not event.awaiting_settlement:
                    event.waiting_until = wait
        self._apply_profiles(now)
        self._flush()

    def link_down(self, now: float, wall: float, reason: str = "") -> None:
        self._wall = wall
        if not self._link_up and self._unavailable_due is not None:
            return
        self._link_up = False
        self._values.clear()
        if self._unavailable_due is None:
            self._unavailable_due = now + self.settings.link_grace
        self._flush()

    @property
    def link_is_up(self) -> bool:
        return self._link_up

    def point_updated(self, update: PointUpdate, now: float, wall: float) -> None:
        self._wall = wall
        if not self._link_up:  # data flows: the link is up, whatever the order of the news
            self.link_up(now, wall)
        rule = self.table.monitoring.get(update.ioa)
        if rule is None:
            self._point_problem(update, "unknown-ioa")
        elif update.type_id != rule.type_id and _TWIN_OF.get(update.type_id) != rule.type_id:
            self._point_problem(update, "mismatched-type", rule)
        else:
            self._accept_point(rule, update, now)
        self._flush()

    def command_confirmed(
        self, command_id: int, positive: bool, now: float, wall: float, detail: str = ""
    ) -> None:
        self._wall = wall
        sent = self._sent.pop(command_id, None)
        if sent is None:
            self._report(
                "unknown-command", f"a confirmation for command {command_id}, which was not sent"
            )
            self._flush()
            return
        job = sent.job
        if job is not None and job in self._jobs:
            job.waiting.discard(command_id)
            if not positive and job.problem is None:
                job.problem = detail or "negative confirmation"
            if not job.waiting:
                if job.problem is None:
                    self._finish(job, True, "", "")
                else:
                    self._finish(job, False, "CommandRejected", job.problem)
        elif job is not None:
            self._report(
                "late-confirmation",
                f"{sent.command.purpose} at {format_ioa(sent.command.ioa)} confirmed"
                f" {'positively' if positive else 'negatively'} after the CSMS was answered",
            )
        if sent.on_result is not None:
            sent.on_result(positive, now)
        if not positive and sent.command.type_id in (
            TypeId.C_SE_NA_1,
            TypeId.C_SE_NB_1,
            TypeId.C_SE_NC_1,
        ):
            self._written.pop(sent.command.ioa, None)  # try again at the next evaluation
        self._flush()

    # --- points ---------------------------------------------------------------------------------

    def _point_problem(
        self, update: PointUpdate, kind: str, rule: MonitoringRule | None = None
    ) -> None:
        key = (kind, update.ioa, update.type_id)
        if key in self._reported_problems or len(self._reported_problems) >= MAX_POINT_PROBLEMS:
            return
        self._reported_problems.add(key)
        ioa = format_ioa(update.ioa)
        last = len(self._reported_problems) == MAX_POINT_PROBLEMS
        if rule is not None:
            message = (
                f"{ioa} arrived as {update.type_id}; the table has {rule.type_id} ({rule.key}):"
                " ignored (reported once)"
            )
        elif update.ioa in self.table.controls:
            message = (
                f"{ioa} is a command point in the table but arrived as {update.type_id}: ignored"
            )
        else:
            message = (
                f"{ioa} ({update.type_id}) is not in the mapping table: ignored (reported once)"
            )
        if last:
            message += f"; {MAX_POINT_PROBLEMS} such problems reported, later ones are not"
        self._effects.append(
            Report(
                Side.SOUTH,
                Diagnostic(kind, message, fields={"ioa": ioa, "type": update.type_id}),
            )
        )

    def _accept_point(self, rule: MonitoringRule, update: PointUpdate, now: float) -> None:
        decoded = None if update.invalid else _decode(rule, update.value)
        ioa = rule.ioa
        previous = self._values.get(ioa)
        if decoded is None:
            self._values.pop(ioa, None)
        else:
            self._values[ioa] = decoded
        fresh_register = False
        registers = self._register_of.get(ioa)
        if registers and decoded is not None:
            assert isinstance(rule, CounterRule | MeasurementRule)
            wh = to_wh(rule, float(decoded))
            if wh is not None:
                for connector in registers:
                    connector.register_wh = wh
                    fresh_register = self._register_arrived(connector, wh) or fresh_register
        if decoded == previous and (decoded is None) == (previous is None) and not fresh_register:
            return
        if rule.report is not None and decoded is not None:
            self._notify_change(rule, decoded, update, now)
        readers = self.table.readers.get(ioa, ())
        if readers:
            stamp = self._stamp(update.timestamp)
            for evse in readers:
                self._evaluate(self._connectors[evse], now, stamp)
        if fresh_register:
            for connector in self._connectors.values():
                self._send_pending(connector, now)

    def _register_arrived(self, connector: _Connector, wh: float) -> bool:
        """A fresh register: events waiting for it may go. An Ended waiting for its settlement
        record takes readings only until the next session starts (from then on they are that
        session's: the Ended that goes from the counters keeps the register of its own end)."""
        arrived = False
        for event in connector.pending:
            if event.waiting_until is not None:
                if event.awaiting_settlement and connector.in_tx:
                    continue
                event.register_wh = wh
                if not event.awaiting_settlement:
                    event.waiting_until = None
                    arrived = True
        return arrived

    def _evaluate(self, connector: _Connector, now: float, stamp: str) -> None:
        values = self._values
        accepted = connector.accepted_now(now)
        logic = connector.logic
        status = logic.connector_status(values, accepted)
        if status is not None:
            connector.status = status
        state = logic.charging_state(values, accepted)
        transaction = logic.transaction
        if transaction is not None:
            starts = transaction.starts(values, accepted)
            ends = tuple(test.evaluate(values, accepted) for test, _ in transaction.ends)
            if connector.in_tx:
                reason = _end_edge(ends, connector.ends_prev, transaction.ends)
                if reason is not None:
                    self._end(connector, reason, state, stamp, now)
                    self._keep_ending(connector, starts, now)
                elif state is not None and state != connector.charging_state:
                    self._queue(
                        connector, Pending("Updated", "ChargingStateChanged", stamp, state), now
                    )
            elif starts and not connector.starts_prev:
                self._start(connector, state, stamp, now)
            connector.starts_prev = starts
            # An unknown result (the link is down, or back and the interrogation is half way) keeps
            # the last known one: an end that was true before is no new edge when the points return.
            connector.ends_prev = _remembered(ends, connector.ends_prev)
            if connector.in_tx and connector.ends_prev != connector.ends_saved:
                connector.ends_saved = connector.ends_prev
                self._set_meta(_ends_key(connector.evse), list(connector.ends_prev))
        if state is not None:
            connector.charging_state = state
        self._report_status(connector, stamp, now)

    def _report_status(self, connector: _Connector, stamp: str, now: float) -> None:
        """The connector's status to the CSMS when it changed, but never ahead of the connector's
        transaction events still waiting (for their register or settlement record): the CSMS must
        not see an Available EVSE whose transaction's Ended is still to come."""
        status = connector.status
        if connector.pending or not self._link_up or status is None:
            return
        if status != connector.reported:
            connector.reported = status
            self.north.report_status(connector.evse, 1, status, stamp, now)

    # --- transactions ---------------------------------------------------------------------------

    def _start(self, connector: _Connector, state: str | None, stamp: str, now: float) -> None:
        accepted = connector.accepted_now(now)
        remote = connector.remote if "RequestStartTransaction" in accepted else None
        connector.accepted.pop("RequestStartTransaction", None)
        connector.remote = None  # its stored record goes when the Started is recorded
        connector.in_tx = True
        connector.stop_requested = False
        connector.started_wall = self._wall
        connector.meter_due = self._meter_due(now)
        card = None if remote is not None else self._vendor.card_for_start(connector.evse, now)
        event = Pending(
            "Started",
            "Authorized" if card is not None else start_trigger(remote is not None, state),
            stamp,
            state,
            remote=remote,
            register_context="Transaction.Begin",
            id_token=card,
        )
        self._wait_for_register(connector, event, now, "transaction start")
        self._queue(connector, event, now)

    def _end(
        self, connector: _Connector, reason: str, state: str | None, stamp: str, now: float
    ) -> None:
        if connector.stop_requested and reason in ("Local", "Other"):
            reason = "Remote"
        connector.in_tx = False
        connector.stop_requested = False
        connector.meter_due = None
        # The end rules' memory stays stored until the Ended is recorded (`_send_event`): a restart
        # while the Ended waits for its register finds the transaction and that memory, and ends it
        # again from the points (it had found the transaction with no memory: the end was lost).
        connector.ends_saved = None
        connector.accepted.pop("RequestStopTransaction", None)
        card = self._vendor.stop_card(connector.evse)
        event = Pending(
            "Ended",
            "StopAuthorized" if card is not None else end_trigger(reason),
            stamp,
            state,
            stopped_reason=reason,
            register_context="Transaction.End",
            id_token=card,
        )
        self._wait_for_register(connector, event, now, "transaction end")
        if self._vendor.expects_settlement(connector.evse):
            # the charger's settlement record makes the Ended (its meter values, reason, amount)
            event.awaiting_settlement = True
            wait = now + self.settings.settlement_wait
            event.waiting_until = max(event.waiting_until or wait, wait)
        self._queue(connector, event, now)

    def _keep_ending(self, connector: _Connector, starts: bool, now: float) -> None:
        """An Ended that waits for the settlement record is durable (`meta` `ending:<evse>`, in
        the commit of the step that saw the end, removed in the Ended's): a restart meanwhile
        knows the transaction ended, and charging it then sees is a new transaction, not the old
        one running on (which the late record then ended; the new session reached the CSMS only
        at its end, from its record)."""
        event = connector.pending[-1] if connector.pending else None
        transaction = connector.txn
        if event is None or not event.awaiting_settlement or transaction is None:
            return
        self._set_meta(
            _ending_key(connector.evse),
            {
                "transaction": transaction.transaction_id,
                "trigger": event.trigger,
                "timestamp": event.timestamp,
                "state": event.charging_state,
                "reason": event.stopped_reason,
                "register_wh": event.register_wh,
                "idToken": event.id_token,
                "starts": starts,
                "until": self._wall + max(0.0, (event.waiting_until or now) - now),
            },
        )

    def _wait_for_register(
        self, connector: _Connector, event: Pending, now: float, why: str
    ) -> None:
        transaction = connector.logic.transaction
        if transaction is None or transaction.meter_ioa is None:
            return
        event.register_wh = connector.register_wh
        if self._link_up and self.settings.meter_wait > 0:
            event.waiting_until = now + self.settings.meter_wait
            self._effects.append(Interrogate104(counters=True, reason=why))

    def _periodic(self, connector: _Connector, now: float) -> None:
        stamp = self._stamp(None)
        sample = meter_value(connector.meter_rules, self._values, "Sample.Periodic", stamp)
        if sample is not None:
            event = Pending("Updated", "MeterValuePeriodic", stamp, meter_values=[sample])
            self._queue(connector, event, now)

    def _queue(self, connector: _Connector, event: Pending, now: float) -> None:
        connector.pending.append(event)
        self._send_pending(connector, now)

    def _send_pending(self, connector: _Connector, now: float) -> None:
        if not connector.pending:
            return
        while connector.pending and connector.pending[0].waiting_until is None:
            self._send_event(connector, connector.pending.popleft(), now)
        if not connector.pending:
            self._report_status(connector, self._stamp(None), now)  # held back for them

    def _send_event(self, connector: _Connector, event: Pending, now: float) -> None:
        """One transaction event: the ledger, the outbox and the meta keys it changes are one
        commit. The driver commits a run of Persists as one store batch and carries out any other
        effect only after it, so an effect among them (the settlement acknowledgement, a tx
        profile's setpoint) would cut the commit in two: a crash in between kept an Ended queued
        for the CSMS with its transaction still open in the ledger, which then ended it again
        (fault harness seed 1606201). The Persists this event made go ahead of its other effects."""
        mark = len(self._effects)
        self._record_event(connector, event, now)
        made = self._effects[mark:]
        durable = [effect for effect in made if isinstance(effect, Persist)]
        if len(durable) != len(made):
            self._effects[mark:] = durable + [e for e in made if not isinstance(e, Persist)]

    def _record_event(self, connector: _Connector, event: Pending, now: float) -> None:
        if event.register_context is not None and event.register_wh is not None:
            register = register_value(
                self._register_rule(connector),
                event.register_wh,
                event.register_context,
                event.timestamp,
            )
            event.meter_values.insert(0, register)
        if event.event_type == "Started":
            remote = event.remote or {}
            started, changes = self.ledger.start(
                evse_id=connector.evse,
                remote_start_id=remote.get("remoteStartId"),
                id_token=remote.get("idToken") or event.id_token,
                meter_start_wh=event.register_wh,
                started_at=event.timestamp,
            )
            self._effects.extend(changes)
            connector.txn = started
            if _remote_key(connector.evse) in self._meta:
                # in the same commit as the Started: a restart finds one or the other
                self._set_meta(_remote_key(connector.evse), None)
            if _card_key(connector.evse) in self._meta and not self._vendor.start_card(
                connector.evse
            ):
                self._set_meta(_card_key(connector.evse), None)  # taken by this Started
            if connector.tx_profile is not None:
                self._install_tx_profile(connector, started, now)
        transaction = connector.txn
        if transaction is None:
            self._report(
                "transaction-missing",
                f"{event.event_type} on EVSE {connector.evse} without a transaction",
            )
            return
        if event.charging_state is not None:
            transaction.charging_state = event.charging_state
        seq_no, change = self.ledger.take_seq_no(transaction)
        self._effects.append(change)
        payload = transaction_event(
            event, transaction_id=transaction.transaction_id, seq_no=seq_no, evse_id=connector.evse
        )
        self.north.enqueue("TransactionEvent", payload, now)
        if event.event_type == "Ended":
            record = event.settlement
            if isinstance(record, Record):
                # in the Ended's commit; the acknowledgement only after it (`_send_event`)
                self._set_meta(SETTLED_KEY, self._vendor.settled_now(record.key))
            elif self._vendor.expects_settlement(connector.evse):
                # ended without its record (it did not come in time): a record that comes later,
                # also after a restart, is this session's, never a session of its own
                self._set_meta(_unsettled_key(connector.evse), transaction.transaction_id)
            self._effects.extend(self.ledger.end(transaction))
            connector.txn = None
            if not connector.in_tx and _ends_key(connector.evse) in self._meta:
                self._set_meta(_ends_key(connector.evse), None)  # in the Ended's commit
            if _ending_key(connector.evse) in self._meta:
                self._set_meta(_ending_key(connector.evse), None)  # in the Ended's commit
            if isinstance(record, Record):
                self._effects.append(record.ack)  # the charger hears "stored" after the commit
            self._transaction_over(connector, transaction, now)

    def _transaction_over(
        self, connector: _Connector, transaction: Transaction, now: float
    ) -> None:
        removed = [
            installed
            for installed in self._profiles.values()
            if installed.purpose == "TxProfile" and installed.evse_id == connector.evse
        ]
        for installed in removed:
            self._remove_profile(installed)
        if removed:
            self._apply_profiles(now)
        deferred = self._meta.get("deferred_reset")
        if deferred and not any(c.in_tx for c in self._connectors.values()):
            self._set_meta("deferred_reset", None)
            target = self.table.command("Reset", None)
            if target is not None and self._link_up:
                self._send(target, None, None)

    def _register_rule(self, connector: _Connector) -> MeterRule | None:
        transaction = connector.logic.transaction
        if transaction is None or transaction.meter_ioa is None:
            return None
        rule = self.table.monitoring.get(transaction.meter_ioa)
        return rule if isinstance(rule, CounterRule | MeasurementRule) else None

    def _meter_due(self, now: float) -> float | None:
        interval = self.tx_updated_interval
        return now + interval if interval > 0 else None

    @property
    def tx_updated_interval(self) -> int:
        value = self._vars.get("TxUpdatedInterval")
        return int(value) if isinstance(value, int) else self.table.station.meter_interval

    def _meter_rules(self, evse: int) -> list[MeterRule]:
        rules: list[MeterRule] = []
        for rule in self.table.monitoring.values():
            if not isinstance(rule, MeasurementRule | CounterRule):
                continue
            if rule.connector == evse and rule.measurand is not None:
                rules.append(rule)
        return sorted(rules, key=lambda r: r.ioa)

    # --- link state ------------------------------------------------------------------------------

    def _report_missing(self) -> None:
        """Points the rules read that never arrived since the link came up (the general
        interrogation's answer should have brought them all): named once, so a rule that can never
        fire is not silent."""
        if self._missing_reported or not self._link_up:
            return
        missing = [
            rule
            for ioa, rule in sorted(self.table.monitoring.items())
            if ioa in self.table.readers and ioa not in self._values
        ]
        if not missing:
            return
        self._missing_reported = True
        names = ", ".join(f"{rule.key} ({format_ioa(rule.ioa)})" for rule in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        self._report(
            "points-missing",
            f"{len(missing)} point(s) the rules read never arrived since the link came up:"
            f" {names}{more}; rules that read them cannot decide (check the table's IOAs and"
            " types against the charger's with `mappings explain`)",
        )

    def _report_unavailable(self, now: float) -> None:
        stamp = self._stamp(None)
        for connector in self._connectors.values():
            if connector.reported != "Unavailable":
                connector.reported = "Unavailable"
                self.north.report_status(connector.evse, 1, "Unavailable", stamp, now)

    # --- private ASDUs (vendor tables) -------------------------------------------------------------

    def _private(self, event: RawAsdu, now: float) -> None:
        if not (self._tariff_replies and self._tariff_confirmed(event, now)):
            in_tx = {evse: c.in_tx for evse, c in self._connectors.items()}
            self._act(self._vendor.received(event, now, in_tx), now)
        self._flush()

    def _act(self, actions: list[Any], now: float) -> None:
        for action in actions:
            if isinstance(action, Answer):
                self._effects.append(action.effect)
            elif isinstance(action, AuthorizeAtCsms):
                try:
                    sent = self.north.call(
                        "Authorize", {"idToken": action.id_token}, now, action.context
                    )
                except (OutboundPayloadInvalid, QueueFull):
                    sent = False
                if not sent:  # the CSMS cannot answer now: the table's offline policy does
                    self._card_answered(action.context, None, now)
            elif isinstance(action, Settle):
                self._settle(action.record, action.repeat, now)
            elif isinstance(action, Problem):
                key = (action.kind, -1, action.message[:80])
                if key in self._reported_problems:
                    continue
                if len(self._reported_problems) >= MAX_POINT_PROBLEMS:
                    continue
                self._reported_problems.add(key)
                self._report(action.kind, action.message[:300])

    def _card_answered(self, context: Any, status: str | None, now: float) -> None:
        evse = context[2]
        connector = self._connectors.get(evse) if isinstance(evse, int) else None
        in_tx = connector is not None and connector.in_tx
        before = self._vendor.start_card(evse) if connector is not None else None
        actions = self._vendor.authorize_answered(context, status, now, in_tx)
        card = self._vendor.start_card(evse) if connector is not None else None
        if card is not None and card is not before:
            # durable before the charger hears Accepted: a restart still starts with the card
            token, until = card
            left = max(0.0, until - now)
            self._set_meta(_card_key(evse), {"idToken": token, "until": self._wall + left})
        self._act(actions, now)

    def _settle(self, record: Record, repeat: bool, now: float) -> None:
        """A settlement record: it makes the Ended of its session (see bridge.stations.iec104.vendor)."""
        connector = self._connectors.get(record.evse)
        if connector is None:
            self._report("private-malformed", f"a settlement record for EVSE {record.evse}")
            return
        if repeat:
            self._effects.append(record.ack)  # stored already: say so again
            return
        for event in connector.pending:
            if event.event_type == "Ended" and event.settlement is None:
                self._fill(event, record)
                self._send_pending(connector, now)
                return
        # a session that ended without its record comes first: a record arriving while a new
        # transaction runs is far more likely that one's, late, than the running one's — unless
        # it names the running one (its Begin register and card)
        unsettled = self._meta.get(_unsettled_key(connector.evse))
        if unsettled is not None and not _names_running(connector, record):
            self._set_meta(_unsettled_key(connector.evse), None)
            self._report(
                "late-settlement",
                f"EVSE {record.evse}: a settlement record came after the Ended of {unsettled} went"
                f" without it (meter {record.meter_start_wh:g}..{record.meter_stop_wh:g} Wh,"
                f" amount {record.amount}); kept here, acknowledged",
            )
            self._set_meta(SETTLED_KEY, self._vendor.settled_now(record.key))
            self._effects.append(record.ack)
            return
        if connector.in_tx:
            self._end(connector, record.stop_reason, None, self._stamp(record.ended_at), now)
            self._fill(connector.pending[-1], record)
            self._send_pending(connector, now)
            return
        self._session_from_record(connector, record, now)

    def _fill(self, event: Pending, record: Record) -> None:
        event.awaiting_settlement = False
        event.waiting_until = None
        event.settlement = record
        event.stopped_reason = record.stop_reason
        if event.id_token is None:
            event.id_token = record.id_token
            event.trigger = end_trigger(record.stop_reason)
        if record.ended_at is not None:
            event.timestamp = self._stamp(record.ended_at)
        event.custom_data = record.custom_data()
        counted = event.register_wh
        if counted is not None and abs(counted - record.meter_stop_wh) >= 1.0:
            self._report(
                "settlement-disagrees",
                f"EVSE {record.evse}: the record says {record.meter_stop_wh:g} Wh at the end, the"
                f" counter {counted:g} Wh; the {'record' if record.record_wins else 'counter'} wins",
            )
        if record.record_wins or counted is None:
            event.register_wh = record.meter_stop_wh

    def _session_from_record(self, connector: _Connector, record: Record, now: float) -> None:
        """A record of a session the bridge never saw start: its Started and Ended from the record."""
        started = Pending(
            "Started",
            "Authorized" if record.id_token is not None else "CablePluggedIn",
            self._stamp(record.started_at),
            register_context="Transaction.Begin",
            register_wh=record.meter_start_wh,
            id_token=record.id_token,
        )
        ended = Pending(
            "Ended",
            end_trigger(record.stop_reason),
            self._stamp(record.ended_at),
            register_context="Transaction.End",
        )
        self._fill(ended, record)
        connector.pending.append(started)
        connector.pending.append(ended)
        self._send_pending(connector, now)

    # --- CSMS → bridge ---------------------------------------------------------------------------

    def _north_events(self, events: list[OwnerEvent], now: float) -> None:
        for event in events:
            if isinstance(event, CallReceived):
                self._csms_call(event.call, now)
            elif isinstance(event, ResultReceived | ErrorReceived | CallFailed | CallOverdue):
                context = event.request.context
                if isinstance(context, tuple) and context[:1] == ("card-authorize",):
                    status = None
                    if isinstance(event, ResultReceived):
                        info = event.payload.get("idTokenInfo")
                        status = info.get("status") if isinstance(info, dict) else None
                    self._card_answered(context, status, now)
            elif isinstance(event, BootAnswered):
                kept = owned_variables.boot_answered(self.owned, self.north, event.response)
                if kept is not None:
                    self._effects.append(kept)

    def _csms_call(self, call: Call, now: float) -> None:
        handler = _CSMS_HANDLERS.get(call.action)
        if handler is None:
            self.north.reply_error(
                call.message_id,
                Fault.NOT_SUPPORTED,
                f"an IEC 104 charger behind the bridge cannot serve {call.action}",
            )
            return
        try:
            if call.action in _NEEDS_REGISTRATION and not self.north.registered:
                failure = _status_failure("Rejected")
                self._reply(
                    call.message_id,
                    failure("InvalidMessageSeq", "B02.FR.05: the station is not accepted yet"),
                )
                return
            handler(self, call.message_id, call.payload, now)
        except QueueFull:
            if self.north.is_awaiting(call.message_id):
                self.north.reply_error(
                    call.message_id, Fault.GENERIC, "too many requests wait for the CSMS"
                )
        except (OutboundPayloadInvalid, BridgeMisuse, KeyError, TypeError, ValueError) as exc:
            self._report("request-failed", f"{call.action}: {exc!r}", side=Side.NORTH)
            if self.north.is_awaiting(call.message_id):
                self.north.reply_error(
                    call.message_id, Fault.INTERNAL, f"the bridge could not serve {call.action}"
                )

    def _not_supported(self, message_id: str, why: str) -> None:
        self.north.reply_error(message_id, Fault.NOT_SUPPORTED, why)

    def _reply(self, message_id: str, payload: Payload) -> None:
        if self.north.is_awaiting(message_id):
            self.north.reply(message_id, payload)

    def _command_job(
        self,
        message_id: str,
        action: str,
        targets: Sequence[CommandTarget],
        now: float,
        *,
        success: Payload,
        failure: Callable[[str, str], Payload],
        on_result: Callable[[bool, float], None] | None = None,
        before_success: Callable[[], None] | None = None,
    ) -> None:
        if not self._link_up:
            self._reply(message_id, failure("ChargerOffline", "the charger's 104 link is down"))
            return
        job = _Job(
            message_id,
            action,
            set(),
            now + self.settings.answer_timeout,
            success,
            failure,
            before_success=before_success,
        )
        self._jobs.append(job)
        for target in targets:
            job.waiting.add(self._send(target, job, on_result))

    def _finish(self, job: _Job, ok: bool, code: str, detail: str) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        if ok and job.before_success is not None:
            job.before_success()
        self._reply(job.message_id, job.success if ok else job.failure(code, detail))

    def _send(
        self,
        target: CommandTarget,
        job: _Job | None,
        on_result: Callable[[bool, float], None] | None,
    ) -> int:
        value: bool | int = target.value == "on" if isinstance(target.value, str) else target.value
        return self._send_command(
            target.ioa,
            target.type_id,
            value,
            select=target.mode == "select-execute",
            qualifier=target.qualifier,
            purpose=target.action,
            job=job,
            on_result=on_result,
        )

    def _send_command(
        self,
        ioa: int,
        type_id: TypeId,
        value: bool | int | float,
        *,
        select: bool,
        qualifier: str,
        purpose: str,
        job: _Job | None,
        on_result: Callable[[bool, float], None] | None = None,
    ) -> int:
        command_id = self._next_command
        self._next_command += 1
        command = Send104Command(
            command_id,
            ioa,
            type_id,
            value,
            select,
            qualifier,
            purpose,
            deadline=job.deadline if job is not None else None,
        )
        self._effects.append(command)
        self._sent[command_id] = _Sent(command, job, on_result)
        return command_id

    # RequestStartTransaction (F01, F02) ------------------------------------------------------------

    def _on_request_start(self, message_id: str, request: Payload, now: float) -> None:
        evse = request.get("evseId") or self._pick_evse()
        failure = _status_failure("Rejected")
        connector = self._connectors.get(evse) if evse is not None else None
        if connector is None:
            self._reply(message_id, failure("UnknownEvse", f"no EVSE {evse} on this station"))
            return
        if connector.in_tx:
            answer = failure("TxInProgress", "a transaction is running on this EVSE")
            if connector.txn is not None:
                answer["transactionId"] = connector.txn.transaction_id
            self._reply(message_id, answer)
            return
        target = self.table.command("RequestStartTransaction", connector.evse)
        if target is None:
            self._not_supported(message_id, "the mapping table has no start command")
            return
        remote = {"remoteStartId": request["remoteStartId"], "idToken": request["idToken"]}
        profile = request.get("chargingProfile")
        answered_accepted = False

        def started(positive: bool, at: float) -> None:
            # Only a start the CSMS was told Accepted counts, and only with no transaction on the
            # connector: a confirmation after the CSMS got its rejection (NoConfirmation), or one
            # that finds the vehicle charging already, would stay an acceptance for
            # `command_acceptance` and start a transaction the charger never had (the plug still
            # in after the session, or the next vehicle's plug-in) under this request's id.
            if not positive or not answered_accepted or connector.in_tx:
                return
            connector.accepted["RequestStartTransaction"] = at + self.settings.command_acceptance
            connector.remote = remote
            connector.tx_profile = profile
            self._evaluate(connector, at, self._stamp(None))

        def keep() -> None:
            nonlocal answered_accepted
            answered_accepted = True
            if connector.in_tx:  # charging began before the confirmation: nothing to start
                return
            until = self._wall + self.settings.command_acceptance
            record = {"remote": remote, "profile": profile, "until": until}
            self._set_meta(_remote_key(connector.evse), record)

        self._command_job(
            message_id,
            "RequestStartTransaction",
            [target],
            now,
            success={"status": "Accepted"},
            failure=failure,
            on_result=started,
            before_success=keep,
        )

    def _pick_evse(self) -> int | None:
        free = [c for c in self._connectors.values() if not c.in_tx]
        for wanted in ("Occupied", "Available"):
            for connector in free:
                if connector.reported == wanted:
                    return connector.evse
        return free[0].evse if len(self._connectors) == 1 and free else None

    # RequestStopTransaction (F03) ----------------------------------------------------------------

    def _on_request_stop(self, message_id: str, request: Payload, now: float) -> None:
        wanted = request["transactionId"]
        failure = _status_failure("Rejected")
        connector = next(
            (
                c
                for c in self._connectors.values()
                if c.in_tx and c.txn is not None and c.txn.transaction_id == wanted
            ),
            None,
        )
        if connector is None:
            self._reply(
                message_id, failure("UnknownTransaction", f"no running transaction {wanted}")
            )
            return
        target = self.table.command("RequestStopTransaction", connector.evse)
        if target is None:
            self._not_supported(message_id, "the mapping table has no stop command")
            return

        def stopped(positive: bool, at: float) -> None:
            if positive and connector.in_tx:
                connector.stop_requested = True
                connector.accepted["RequestStopTransaction"] = at + self.settings.command_acceptance
                self._evaluate(connector, at, self._stamp(None))

        self._command_job(
            message_id,
            "RequestStopTransaction",
            [target],
            now,
            success={"status": "Accepted"},
            failure=failure,
            on_result=stopped,
        )

    # UnlockConnector (F05) -------------------------------------------------------------------------

    def _on_unlock(self, message_id: str, request: Payload, now: float) -> None:
        connector = self._connectors.get(request["evseId"])
        if connector is None or request["connectorId"] != 1:
            self._reply(message_id, {"status": "UnknownConnector"})
            return
        if connector.in_tx:
            self._reply(message_id, {"status": "OngoingAuthorizedTransaction"})
            return
        target = self.table.command("UnlockConnector", connector.evse)
        if target is None:
            self._not_supported(message_id, "the mapping table has no unlock command")
            return
        self._command_job(
            message_id,
            "UnlockConnector",
            [target],
            now,
            success={"status": "Unlocked"},
            failure=_status_failure("UnlockFailed"),
        )

    # ChangeAvailability (G03, G04) ------------------------------------------------------------------

    def _on_change_availability(self, message_id: str, request: Payload, now: float) -> None:
        action: CommandAction = (
            "ChangeAvailability.Operative"
            if request["operationalStatus"] == "Operative"
            else "ChangeAvailability.Inoperative"
        )
        evse = (request.get("evse") or {}).get("id", 0)
        targets: list[CommandTarget] = []
        if evse:
            if evse not in self._connectors:
                self._reply(
                    message_id, _status_failure("Rejected")("UnknownEvse", f"no EVSE {evse}")
                )
                return
            target = self.table.command(action, evse)
            targets = [target] if target is not None else []
        else:
            station = self.table.command(action, None)
            if station is not None:
                targets = [station]
            else:
                found = [self.table.command(action, n) for n in self._connectors]
                targets = [t for t in found if t is not None] if all(found) else []
        if not targets:
            self._not_supported(message_id, f"the mapping table has no command for {action}")
            return
        self._command_job(
            message_id,
            "ChangeAvailability",
            targets,
            now,
            success={"status": "Accepted"},
            failure=_status_failure("Rejected"),
        )

    # Reset (B11, B12) -------------------------------------------------------------------------------

    def _on_reset(self, message_id: str, request: Payload, now: float) -> None:
        failure = _status_failure("Rejected")
        if request.get("evseId"):
            self._reply(message_id, failure("NoEvseReset", "the charger resets only as a whole"))
            return
        target = self.table.command("Reset", None)
        if target is None:
            self._not_supported(message_id, "the mapping table has no reset command")
            return
        if request["type"] == "OnIdle" and any(c.in_tx for c in self._connectors.values()):
            self._set_meta("deferred_reset", True)
            self._reply(message_id, {"status": "Scheduled"})
            return
        self._command_job(
            message_id, "Reset", [target], now, success={"status": "Accepted"}, failure=failure
        )

    # SetChargingProfile, ClearChargingProfile (K01, K10) ------------------------------------------

    def _on_set_profile(self, message_id: str, request: Payload, now: float) -> None:
        failure = _status_failure("Rejected")
        evse = request["evseId"]
        profile = request["chargingProfile"]
        problem = self._profile_problem(evse, profile)
        if problem is not None:
            self._reply(message_id, failure(*problem))
            return
        if not self._link_up:
            self._reply(message_id, failure("ChargerOffline", "the charger's 104 link is down"))
            return
        self._install(Installed(evse, profile, self._wall))
        job = _Job(
            message_id,
            "SetChargingProfile",
            set(),
            now + self.settings.answer_timeout,
            {"status": "Accepted"},
            failure,
        )
        self._jobs.append(job)
        job.waiting.update(self._apply_profiles(now, job))
        if not job.waiting:
            self._finish(job, True, "", "")

    def _profile_problem(self, evse: int, profile: Payload) -> tuple[str, str] | None:
        purpose = profile["chargingProfilePurpose"]
        if evse != 0 and evse not in self._connectors:
            return "UnknownEvse", f"no EVSE {evse}"
        if purpose == "ChargingStationMaxProfile" and evse != 0:
            return "InvalidEvse", "ChargingStationMaxProfile is for EVSE 0"
        if purpose == "TxProfile":
            connector = self._connectors.get(evse)
            if connector is None or connector.txn is None:
                return (
                    "TxNotFound",
                    "a TxProfile needs a running transaction on its EVSE (K01.FR.09)",
                )
            wanted = profile.get("transactionId")
            if wanted is not None and wanted != connector.txn.transaction_id:
                return "TxNotFound", f"transaction {wanted} is not running on EVSE {evse}"
        if purpose not in (*TX_PURPOSES, *STATION_PURPOSES):
            return "UnsupportedPurpose", f"{purpose} is not evaluated by the bridge"
        if profile["stackLevel"] > owned_variables.PROFILE_STACK_LEVEL:
            return (
                "InvalidStackLevel",
                f"stackLevel {profile['stackLevel']} is above ProfileStackLevel"
                f" ({owned_variables.PROFILE_STACK_LEVEL})",
            )
        if profile["chargingProfileKind"] == "Recurring" and "recurrencyKind" not in profile:
            return "InvalidSchedule", "a Recurring profile needs recurrencyKind"
        unit: RateUnit = profile["chargingSchedule"][0]["chargingRateUnit"]
        evses = [evse] if evse else list(self._connectors)
        station_setpoint = self.table.setpoint(None, unit)
        if purpose == "ChargingStationMaxProfile" and station_setpoint is not None:
            return None
        if any(self.table.setpoint(n, unit) is None for n in evses):
            return (
                "UnsupportedRateUnit",
                f"the mapping table has no setpoint taking limits in {unit}",
            )
        return None

    def _install(self, installed: Installed) -> None:
        self._profiles[installed.profile_id] = installed
        self._effects.append(Persist(PROFILES, str(installed.profile_id), installed.record()))

    def _remove_profile(self, installed: Installed) -> None:
        self._profiles.pop(installed.profile_id, None)
        self._effects.append(Persist(PROFILES, str(installed.profile_id), None))

    def _install_tx_profile(
        self, connector: _Connector, transaction: Transaction, now: float
    ) -> None:
        profile = dict(connector.tx_profile or {})
        connector.tx_profile = None
        profile["transactionId"] = transaction.transaction_id
        if profile.get("chargingProfilePurpose") != "TxProfile" or self._profile_problem(
            connector.evse, profile
        ):
            self._report(
                "profile-ignored",
                f"RequestStartTransaction.chargingProfile on EVSE {connector.evse} cannot be applied",
            )
            return
        self._install(Installed(connector.evse, profile, self._wall))
        self._apply_profiles(now)

    def _on_clear_profile(self, message_id: str, request: Payload, now: float) -> None:
        wanted_id = request.get("chargingProfileId")
        criteria = request.get("chargingProfileCriteria") or {}
        matches = [
            installed
            for installed in self._profiles.values()
            if (wanted_id is None or installed.profile_id == wanted_id)
            and ("evseId" not in criteria or installed.evse_id == criteria["evseId"])
            and (
                "chargingProfilePurpose" not in criteria
                or installed.purpose == criteria["chargingProfilePurpose"]
            )
            and ("stackLevel" not in criteria or installed.stack_level == criteria["stackLevel"])
        ]
        if not matches:
            self._reply(message_id, {"status": "Unknown"})
            return
        for installed in matches:
            self._remove_profile(installed)
        self._reply(message_id, {"status": "Accepted"})
        self._apply_profiles(now)

    def _apply_profiles(self, now: float, job: _Job | None = None) -> list[int]:
        """Write the limits in force now to the setpoints; returns the commands sent."""
        wall = self._wall
        boundaries: list[float] = []
        station_limit, boundary = in_force(
            self._profiles.values(), evse_id=0, purposes=STATION_PURPOSES, t=wall, tx=None
        )
        if boundary is not None:
            boundaries.append(boundary)
        desired: list[tuple[SetpointRule, float | None]] = []
        for rule in self.table.setpoints.values():
            if rule.connector is None:
                desired.append((rule, _limit_in(station_limit, rule.rate_unit)))
        for connector in self._connectors.values():
            tx = None
            if connector.txn is not None and connector.in_tx:
                tx = TxContext(connector.txn.transaction_id, connector.started_wall or wall)
            limit, boundary = in_force(
                self._profiles.values(), evse_id=connector.evse, purposes=TX_PURPOSES, t=wall, tx=tx
            )
            if boundary is not None:
                boundaries.append(boundary)
            for unit in _RATE_UNITS:
                setpoint = self.table.setpoint(connector.evse, unit)
                if setpoint is None:
                    continue
                value = _limit_in(limit, unit)
                cap = _limit_in(station_limit, unit)
                if cap is not None and self.table.setpoint(None, unit) is None:
                    value = cap if value is None else min(value, cap)
                desired.append((setpoint, value))
        sent: list[int] = []
        for rule, value in desired:
            if value is None:
                if rule.ioa not in self._limited:
                    continue
                if rule.maximum is None:
                    self._report(
                        "limit-kept",
                        f"no profile limits {rule.key} any more, but the table gives it no maximum"
                        " to go back to: the last limit stays",
                    )
                    self._limited.discard(rule.ioa)
                    continue
                self._limited.discard(rule.ioa)
                value = rule.maximum * (1000 if rule.unit == "kW" else 1)
            else:
                self._limited.add(rule.ioa)
            device = rule.device_value(value, rule.rate_unit)
            if not self._link_up or self._written.get(rule.ioa) == device:
                continue
            self._written[rule.ioa] = device
            sent.append(
                self._send_command(
                    rule.ioa,
                    rule.type_id,
                    device,
                    select=rule.mode == "select-execute",
                    qualifier="none",
                    purpose=f"setpoint {rule.key}",
                    job=job,
                )
            )
        self._profile_due = now + max(0.0, min(boundaries) - wall) if boundaries else None
        return sent

    # GetVariables, SetVariables, GetBaseReport (B06–B08) ---------------------------------------------

    def _owned_variables(self) -> list[owned_variables.Owned]:
        """The bridge's own variables and their values now."""
        facts = owned_variables.StationFacts(
            station_id=self.station_id,
            security_profile=self.settings.owned.security_profile,
            now_iso=self._stamp(None),
            station_state="Available" if self._link_up else "Unavailable",
            evses={evse: c.reported for evse, c in self._connectors.items()},
            evse_power={
                evse: power_of(c.meter_rules, self._values) for evse, c in self._connectors.items()
            },
        )
        extra = owned_variables.extra_104(installed_profiles=len(self._profiles))
        return self.owned.variables(iec104=True) + owned_variables.facts(facts) + extra

    @property
    def model(self) -> DeviceModel:
        """The station's device model, built at the first request that needs it (their variables'
        descriptions never change; only their values, which the model does not hold)."""
        model = self._model
        if model is None:
            model = self._model = _device_model(
                self.table, self._rate_units(), self._owned_variables()
            )
        return model

    def _refresh_owned(self) -> None:
        self._owned_now = {
            (v.component, None, v.evse, v.connector, v.variable, v.variable_instance): v.value
            for v in self._owned_variables()
        }

    def _on_get_variables(self, message_id: str, request: Payload, now: float) -> None:
        self._refresh_owned()
        results = [
            self.model.get_result(item, self._value_of) for item in request["getVariableData"]
        ]
        self._reply(message_id, {"getVariableResult": results})

    def _on_set_variables(self, message_id: str, request: Payload, now: float) -> None:
        results: list[Payload] = []
        tariffs: dict[str, list[tuple[int, str, Payload]]] = {}
        for item in request["setVariableData"]:
            result: Payload = {"component": item["component"], "variable": item["variable"]}
            attribute_type = item.get("attributeType", "Actual")
            if attribute_type != "Actual":
                result["attributeType"] = attribute_type
            key = request_key(item["component"], item["variable"])
            found = self.model.find(key)
            if found is None:
                known = self.model.knows_component(key)
                result["attributeStatus"] = "UnknownVariable" if known else "UnknownComponent"
            elif attribute_type != "Actual":
                result["attributeStatus"] = "NotSupportedAttributeType"
            elif tariff_source(found.source) is not None:
                name, field_name = tariff_source(found.source) or ("", "")
                tariffs.setdefault(name, []).append((len(results), field_name, item))
                result["attributeStatus"] = "Accepted"  # decided below, per tariff ASDU
            elif (found.component, found.variable) == TX_UPDATED_INTERVAL:
                result["attributeStatus"] = self._set_interval(item["attributeValue"], now)
            elif found.source == OWNED_SOURCE and found.mutability != "ReadOnly":
                owned_key = owned_variables.settable_key(
                    found.component, found.variable, found.variable_instance
                )
                assert owned_key is not None
                written = owned_variables.write(
                    self.owned, self.north, owned_key, item["attributeValue"], self._effects
                )
                result["attributeStatus"] = written.status
                if written.reason is not None:
                    result["attributeStatusInfo"] = {"reasonCode": written.reason}
            else:
                result["attributeStatus"] = "Rejected"
                result["attributeStatusInfo"] = {"reasonCode": "ReadOnly"}
            results.append(result)
        waits = [self._send_tariff(name, items, results, now) for name, items in tariffs.items()]
        waiting = [wait for wait in waits if wait is not None]
        if waiting:
            self._tariff_replies.append(
                _TariffReply(message_id, results, waiting, now + self.settings.answer_timeout)
            )
        else:
            self._reply(message_id, {"setVariableResult": results})

    def _send_tariff(
        self, name: str, items: list[tuple[int, str, Payload]], results: list[Payload], now: float
    ) -> tuple[int, int, list[int]] | None:
        """SetVariables on a tariff component: the table's private ASDU with every variable's value
        (the ones not in the request keep their stored value). Returns what the reply waits for:
        (type id, IOA, the results it decides) when the table expects an ACT_CON."""
        rule = self.table.private[name]
        meaning = rule.meaning
        assert isinstance(meaning, Tariff)
        indices = [index for index, _, _ in items]

        def refuse(reason: str, info: str) -> None:
            for index in indices:
                results[index]["attributeStatus"] = "Rejected"
                results[index]["attributeStatusInfo"] = {
                    "reasonCode": reason,
                    "additionalInfo": info[:500],
                }

        stored = self._vars.get(f"tariff:{name}")
        values: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
        for spec in rule.layout.fields:
            values.setdefault(spec.name, 0 if spec.type not in ("ascii", "bcd") else "")
        for _, field_name, item in items:
            text = str(item["attributeValue"]).strip()
            spec = rule.layout.field(field_name)
            if spec.type in ("ascii", "bcd"):
                values[field_name] = text
                continue
            try:
                number = float(text)
            except ValueError:
                refuse("InvalidValue", f"{field_name}: {text!r} is not a number")
                return None
            values[field_name] = (
                int(number) if number.is_integer() and spec.scale is None else number
            )
        try:
            data = rule.layout.encode(values, self._vendor.zone)
        except ValueError as exc:
            refuse("InvalidValue", str(exc))
            return None
        if not self._link_up:
            refuse("TargetOffline", "the charger's 104 link is down")
            return None
        self._vars[f"tariff:{name}"] = values
        self._effects.append(Persist(VARS, f"tariff:{name}", values))
        ioa = rule.ioa_for(None if not rule.per_connector else 1)
        self._effects.append(
            Send104Private(
                rule.type_id,
                rule.cot,
                object_bytes(ioa, data, self.table.link.ioa_size),
                purpose=f"{name}: SetVariables",
            )
        )
        if meaning.confirmation == "none":
            return None
        return rule.type_id, ioa, indices

    def _tariff_confirmed(self, event: RawAsdu, now: float) -> bool:
        """An ACT_CON (or its negative) of a tariff ASDU the bridge sent; True when it was one."""
        split = split_object(event.objects, self.table.link.ioa_size)
        if event.cot != 7 or isinstance(split, LayoutError):
            return False
        ioa = split[0]
        for reply in self._tariff_replies:
            for wait in reply.waiting:
                if (wait[0], wait[1]) == (event.type_id, ioa):
                    reply.waiting.remove(wait)
                    if event.negative:
                        for index in wait[2]:
                            reply.results[index]["attributeStatus"] = "Rejected"
                    self._answer_tariffs(now)
                    return True
        return False

    def _answer_tariffs(self, now: float) -> None:
        for reply in list(self._tariff_replies):
            if reply.waiting and reply.deadline > now:
                continue
            for wait in reply.waiting:  # no confirmation in time
                for index in wait[2]:
                    reply.results[index]["attributeStatus"] = "Rejected"
                    reply.results[index]["attributeStatusInfo"] = {"reasonCode": "NoConfirmation"}
            self._tariff_replies.remove(reply)
            self._reply(reply.message_id, {"setVariableResult": reply.results})

    def _set_interval(self, text: str, now: float) -> str:
        try:
            seconds = int(text.strip())
        except ValueError:
            return "Rejected"
        if seconds < 0:
            return "Rejected"
        self._vars["TxUpdatedInterval"] = seconds
        self._effects.append(Persist(VARS, "TxUpdatedInterval", seconds))
        for connector in self._connectors.values():
            if connector.in_tx:
                connector.meter_due = self._meter_due(now)
        return "Accepted"

    def _on_get_base_report(self, message_id: str, request: Payload, now: float) -> None:
        base = request["reportBase"]
        if base not in REPORT_BASES:
            self._reply(message_id, {"status": "NotSupported"})
            return
        self._refresh_owned()
        data = [v.report_data(self._value_of(v)) for v in self.model if v.in_report(base)]
        self._send_report(message_id, request["requestId"], data, now)

    def _on_get_report(self, message_id: str, request: Payload, now: float) -> None:
        """B08: componentVariable and componentCriteria as `bridge.north.device_data` filters them."""
        self._refresh_owned()
        chosen = device_data.custom_report(
            request, self.model.variables, lambda v: v.key, self._value_of
        )
        data = [v.report_data(self._value_of(v)) for v in chosen]
        self._send_report(message_id, request["requestId"], data, now)

    def _send_report(
        self, message_id: str, request_id: int, data: list[Payload], now: float
    ) -> None:
        if not data:
            self._reply(message_id, {"status": "EmptyResultSet"})
            return
        self._reply(message_id, {"status": "Accepted"})
        for payload in device_data.notify_report_parts(data, request_id, self._stamp(None)):
            if not self.north.call("NotifyReport", payload, now, ("report",), asked_for=True):
                self.north.enqueue("NotifyReport", payload, now)  # delivered once there is room

    def _value_of(self, variable: Variable) -> str | None:
        source = variable.source
        if source.startswith("point:"):
            value = self._values.get(int(source[6:]))
            rule = self.table.monitoring.get(int(source[6:]))
            if isinstance(rule, EnumRule) and value is not None:
                return rule.name_of(float(value)) or text_of(value)
            return text_of(value)
        if source.startswith("identity:"):
            return text_of(getattr(self.table.identity, source[9:]))
        if source == OWNED_SOURCE:
            return self._owned_now.get(variable.key)
        tariff = tariff_source(source)
        if tariff is not None:
            stored = self._vars.get(f"tariff:{tariff[0]}")
            return text_of(stored.get(tariff[1])) if isinstance(stored, dict) else None
        if source == "tx-updated-interval":
            return str(self.tx_updated_interval)
        if source == "tx-updated-measurands":
            measurands = {r.measurand for c in self._connectors.values() for r in c.meter_rules}
            return ",".join(sorted(m for m in measurands if m is not None))
        if source == "enabled":
            return "true"
        if source == "rate-units":
            return ",".join(self._rate_units())
        return None

    def _rate_units(self) -> list[str]:
        return sorted({rule.rate_unit for rule in self.table.setpoints.values()})

    # GetChargingProfiles (K09) ------------------------------------------------------------------------

    def _on_get_profiles(self, message_id: str, request: Payload, now: float) -> None:
        installed = [
            InstalledProfile(profile.evse_id, profile.profile)
            for profile in sorted(self._profiles.values(), key=lambda p: p.profile_id)
        ]
        response, reports = get_charging_profiles(request, installed)
        self._reply(message_id, response)
        for report in reports:
            if not self.north.call(
                "ReportChargingProfiles", report, now, ("report",), asked_for=True
            ):
                self.north.enqueue("ReportChargingProfiles", report, now)

    # TriggerMessage (F06), GetTransactionStatus (E14) ------------------------------------------------

    def _on_trigger(self, message_id: str, request: Payload, now: float) -> None:
        wanted = request["requestedMessage"]
        evse = (request.get("evse") or {}).get("id")
        connectors = [c for c in self._connectors.values() if evse is None or c.evse == evse]
        if evse is not None and not connectors:
            self._reply(message_id, {"status": "Rejected"})
            return
        stamp = self._stamp(None)
        if wanted == "Heartbeat":
            self._reply(message_id, {"status": "Accepted"})
            self.north.call("Heartbeat", {}, now, ("trigger",), asked_for=True)
        elif wanted == "StatusNotification":
            known = [c for c in connectors if c.reported is not None]
            self._reply(message_id, {"status": "Accepted" if known else "Rejected"})
            for connector in known:
                notification = {
                    "timestamp": stamp,
                    "connectorStatus": connector.reported,
                    "evseId": connector.evse,
                    "connectorId": 1,
                }
                self.north.call(
                    "StatusNotification", notification, now, ("trigger",), asked_for=True
                )
        elif wanted == "MeterValues":
            samples = [
                (c.evse, meter_value(c.meter_rules, self._values, "Trigger", stamp))
                for c in connectors
            ]
            found = [(n, s) for n, s in samples if s is not None]
            self._reply(message_id, {"status": "Accepted" if found else "Rejected"})
            for evse_id, sample in found:
                self.north.call(
                    "MeterValues",
                    {"evseId": evse_id, "meterValue": [sample]},
                    now,
                    ("trigger",),
                    asked_for=True,
                )
        elif wanted == "TransactionEvent":
            running = [c for c in connectors if c.in_tx]
            self._reply(message_id, {"status": "Accepted" if running else "Rejected"})
            for connector in running:
                reading = meter_value(connector.meter_rules, self._values, "Trigger", stamp)
                event = Pending("Updated", "Trigger", stamp, connector.charging_state)
                if reading is not None:
                    event.meter_values.append(reading)
                self._queue(connector, event, now)
        else:
            self._reply(message_id, {"status": "NotImplemented"})

    def _on_transaction_status(self, message_id: str, request: Payload, now: float) -> None:
        wanted = request.get("transactionId")
        if wanted is None:
            queued = self.north.outbox.has_transaction_events()
            self._reply(message_id, {"messagesInQueue": queued})
            return
        ongoing = any(
            c.in_tx and c.txn is not None and c.txn.transaction_id == wanted
            for c in self._connectors.values()
        )
        self._reply(
            message_id,
            {"messagesInQueue": self.north.messages_in_queue(wanted), "ongoingIndicator": ongoing},
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _identity(self) -> Payload:
        identity = self.table.identity
        station: Payload = {"vendorName": identity.vendor_name, "model": identity.model}
        if identity.serial_number is not None:
            station["serialNumber"] = identity.serial_number
        if identity.firmware_version is not None:
            station["firmwareVersion"] = identity.firmware_version
        return station

    def _notify_change(
        self, rule: MonitoringRule, value: Value, update: PointUpdate, now: float
    ) -> None:
        previous = self._notified.get(rule.ioa)
        first_alarm = previous is None and isinstance(rule, StatusRule) and value is True
        if previous == value or (previous is None and not first_alarm):
            self._notified[rule.ioa] = value
            return
        self._notified[rule.ioa] = value
        report = rule.report
        assert report is not None
        event_id = int(self._meta.get("event_id", 0)) + 1
        self._set_meta("event_id", event_id)
        component: Payload = {"name": report.component}
        if rule.connector is not None:
            component["evse"] = {"id": rule.connector}
        variable: Payload = {"name": report.variable}
        if report.instance is not None:
            variable["instance"] = report.instance
        text = text_of(value) or ""
        if isinstance(rule, EnumRule):
            text = rule.name_of(float(value)) or text
        stamp = self._stamp(update.timestamp)
        event = {
            "eventId": event_id,
            "timestamp": stamp,
            "trigger": "Delta",
            "actualValue": text[:2500],
            "eventNotificationType": "HardWiredMonitor",
            "component": component,
            "variable": variable,
        }
        self.north.enqueue(
            "NotifyEvent", {"generatedAt": stamp, "seqNo": 0, "eventData": [event]}, now
        )

    def _set_meta(self, key: str, value: Any) -> None:
        if value is None:
            self._meta.pop(key, None)
        else:
            self._meta[key] = value
        self._effects.append(Persist(META, key, value))

    def _stamp(self, timestamp: float | None) -> str:
        moment = timestamp if timestamp is not None else self._wall
        return format_utc(datetime.fromtimestamp(moment, UTC))

    def _report(self, kind: str, message: str, *, side: Side = Side.SOUTH) -> None:
        self._effects.append(Report(side, Diagnostic(kind, message)))

    def _flush(self) -> None:
        self.north.flush()


def _decode(rule: MonitoringRule, raw: bool | int | float | None) -> Value | None:
    if raw is None:
        return None
    if isinstance(rule, StatusRule):
        if isinstance(raw, float):
            return None
        return rule.decode(raw)
    if isinstance(rule, MeasurementRule):
        return rule.convert(float(raw))
    if isinstance(rule, EnumRule):
        return float(raw)
    return rule.convert(int(raw))


def _ends_key(evse: int) -> str:
    return f"ends:{evse}"


def _names_running(connector: _Connector, record: Record) -> bool:
    """The record is of the transaction running on its connector: its meter start is that
    transaction's Begin register (and its card, when both have one, the transaction's idToken)."""
    transaction = connector.txn
    if not connector.in_tx or transaction is None or transaction.meter_start_wh is None:
        return False
    if abs(transaction.meter_start_wh - record.meter_start_wh) >= 1.0:
        return False
    token = transaction.id_token
    if record.id_token is None or not isinstance(token, dict):
        return True
    return token.get("idToken") == record.id_token.get("idToken")


def _ending_key(evse: int) -> str:
    return f"ending:{evse}"


def _ends_it(saved: Any, transaction: Transaction) -> bool:
    return isinstance(saved, dict) and saved.get("transaction") == transaction.transaction_id


def _unsettled_key(evse: int) -> str:
    return f"unsettled:{evse}"


def _remote_key(evse: int) -> str:
    return f"remote:{evse}"


def _card_key(evse: int) -> str:
    return f"card:{evse}"


# Device models by what they are built from: stations of one table share theirs (it is immutable and
# holds no values), so a bridge of thousands of stations builds it once (start-up: ~3 ms per station).
# The table is kept in the value, so its id in the key cannot be reused while the entry lives.
_MODELS: dict[tuple[Any, ...], tuple[CompiledTable, DeviceModel]] = {}
_MODELS_MAX: Final = 64


def _device_model(
    table: CompiledTable, rate_units: list[str], owned: list[owned_variables.Owned]
) -> DeviceModel:
    """`build_device_model`, shared by every station with the same table and variables."""
    described = tuple(  # the values are no part of it
        (v.component, v.variable, v.variable_instance, v.evse, v.connector, v.data_type, v.unit,
         v.mutability, v.values_list, v.summary)
        for v in owned
    )  # fmt: skip
    key = (id(table), tuple(rate_units), described)
    found = _MODELS.get(key)
    if found is not None and found[0] is table:
        return found[1]
    model = build_device_model(table, rate_units, owned)
    if len(_MODELS) >= _MODELS_MAX:
        _MODELS.clear()
    _MODELS[key] = (table, model)
    return model


def _remembered(
    ends: tuple[bool | None, ...], before: tuple[bool | None, ...]
) -> tuple[bool | None, ...]:
    return tuple(
        before[index] if result is None and index < len(before) else result
        for index, result in enumerate(ends)
    )


def _end_edge(
    ends: tuple[bool | None, ...],
    before: tuple[bool | None, ...],
    rules: tuple[tuple[Any, str], ...],
) -> str | None:
    # An edge between known results only: a rule unknown since the transaction started (it started
    # while the interrogation was half way) that turns out true was true from the start.
    for index, result in enumerate(ends):
        was = before[index] if index < len(before) else None
        if result is True and was is False:
            return str(rules[index][1])
    return None


def _limit_in(limit: Limit | None, unit: str) -> float | None:
    return limit.value if limit is not None and limit.unit == unit else None


def _status_failure(status: str) -> Callable[[str, str], Payload]:
    def failure(code: str, detail: str) -> Payload:
        return {
            "status": status,
            "statusInfo": {"reasonCode": code[:20], "additionalInfo": detail[:512]},
        }

    return failure


_NEEDS_REGISTRATION: Final = frozenset({"RequestStartTransaction", "RequestStopTransaction"})
_Handler = Callable[[Station104, str, Payload, float], None]
_CSMS_HANDLERS: Final[dict[str, _Handler]] = {
    "RequestStartTransaction": Station104._on_request_start,
    "RequestStopTransaction": Station104._on_request_stop,
    "UnlockConnector": Station104._on_unlock,
    "ChangeAvailability": Station104._on_change_availability,
    "Reset": Station104._on_reset,
    "SetChargingProfile": Station104._on_set_profile,
    "ClearChargingProfile": Station104._on_clear_profile,
    "GetVariables": Station104._on_get_variables,
    "SetVariables": Station104._on_set_variables,
    "GetBaseReport": Station104._on_get_base_report,
    "GetReport": Station104._on_get_report,
    "GetChargingProfiles": Station104._on_get_profiles,
    "TriggerMessage": Station104._on_trigger,
    "GetTransactionStatus": Station104._on_transaction_status,
}
