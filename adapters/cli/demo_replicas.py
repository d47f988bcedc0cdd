"""`ocpp-bridge demo --replicas N`: the demo's chargers and CSMS through N bridge replicas on one local
PostgreSQL, one replica killed (SIGKILL) mid-session; the survivors serve its stations.

Rules
- PostgreSQL: the installed server (`adapters.cli.local_pg`: initdb into a temporary folder, 127.0.0.1 and
  a free port only); none installed: `PostgresMissing`, which `ocpp-bridge demo` turns into one line
  saying what to install and exit status 2, before anything starts.
- Replicas: N processes of `ocpp-bridge run` (this Python, `adapters.cli.main`), named A, B, ..., with one
  configuration but for their ports (each its own south, iec104_listen and health/status port):
  `[bridge] leases = true`, `lease_seconds = 2`, the store the PostgreSQL database. Their log lines (at
  `--log-level`, readable) go to stderr prefixed with the replica's name, above the live view.
- Stations: DEMO-16 (OCPP 1.6J) and DEMO-201 (OCPP 2.0.1) are given every replica's address (DEMO-16
  starting at A, DEMO-201 at B), as chargers behind no load balancer: when their connection drops
  they connect to the next address and send the message under way again (`Roaming`). DEMO-104 and
  DEMO-104B are dial-out IEC 104 chargers (c104 servers): the replicas spread them by their leases.
  DEMO-CARD dials in to A, then to the next replica after every drop. Sessions as in the single
  demo (adapters.cli.demo), with longer waits around the failover.
- The live view adds the column "by": the replica serving each station (its lease's owner, read from
  PostgreSQL twice a second; DEMO-201, a pass-through station without a lease, the replica it is
  connected to).
- The kill: replica A, SIGKILL, once every station ended a transaction and all of A's stations but one
  (at least one) have a transaction under way, at the latest at half of `--duration` (20 s without
  one). The demo prints
  what A served and, per station, when a survivor served it.
- Result OK when, as in the single demo, every station booted and ended a transaction and no charger
  failed, and: every station ended a transaction after the kill; every transaction under way on A's
  stations at the kill ended with the same transaction id; the CSMS got each (transactionId, seqNo)
  with all copies identical, none missing (seqNo 0..n-1), one Started and one Ended per transaction
  (nothing lost, nothing duplicated). Identical copies (a message sent again across the failover: the
  killed replica forwarded it and died before it could record the answer) are at-least-once delivery,
  not duplicates; the summary counts them.
- Everything started is stopped: the survivors with SIGTERM (SIGKILL after 15 s), the PostgreSQL
  server, its folder removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from adapters.cli.c104_outstation import HOST, Charger104
from adapters.cli.demo import (
    CARD_SERIAL,
    DEMO_16,
    DEMO_104,
    DEMO_201,
    DEMO_CARD,
    DEMO_CARD_TOKEN,
    IDLE_104,
    TABLE_104,
    TABLE_CARD,
    Demo104Session,
    DemoCardSession,
    DemoCharger16,
    DemoCharger201,
    DemoCsms,
    DemoFailed,
    StationView,
    _close_csms,
    _table,
    _watch,
    configure_demo_logging,
    demo_csms_handler,
)
from adapters.cli.local_pg import LocalPostgres, free_port
from adapters.cli.outstation104 import Outstation
from adapters.mapping_files import compile_file, load_reference, shipped_table

DEMO_104B = "DEMO-104B"
CHARGERS = {
    DEMO_16: "ocpp1.6",
    DEMO_201: "ocpp2.0.1",
    DEMO_104: "iec104",
    DEMO_104B: "iec104",
    DEMO_CARD: "iec104",
}
LEASE_SECONDS = 2.0
PATIENCE = 3.0  # the sessions' waits, times this (a failover takes about lease_seconds × 4/3)


class Roaming:
    """Mixed into a demo charger (before the `ocpp` ChargePoint): every replica's address; a call
    whose connection drops is sent again on a connection to the next replica (bounded)."""

    urls: tuple[str, ...] = ()
    turn = 0
    reader: asyncio.Task[Any] | None = None
    moves = 0
    resent = 0
    id: str
    _connection: Any

    @property
    def url(self) -> str:
        return self.urls[self.turn % len(self.urls)]

    async def attach(self, urls: tuple[str, ...], protocol: str) -> None:
        self.urls, self.protocol = urls, protocol
        self._connection = await self._dial()
        self.reader = asyncio.create_task(self.start())  # type: ignore[attr-defined]

    async def _dial(self) -> ClientConnection:
        for attempt in range(40):  # about 20 s over every replica
            try:
                return await connect(
                    f"{self.url}/{self.id}",
                    subprotocols=[Subprotocol(self.protocol)],
                    open_timeout=5,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                self.turn += 1
                if attempt % len(self.urls) == len(self.urls) - 1:
                    await asyncio.sleep(0.5)
        raise DemoFailed(f"{self.id}: no replica accepts the connection")

    async def move(self) -> None:
        """To the next replica's address."""
        with contextlib.suppress(Exception):
            await self._connection.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        self.turn += 1
        self.moves += 1
        self._connection = await self._dial()
        self.reader = asyncio.create_task(self.start())  # type: ignore[attr-defined]

    async def call(
        self,
        payload: Any,
        suppress: bool = True,
        unique_id: Any = None,
        skip_schema_validation: bool = False,
    ) -> Any:
        for attempt in range(5):
            if attempt:
                self.resent += 1
            reader = self.reader
            assert reader is not None
            sent = asyncio.ensure_future(
                super().call(payload, suppress, unique_id, skip_schema_validation)  # type: ignore[misc]
            )
            await asyncio.wait({sent, reader}, return_when=asyncio.FIRST_COMPLETED)
            if sent.done():
                try:
                    return sent.result()
                except ConnectionClosed:
                    pass
            else:  # the connection ended while the answer was awaited
                sent.cancel()
                await asyncio.gather(sent, return_exceptions=True)
            await self.move()
        raise DemoFailed(f"{self.id}: lost its connection 5 times in one message")

    async def detach(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._connection.close()


class RoamingCharger16(Roaming, DemoCharger16):
    pass


class RoamingCharger201(Roaming, DemoCharger201):
    pass


@dataclass
class Replica:
    name: str
    config: Path
    south: int
    iec104: int
    health: int
    process: asyncio.subprocess.Process | None = None
    killed_at: float | None = None
    relay: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def south_url(self) -> str:
        return f"ws://127.0.0.1:{self.south}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from adapters.cli.main import main; main()",
            "run",
            "--config",
            str(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops the replicas
        )
        self.relay = asyncio.create_task(self._relay())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:  # ready when its south listener accepts
            if self.process.returncode is not None:
                raise DemoFailed(f"replica {self.name} exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.south)
                writer.close()
                return
            if loop.time() > deadline:
                raise DemoFailed(f"replica {self.name} did not listen within 60 s")
            await asyncio.sleep(0.1)

    async def _relay(self) -> None:
        """Its log lines on stderr, prefixed (above the live view while it shows)."""
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            sys.stderr.write(f"[{self.name}] {line.decode(errors='replace')}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL
        self.killed_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.process.wait()

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.relay is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.relay


def _replica_toml(
    replica: Replica,
    store: str,
    csms_port: int,
    log_level: str,
    dial_out: dict[str, int],
    mapping: Path,
) -> str:
    lines = [
        "[bridge]",
        f'store = "{store}"',
        "leases = true",
        f"lease_seconds = {LEASE_SECONDS}",
        f'health = "127.0.0.1:{replica.health}"',
        "status_page = true",
        'log_format = "console"',
        f'log_level = "{log_level}"',
        "shutdown_timeout = 5",
        "[csms]",
        f'url = "ws://127.0.0.1:{csms_port}/ocpp"',
        "[south]",
        f'listen = "127.0.0.1:{replica.south}"',
        f'iec104_listen = "127.0.0.1:{replica.iec104}"',
    ]
    for sid in (DEMO_16, DEMO_201):
        lines += ["[[stations]]", f'id = "{sid}"', f'protocol = "{CHARGERS[sid]}"']
    for sid, port in dial_out.items():
        lines += [
            "[[stations]]",
            f'id = "{sid}"',
            'protocol = "iec104"',
            f'host = "{HOST}"',
            f"port = {port}",
            "connectors = 1",
            f'mapping = "{mapping}"',
        ]
    lines += [
        "[[stations]]",
        f'id = "{DEMO_CARD}"',
        'protocol = "iec104"',
        'dial = "in"',
        f'registration_id = "{CARD_SERIAL}"',
        "connectors = 1",
        f'mapping = "{TABLE_CARD}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Failover:
    """What the kill changed: the victim's stations, their transactions under way, when each was
    served again (seconds after the kill)."""

    victim: str = ""
    at: float = 0.0
    stations: list[str] = field(default_factory=list)
    in_flight: dict[str, str] = field(default_factory=dict)
    ended_before: dict[str, int] = field(default_factory=dict)
    taken: dict[str, tuple[str, float]] = field(default_factory=dict)


def check_events(views: dict[str, StationView]) -> tuple[list[str], int]:
    """The CSMS's TransactionEvents against the rules (module docstring): the problems found, and
    how many identical copies it got."""
    problems: list[str] = []
    copies = 0
    for view in views.values():
        by_key: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for transaction, seq, kind, body in view.events:
            by_key.setdefault((transaction, seq), []).append((kind, body))
        transactions: dict[str, list[tuple[int, str]]] = {}
        for (transaction, seq), same in by_key.items():
            copies += len(same) - 1
            if any(body != same[0][1] for _, body in same):
                problems.append(f"{view.station_id} {transaction} seqNo {seq}: copies differ")
            transactions.setdefault(transaction, []).append((seq, same[0][0]))
        for transaction, got in transactions.items():
            seqs = sorted(seq for seq, _ in got)
            kinds = [kind for _, kind in got]
            if seqs != list(range(len(seqs))):
                problems.append(f"{view.station_id} {transaction}: seqNo {seqs} (one missing)")
            if kinds.count("Started") != 1 or kinds.count("Ended") > 1:
                problems.append(
                    f"{view.station_id} {transaction}: {kinds.count('Started')} Started,"
                    f" {kinds.count('Ended')} Ended"
                )
            if "Ended" not in kinds and transaction != view.transaction:
                problems.append(f"{view.station_id} {transaction}: never ended")
    return problems, copies


async def run_replicas_demo(duration: float | None, log_level: str, replicas: int) -> bool:
    configure_demo_logging(log_level)
    console = Console()
    pg = LocalPostgres()
    await asyncio.to_thread(pg.start)  # PostgresMissing: the CLI says what to install
    try:
        return await _run(console, pg.url, duration, log_level, replicas)
    finally:
        await asyncio.to_thread(pg.stop)


async def _run(
    console: Console, store: str, duration: float | None, log_level: str, count: int
) -> bool:
    views = {sid: StationView(sid, protocol) for sid, protocol in CHARGERS.items()}
    sessions: dict[str, DemoCsms] = {}
    csms_sessions: list[asyncio.Task[Any]] = []

    csms_handler = demo_csms_handler(views, sessions, csms_sessions)

    stop = asyncio.Event()
    drivers: dict[str, asyncio.Task[Any]] = {}
    unfinished: list[str] = []
    failover = Failover()
    roamers: dict[str, Roaming] = {}
    fleet: list[Replica] = []
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocpp-bridge-demo-")))
        mapping = stack.enter_context(_as_file(TABLE_104))
        csms_server = await serve(
            csms_handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]
        )
        stack.push_async_callback(_close_csms, csms_server, csms_sessions)
        csms_port = next(iter(csms_server.sockets)).getsockname()[1]

        chargers104 = {
            sid: Charger104(compile_file(mapping, 1), IDLE_104, react=True, confirm_delay=0.005)
            for sid in (DEMO_104, DEMO_104B)
        }
        for charger in chargers104.values():
            await charger.start()
            stack.push_async_callback(charger.stop)
        card_charger = Outstation(load_reference(TABLE_CARD).compile(1), serial=CARD_SERIAL)
        stack.push_async_callback(card_charger.stop)

        for index in range(count):
            name = chr(ord("A") + index)
            folder = workdir / name
            folder.mkdir()
            replica = Replica(name, folder / "bridge.toml", free_port(), free_port(), free_port())
            replica.config.write_text(
                _replica_toml(
                    replica,
                    store,
                    csms_port,
                    log_level,
                    {sid: charger.port for sid, charger in chargers104.items()},
                    mapping,
                )
            )
            fleet.append(replica)
            stack.push_async_callback(replica.stop)
        for replica in fleet:  # one after the other: the first creates the schema
            await replica.start()

        console.print(f"PostgreSQL {store.rsplit('@', 1)[-1]} (a local server, for this demo only)")
        console.print(f"CSMS      ws://127.0.0.1:{csms_port}/ocpp (the `ocpp` package)")
        for replica in fleet:
            console.print(
                f"replica {replica.name} {replica.south_url} (pid {replica.pid}; status"
                f" http://127.0.0.1:{replica.health}/status)",
                soft_wrap=True,
            )
        console.print(
            f"{DEMO_16} and {DEMO_201} are given every replica's address; {DEMO_104} and"
            f" {DEMO_104B} (IEC 104, dialled) are spread by the leases; {DEMO_CARD} dials in to"
            f" replica A, then the next after a drop. Replica A is killed (SIGKILL) mid-session.",
            soft_wrap=True,
        )

        urls = tuple(replica.south_url for replica in fleet)
        await card_charger.dial_in(
            "127.0.0.1",
            fleet[0].iec104,
            retry=0.5,
            others=tuple(("127.0.0.1", replica.iec104) for replica in fleet[1:]),
        )
        for sid, start_at in ((DEMO_16, 0), (DEMO_201, 1 % count)):
            charger_class = RoamingCharger16 if sid == DEMO_16 else RoamingCharger201
            roaming = charger_class(sid, None, response_timeout=10)
            roaming.turn = start_at
            await roaming.attach(urls, CHARGERS[sid])
            stack.push_async_callback(roaming.detach)
            roamers[sid] = roaming
        for sid in CHARGERS:
            if sid == DEMO_CARD:
                drive: Callable[[asyncio.Event], Coroutine[Any, Any, None]] = DemoCardSession(
                    card_charger, views[sid], PATIENCE
                ).drive
            elif sid in chargers104:
                drive = Demo104Session(chargers104[sid], sessions, views[sid], PATIENCE).drive
            else:
                drive = roamers[sid].drive  # type: ignore[attr-defined]
            drivers[sid] = asyncio.create_task(drive(stop))

        owners = asyncio.create_task(_watch_owners(store, fleet, views, roamers, console, failover))
        killer = asyncio.create_task(
            _kill_mid_session(fleet[0], views, duration, failover, console)
        )
        try:
            await _watch(console, views, drivers, duration)
        finally:
            stop.set()
            await asyncio.wait(drivers.values(), timeout=30)  # neither raises nor cancels
            unfinished = [sid for sid, task in drivers.items() if not task.done()]
            for task in [*drivers.values(), owners, killer]:
                task.cancel()
            await asyncio.gather(*drivers.values(), owners, killer, return_exceptions=True)
    errors = {
        sid: task.exception()
        for sid, task in drivers.items()
        if task.done() and not task.cancelled() and task.exception() is not None
    }
    return _summary(console, views, errors, unfinished, failover, roamers)


@contextlib.contextmanager
def _as_file(table: str) -> Any:
    from importlib import resources

    with resources.as_file(shipped_table(table)) as path:
        yield path


async def _watch_owners(
    store: str,
    fleet: list[Replica],
    views: dict[str, StationView],
    roamers: dict[str, Roaming],
    console: Console,
    failover: Failover,
) -> None:
    """Who serves each station (module rules), twice a second; each of the victim's stations, the
    first time a survivor serves it after the kill."""
    names = {str(replica.pid): replica.name for replica in fleet}
    by_url = {replica.south_url: replica.name for replica in fleet}
    connection = await psycopg.AsyncConnection.connect(store, autocommit=True)
    try:
        while True:
            with contextlib.suppress(psycopg.Error):
                cursor = await connection.execute(
                    "SELECT station, owner FROM leases WHERE expires > now()"
                )
                rows = await cursor.fetchall()
                owner_of = {str(station): str(owner) for station, owner in rows}
                for sid, view in views.items():
                    if sid in roamers and sid not in owner_of:  # between two connections
                        view.served_by = by_url.get(roamers[sid].url, "")
                        continue
                    owner = owner_of.get(sid)
                    pid = owner.split("/")[1] if owner and owner.count("/") >= 2 else ""
                    view.served_by = names.get(pid, "")
            if failover.at:
                for sid in failover.stations:
                    by = views[sid].served_by
                    if sid not in failover.taken and by and by != failover.victim:
                        failover.taken[sid] = (by, time.monotonic() - failover.at)
                        console.print(
                            f"{sid} served by replica {by}"
                            f" {failover.taken[sid][1]:.1f} s after the kill"
                        )
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def _kill_mid_session(
    victim: Replica,
    views: dict[str, StationView],
    duration: float | None,
    failover: Failover,
    console: Console,
) -> None:
    """SIGKILL the victim (module rules: when)."""
    loop = asyncio.get_running_loop()
    latest = loop.time() + (duration / 2 if duration is not None else 20.0)
    while loop.time() < latest:
        ready = all(view.ended >= 1 for view in views.values())
        served = [s for s, v in views.items() if v.served_by == victim.name]
        mid = [s for s in served if views[s].transaction]
        if ready and mid and len(mid) >= len(served) - 1:  # most of its stations mid-session
            break
        await asyncio.sleep(0.1)
    failover.victim = victim.name
    failover.stations = [sid for sid, view in views.items() if view.served_by == victim.name]
    failover.in_flight = {
        sid: views[sid].transaction  # type: ignore[misc]
        for sid in failover.stations
        if views[sid].transaction
    }
    failover.ended_before = {sid: view.ended for sid, view in views.items()}
    await victim.kill()
    failover.at = victim.killed_at or time.monotonic()
    under_way = ", ".join(f"{sid} {tx}" for sid, tx in failover.in_flight.items()) or "none"
    console.print(
        f"killed replica {victim.name} (pid {victim.pid}, SIGKILL); it served"
        f" {', '.join(failover.stations) or 'nothing'}; transactions under way: {under_way}",
        soft_wrap=True,
    )


def _summary(
    console: Console,
    views: dict[str, StationView],
    errors: dict[str, BaseException | None],
    unfinished: list[str],
    failover: Failover,
    roamers: dict[str, Roaming],
) -> bool:
    problems, copies = check_events(views)
    card_sessions = views[DEMO_CARD].card_sessions(DEMO_CARD_TOKEN)
    if not failover.at:
        problems.append("no replica was killed (the demo ended first)")
    for sid in failover.stations:
        if sid not in failover.taken:
            problems.append(f"{sid}: no survivor served it")
    for sid, view in views.items():
        if failover.at and view.ended <= failover.ended_before.get(sid, 0):
            problems.append(f"{sid}: no transaction ended after the kill")
    for sid, transaction in failover.in_flight.items():
        ended = {tx for tx, _, kind, _ in views[sid].events if kind == "Ended"}
        if transaction not in ended:
            problems.append(f"{sid}: transaction {transaction}, under way at the kill, not ended")
    ok = (
        not errors
        and not unfinished
        and not problems
        and all(v.booted and v.ended >= 1 for v in views.values())
        and card_sessions is not None
    )
    console.print(_table(views))
    for view in views.values():
        transactions = {tx for tx, _, _, _ in view.events}
        console.print(
            f"summary {view.station_id} ({view.protocol}): booted={view.booted}"
            f" transactions={len(transactions)} ended={view.ended}"
            f" events={len(view.events)} served by {view.served_by or '-'} at the end"
            + (
                f" card sessions={card_sessions if card_sessions is not None else 'WRONG'}"
                if view.station_id == DEMO_CARD
                else ""
            ),
            soft_wrap=True,
        )
    if failover.at:
        taken = ", ".join(
            f"{sid} → {by} in {seconds:.1f} s" for sid, (by, seconds) in failover.taken.items()
        )
        continued = ", ".join(
            f"{sid} {tx} ended with the same id" for sid, tx in failover.in_flight.items()
        )
        console.print(
            f"failover: replica {failover.victim} killed; {taken or 'nothing to take over'};"
            f" {continued or 'no transaction was under way on it'}",
            soft_wrap=True,
        )
    moved = ", ".join(
        f"{sid} moved {r.moves}x, sent {r.resent} again" for sid, r in roamers.items()
    )
    console.print(
        f"transaction events: {sum(len(v.events) for v in views.values())}, lost 0 and duplicated 0"
        f" unless listed below; identical copies (at-least-once across the failover): {copies};"
        f" chargers: {moved}",
        soft_wrap=True,
    )
    for problem in problems:
        console.print(f"problem: {problem}", soft_wrap=True)
    for sid, error in errors.items():
        console.print(f"charger {sid} failed: {error!r}", soft_wrap=True)
    for sid in unfinished:
        console.print(f"charger {sid} did not finish its session in time")
    console.print("demo result: " + ("OK" if ok else "FAILED"), soft_wrap=True)
    return ok
