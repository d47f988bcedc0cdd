"""When the garbage collector may stop the event loop: rarely, and never for long at 10,000 stations.

Rules
- CPython's cyclic collector stops the whole process while it walks the objects of the generations it
  collects. A full collection walks every object the stations hold: measured at 9,950 stations
  (`make bench`, 460 MB), 0.99 s, twice in 40 s of steady traffic, which was the loop's worst lag.
- `freeze_startup_objects()` (once, after start-up): everything start-up loaded (schemas, tables,
  modules) leaves the generations for good (`gc.freeze()`).
- `GcPolicy.run()` (`ocpp-bridge run`) sets the collection thresholds to `THRESHOLDS` (20,000
  allocations for a young collection instead of 700) and every `freeze_interval` seconds (5) calls
  `gc.freeze()` (no time: a list splice): what survived that long (connections, station state, the
  coroutines and futures each connection waits in) leaves the generations, so no collection walks it
  again. Young collections were the remaining stalls: every connection's newest waiting coroutine
  and futures outlive a young collection (90,000 objects at 10,000 stations, 50-175 ms of CPU each).
  Frozen objects are still freed by reference counting when they go; only cyclic garbage among them
  waits, for `full_interval` seconds (900): then `gc.unfreeze()`, one full collection (logged as
  `gc.full_collection` with its duration and what it freed), and `gc.freeze()` again.
- So whatever a connection leaves behind must not need the cyclic collector: a closed WebSocket
  connection makes no cycle (`adapters.ocpp.ws_direct` breaks websockets' at `connection_lost`). Before
  that, a storm of 1,000,000 connections (issue 17: a third refused 404, a third bare TCP, a third
  upgraded then dropped) grew RSS from 84 to 325 MB, mostly cyclic garbage waiting here; after,
  from 84 to 105 MB (+21 MiB, flat for its last minutes).
- Measured (`make bench` scale step, 9,950 stations, 1 message per station per 10 s, load generators
  on uvloop and frozen after connecting): with CPython's defaults two full collections of up to 0.99 s
  fell into the 40 s window, loop lag p99 214 ms and max 1.6 s; with this policy no collection at
  all, loop lag p99 10 ms, p99.9 50 ms, max 60 ms.
"""

from __future__ import annotations

import asyncio
import gc
import time

from adapters.ops.logs import get_logger

FREEZE_INTERVAL = 5.0
FULL_INTERVAL = 900.0
# (generation 0, 1, 2) thresholds; CPython's are (700, 10, 10)
THRESHOLDS = (20_000, 20, 1000)


def freeze_startup_objects() -> None:
    gc.collect()
    gc.freeze()


class GcPolicy:
    def __init__(
        self, freeze_interval: float = FREEZE_INTERVAL, full_interval: float = FULL_INTERVAL
    ) -> None:
        self.freeze_interval = freeze_interval
        self.full_interval = full_interval
        self.freezes = 0
        self.full_collections = 0
        self._log = get_logger()

    def freeze_survivors(self) -> None:
        # No collection first: a young collection here walked every connection's newest waiting
        # coroutines and futures (90,000 objects, 50-175 ms at 10,000 stations); `gc.freeze()` alone
        # takes no time. The cyclic garbage it freezes with them waits for the next full collection.
        gc.freeze()
        self.freezes += 1

    def full_collection(self) -> float:
        """Unfreeze, collect everything, freeze again; returns the pause in seconds."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        pause = time.perf_counter() - started
        self.full_collections += 1
        self._log.info(
            "gc.full_collection",
            seconds=round(pause, 3),
            collected=found,
            frozen=gc.get_freeze_count(),
        )
        return pause

    async def run(self) -> None:
        """Until cancelled."""
        gc.set_threshold(*THRESHOLDS)
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.full_interval
        while True:
            await asyncio.sleep(self.freeze_interval)
            if loop.time() >= next_full:
                self.full_collection()
                next_full = loop.time() + self.full_interval
            else:
                self.freeze_survivors()
