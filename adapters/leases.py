"""Station leases on the event loop (`[bridge] leases = true`): the asyncio side of the lease rows and
fencing in adapters/store_pg.py (its docstring: the rules, and why rows rather than advisory locks).

Rules
- `LeaseKeeper.take(station, force)` takes (or keeps) a station's lease off the event loop (a thread:
  one round trip to the server) and returns its epoch, or None when another bridge holds a live lease
  and `force` is off. A station host takes it with `force` when its charger connects here (the charger
  left its previous bridge, which therefore lost it), without `force` at start-up to deliver what the
  store queued for a station nobody serves.
- `watch(station, lost, adopt)`: `lost()` is called on the event loop when this bridge loses the
  station's lease: a renewal found it taken over, or a write of the station was refused (fenced). The
  host then closes the station's connections, charger and CSMS; a charger that comes back here takes it
  again. `adopt()` is awaited when the sweep finds the station orphaned (below).
- `run()`, every `lease_seconds / 3`: renews every lease held, in one statement; then sweeps: the
  stations watched here and not held that have queued messages in the store and whose lease is free
  or expired (`PgStore.orphans`, one query) are adopted, each host taking the lease without force. So
  when a bridge dies, the survivors deliver its stations' queues within about `lease_seconds * 4/3`,
  without waiting for the chargers to reconnect. A tick that fails (the server unreachable) is logged
  and tried again at the next one; the leases run out on their own if the server stays away longer
  than `lease_seconds` (another bridge may then take them, and this bridge's writes are refused).
- Dial-out IEC 104 stations (`dial_out(station, claimed, give_up)`) are spread over the live replicas:
  at every tick (and at once after `kick()`, at start-up) this bridge records itself as live
  (`PgStore.heartbeat`, which counts the live replicas), its fair share is ceil(dial-out stations /
  live replicas); holding fewer, it claims free or expired ones until it holds its share: their
  leases taken without force in one statement per `CLAIM_BATCH` stations (`PgStore.take_free_leases`;
  those another bridge was faster to are left out) and the state of those taken read in one query
  (`PgStore.load_many`, off the event loop), then `claimed(epoch, state)` for each (the host builds
  its core from that state, serves it and dials the charger); holding
  more (a replica came up), it gives the extra ones up (`give_up()`: the station's connections closed
  and its lease released), for the new replica to claim at its next tick. A killed replica's dial-out
  stations are claimed by the others once its leases expire, within about `lease_seconds * 4/3`.
  Serving a claimed station takes time (its core built, its link started): a claim loop that lasts
  longer than a third of `lease_seconds` (thousands of stations) renews this bridge's leases and its `replicas`
  row on the way, or the leases it took first would expire before the loop ends and other replicas
  would claim them while this one still dials them (found by bench/replicas.py: 3 replicas, 5,000
  stations, `lease_seconds = 5`, when every claim took its lease alone: every lease expired, the
  links flapped between the replicas).
  Every replica has the same configuration (the same dial-out stations): each records a hash of its
  station list (`station_list_hash`: id, protocol, dial, host, port of every station) in its
  `replicas` row at every tick; a replica that sees live replicas with another hash logs a warning
  `lease.config_differs` once per (replica, hash) and lists them in `config_differs` (/ready).
- Served elsewhere: after every tick the stations watched here and not held here whose lease another
  bridge holds (live) are "elsewhere" (`is_elsewhere`; the `elsewhere(flag)` given to `watch` is told
  of every change): neither up nor down on this replica (the 104 link gauge, /ready, the status page),
  so a station is reported down only where it is served, or everywhere when nobody serves it (its
  lease free: a dial-in charger that dialled in nowhere). A lease taken here clears it at once; a
  lease lost here sets it at once.
- `held()`, `takeovers()`, `refusals()`, `lost()`: the store's counters (/ready, /metrics).
- Stations whose state lives in their connections only (OCPP 2.0.1 pass-through) hold a lease while
  their charger is connected here (`ConnectionLeases`): taken with force when it connects (one round
  trip; the store unreachable: the charger is closed with 1013 and tries again), released when its
  newest connection here ends, and losing it (another replica's charger connection took it) closes
  that connection with 1013, so a replica that was paused or cut off does not keep a second CSMS
  connection of the station open beside its successor's. Take and release of one station are
  serialised, and only the newest connection's end releases: a charger that reconnects here before
  its old connection is torn down keeps its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from adapters.store_api import StoreError
from adapters.store_pg import PgStore

# A dial-out station's host, given the lease's epoch and the station's state as the store holds it
Claimed = Callable[[int, dict[str, dict[str, Any]]], Awaitable[bool]]
CLAIM_BATCH = 500  # dial-out leases taken per statement (a bounded statement, a bounded wait)


def station_list_hash(stations: Iterable[Any]) -> str:
    """A short hash of the station list (what the replicas must agree on; module rules)."""
    fields = ("id", "protocol", "dial", "host", "port")
    listed = sorted([getattr(station, name, None) for name in fields] for station in stations)
    return hashlib.sha256(json.dumps(listed, default=str).encode()).hexdigest()[:16]


class LeaseKeeper:
    def __init__(self, store: PgStore, log: Any, config_hash: str = "") -> None:
        self._store = store
        self._log = log
        self._config_hash = config_hash
        self._warned: set[tuple[str, str]] = set()  # (replica, hash) already logged
        self.config_differs: list[str] = []  # live replicas whose station list is another one
        self._watchers: dict[str, Callable[[], None]] = {}
        self._adopters: dict[str, Callable[[], Awaitable[None]]] = {}
        self._dial_out: dict[str, tuple[Claimed, Callable[[], Awaitable[None]]]] = {}
        self._on_elsewhere: dict[str, Callable[[bool], None]] = {}
        self._elsewhere: set[str] = set()
        self._kick = asyncio.Event()
        self.live_replicas = 1
        self._loop = asyncio.get_running_loop()
        store.on_lease_lost = self._lost_in_thread

    async def take(self, station: str, *, force: bool) -> int | None:
        """The epoch of `station`'s lease, held by this bridge now; None (see the module rules).
        Raises StoreError."""
        epoch = await asyncio.to_thread(self._store.take_lease, station, force=force)
        if epoch is not None:
            self._mark(station, False)
        return epoch

    async def release(self, station: str) -> None:
        """Give `station`'s lease up (its submitted writes written first). Raises StoreError."""
        await asyncio.to_thread(self._store.release_lease, station)

    def watch(
        self,
        station: str,
        lost: Callable[[], None],
        adopt: Callable[[], Awaitable[None]] | None = None,
        elsewhere: Callable[[bool], None] | None = None,
    ) -> None:
        self._watchers[station] = lost
        if adopt is not None:
            self._adopters[station] = adopt
        if elsewhere is not None:
            self._on_elsewhere[station] = elsewhere

    def is_elsewhere(self, station: str) -> bool:
        """Another bridge held `station`'s lease at the last look (module rules)."""
        return station in self._elsewhere

    def _mark(self, station: str, elsewhere: bool) -> None:
        if (station in self._elsewhere) == elsewhere:
            return
        if elsewhere:
            self._elsewhere.add(station)
        else:
            self._elsewhere.discard(station)
        tell = self._on_elsewhere.get(station)
        if tell is not None:
            tell(elsewhere)

    async def _look_elsewhere(self) -> None:
        """Which watched stations another bridge serves now (one query). Raises StoreError."""
        watched = list(self._watchers)
        free = set(await asyncio.to_thread(self._store.free, watched))
        for station in watched:
            self._mark(station, station not in free and not self._store.holds(station))

    def dial_out(
        self,
        station: str,
        claimed: Claimed,
        give_up: Callable[[], Awaitable[None]],
    ) -> None:
        """A dial-out 104 station, spread over the live replicas (module rules)."""
        self._dial_out[station] = (claimed, give_up)

    def kick(self) -> None:
        """A tick now rather than at the next interval (start-up: claim dial-out stations at once)."""
        self._kick.set()

    def _lost_in_thread(self, station: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
            self._loop.call_soon_threadsafe(self._lost, station)

    def _lost(self, station: str) -> None:
        self._log.warning("lease.lost", station_id=station)
        self._mark(station, True)
        watcher = self._watchers.get(station)
        if watcher is not None:
            watcher()

    async def run(self) -> None:
        interval = self._store.lease_seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._kick.wait()
            self._kick.clear()
            try:
                await asyncio.to_thread(self._store.renew_leases)
                orphans = await asyncio.to_thread(self._store.orphans, list(self._adopters))
                self.live_replicas = await asyncio.to_thread(
                    self._store.heartbeat, self._config_hash
                )
            except StoreError as exc:
                self._log.warning("lease.renewal_failed", reason=str(exc))
                continue
            self._compare_configs()
            for station in orphans:
                self._log.info("lease.adopting", station_id=station)
                await self._adopters[station]()
            try:
                await self._balance()
                await self._look_elsewhere()
            except StoreError as exc:
                self._log.warning("lease.renewal_failed", reason=str(exc))

    def _compare_configs(self) -> None:
        others = dict(self._store.other_configs)
        self.config_differs = sorted(others)
        new = set(others.items()) - self._warned
        if new:
            self._warned |= new
            self._log.warning(
                "lease.config_differs",
                replicas=sorted(owner for owner, _ in new),
                theirs=sorted({digest for _, digest in new}),
                ours=self._config_hash,
                detail="replicas of one configuration must have the same stations",
            )

    def fair_share(self) -> int:
        """ceil(dial-out stations / live replicas): the dial-out stations this bridge serves."""
        return -(-len(self._dial_out) // max(1, self.live_replicas))

    async def _balance(self) -> None:
        """Claim free dial-out stations up to the fair share, or give extra ones up (module rules)."""
        if not self._dial_out:
            return
        share = self.fair_share()
        stations = sorted(self._dial_out)
        held = [station for station in stations if self._store.holds(station)]
        if len(held) > share:
            for station in held[share:]:
                self._log.info("lease.giving_up", station_id=station, share=share)
                self._mark(station, True)  # the replica that made this one give it up claims it
                await self._dial_out[station][1]()
            return
        if len(held) == share:
            return
        free = await asyncio.to_thread(self._store.free, stations)
        random.shuffle(free)  # replicas starting together do not all race for the same ones
        wanted = share - len(held)
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while wanted > 0 and free:
            batch, free = free[: min(wanted, CLAIM_BATCH)], free[min(wanted, CLAIM_BATCH) :]
            taken = await asyncio.to_thread(self._store.take_free_leases, batch)
            try:
                states = await asyncio.to_thread(self._store.load_many, list(taken))
            except StoreError:
                # the leases run out on their own; released now if the store allows
                await asyncio.to_thread(self._store.release_leases, list(taken))
                raise
            for station in batch:  # in the shuffled order
                epoch = taken.get(station)
                if epoch is None:
                    continue  # another bridge was faster
                if loop.time() - renewed >= self._store.lease_seconds / 3:
                    # a long claim loop (thousands of stations: a state read each) renews what
                    # this bridge holds, and its `replicas` row, as the tick would
                    await asyncio.to_thread(self._store.renew_leases)
                    self.live_replicas = await asyncio.to_thread(
                        self._store.heartbeat, self._config_hash
                    )
                    renewed = loop.time()
                self._log.info("lease.claiming", station_id=station, share=share)
                self._mark(station, False)
                if await self._dial_out[station][0](epoch, states[station]):
                    wanted -= 1

    def figures(self) -> tuple[int, int, int, int]:
        """(held, takeovers, fencing refusals, lost): /metrics."""
        return self.held(), self.takeovers(), self.refusals(), self.lost()

    def held(self) -> int:
        return self._store.leases_held()

    def takeovers(self) -> int:
        return self._store.lease_takeovers

    def refusals(self) -> int:
        return self._store.fencing_refusals

    def lost(self) -> int:
        return self._store.leases_lost


class ConnectionLeases:
    """Leases of stations served only while their charger is connected (module rules)."""

    def __init__(self, keeper: LeaseKeeper, log: Any) -> None:
        self._keeper = keeper
        self._log = log
        self._locks: dict[str, asyncio.Lock] = {}
        self._current: dict[str, object] = {}  # station → the token of its newest connection here
        self._close: dict[str, Callable[[], None]] = {}

    def watch(self, station: str) -> None:
        self._locks[station] = asyncio.Lock()
        self._keeper.watch(station, lambda: self._lost(station))

    async def take(self, station: str, close: Callable[[], None]) -> object | None:
        """A token for `release` once the station's lease is held here; None when the store could
        not be reached (logged). `close()` is called if the lease is lost meanwhile."""
        async with self._locks[station]:
            try:
                await self._keeper.take(station, force=True)
            except StoreError as exc:
                self._log.warning("lease.unavailable", station_id=station, reason=str(exc))
                return None
            token = object()
            self._current[station] = token
            self._close[station] = close
            return token

    async def release(self, station: str, token: object) -> None:
        """The connection of `token` ended: the lease is given up unless a newer one holds it."""
        async with self._locks[station]:
            if self._current.get(station) is not token:
                return
            del self._current[station]
            del self._close[station]
            try:
                await self._keeper.release(station)
            except StoreError as exc:  # the lease runs out on its own
                self._log.warning("lease.unavailable", station_id=station, reason=str(exc))

    def _lost(self, station: str) -> None:
        self._current.pop(station, None)
        close = self._close.pop(station, None)
        if close is not None:
            close()
