"""WebSocket keepalive for every connection of one side: pings for links that have gone quiet.

Rules
- A watched connection (`adapters.connection.Connection`, whose `last_received` notes when its peer
  last sent a message or a pong) whose peer has sent neither for `interval` seconds is pinged; if
  neither has come `timeout` seconds after that ping, it is failed with 1011 "keepalive ping timeout" (the closing handshake then gets its
  own close timeout). A station that talks more often than `interval` is never pinged. The peer's own
  pings do not count: a peer that still pings but no longer reads is a dead link too. `timeout` None:
  a ping, but no failure.
- One `loop.call_at` timer per side, on a grid of `tick` seconds (at most 1 s, at most a quarter of the
  interval and of the timeout): each firing handles every connection due by then, so the pings of one
  tick are written together and their pongs come back together.
- A link that dies is noticed within interval + timeout + 2 ticks plus the close timeout: 45 s with
  the defaults (20 + 20 + 2 + 3), under a minute.
- Why: websockets runs a sleeping task per connection for this, and a ping on its own schedule: at
  10,000 stations, 1,000 pings and pongs a second, each waking the loop on its own, about a third of a
  core on these machines while nothing else happened (bench/, scale step, idle share).
- Pings are written synchronously (`ping_now`), without a task; only failing a dead connection runs
  in a task. Connections are held by weak reference and forgotten once closed.
- A firing looks at no more than `PER_TURN` connections; the rest are looked at in the loop's next
  turns, so frames that arrived meanwhile are not held up. Why: connections that came up together (a
  restart, a storm) go quiet together, and pinging 5,000 of them at once held the loop for tens of
  milliseconds (bench/, scale step at 10k stations, `--stall-watch-ms`).
- Everything runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import weakref
from typing import Any

from adapters.connection import Connection
from adapters.ops.logs import get_logger

MAX_TICK = 1.0
PER_TURN = 256  # connections looked at per turn of the event loop
CLOSE_INTERNAL_ERROR = 1011  # RFC 6455 §7.4.1


class Keepalive:
    def __init__(self, interval: float, timeout: float | None, *, side: str) -> None:
        self.interval = interval
        self.timeout = timeout
        self.tick = min(MAX_TICK, interval / 4, timeout / 4 if timeout is not None else MAX_TICK)
        self._log = get_logger().bind(side=side)
        # (due, tie-breaker, connection): when each watched connection is looked at next
        self._due: list[tuple[float, int, weakref.ref[Connection]]] = []
        self._order = itertools.count()
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._failing: set[asyncio.Task[None]] = set()
        self.pings = 0  # sent so far, for tests and diagnostics

    def watch(self, connection: Connection) -> None:
        """Keep `connection` alive (and check it is) from now until it closes."""
        self._schedule(connection, connection.last_received + self.interval)

    @property
    def watched(self) -> int:
        """Connections being looked after (closed ones may linger until they come due)."""
        return len(self._due)

    def close(self) -> None:
        """Stop pinging (the connections themselves are closed by their owners)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        self._due.clear()
        for task in self._failing:
            task.cancel()

    def _schedule(self, connection: Connection, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._order), weakref.ref(connection)))
        self._arm(due)

    def _arm(self, due: float) -> None:
        """Fire at `due` on the grid (connections due within one tick share a firing), unless the
        timer fires earlier already."""
        at = math.ceil(due / self.tick) * self.tick
        if self._timer_at is None or at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            self._timer = asyncio.get_running_loop().call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due_list = self._due
        later: list[tuple[Connection, float]] = []
        looked_at = 0
        while due_list and due_list[0][0] <= now:
            if looked_at == PER_TURN:
                # the rest on the loop's next turn; `_arm` keeps this handle, as it fires first
                self._timer_at = now
                self._timer = loop.call_soon(self._on_timer)
                break
            looked_at += 1
            _, _, ref = heapq.heappop(due_list)
            connection = ref()
            if connection is None or not connection.is_open:
                continue  # closed (or closing): forgotten
            next_due = self._look_at(connection, now)
            if next_due is not None:
                later.append((connection, next_due))
        for connection, next_due in later:
            self._schedule(connection, next_due)
        if due_list and self._timer is None:
            self._arm(due_list[0][0])

    def _look_at(self, connection: Connection, now: float) -> float | None:
        """Ping, fail or leave `connection`; when to look at it next (None: never)."""
        sent = connection.ping_sent_at
        if sent is not None:
            if connection.last_received >= sent:
                connection.ping_sent_at = None  # answered, or something else came
            elif self.timeout is not None and now >= sent + self.timeout:
                self._fail(connection)
                return None
            else:
                return sent + self.timeout if self.timeout is not None else now + self.interval
        quiet_until = connection.last_received + self.interval
        if now < quiet_until:
            return quiet_until
        if not connection.ping_now():
            return None
        self.pings += 1
        connection.ping_sent_at = now
        return now + (self.timeout if self.timeout is not None else self.interval)

    def _fail(self, connection: Connection) -> None:
        self._log.info("keepalive.timeout", timeout=self.timeout)
        task = asyncio.get_running_loop().create_task(
            connection.close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
        )
        self._failing.add(task)
        task.add_done_callback(self._failing.discard)


def keepalive_options() -> dict[str, Any]:
    """websockets' own keepalive off: a `Keepalive` does it."""
    return {"ping_interval": None, "ping_timeout": None}
