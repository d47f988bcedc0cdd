"""The benchmark report: a Markdown table of every figure against its target, and PNG plots (matplotlib).

Plots are drawn only when matplotlib is installed (`pip install -e '.[bench]'`, which `make bench` does);
without it the report says so and the Markdown and JSON are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.load import _get

TARGETS = {
    "hop_ratio_v16": ("≤ 1.5", lambda v: v <= 1.5),
    "hop_ratio_v201": ("≤ 1.2", lambda v: v <= 1.2),
    "hop_ratio_v16_asyncio": ("≤ 1.5", lambda v: v <= 1.5),
    "hop_ratio_v201_asyncio": ("≤ 1.2", lambda v: v <= 1.2),
    "hop_ratio_v16_vs_asyncio_relay": ("≤ 1.5", lambda v: v <= 1.5),
    "hop_ratio_v201_vs_asyncio_relay": ("≤ 1.2", lambda v: v <= 1.2),
    "hop_ir_ratio_v16": ("≤ 1.5", lambda v: v <= 1.5),
    "hop_ir_ratio_v201": ("≤ 1.2", lambda v: v <= 1.2),
    "kib_per_station": ("≤ 64", lambda v: v <= 64),
    "kib_per_station_v16": ("≤ 64", lambda v: v <= 64),
    "kib_per_station_tls": ("≤ 100", lambda v: v <= 100),
    "kib_per_station_v16_tls": ("≤ 100", lambda v: v <= 100),
    "points_per_s_104": ("≥ 50000", lambda v: v >= 50_000),
    "cpu_us_per_point_104": ("≤ 5", lambda v: v <= 5),
    "cpu_us_per_point_104_single": ("≤ 20", lambda v: v <= 20),
    "kib_per_104_link": ("≤ 8", lambda v: v <= 8),
    "iec104_restart_s": ("≤ 30", lambda v: v <= 30),
    "added_latency_p50_ms": ("≤ 1 (at 10k)", lambda v: v <= 1),
    "added_latency_p99_ms": ("≤ 5 (at 10k)", lambda v: v <= 5),
    "cpu_share": ("≤ 0.40 (at 10k)", lambda v: v <= 0.40),
    "loop_lag_p999_ms": ("≤ 50 (at 10k)", lambda v: v <= 50),
    "storm_all_back_s": ("≤ 30 (10k, no TLS)", lambda v: v <= 30),
    "storm_tls_all_back_s": ("≤ 60 (10k, TLS)", lambda v: v <= 60),
}

DESCRIPTIONS = {
    "hop_ratio_v16": "1.6J→2.0.1 translated pair: bridge CPU ÷ plain relay CPU, both on the loop"
    " the bridge ships with",
    "hop_ratio_v201": "2.0.1 pass-through pair: bridge CPU ÷ plain relay CPU, both on the loop"
    " the bridge ships with",
    "hop_ratio_v16_asyncio": "the same, both on the standard asyncio loop",
    "hop_ratio_v201_asyncio": "the same, both on the standard asyncio loop",
    "hop_ratio_v16_vs_asyncio_relay": "bridge on its shipped loop ÷ relay on the standard asyncio"
    " loop (the floor: a plain WebSocket relay on stock asyncio)",
    "hop_ratio_v201_vs_asyncio_relay": "the same for 2.0.1 pass-through",
    "hop_ir_ratio_v16": "1.6J translated pair: bridge ÷ relay in instructions executed (callgrind,"
    " user space; repeatable where CPU time is not)",
    "hop_ir_ratio_v201": "2.0.1 pass-through pair: bridge ÷ relay in instructions executed",
    "bridge_event_loop": "the loop the bridge ships with here (`[bridge] event_loop = auto`)",
    "hop_us_relay": "plain relay, standard asyncio loop: CPU µs per request/response pair (the floor)",
    "hop_us_relay_uvloop": "plain relay on uvloop: CPU µs per pair",
    "hop_us_v16": "bridge, 1.6J translated, shipped loop: CPU µs per pair",
    "hop_us_v201": "bridge, 2.0.1 pass-through, shipped loop: CPU µs per pair",
    "kib_per_station": "RSS per connected 2.0.1 station (both websockets + state), no TLS",
    "kib_per_station_v16": "RSS per connected 1.6J station (both websockets + state), no TLS",
    "kib_per_station_tls": "RSS per connected 2.0.1 station, TLS on both faces",
    "kib_per_station_v16_tls": "RSS per connected 1.6J station, TLS on both faces",
    "kib_per_station_relay": "plain relay: RSS per relayed connection pair (the floor)",
    "points_per_s_104": "IEC 104 measurement updates/s processed by the bridge (22 per ASDU,"
    " chargers in transactions), none lost and none held back",
    "cpu_us_per_point_104": "bridge CPU µs per 104 point at that rate (22 per ASDU)",
    "cpu_us_per_point_104_single": "bridge CPU µs per 104 point, 1 per ASDU, at a rate it sustains",
    "kib_per_104_link": "RSS per IEC 104 link up: N stations with every link up − the same with"
    " none up (stations connected to the CSMS either way)",
    "kib_per_104_station": "RSS per IEC 104 station, its link up: N − a few (CSMS connection and"
    " core included)",
    "iec104_restart_s": "all 104 links (half dialled out, half in) back after a bridge restart,"
    " from the restarted bridge's launch",
    "cpu_us_per_point_104_net": "the same less the bridge's idle CPU (links up, no load)",
    "cpu_us_per_point_104_single_net": "the same, 1 per ASDU, less the idle CPU",
    "iec104_link": "the bridge's 104 link the figures were measured on",
    "scale_stations": "stations in the largest scale run",
    "added_latency_p50_ms": "bridge-added latency p50 (through bridge − direct), largest run",
    "added_latency_p99_ms": "bridge-added latency p99, largest run",
    "added_latency_p999_ms": "bridge-added latency p99.9, largest run",
    "relay_cpu_share": "plain relay, same stations and load, its CPU share (the floor at that size)",
    "cpu_ratio_vs_relay": "bridge CPU share ÷ the plain relay's, same load, largest run",
    "relay_added_latency_p99_ms": "plain relay's added latency p99, same load, largest run",
    "cpu_share": "bridge CPU ÷ wall time (1.0 = one core), largest run",
    "loop_lag_p999_ms": "bridge event-loop lag p99.9, largest run",
    "scale_startup_s": "bridge start-up (configuration to listening), largest scale run",
    "storm_stations": "stations in the reconnect storm",
    "storm_startup_s": "restarted bridge's start-up in the storm (not in storm_all_back_s)",
    "storm_all_back_s": "seconds from bridge restart until every station is back in service",
    "storm_tls_all_back_s": "the same with TLS on both faces (chargers → bridge → CSMS)",
    "v16_supported": "the runtime accepts ocpp1.6 stations",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def markdown(report: dict[str, Any], plots: list[str] | None) -> str:
    head = report["headline"]
    lines = [
        f"# ocpp-bridge benchmark ({report['preset']})",
        "",
        f"Run {report['started']} on {report['cpu_count']} CPUs; descriptor hard limit"
        f" {report['nofile_hard_limit']}; load generators on uvloop {report['uvloop']}; the bridge on"
        f" {report['headline'].get('bridge_event_loop')} unless a row says otherwise. Figures are ratios against a"
        " baseline measured in the same run, or bridge CPU per message (see bench/README.md).",
        "",
        "| figure | value | target | met | meaning |",
        "|---|---|---|---|---|",
    ]
    for key, value in head.items():
        target, check = TARGETS.get(key, ("", None))
        met = (
            ""
            if check is None or not isinstance(value, int | float)
            else ("yes" if check(value) else "no")
        )
        lines.append(
            f"| `{key}` | {_fmt(value)} | {target} | {met} | {DESCRIPTIONS.get(key, '')} |"
        )
    lines += ["", "## Not measured", ""]
    missing = _skips(report)
    lines += [f"- {name}: {reason}" for name, reason in missing] or ["- nothing"]
    lines += [
        "",
        "## Hop cost",
        "",
        "| target | CPU µs / pair | pairs | errors |",
        "|---|---|---|---|",
    ]
    for name, data in (_get(report, "hop", "targets") or {}).items():
        lines.append(
            f"| {name} | {_fmt(data.get('cpu_us_per_pair'))} | {_fmt(data.get('pairs'))} |"
            f" {data.get('errors') or data.get('skipped', '')} |"
        )
    lines += [
        "",
        "## Scale (1 message per station per interval)",
        "",
        "| stations | mix | added p50 ms | added p99 ms | added p99.9 ms | direct p50 ms |"
        " CPU share | CPU µs/msg | idle CPU share | CPU µs/msg above idle | loop lag p99.9 ms |"
        " RSS MiB | start-up s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report.get("scale", []):
        if "skipped" in run:
            lines.append(
                f"| {run.get('requested', '?')} | skipped: {run['skipped']} |||||||||||| |"
            )
            continue
        added = run["added_latency_ms"]
        lines.append(
            f"| {run['stations']} | {run['mix']} | {_fmt(added['p50'])} | {_fmt(added['p99'])} |"
            f" {_fmt(added['p999'])} | {_fmt(run['latency_ms']['DIR']['p50'])} |"
            f" {_fmt(run['cpu_share'])} | {_fmt(run['cpu_us_per_message'])} |"
            f" {_fmt(run.get('idle_cpu_share'))} | {_fmt(run.get('cpu_us_per_message_net'))} |"
            f" {_fmt(run['loop_lag_ms']['p999'])} | {_fmt(run['rss_mib'])} |"
            f" {_fmt(run.get('bridge_startup_s'))} | {run['errors']} |"
        )
    lines += [
        "",
        "## Memory",
        "",
        "| setup | stations | KiB per station | RSS connected MiB |",
        "|---|---|---|---|",
    ]
    for name, data in (report.get("memory") or {}).items():
        lines.append(
            f"| {name} | {_fmt(data.get('stations'))} | {_fmt(data.get('kib_per_station'))} |"
            f" {_fmt(data.get('rss_connected_mib'))} |"
        )
    lines += ["", "## Reconnect storm", ""]
    for key, label in (("storm", "no TLS"), ("storm_tls", "TLS on both faces")):
        storm = report.get(key) or {}
        if "skipped" in storm or not storm:
            continue
        lines.append(
            f"- {label}: {_fmt(storm.get('stations'))} stations {storm.get('mix', '')}: all back in"
            f" {_fmt(storm.get('all_back_s'))} s after the restarted bridge listened"
            f" ({_fmt(storm.get('all_back_from_stop_s'))} s after SIGTERM); chargers back p50"
            f" {_fmt(_get(storm, 'charger_back_s', 'p50'))} s,"
            f" p99 {_fmt(_get(storm, 'charger_back_s', 'p99'))} s; errors {storm.get('errors', {})}."
        )
    iec104 = report.get("iec104") or {}
    throughput = iec104.get("throughput") or {}
    lines += [
        "",
        "## IEC 104",
        "",
        f"Link: {iec104.get('link', '—')}, bridge on {iec104.get('bridge_event_loop', '—')}."
        f" {_fmt(throughput.get('links'))} chargers (raw asyncio"
        " outstations, bench/iec104_outstation.py) → bridge → CSMS sink. Measurements: every charger"
        " in a transaction; processed = handed to the station core (the bridge's own counter); lost"
        " = sent − processed; held back = the generators could not send what was offered (a link's"
        " window full, or they fell behind).",
        "",
        "| per ASDU | offered points/s | sent | refused | processed | lost | processed/s |"
        " TransactionEvents | CPU µs/point | net of idle | bridge CPU share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in (throughput.get("steps") or []) + (throughput.get("single_steps") or []):
        lines.append(
            f"| {step['per_asdu']} | {_fmt(step['offered_rate'])} | {_fmt(step['sent'])} |"
            f" {_fmt(step['refused'])} | {_fmt(step['processed'])} | {_fmt(step['lost'])} |"
            f" {_fmt(step['processed_per_s'])} | {_fmt(step['transaction_events'])} |"
            f" {_fmt(step['cpu_us_per_point'])} | {_fmt(step.get('cpu_us_per_point_net'))} |"
            f" {_fmt(step['bridge_cpu_share'])} |"
        )
    memory104 = iec104.get("memory") or {}
    restart104 = iec104.get("restart") or {}
    lines += [
        "",
        f"Memory: {_fmt(memory104.get('links'))} stations, links dialled out: RSS (bridge and its"
        f" 104 workers) {_fmt(memory104.get('rss_mib'))} MiB with every link up,"
        f" {_fmt(memory104.get('rss_without_links_mib'))} MiB with none →"
        f" {_fmt(memory104.get('kib_per_104_link'))} KiB per link; with"
        f" {_fmt(memory104.get('base_links'))} stations {_fmt(memory104.get('rss_base_mib'))} MiB →"
        f" {_fmt(memory104.get('kib_per_104_station'))} KiB per station."
        f" {memory104.get('skipped', '')}",
    ]
    if restart104:
        lines += [
            "",
            f"Restart: {_fmt(restart104.get('dial_out'))} links dialled out and"
            f" {_fmt(restart104.get('dial_in'))} dialled in, all back"
            f" {_fmt(restart104.get('iec104_restart_s'))} s after the restarted bridge was launched"
            f" ({_fmt(restart104.get('all_back_after_ready_s'))} s after its ready report, start-up"
            f" {_fmt(restart104.get('startup_s'))} s)."
            f" {restart104.get('skipped', '')}",
        ]
    if iec104.get("dial_in_unsupported_reason"):
        lines += ["", f"Dial-in not measured: {iec104['dial_in_unsupported_reason']}"]
    profiles = _get(report, "hop", "profiles") or {}
    for name, data in profiles.items():
        lines += [
            "",
            f"## Profile: {name} pairs (cProfile, own time)",
            "",
            "```",
            data["top"].strip(),
            "```",
        ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    elif plots is None:
        lines += ["", "(no plots: matplotlib is not installed)"]
    return "\n".join(lines) + "\n"


def _skips(report: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for name, data in report.items():
        if isinstance(data, dict):
            if "skipped" in data:
                found.append((name, data["skipped"]))
            for sub, inner in data.items():
                if isinstance(inner, dict) and "skipped" in inner:
                    found.append((f"{name}.{sub}", inner["skipped"]))
                if isinstance(inner, dict):
                    for leaf, deep in inner.items():
                        if isinstance(deep, dict) and "skipped" in deep:
                            found.append((f"{name}.{sub}.{leaf}", deep["skipped"]))
        elif isinstance(data, list):
            found += [(f"{name}[{i}]", d["skipped"]) for i, d in enumerate(data) if "skipped" in d]
    if report.get("v16_unsupported_reason"):
        found.append(("ocpp1.6", report["v16_unsupported_reason"]))
    return found


def plot(report: dict[str, Any], folder: Path) -> list[str] | None:
    """Draw the PNGs into `folder`; return their file names (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        names.append(name)

    targets = _get(report, "hop", "targets") or {}
    measured = {k: v["cpu_us_per_pair"] for k, v in targets.items() if v.get("cpu_us_per_pair")}
    if measured:
        fig, ax = plt.subplots(figsize=(6, 4))
        colours = {"relay": "grey", "v201": "tab:blue", "v16": "tab:orange"}
        ax.bar(
            list(measured),
            list(measured.values()),
            color=[colours.get(name.split("@")[0], "grey") for name in measured],
        )
        ax.tick_params(axis="x", labelrotation=30)
        shipped = _get(report, "hop", "shipped_loop") or "asyncio"
        relay = measured.get(f"relay@{shipped}")
        if relay:
            ax.axhline(
                relay * 1.2, ls="--", color="tab:blue", label=f"target v201 (1.2× relay@{shipped})"
            )
            ax.axhline(
                relay * 1.5, ls="--", color="tab:orange", label=f"target v16 (1.5× relay@{shipped})"
            )
            ax.legend()
        ax.set_ylabel("bridge CPU µs per request/response pair")
        ax.set_title("Hop cost")
        save(fig, "hop_cost.png")
    runs = [r for r in report.get("scale", []) if "skipped" not in r]
    if runs:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        xs = [r["stations"] for r in runs]
        for key, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            left.plot(xs, [r["added_latency_ms"][key] for r in runs], marker="o", label=label)
        left.axhline(5, ls="--", color="red", label="p99 target")
        left.set_yscale("symlog", linthresh=1.0)
        left.set_xlabel("stations")
        left.set_ylabel("bridge-added latency, ms")
        left.legend()
        right.plot(xs, [r["cpu_share"] for r in runs], marker="o", label="bridge")
        relays = [(r["stations"], (r.get("relay") or {}).get("cpu_share")) for r in runs]
        relays = [(x, y) for x, y in relays if y is not None]
        if relays:
            right.plot(
                [x for x, _ in relays],
                [y for _, y in relays],
                marker="s",
                color="grey",
                label="plain relay, same load",
            )
        right.axhline(0.4, ls="--", color="red", label="target")
        right.set_xlabel("stations")
        right.set_ylabel("CPU ÷ wall (1.0 = one core)")
        right.legend()
        fig.suptitle("Scale")
        save(fig, "scale.png")
        biggest = runs[-1]
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, values in biggest["samples"].items():
            ordered = sorted(values)
            if ordered:
                ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
                ax.plot([v * 1e3 for v in ordered], ys, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("round trip, ms (log)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"Latency CDF, {biggest['stations']} stations")
        ax.legend()
        save(fig, "latency_cdf.png")
    memory = {k: v.get("kib_per_station") for k, v in (report.get("memory") or {}).items()}
    memory = {k: v for k, v in memory.items() if v is not None}
    if memory:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(list(memory), list(memory.values()))
        ax.axhline(64, ls="--", color="red", label="target 64 KiB")
        ax.axhline(100, ls=":", color="red", label="target with TLS 100 KiB")
        ax.set_ylabel("KiB per station")
        ax.set_title("Memory per station")
        ax.legend()
        save(fig, "memory.png")
    storms = [
        (suffix, report.get(key) or {})
        for key, suffix in (("storm", ""), ("storm_tls", ", TLS"))
        if (report.get(key) or {}).get("samples")
    ]
    if storms:
        fig, ax = plt.subplots(figsize=(6, 4))
        for suffix, storm in storms:
            for key, label in (
                ("samples", "chargers answered"),
                ("csms_samples", "CSMS connected"),
            ):
                ordered = sorted(storm.get(key) or [])
                ax.plot(ordered, range(1, len(ordered) + 1), label=label + suffix)
        ax.set_xlabel("seconds after the restarted bridge listened")
        ax.set_ylabel("stations back")
        ax.set_title(f"Reconnect storm, {storms[0][1]['stations']} stations")
        ax.legend()
        save(fig, "storm.png")
    steps = ((report.get("iec104") or {}).get("throughput") or {}).get("steps") or []
    if steps:
        fig, ax = plt.subplots(figsize=(6, 4))
        offered = [step["offered_rate"] for step in steps]
        ax.plot(offered, [step["processed_per_s"] for step in steps], marker="o", label="processed")
        ax.plot(offered, offered, ls=":", color="grey", label="offered")
        ax.axhline(50_000, ls="--", color="red", label="target 50,000/s")
        ax.set_xlabel("offered 104 point updates/s")
        ax.set_ylabel("processed/s (none lost where the line meets offered)")
        ax.set_title("IEC 104 measurements")
        ax.legend()
        save(fig, "iec104.png")
    return names
