"""IEC 104 links run in worker processes (`adapters.iec104_worker`), seen from the bridge as local links.

```python
workers = LinkWorkers(per_process=100, log_format="json", log_level="info")
link = RemoteLink(workers, station, consumer=..., log=..., settings=LinkSettings())
await link.run()          # until cancelled, as Iec104Link.run
workers.close()           # at shutdown: every worker process ends
```

Rules
- `RemoteLink` has the interface `Iec104Host` uses of an `Iec104Link`: `run()`, `command()`,
  `interrogate()`, `is_up`, `received`, `callback_failures`; its consumer gets the same batches of
  `LinkEvent`s, decoded from the worker's lines on the bridge's event loop.
- `LinkWorkers` starts worker processes on demand, `per_process` links each (a worker that aborts takes
  that many links down, and each worker's c104 threads compete only among themselves for its GIL).
- A worker that ends (an abort inside lib60870, a kill) is noticed by its stdout closing: each of its
  links that was up gets `LinkDown("104 worker ended ...")`, each command still waiting for its
  confirmation a negative `CommandConfirmed` (exactly one per command, as `Iec104Link` promises), and
  a new worker is started after a back-off (1 s, doubling to 30 s while workers keep ending within a
  minute) and opens the same links again. The OCPP side (the station cores, their CSMS connections)
  sees only a link drop; the cores keep their transactions across it.
- A command or interrogation while the link's worker is not running is answered at once (negatively;
  an interrogation is dropped: the next link-up brings a general interrogation anyway).
- `close()` ends every worker (its stdin closes; it stops its links; SIGKILL after 5 s) and restarts
  none.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson

from adapters.config import Iec104Station
from adapters.iec104_link import LinkSettings
from adapters.iec104_worker import decode_events, encode_command
from adapters.logs import get_logger
from bridge.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    Send104Command,
)

RESTART_FIRST = 1.0
RESTART_MAX = 30.0
STABLE_AFTER = 60.0  # a worker that ran this long resets the back-off
STOP_GRACE = 5.0


class RemoteLink:
    """One charger's 104 link, carried out by a worker process."""

    def __init__(
        self,
        workers: LinkWorkers,
        station: Iec104Station,
        *,
        consumer: Callable[[list[LinkEvent]], None],
        log: Any,
        settings: LinkSettings | None = None,
    ) -> None:
        self.station = station
        self.settings = settings or LinkSettings()
        self._workers = workers
        self._consumer = consumer
        self._log = log
        self._up = False
        self._waiting: dict[int, Send104Command] = {}  # command id → command, until confirmed
        self._worker: _Worker | None = None
        self.link_id = next(workers.ids)
        self.received = 0
        self.callback_failures = 0

    @property
    def is_up(self) -> bool:
        return self._up

    async def run(self) -> None:
        """Until cancelled; then the worker stops the link."""
        self._workers.attach(self)
        try:
            await asyncio.Event().wait()
        finally:
            self._workers.detach(self)
            self._worker = None

    def command(self, command: Send104Command) -> None:
        worker = self._worker
        if worker is None or not worker.running:
            self._answer_later(command, "the 104 worker is not running")
            return
        self._waiting[command.command_id] = command
        loop = asyncio.get_running_loop()
        worker.send({"op": "cmd", "l": self.link_id, "c": encode_command(command, loop.time())})

    def interrogate(self, counters: bool) -> None:
        worker = self._worker
        if worker is not None and worker.running:
            worker.send({"op": "gi", "l": self.link_id, "counters": counters})

    # --- from the worker ---------------------------------------------------------------------------

    def opened_on(self, worker: _Worker) -> None:
        self._worker = worker
        worker.send(
            {
                "op": "open",
                "l": self.link_id,
                "station": self.station.model_dump(mode="json"),
                "settings": asdict(self.settings),
            }
        )

    def events(self, batch: list[LinkEvent]) -> None:
        for event in batch:
            if isinstance(event, PointUpdate):
                self.received += 1
            elif isinstance(event, CommandConfirmed):
                self._waiting.pop(event.command_id, None)
            elif isinstance(event, LinkUp):
                self._up = True
            elif isinstance(event, LinkDown):
                self._up = False
        self._deliver(batch)

    def worker_ended(self, reason: str) -> None:
        self._worker = None
        batch: list[LinkEvent] = []
        if self._up:
            self._up = False
            batch.append(LinkDown(reason))
        for command in self._waiting.values():
            batch.append(CommandConfirmed(command.command_id, command.ioa, False, reason))
        self._waiting.clear()
        if batch:
            self._deliver(batch)

    def _answer_later(self, command: Send104Command, why: str) -> None:
        confirmed = CommandConfirmed(command.command_id, command.ioa, False, why)
        asyncio.get_running_loop().call_soon(self._deliver, [confirmed])

    def _deliver(self, batch: list[LinkEvent]) -> None:
        try:
            self._consumer(batch)
        except Exception:  # noqa: BLE001 - the consumer's bug must not stop the link
            self._log.exception("iec104.consumer_failed")


class _Worker:
    """One worker process and the links it carries."""

    def __init__(self, pool: LinkWorkers, number: int) -> None:
        self.pool = pool
        self.number = number
        self.links: dict[int, RemoteLink] = {}
        self.process: asyncio.subprocess.Process | None = None
        self.running = False
        self.task: asyncio.Task[None] | None = None
        self.pid: int | None = None

    def send(self, message: dict[str, Any]) -> None:
        process = self.process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return
        process.stdin.write(orjson.dumps(message) + b"\n")

    async def run(self) -> None:
        delay = RESTART_FIRST
        log = self.pool.log.bind(worker=self.number)
        while not self.pool.closing:
            started = time.monotonic()
            reason = await self._one_life(log)
            for link in list(self.links.values()):
                link.worker_ended(reason)
            if self.pool.closing:
                return
            if time.monotonic() - started >= STABLE_AFTER:
                delay = RESTART_FIRST
            log.error("iec104.worker_ended", reason=reason, restart_in=delay, links=len(self.links))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)

    async def _one_life(self, log: Any) -> str:
        pool = self.pool
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.iec104_worker",
            "--log-format",
            pool.log_format,
            "--log-level",
            pool.log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        self.process = process
        assert process.stdout is not None
        try:
            ready = orjson.loads(await process.stdout.readline() or b"{}")
            if not ready.get("ready"):
                return "104 worker did not start"
            self.pid = ready.get("pid")
            self.running = True
            log.info("iec104.worker_started", pid=self.pid, links=len(self.links))
            for link in self.links.values():
                link.opened_on(self)
            while True:
                line = await process.stdout.readline()
                if not line:
                    break
                self._dispatch(line)
        finally:
            self.running = False
            self.process = None
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    if pool.closing:  # stdin is closed: it stops its links and ends
                        try:
                            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE)
                        except TimeoutError:
                            process.kill()
                    else:
                        process.kill()  # its channel is gone: it is of no use any more
            await process.wait()
        return f"104 worker ended (exit status {process.returncode})"

    def _dispatch(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
            link = self.links.get(int(message["l"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if link is None:
            return
        if "e" in message:
            link.events(decode_events(message["e"]))
        elif "f" in message:
            link.callback_failures = int(message["f"])


class LinkWorkers:
    """The worker processes of one bridge."""

    def __init__(
        self, per_process: int = 100, *, log_format: str = "json", log_level: str = "info"
    ) -> None:
        if per_process < 1:
            raise ValueError("per_process must be at least 1")
        self.per_process = per_process
        self.log_format = log_format
        self.log_level = log_level
        self.log = get_logger().bind(side="south", protocol="iec104")
        self.ids = itertools.count(1)
        self.closing = False
        self._workers: list[_Worker] = []

    @property
    def pids(self) -> list[int]:
        """The running worker processes (for tests, the benchmark and the operator)."""
        return [w.pid for w in self._workers if w.running and w.pid is not None]

    def attach(self, link: RemoteLink) -> None:
        worker = next((w for w in self._workers if len(w.links) < self.per_process), None)
        if worker is None:
            worker = _Worker(self, len(self._workers) + 1)
            self._workers.append(worker)
        worker.links[link.link_id] = link
        if worker.task is None:
            worker.task = asyncio.get_running_loop().create_task(
                worker.run(), name=f"iec104-worker-{worker.number}"
            )
        elif worker.running:
            link.opened_on(worker)

    def detach(self, link: RemoteLink) -> None:
        for worker in self._workers:
            if worker.links.pop(link.link_id, None) is not None:
                worker.send({"op": "close", "l": link.link_id})

    async def close(self) -> None:
        self.closing = True
        for worker in self._workers:
            process = worker.process
            if process is not None and process.stdin is not None:
                process.stdin.close()
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE + 1)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()
