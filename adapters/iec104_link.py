"""One IEC 104 charger's link: a c104 `Client` connection, its foreign threads tamed, its news on the loop.

The bridge is the controlling station: it dials the charger's 104 server (outstation). Each charger gets
its own c104 `Client` with one connection: stopping a station stops its threads, and each table's
command timeout is the client's. (Measured, 100 chargers: 201 threads and 18 MB RSS this way, 102 threads
with one shared client; see bench/iec104_points.py.)

Threads (see ../shared/reference/iec104-and-c104.md)
- c104 runs `Point.on_receive` and `Client.on_new_point` on the connection's receive thread,
  `on_state_change` and `on_unexpected_message` on the client's worker thread. Every callback here only
  copies plain values out of c104's objects into a `LinkEvent`, appends it to an inbox and, if no drain
  is pending, schedules one with `loop.call_soon_threadsafe`; its whole body is inside try/except,
  because an exception escaping a callback makes c104 drop that callback for good. No callback calls
  `transmit` (that deadlocks the connection); the one c104 call made in a callback is `unmute()`, the
  measured start-up workaround.
- The first event after a drain wakes the loop, which drains `handoff_delay` (5 ms) later: every event
  queued by then goes, in arrival order, to the consumer in one batch. 10,000 updates/s then cost at most
  400 loop wake-ups a second instead of 10,000 (measured: the per-update wake-ups cost more CPU than
  the translation itself), for 5 ms of latency; an idle link costs none.
- Blocking c104 calls (start, stop, `transmit`, interrogations, clock sync, unmute, reconnect) run on a
  process-wide pool of `CALL_THREADS` threads named `c104-call`, never on the loop, one at a time per
  link. Measured hop: about 75 µs; a pool rather than one thread because one charger's command may
  block for its whole timeout (10 s) and must not hold up the others.

Start-up and watchdog
- The connection is opened with `Init.MUTED` and unmuted from `on_state_change` when it reports
  OPEN_MUTED (c104 2.2.1 can otherwise stay muted forever). The watchdog unmutes again after
  `mute_grace` seconds still muted and reconnects after three times that; it also reconnects a link
  that is open but has delivered no data for `silence_limit` seconds after an interrogation.
- On every OPEN: clock synchronisation (see below), general interrogation, counter interrogation; then a
  general interrogation every `general_interrogation_interval` and a counter interrogation every
  `counter_interrogation_interval` seconds of the table, and a counter interrogation whenever the core
  asks (transaction start and end). Interrogations do not wait for their confirmation (some servers never
  send ACT_CON for a counter interrogation); the data that follows is what counts.
- c104 dials IPv4 addresses only: a host name is resolved first (retried with back-off until it
  resolves).
- LinkUp when the connection is OPEN and unmuted, LinkDown when it leaves OPEN; c104 then retries the
  connection every second by itself.

Values and time
- Values leave c104's types as in `bridge.iec104.southbound`; quality flags by name.
- c104 reads CP56Time2a time tags as UTC and returns naive local times; the adapter undoes that and reads
  the wire fields in the table's `time_zone`. c104's clock synchronisation always sends the bridge's UTC
  time, so it is sent only when the table's zone is at UTC offset 0 at that moment; otherwise it is
  skipped and logged once (a charger on Beijing time must not be set 8 hours wrong).

Commands
- `command()` sends a `Send104Command` (direct, or select-and-execute) and answers with exactly one
  `CommandConfirmed`: positive on a positive confirmation, negative on a negative one, on a timeout
  (the table's `command_timeout`), while the link is down, or for a type c104 cannot send (C_RP_NA_1).
  Commands to different IOAs run in parallel, to one IOA one after the other.
- The outcome is the first of c104's answer and the confirmation frames the adapter watches itself
  (`on_receive_raw`: ACT_CON, ACT_TERM, negative and unknown-* causes for the command's type and IOA).
  Two reasons: c104 2.2.1 waits for a confirmation without first looking whether it already arrived (a
  lost wake-up: under load about one command in a few hundred "timed out" after 10 s although the
  ACT_CON was there), and a select-and-execute command to a charger that sends no ACT_TERM
  (`expects_act_term: false`) times out in c104 although the charger executed it. Watching every
  received frame costs about one more Python call per ASDU (measured in bench/iec104_points.py).
- One command per IOA at a time, and c104 must not be asked to send on a point whose `transmit` still
  blocks, so a lost wake-up holds that IOA for as long as c104 waits. For a table whose commands are
  all direct, c104 waits `c104_direct_timeout` (2 s) instead of the table's `command_timeout`; the
  frames watched here still decide the outcome until the table's timeout. (Measured by the demo's
  session, 400 commands back to back to one IOA: 2 took 9.95 s to free it with c104 waiting 10 s;
  a stop then waited behind its start past the CSMS's 4 s answer.) Tables with select-and-execute
  commands keep the full timeout: c104 sends the execute only after the select's confirmation.
- A command whose `deadline` passed while it waited for its IOA is not sent: the CSMS was answered
  already (Rejected, NoConfirmation), and the charger must not carry out what the CSMS was told did
  not happen. It is confirmed negatively ("not sent").
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime
import socket
import sys
import threading
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import c104

from bridge.iec104 import CompiledTable
from bridge.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    Send104Command,
)

CALL_THREADS: Final = 32
_ACT_CON: Final = 7
_ACT_TERM: Final = 10
_UNKNOWN_TYPE: Final = 44  # 44..47: unknown type id, cause, common address, IOA
_TYPE_CODES: Final = {
    "C_SC_NA_1": 45,
    "C_DC_NA_1": 46,
    "C_SE_NA_1": 48,
    "C_SE_NB_1": 49,
    "C_SE_NC_1": 50,
}
_NEGATIVE: Final = 0x40
_UTC = datetime.UTC
_NO_FLAGS: frozenset[str] = frozenset()
_QUALITY_NAMES: Final = ("Invalid", "NonTopical", "Substituted", "Blocked", "Overflow")
_COUNTER_QUALITY_NAMES: Final = ("Invalid", "Carry", "Adjusted")
_QOC: Final = {
    "none": c104.Qoc.NONE,
    "short_pulse": c104.Qoc.SHORT_PULSE,
    "long_pulse": c104.Qoc.LONG_PULSE,
    "persistent": c104.Qoc.PERSISTENT,
}
_SENDABLE: Final = frozenset({"C_SC_NA_1", "C_DC_NA_1", "C_SE_NA_1", "C_SE_NB_1", "C_SE_NC_1"})
_TAGGED: Final = frozenset(
    {"M_SP_TB_1", "M_DP_TB_1", "M_ME_TD_1", "M_ME_TE_1", "M_ME_TF_1", "M_IT_TB_1"}
)
_TYPE_NAMES: Final = {member: name for name, member in c104.Type.__members__.items()}

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def call_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process-wide pool for blocking c104 calls (threads start on demand)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=CALL_THREADS, thread_name_prefix="c104-call"
            )
        return _executor


async def blocking(function: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking c104 call off the loop."""
    return await asyncio.get_running_loop().run_in_executor(call_pool(), function, *args)


# The interpreter's thread switch interval while IEC 104 stations run (the default is 5 ms).
C104_SWITCH_INTERVAL: Final = 0.0005


def guard_c104_callbacks() -> None:
    """Shorten the interpreter's thread switch interval (process-wide, once 104 stations run).

    c104 guards every Python callback with a mutex whose waiters abort the whole process after 100 ms
    ("Potential Deadlock: mutex Callback::callback_mutex waiting for lock > 100ms"), and a thread can
    hold that mutex while it waits for the GIL. With 0.5 ms a waiting thread gets the GIL 10× sooner
    than at the default 5 ms. It did not prevent the abort with 20 chargers under load in the bridge
    process (`make bench`): that is why links run in worker processes by default
    (`adapters.iec104_remote`); this is for `iec104_links_per_process = 0` and for the workers.
    """
    if sys.getswitchinterval() > C104_SWITCH_INTERVAL:
        sys.setswitchinterval(C104_SWITCH_INTERVAL)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    watchdog_interval: float = 2.0
    mute_grace: float = 5.0
    silence_limit: float = 60.0
    tick_rate_ms: int = 100
    handoff_delay: float = 0.005
    # How long c104 itself blocks in `transmit` for a direct command (see the module rules, Commands).
    c104_direct_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class _Failed:
    """A callback caught an exception (logged on the loop)."""

    where: str
    error: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A command's outcome, logged on the loop."""

    command: Send104Command
    positive: bool
    detail: str


@dataclass(slots=True, eq=False)
class _Flight:
    """A command on its way: resolved once, by c104's answer or by the confirmation frames seen."""

    command: Send104Command
    started: float
    confirmations: int = 0
    done: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set on the loop once done


def _wire_time(recorded: datetime.datetime | None, zone: zoneinfo.ZoneInfo) -> float | None:
    """A received time tag's instant: c104's naive local time → the wire fields → read in `zone`."""
    if recorded is None:
        return None
    wire = recorded.astimezone(_UTC)  # a naive time is taken as local, which is how c104 made it
    return wire.replace(tzinfo=zone).timestamp()


def _plain(value: Any) -> bool | int | float | None:
    kind = type(value)
    if kind is bool or kind is float or kind is int:
        return value  # type: ignore[no-any-return]
    if kind is c104.Double:
        return int(value.value)
    if kind is c104.Int16 or kind is c104.Int7:
        return int(value)
    if kind is c104.NormalizedFloat:
        return float(value)
    return None


def _flags(quality: Any) -> frozenset[str]:
    if quality is None or quality.is_good():
        return _NO_FLAGS
    names = (
        _COUNTER_QUALITY_NAMES if isinstance(quality, c104.BinaryCounterQuality) else _QUALITY_NAMES
    )
    kind = type(quality)
    return frozenset(name for name in names if getattr(kind, name) in quality)


class Iec104Link:
    """The 104 connection to one charger, for as long as `run()` runs."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        common_address: int,
        table: CompiledTable,
        consumer: Callable[[list[LinkEvent]], None],
        log: Any,
        settings: LinkSettings | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.common_address = common_address
        self.table = table
        self.settings = settings or LinkSettings()
        self._consumer = consumer
        self._log = log
        self._zone = zoneinfo.ZoneInfo(table.station.time_zone)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: collections.deque[LinkEvent | _Failed | _Outcome] = collections.deque()
        self._scheduled = False
        self._client: Any = None
        self._connection: Any = None
        self._types: dict[int, str] = {}
        self._controls: dict[int, Any] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._state: Any = c104.ConnectionState.CLOSED
        self._state_since = time.monotonic()
        self._up = False
        self._last_data = 0.0
        self._last_gi = 0.0
        self._next_gi: float | None = None
        self._next_ci: float | None = None
        self._flights: dict[int, _Flight] = {}  # IOA → the command waiting for its confirmation
        self._ioa_locks: dict[int, asyncio.Lock] = {}
        self._expects_act_term = table.station.expects_act_term
        self._clock_skip_logged = False
        self.received = 0  # point updates handed to the loop, for metrics and the benchmark
        self.callback_failures = 0

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and keep the link up until cancelled; then stop the client."""
        self._loop = asyncio.get_running_loop()
        address = await self._resolve_host()
        await blocking(self._open, address)
        self._log.info("iec104.connecting", host=self.host, address=address, port=self.port)
        try:
            await self._supervise()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.shield(blocking(self._close))
            if self._up:
                self._up = False
                self._deliver([LinkDown("bridge stopping")])

    async def _resolve_host(self) -> str:
        """c104 dials IPv4 addresses only: a host name is resolved first (retried until it works)."""
        loop = asyncio.get_running_loop()
        delay = 1.0
        while True:
            try:
                found = await loop.getaddrinfo(
                    self.host, self.port, family=socket.AF_INET, type=socket.SOCK_STREAM
                )
                return str(found[0][4][0])
            except OSError as exc:
                self._log.warning("iec104.resolve_failed", host=self.host, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    def _open(self, address: str) -> None:
        timeout_ms = int(self._c104_timeout() * 1000)
        client = c104.Client(tick_rate_ms=self.settings.tick_rate_ms, command_timeout_ms=timeout_ms)
        client.on_new_point(callable=self._on_new_point)
        connection = client.add_connection(ip=address, port=self.port, init=c104.Init.MUTED)
        if connection is None:
            raise RuntimeError(f"c104 refused a connection to {address}:{self.port}")
        connection.on_state_change(callable=self._on_state)
        connection.on_unexpected_message(callable=self._on_unexpected)
        station = connection.add_station(common_address=self.common_address)
        for rule in self.table.monitoring.values():
            point = station.add_point(io_address=rule.ioa, type=getattr(c104.Type, rule.type_id))
            if point is not None:
                point.on_receive(callable=self._on_point)
                self._types[rule.ioa] = str(rule.type_id)
        for control in self.table.controls.values():
            if control.type_id not in _SENDABLE:
                continue  # C_RP_NA_1: c104 2.2.1 cannot send it; such commands fail truthfully
            select = control.mode == "select-execute"
            mode = c104.CommandMode.SELECT_AND_EXECUTE if select else c104.CommandMode.DIRECT
            point = station.add_point(
                io_address=control.ioa, type=getattr(c104.Type, control.type_id), command_mode=mode
            )
            if point is not None:
                self._controls[control.ioa] = point
        connection.on_receive_raw(callable=self._on_raw)
        self._client = client
        self._connection = connection
        client.start()

    def _c104_timeout(self) -> float:
        """c104's own wait in `transmit`: the table's command timeout where a command selects before
        it executes (c104 sends the execute only after the select's confirmation), else shorter."""
        timeout = self.table.station.command_timeout
        if any(control.mode == "select-execute" for control in self.table.controls.values()):
            return timeout
        return min(timeout, self.settings.c104_direct_timeout)

    def _close(self) -> None:
        if self._client is not None:
            self._client.stop()

    # --- c104 callbacks (foreign threads: copy, hand off, never raise) ----------------------------

    def _post(self, event: LinkEvent | _Failed | _Outcome) -> None:
        self._inbox.append(event)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._arm)

    def _on_point(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        try:  # the hot path: about 5 µs of GIL per point
            info = point.info
            ioa = point.io_address
            type_name = self._types[ioa]
            quality = info.quality
            flags = _NO_FLAGS if quality.is_good() else _flags(quality)
            stamp = _wire_time(info.recorded_at, self._zone) if type_name in _TAGGED else None
            self._last_data = time.monotonic()
            self.received += 1
            self._inbox.append(PointUpdate(ioa, type_name, _plain(info.value), flags, stamp))
            if not self._scheduled and self._loop is not None:
                self._scheduled = True
                self._loop.call_soon_threadsafe(self._arm)
        except Exception as exc:  # noqa: BLE001 - an escaping exception removes the callback
            self._callback_failed("on_receive", exc)
        return c104.ResponseState.SUCCESS

    def _on_unexpected(
        self, connection: c104.Connection, message: c104.IncomingMessage, cause: c104.Umc
    ) -> None:
        try:
            self._last_data = time.monotonic()
            type_name = _TYPE_NAMES.get(message.type, "")
            if not type_name.startswith("M_"):
                return  # confirmations of our own commands and interrogations
            message.first()
            while message.next():
                info = message.info
                self.received += 1
                self._post(
                    PointUpdate(
                        message.io_address,
                        type_name,
                        _plain(info.value),
                        _flags(info.quality),
                        _wire_time(info.recorded_at, self._zone),
                    )
                )
        except Exception as exc:  # noqa: BLE001
            self._callback_failed("on_unexpected_message", exc)

    def _on_new_point(
        self, client: c104.Client, station: c104.Station, io_address: int, point_type: c104.Type
    ) -> None:
        # Registered so that c104 reports unknown points through on_unexpected_message (it does not
        # without this callback); the core reports them, once.
        try:
            self._last_data = time.monotonic()
        except Exception as exc:  # noqa: BLE001
            self._callback_failed("on_new_point", exc)

    def _on_state(self, connection: c104.Connection, state: c104.ConnectionState) -> None:
        try:
            self._state = state
            self._state_since = time.monotonic()
            if state == c104.ConnectionState.OPEN_MUTED:
                connection.unmute()
            elif state == c104.ConnectionState.OPEN:
                self._post(LinkUp())
            else:
                self._post(LinkDown(state.name))
        except Exception as exc:  # noqa: BLE001
            self._callback_failed("on_state_change", exc)

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        try:
            flights = self._flights
            if not flights:
                return
            # APCI (6 bytes), type id, VSQ, COT (2), common address (2), first IOA (3)
            if len(data) < 15 or data[0] != 0x68 or data[2] & 1:
                return
            flight = flights.get(data[12] | data[13] << 8 | data[14] << 16)
            if flight is None or data[6] != _TYPE_CODES.get(str(flight.command.type_id)):
                return
            cause, negative = data[8] & 0x3F, bool(data[8] & _NEGATIVE)
            if negative and cause in (_ACT_CON, _ACT_TERM):
                self._resolve(flight, False, "negative confirmation")
            elif cause == _ACT_CON:
                flight.confirmations += 1
                needed = 2 if flight.command.select else 1  # the select's ACT_CON comes first
                if flight.confirmations >= needed and not self._expects_act_term:
                    self._resolve(flight, True, "")
            elif cause == _ACT_TERM and flight.confirmations:
                self._resolve(flight, True, "")
            elif cause >= _UNKNOWN_TYPE:
                self._resolve(flight, False, f"refused by the charger (cause {cause})")
        except Exception as exc:  # noqa: BLE001
            self._callback_failed("on_receive_raw", exc)

    def _callback_failed(self, where: str, exc: Exception) -> None:
        try:
            self.callback_failures += 1
            self._post(_Failed(where, repr(exc)))
        except Exception:  # noqa: BLE001, S110 - the loop is gone; nothing left to tell
            pass

    # --- on the loop -------------------------------------------------------------------------------

    def _arm(self) -> None:
        """On the loop: drain after `handoff_delay`, so one wake-up carries every update until then."""
        if self._loop is not None:
            self._loop.call_later(self.settings.handoff_delay, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        batch: list[LinkEvent] = []
        inbox = self._inbox
        while inbox:
            event = inbox.popleft()
            if isinstance(event, _Failed):
                self._log.error("iec104.callback_failed", where=event.where, error=event.error)
                continue
            if isinstance(event, _Outcome):
                command = event.command
                self._log.info(
                    "iec104.command",
                    ioa=f"0x{command.ioa:04X}",
                    type=str(command.type_id),
                    value=command.value,
                    purpose=command.purpose,
                    positive=event.positive,
                    detail=event.detail,
                )
                continue
            if isinstance(event, LinkUp):
                if self._up:
                    continue
                self._up = True
                self._log.info("iec104.link_up")
                self._spawn(self._after_connect())
            elif isinstance(event, LinkDown):
                if not self._up:
                    continue
                self._up = False
                self._log.warning("iec104.link_down", state=event.reason)
            batch.append(event)
        if batch:
            self._deliver(batch)

    def _deliver(self, batch: list[LinkEvent]) -> None:
        try:
            self._consumer(batch)
        except Exception:  # noqa: BLE001 - the consumer's bug must not stop the link
            self._log.exception("iec104.consumer_failed")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def is_up(self) -> bool:
        return self._up

    # --- requests from the core ---------------------------------------------------------------------

    def command(self, command: Send104Command) -> None:
        """Send `command`; its CommandConfirmed arrives through the consumer."""
        self._spawn(self._command(command))

    def interrogate(self, counters: bool) -> None:
        self._spawn(self._interrogate(counters))

    async def _command(self, command: Send104Command) -> None:
        flight = _Flight(command, time.monotonic())
        loop = asyncio.get_running_loop()
        try:
            lock = self._ioa_locks.setdefault(command.ioa, asyncio.Lock())
            async with lock:  # one command per IOA at a time; other IOAs go in parallel
                if command.deadline is not None and loop.time() > command.deadline:
                    self._resolve(
                        flight,
                        False,
                        "not sent: an earlier command to this point held it until after the CSMS"
                        " was answered",
                    )
                    return
                if not self._up or self._connection is None:
                    self._resolve(flight, False, "the 104 link is down")
                    return
                flight.started = time.monotonic()
                self._flights[command.ioa] = flight
                try:
                    positive, timed_out, problem = await blocking(self._transmit, command)
                    if timed_out and not flight.done:
                        # c104 stopped waiting (its own timeout may be shorter than the table's):
                        # the confirmation frames watched here still decide, until the table's.
                        timeout = self.table.station.command_timeout
                        left = timeout - (time.monotonic() - flight.started)
                        if left > 0:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(flight.settled.wait(), left)
                finally:
                    self._flights.pop(command.ioa, None)
                if problem:
                    self._resolve(flight, False, problem)
                elif positive:
                    self._resolve(flight, True, "")
                elif timed_out:
                    timeout = self.table.station.command_timeout
                    self._resolve(flight, False, f"no confirmation within {timeout:g} s")
                else:
                    self._resolve(flight, False, "negative confirmation")
        except Exception as exc:  # noqa: BLE001 - answered negatively, never lost
            self._resolve(flight, False, f"c104 failed: {exc!r}")
        finally:
            self._resolve(flight, False, "the bridge stopped before the charger answered")

    def _resolve(self, flight: _Flight, positive: bool, detail: str) -> None:
        """The command's outcome, once: the first of c104's answer and the frames watched wins."""
        with flight.guard:
            if flight.done:
                return
            flight.done = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(flight.settled.set)
        command = flight.command
        self._post(CommandConfirmed(command.command_id, command.ioa, positive, detail))
        self._post(_Outcome(command, positive, detail))

    def _transmit(self, command: Send104Command) -> tuple[bool, bool, str]:
        """(confirmed, c104 stopped waiting, why it could not be sent at all)."""
        point = self._controls.get(command.ioa)
        if point is None:
            return False, False, f"c104 cannot send {command.type_id} (no such command point)"
        type_id = str(command.type_id)
        qualifier = _QOC.get(command.qualifier, c104.Qoc.NONE)
        if type_id == "C_SC_NA_1":
            point.info = c104.SingleCmd(on=bool(command.value), qualifier=qualifier)
        elif type_id == "C_DC_NA_1":
            state = c104.Double.ON if command.value else c104.Double.OFF
            point.info = c104.DoubleCmd(state=state, qualifier=qualifier)
        elif type_id == "C_SE_NC_1":
            point.value = float(command.value)
        elif type_id == "C_SE_NB_1":
            point.value = c104.Int16(int(command.value))
        else:
            point.value = c104.NormalizedFloat(float(command.value))
        mode = c104.CommandMode.SELECT_AND_EXECUTE if command.select else c104.CommandMode.DIRECT
        if point.command_mode != mode:
            point.command_mode = mode
        started = time.monotonic()
        if point.transmit(cause=c104.Cot.ACTIVATION):
            return True, False, ""
        return False, time.monotonic() - started >= self._c104_timeout() * 0.9, ""

    async def _interrogate(self, counters: bool) -> None:
        async with self._lock:
            if not self._up or self._connection is None:
                return
            if not counters:
                self._last_gi = time.monotonic()
            try:
                await blocking(self._interrogation, counters)
            except Exception as exc:  # noqa: BLE001
                self._log.warning("iec104.interrogation_failed", counters=counters, error=repr(exc))

    def _interrogation(self, counters: bool) -> bool:
        connection = self._connection
        if counters:
            return bool(
                connection.counter_interrogation(
                    common_address=self.common_address, wait_for_response=False
                )
            )
        return bool(
            connection.interrogation(common_address=self.common_address, wait_for_response=False)
        )

    async def _after_connect(self) -> None:
        station = self.table.station
        if station.clock_sync:
            await self._clock_sync()
        await self._interrogate(False)
        await self._interrogate(True)
        now = time.monotonic()
        gi = station.general_interrogation_interval
        ci = station.counter_interrogation_interval
        self._next_gi = now + gi if gi > 0 else None
        self._next_ci = now + ci if ci > 0 else None

    async def _clock_sync(self) -> None:
        offset = datetime.datetime.now(self._zone).utcoffset()
        if offset:
            if not self._clock_skip_logged:
                self._clock_skip_logged = True
                self._log.warning(
                    "iec104.clock_sync_skipped",
                    time_zone=str(self._zone),
                    reason="c104 sends UTC only; the charger's clock is left alone",
                )
            return
        async with self._lock:
            if self._up and self._connection is not None:
                with contextlib.suppress(Exception):  # a NACK must not fail the session
                    await blocking(self._sync_clock)

    def _sync_clock(self) -> bool:
        return bool(
            self._connection.clock_sync(common_address=self.common_address, wait_for_response=False)
        )

    # --- supervision ---------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.watchdog_interval)
            now = time.monotonic()
            state = self._state
            muted_for = now - self._state_since
            if state == c104.ConnectionState.OPEN_MUTED and muted_for > settings.mute_grace:
                if muted_for > 3 * settings.mute_grace:
                    await self._reconnect("still muted")
                else:
                    await blocking(self._unmute)
                continue
            if not self._up:
                continue
            silent = self._last_gi and self._last_data < self._last_gi
            if silent and now - self._last_gi > settings.silence_limit:
                await self._reconnect("no data after a general interrogation")
                continue
            if self._next_gi is not None and now >= self._next_gi:
                self._next_gi = now + self.table.station.general_interrogation_interval
                await self._interrogate(False)
            if self._next_ci is not None and now >= self._next_ci:
                self._next_ci = now + self.table.station.counter_interrogation_interval
                await self._interrogate(True)

    def _unmute(self) -> None:
        if self._connection is not None:
            self._connection.unmute()

    async def _reconnect(self, why: str) -> None:
        self._log.warning("iec104.watchdog_reconnect", reason=why)
        self._last_gi = 0.0
        async with self._lock:
            await blocking(self._reopen)

    def _reopen(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.disconnect()
            connection.connect()
