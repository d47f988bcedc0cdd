"""The IEC 104 charger of the fault runs: a c104 `Server` laid out per mappings/gb-dc-charger.yaml.

`FaultCharger104` wraps the loopback simulator (`tests.e2e.iec104_charger.Charger104`, one connector)
and drives charging sessions on it the way a charger's user and power electronics would:

    plug in (holster off) → [RequestStartTransaction from the CSMS] → charging rises → the energy
    counter (0x6401, 10 Wh per count) grows → [RequestStopTransaction from the CSMS] → the counter takes
    its last step and charging falls → unplug (holster on)

Every change is set on the point at once and reported spontaneously while the server runs; while it is
stopped the change is only set, and the bridge's general and counter interrogations find it when the link
returns. A start or stop the CSMS asked for goes to the charger as the start/stop command (0x6001); the
charger reacts to it the way it would to its own button: it starts or stops charging. A command that never
arrived (the bridge was killed, the CSMS was away) leaves the charger to start or stop by itself.

The fault of its own: `drop_link` stops the c104 server (the bridge's client sees the connection go),
leaves it down for a while, possibly changes points meanwhile (the counter grows, the session's charging
falls, the vehicle is unplugged) and starts the server again on the same port.

What a charger does that no bridge can report, the workload avoids; these are the rules the oracle
(`harness.check104`) relies on:
- The counter only grows while charging and after the session's Started reached the CSMS, and it takes a
  last step when charging falls: every session's Begin (counter at plug-in × 10 Wh) is unique, and the
  counter stands still from the fall until the next session charges.
- Charging does not fall before the session's Started reached the CSMS (a session that rose and fell
  while no bridge could see it is invisible), and the next session does not begin before the previous
  one's Ended reached the CSMS (else the bridge would see one long session), nor before the CSMS saw the
  connector Available after the unplug: the bridge knows the vehicle left. c104 (lib60870) sends a
  command's confirmation at once but spontaneous reports only when its connection thread next looks at
  its queue (up to ~100 ms later, more under load), so a confirmation can overtake older reports. A next
  vehicle plugged in and remotely started within that window made the bridge start a transaction on the
  previous vehicle's plug (still connected as far as it knew: the unplug was in c104's queue), end it
  with EVDisconnected when the unplug arrived, and start the session again when charging rose (seed
  3114008935 of the fuzz run: a second Started for one session). No person unplugs and plugs in a vehicle
  within milliseconds; the workload waits as a person would have to.
- Hence the register the bridge reads at the end equals the counter at the moment charging fell, even
  when the session ended while the link was down or the bridge was dead: the bridge reads the counter
  when the link returns and it has not moved since. The oracle demands exactly that.

c104 callbacks are the simulator's (they only record, never raise). Blocking c104 calls (start, stop,
transmit) run in threads, one at a time per charger, in the order they were asked for.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import c104
from ocpp.exceptions import OCPPError
from ocpp.v201 import call as call201

from adapters.mapping_files import compile_file
from tests.e2e.iec104_charger import Charger104

if TYPE_CHECKING:
    from tests.faults.harness import FaultCsms, Taps

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "gb-dc-charger.yaml"
TABLE = compile_file(MAPPING, 1)
PLUG, HOLSTERED, CHARGING, CONTACTOR = 0x0021, 0x0022, 0x0023, 0x0025
WORK_STATUS, ENERGY, START_STOP = 0x400F, 0x6401, 0x6001
WH_PER_COUNT = 10
IDLE_STATUS, CHARGING_STATUS, FINISHED_STATUS = 2.0, 3.0, 4.0
# waits for the CSMS to see what the charger did: long enough for a CSMS outage, a bridge restart and
# a link's return together, short enough that a lost event fails the run in reasonable time
SEE_TIMEOUT = 60.0
CALL_TIMEOUT = 8.0


@dataclass(eq=False)
class Session104:
    """One charging session as the charger knows it (counter values in counts)."""

    index: int
    begin: int
    remote_start: bool = False
    remote_stop: bool = False
    end: int | None = None  # the counter when charging fell
    ended_while_down: bool = False
    unplugged_while_down: bool = False
    answers: list[str] = field(default_factory=list)  # what the CSMS's requests were answered

    @property
    def begin_wh(self) -> float:
        return float(self.begin * WH_PER_COUNT)

    @property
    def end_wh(self) -> float | None:
        return None if self.end is None else float(self.end * WH_PER_COUNT)


class FaultCharger104:
    """A 104 charger with one connector whose sessions the fault run drives."""

    def __init__(
        self, number: int, port: int, rng: random.Random, csms: "FaultCsms", taps: "Taps"
    ) -> None:
        self.number = number
        self.station_id = f"FI104-{number}"
        self.rng = rng
        self.csms = csms
        self.taps = taps
        self.counter = 100_000 * number
        initial = {HOLSTERED: True, WORK_STATUS: IDLE_STATUS, CONTACTOR: 1, ENERGY: self.counter}
        self.sim = Charger104(TABLE, initial, port=port)
        self.port = port
        self.sessions: list[Session104] = []
        self.phase = "idle"  # idle → plugged → charging → stopped → idle
        self.down = False  # the server is stopped by a link-drop fault
        self.dropping = False
        self.problems: list[str] = []
        self.unplugged_at: int | None = None  # len(csms.received) at the last unplug
        self.stats: Counter[str] = Counter()
        self._io = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session(self) -> Session104 | None:
        return self.sessions[-1] if self.sessions and self.phase != "idle" else None

    # --- the server ------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._io:
            await self.sim.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._io:
            await self.sim.stop()

    def _put(self, ioa: int, value: Any) -> None:
        """Set a point now; report it spontaneously when the server runs."""
        self.sim.set(ioa, value)
        if not self.down:
            task = asyncio.get_running_loop().create_task(self._transmit(ioa))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _transmit(self, ioa: int) -> None:
        async with self._io:  # FIFO: reports leave in the order the changes were made
            if self.down:
                return  # the interrogation at the link's return reports it
            point = self.sim.points[ioa]
            try:
                await asyncio.to_thread(point.transmit, cause=c104.Cot.SPONTANEOUS)
            except Exception as exc:  # no client connected: the next interrogation reports it
                self.stats[f"transmit-{type(exc).__name__}"] += 1

    # --- what happens at the charger -------------------------------------------------------------

    def plug_in(self) -> Session104:
        assert self.phase == "idle"
        session = Session104(len(self.sessions), self.counter)
        self.sessions.append(session)
        self.phase = "plugged"
        self._put(HOLSTERED, False)
        self._put(PLUG, True)
        return session

    def charge(self) -> None:
        assert self.phase == "plugged"
        self.phase = "charging"
        self._put(WORK_STATUS, CHARGING_STATUS)
        self._put(CHARGING, True)
        self.taps.notify("charger-sent")

    def grow(self) -> None:
        if self.phase == "charging" and self.started_id(self.sessions[-1]) is not None:
            self.counter += self.rng.randint(1, 500)
            self._put(ENERGY, self.counter)

    def fall(self) -> None:
        """The last energy step, then charging falls."""
        if self.phase != "charging":
            return
        session = self.sessions[-1]
        self.counter += self.rng.randint(1, 500)
        session.end = self.counter
        session.ended_while_down = self.down
        self.phase = "stopped"
        self._put(ENERGY, self.counter)
        self._put(CHARGING, False)
        self._put(WORK_STATUS, FINISHED_STATUS)
        self.taps.notify("charger-sent")

    def unplug(self) -> None:
        if self.phase == "idle":
            return
        self.fall()
        if self.down:
            self.sessions[-1].unplugged_while_down = True
        self.phase = "idle"
        self.unplugged_at = len(self.csms.received)
        self._put(PLUG, False)
        self._put(HOLSTERED, True)
        self._put(WORK_STATUS, IDLE_STATUS)

    # --- what the CSMS sees (FaultCsms indexes the TransactionEvents it received) -----------------

    def started_id(self, session: Session104) -> str | None:
        found = self.csms.begins.get(self.station_id, {}).get(session.begin_wh)
        return found[-1] if found else None

    def ended(self, session: Session104) -> bool:
        transaction_id = self.started_id(session)
        return (
            transaction_id is not None and (self.station_id, transaction_id) in self.csms.ended_ids
        )

    def available_seen(self) -> bool:
        """The CSMS saw the connector Available since the last unplug (the bridge saw it)."""
        if self.unplugged_at is None:
            return True
        return any(
            r.station_id == self.station_id
            and r.action == "StatusNotification"
            and r.payload.get("connectorStatus") == "Available"
            for r in self.csms.received[self.unplugged_at :]
        )

    async def wait_seen(self, what: str, session: Session104, seen: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + SEE_TIMEOUT
        while not seen():
            if time.monotonic() >= deadline:
                self.problems.append(
                    f"{self.station_id}: session {session.index} (begin {session.begin_wh:g} Wh):"
                    f" no {what} at the CSMS within {SEE_TIMEOUT:g} s"
                )
                return False
            await asyncio.sleep(0.05)
        return True

    async def _csms_call(self, request: Any) -> Any | None:
        """A CALL from the CSMS to this station; None when it could not be made or answered."""
        session = self.csms.sessions.get(self.station_id)
        if not self.csms.up or session is None or session.closed.is_set():
            return None
        call = asyncio.create_task(session.charge_point.call(request, suppress=False))
        closed = asyncio.create_task(session.closed.wait())
        try:
            done, _ = await asyncio.wait(
                {call, closed}, timeout=CALL_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (call, closed):
                if not task.done():
                    task.cancel()
            await asyncio.gather(call, closed, return_exceptions=True)
        if call not in done or call.cancelled():
            return None
        try:
            return call.result()
        except (OCPPError, TimeoutError, Exception) as exc:
            self.stats[f"csms-call-{type(exc).__name__}"] += 1
            return None

    async def _await_command(self, before: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.sim.sent_to(START_STOP)) <= before:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def remote_start(self, session: Session104) -> None:
        session.remote_start = True
        before = len(self.sim.sent_to(START_STOP))
        request = call201.RequestStartTransaction(
            id_token={"id_token": f"R{self.number}X{session.index}", "type": "ISO14443"},
            remote_start_id=self.number * 100_000 + session.index,
            evse_id=1,
        )
        answer = await self._csms_call(request)
        status = getattr(answer, "status", None)
        session.answers.append(f"start:{status}")
        self.stats[f"remote-start-{status}"] += 1
        if await self._await_command(before, 0.2):
            self.stats["start-command"] += 1

    async def remote_stop(self, session: Session104) -> None:
        transaction_id = self.started_id(session)
        if transaction_id is None:
            return
        session.remote_stop = True
        before = len(self.sim.sent_to(START_STOP))
        answer = await self._csms_call(
            call201.RequestStopTransaction(transaction_id=transaction_id)
        )
        status = getattr(answer, "status", None)
        session.answers.append(f"stop:{status}")
        self.stats[f"remote-stop-{status}"] += 1
        if await self._await_command(before, 0.2):
            self.stats["stop-command"] += 1

    # --- the link-drop fault ---------------------------------------------------------------------

    async def drop_link(self, rng: random.Random, *, end_session: bool = False) -> None:
        """Stop the server, maybe change points meanwhile, start it again on the same port.
        `end_session`: wait (up to 5 s) until a session charges, then end it while the link is
        down."""
        self.dropping = True
        try:
            await self._drop_link(rng, end_session)
        except Exception as exc:
            self.problems.append(f"{self.station_id}: the link drop failed: {exc!r}")
        finally:
            self.dropping = False

    def _may_end(self) -> bool:
        session = self.session
        return (
            session is not None
            and self.phase == "charging"
            and self.started_id(session) is not None
        )

    async def _drop_link(self, rng: random.Random, end_session: bool) -> None:
        if end_session:
            deadline = time.monotonic() + 5.0
            while not self._may_end() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        async with self._io:
            self.down = True
            await self.sim.stop()
        self.stats["link-drops"] += 1
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        if self._may_end():
            choices = ("fall", "unplug") if end_session else ("nothing", "grow", "fall", "unplug")
            action = rng.choice(choices)
            if action != "nothing":
                self.grow()
                self.stats["grew-while-down"] += 1
            if action in ("fall", "unplug"):
                self.fall()
                self.stats["ended-while-down"] += 1
            if action == "unplug":
                self.unplug()
                self.stats["unplugged-while-down"] += 1
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        async with self._io:
            for _ in range(100):
                try:
                    await self.sim.start()
                    break
                except Exception:  # the port is not free again yet
                    await asyncio.sleep(0.05)
            else:
                self.problems.append(f"{self.station_id}: the c104 server did not start again")
            self.down = False


async def workload104(
    charger: FaultCharger104,
    rng: random.Random,
    *,
    transactions: int | None,
    done: asyncio.Event,
    pace: float = 0.15,
) -> None:
    """`transactions` sessions one after another, or with None until `done`; a session begun is
    always finished."""
    count = 0
    while count < transactions if transactions is not None else not done.is_set():
        if charger.sessions:  # the previous vehicle left, as far as the bridge knows
            await charger.wait_seen("Available", charger.sessions[-1], charger.available_seen)
        session = charger.plug_in()
        await asyncio.sleep(rng.uniform(0, pace))
        if rng.random() < 0.5:
            await charger.remote_start(session)
            # the vehicle and the charger shake hands first (seconds, with GB/T's BMS handshake)
            await asyncio.sleep(rng.uniform(0, 2.5))
        charger.charge()
        started = await charger.wait_seen(
            "Started", session, lambda s=session: charger.started_id(s) is not None
        )
        if started:
            for _ in range(rng.randint(0, 4)):
                await asyncio.sleep(rng.uniform(0, 2 * pace))
                charger.grow()
        await asyncio.sleep(rng.uniform(0, pace))
        if charger.phase == "charging" and rng.random() < 0.3:
            await charger.remote_stop(session)
        charger.fall()  # nothing when a fault ended it while the link was down
        await asyncio.sleep(rng.uniform(0, pace))
        charger.unplug()
        await charger.wait_seen("Ended", session, lambda s=session: charger.ended(s))
        await asyncio.sleep(rng.uniform(0, pace))
        count += 1
