"""The IEC 104 step of the load benchmark (`python -m bench.run --only iec104`): the real bridge process,
the CSMS sink, and raw asyncio chargers (`bench.iec104_outstation`) on both ends of its 104 links.

Figures (see bench/README.md):
- `points_per_s_104`: the most M_ME_NC_1 point updates per second (22 per ASDU) the bridge processed
  with none lost, offering rates in turn (`iec104_rates`) until a step loses or is held back.
  Processed = the bridge's own `ocpp_bridge_iec104_point_updates_total` (scraped from /metrics); sent =
  every monitoring point the generators sent in I-frames (interrogation answers included, so that an
  interrogation the bridge makes mid-step does not count as loss); lost = Δsent − Δprocessed over the
  step, after the bridge went quiet (nothing more processed for 2 s, at most 30 s). A step is held back
  when the generators could not send what was offered: a link's k=12 window was full because the
  bridge did not acknowledge in time (`refused`), or the generators fell behind (sent < 95% of offered).
- `cpu_us_per_point_104` / `cpu_us_per_point_104_single`: the bridge's CPU (its process and its 104
  worker processes, user + system) over the step ÷ points processed, at the best clean step of 22
  points per ASDU, and of 1 point per ASDU (`iec104_single_rates`).
- `kib_per_104_link`: one bridge with N dial-out stations: RSS with every station configured and
  connected to the CSMS but no 104 link up (the chargers' ports bound, not listening), then with every
  link up and interrogated; the difference ÷ N. `kib_per_104_station`: RSS with N links up − RSS of a
  bridge with `iec104_memory_base` links up, ÷ the difference (the whole station: its CSMS connection
  and core too). RSS of the bridge process plus its 104 worker processes, if any.
- `iec104_restart_s` (`iec104_restart_links`): one bridge with half its links dialled out and half
  dialled in (when the runtime accepts dial-in); SIGTERM, start again on the same ports and store; the
  time from the restarted bridge's launch (its start-up included) until every charger was
  interrogated again and the CSMS saw every station connect (also from its ready report and from
  SIGTERM).
- `*_net`: the same CPU less the bridge's idle share (links up, transactions running, no load)
  times the step's wall time.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from typing import Any

from bench.common import HOST, Child, ChildFailed, ChildGroup, finite_or_none, nofile_hard_limit

PREFIX_OUT = "I104"
PREFIX_IN = "D104"
METRIC = "ocpp_bridge_iec104_point_updates_total"
# links per generator process: a listening socket and a connection each
LINKS_PER_GENERATOR = 2500


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def station_104(
    station_id: str, table: str, *, port: int | None = None, common_address: int = 1
) -> str:
    """One `[[stations]]` entry: dialled out (`port`: the charger's server) or dialled in."""
    lines = ["", "[[stations]]", f'id = "{station_id}"', 'protocol = "iec104"']
    if port is not None:
        lines += [f'host = "{HOST}"', f"port = {port}"]
    else:
        lines.append('dial = "in"')
    lines += [f"common_address = {common_address}", "connectors = 1", f'mapping = "{table}"']
    return "\n".join(lines) + "\n"


class Fleet:
    """The chargers of one bridge: generator processes dialled (out) and dialling (in)."""

    def __init__(self) -> None:
        self.generators: list[Child] = []
        self.stations = ""
        self.count = 0
        self.listen_port: int | None = None
        self._dial_in = (0, 1)  # (count, first common address) of the dial-in chargers

    async def dial_out(
        self,
        ws: Any,
        group: ChildGroup,
        name: str,
        count: int,
        table: str,
        base: int = 0,
        hold: bool = False,
    ) -> None:
        made = 0
        while made < count:
            size = min(LINKS_PER_GENERATOR, count - made)
            child = await group.start(
                f"{name}-out-{len(self.generators)}",
                "bench.iec104_outstation",
                ["--listen", "--count", str(size), *(["--hold"] if hold else []), *ws.flags()],
                wait_s=120,
            )
            self.generators.append(child)
            for i, port in enumerate(child.ready["ports"]):
                self.stations += station_104(
                    f"{PREFIX_OUT}-{base + made + i:05d}", table, port=port
                )
            made += size
        self.count += count

    def dial_in_stations(self, count: int, table: str, first_ca: int = 1) -> None:
        """The configuration of `count` dial-in stations (the generators start after the bridge)."""
        if self.listen_port is None:
            self.listen_port = free_port()
        for i in range(count):
            self.stations += station_104(f"{PREFIX_IN}-{i:05d}", table, common_address=first_ca + i)
        self._dial_in = (count, first_ca)
        self.count += count

    async def dial_in(self, ws: Any, group: ChildGroup, name: str) -> None:
        count, first_ca = self._dial_in
        made = 0
        while made < count:
            size = min(LINKS_PER_GENERATOR, count - made)
            child = await group.start(
                f"{name}-in-{len(self.generators)}",
                "bench.iec104_outstation",
                [
                    "--dial",
                    f"{HOST}:{self.listen_port}",
                    "--count",
                    str(size),
                    "--common-address",
                    str(first_ca + made),
                    *ws.flags(),
                ],
                wait_s=120,
            )
            self.generators.append(child)
            made += size

    async def call_all(self, cmd: str, wait_s: float = 60.0, **args: Any) -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(*(g.call(cmd, wait_s=wait_s, **args) for g in self.generators))
        )

    async def links(self) -> dict[str, int]:
        answers = await self.call_all("links")
        return {key: sum(a[key] for a in answers) for key in answers[0]} if answers else {}

    async def points_total(self) -> int:
        return (await self.links()).get("points_total", 0)


def south_104(listen_port: int | None) -> str:
    return f'iec104_listen = "{HOST}:{listen_port}"\n' if listen_port else ""


async def processed(health: int | None) -> int:
    from bench.load import scrape_metric

    return int(await asyncio.to_thread(scrape_metric, health, METRIC) or 0)


async def wait_linked(
    fleet: Fleet, sink: Child, prefixes: list[str], wait_s: float
) -> float | None:
    """Seconds until every charger was interrogated and the CSMS saw every station, or None."""
    started = time.monotonic()
    deadline = started + wait_s
    while time.monotonic() < deadline:
        links = await fleet.links()
        marked = await sink.call("marked", prefixes=[p + "-" for p in prefixes])
        if links.get("interrogated", 0) >= fleet.count and int(marked["open"]) >= fleet.count:
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.5)
    return None


async def settle(health: int | None, fleet: Fleet, wait_s: float = 30.0) -> dict[str, int]:
    """Until the bridge processed everything sent so far, or nothing more for 2 s."""
    deadline = time.monotonic() + wait_s
    sent = await fleet.points_total()
    done = await processed(health)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and done < sent:
        await asyncio.sleep(0.1)
        now_done = await processed(health)
        if now_done != done:
            done, quiet_since = now_done, time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            break
        sent = await fleet.points_total()
    return {"sent": sent, "processed": done}


async def bridge_rss(bridge: Child) -> int:
    stats = await bridge.call("stats", gc=True)
    return int(stats["rss"]) + int(stats.get("worker_rss", 0))


async def dial_in_supported(ws: Any, sink_port: int, table: str) -> str | None:
    """None when the runtime accepts a dial-in 104 station, else its reason."""
    from bench.load import bridge_toml

    probe = Fleet()
    probe.dial_in_stations(1, table)
    toml = bridge_toml(
        sink_port,
        [],
        ws.path("probe-104-in.db"),
        extra_stations=probe.stations,
        south_extra=south_104(probe.listen_port),
    )
    async with ws.group() as group:
        try:
            await ws.bridge(group, "probe-104-in", toml, wait_s=60, check_only=True)
        except ChildFailed as exc:
            return str(exc)
    return None


async def run_steps(
    ws: Any,
    bridge: Child,
    sink: Child,
    fleet: Fleet,
    rates: list[float],
    per_asdu: int,
    duration: float,
    idle_share: float = 0.0,
) -> list[dict[str, Any]]:
    """Offered rates in turn, until one loses points or is held back."""
    health = bridge.ready.get("health_port")
    steps: list[dict[str, Any]] = []
    shares = max(1, len(fleet.generators))
    for rate in rates:
        before = await settle(health, fleet)
        events_before = await _delivered(sink, "TransactionEvent")
        cpu_before = await bridge.cpu()
        wall_before = time.monotonic()
        answers = await fleet.call_all(
            "send",
            wait_s=duration + 60,
            rate=rate / shares,
            duration=duration,
            per_asdu=per_asdu,
        )
        after = await settle(health, fleet)
        cpu = await bridge.cpu() - cpu_before
        wall = time.monotonic() - wall_before
        seconds = max(a["seconds"] for a in answers)
        load_sent = sum(a["sent"] for a in answers)
        refused = sum(a["refused"] for a in answers)
        sent = after["sent"] - before["sent"]
        done = after["processed"] - before["processed"]
        lost = max(0, sent - done)
        held_back = refused > 0 or load_sent < 0.95 * rate * duration
        steps.append(
            {
                "offered_rate": rate,
                "per_asdu": per_asdu,
                "sent": sent,
                "load_sent": load_sent,
                "refused": refused,
                "asdus": sum(a["asdus"] for a in answers),
                "processed": done,
                "lost": lost,
                "held_back": held_back,
                "processed_per_s": finite_or_none(done / max(1e-9, seconds), 1),
                "transaction_events": await _delivered(sink, "TransactionEvent") - events_before,
                "cpu_us_per_point": finite_or_none(cpu / done * 1e6, 2) if done else None,
                "cpu_us_per_point_net": finite_or_none((cpu - idle_share * wall) / done * 1e6, 2)
                if done
                else None,
                "bridge_cpu_share": finite_or_none(cpu / max(1e-9, wall), 3),
                "seconds": seconds,
            }
        )
        if lost or held_back:
            break
    return steps


async def _delivered(sink: Child, action: str) -> int:
    groups = (await sink.call("stats"))["groups"]
    return sum(
        int(groups.get(prefix, {}).get("actions", {}).get(action, 0))
        for prefix in (PREFIX_OUT, PREFIX_IN)
    )


def best_clean(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    clean = [s for s in steps if not s["lost"] and not s["held_back"] and s["processed"] > 0]
    return max(clean, key=lambda s: s["processed_per_s"] or 0) if clean else None


async def measure_throughput(ws: Any, table: str) -> dict[str, Any]:
    from bench.load import bridge_toml

    s = ws.settings
    result: dict[str, Any] = {"links": s.iec104_links, "dial": "out"}
    async with ws.group() as group:
        sink = await ws.sink(group)
        fleet = Fleet()
        generators = max(1, s.iec104_generators)
        per = math.ceil(s.iec104_links / generators)
        for g in range(generators):
            size = min(per, s.iec104_links - g * per)
            if size > 0:
                await fleet.dial_out(ws, group, f"iec104-load{g}", size, table, base=g * per)
        toml = bridge_toml(
            sink.ready["port"], [], ws.path("iec104.db"), extra_stations=fleet.stations
        )
        bridge = await ws.bridge(group, "iec104-bridge", toml, wait_s=300)
        result["bridge_event_loop"] = bridge.ready.get("event_loop")
        await sink.call("mark")
        up = await wait_linked(fleet, sink, [PREFIX_OUT], max(20.0, fleet.count * 0.05))
        if up is None:
            return {
                **result,
                "skipped": f"104 links or CSMS connections not up: {await fleet.links()}",
            }
        result["links_up_s"] = up
        await fleet.call_all("charge")
        wanted = fleet.count * 2  # Started and the first Updated of each
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await _delivered(sink, "TransactionEvent") >= wanted:
                break
            await asyncio.sleep(0.25)
        else:
            result["transactions"] = "did not start in 60 s"
        await fleet.call_all("freeze")
        await sink.call("freeze")
        # the bridge's CPU with every link up and every transaction running but no load: the
        # periodic TransactionEvents, the loop's own turns (for the net figures)
        idle_cpu, idle_wall = await bridge.cpu(), time.monotonic()
        await asyncio.sleep(min(5.0, s.iec104_duration))
        idle_share = (await bridge.cpu() - idle_cpu) / (time.monotonic() - idle_wall)
        result["idle_cpu_share"] = finite_or_none(idle_share, 4)
        result["steps"] = await run_steps(
            ws, bridge, sink, fleet, list(s.iec104_rates), 22, s.iec104_duration, idle_share
        )
        result["single_steps"] = await run_steps(
            ws, bridge, sink, fleet, list(s.iec104_single_rates), 1, s.iec104_duration, idle_share
        )
        stats = await bridge.call("stats")
        result["loop_lag_ms"] = stats["lag"]
        result["bridge_workers"] = stats.get("workers")
    best = best_clean(result["steps"])
    single = best_clean(result["single_steps"])
    # whether the highest offer found the bridge's limit; if not, the figure is a floor
    for key in ("steps", "single_steps"):
        last = result[key][-1] if result[key] else None
        result[f"{key}_limit_reached"] = bool(last and (last["lost"] or last["held_back"]))
    result.update(
        {
            "points_per_s_104": best["processed_per_s"] if best else None,
            "cpu_us_per_point_104": best["cpu_us_per_point"] if best else None,
            "points_per_s_104_single": single["processed_per_s"] if single else None,
            "cpu_us_per_point_104_single": single["cpu_us_per_point"] if single else None,
            "cpu_us_per_point_104_net": best["cpu_us_per_point_net"] if best else None,
            "cpu_us_per_point_104_single_net": single["cpu_us_per_point_net"] if single else None,
        }
    )
    return result


async def _bridge_with(
    ws: Any, group: ChildGroup, sink: Child, table: str, out: int, into: int, tag: str
) -> tuple[Child, Fleet, float | None, str]:
    """A bridge with `out` dialled-out and `into` dial-in links, all up (or the time is None)."""
    from bench.load import bridge_toml

    fleet = Fleet()
    if out:
        await fleet.dial_out(ws, group, f"{tag}", out, table)
    if into:
        fleet.dial_in_stations(into, table)
    store = ws.path(f"{tag}.db")
    toml = bridge_toml(
        sink.ready["port"],
        [],
        store,
        extra_stations=fleet.stations,
        south_extra=south_104(fleet.listen_port),
    )
    await sink.call("mark")
    bridge = await ws.bridge(group, f"{tag}-bridge", toml, wait_s=900)
    if into:
        await fleet.dial_in(ws, group, tag)
    prefixes = [p for p, n in ((PREFIX_OUT, out), (PREFIX_IN, into)) if n]
    up = await wait_linked(fleet, sink, prefixes, max(120.0, fleet.count * 0.05))
    return bridge, fleet, up, toml


async def measure_memory_104(ws: Any, table: str) -> dict[str, Any]:
    """RSS per 104 link: one bridge with `count` dial-out stations, their chargers' ports bound but
    not listening (every station configured and connected to the CSMS, no 104 link up), then with
    every link up and interrogated: the link alone. Against a bridge with `base` links up: the whole
    station (its CSMS connection and core included)."""
    from bench.load import bridge_toml

    s = ws.settings
    base = s.iec104_memory_base
    count = s.iec104_memory_links
    result: dict[str, Any] = {"links": count, "base_links": base, "dial": "out"}
    async with ws.group() as group:
        sink = await ws.sink(group)
        bridge, fleet, up, _ = await _bridge_with(ws, group, sink, table, base, 0, "mem104-base")
        if up is None:
            return {**result, "skipped": f"{base} links not up: {await fleet.links()}"}
        await asyncio.sleep(2.0)
        rss_base = await bridge_rss(bridge)
        await bridge.call("stop")
        await bridge.close(wait_s=120)
    async with ws.group() as group:
        sink = await ws.sink(group)
        fleet = Fleet()
        await fleet.dial_out(ws, group, "mem104", count, table, hold=True)
        toml = bridge_toml(
            sink.ready["port"], [], ws.path("mem104.db"), extra_stations=fleet.stations
        )
        await sink.call("mark")
        bridge = await ws.bridge(group, "mem104-bridge", toml, wait_s=900)
        deadline = time.monotonic() + max(30.0, count * 0.02)
        csms_open = 0
        while time.monotonic() < deadline:
            csms_open = int((await sink.call("marked", prefixes=[PREFIX_OUT + "-"]))["open"])
            if csms_open >= count:
                break
            await asyncio.sleep(0.5)
        result["csms_open_without_link"] = csms_open
        await asyncio.sleep(2.0)
        rss_held = await bridge_rss(bridge)
        await fleet.call_all("listen")
        up = await wait_linked(fleet, sink, [PREFIX_OUT], max(120.0, count * 0.05))
        if up is None:
            return {**result, "skipped": f"{count} links not up: {await fleet.links()}"}
        result["links_up_s"] = up
        await asyncio.sleep(2.0)
        rss_up = await bridge_rss(bridge)
        await bridge.call("stop")
        await bridge.close(wait_s=120)
    per_link = (rss_up - rss_held) / count / 1024
    per_station = (rss_up - rss_base) / (count - base) / 1024 if count > base else None
    result.update(
        {
            "rss_base_mib": round(rss_base / 2**20, 2),
            "rss_without_links_mib": round(rss_held / 2**20, 2),
            "rss_mib": round(rss_up / 2**20, 2),
            "kib_per_104_link": finite_or_none(per_link, 2),
            "kib_per_104_station": finite_or_none(per_station, 2),
        }
    )
    return result


async def measure_restart_104(ws: Any, table: str, dial_in: bool) -> dict[str, Any]:
    s = ws.settings
    total = s.iec104_restart_links
    into = total // 2 if dial_in else 0
    out = total - into
    result: dict[str, Any] = {"links": total, "dial_out": out, "dial_in": into}
    async with ws.group() as group:
        sink = await ws.sink(group)
        first, fleet, up, toml = await _bridge_with(ws, group, sink, table, out, into, "restart104")
        if up is None:
            return {**result, "skipped": f"links not up: {await fleet.links()}"}
        result["links_up_s"] = up
        result["rss_mib"] = round(await bridge_rss(first) / 2**20, 1)
        await fleet.call_all("mark")
        await sink.call("mark")
        stopped_at = time.monotonic()
        await first.call("stop")
        await first.close(wait_s=120)
        result["shutdown_s"] = round(time.monotonic() - stopped_at, 2)
        launched_at = time.monotonic()
        second = await ws.bridge(group, "restart104-bridge-2", toml, wait_s=900)
        up_at = time.monotonic()
        result["startup_s"] = second.ready["startup_s"]
        prefixes = [p + "-" for p, n in ((PREFIX_OUT, out), (PREFIX_IN, into)) if n]
        deadline = up_at + s.iec104_restart_timeout
        back = 0
        csms: list[float] = []
        while time.monotonic() < deadline:
            back = sum(a["count"] for a in await fleet.call_all("back"))
            csms = (await sink.call("marked", prefixes=prefixes))["times"]
            if back >= total and len(csms) >= total:
                break
            await asyncio.sleep(0.5)
        times = [t for a in await fleet.call_all("back", times=True) for t in a["times"]]
        csms = (await sink.call("marked", prefixes=prefixes))["times"]
    result["back"] = len(times)
    result["csms_connected"] = len(csms)
    complete = len(times) >= total and len(csms) >= total
    result["complete"] = complete
    last = max(max(times), csms[total - 1]) if complete else None
    # from the restarted bridge's launch (its start-up included: dial-in chargers may be back before
    # it reports ready), from its ready report (as the reconnect storm counts), from SIGTERM
    result["iec104_restart_s"] = round(last - launched_at, 2) if last else None
    result["all_back_after_ready_s"] = round(last - up_at, 2) if last else None
    result["all_back_from_stop_s"] = round(last - stopped_at, 2) if last else None
    return result


async def measure_104(ws: Any) -> dict[str, Any]:
    """The 104 step: throughput and CPU, memory per link, restart (each where the preset asks)."""
    s = ws.settings
    table_path = ws.path("bench-104.yaml")
    table_path.write_text(
        "extends: gb-dc-charger\nstation: {meter_interval: 1}\n", encoding="utf-8"
    )
    table = str(table_path)
    result: dict[str, Any] = {
        "link": "c104 workers" if c104_link() else "the bridge's own asyncio link"
    }
    limit = (nofile_hard_limit() - 100) // 2
    async with ws.group() as group:
        sink = await ws.sink(group)
        reason = await dial_in_supported(ws, sink.ready["port"], table)
    result["dial_in_supported"] = reason is None
    if reason:
        result["dial_in_unsupported_reason"] = reason
    result["throughput"] = await _guarded(measure_throughput(ws, table))
    if s.iec104_memory_links:
        s.iec104_memory_links = min(s.iec104_memory_links, limit)
        result["memory"] = await _guarded(measure_memory_104(ws, "gb-dc-charger"))
    if s.iec104_restart_links:
        s.iec104_restart_links = min(s.iec104_restart_links, limit)
        result["restart"] = await _guarded(measure_restart_104(ws, "gb-dc-charger", reason is None))
    throughput = result["throughput"]
    result["bridge_event_loop"] = throughput.get("bridge_event_loop")
    if "skipped" in throughput:
        result["skipped"] = throughput["skipped"]
    result.update(
        {
            "points_per_s_104": throughput.get("points_per_s_104"),
            "cpu_us_per_point_104": throughput.get("cpu_us_per_point_104"),
            "cpu_us_per_point_104_single": throughput.get("cpu_us_per_point_104_single"),
            "cpu_us_per_point_104_net": throughput.get("cpu_us_per_point_104_net"),
            "cpu_us_per_point_104_single_net": throughput.get("cpu_us_per_point_104_single_net"),
            "kib_per_104_link": (result.get("memory") or {}).get("kib_per_104_link"),
            "kib_per_104_station": (result.get("memory") or {}).get("kib_per_104_station"),
            "iec104_restart_s": (result.get("restart") or {}).get("iec104_restart_s"),
        }
    )
    if result["points_per_s_104"] is None and "skipped" not in result:
        # every step lost points or was held back (the generators could not send the offer: a
        # loaded machine), so there is no figure; say why rather than print a bare null
        result["unmeasured"] = "no step without lost or held-back points"
    return result


async def _guarded(coroutine: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        value: dict[str, Any] = await coroutine
    except (ChildFailed, OSError, TimeoutError, KeyError, ValueError) as exc:
        value = {"skipped": f"{type(exc).__name__}: {exc}"}
    value["elapsed_s"] = round(time.monotonic() - started, 1)
    return value


def c104_link() -> bool:
    """Whether the product's 104 link is still c104's (the figures say which link they measured)."""
    from pathlib import Path

    import adapters.iec104.link

    source = Path(adapters.iec104.link.__file__)
    try:
        return "import c104" in source.read_text(encoding="utf-8")
    except OSError:
        return False
