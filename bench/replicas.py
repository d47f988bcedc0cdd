"""Bridge replicas on PostgreSQL (issue 20 item 5): scale with 1, 2 and 3 replicas against SQLite in the
same run, and the time for the survivors to take over a killed replica's stations.

Run: `.venv/bin/python -m bench.replicas [--preset quick|full]` (or `python -m bench.run --only
replicas`); writes `results.json` under bench/results/replicas-<preset>/ (`--out DIR` elsewhere) with
the child processes' logs in its `logs/`, prints one line per figure and, last, one JSON object. A
throwaway PostgreSQL server is started for the run (adapters/cli/local_pg.py: the installed server's
initdb and postgres on 127.0.0.1; fsync and synchronous_commit on, its defaults), a fresh database for
each bridge set, and stopped at the end; without PostgreSQL the run says so and exits 2.

Figures
1. `scale`: for each set, SQLite with one bridge (the embedded default) and PostgreSQL with 1, 2 and 3
   bridges under leases (`leases = true`): N stations (half OCPP 2.0.1 passed through, half 1.6J
   translated, as bench/load.py's scale step; quick 200, full 2,000), the i-th of each protocol
   connected to replica i mod R, each sending one request (status, meter values, authorize in turn)
   every `interval` seconds for `duration` seconds; and, at the same time, direct stations to the
   sink. `added_latency_ms` p50/p99 = the percentile through the bridges − the same percentile of the
   direct path (a request/response pair through the bridge's two hops); `cpu_us_per_message` = the
   bridges' CPU (every replica's process, user + system) over the window ÷ request/response pairs
   answered; `pg_cpu_us_per_message` the PostgreSQL server's (postmaster and its backends) the same
   way; `cpu_us_per_message_net` the bridges' CPU less their idle share (measured for 5 s before (smoke: 1 s),
   every station connected, none sending: pings, lease renewals) times the window;
   `stations_per_replica` and each replica's share (`per_replica`: stations, pairs, CPU share,
   leases it held at the end).
2. `takeover`: R replicas (quick 2, full 3) on PostgreSQL with S dial-out IEC 104 stations (quick 500,
   full 5,000: `bench.iec104_outstation --listen` chargers, gb-dc-charger), spread by the leases; once
   every link is up and the leases are spread, one replica is SIGKILLed. Measured from the kill:
   `first_claim_s` (a survivor held one of its stations), `all_leased_s` (survivors held all of
   them), `all_interrogated_s` (every one of its chargers was interrogated again by a survivor),
   `all_csms_s` (the CSMS saw every one of its stations connect again); `takeover_s` = the last of
   these; `claim_span_s` = takeover_s − first_claim_s, the part that grows with the count (the rest
   is the lease expiry: `lease_seconds` (quick 3, full 5) and the next renewal tick, within about
   lease_seconds × 4/3).
The machine has 2 cores shared by the bridges, the load generators and the PostgreSQL server (and, on
this machine, other work): latencies are noisy, CPU per message much less so; the conditions are in
the report (`conditions`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

from adapters.cli.local_pg import LocalPostgres, PostgresMissing
from bench.common import Child, cpu_seconds, percentile, raise_nofile_limit, summary_ms
from bench.iec104_load import PREFIX_OUT, Fleet, wait_linked
from bench.load import (
    PREFIX,
    PRESETS,
    Workspace,
    bridge_toml,
    connect,
    default_mapping,
    scale_mix,
    station_ids,
    url,
)
from bench.messages import V201

RESULTS = Path(__file__).resolve().parent / "results"
PLACEHOLDER = "@STORE@"


@dataclass(frozen=True)
class Preset:
    stations: int = 200
    duration: float = 20.0
    interval: float = 2.0
    sets: tuple[tuple[str, int], ...] = (
        ("sqlite", 1),
        ("postgresql", 1),
        ("postgresql", 2),
        ("postgresql", 3),
    )
    scale_lease_seconds: float = 15.0
    takeover_stations: int = 500
    takeover_replicas: int = 2
    lease_seconds: float = 3.0
    takeover_timeout: float = 180.0
    idle_seconds: float = 5.0  # the idle CPU window of each scale set


REPLICA_PRESETS = {
    "smoke": Preset(
        stations=10,
        duration=3.0,
        interval=1.0,
        takeover_stations=10,
        takeover_timeout=60.0,
        idle_seconds=1.0,
    ),
    "quick": Preset(),
    "full": Preset(
        stations=2000,
        duration=40.0,
        interval=5.0,
        takeover_stations=5000,
        takeover_replicas=3,
        lease_seconds=5.0,
        takeover_timeout=600.0,
    ),
}


class Postgres:
    """The run's server, a fresh database per bridge set, the server's CPU."""

    def __init__(self) -> None:
        self.server = LocalPostgres(max_connections=300, durable=True)
        self._count = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def database(self) -> str:
        self._count += 1
        name = f"bench{self._count}"
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.server.url.rsplit("/", 1)[0] + f"/{name}"

    def cpu(self) -> float:
        """CPU seconds of the postmaster and its live children (the backends)."""
        process = self.server.process
        if process is None:
            return 0.0
        pids = [process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    if int(stat[stat.rindex(")") + 2 :].split()[1]) == process.pid:
                        pids.append(int(entry.name))
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                total += cpu_seconds(pid)
        return total


def leased(toml: str, store: str, lease_seconds: float) -> str:
    """A bench configuration (bench.load.bridge_toml, store PLACEHOLDER) on `store` under leases."""
    text = toml.replace(f'store = "{PLACEHOLDER}"', f'store = "{store}"', 1)
    return text.replace(
        "[bridge]\n", f"[bridge]\nleases = true\nlease_seconds = {lease_seconds}\n", 1
    )


def lease_counts(store: str) -> dict[str, int]:
    """Live leases per owner (`host/pid/random`: keyed by pid)."""
    with psycopg.connect(store, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT owner, count(*) FROM leases WHERE expires > now() GROUP BY owner"
        ).fetchall()
    return {str(owner).split("/")[1]: int(n) for owner, n in rows}


async def measure_scale(
    ws: Workspace, pg: Postgres | None, backend: str, replicas: int, preset: Preset
) -> dict[str, Any]:
    count = preset.stations
    mix = scale_mix(count, True)
    direct = min(200, max(5, count // 20))
    result: dict[str, Any] = {
        "backend": backend,
        "replicas": replicas,
        "stations": count,
        "stations_per_replica": round(count / replicas, 1),
        "mix": mix,
        "direct_stations": direct,
        "interval_s": preset.interval,
        "duration_s": preset.duration,
    }
    store = pg.database() if backend == "postgresql" and pg is not None else None
    async with ws.group() as group:
        sink = await ws.sink(group)
        swarm = await ws.swarm(group)
        stations = [(i, p) for p, n in mix.items() for i in station_ids(p, n)]
        bridges: list[Child] = []
        for r in range(replicas):
            if store is None:
                toml = bridge_toml(sink.ready["port"], stations, ws.path("scale.db"))
            else:
                toml = leased(
                    bridge_toml(sink.ready["port"], stations, Path(PLACEHOLDER)),
                    store,
                    preset.scale_lease_seconds,
                )
            name = f"replicas-{backend}-{replicas}-{r}"
            bridges.append(await ws.bridge(group, name, toml, wait_s=900))
        groups: dict[str, int] = {}  # swarm group → replica
        for protocol, n in mix.items():
            ids = station_ids(protocol, n)
            for r, bridge in enumerate(bridges):
                part = ids[r::replicas]
                if part:
                    name = f"{PREFIX[protocol]}R{r}"
                    target = url(bridge.ready["south_port"])
                    await connect(swarm, name, target, protocol, part, ws.settings)
                    groups[name] = r
        await connect(
            swarm,
            "DIR",
            url(sink.ready["port"]),
            V201,
            [f"DIR-{i:05d}" for i in range(direct)],
            ws.settings,
        )
        await asyncio.sleep(2.0)
        # idle first: every station connected, none sending (pings, lease renewals, the loop)
        idle_before, idle_wall = [await b.cpu() for b in bridges], time.monotonic()
        await asyncio.sleep(preset.idle_seconds)
        idle_wall = time.monotonic() - idle_wall
        idle = [await b.cpu() - before for b, before in zip(bridges, idle_before, strict=True)]
        await swarm.call("freeze", wait_s=60)
        await sink.call("freeze", wait_s=60)
        cpu_before = [await b.cpu() for b in bridges]
        pg_before = pg.cpu() if store is not None and pg is not None else 0.0
        load_before = {"swarm": await swarm.cpu(), "sink": await sink.cpu()}
        wall_before = time.monotonic()
        answer = await swarm.call(
            "steady",
            wait_s=preset.duration + 120,
            groups=[*groups, "DIR"],
            interval=preset.interval,
            duration=preset.duration,
        )
        wall = time.monotonic() - wall_before
        cpu = [await b.cpu() - before for b, before in zip(bridges, cpu_before, strict=True)]
        pg_cpu = (pg.cpu() - pg_before) if store is not None and pg is not None else None
        result["load_cpu_share"] = {
            "swarm": round((await swarm.cpu() - load_before["swarm"]) / wall, 4),
            "sink": round((await sink.cpu() - load_before["sink"]) / wall, 4),
        }
        held = await asyncio.to_thread(lease_counts, store) if store is not None else {}
    latencies: dict[str, list[float]] = answer["latencies"]
    bridged = [v for name in groups for v in latencies[name]]
    straight = latencies["DIR"]
    added: dict[str, float | None] = {}
    for key, q in (("p50", 50.0), ("p99", 99.0)):
        through, direct_q = percentile(bridged, q), percentile(straight, q)
        added[key] = (
            None if through is None or direct_q is None else round((through - direct_q) * 1e3, 3)
        )
    messages = len(bridged)
    result["added_latency_ms"] = added
    result["latency_ms"] = {"bridged": summary_ms(bridged), "direct": summary_ms(straight)}
    result["messages"] = messages
    result["errors"] = {k: v for k, v in answer["errors"].items() if v}
    result["cpu_us_per_message"] = round(sum(cpu) / messages * 1e6, 2) if messages else None
    result["pg_cpu_us_per_message"] = (
        round(pg_cpu / messages * 1e6, 2) if messages and pg_cpu is not None else None
    )
    result["cpu_share_total"] = round(sum(cpu) / wall, 4)
    idle_share = sum(idle) / idle_wall
    result["idle_cpu_share_total"] = round(idle_share, 4)
    result["cpu_us_per_message_net"] = (
        round((sum(cpu) - idle_share * wall) / messages * 1e6, 2) if messages else None
    )
    per: list[dict[str, Any]] = []
    for r, bridge in enumerate(bridges):
        mine = [v for name, at in groups.items() if at == r for v in latencies[name]]
        per.append(
            {
                "stations": sum(len(station_ids(p, n)[r::replicas]) for p, n in mix.items()),
                "messages": len(mine),
                "cpu_share": round(cpu[r] / wall, 4),
                "cpu_us_per_message": round(cpu[r] / len(mine) * 1e6, 2) if mine else None,
                **({"leases_held": held.get(str(bridge.pid), 0)} if store is not None else {}),
            }
        )
    result["per_replica"] = per
    return result


async def measure_takeover(ws: Workspace, pg: Postgres, preset: Preset) -> dict[str, Any]:
    count, replicas = preset.takeover_stations, preset.takeover_replicas
    result: dict[str, Any] = {
        "stations": count,
        "replicas": replicas,
        "lease_seconds": preset.lease_seconds,
        "kind": "dial-out IEC 104 (gb-dc-charger)",
    }
    store = pg.database()
    async with ws.group() as group:
        sink = await ws.sink(group)
        fleet = Fleet()
        await fleet.dial_out(ws, group, "takeover", count, str(default_mapping()))
        toml = leased(
            bridge_toml(sink.ready["port"], [], Path(PLACEHOLDER), extra_stations=fleet.stations),
            store,
            preset.lease_seconds,
        )
        bridges = [
            await ws.bridge(group, f"takeover-{r}", toml, wait_s=900) for r in range(replicas)
        ]
        started = time.monotonic()
        up = await wait_linked(fleet, sink, [PREFIX_OUT], preset.takeover_timeout)
        if up is None:
            return {**result, "skipped": f"links not up: {await fleet.links()}"}
        # spread: every station leased, each replica holding its fair share (±1)
        share = -(-count // replicas)
        deadline = time.monotonic() + preset.takeover_timeout
        held: dict[str, int] = {}
        while time.monotonic() < deadline:
            held = await asyncio.to_thread(lease_counts, store)
            mine = [held.get(str(b.pid), 0) for b in bridges]
            if sum(mine) == count and min(mine) >= share - 1 - (share * replicas - count):
                break
            await asyncio.sleep(0.5)
        else:
            return {**result, "skipped": f"leases not spread: {held}"}
        up = await wait_linked(fleet, sink, [PREFIX_OUT], preset.takeover_timeout)
        result["spread_s"] = round(time.monotonic() - started, 2)
        result["held_before"] = [held.get(str(b.pid), 0) for b in bridges]
        victim = bridges[0]
        with psycopg.connect(store, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT station FROM leases WHERE owner LIKE %s", (f"%/{victim.pid}/%",)
            ).fetchall()
        stations = [str(row[0]) for row in rows]
        n = len(stations)
        result["victim_stations"] = n
        await fleet.call_all("mark")
        await sink.call("mark")
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        first_claim = all_leased = None
        back = opened = 0
        watcher = await psycopg.AsyncConnection.connect(store, autocommit=True)
        try:
            while time.monotonic() - killed < preset.takeover_timeout:
                cursor = await watcher.execute(
                    "SELECT count(*) FROM leases WHERE station = ANY(%s) AND owner NOT LIKE %s"
                    " AND expires > now()",
                    (stations, f"%/{victim.pid}/%"),
                )
                row = await cursor.fetchone()
                taken = int(row[0]) if row else 0
                now = time.monotonic()
                if taken and first_claim is None:
                    first_claim = now - killed
                if taken >= n and all_leased is None:
                    all_leased = now - killed
                back = sum(a["count"] for a in await fleet.call_all("back"))
                opened = len((await sink.call("marked", prefixes=[PREFIX_OUT + "-"]))["times"])
                if all_leased is not None and back >= n and opened >= n:
                    break
                await asyncio.sleep(0.25)
        finally:
            await watcher.close()
        times = sorted(t for a in await fleet.call_all("back", times=True) for t in a["times"])
        csms = (await sink.call("marked", prefixes=[PREFIX_OUT + "-"]))["times"]
        held = await asyncio.to_thread(lease_counts, store)
        survivors = [held.get(str(b.pid), 0) for b in bridges[1:]]
    result["held_after"] = survivors
    result["reinterrogated"] = len(times)
    result["csms_reconnected"] = len(csms)
    complete = all_leased is not None and len(times) >= n and len(csms) >= n
    result["complete"] = complete
    result["first_claim_s"] = round(first_claim, 2) if first_claim is not None else None
    result["all_leased_s"] = round(all_leased, 2) if all_leased is not None else None
    result["all_interrogated_s"] = round(times[n - 1] - killed, 2) if len(times) >= n else None
    result["all_csms_s"] = round(csms[n - 1] - killed, 2) if len(csms) >= n else None
    if complete:
        takeover = max(result["all_leased_s"], result["all_interrogated_s"], result["all_csms_s"])
        result["takeover_s"] = takeover
        result["claim_span_s"] = round(takeover - (first_claim or 0.0), 2)
    return result


def conditions() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpu_count": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "python": sys.version.split()[0],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


async def measure_replicas(ws: Workspace) -> dict[str, Any]:
    """The step of `python -m bench.run` (`--only replicas`; the full preset runs it): this module's
    preset of the same name as the suite's (quick otherwise)."""
    name = ws.settings.name if ws.settings.name in REPLICA_PRESETS else "quick"
    try:
        return await run(name, ws.root, lambda line: print(line, file=sys.stderr), ws=ws)
    except PostgresMissing as exc:
        return {"skipped": str(exc)}


async def run(
    preset_name: str, root: Path, log: Any, ws: Workspace | None = None
) -> dict[str, Any]:
    preset = REPLICA_PRESETS[preset_name]
    if ws is None:
        ws = Workspace(root, replace(PRESETS["quick"], name=f"replicas-{preset_name}"))
    report: dict[str, Any] = {"preset": preset_name, "conditions": conditions()}
    pg = Postgres()
    await pg.start()
    try:
        report["postgresql"] = str(pg.server.url).rsplit("@", 1)[-1]
        report["scale"] = []
        for backend, replicas in preset.sets:
            log(f"replicas: scale {backend} x{replicas}, {preset.stations} stations ...")
            value = await measure_scale(ws, pg, backend, replicas, preset)
            log(
                f"replicas: scale {backend} x{replicas}: added latency p50/p99"
                f" {value['added_latency_ms']['p50']}/{value['added_latency_ms']['p99']} ms,"
                f" CPU {value['cpu_us_per_message']} µs/message"
                f" (net of idle {value['cpu_us_per_message_net']})"
                f" (PostgreSQL server {value['pg_cpu_us_per_message']}), {value['messages']} pairs"
            )
            report["scale"].append(value)
        log(f"replicas: takeover, {preset.takeover_stations} stations ...")
        takeover = await measure_takeover(ws, pg, preset)
        log(f"replicas: takeover: {json.dumps(takeover)}")
        report["takeover"] = takeover
        report["conditions"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        await pg.stop()
    report["headline"] = headline(report)
    return report


def headline(report: dict[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {}
    for value in report.get("scale", []):
        key = f"{value['backend']}_x{value['replicas']}"
        head[f"replicas_{key}_cpu_us_per_message"] = value.get("cpu_us_per_message")
        head[f"replicas_{key}_cpu_us_per_message_net"] = value.get("cpu_us_per_message_net")
        head[f"replicas_{key}_pg_cpu_us_per_message"] = value.get("pg_cpu_us_per_message")
        head[f"replicas_{key}_added_p50_ms"] = value["added_latency_ms"]["p50"]
        head[f"replicas_{key}_added_p99_ms"] = value["added_latency_ms"]["p99"]
    takeover = report.get("takeover") or {}
    head["replicas_takeover_stations"] = takeover.get("victim_stations")
    head["replicas_takeover_s"] = takeover.get("takeover_s")
    head["replicas_takeover_claim_span_s"] = takeover.get("claim_span_s")
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(REPLICA_PRESETS), default="quick")
    parser.add_argument(
        "--out", type=Path, help="report folder (default bench/results/replicas-<preset>)"
    )
    parser.add_argument("--stations", type=int, help="stations of the scale step")
    parser.add_argument("--takeover-stations", type=int, help="stations of the takeover step")
    parser.add_argument("--takeover-replicas", type=int, help="replicas of the takeover step")
    parser.add_argument("--lease-seconds", type=float, help="lease_seconds of the takeover step")
    parser.add_argument("--skip-scale", action="store_true", help="the takeover step alone")
    args = parser.parse_args(argv)
    preset = REPLICA_PRESETS[args.preset]
    if args.stations:
        preset = replace(preset, stations=args.stations)
    if args.takeover_stations:
        preset = replace(preset, takeover_stations=args.takeover_stations)
    if args.takeover_replicas:
        preset = replace(preset, takeover_replicas=args.takeover_replicas)
    if args.lease_seconds:
        preset = replace(preset, lease_seconds=args.lease_seconds)
    if args.skip_scale:
        preset = replace(preset, sets=())
    REPLICA_PRESETS["custom"] = preset
    out: Path = args.out or RESULTS / f"replicas-{args.preset}"
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ocpp-bench-replicas-") as folder:
        root = Path(folder)
        try:
            report = asyncio.run(run("custom", root, log))
        except PostgresMissing as exc:
            print(f"bench.replicas: {exc}", file=sys.stderr)
            return 2
        finally:
            logs = out / "logs"
            shutil.rmtree(logs, ignore_errors=True)
            if (root / "logs").exists():
                shutil.copytree(root / "logs", logs)
    report["preset"] = args.preset
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    log(f"bench.replicas: results in {out / 'results.json'}")
    print(json.dumps(report["headline"], separators=(", ", ": ")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
