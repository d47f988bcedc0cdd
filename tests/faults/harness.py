"""Fault injection: the real bridge process between an `ocpp` 2.0.1 CSMS, `ocpp` 1.6J chargers and
IEC 104 chargers (c104 `Server`s).

Pieces (every server on 127.0.0.1, every wait bounded, every process stopped in `finally`)
- `BridgeProcess`: `ocpp-bridge run --config FILE` as a child process, its JSON log lines in one file per
  incarnation; started, SIGKILLed and restarted on the same ports and the same store.
- `FaultCsms`: `tests.peers.Csms` (the `ocpp` package) that also records every CALL it received (raw
  frame) and the moment each of its CALLRESULTs was written; stopped and started again on its port.
- `QueuedCharger`: a 1.6J charger (`tests.peers.Charger16`) that behaves like a real one across link
  losses: its transaction messages (StartTransaction, MeterValues, StopTransaction) wait in its own
  queue and go one at a time; the head leaves the queue only on its .conf and is resent unchanged after a
  reconnect (the same StartTransaction when its .conf was lost: 1.6 idempotency). StatusNotifications are
  best effort. It reconnects with a short random back-off whenever the bridge is gone; it boots once.
  Given several bridge replicas' addresses, it moves to the next one on every connection failure or
  link loss (a charger behind a load balancer). `tests.faults.charger201.FaultCharger201` is its 2.0.1
  sibling (pass-through stations).
- `FaultCharger104` (`tests.faults.charger104`): a 104 charger per mappings/gb-dc-charger.yaml, a
  station with protocol "iec104" in the bridge's configuration; its sessions (plug in, charging rises
  by itself or after a RequestStartTransaction from the CSMS, the energy counter grows, charging falls
  by itself or after a RequestStopTransaction, unplug) follow the rules in that module's docstring.
- `inject_faults`: seeded `random.Random` faults at random moments, some of them right after a charger
  sent a transaction message or right after the CSMS received a TransactionEvent: SIGKILL of the bridge
  and restart, CSMS outages (stop, restart after a few more faults), CALLERRORs from the CSMS for the
  next one or two TransactionEvents (fewer than MessageAttempts: retried, E13), charger links closed,
  reset (TCP abort) or left half-open (the charger stops reading and opens a new connection), and 104
  link drops: the 104 charger's server stops for 0.1–1.2 s, points may change meanwhile (the counter
  grows, the session ends, the vehicle leaves), and it starts again on the same port (the first drop
  of every run waits for a charging session and ends it while the link is down). Bridge kills and CSMS
  outages strike the 104 stations as much as the 1.6 ones (a kill drops their 104 links too).
- `check` and `check104`: the oracles at the CSMS, see their docstrings. The 104 rule for the end
  register: the Ended's Transaction.End is the charger's counter × 10 Wh at the moment charging fell,
  whatever happened in between: the charger's counter stands still from the fall until the next
  session charges, and that one does not begin before the CSMS has the Ended, so the counter the
  bridge reads when the link returns (or the restarted bridge reads) is the one at the fall.

`run_faults` puts them together and returns a `FaultRun`: the problems found (empty when all is well)
and the statistics of the run. The seed is in every description of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp.charge_point import ChargePoint as BaseChargePoint
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import call as call16
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from adapters.store_open import open_store
from tests.faults.card104 import MAPPING_NAME as CARD_MAPPING
from tests.faults.card104 import CardSession, FaultCardCharger, workload_card
from tests.faults.charger104 import MAPPING, FaultCharger104, Session104, workload104
from tests.peers import Charger16, Csms, CsmsChargePoint, CsmsSession, FrameOracle, Recording
from tests.peers import now_iso as _now_iso

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))
SEED_ENV = "FAULT_SEED"
# FAULT_TRACE_DIR=<folder>: the bridge writes its per-station traces there ([bridge] trace_dir; read
# them with `ocpp-bridge trace`); off by default (tracing costs time and so changes a seed's timing).
TRACE_ENV = "FAULT_TRACE_DIR"
CHARGER_CALL_TIMEOUT = 10.0
MESSAGE_ATTEMPTS = 3
# A message the charger sent this long after an outage began, and whose .conf came before the CSMS was
# back, was queued by a bridge that knew the CSMS was gone: it must carry offline=true (E04.FR.03).
OFFLINE_MARGIN = 1.0
# customData.vendorId of the FaultCsms's tagged TransactionEvent answers (`FaultCsms.tag_answers`)
ANSWER_VENDOR = "fault-csms"
# Events the bridge must never log in these runs.
BAD_EVENTS = frozenset(
    {
        "core.failed",
        "south.session_failed",
        "outbox-gave-up",
        "driver.send_without_connection",
        "translation-failed",
        "south.replace_timeout",
    }
)


def seed_from_env() -> int:
    text = os.environ.get(SEED_ENV)
    return int(text) if text else random.SystemRandom().randrange(2**32)


def free_port(rng: random.Random | None = None) -> int:
    """A free port on 127.0.0.1 below the ephemeral range: servers here stop and start again on the
    same port, and a port in the ephemeral range could meanwhile become some client's source port."""
    rng = rng or random.Random()
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = rng.randrange(10_000, max(10_001, low))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


# --- taps: let the fault injector strike right after something happened --------------------------


class Taps:
    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[None]]] = defaultdict(list)

    def notify(self, kind: str) -> None:
        for future in self._waiting.pop(kind, []):
            if not future.done():
                future.set_result(None)

    async def wait(self, kind: str, timeout: float) -> bool:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[kind].append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True


# --- the bridge process ----------------------------------------------------------------------------


def bridge_toml(
    *,
    store: Path | str,
    csms_url: str,
    south_port: int,
    stations: Iterable[str],
    stations201: Iterable[str] = (),
    south_ping: float = 1.0,
    csms_ping: float = 5.0,
    iec104: Iterable[tuple[str, int]] = (),
    iec104_listen: int | None = None,
    cards: Iterable[tuple[str, str]] = (),
    trace_dir: Path | None = None,
) -> str:
    lines = [
        "[bridge]",
        f'store = "{store}"',
        *([f'trace_dir = "{trace_dir}"'] if trace_dir is not None else []),
        'health = ""',
        'log_format = "json"',
        'log_level = "info"',
        f"outbox_max_bytes = {1 << 30}",  # never full: E04.FR.08 may drop nothing here
        "shutdown_timeout = 5",
        "[csms]",
        f'url = "{csms_url}"',
        "connect_timeout = 3",
        "call_timeout = 10",
        f"ping_interval = {csms_ping}",
        f"ping_timeout = {csms_ping}",
        f"message_attempts = {MESSAGE_ATTEMPTS}",
        "message_attempt_interval = 0.5",
        "retry_backoff_wait_minimum = 0.05",
        "retry_backoff_random_range = 0.1",
        "retry_backoff_repeat_times = 2",
        "[south]",
        f'listen = "127.0.0.1:{south_port}"',
        "call_timeout = 10",
        f"ping_interval = {south_ping}",
        f"ping_timeout = {south_ping}",
    ]
    if iec104_listen is not None:
        lines.append(f'iec104_listen = "127.0.0.1:{iec104_listen}"')
    for station_id in stations:
        lines += [
            "[[stations]]",
            f'id = "{station_id}"',
            'protocol = "ocpp1.6"',
            "offline_authorize = true",
        ]
    for station_id in stations201:  # pass-through (bridge.stations.passthrough)
        lines += ["[[stations]]", f'id = "{station_id}"', 'protocol = "ocpp2.0.1"']
    for station_id, port in iec104:
        lines += [
            "[[stations]]",
            f'id = "{station_id}"',
            'protocol = "iec104"',
            'host = "127.0.0.1"',
            f"port = {port}",
            "connectors = 1",
            f'mapping = "{MAPPING}"',
        ]
    for station_id, serial in cards:
        lines += [
            "[[stations]]",
            f'id = "{station_id}"',
            'protocol = "iec104"',
            'dial = "in"',
            f'registration_id = "{serial}"',
            "connectors = 1",
            f'mapping = "{CARD_MAPPING}"',
        ]
    return "\n".join(lines) + "\n"


# The test's own environment minus what would change the bridge: tracing allocations (PYTHONTRACEMALLOC,
# to debug the test process) or OCPP_BRIDGE_* overrides meant for another bridge.
_CHILD_ENV = {
    k: v
    for k, v in os.environ.items()
    if k != "PYTHONTRACEMALLOC" and not k.startswith("OCPP_BRIDGE_")
}


class BridgeProcess:
    """`ocpp-bridge run --config FILE` as a child process; one log file per incarnation."""

    def __init__(self, config: Path, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.process: asyncio.subprocess.Process | None = None
        self.incarnation = 0
        self.kills: list[float] = []  # monotonic times of every SIGKILL
        self.exit_codes: list[int] = []

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_path(self, incarnation: int) -> Path:
        return self.log_dir / f"bridge-{incarnation}.log"

    async def start(self, timeout: float = 30.0) -> None:
        assert not self.running
        self.incarnation += 1
        path = self.log_path(self.incarnation)
        with path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                EXECUTABLE,
                "run",
                "--config",
                str(self.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=_CHILD_ENV,
            )
        async with asyncio.timeout(timeout):
            while b'"south.listening"' not in path.read_bytes():
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"the bridge exited with {self.process.returncode}:"
                        f" {path.read_text()[-2000:]}"
                    )
                await asyncio.sleep(0.02)

    async def kill(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGKILL)
        self.kills.append(time.monotonic())
        async with asyncio.timeout(10):
            self.exit_codes.append(await process.wait())

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not end within `timeout`. The exit status of SIGTERM."""
        process = self.process
        if process is None or process.returncode is not None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            code = await process.wait()
        self.exit_codes.append(code)
        return code

    def records(self) -> list[dict[str, Any]]:
        """Every log line of every incarnation; a line that is not JSON becomes {"event": "not-json"}."""
        records: list[dict[str, Any]] = []
        for number in range(1, self.incarnation + 1):
            path = self.log_path(number)
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {"event": "not-json", "line": line[:300]}
                if not isinstance(record, dict):
                    record = {"event": "not-json", "line": line[:300]}
                record["incarnation"] = number
                records.append(record)
        return records


# --- the CSMS --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One CALL the CSMS read, as it came (camelCase payload)."""

    at: float
    session: int
    station_id: str
    message_id: str
    action: str
    payload: dict[str, Any]


class _Tracked(Recording):
    def __init__(self, connection: Any, oracle: FrameOracle, csms: FaultCsms, session: int) -> None:
        super().__init__(connection, oracle)
        self._csms = csms
        self._session = session
        self._station_id = connection.request.path.rsplit("/", 1)[-1]
        self.session = session
        self.last_call = ""  # the message id of the CALL being handled (the `ocpp` package routes
        # one received message at a time)

    async def recv(self) -> str | bytes:
        raw = await super().recv()
        with contextlib.suppress(ValueError):
            frame = json.loads(raw)
            if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
                self.last_call = frame[1]
                self._csms.received.append(
                    Received(
                        time.monotonic(),
                        self._session,
                        self._station_id,
                        frame[1],
                        frame[2],
                        frame[3],
                    )
                )
                if frame[2] == "TransactionEvent":
                    self._csms.taps.notify("csms-received")
                    self._csms.index(self._station_id, frame[3])
        return raw

    async def send(self, raw: str) -> None:
        await super().send(raw)
        frame = json.loads(raw)
        if frame[0] == 3:  # written to the connection: the bridge will read it unless it dies first
            self._csms.acked[(self._session, frame[1])] = time.monotonic()


class _RefusingChargePoint(CsmsChargePoint):
    """Refuses TransactionEvents (CALLERROR InternalError) while the CSMS has refusals left."""

    csms: FaultCsms

    @on("TransactionEvent")
    async def on_transaction_event(self, **payload: Any) -> Any:
        key = (self.id, payload["transaction_info"]["transaction_id"], payload["seq_no"])
        # Never as often as MessageAttempts for one event: that would be a loss the spec allows.
        if self.csms.refusals > 0 and self.csms.refused_by_event[key] < MESSAGE_ATTEMPTS - 1:
            self.csms.refusals -= 1
            self.csms.refused += 1
            self.csms.refused_by_event[key] += 1
            raise RuntimeError("fault injection: the CSMS refuses this TransactionEvent")
        answer = await super().on_transaction_event(**payload)
        if self.id in self.csms.tag_answers:
            # which CALL this answer is for, as the CSMS read it: a pass-through bridge forwards the
            # answer's payload untouched, so the charger can tell which copy the CSMS answered
            wire: _Tracked = getattr(self, "_connection")  # noqa: B009 (the ocpp package's)
            answer.custom_data = {
                "vendor_id": ANSWER_VENDOR,
                "answer": f"{wire.session}/{wire.last_call}",
            }
        return answer


class FaultCsms(Csms):
    """A 2.0.1 CSMS (the `ocpp` package) that records raw CALLs and when each answer was written,
    and answers the next `refusals` TransactionEvents with a CALLERROR."""

    def __init__(self, taps: Taps) -> None:
        super().__init__()
        self.taps = taps
        self.received: list[Received] = []
        self.acked: dict[tuple[int, str], float] = {}
        self.outages: list[tuple[float, float | None]] = []  # (stopped, started again)
        self.refusals = 0
        self.refused = 0
        self.refused_by_event: Counter[tuple[str, str, int]] = Counter()
        # stations whose TransactionEvent answers carry customData {vendorId: ANSWER_VENDOR, answer:
        # "<session>/<message id of the CALL answered>"} (the 2.0.1 pass-through chargers)
        self.tag_answers: set[str] = set()
        self.ended: dict[str, set[float | None]] = {}  # station → Transaction.End registers seen
        # station → Transaction.Begin register → the transactionIds whose Started carried it
        self.begins: dict[str, dict[float | None, list[str]]] = {}
        self.ended_ids: set[tuple[str, str]] = set()  # (station, transactionId) of every Ended
        self.closes: dict[int, tuple[float, int | None, str]] = {}  # session → (when, code, reason)
        self._sessions = 0
        self._sessions_of: dict[int, int] = {}

    @property
    def up(self) -> bool:
        return self.server is not None

    def index(self, station_id: str, payload: Any) -> None:
        """What the chargers' workloads wait for: the Started and Ended events received."""
        with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
            transaction_id = payload["transactionInfo"]["transactionId"]
            if payload.get("eventType") == "Started":
                ids = self.begins.setdefault(station_id, {}).setdefault(
                    _register(payload, "Transaction.Begin"), []
                )
                if transaction_id not in ids:
                    ids.append(transaction_id)
            elif payload.get("eventType") == "Ended":
                register = _register(payload, "Transaction.End")
                self.ended.setdefault(station_id, set()).add(register)
                self.ended_ids.add((station_id, transaction_id))

    async def stop(self) -> None:
        if self.server is None:
            return
        await super().stop()
        self.server = None
        self.outages.append((time.monotonic(), None))

    async def restart(self) -> None:
        if self.server is not None:
            return
        self.outages[-1] = (self.outages[-1][0], time.monotonic())
        async with asyncio.timeout(10):
            while True:
                try:
                    await self.start(port=self.port)
                    return
                except OSError:  # the port is not free yet
                    await asyncio.sleep(0.05)

    async def _handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rsplit("/", 1)[-1]
        self._sessions += 1
        oracle = FrameOracle()
        charge_point = _RefusingChargePoint(
            station_id, _Tracked(connection, oracle, self, self._sessions), self
        )
        session = CsmsSession(station_id, connection, charge_point, oracle)
        self._sessions_of[id(session)] = self._sessions
        self.sessions[station_id] = session
        self.history.append(session)
        self.changed.set()
        try:
            await charge_point.start()
        except Exception:  # the connection ended
            pass
        finally:
            self.closes[self._sessions_of[id(session)]] = (
                time.monotonic(),
                connection.close_code,
                connection.close_reason,
            )
            session.closed.set()
            self.changed.set()


# --- the 1.6J charger with its own persistent queue ---------------------------------------------


@dataclass(eq=False)
class Txn:
    """One transaction as the charger knows it."""

    index: int
    id_tag: str
    meter_start: int
    meter_values: list[int] = field(default_factory=list)
    meter_stop: int | None = None
    local_id: int | None = None  # from the StartTransaction.conf
    messages: list[Outgoing] = field(default_factory=list)


@dataclass(eq=False)
class Outgoing:
    action: str
    fields: dict[str, Any]  # snake_case arguments of the `ocpp` call class, fixed when queued
    txn: Txn | None = None
    durable: bool = True  # transaction messages stay queued until their .conf; statuses do not
    register: int | None = None  # the Wh value this message reports
    sent: list[float] = field(default_factory=list)  # every attempt
    conf_at: float | None = None

    def request(self) -> Any:
        fields = dict(self.fields)
        if self.txn is not None and self.action != "StartTransaction":
            assert self.txn.local_id is not None
            fields["transaction_id"] = self.txn.local_id
        return getattr(call16, self.action)(**fields)


class _LinkLost(Exception):
    pass


class QueuedCharger:
    """A 1.6J charger that keeps its transaction messages until the bridge answered them.

    `url`: the bridge's OCPP address, or every replica's (as a charger behind a load balancer sees
    them): it then starts at a random one, stays with a replica while it can and moves to the next one
    whenever its connection fails, its link is lost or a call goes unanswered (`stats["moved"]`)."""

    prefix = "FI"
    subprotocol = "ocpp1.6"
    oracle_version = "1.6"

    def __init__(
        self,
        number: int,
        url: str | list[str],
        rng: random.Random,
        taps: Taps,
        *,
        open_timeout: float = 5.0,
    ) -> None:
        self.number = number
        self.station_id = f"{self.prefix}-{number}"
        bases = [url] if isinstance(url, str) else list(url)
        self.urls = [f"{u}/{self.station_id}" for u in bases]
        self._at = rng.randrange(len(bases)) if len(bases) > 1 else 0
        self.url = self.urls[self._at]
        self.open_timeout = open_timeout
        self.rng = rng
        self.taps = taps
        self.register = 1_000_000 * number
        self.queue: deque[Outgoing] = deque()
        self.txns: list[Txn] = []
        self.oracles: list[FrameOracle] = []
        self.problems: list[str] = []
        self.stats: Counter[str] = Counter()
        self.booted = False
        self.connection: ClientConnection | None = None
        self._abandoned: list[ClientConnection] = []
        self._wake = asyncio.Event()
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what the charger does (its user plugs in, charges, leaves) --------------------------------

    def _stamp(self, unsynced: bool) -> str:
        if unsynced:  # a clock that lost its time after a power cut: the bridge must not forward it
            return f"1970-01-01T00:{self.rng.randrange(60):02d}:{self.rng.randrange(60):02d}Z"
        return _now_iso()

    def _queue(self, message: Outgoing) -> None:
        self.queue.append(message)
        self._wake.set()

    def status(self, status: str) -> None:
        """Best effort, as real chargers do: only while connected, never resent."""
        if self.connection is not None and self._lost is not None and not self._lost.is_set():
            fields = {
                "connector_id": 1,
                "error_code": "NoError",
                "status": status,
                "timestamp": _now_iso(),
            }
            self._queue(Outgoing("StatusNotification", fields, durable=False))

    def begin(self, unsynced: bool = False) -> Txn:
        txn = Txn(len(self.txns), f"T{self.number}X{len(self.txns)}", self.register)
        self.txns.append(txn)
        self.status("Preparing")
        fields = {
            "connector_id": 1,
            "id_tag": txn.id_tag,
            "meter_start": self.register,
            "timestamp": self._stamp(unsynced),
        }
        message = Outgoing("StartTransaction", fields, txn, register=self.register)
        txn.messages.append(message)
        self._queue(message)
        self.status("Charging")
        return txn

    def meter(self, txn: Txn, unsynced: bool = False) -> None:
        self.register += self.rng.randint(1, 5000)
        txn.meter_values.append(self.register)
        sample = {
            "timestamp": self._stamp(unsynced),
            "sampledValue": [
                {
                    "value": str(self.register),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "context": "Sample.Periodic",
                }
            ],
        }
        fields = {"connector_id": 1, "meter_value": [sample]}
        message = Outgoing("MeterValues", fields, txn, register=self.register)
        txn.messages.append(message)
        self._queue(message)

    def end(self, txn: Txn, unsynced: bool = False) -> None:
        self.register += self.rng.randint(1, 5000)
        txn.meter_stop = self.register
        fields = {
            "meter_stop": self.register,
            "timestamp": self._stamp(unsynced),
            "reason": "Local",
            "id_tag": txn.id_tag,
        }
        message = Outgoing("StopTransaction", fields, txn, register=self.register)
        txn.messages.append(message)
        self._queue(message)
        self.status("Finishing")
        self.status("Available")

    async def room(self, limit: int = 25, timeout: float = 600.0) -> None:
        """Wait while more than `limit` messages wait (a charger's queue is finite)."""
        async with asyncio.timeout(timeout):
            while len(self.queue) > limit:
                await asyncio.sleep(0.05)

    # --- faults ----------------------------------------------------------------------------------

    def drop(self, mode: str) -> bool:
        """Lose the link: "close" (a close frame), "abort" (TCP reset) or "half-open" (stop reading,
        never answer again; the bridge must find out by itself). False when not connected."""
        connection, lost = self.connection, self._lost
        if connection is None or lost is None or lost.is_set():
            return False
        if mode == "close":
            asyncio.get_running_loop().create_task(connection.close())
        elif mode == "abort":
            connection.transport.abort()
        elif mode == "half-open":
            connection.transport.pause_reading()
            self._abandoned.append(connection)
        else:
            raise ValueError(mode)
        self.stats[f"drop-{mode}"] += 1
        lost.set()
        return True

    # --- the connection loop ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"charger:{self.station_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for connection in self._abandoned:
            connection.transport.abort()
        self._abandoned.clear()

    @property
    def idle(self) -> bool:
        return not self.queue

    @property
    def replica(self) -> int:
        """The index of the address it uses now (its replica)."""
        return self._at

    def _move(self) -> None:
        """To the next replica's address (none with one address)."""
        if len(self.urls) > 1:
            self._at = (self._at + 1) % len(self.urls)
            self.url = self.urls[self._at]
            self.stats["moved"] += 1

    async def _run(self) -> None:
        while True:
            try:
                connection = await connect(
                    self.url,
                    subprotocols=[self.subprotocol],  # type: ignore[list-item]
                    open_timeout=self.open_timeout,
                    close_timeout=1,
                    ping_interval=None,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                self.stats["connect-failed"] += 1
                self._move()
                await asyncio.sleep(self.rng.uniform(0.05, 0.25))
                continue
            self.stats["connected"] += 1
            try:
                await self._session(connection)
            except _LinkLost:
                pass
            finally:
                self.connection = None
                if connection not in self._abandoned:
                    connection.transport.abort()
            self._move()
            await asyncio.sleep(self.rng.uniform(0.0, 0.1))

    def _charge_point(self, connection: ClientConnection, oracle: FrameOracle) -> Any:
        return Charger16(self.station_id, Recording(connection, oracle))

    async def _session(self, connection: ClientConnection) -> None:
        oracle = FrameOracle(self.oracle_version)
        self.oracles.append(oracle)
        charge_point = self._charge_point(connection, oracle)
        charge_point._response_timeout = CHARGER_CALL_TIMEOUT
        reader = asyncio.create_task(charge_point.start())
        lost = self._lost = asyncio.Event()
        lost_task = asyncio.create_task(lost.wait())
        self.connection = connection
        watched = (reader, lost_task)
        try:
            if not self.booted:
                await self._boot(charge_point, watched)
            while True:
                head = await self._head(watched)
                await self._send(charge_point, head, watched)
        finally:
            lost.set()
            for task in (reader, lost_task):
                task.cancel()
            await asyncio.gather(reader, lost_task, return_exceptions=True)

    async def _head(self, watched: tuple[asyncio.Task[Any], ...]) -> Outgoing:
        while True:
            if any(task.done() for task in watched):
                raise _LinkLost
            if self.queue:
                return self.queue[0]
            self._wake.clear()
            wake = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({wake, *watched}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()

    async def _exchange(
        self, charge_point: BaseChargePoint, request: Any, watched: tuple[asyncio.Task[Any], ...]
    ) -> Any:
        task = asyncio.create_task(charge_point.call(request, suppress=False))
        self.taps.notify("charger-sent")
        self.taps.notify(f"{self.subprotocol}-sent")
        try:
            done, _ = await asyncio.wait({task, *watched}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task not in done:
            raise _LinkLost
        try:
            return task.result()
        except (TimeoutError, ConnectionClosed) as exc:
            self.stats[f"call-{type(exc).__name__}"] += 1
            raise _LinkLost from None

    def _boot_request(self) -> Any:
        """The BootNotification of this charger's OCPP version (one per attempt)."""
        return call16.BootNotification(
            charge_point_vendor="Acme", charge_point_model="Fault-16", firmware_version="1.0"
        )

    async def _boot(
        self, charge_point: BaseChargePoint, watched: tuple[asyncio.Task[Any], ...]
    ) -> None:
        for _ in range(60):
            request = self._boot_request()
            try:
                response = await self._exchange(charge_point, request, watched)
            except OCPPError as exc:
                self.problems.append(f"{self.station_id}: BootNotification refused: {exc!r}")
                raise _LinkLost from None
            if response.status == "Accepted":
                self.booted = True
                return
            self.stats["boot-not-accepted"] += 1
            await asyncio.sleep(0.5)
        raise _LinkLost

    async def _send(
        self, charge_point: BaseChargePoint, head: Outgoing, watched: tuple[asyncio.Task[Any], ...]
    ) -> None:
        if head.sent:
            self.stats["resent"] += 1
            self.stats[f"resent-{head.action}"] += 1
        head.sent.append(time.monotonic())
        try:
            response = await self._exchange(charge_point, head.request(), watched)
        except _LinkLost:
            if not head.durable:
                self.queue.popleft()
            raise
        except OCPPError as exc:
            self.problems.append(f"{self.station_id}: {head.action} answered with {exc!r}")
            self.queue.popleft()
            return
        head.conf_at = time.monotonic()
        self.queue.popleft()
        self.stats[f"conf-{head.action}"] += 1
        if head.action == "StartTransaction":
            assert head.txn is not None
            head.txn.local_id = response.transaction_id
            if response.id_tag_info.get("status") != "Accepted":
                self.problems.append(
                    f"{self.station_id}: StartTransaction answered {response.id_tag_info}"
                )


async def workload(
    charger: QueuedCharger,
    rng: random.Random,
    *,
    transactions: int | None,
    done: asyncio.Event,
    pace: float = 0.08,
    unsynced: float = 0.1,
) -> None:
    """`transactions` transactions one after another (Start, 0–3 MeterValues, Stop), or with None
    until `done`. A counted workload always finishes its count: the faults may all have struck before
    it (the short run's assertion on the number of transactions counts on it)."""
    count = 0
    while count < transactions if transactions is not None else not done.is_set():
        await charger.room()
        txn = charger.begin(unsynced=rng.random() < unsynced)
        for _ in range(rng.randint(0, 3)):
            await asyncio.sleep(rng.uniform(0, pace))
            charger.meter(txn, unsynced=rng.random() < unsynced)
        await asyncio.sleep(rng.uniform(0, pace))
        charger.end(txn, unsynced=rng.random() < unsynced)
        await asyncio.sleep(rng.uniform(0, pace))
        count += 1


# --- faults ----------------------------------------------------------------------------------------

FAULT_KINDS = (
    "kill",
    "csms-outage",
    "csms-error",
    "drop-close",
    "drop-abort",
    "drop-half-open",
    "drop-104",
    "drop-card",
)
FAULT_WEIGHTS = (3, 2, 1, 2, 2, 1, 2, 2)


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def inject_faults(
    rng: random.Random,
    count: int,
    *,
    bridge: BridgeProcess,
    csms: FaultCsms,
    chargers: list[QueuedCharger],
    taps: Taps,
    log: FaultLog,
    chargers104: list[FaultCharger104] | None = None,
    cards: list[FaultCardCharger] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """`count` faults; the first ones cover every kind once, in a random order. A 104 link drop runs
    beside the faults that follow it (the link is down for up to about 1.2 s, then c104's client takes
    up to 1 s to dial again); it is over when this returns. A card charger's drop ("drop-card") closes
    or resets its TCP connection; it dials in again by itself."""
    chargers104 = chargers104 or []
    cards = cards or []
    kinds = [
        k for k in FAULT_KINDS if (k != "drop-104" or chargers104) and (k != "drop-card" or cards)
    ]
    weights = [w for k, w in zip(FAULT_KINDS, FAULT_WEIGHTS, strict=True) if k in kinds]
    plan = list(kinds)
    rng.shuffle(plan)
    drops: list[asyncio.Task[None]] = []
    try:
        await _inject(
            rng,
            count,
            plan,
            kinds,
            weights,
            bridge=bridge,
            csms=csms,
            chargers=chargers,
            chargers104=chargers104,
            cards=cards,
            taps=taps,
            log=log,
            drops=drops,
            progress=progress,
        )
    finally:
        await asyncio.gather(*drops, return_exceptions=True)
    if not csms.up:
        await csms.restart()


async def _inject(
    rng: random.Random,
    count: int,
    plan: list[str],
    kinds: list[str],
    weights: list[int],
    *,
    bridge: BridgeProcess,
    csms: FaultCsms,
    chargers: list[QueuedCharger],
    chargers104: list[FaultCharger104],
    cards: list[FaultCardCharger],
    taps: Taps,
    log: FaultLog,
    drops: list[asyncio.Task[None]],
    progress: Callable[[int], None] | None,
) -> None:
    restart_csms_at: int | None = None
    for step in range(count):
        if restart_csms_at is not None and step >= restart_csms_at:
            await csms.restart()
            restart_csms_at = None
        kind = plan[step] if step < len(plan) else rng.choices(kinds, weights)[0]
        if kind in ("csms-outage", "csms-error") and not csms.up:
            if step < len(plan):  # the plan's faults all happen: end the outage early
                await csms.restart()
                restart_csms_at = None
            else:
                kind = "kill"
        # when: after a random pause, or right after a message went out
        trigger = rng.choice(("pause", "pause", "charger-sent", "csms-received"))
        if trigger == "csms-received" and not csms.up:
            trigger = "charger-sent"
        if trigger == "pause":
            await asyncio.sleep(rng.uniform(0.02, 0.5))
        else:
            if not await taps.wait(trigger, timeout=1.0):
                trigger = "timeout"
            await asyncio.sleep(rng.uniform(0, 0.01))
        log.triggers[trigger] += 1
        if kind == "kill":
            await bridge.kill()
            await asyncio.sleep(rng.uniform(0, 0.3))
            await bridge.start()
        elif kind == "csms-outage":
            await csms.stop()
            restart_csms_at = step + 1 + rng.randint(0, 2)
        elif kind == "csms-error":  # transient: fewer refusals than MessageAttempts (E13 retries)
            csms.refusals = rng.randint(1, MESSAGE_ATTEMPTS - 1)
        elif kind == "drop-104":
            up = [c for c in chargers104 if not c.dropping]
            if up:
                # the first one ends a session while the link is down, in every run
                first = log.counts["drop-104"] == 0
                link = rng.choice(up).drop_link(random.Random(rng.random()), end_session=first)
                drops.append(asyncio.create_task(link))
            else:  # every 104 link is down already: a kill instead
                kind = "kill"
                await bridge.kill()
                await bridge.start()
        elif kind == "drop-card":
            card = await _connected_card(rng, cards, timeout=3.0)
            if card is None or not card.drop(rng.choice(("close", "abort"))):
                kind = "kill"  # no card charger connected: a kill instead
                await bridge.kill()
                await bridge.start()
        else:
            target = await _connected(rng, chargers, timeout=3.0)
            if target is None or not target.drop(kind.removeprefix("drop-")):
                kind = "kill"  # nobody to drop: a kill instead, so every step is a fault
                await bridge.kill()
                await bridge.start()
        log.counts[kind] += 1
        if progress is not None:
            progress(step + 1)


async def _connected(
    rng: random.Random, chargers: list[QueuedCharger], timeout: float
) -> QueuedCharger | None:
    """A charger that is connected now, waiting up to `timeout` for one."""
    deadline = time.monotonic() + timeout
    while True:
        candidates = [c for c in chargers if c.connection is not None]
        if candidates:
            return rng.choice(candidates)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


async def _connected_card(
    rng: random.Random, cards: list[FaultCardCharger], timeout: float
) -> FaultCardCharger | None:
    """A card charger that is connected now, waiting up to `timeout` for one."""
    deadline = time.monotonic() + timeout
    while True:
        candidates = [c for c in cards if c.connection is not None]
        if candidates:
            return rng.choice(candidates)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


# --- the oracle --------------------------------------------------------------------------------------


def _register(payload: dict[str, Any], context: str) -> float | None:
    for meter_value in payload.get("meterValue", []):
        for sample in meter_value.get("sampledValue", []):
            measurand = sample.get("measurand", "Energy.Active.Import.Register")
            if sample.get("context") == context and measurand == "Energy.Active.Import.Register":
                return float(sample["value"])
    return None


def _outage_of(outages: list[tuple[float, float | None]], sent: float, conf: float) -> bool:
    """Whether a message sent at `sent` and answered at `conf` lived inside one CSMS outage."""
    return any(
        start + OFFLINE_MARGIN <= sent and conf <= (end if end is not None else float("inf"))
        for start, end in outages
    )


def check(csms: FaultCsms, chargers: list[QueuedCharger]) -> tuple[list[str], Counter[str]]:
    """The oracle, per station (charger):

    - every (transactionId, seqNo) the CSMS got: all copies identical; a copy after one the CSMS had
      answered is a duplicate unless another bridge process sent it (the one that sent the first was
      SIGKILLed before the answer reached it, or after reading it and before recording it: at-least-
      once is all that is possible then). The process is told by the message id's prefix;
    - per transactionId: seqNo 0..n all present, exactly one Started (seqNo 0) and one Ended (the
      last); first arrivals in charger order (transaction, then seqNo): chronological delivery;
    - every charger transaction has exactly one transactionId at the CSMS and none is left over; its
      Started carries meterStart, its Ended's Transaction.End register equals meterStop, and every
      MeterValues sample arrives in exactly one Updated event (a resent MeterValues is no new sample);
    - events the bridge queued while the CSMS was down carry offline=true;
    - every frame each peer received is valid (FrameOracle), and the chargers were refused nothing.
    """
    problems: list[str] = []
    stats: Counter[str] = Counter()
    for session in csms.history:
        problems += [f"CSMS frame check: {p}" for p in session.oracle.problems]
    for charger in chargers:
        problems += charger.problems
        problems += [
            f"{charger.station_id} frame check: {p}" for o in charger.oracles for p in o.problems
        ]
        problems += _check_station(csms, charger, stats)
    return problems, stats


def _events_of(
    csms: FaultCsms, station: str, stats: Counter[str], problems: list[str]
) -> tuple[list[Received], dict[str, dict[int, dict[str, Any]]]]:
    """The station's TransactionEvents as received, and the first copy of each per (transactionId,
    seqNo); copies that differ, and copies sent again after an answer by the same process, are
    problems."""
    events = [
        r for r in csms.received if r.station_id == station and r.action == "TransactionEvent"
    ]
    copies: dict[tuple[str, int], list[Received]] = defaultdict(list)
    for event in events:
        key = (event.payload["transactionInfo"]["transactionId"], event.payload["seqNo"])
        copies[key].append(event)
    for key, found in copies.items():
        stats["events"] += 1
        if any(c.payload != found[0].payload for c in found[1:]):
            problems.append(f"{station} {key}: copies differ: {[c.payload for c in found]}")
        for earlier, later in itertools.pairwise(found):
            stats["redelivered"] += 1
            acked = csms.acked.get((earlier.session, earlier.message_id))
            if acked is not None:
                stats["redelivered-after-answer"] += 1
            if acked is not None and _process(earlier) == _process(later):
                problems.append(
                    f"{station} {key}: sent again after the CSMS answered it, with no crash"
                    f" in between ({found[0].payload['eventType']}: received {earlier.at:.3f}"
                    f" session {earlier.session} (ended {csms.closes.get(earlier.session)}),"
                    f" answered {acked:.3f}, again {later.at:.3f} session {later.session};"
                    f" outages {_near(csms.outages, earlier.at)})"
                )
    by_transaction: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for (transaction_id, seq_no), found in copies.items():
        by_transaction[transaction_id][seq_no] = found[0].payload
    return events, by_transaction


def _check_station(csms: FaultCsms, charger: QueuedCharger, stats: Counter[str]) -> list[str]:
    station = charger.station_id
    problems: list[str] = []
    events, by_transaction = _events_of(csms, station, stats, problems)
    # charger transactions by meterStart (unique per charger: its register only grows)
    txn_by_start = {txn.meter_start: txn for txn in charger.txns}
    txn_of: dict[str, Txn] = {}
    for transaction_id, seqs in by_transaction.items():
        missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
        if missing:
            problems.append(f"{station} {transaction_id}: seqNo {missing} missing")
        kinds = Counter(p["eventType"] for p in seqs.values())
        if kinds["Started"] != 1 or kinds["Ended"] > 1:
            problems.append(f"{station} {transaction_id}: events {dict(kinds)}")
        started = seqs.get(0)
        if started is None or started["eventType"] != "Started":
            problems.append(f"{station} {transaction_id}: seqNo 0 is not Started")
            continue
        begin = _register(started, "Transaction.Begin")
        txn = txn_by_start.get(int(begin)) if begin is not None else None
        if txn is None:
            problems.append(f"{station} {transaction_id}: Started for no charger transaction")
            continue
        if txn.index in {t.index for t in txn_of.values()}:
            problems.append(f"{station}: transaction {txn.index} has two transactionIds")
        txn_of[transaction_id] = txn
        ended = [p for p in seqs.values() if p["eventType"] == "Ended"]
        if ended and max(seqs) != ended[0]["seqNo"]:
            problems.append(f"{station} {transaction_id}: events after Ended")
        if ended and _register(ended[0], "Transaction.End") != txn.meter_stop:
            problems.append(
                f"{station} {transaction_id}: Ended register {_register(ended[0], 'Transaction.End')}"
                f" != meterStop {txn.meter_stop}"
            )
        samples = Counter(
            _register(p, "Sample.Periodic")
            for p in seqs.values()
            if p["eventType"] == "Updated" and p["triggerReason"] == "MeterValuePeriodic"
        )
        expected = Counter(float(v) for v in txn.meter_values)
        if samples != expected:
            problems.append(
                f"{station} {transaction_id}: meter samples {sorted(samples.elements(), key=str)}"
                f" != the charger's {sorted(expected.elements())}"
            )
        stats["updated-charging-state"] += sum(
            p["triggerReason"] == "ChargingStateChanged" for p in seqs.values()
        )
    for txn in charger.txns:
        if txn not in txn_of.values():
            problems.append(f"{station}: transaction {txn.index} never reached the CSMS")
        elif txn.meter_stop is not None and not any(
            p["eventType"] == "Ended"
            for tid, t in txn_of.items()
            if t is txn
            for p in by_transaction[tid].values()
        ):
            problems.append(f"{station}: transaction {txn.index} has no Ended")
    # chronological delivery: first arrivals in charger order
    order = [
        (txn_of[e.payload["transactionInfo"]["transactionId"]].index, e.payload["seqNo"])
        for e in _first_arrivals(events)
        if e.payload["transactionInfo"]["transactionId"] in txn_of
    ]
    if order != sorted(order):
        problems.append(f"{station}: events out of order: {order}")
    # offline flag (E04.FR.03)
    outages = csms.outages
    for transaction_id, txn in txn_of.items():
        seqs = by_transaction[transaction_id]
        for message in txn.messages:
            if not message.sent or message.conf_at is None:
                continue
            if not _outage_of(outages, message.sent[0], message.conf_at):
                continue
            payload = _event_for(message, seqs)
            if payload is None:
                continue
            stats["offline-checked"] += 1
            if payload.get("offline") is not True:
                problems.append(
                    f"{station} {transaction_id}: {payload['eventType']} queued during an outage"
                    " without offline=true"
                )
    stats["transactions"] += len(charger.txns)
    return problems


def check104(csms: FaultCsms, charger: FaultCharger104, stats: Counter[str]) -> list[str]:
    """The oracle for a 104 charger (its rules: `tests.faults.charger104`), per transactionId:

    - copies and redeliveries as for the 1.6 chargers (`_events_of`);
    - seqNo 0..n all present, exactly one Started (seqNo 0) and exactly one Ended (the last: every
      session is over when the run ends);
    - the Started's Transaction.Begin register names the charger session (the counter at plug-in ×
      10 Wh, unique per session); every session has exactly one transactionId, and no transactionId is
      left without a session (a second Started for one charging session would be one);
    - the Ended's Transaction.End register is the counter at the moment charging fell × 10 Wh, also
      when the session ended while the link was down or the bridge was dead (the counter has not moved
      since, and the bridge reads it when the link returns);
    - first arrivals in charger order (session, then seqNo).
    A Started without Transaction.Begin is a problem: the bridge reads the counter at every link
    return and at every start. So is an Ended with an older register, also in the one case where the
    bridge's own rule allows it: the link lost again after the bridge saw the end and before the
    counter interrogation answered (milliseconds later), when the bridge sends the last value it knew
    after `meter_wait`; the CSMS then has a wrong register, which is worth seeing (not seen so far).
    """
    station = charger.station_id
    problems: list[str] = list(charger.problems)
    events, by_transaction = _events_of(csms, station, stats, problems)
    by_begin = {s.begin_wh: s for s in charger.sessions}
    session_of: dict[str, Session104] = {}
    for transaction_id, seqs in by_transaction.items():
        missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
        if missing:
            problems.append(f"{station} {transaction_id}: seqNo {missing} missing")
        kinds = Counter(p["eventType"] for p in seqs.values())
        if kinds["Started"] != 1 or kinds["Ended"] != 1:
            problems.append(f"{station} {transaction_id}: events {dict(kinds)}")
        started = seqs.get(0)
        if started is None or started["eventType"] != "Started":
            problems.append(f"{station} {transaction_id}: seqNo 0 is not Started")
            continue
        begin = _register(started, "Transaction.Begin")
        if begin is None:
            problems.append(f"{station} {transaction_id}: Started without Transaction.Begin")
            continue
        session = by_begin.get(begin)
        if session is None:
            problems.append(
                f"{station} {transaction_id}: Started (begin {begin:g} Wh) for no charger session"
            )
            continue
        if session in session_of.values():
            problems.append(
                f"{station}: session {session.index} (begin {begin:g} Wh) has two transactionIds"
                f" (a second Started): {[t for t, s in session_of.items() if s is session]}"
                f" and {transaction_id}"
            )
        session_of[transaction_id] = session
        if (
            "start:Accepted" in session.answers
            and "remoteStartId" not in started["transactionInfo"]
        ):
            # the bridge accepted the start, then died before its Started was durable: the
            # restarted one saw charging rise and knew nothing of the request (in memory only)
            stats["104-accepted-remote-start-not-linked"] += 1
        ended = [p for p in seqs.values() if p["eventType"] == "Ended"]
        if not ended:
            continue
        if max(seqs) != ended[0]["seqNo"]:
            problems.append(f"{station} {transaction_id}: events after Ended")
        register = _register(ended[0], "Transaction.End")
        if register != session.end_wh:
            problems.append(
                f"{station} {transaction_id}: Ended register {register} != the counter when"
                f" charging fell, {session.end_wh} (session {session.index}, ended while the link"
                f" was down: {session.ended_while_down}, answers {session.answers},"
                f" reason {ended[0]['transactionInfo'].get('stoppedReason')})"
            )
        reason = ended[0]["transactionInfo"].get("stoppedReason")
        stats[f"104-{started['triggerReason']}→{reason}"] += 1
    for session in charger.sessions:
        if session not in session_of.values():
            problems.append(
                f"{station}: session {session.index} (begin {session.begin_wh:g} Wh) never reached"
                " the CSMS"
            )
    order = [
        (session_of[e.payload["transactionInfo"]["transactionId"]].index, e.payload["seqNo"])
        for e in _first_arrivals(events)
        if e.payload["transactionInfo"]["transactionId"] in session_of
    ]
    if order != sorted(order):
        problems.append(f"{station}: events out of order: {order}")
    stats["104-sessions"] += len(charger.sessions)
    stats["104-ended-while-down"] += sum(s.ended_while_down for s in charger.sessions)
    return problems


def check_card(csms: FaultCsms, charger: FaultCardCharger, stats: Counter[str]) -> list[str]:
    """The oracle for a dial-in card charger (its rules: `tests.faults.card104`), per transactionId:

    - copies and redeliveries as for the other chargers (`_events_of`); seqNo 0..n all present,
      exactly one Started (seqNo 0) and exactly one Ended (the last);
    - the Started's Transaction.Begin register names the card session (the counter at plug-in × 10
      Wh); its triggerReason is Authorized and its idToken the session's card (type Local); every
      session has exactly one transactionId and no transactionId is left without a session;
    - the Ended is the settlement record's: customData.settlement (vendorId ocpp-bridge) with the
      record's meter start and stop in Wh and its amount, Transaction.End = the record's meter stop
      (the counter at the fall × 10 Wh), stoppedReason Local, idToken the card. An Ended without
      the record (the bridge's settlement_wait, 30 s, ran out while faults kept the record away) is
      allowed and counted; it still carries the counter at the fall, and there is never a second one;
    - every session's record was acknowledged (133) in the end;
    - first arrivals in charger order (session, then seqNo).
    """
    station = charger.station_id
    problems: list[str] = list(charger.problems)
    events, by_transaction = _events_of(csms, station, stats, problems)
    by_begin = {s.begin_wh: s for s in charger.sessions}
    session_of: dict[str, CardSession] = {}
    for transaction_id, seqs in by_transaction.items():
        where = f"{station} {transaction_id}"
        missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
        if missing:
            problems.append(f"{where}: seqNo {missing} missing")
        kinds = Counter(p["eventType"] for p in seqs.values())
        if kinds["Started"] != 1 or kinds["Ended"] != 1:
            problems.append(f"{where}: events {dict(kinds)}")
        started = seqs.get(0)
        if started is None or started["eventType"] != "Started":
            problems.append(f"{where}: seqNo 0 is not Started")
            continue
        begin = _register(started, "Transaction.Begin")
        session = by_begin.get(begin) if begin is not None else None
        if session is None:
            problems.append(f"{where}: Started (begin {begin}) for no card session")
            continue
        if session in session_of.values():
            problems.append(
                f"{station}: card session {session.index} has two transactionIds (a second"
                f" Started): {[t for t, s in session_of.items() if s is session]} and"
                f" {transaction_id}"
            )
        session_of[transaction_id] = session
        token = {"idToken": session.card, "type": "Local"}
        if started["triggerReason"] != "Authorized" or started.get("idToken") != token:
            problems.append(
                f"{where}: session {session.index}'s Started is {started['triggerReason']} with"
                f" idToken {started.get('idToken')}, not Authorized by card {session.card}"
            )
        ended = [p for p in seqs.values() if p["eventType"] == "Ended"]
        if not ended:
            continue
        last = ended[0]
        if max(seqs) != last["seqNo"]:
            problems.append(f"{where}: events after Ended")
        register = _register(last, "Transaction.End")
        reason = last["transactionInfo"].get("stoppedReason")
        settlement = (last.get("customData") or {}).get("settlement")
        if register != session.end_wh:
            problems.append(
                f"{where}: Ended register {register} != the counter when charging fell,"
                f" {session.end_wh} (session {session.index}, reason {reason}, record"
                f" {'in' if settlement else 'not in'} it)"
            )
        if settlement is None:
            stats["card-ended-without-record"] += 1
            stats[f"card-{last['triggerReason']}→{reason}-without-record"] += 1
            continue
        expected = {
            "meterStartWh": session.begin_wh,
            "meterStopWh": session.end_wh,
            "amount": round(session.amount * 0.01, 6),
            "stop_reason": 0,
        }
        found = {k: settlement.get(k) for k in expected}
        if found != expected or last["customData"].get("vendorId") != "ocpp-bridge":
            problems.append(
                f"{where}: Ended's settlement {last['customData']} != the record's {expected}"
            )
        if reason != "Local":
            problems.append(f"{where}: Ended with the record, stoppedReason {reason} (not Local)")
        if last.get("idToken") != token:
            problems.append(f"{where}: Ended idToken {last.get('idToken')}, not card {token}")
        stats[f"card-{last['triggerReason']}→{reason}"] += 1
    for session in charger.sessions:
        if session not in session_of.values():
            problems.append(
                f"{station}: card session {session.index} (begin {session.begin_wh:g} Wh) never"
                " reached the CSMS"
            )
        if not session.acked:
            problems.append(
                f"{station}: card session {session.index}'s settlement record never acknowledged"
                f" (sent {session.record_sends} times)"
            )
    order = [
        (session_of[e.payload["transactionInfo"]["transactionId"]].index, e.payload["seqNo"])
        for e in _first_arrivals(events)
        if e.payload["transactionInfo"]["transactionId"] in session_of
    ]
    if order != sorted(order):
        problems.append(f"{station}: events out of order: {order}")
    stats["card-sessions"] += len(charger.sessions)
    stats["card-records-sent-again"] += sum(max(0, s.record_sends - 1) for s in charger.sessions)
    return problems


def _all_ended(csms: FaultCsms, charger: QueuedCharger) -> bool:
    seen = csms.ended.get(charger.station_id, set())
    return all(float(t.meter_stop) in seen for t in charger.txns if t.meter_stop is not None)


def _process(event: Received) -> str:
    """The bridge process that sent a CALL: its message ids are a per-process random prefix and a
    counter (adapters.ids)."""
    return event.message_id.rsplit("-", 1)[0]


def _near(outages: list[tuple[float, float | None]], moment: float) -> list[tuple[float, float]]:
    return [
        (round(start - moment, 3), round((end or 0.0) - moment, 3))
        for start, end in outages
        if abs(start - moment) < 5
    ]


def _first_arrivals(events: list[Received]) -> list[Received]:
    seen: set[tuple[str, int]] = set()
    first: list[Received] = []
    for event in events:
        key = (event.payload["transactionInfo"]["transactionId"], event.payload["seqNo"])
        if key not in seen:
            seen.add(key)
            first.append(event)
    return first


def _event_for(message: Outgoing, seqs: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    if message.action == "StartTransaction":
        return seqs.get(0)
    for payload in seqs.values():
        if message.action == "StopTransaction" and payload["eventType"] == "Ended":
            return payload
        if (
            message.action == "MeterValues"
            and payload["eventType"] == "Updated"
            and _register(payload, "Sample.Periodic") == message.register
        ):
            return payload
    return None


def log_problems(records: list[dict[str, Any]]) -> tuple[list[str], Counter[str]]:
    problems: list[str] = []
    kinds: Counter[str] = Counter()
    for record in records:
        event = str(record.get("event"))
        kinds[event] += 1
        if (
            event in BAD_EVENTS
            or event == "not-json"
            or record.get("level") in ("error", "critical")
        ):
            problems.append(f"bridge log (incarnation {record['incarnation']}): {record}")
    return problems, kinds


def stored_outboxes(store: Path | str, stations: Iterable[str]) -> dict[str, int]:
    opened = open_store(str(store))
    try:
        return {s: len(opened.load(s).get("outbox", {})) for s in stations}
    finally:
        opened.close()


# --- one run -------------------------------------------------------------------------------------


@dataclass
class FaultRun:
    seed: int
    problems: list[str]
    faults: FaultLog
    stats: Counter[str]
    log_events: Counter[str]
    seconds: float

    def describe(self) -> str:
        interesting = {
            k: v
            for k, v in self.log_events.items()
            if k
            in (
                "start-resent",
                "stop-resent",
                "meter-values-resent",
                "unknown-transaction",
                "south.duplicate_connection",
                "outbox-retry",
                "csms.connect_failed",
                "iec104.link_down",
                "iec104.watchdog_reconnect",
                "core.rebuilt",
                "iec104.identified",
                "late-settlement",
                "settlement-disagrees",
                "private-malformed",
                "private-unknown",
            )
        }
        lines = [
            f"fault run seed={self.seed} ({SEED_ENV}={self.seed} reproduces the plan):"
            f" {self.faults.total} faults {dict(self.faults.counts)},"
            f" triggers {dict(self.faults.triggers)}, {self.seconds:.1f} s",
            f"  stats {dict(self.stats)}",
            f"  bridge log {interesting}",
        ]
        lines += [f"  PROBLEM {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... {len(self.problems) - 50} more problems")
        return "\n".join(lines)


async def run_faults(
    tmp_path: Path,
    *,
    seed: int,
    chargers: int,
    faults: int,
    transactions: int | None,
    iec104: int = 0,
    transactions104: int | None = None,
    cards: int = 0,
    transactions_card: int | None = None,
    settle_timeout: float = 60.0,
    progress: Callable[[int], None] | None = None,
    store_url: str | None = None,
) -> FaultRun:
    """Chargers run their transactions (`chargers` 1.6J chargers, `iec104` 104 chargers with
    `transactions104` sessions each, `cards` dial-in card chargers with `transactions_card` card
    sessions each) while `faults` faults strike; then everything is let settle and checked.
    `transactions=None` (`transactions104=None`, `transactions_card=None`): they go on until the last
    fault. `store_url`: a PostgreSQL store (tests/pg.py) instead of a SQLite file in `tmp_path`."""
    started = time.monotonic()
    rng = random.Random(seed)
    taps = Taps()
    csms = FaultCsms(taps)
    await csms.start(port=free_port())
    south_port = free_port()
    store: Path | str = store_url or tmp_path / "bridge.db"
    config = tmp_path / "bridge.toml"
    fleet = [
        QueuedCharger(n, f"ws://127.0.0.1:{south_port}/ocpp", random.Random(rng.random()), taps)
        for n in range(1, chargers + 1)
    ]
    fleet104 = [
        FaultCharger104(n, free_port(), random.Random(rng.random()), csms, taps)
        for n in range(1, iec104 + 1)
    ]
    listen_port = free_port() if cards else None
    fleet_cards = [
        FaultCardCharger(n, listen_port or 0, random.Random(rng.random()), csms, taps)
        for n in range(1, cards + 1)
    ]
    config.write_text(
        bridge_toml(
            store=store,
            csms_url=csms.url,
            south_port=south_port,
            stations=[c.station_id for c in fleet],
            iec104=[(c.station_id, c.port) for c in fleet104],
            iec104_listen=listen_port,
            cards=[(c.station_id, c.serial) for c in fleet_cards],
            trace_dir=Path(os.environ[TRACE_ENV]) if os.environ.get(TRACE_ENV) else None,
        )
    )
    bridge = BridgeProcess(config, tmp_path)
    log = FaultLog()
    problems: list[str] = []
    stats: Counter[str] = Counter()
    done = asyncio.Event()
    loads: list[asyncio.Task[None]] = []
    try:
        for charger104 in fleet104:
            await charger104.start()
        await bridge.start()
        for charger in fleet:
            charger.start()
        for card in fleet_cards:
            card.start()
        loads = [
            asyncio.create_task(
                workload(c, random.Random(rng.random()), transactions=transactions, done=done)
            )
            for c in fleet
        ]
        loads += [
            asyncio.create_task(
                workload104(c, random.Random(rng.random()), transactions=transactions104, done=done)
            )
            for c in fleet104
        ]
        loads += [
            asyncio.create_task(
                workload_card(
                    c, random.Random(rng.random()), transactions=transactions_card, done=done
                )
            )
            for c in fleet_cards
        ]
        await inject_faults(
            random.Random(rng.random()),
            faults,
            bridge=bridge,
            csms=csms,
            chargers=fleet,
            chargers104=fleet104,
            cards=fleet_cards,
            taps=taps,
            log=log,
            progress=progress,
        )
        done.set()
        async with asyncio.timeout(settle_timeout):
            await asyncio.gather(*loads)
            while not all(c.idle for c in fleet):
                await asyncio.sleep(0.05)
        # The chargers are done; wait until the CSMS has every transaction's Ended (the outbox is
        # delivered in order, so then it has everything before it), or time runs out.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle_timeout):
                while not all(_all_ended(csms, charger) for charger in fleet):
                    await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a late duplicate would show now
        code = await bridge.stop()
        if code != 0:
            problems.append(f"the bridge exited with {code} on SIGTERM")
        stations = [c.station_id for c in fleet] + [c.station_id for c in fleet104]
        stations += [c.station_id for c in fleet_cards]
        left = {s: n for s, n in stored_outboxes(store, stations).items() if n}
        if left:
            problems.append(f"outbox entries left in the store after everything arrived: {left}")
    except TimeoutError:
        problems.append(
            "the run did not settle in time: "
            + ", ".join(f"{c.station_id} queue {len(c.queue)}" for c in fleet)
        )
    finally:
        done.set()
        for task in loads:
            task.cancel()
        await asyncio.gather(*loads, return_exceptions=True)
        for charger in fleet:
            await charger.close()
        await bridge.stop()
        await csms.stop()
        for charger104 in fleet104:
            await charger104.close()
        for card in fleet_cards:
            await card.close()
    found, oracle_stats = check(csms, fleet)
    problems += found
    stats.update(oracle_stats)
    stats["csms-refused"] = csms.refused
    for charger in fleet:
        stats.update(charger.stats)
    for charger104 in fleet104:
        problems += check104(csms, charger104, stats)
        stats.update({f"104-{k}": v for k, v in charger104.stats.items()})
    for card in fleet_cards:
        problems += check_card(csms, card, stats)
        stats.update({f"card-{k}": v for k, v in card.stats.items()})
    log_found, log_events = log_problems(bridge.records())
    problems += log_found
    return FaultRun(seed, problems, log, stats, log_events, time.monotonic() - started)
