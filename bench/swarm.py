"""The charger swarm: many OCPP websocket clients in one process, each timing its own request/response pairs.

Run as a child of the benchmark: `python -m bench.swarm`; everything else comes as commands.

Rules
- Stations live in named groups (a group: one target URL, one subprotocol). A station keeps one
  outstanding CALL at a time (OCPP-J), with a pre-built frame per message kind (`bench.messages`); its
  reader matches answers by message id and times the pair with `time.perf_counter`.
- A CALL from the other side (the bridge asking the charger something) is answered with a CALLERROR
  NotImplemented, valid in both 1.6 and 2.0.1, so it never blocks the bridge.
- Commands:
  - `connect`: open a group's connections (bounded concurrency, up to 3 attempts each), optionally boot
    each station (BootNotification, awaited);
  - `burst`: every station of a group sends `count` requests back to back (closed loop);
  - `steady`: every station of the given groups sends one request per `interval` seconds at a random
    phase for `duration` seconds (open loop): the latencies per group;
  - `storm_arm` / `storm_status`: from now on a station whose link drops reconnects by itself (random
    jitter, then retries) and sends one probe request; the monotonic time it was answered is recorded;
  - `close`: close a group's connections; `stats`: the swarm's own loop lag and RSS.
- Every wait is bounded (`timeout` of each command, deadlines of the storm).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import ssl
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    Control,
    LagSampler,
    install_stop_signals,
    raise_nofile_limit,
    self_rss_bytes,
    summary_ms,
    use_uvloop,
)
from bench.messages import FrameTemplate, requests


class CallFailed(Exception):
    pass


class Station:
    def __init__(self, station_id: str, group: Group) -> None:
        self.id = station_id
        self.group = group
        self.connection: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.counter = 0
        self.lost = asyncio.Event()
        self.reconnects = 0

    async def connect(self, open_timeout: float) -> None:
        group = self.group
        self.connection = await connect(
            f"{group.url}/{self.id}",
            subprotocols=[group.protocol],  # type: ignore[list-item]
            ssl=group.ssl,
            compression="deflate" if group.compression else None,
            ping_interval=None,
            open_timeout=open_timeout,
            close_timeout=3,
            max_size=1 << 20,
        )
        self.lost.clear()
        self.reader = asyncio.get_running_loop().create_task(self._read(self.connection))

    async def _read(self, connection: ClientConnection) -> None:
        try:
            async for message in connection:
                try:
                    frame = orjson.loads(message)
                    kind, message_id = frame[0], frame[1]
                except (orjson.JSONDecodeError, IndexError, TypeError):
                    continue
                if kind == 2:
                    answer = orjson.dumps(
                        [4, message_id, "NotImplemented", "bench charger", {}]
                    ).decode()
                    with contextlib.suppress(ConnectionClosed):
                        await connection.send(answer)
                    continue
                future = self.pending.pop(message_id, None)
                if future is not None and not future.done():
                    if kind == 3:
                        future.set_result(frame[2])
                    else:
                        future.set_exception(CallFailed(f"CALLERROR {frame[2]}"))
        except ConnectionClosed:
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(CallFailed("connection lost"))
            self.pending.clear()
            self.lost.set()
            self.group.on_lost(self)

    async def call(self, kind: str, wait_s: float) -> float:
        """Send one request of `kind`; return the round trip in seconds. Raises CallFailed."""
        connection = self.connection
        if connection is None:
            raise CallFailed("not connected")
        self.counter += 1
        message_id = f"b{self.counter}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        frame = self.group.templates[kind].frame(message_id)
        start = time.perf_counter()
        try:
            await connection.send(frame)
            await asyncio.wait_for(future, wait_s)
        except ConnectionClosed:
            raise CallFailed("connection closed") from None
        except TimeoutError:
            raise CallFailed("timeout") from None
        finally:
            self.pending.pop(message_id, None)
        return time.perf_counter() - start

    async def close(self) -> None:
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


class Group:
    def __init__(
        self,
        name: str,
        url: str,
        protocol: str,
        ids: list[str],
        ssl_context: ssl.SSLContext | None,
        compression: bool,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.ssl = ssl_context
        self.compression = compression
        self.templates = {
            kind: FrameTemplate(action, payload)
            for kind, (action, payload) in requests(protocol).items()
        }
        self.stations = [Station(station_id, self) for station_id in ids]
        # storm mode: reconnect on loss and probe
        self.storm: dict[str, Any] | None = None
        self.back: dict[str, float] = {}
        self.storm_errors: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_lost(self, station: Station) -> None:
        if self.storm is None:
            return
        task = asyncio.get_running_loop().create_task(self._come_back(station))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _come_back(self, station: Station) -> None:
        storm = self.storm
        assert storm is not None
        deadline = storm["deadline"]
        await asyncio.sleep(random.uniform(0, storm["jitter"]))
        while time.monotonic() < deadline:
            try:
                await station.connect(open_timeout=max(1.0, min(30.0, deadline - time.monotonic())))
            except Exception as exc:
                self._count(type(exc).__name__)
                await asyncio.sleep(random.uniform(1.0, 2.0))
                continue
            station.reconnects += 1
            try:
                await station.call(storm["kind"], max(1.0, deadline - time.monotonic()))
                self.back[station.id] = time.monotonic()
            except CallFailed as exc:
                self._count(f"probe: {exc}")
                if not station.lost.is_set():
                    await station.close()  # the reader's end schedules the next attempt
            return

    def _count(self, name: str) -> None:
        self.storm_errors[name] = self.storm_errors.get(name, 0) + 1

    async def cancel_storm(self) -> None:
        self.storm = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Swarm:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.lag = LagSampler()

    async def connect_group(self, command: dict[str, Any]) -> dict[str, Any]:
        context = None
        if command.get("tls_ca"):
            context = ssl.create_default_context(cafile=command["tls_ca"])
        group = Group(
            command["group"],
            command["url"],
            command["protocol"],
            command["ids"],
            context,
            bool(command.get("compression")),
        )
        self.groups[group.name] = group
        deadline = time.monotonic() + float(command.get("deadline", 300))
        gate = asyncio.Semaphore(int(command.get("concurrency", 100)))
        boot = bool(command.get("boot", True))
        errors: dict[str, int] = {}
        connected = 0
        booted = 0

        async def one(station: Station) -> None:
            nonlocal connected, booted
            async with gate:
                for attempt in range(3):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        errors["deadline"] = errors.get("deadline", 0) + 1
                        return
                    try:
                        await station.connect(open_timeout=min(60.0, left))
                        break
                    except Exception as exc:
                        name = type(exc).__name__
                        errors[name] = errors.get(name, 0) + 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                else:
                    return
                connected += 1
                if boot:
                    try:
                        await station.call("boot", max(1.0, deadline - time.monotonic()))
                        booted += 1
                    except CallFailed as exc:
                        errors[f"boot: {exc}"] = errors.get(f"boot: {exc}", 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(one(station) for station in group.stations))
        return {
            "connected": connected,
            "booted": booted,
            "errors": errors,
            "seconds": round(time.monotonic() - started, 3),
        }

    async def burst(self, command: dict[str, Any]) -> dict[str, Any]:
        group = self.groups[command["group"]]
        count = int(command["count"])
        kind = command.get("kind", "authorize")
        timeout = float(command.get("timeout", 30))
        latencies: list[float] = []
        errors: dict[str, int] = {}

        async def loop(station: Station) -> None:
            for _ in range(count):
                try:
                    latencies.append(await station.call(kind, timeout))
                except CallFailed as exc:
                    errors[str(exc)] = errors.get(str(exc), 0) + 1
                    if station.lost.is_set():
                        return

        started = time.monotonic()
        await asyncio.gather(*(loop(s) for s in group.stations if s.connection is not None))
        return {
            "pairs": len(latencies),
            "errors": errors,
            "seconds": round(time.monotonic() - started, 4),
            "latency": summary_ms(latencies),
        }

    async def steady(self, command: dict[str, Any]) -> dict[str, Any]:
        interval = float(command.get("interval", 10.0))
        duration = float(command["duration"])
        kinds = list(command.get("kinds", ["status", "meter", "authorize"]))
        timeout = float(command.get("timeout", 30))
        names = list(command["groups"])
        latencies: dict[str, list[float]] = {name: [] for name in names}
        sent_at: dict[str, list[float]] = {name: [] for name in names}  # s since start, per latency
        errors: dict[str, dict[str, int]] = {name: {} for name in names}
        self.lag.take()
        start = time.monotonic()
        end = start + duration

        async def loop(station: Station, name: str, index: int) -> None:
            slot = start + random.uniform(0, interval)
            turn = index
            while slot < end:
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind = kinds[turn % len(kinds)]
                turn += 1
                sent = time.monotonic() - start
                try:
                    latencies[name].append(await station.call(kind, timeout))
                    sent_at[name].append(round(sent, 4))
                except CallFailed as exc:
                    bucket = errors[name]
                    bucket[str(exc)] = bucket.get(str(exc), 0) + 1
                    if station.lost.is_set():
                        return
                slot += interval

        await asyncio.gather(
            *(
                loop(station, name, index)
                for name in names
                for index, station in enumerate(self.groups[name].stations)
                if station.connection is not None
            )
        )
        return {
            "latencies": {
                name: [round(v, 7) for v in values] for name, values in latencies.items()
            },
            "sent_at": sent_at,
            "errors": errors,
            "seconds": round(time.monotonic() - start, 3),
            "swarm_lag": self.lag.take(),
        }

    async def storm_arm(self, command: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + float(command["deadline_s"])
        for name in command["groups"]:
            group = self.groups[name]
            group.back = {}
            group.storm_errors = {}
            group.storm = {
                "deadline": deadline,
                "jitter": float(command.get("jitter", 2.0)),
                "kind": command.get("kinds", {}).get(name, "heartbeat"),
            }
        return {"armed": True}

    async def storm_status(self, command: dict[str, Any]) -> dict[str, Any]:
        back: dict[str, float] = {}
        errors: dict[str, int] = {}
        total = 0
        for name in command["groups"]:
            group = self.groups[name]
            total += len(group.stations)
            back.update(group.back)
            for key, value in group.storm_errors.items():
                errors[key] = errors.get(key, 0) + value
        return {
            "back": back if command.get("times") else len(back),
            "count": len(back),
            "total": total,
            "errors": errors,
        }

    async def storm_disarm(self, command: dict[str, Any]) -> dict[str, Any]:
        for name in command["groups"]:
            await self.groups[name].cancel_storm()
        return {"disarmed": True}

    async def close_group(self, command: dict[str, Any]) -> dict[str, Any]:
        group = self.groups.pop(command["group"], None)
        if group is None:
            return {"closed": 0}
        await group.cancel_storm()
        gate = asyncio.Semaphore(500)

        async def one(station: Station) -> None:
            async with gate:
                await station.close()

        await asyncio.wait_for(
            asyncio.gather(*(one(s) for s in group.stations)), float(command.get("timeout", 120))
        )
        return {"closed": len(group.stations)}

    async def stats(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"rss": self_rss_bytes(), "lag": self.lag.take()}

    async def close_all(self) -> None:
        for name in list(self.groups):
            with contextlib.suppress(Exception):
                await self.close_group({"group": name, "timeout": 30})


async def main() -> None:
    control = Control()
    limit = raise_nofile_limit()
    swarm = Swarm()
    swarm.lag.start()
    install_stop_signals(control.stop)
    control.send({"ready": True, "nofile": limit})
    try:
        await control.serve(
            {
                "connect": swarm.connect_group,
                "burst": swarm.burst,
                "steady": swarm.steady,
                "storm_arm": swarm.storm_arm,
                "storm_status": swarm.storm_status,
                "storm_disarm": swarm.storm_disarm,
                "close": swarm.close_group,
                "stats": swarm.stats,
            }
        )
    finally:
        await swarm.lag.close()
        await swarm.close_all()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    use_uvloop(args.uvloop)
    asyncio.run(main())


if __name__ == "__main__":
    cli()
