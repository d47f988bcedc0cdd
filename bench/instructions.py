"""The hop cost in instructions: what each target executes per request/response pair, under callgrind.

CPU time on these shared machines moves by ±30% from one round to the next (the host's load, not
ours); instruction counts do not. This measurement repeats the hop cost's comparison (bench/load.py,
`measure_hop`) with them, as a figure to compare commits by.

Rules
- Same swarm, same sink, same burst of Authorize pairs as the hop cost; the targets are the plain relay
  and the bridge (2.0.1 pass-through, 1.6J translated), all on the loop the bridge ships with.
- Each target runs under `valgrind --tool=callgrind --instr-atstart=no`: nothing is counted until
  `callgrind_control -i on`, switched on for one burst only and off again, then dumped. The figure is
  the instructions the process executed in user space per pair (Ir); the ratios divide the bridge's by
  the relay's.
- Not counted: the kernel's work (the socket calls, the same number for every target, which makes
  these ratios higher than CPU-time ratios) and waiting. Runs are repeatable to a few per cent (how
  frames happen to share a read changes a little from run to run).
- Skipped (figures None, with the reason) when valgrind is not installed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from bench.common import Child, finite_or_none
from bench.load import (
    LOOP_ID_BASE,
    Workspace,
    bridge_toml,
    connect,
    shipped_loop,
    skipped,
    station_ids,
    url,
)
from bench.messages import V16, V201

# Station ids of these targets start here, so they never meet the hop cost's at the sink.
ID_BASE = 90_000


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]


async def _control(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "callgrind_control",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.wait_for(process.wait(), 120)


def _instructions(out: Path, pid: int) -> int | None:
    """The instructions in the dump of `pid` (`<out>.<pid>.1`, written by `callgrind_control -d`)."""
    best: int | None = None
    for part in out.parent.glob(f"{out.name}.{pid}*"):
        for line in part.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                value = int(line.split()[1])
                best = value if best is None else max(best, value)
    return best


async def measure_hop_instructions(ws: Workspace) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return skipped("valgrind (callgrind) is not installed")
    s = ws.settings
    loop = shipped_loop()
    stations = s.hop_ir_stations
    result: dict[str, Any] = {"loop": loop, "stations": stations, "targets": {}}
    async with ws.group() as group:
        sink = await ws.sink(group)
        swarm = await ws.swarm(group)
        for name in ("relay", "v201", "v16"):
            out = ws.root / f"callgrind-{name}"
            child: Child
            if name == "relay":
                child = await group.start(
                    f"ir-relay-{loop}",
                    "bench.relay",
                    [
                        "--upstream",
                        url(sink.ready["port"]),
                        *(["--uvloop"] if loop == "uvloop" else []),
                    ],
                    wait_s=600,
                    prefix=_callgrind(out),
                )
                ids = [f"IRR-{ID_BASE + i:05d}" for i in range(stations)]
                protocol, port = V201, child.ready["port"]
            else:
                protocol = V201 if name == "v201" else V16
                ids = station_ids(protocol, stations, ID_BASE + LOOP_ID_BASE[loop])
                toml = bridge_toml(
                    sink.ready["port"], [(i, protocol) for i in ids], ws.path(f"ir-{name}.db")
                )
                child = await ws.bridge(
                    group, f"ir-bridge-{name}", toml, loop=loop, wait_s=600, prefix=_callgrind(out)
                )
                port = child.ready["south_port"]
            await connect(swarm, f"ir-{name}", url(port), protocol, ids, s)
            # warm-up: code paths, caches, the CSMS-side registration; not counted
            await swarm.call(
                "burst", wait_s=600, group=f"ir-{name}", count=3, kind="authorize", timeout=120
            )
            await _control("-i", "on", str(child.pid))
            answer = await swarm.call(
                "burst",
                wait_s=1800,
                group=f"ir-{name}",
                count=s.hop_ir_pairs,
                kind="authorize",
                timeout=120,
            )
            await _control("-i", "off", str(child.pid))
            await _control("-d", str(child.pid))
            total = _instructions(out, child.pid)
            pairs = answer["pairs"]
            result["targets"][name] = {
                "pairs": pairs,
                "errors": answer["errors"],
                "kir_per_pair": finite_or_none(total / pairs / 1000, 1)
                if total and pairs
                else None,
            }
            await swarm.call("close", wait_s=60, group=f"ir-{name}")
            await child.close()

    def kir(name: str) -> float | None:
        value = result["targets"].get(name, {}).get("kir_per_pair")
        return value if isinstance(value, int | float) and value > 0 else None

    relay = kir("relay")
    for name in ("v201", "v16"):
        mine = kir(name)
        result[f"hop_ir_ratio_{name}"] = (
            finite_or_none(mine / relay, 3) if mine is not None and relay is not None else None
        )
    return result
