"""The abuse suite's rig: the real bridge process (`tests.faults.harness.BridgeProcess`) with two
pass-through 2.0.1 stations, CONTROL and ATTACK, behind the `ocpp` package's CSMS; the attacker
(`tests.abuse.attack`) as a child process; a healthy control charger (the `ocpp` package) whose
transactions and heartbeats go on during the attack.

The control charger's rule: every cycle is TransactionEvent Started, Heartbeat, Updated, Heartbeat,
Ended; a heartbeat counts as on time when its round trip completed within `HEARTBEAT_BOUND` (1 s, a
bounded wait, not a latency measurement); every TransactionEvent must be answered and reach the CSMS.
RSS is the bridge's VmRSS from /proc, before the attack and after the attacker has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.faults.harness import BridgeProcess, free_port
from tests.peers import Csms, connected_charger, now_iso

HEARTBEAT_BOUND = 1.0
CONTROL, ATTACK = "CONTROL", "ATTACK"
# the oversized attack's stations, one per parallel connection (tests/abuse/attack.py PARALLEL)
ATTACK_POOL = tuple(f"{ATTACK}-{n:02d}" for n in range(50))
MAX_MESSAGE_SIZE = 65536


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Control:
    heartbeats: int = 0
    on_time: int = 0
    events_sent: int = 0
    events_answered: int = 0
    transactions: list[str] = field(default_factory=list)


@dataclass
class Rig:
    bridge: BridgeProcess
    csms: Csms
    south_port: int
    health_port: int

    @property
    def pid(self) -> int:
        assert self.bridge.process is not None
        return self.bridge.process.pid

    async def attack(self, kind: str, *args: str) -> asyncio.subprocess.Process:
        port = self.health_port if kind == "idle" else self.south_port
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.abuse.attack", kind, "--port", str(port), *args,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def health(self) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.health_port)
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(HEARTBEAT_BOUND):
                answer = await reader.read()
        finally:
            writer.close()
        return int(answer.split()[1])


def bridge_toml(store: Path, csms_url: str, south_port: int, health_port: int) -> str:
    return (
        "\n".join(
            [
                "[bridge]",
                f'store = "{store}"',
                f'health = "127.0.0.1:{health_port}"',
                'log_format = "json"',
                'log_level = "info"',
                "[csms]",
                f'url = "{csms_url}"',
                "[south]",
                f'listen = "127.0.0.1:{south_port}"',
                f"max_message_size = {MAX_MESSAGE_SIZE}",
                *(
                    f'[[stations]]\nid = "{s}"\nprotocol = "ocpp2.0.1"'
                    for s in (CONTROL, ATTACK, *ATTACK_POOL)
                ),
            ]
        )
        + "\n"
    )


@contextlib.asynccontextmanager
async def running_rig(tmp: Path) -> AsyncIterator[Rig]:
    # a million attack connections are a million CSMS sessions: only the last ones are kept
    csms = Csms(keep_closed=1000)
    await csms.start()
    south_port, health_port = free_port(), free_port()
    config = tmp / "bridge.toml"
    config.write_text(bridge_toml(tmp / "bridge.db", csms.url, south_port, health_port))
    bridge = BridgeProcess(config, tmp)
    try:
        await bridge.start()
        yield Rig(bridge, csms, south_port, health_port)
    finally:
        await bridge.stop()
        await csms.stop()


async def control_cycles(rig: Rig, stop: asyncio.Event, control: Control) -> None:
    """The healthy charger: cycles until `stop` (at least one), every wait bounded."""
    url = f"ws://127.0.0.1:{rig.south_port}/ocpp"
    async with connected_charger(url, CONTROL) as (charger, _, _):
        boot = call.BootNotification(
            charging_station={"model": "Control", "vendor_name": "Abuse"}, reason="PowerUp"
        )
        assert (await asyncio.wait_for(charger.call(boot), 10)).status == "Accepted"

        async def heartbeat() -> None:
            control.heartbeats += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(charger.call(call.Heartbeat()), HEARTBEAT_BOUND)
                control.on_time += 1

        async def event(kind: str, seq: int, tid: str) -> None:
            control.events_sent += 1
            request = call.TransactionEvent(
                event_type=kind, timestamp=now_iso(), trigger_reason="Authorized", seq_no=seq,
                transaction_info={"transaction_id": tid},
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(charger.call(request), 10)
                control.events_answered += 1

        while True:
            tid = uuid.uuid4().hex[:20]
            control.transactions.append(tid)
            await event("Started", 0, tid)
            await heartbeat()
            await event("Updated", 1, tid)
            await heartbeat()
            await event("Ended", 2, tid)
            if stop.is_set():
                return
            await asyncio.sleep(0.05)


async def under_attack(
    rig: Rig, kind: str, *args: str, timeout: float
) -> tuple[dict[str, Any], Control, dict[str, int]]:
    """Run the control charger while the attacker does `kind`; (attacker's report, control, RSS)."""
    control = Control()
    stop = asyncio.Event()
    warm = asyncio.create_task(control_cycles(rig, stop, control))
    async with asyncio.timeout(10):
        while control.events_answered < 3:
            await asyncio.sleep(0.02)
    rss = {"before_kib": rss_kib(rig.pid)}
    attacker = await rig.attack(kind, *args)
    assert attacker.stdout is not None
    report: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            if kind == "idle":  # probes while the connections are held
                line = await attacker.stdout.readline()
                report["opened_at_probe"] = json.loads(line)["opened"]
                report["probes"] = [await rig.health() for _ in range(20)]
            out, _ = await attacker.communicate()
    finally:
        if attacker.returncode is None:
            attacker.kill()
            await attacker.wait()
    report.update(json.loads(out.decode().strip().splitlines()[-1]))
    rss["after_kib"] = rss_kib(rig.pid)
    stop.set()
    async with asyncio.timeout(30):
        await warm
    report["health_after"] = await rig.health()
    return report, control, rss


def check_control(rig: Rig, control: Control) -> None:
    """The control charger was served throughout: on time, nothing lost, everything at the CSMS."""
    assert control.heartbeats >= 2
    assert control.on_time == control.heartbeats, control
    assert control.events_answered == control.events_sent, control
    session = rig.csms.sessions[CONTROL]
    events = session.charge_point.payloads("TransactionEvent")
    seen = [(e["transaction_info"]["transaction_id"], e["event_type"]) for e in events]
    expected = [(t, k) for t in control.transactions for k in ("Started", "Updated", "Ended")]
    assert seen == expected
    assert session.oracle.problems == []
