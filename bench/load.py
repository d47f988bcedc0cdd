"""The load benchmark's measurements: each starts its own processes, measures, and stops them all.

Every figure is a ratio against a baseline measured in the same run (the plain relay, the direct path to
the sink, a bridge with one station) or CPU seconds of the bridge process per message; see
bench/README.md for what each figure means. A measurement that cannot run (the runtime refuses
a protocol it does not support yet, a process fails) gives its figures as None with the reason in
`skipped`; it never stops the other measurements.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    FD_MARGIN,
    HOST,
    Child,
    ChildFailed,
    ChildGroup,
    finite_or_none,
    max_stations,
    nofile_hard_limit,
    percentile,
    summary_ms,
)
from bench.messages import V16, V201

CSMS_PASSWORD = "bench-password-0123456789"
PREFIX = {V201: "V201", V16: "V16"}


def _uvloop_installed() -> bool:
    from adapters.ops.event_loop import uvloop_available

    return uvloop_available()


@dataclass
class Settings:
    name: str
    hop_stations: int = 20
    hop_pairs: int = 50
    hop_rounds: int = 3
    # the hop cost in instructions, under callgrind (bench/instructions.py): slow, full preset only
    hop_ir: bool = False
    hop_ir_stations: int = 20
    hop_ir_pairs: int = 25
    scale_sizes: list[int] = field(default_factory=lambda: [200])
    scale_duration: float = 20.0
    # after each scale run, the plain relay under the same load (its CPU share: the floor at that size)
    scale_relay_baseline: bool = False
    scale_interval: float = 10.0
    memory_stations: int = 200
    memory_tls: bool = True
    memory_v16: bool = True
    memory_deflate: bool = False
    storm_stations: int = 200
    storm_timeout: float = 120.0
    storm_tls: bool = False  # a second storm with TLS on both faces (target: 60 s at 10k)
    # IEC 104 (bench/iec104_load.py): links of the throughput bridge, generator processes, offered
    # rates (points/s, 22 per ASDU, then 1 per ASDU) and seconds per step
    iec104_links: int = 100
    iec104_generators: int = 2
    iec104_rates: tuple[float, ...] = (25_000.0, 50_000.0, 100_000.0)
    iec104_single_rates: tuple[float, ...] = (5_000.0, 10_000.0, 20_000.0)
    iec104_duration: float = 5.0
    # RSS per link: a bridge with `iec104_memory_base` links, then one with `iec104_memory_links`
    iec104_memory_links: int = 1000
    iec104_memory_base: int = 10
    # restart: this many links (half dialled out, half dialled in), 0: not measured
    iec104_restart_links: int = 0
    iec104_restart_timeout: float = 300.0
    profile: bool = True
    # the load generators (swarm, sink) on uvloop when installed: lighter, so they disturb less
    uvloop: bool = field(default_factory=lambda: _uvloop_installed())
    connect_concurrency: int = 100
    parallel: bool = False
    # measurements to run (hop, memory, scale, storm, iec104); all when empty
    only: tuple[str, ...] = ()
    # extra flags for every bench.bridge_process (experiments: --gc-freeze, --ssl-buffer-kib N)
    bridge_flags: tuple[str, ...] = ()


PRESETS: dict[str, Settings] = {
    "smoke": Settings(
        "smoke",
        hop_stations=5,
        hop_pairs=10,
        hop_rounds=1,
        scale_sizes=[5],
        scale_duration=2.0,
        scale_interval=0.5,
        memory_stations=5,
        memory_tls=False,
        memory_v16=False,
        parallel=True,
        storm_stations=5,
        storm_timeout=30.0,
        iec104_links=2,
        iec104_generators=1,
        iec104_rates=(200.0,),
        iec104_single_rates=(100.0,),
        iec104_duration=1.0,
        iec104_memory_links=0,
        profile=False,
    ),
    "quick": Settings("quick"),
    "full": Settings(
        "full",
        hop_stations=50,
        hop_pairs=200,
        hop_rounds=5,
        hop_ir=True,
        scale_sizes=[1000, 5000, 10000],
        scale_duration=40.0,
        scale_relay_baseline=True,
        memory_stations=1000,
        memory_deflate=True,
        storm_stations=10000,
        storm_timeout=300.0,
        storm_tls=True,
        iec104_links=1000,
        iec104_generators=2,
        iec104_rates=(25_000.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0),
        iec104_single_rates=(5_000.0, 10_000.0, 20_000.0, 40_000.0),
        iec104_duration=10.0,
        iec104_memory_links=9950,
        iec104_restart_links=9950,
        connect_concurrency=200,
    ),
}


# --- configuration files ----------------------------------------------------------------------------


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> Tls:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert(HOST, "localhost")
    tls = Tls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca))
    server.cert_chain_pems[0].write_to_path(str(tls.cert))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(tls.cert), append=True)
    server.private_key_pem.write_to_path(str(tls.key))
    return tls


def bridge_toml(
    csms_port: int,
    stations: list[tuple[str, str]],
    store: Path,
    *,
    south_port: int = 0,
    tls: Tls | None = None,
    pacing: tuple[float, int] | None = (2000.0, 2000),
    compression: bool = False,
    extra_stations: str = "",
    south_extra: str = "",
) -> str:
    """A bridge configuration: `stations` are (id, protocol); pacing None keeps the defaults."""
    scheme = "wss" if tls else "ws"
    lines = [
        "[bridge]",
        f'store = "{store}"',
        f'health = "{HOST}:0"',
        'log_level = "warning"',
        "shutdown_timeout = 30",
        "",
        "[csms]",
        f'url = "{scheme}://{HOST}:{csms_port}/ocpp"',
        f"security_profile = {2 if tls else 0}",
        f"compression = {'true' if compression else 'false'}",
        "connect_timeout = 60",
        "retry_backoff_wait_minimum = 0.5",
        "retry_backoff_random_range = 1.0",
    ]
    if tls:
        lines.append(f'ca_file = "{tls.ca}"')
    if pacing is not None:
        lines += [f"connect_rate = {pacing[0]}", f"connect_burst = {pacing[1]}"]
    lines += [
        "",
        "[south]",
        f'listen = "{HOST}:{south_port}"',
        f"compression = {'true' if compression else 'false'}",
        "handshake_timeout = 60",
    ]
    if tls:
        lines += [f'cert_file = "{tls.cert}"', f'key_file = "{tls.key}"']
    if south_extra:
        lines.append(south_extra.rstrip("\n"))
    for station_id, protocol in stations:
        lines += ["", "[[stations]]", f'id = "{station_id}"', f'protocol = "{protocol}"']
    return "\n".join(lines) + "\n" + extra_stations


def station_ids(protocol: str, count: int, start: int = 0) -> list[str]:
    return [f"{PREFIX[protocol]}-{i:05d}" for i in range(start, start + count)]


class Workspace:
    """A run's folder: configuration files, stores, certificates, child logs."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._tls: Tls | None = None

    def path(self, name: str) -> Path:
        self._count += 1
        return self.root / f"{self._count:03d}-{name}"

    @property
    def tls(self) -> Tls:
        if self._tls is None:
            self._tls = make_tls(self.root)
        return self._tls

    def group(self) -> ChildGroup:
        return ChildGroup(self.logs)

    def flags(self) -> list[str]:
        return ["--uvloop"] if self.settings.uvloop else []

    async def sink(self, group: ChildGroup, name: str = "sink", tls: bool = False) -> Child:
        args = self.flags()
        if tls:
            args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        return await group.start(name, "bench.sink", args)

    async def swarm(self, group: ChildGroup, name: str = "swarm") -> Child:
        return await group.start(name, "bench.swarm", self.flags())

    async def bridge(
        self,
        group: ChildGroup,
        name: str,
        toml: str,
        *,
        wait_s: float = 300.0,
        check_only: bool = False,
        loop: str | None = None,
        prefix: Sequence[str] = (),
    ) -> Child:
        """The bridge on the loop it ships with (the configuration's `auto`), or on `loop`."""
        config = self.path(f"{name}.toml")
        config.write_text(toml, encoding="utf-8")
        env = {"OCPP_BRIDGE_CSMS__PASSWORD": CSMS_PASSWORD, "TZ": "UTC"}
        flags = ["--check-only"] if check_only else []
        if loop is not None:
            flags += ["--loop", loop]
        return await group.start(
            name,
            "bench.bridge_process",
            ["--config", str(config), *flags, *self.settings.bridge_flags],
            wait_s=wait_s,
            env=env,
            prefix=prefix,
        )


def url(port: int, tls: bool = False) -> str:
    return f"{'wss' if tls else 'ws'}://{HOST}:{port}/ocpp"


async def connect(
    swarm: Child,
    group: str,
    target: str,
    protocol: str,
    ids: list[str],
    settings: Settings,
    *,
    tls_ca: Path | None = None,
    boot: bool = True,
    compression: bool = False,
) -> dict[str, Any]:
    answer = await swarm.call(
        "connect",
        wait_s=max(120.0, len(ids) * 0.05 + 60),
        group=group,
        url=target,
        protocol=protocol,
        ids=ids,
        boot=boot,
        tls_ca=str(tls_ca) if tls_ca else None,
        compression=compression,
        concurrency=settings.connect_concurrency,
        deadline=max(60.0, len(ids) * 0.04 + 30),
    )
    if answer["connected"] < len(ids):
        raise ChildFailed(
            f"{group}: {answer['connected']} of {len(ids)} connected: {answer['errors']}"
        )
    return answer


async def wait_for(predicate: Any, wait_s: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


def scrape_lag_histogram(health_port: int | None) -> dict[str, Any] | None:
    """The runtime's own `ocpp_bridge_event_loop_lag_seconds` histogram, if /metrics serves it."""
    if not health_port:
        return None
    try:
        with urllib.request.urlopen(f"http://{HOST}:{health_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for line in text.splitlines():
        if line.startswith("ocpp_bridge_event_loop_lag_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("ocpp_bridge_event_loop_lag_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not buckets or not count:
        return None

    def bound_for(q: float) -> float | None:
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound
        return None

    return {"samples": int(count), "p99_le_s": bound_for(0.99), "p999_le_s": bound_for(0.999)}


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


# --- hop cost --------------------------------------------------------------------------------------


# Station ids of each loop's targets start here, so no two processes register the same id at the sink.
LOOP_ID_BASE = {"asyncio": 0, "uvloop": 50_000}


def shipped_loop() -> str:
    """The loop `ocpp-bridge run` uses here by default (`[bridge] event_loop = "auto"`)."""
    from adapters.ops.event_loop import resolve

    return resolve("auto")


def loops() -> list[str]:
    from adapters.ops.event_loop import uvloop_available

    return ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]


async def measure_hop(ws: Workspace) -> dict[str, Any]:
    """CPU µs per request/response pair: relay, 2.0.1 pass-through, 1.6J translated; same swarm.

    Every target runs on each event loop installed (`relay@asyncio`, `v16@uvloop`, ...). The headline
    ratios divide the bridge as it ships (its default loop) by the relay on that same loop;
    `*_<loop>` compare both on one loop, `*_vs_asyncio_relay` divide the bridge as it ships by the
    relay on the standard loop (the floor: a plain WebSocket relay on stock asyncio, bench/README.md).
    """
    s = ws.settings
    result: dict[str, Any] = {
        "stations": s.hop_stations,
        "pairs_per_round": None,
        "targets": {},
        "shipped_loop": shipped_loop(),
    }
    async with ws.group() as group:
        sink = await ws.sink(group)
        swarm = await ws.swarm(group)
        targets: dict[str, tuple[Child, str]] = {}
        for loop in loops():
            relay = await group.start(
                f"relay-{loop}",
                "bench.relay",
                [
                    "--upstream",
                    url(sink.ready["port"]),
                    *(["--uvloop"] if loop == "uvloop" else []),
                ],
            )
            targets[f"relay@{loop}"] = (relay, V201)
            for protocol, name in ((V201, "v201"), (V16, "v16")):
                ids = station_ids(protocol, s.hop_stations, LOOP_ID_BASE[loop])
                toml = bridge_toml(
                    sink.ready["port"],
                    [(i, protocol) for i in ids],
                    ws.path(f"hop-{name}-{loop}.db"),
                )
                try:
                    bridge = await ws.bridge(group, f"hop-bridge-{name}-{loop}", toml, loop=loop)
                except ChildFailed as exc:
                    result["targets"][f"{name}@{loop}"] = skipped(str(exc))
                    continue
                targets[f"{name}@{loop}"] = (bridge, protocol)
        station_lists: dict[str, list[str]] = {}
        for name, (child, protocol) in targets.items():
            kind, loop = name.split("@")
            ids = (
                [f"RLY-{LOOP_ID_BASE[loop] + i:05d}" for i in range(s.hop_stations)]
                if kind == "relay"
                else station_ids(protocol, s.hop_stations, LOOP_ID_BASE[loop])
            )
            station_lists[name] = ids
            port = child.ready["port"] if kind == "relay" else child.ready["south_port"]
            try:
                await connect(swarm, name, url(port), protocol, ids, s)
                # warm-up: code paths, caches and the CSMS-side registration, not measured
                await swarm.call("burst", wait_s=120, group=name, count=5, kind="authorize")
            except ChildFailed as exc:
                result["targets"][name] = skipped(str(exc))
        live = [n for n in targets if "skipped" not in result["targets"].get(n, {})]
        totals = {n: {"cpu": 0.0, "pairs": 0, "errors": {}, "rounds": []} for n in live}
        for _ in range(s.hop_rounds):
            for name in live:  # interleaved, so a noisy moment touches every target alike
                child = targets[name][0]
                before = await child.cpu()
                answer = await swarm.call(
                    "burst", wait_s=600, group=name, count=s.hop_pairs, kind="authorize"
                )
                spent = await child.cpu() - before
                total = totals[name]
                total["cpu"] += spent
                total["pairs"] += answer["pairs"]
                total["rounds"].append(spent / max(1, answer["pairs"]) * 1e6)
                total["latency"] = answer["latency"]
                for key, value in answer["errors"].items():
                    total["errors"][key] = total["errors"].get(key, 0) + value
        result["pairs_per_round"] = s.hop_stations * s.hop_pairs
        for name in live:
            total = totals[name]
            us = total["cpu"] / total["pairs"] * 1e6 if total["pairs"] else None
            result["targets"][name] = {
                "cpu_us_per_pair": finite_or_none(us, 2),
                "rounds_us": [round(v, 2) for v in total["rounds"]],
                "pairs": total["pairs"],
                "errors": total["errors"],
                "last_round_latency_ms": total.get("latency"),
            }
        if s.profile:
            for name in ("v16", "v201"):
                target = f"{name}@{shipped_loop()}"
                if target not in live:
                    continue
                child = targets[target][0]
                stats_path = ws.root / f"profile_{name}.pstats"
                await child.call("profile_start")
                await swarm.call(
                    "burst", wait_s=600, group=target, count=s.hop_pairs, kind="authorize"
                )
                answer = await child.call("profile_stop", path=str(stats_path), top=30)
                result.setdefault("profiles", {})[name] = {
                    "pstats": str(stats_path),
                    "top": answer["top"],
                }

    def us(name: str) -> float | None:
        value = result["targets"].get(name, {}).get("cpu_us_per_pair")
        return value if isinstance(value, int | float) and value > 0 else None

    def ratio(top: str, bottom: str) -> float | None:
        a, b = us(top), us(bottom)
        return finite_or_none(a / b, 3) if a is not None and b is not None else None

    shipped = shipped_loop()
    for name in ("v16", "v201"):
        result[f"hop_ratio_{name}"] = ratio(f"{name}@{shipped}", f"relay@{shipped}")
        result[f"hop_ratio_{name}_vs_asyncio_relay"] = ratio(f"{name}@{shipped}", "relay@asyncio")
        for loop in loops():
            result[f"hop_ratio_{name}_{loop}"] = ratio(f"{name}@{loop}", f"relay@{loop}")
    return result


# --- scale -----------------------------------------------------------------------------------------


def scale_mix(count: int, with_v16: bool) -> dict[str, int]:
    if not with_v16:
        return {V201: count}
    return {V201: count - count // 2, V16: count // 2}


async def protocol_supported(ws: Workspace, protocol: str) -> str | None:
    """None when a bridge starts with a station of `protocol`, else the reason it refuses."""
    async with ws.group() as group:
        toml = bridge_toml(
            9, [(f"{PREFIX.get(protocol, 'X')}-PROBE", protocol)], ws.path("probe.db")
        )
        try:
            await ws.bridge(group, f"probe-{protocol}", toml, wait_s=60, check_only=True)
        except ChildFailed as exc:
            return str(exc)
    return None


async def measure_scale(ws: Workspace, requested: int, with_v16: bool) -> dict[str, Any]:
    s = ws.settings
    direct = min(200, max(5, requested // 20))
    # the bridge holds two sockets per station; the swarm and the sink one per station plus the direct ones
    limit = min(max_stations(2), nofile_hard_limit() - FD_MARGIN - direct)
    count = min(requested, limit)
    result: dict[str, Any] = {
        "requested": requested,
        "stations": count,
        "direct_stations": direct,
        "interval_s": s.scale_interval,
        "duration_s": s.scale_duration,
    }
    if count < requested:
        result["clamped_by"] = f"ulimit -n (hard {nofile_hard_limit()})"
    mix = scale_mix(count, with_v16)
    result["mix"] = mix
    async with ws.group() as group:
        sink = await ws.sink(group)
        swarm = await ws.swarm(group)
        stations = [(i, p) for p, n in mix.items() for i in station_ids(p, n)]
        toml = bridge_toml(sink.ready["port"], stations, ws.path(f"scale-{count}.db"))
        bridge = await ws.bridge(group, f"scale-bridge-{count}", toml, wait_s=900)
        result["bridge_startup_s"] = bridge.ready["startup_s"]
        south = url(bridge.ready["south_port"])
        setup = time.monotonic()
        for protocol, n in mix.items():
            await connect(swarm, PREFIX[protocol], south, protocol, station_ids(protocol, n), s)
        await connect(
            swarm, "DIR", url(sink.ready["port"]), V201, [f"DIR-{i:05d}" for i in range(direct)], s
        )
        result["connect_s"] = round(time.monotonic() - setup, 2)
        await asyncio.sleep(min(2.0, s.scale_duration / 2))
        # idle cost first: every station connected, none sending (pings, timers, the loop itself)
        idle_cpu, idle_wall = await bridge.cpu(), time.monotonic()
        await asyncio.sleep(min(10.0, s.scale_duration / 4))
        idle_cpu, idle_wall = await bridge.cpu() - idle_cpu, time.monotonic() - idle_wall
        # the load generators' own full collections must not stall the measurement
        await swarm.call("freeze", wait_s=60)
        await sink.call("freeze", wait_s=60)
        await bridge.call("stats")  # resets the lag window
        rss_before = bridge.rss()
        load_before = {"swarm": await swarm.cpu(), "sink": await sink.cpu()}
        cpu_before, wall_before = await bridge.cpu(), time.monotonic()
        groups = [PREFIX[p] for p in mix] + ["DIR"]
        answer = await swarm.call(
            "steady",
            wait_s=s.scale_duration + 120,
            groups=groups,
            interval=s.scale_interval,
            duration=s.scale_duration,
        )
        cpu = await bridge.cpu() - cpu_before
        wall = time.monotonic() - wall_before
        # the load generators share the machine's two cores with the bridge: their share says how
        # much of the latency tail may be theirs (or the scheduler's) rather than the bridge's
        result["load_cpu_share"] = {
            "swarm": round((await swarm.cpu() - load_before["swarm"]) / wall, 4),
            "sink": round((await sink.cpu() - load_before["sink"]) / wall, 4),
        }
        stats = await bridge.call("stats")
        result["metrics_lag"] = scrape_lag_histogram(bridge.ready.get("health_port"))
        if s.scale_relay_baseline:
            for protocol in mix:
                await swarm.call("close", wait_s=300, group=PREFIX[protocol])
            await bridge.close()
            result["relay"] = await _relay_under_steady_load(ws, group, sink, swarm, count)
    latencies: dict[str, list[float]] = answer["latencies"]
    bridged = [v for p in mix for v in latencies[PREFIX[p]]]
    direct_lat = latencies["DIR"]
    result["latency_ms"] = {name: summary_ms(values) for name, values in latencies.items()}
    result["latency_ms"]["bridged"] = summary_ms(bridged)
    added: dict[str, float | None] = {}
    for key, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        through, straight = percentile(bridged, q), percentile(direct_lat, q)
        added[key] = (
            None if through is None or straight is None else round((through - straight) * 1e3, 4)
        )
    result["added_latency_ms"] = added
    messages = len(bridged)
    result["messages"] = messages
    result["errors"] = answer["errors"]
    result["cpu_share"] = finite_or_none(cpu / wall, 4) if wall > 0 else None
    result["cpu_us_per_message"] = finite_or_none(cpu / messages * 1e6, 2) if messages else None
    idle_share = idle_cpu / idle_wall if idle_wall > 0 else 0.0
    result["idle_cpu_share"] = finite_or_none(idle_share, 4)
    result["idle_cpu_us_per_station_s"] = finite_or_none(idle_share / count * 1e6, 3)
    result["cpu_us_per_message_net"] = (
        finite_or_none((cpu - idle_share * wall) / messages * 1e6, 2) if messages else None
    )
    result["loop_lag_ms"] = stats["lag"]
    result["gc_pauses_ms"] = stats.get("gc_pauses")
    if "stalls" in stats:
        result["bridge_stalls"] = stats["stalls"]
    result["swarm_lag_ms"] = answer["swarm_lag"]
    result["rss_mib"] = round(rss_before / 2**20, 1)
    result["samples"] = {name: values for name, values in latencies.items() if name != "DIR"}
    result["samples"]["DIR"] = direct_lat
    result["sent_at"] = answer.get("sent_at", {})  # when each sample's request left, s into the run
    relay = result.get("relay") or {}
    if relay.get("cpu_share") and result["cpu_share"] is not None:
        result["cpu_ratio_vs_relay"] = finite_or_none(result["cpu_share"] / relay["cpu_share"], 3)
    return result


async def _relay_under_steady_load(
    ws: Workspace, group: ChildGroup, sink: Child, swarm: Child, count: int
) -> dict[str, Any]:
    """The plain relay (bench/relay.py, on the bridge's shipped loop) with `count` 2.0.1 stations
    sending as the scale step's do: its CPU share and added latency at this size, the floor."""
    s = ws.settings
    loop = shipped_loop()
    relay = await group.start(
        f"scale-relay-{count}",
        "bench.relay",
        ["--upstream", url(sink.ready["port"]), *(["--uvloop"] if loop == "uvloop" else [])],
    )
    ids = [f"RLY-{i:05d}" for i in range(count)]
    await connect(swarm, "RLY", url(relay.ready["port"]), V201, ids, s)
    await asyncio.sleep(min(2.0, s.scale_duration / 2))
    await swarm.call("freeze", wait_s=60)
    await relay.call("stats")  # resets its lag window
    cpu_before, wall_before = await relay.cpu(), time.monotonic()
    answer = await swarm.call(
        "steady",
        wait_s=s.scale_duration + 120,
        groups=["RLY", "DIR"],
        interval=s.scale_interval,
        duration=s.scale_duration,
    )
    cpu = await relay.cpu() - cpu_before
    wall = time.monotonic() - wall_before
    stats = await relay.call("stats")
    await swarm.call("close", wait_s=300, group="RLY")
    await relay.close()
    relayed, straight = answer["latencies"]["RLY"], answer["latencies"]["DIR"]
    added: dict[str, float | None] = {}
    for key, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        through, direct = percentile(relayed, q), percentile(straight, q)
        added[key] = (
            None if through is None or direct is None else round((through - direct) * 1e3, 4)
        )
    return {
        "loop": loop,
        "stations": count,
        "messages": len(relayed),
        "errors": answer["errors"].get("RLY", {}),
        "cpu_share": finite_or_none(cpu / wall, 4) if wall > 0 else None,
        "cpu_us_per_message": finite_or_none(cpu / len(relayed) * 1e6, 2) if relayed else None,
        "added_latency_ms": added,
        "loop_lag_ms": stats["lag"],
    }


# --- memory ----------------------------------------------------------------------------------------


async def bridge_rss(
    ws: Workspace,
    group: ChildGroup,
    sink: Child,
    swarm: Child,
    protocol: str,
    count: int,
    *,
    tls: bool,
    deflate: bool,
    tag: str,
) -> tuple[int, int]:
    """(RSS with `count` stations configured and none connected, RSS with all connected and booted)."""
    s = ws.settings
    ids = station_ids(protocol, count, start=100000 if count == 1 else 0)
    toml = bridge_toml(
        sink.ready["port"],
        [(i, protocol) for i in ids],
        ws.path(f"mem-{tag}-{count}.db"),
        tls=ws.tls if tls else None,
        compression=deflate,
    )
    bridge = await ws.bridge(group, f"mem-bridge-{tag}-{count}", toml, wait_s=600)
    configured = (await bridge.call("stats", gc=True))["rss"]
    name = f"mem-{tag}-{count}"
    await connect(
        swarm,
        name,
        url(bridge.ready["south_port"], tls),
        protocol,
        ids,
        s,
        tls_ca=ws.tls.ca if tls else None,
        compression=deflate,
    )

    async def all_north() -> bool:
        marked = await sink.call("marked", prefixes=[PREFIX[protocol] + "-"])
        return int(marked["open"]) >= count

    await wait_for(all_north, 60)
    await asyncio.sleep(0.5)
    connected = (await bridge.call("stats", gc=True))["rss"]
    await swarm.call("close", group=name, wait_s=300)
    await bridge.close(wait_s=60)
    return configured, connected


async def measure_memory(
    ws: Workspace, protocol: str, tls: bool, deflate: bool = False
) -> dict[str, Any]:
    s = ws.settings
    count = min(s.memory_stations, max_stations(2))
    tag = f"{PREFIX[protocol].lower()}{'-tls' if tls else ''}{'-deflate' if deflate else ''}"
    async with ws.group() as group:
        sink = await ws.sink(group, tls=tls)
        await sink.call("mark")
        swarm = await ws.swarm(group)
        _, one = await bridge_rss(
            ws, group, sink, swarm, protocol, 1, tls=tls, deflate=deflate, tag=tag
        )
        configured, connected = await bridge_rss(
            ws, group, sink, swarm, protocol, count, tls=tls, deflate=deflate, tag=tag
        )
    per = (connected - one) / (count - 1) / 1024 if count > 1 else None
    return {
        "stations": count,
        "tls": tls,
        "deflate": deflate,
        "rss_one_station_mib": round(one / 2**20, 2),
        "rss_configured_mib": round(configured / 2**20, 2),
        "rss_connected_mib": round(connected / 2**20, 2),
        "kib_per_station": finite_or_none(per, 2),
        "kib_per_station_connection": finite_or_none((connected - configured) / count / 1024, 2),
    }


async def measure_relay_memory(ws: Workspace) -> dict[str, Any]:
    s = ws.settings
    count = min(s.memory_stations, max_stations(2))
    async with ws.group() as group:
        sink = await ws.sink(group)
        swarm = await ws.swarm(group)
        relay = await group.start(
            "mem-relay", "bench.relay", ["--upstream", url(sink.ready["port"])]
        )
        idle = (await relay.call("stats", gc=True))["rss"]
        ids = [f"RLY-{i:05d}" for i in range(count)]
        await connect(swarm, "mem-relay", url(relay.ready["port"]), V201, ids, s)
        await asyncio.sleep(0.5)
        connected = (await relay.call("stats", gc=True))["rss"]
    return {
        "stations": count,
        "rss_configured_mib": round(idle / 2**20, 2),
        "rss_connected_mib": round(connected / 2**20, 2),
        "kib_per_station": finite_or_none((connected - idle) / count / 1024, 2),
    }


# --- reconnect storm -------------------------------------------------------------------------------


async def measure_storm(
    ws: Workspace, requested: int, with_v16: bool, tls: bool = False
) -> dict[str, Any]:
    s = ws.settings
    count = min(requested, max_stations(2))
    mix = scale_mix(count, with_v16)
    result: dict[str, Any] = {"requested": requested, "stations": count, "mix": mix, "tls": tls}
    if count < requested:
        result["clamped_by"] = f"ulimit -n (hard {nofile_hard_limit()})"
    stations = [(i, p) for p, n in mix.items() for i in station_ids(p, n)]
    store = ws.path("storm-tls.db" if tls else "storm.db")
    certificates = ws.tls if tls else None
    async with ws.group() as group:
        sink = await ws.sink(group, tls=tls)
        swarm = await ws.swarm(group)
        first = await ws.bridge(
            group,
            "storm-bridge-1",
            bridge_toml(sink.ready["port"], stations, store, tls=certificates),
            wait_s=900,
        )
        port = first.ready["south_port"]
        for protocol, n in mix.items():
            await connect(
                swarm,
                PREFIX[protocol],
                url(port, tls),
                protocol,
                station_ids(protocol, n),
                s,
                tls_ca=certificates.ca if certificates else None,
            )
        groups = [PREFIX[p] for p in mix]
        kinds = {PREFIX[V201]: "heartbeat", PREFIX[V16]: "authorize"}
        # chargers keep retrying for as long as the harness may wait: the shutdown, the restarted
        # bridge's start-up (up to its 900 s) and the storm itself
        await swarm.call(
            "storm_arm", groups=groups, deadline_s=120 + 900 + s.storm_timeout + 60, kinds=kinds
        )
        await sink.call("mark")
        stopped_at = time.monotonic()
        await first.call("stop")
        await first.close(wait_s=120)
        result["shutdown_s"] = round(time.monotonic() - stopped_at, 2)
        # the restarted bridge keeps the default CSMS pacing, as an operator's would
        second = await ws.bridge(
            group,
            "storm-bridge-2",
            bridge_toml(
                sink.ready["port"], stations, store, south_port=port, tls=certificates, pacing=None
            ),
            wait_s=900,
        )
        up_at = time.monotonic()
        result["startup_s"] = second.ready["startup_s"]

        async def all_back() -> bool:
            status = await swarm.call("storm_status", groups=groups)
            return int(status["count"]) >= count

        done = await wait_for(all_back, s.storm_timeout, interval=0.5)
        status = await swarm.call("storm_status", groups=groups, times=True)
        marked = await sink.call("marked", prefixes=[g + "-" for g in groups])
        await swarm.call("storm_disarm", groups=groups)
    back: dict[str, float] = status["back"]
    # in service: the charger's probe was answered and the CSMS saw the station connect again
    csms_times: list[float] = marked["times"]
    result["complete"] = done and len(back) >= count
    result["back"] = len(back)
    result["errors"] = status["errors"]
    result["csms_connected"] = len(csms_times)
    last_charger = max(back.values()) if back else None
    last_csms = csms_times[count - 1] if len(csms_times) >= count else None
    if result["complete"] and last_charger is not None and last_csms is not None:
        result["all_back_s"] = round(max(last_charger, last_csms) - up_at, 3)
        result["all_back_from_stop_s"] = round(max(last_charger, last_csms) - stopped_at, 3)
    else:
        result["all_back_s"] = None
    offsets = sorted(t - up_at for t in back.values())
    result["charger_back_s"] = {
        "p50": finite_or_none(percentile(offsets, 50)),
        "p99": finite_or_none(percentile(offsets, 99)),
    }
    result["samples"] = offsets
    result["csms_samples"] = [t - up_at for t in csms_times]
    return result


# --- IEC 104 ---------------------------------------------------------------------------------------


def default_mapping() -> Path:
    import mappings

    return Path(os.path.dirname(mappings.__file__)) / "gb-dc-charger.yaml"


def scrape_metric(health_port: int | None, name: str) -> float | None:
    """One unlabelled sample of the bridge's /metrics, or None."""
    if not health_port:
        return None
    try:
        with urllib.request.urlopen(f"http://{HOST}:{health_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- the whole suite --------------------------------------------------------------------------------


async def run_suite(settings: Settings, root: Path, log: Any = print) -> dict[str, Any]:
    ws = Workspace(root, settings)
    report: dict[str, Any] = {
        "preset": settings.name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nofile_hard_limit": nofile_hard_limit(),
        "cpu_count": os.cpu_count(),
        "uvloop": settings.uvloop,
        "bridge_flags": list(settings.bridge_flags),
    }

    async def step(name: str, coroutine: Any) -> dict[str, Any]:
        started = time.monotonic()
        log(f"bench: {name} ...")
        try:
            value: dict[str, Any] = await coroutine
        except (ChildFailed, OSError, TimeoutError, KeyError, ValueError) as exc:
            value = skipped(f"{type(exc).__name__}: {exc}")
        value["elapsed_s"] = round(time.monotonic() - started, 1)
        log(f"bench: {name} done in {value['elapsed_s']} s")
        return value

    v16_problem = await protocol_supported(ws, V16)
    v16 = v16_problem is None
    report["v16_supported"] = v16
    if v16_problem:
        report["v16_unsupported_reason"] = v16_problem
    # (where in the report, label, measurement); run one after the other so that no measurement
    # disturbs another, except in the smoke preset, which only checks that everything runs
    from bench.instructions import measure_hop_instructions

    steps: list[tuple[tuple[str, ...], str, Any]] = [
        (("hop",), "hop cost", lambda: measure_hop(ws)),
        (("memory", "relay"), "memory relay", lambda: measure_relay_memory(ws)),
        (("memory", "v201"), "memory v201", lambda: measure_memory(ws, V201, tls=False)),
    ]
    if v16 and settings.memory_v16:
        steps.append((("memory", "v16"), "memory v16", lambda: measure_memory(ws, V16, tls=False)))
    if settings.memory_tls:
        steps.append(
            (("memory", "v201_tls"), "memory v201 tls", lambda: measure_memory(ws, V201, tls=True))
        )
        if v16 and settings.memory_v16:
            steps.append(
                (("memory", "v16_tls"), "memory v16 tls", lambda: measure_memory(ws, V16, tls=True))
            )
    if settings.memory_deflate:
        steps.append(
            (
                ("memory", "v201_deflate"),
                "memory v201 deflate",
                lambda: measure_memory(ws, V201, tls=False, deflate=True),
            )
        )
    for index, size in enumerate(settings.scale_sizes):
        steps.append(
            (("scale", str(index)), f"scale {size}", lambda n=size: measure_scale(ws, n, v16))
        )
    steps.append(
        (("storm",), "reconnect storm", lambda: measure_storm(ws, settings.storm_stations, v16))
    )
    if settings.storm_tls:
        steps.append(
            (
                ("storm_tls",),
                "reconnect storm, TLS",
                lambda: measure_storm(ws, settings.storm_stations, v16, tls=True),
            )
        )
    from bench.iec104_load import measure_104

    steps.append((("iec104",), "iec104", lambda: measure_104(ws)))
    if settings.name == "full" or "replicas" in settings.only:
        from bench.replicas import measure_replicas

        steps.append((("replicas",), "replicas on PostgreSQL", lambda: measure_replicas(ws)))
    if settings.hop_ir or "hop_ir" in settings.only:
        steps.append(
            (("hop_ir",), "hop cost in instructions", lambda: measure_hop_instructions(ws))
        )
    if settings.only:
        steps = [step_ for step_ in steps if step_[0][0] in settings.only]
    if settings.parallel:
        values = await asyncio.gather(*(step(label, make()) for _, label, make in steps))
    else:
        values = [await step(label, make()) for _, label, make in steps]
    report["memory"] = {}
    report["hop"] = report["storm"] = report["iec104"] = skipped("not run (--only)")
    report["storm_tls"] = skipped("not run (full preset only, or --only)")
    report["hop_ir"] = skipped("not run (full preset, or --only hop_ir)")
    report["replicas"] = skipped("not run (full preset, or --only replicas)")
    scale: dict[int, dict[str, Any]] = {}
    for (where, _, _), value in zip(steps, values, strict=True):
        if where[0] == "scale":
            scale[int(where[1])] = value
        elif len(where) == 2:
            report[where[0]][where[1]] = value
        else:
            report[where[0]] = value
    report["scale"] = [scale[i] for i in sorted(scale)]
    report["headline"] = headline(report)
    return report


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures `make bench-quick` prints, one flat JSON object; None where not measured."""
    scale = [s for s in report.get("scale", []) if "skipped" not in s]
    biggest = scale[-1] if scale else {}
    shipped = shipped_loop()
    return {
        "hop_ratio_v16": _get(report, "hop", "hop_ratio_v16"),
        "hop_ratio_v201": _get(report, "hop", "hop_ratio_v201"),
        "hop_ratio_v16_asyncio": _get(report, "hop", "hop_ratio_v16_asyncio"),
        "hop_ratio_v201_asyncio": _get(report, "hop", "hop_ratio_v201_asyncio"),
        "hop_ratio_v16_vs_asyncio_relay": _get(report, "hop", "hop_ratio_v16_vs_asyncio_relay"),
        "hop_ratio_v201_vs_asyncio_relay": _get(report, "hop", "hop_ratio_v201_vs_asyncio_relay"),
        "hop_ir_ratio_v16": _get(report, "hop_ir", "hop_ir_ratio_v16"),
        "hop_ir_ratio_v201": _get(report, "hop_ir", "hop_ir_ratio_v201"),
        "bridge_event_loop": shipped,
        "hop_us_relay": _get(report, "hop", "targets", "relay@asyncio", "cpu_us_per_pair"),
        "hop_us_relay_uvloop": _get(report, "hop", "targets", "relay@uvloop", "cpu_us_per_pair"),
        "hop_us_v16": _get(report, "hop", "targets", f"v16@{shipped}", "cpu_us_per_pair"),
        "hop_us_v201": _get(report, "hop", "targets", f"v201@{shipped}", "cpu_us_per_pair"),
        "kib_per_station": _get(report, "memory", "v201", "kib_per_station"),
        "kib_per_station_v16": _get(report, "memory", "v16", "kib_per_station"),
        "kib_per_station_tls": _get(report, "memory", "v201_tls", "kib_per_station"),
        "kib_per_station_v16_tls": _get(report, "memory", "v16_tls", "kib_per_station"),
        "kib_per_station_relay": _get(report, "memory", "relay", "kib_per_station"),
        "points_per_s_104": _get(report, "iec104", "points_per_s_104"),
        "cpu_us_per_point_104": _get(report, "iec104", "cpu_us_per_point_104"),
        "cpu_us_per_point_104_single": _get(report, "iec104", "cpu_us_per_point_104_single"),
        "cpu_us_per_point_104_net": _get(report, "iec104", "cpu_us_per_point_104_net"),
        "cpu_us_per_point_104_single_net": _get(
            report, "iec104", "cpu_us_per_point_104_single_net"
        ),
        "kib_per_104_link": _get(report, "iec104", "kib_per_104_link"),
        "kib_per_104_station": _get(report, "iec104", "kib_per_104_station"),
        "iec104_restart_s": _get(report, "iec104", "iec104_restart_s"),
        "iec104_link": _get(report, "iec104", "link"),
        "scale_stations": biggest.get("stations"),
        "added_latency_p50_ms": _get(biggest, "added_latency_ms", "p50"),
        "added_latency_p99_ms": _get(biggest, "added_latency_ms", "p99"),
        "added_latency_p999_ms": _get(biggest, "added_latency_ms", "p999"),
        "cpu_share": biggest.get("cpu_share"),
        "relay_cpu_share": _get(biggest, "relay", "cpu_share"),
        "cpu_ratio_vs_relay": biggest.get("cpu_ratio_vs_relay"),
        "relay_added_latency_p99_ms": _get(biggest, "relay", "added_latency_ms", "p99"),
        "loop_lag_p999_ms": _get(biggest, "loop_lag_ms", "p999"),
        "scale_startup_s": biggest.get("bridge_startup_s"),
        "storm_stations": _get(report, "storm", "stations"),
        "storm_startup_s": _get(report, "storm", "startup_s"),
        "storm_all_back_s": _get(report, "storm", "all_back_s"),
        "storm_tls_all_back_s": _get(report, "storm_tls", "all_back_s"),
        "v16_supported": report.get("v16_supported"),
        **{
            key: value
            for key, value in (_get(report, "replicas", "headline") or {}).items()
            if key in REPLICAS_HEADLINE
        },
    }


# bench/replicas.py's figures in the suite's headline (its results hold the rest)
REPLICAS_HEADLINE = (
    "replicas_sqlite_x1_cpu_us_per_message",
    "replicas_postgresql_x1_cpu_us_per_message",
    "replicas_postgresql_x2_cpu_us_per_message",
    "replicas_postgresql_x3_cpu_us_per_message",
    "replicas_sqlite_x1_added_p99_ms",
    "replicas_postgresql_x3_added_p99_ms",
    "replicas_takeover_stations",
    "replicas_takeover_s",
)


def headline_step(key: str) -> str | None:
    """The measurement (`--only` name) a headline figure comes from; None for run-wide facts."""
    if "104" in key:
        return "iec104"
    for prefix, step in (
        ("replicas", "replicas"),
        ("hop_ir", "hop_ir"),
        ("hop", "hop"),
        ("kib_per_station", "memory"),
        ("storm_tls", "storm_tls"),
        ("storm", "storm"),
    ):
        if key.startswith(prefix):
            return step
    if key in ("bridge_event_loop", "v16_supported"):
        return None
    return "scale"


def headline_only(head: dict[str, Any], only: Sequence[str]) -> dict[str, Any]:
    """The headline figures of the measurements in `only` alone (all when it is empty)."""
    if not only:
        return head
    return {k: v for k, v in head.items() if headline_step(k) in only}


def dump(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
