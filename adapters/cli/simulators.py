"""`ocpp-bridge simulate`: one simulated charger for operators testing a site or a vendor table.

```python
sim = Iec104Sim(Outstation(table, serial="SN1"), card="1234567890123456", power_kw=60)
await sim.start(dial_in=("10.0.0.5", 2405))      # or listen=("0.0.0.0", 2404)
await run_script(sim, load_script(Path("session.yaml")), print)   # or run_keys(sim, console)
await sim.close()
```

Rules
- A charger is a `Sim`: plug, unplug, swipe a card, charge for some seconds, stop charging; each step
  waits for what it asks (the card's answer, the settlement record's acknowledgement) within bounds.
  `Iec104Sim` is the outstation of `adapters.cli.outstation104` (registration, cards and settlement
  records where its table declares them); `OcppSim` is the demo's 1.6J or 2.0.1 charger
  (`adapters.cli.demo.DemoCharger16`, `DemoCharger201`), booted, with heartbeats at the CSMS's interval.
- Card flow, the same for every kind: an accepted card starts charging on a plugged-in connector (or
  when it is plugged in later) and stops a charging one. `charge: N` starts charging without a card
  where none started it (an OCPP charger uses its `--card`) and lets it charge N seconds. While a
  connector charges, energy flows at `power_kw` in real time: a 104 charger's register grows every
  second, an OCPP charger sends a meter value every 5 s.
- A script is JSON lines or a YAML list of one-key steps: {plug: true}, {unplug: true},
  {swipe: "1234567890123456"}, {charge: 60}, {stop: true}, {wait: 2}; a step may add
  {connector: 2} (104 chargers with --connectors). Anything else is a `ScriptError` naming the step.
- Interactive keys (a terminal): p plug/unplug, c swipe the card, s start/stop charging, q quit; one
  line of help, then one live line (the charger's state and what happened last).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from adapters.cli.outstation104 import Outstation

STEP_KINDS: Final = ("plug", "unplug", "swipe", "charge", "stop", "wait")
DEFAULT_CARD: Final = "1234567890123456"
HELP_LINE: Final = "keys: p plug/unplug  c swipe card  s start/stop charging  q quit"


class ScriptError(Exception):
    """A session file that is no list of steps."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    value: Any
    connector: int = 1

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.value}" if self.kind in ("swipe", "charge", "wait") else self.kind
        )


def parse_steps(items: Any, where: str) -> list[Step]:
    if not isinstance(items, list):
        raise ScriptError(f"{where}: a list of steps is expected")
    steps = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ScriptError(f"{where}: step {number}: a mapping like {{plug: true}} is expected")
        connector = item.get("connector", 1)
        kinds = [key for key in item if key != "connector"]
        if len(kinds) != 1 or kinds[0] not in STEP_KINDS:
            raise ScriptError(
                f"{where}: step {number}: one of {', '.join(STEP_KINDS)} is expected, not"
                f" {', '.join(map(str, kinds)) or 'nothing'}"
            )
        kind = kinds[0]
        value = item[kind]
        if not isinstance(connector, int) or isinstance(connector, bool) or connector < 1:
            raise ScriptError(f"{where}: step {number}: connector must be 1 or more")
        if kind == "swipe" and not (isinstance(value, str | int) and str(value)):
            raise ScriptError(f"{where}: step {number}: swipe needs a card number")
        if kind in ("charge", "wait") and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ScriptError(f"{where}: step {number}: {kind} needs a number of seconds")
        steps.append(Step(kind, str(value) if kind == "swipe" else value, connector))
    return steps


def load_script(path: Path) -> list[Step]:
    """The steps of a session file (JSON lines or a YAML list). Raises ScriptError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: {exc.strerror or exc}") from None
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if lines and all(line.startswith("{") for line in lines):
        try:
            items = [json.loads(line) for line in lines]
        except ValueError as exc:
            raise ScriptError(f"{path}: not JSON lines: {exc}") from None
    else:
        try:
            items = YAML(typ="safe", pure=True).load(text)
        except YAMLError as exc:
            raise ScriptError(f"{path}: not YAML: {exc}") from None
    return parse_steps(items, str(path))


class Sim(Protocol):
    card: str

    def describe(self) -> str: ...

    async def plug(self, connector: int) -> None: ...

    async def unplug(self, connector: int) -> None: ...

    async def swipe(self, card: str, connector: int) -> str: ...

    async def charge(self, seconds: float, connector: int) -> None: ...

    async def stop_charging(self, connector: int) -> None: ...

    def plugged(self, connector: int) -> bool: ...

    def charging(self, connector: int) -> bool: ...


# --- IEC 104 ---------------------------------------------------------------------------------------


class Iec104Sim:
    def __init__(self, outstation: Outstation, *, card: str = DEFAULT_CARD, power_kw: float = 60.0):
        self.outstation = outstation
        self.card = card
        self.power_kw = power_kw
        self._meter: asyncio.Task[None] | None = None

    async def start(
        self, *, dial_in: tuple[str, int] | None = None, listen: tuple[str, int] | None = None
    ) -> tuple[str, int] | None:
        """Dial in, or listen (the address it listens on)."""
        self._meter = asyncio.create_task(self._metering())
        if dial_in is not None:
            await self.outstation.dial_in(*dial_in)
            return None
        assert listen is not None
        return await self.outstation.listen(*listen)

    async def _metering(self) -> None:
        """While a connector charges, its energy register grows every second at `power_kw`."""
        while True:
            await asyncio.sleep(1.0)
            for n, state in self.outstation.connectors.items():
                if state.charging:
                    wh = self.power_kw * 1000 / 3600
                    await self.outstation.deliver(n, wh, power_kw=self.power_kw)

    async def close(self) -> None:
        if self._meter is not None:
            self._meter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._meter
        await self.outstation.stop()

    async def ready(self, within: float) -> None:
        await self.outstation.wait_ready(within)

    def describe(self) -> str:
        sim = self.outstation
        parts = ["link up" if sim.link_up else "link down"]
        for n, state in sim.connectors.items():
            what = "charging" if state.charging else "plugged" if state.plugged else "free"
            parts.append(f"{n}: {what} {sim.meter_wh(n) / 1000:.2f} kWh")
        if sim._pending:
            parts.append(f"{len(sim._pending)} settlement unacknowledged")
        return ", ".join(parts)

    def plugged(self, connector: int) -> bool:
        return self.outstation.connectors[connector].plugged

    def charging(self, connector: int) -> bool:
        return self.outstation.connectors[connector].charging

    async def plug(self, connector: int) -> None:
        await self.outstation.plug_in(connector)

    async def unplug(self, connector: int) -> None:
        await self.outstation.unplug(connector)
        await self._settled()

    async def swipe(self, card: str, connector: int) -> str:
        was_charging = self.charging(connector)
        status = await self.outstation.swipe(card, connector)
        if was_charging and not self.charging(connector):
            await self._settled()
        return status

    async def charge(self, seconds: float, connector: int) -> None:
        if not self.plugged(connector):
            await self.outstation.plug_in(connector)
        await self.outstation.set_charging(connector, True)
        await asyncio.sleep(seconds)

    async def stop_charging(self, connector: int) -> None:
        await self.outstation.set_charging(connector, False)
        await self._settled()

    async def _settled(self) -> None:
        with contextlib.suppress(TimeoutError):
            await self.outstation.wait_settled(30)


# --- OCPP ------------------------------------------------------------------------------------------


class OcppSim:
    """The demo's OCPP charger on a websocket to `url/station_id`, booted, with heartbeats."""

    def __init__(
        self,
        version: str,
        url: str,
        station_id: str,
        *,
        password: str | None = None,
        card: str = DEFAULT_CARD,
        power_kw: float = 22.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.version = version
        self.url = url.rstrip("/") + "/" + station_id
        self.station_id = station_id
        self.password = password
        self.card = card
        self.power_kw = power_kw
        self.on_event = on_event
        self.charger: Any = None
        self._plugged = False
        self._waiting_card: str | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []
        self.last = ""
        self._metered_at = 0.0

    def _tell(self, text: str) -> None:
        self.last = text
        if self.on_event is not None:
            self.on_event(text)

    async def start(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        from adapters.cli.demo import DemoCharger16, DemoCharger201

        headers = {}
        if self.password is not None:
            secret = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {secret}"
        ws = await self._stack.enter_async_context(
            connect(
                self.url,
                subprotocols=[Subprotocol(self.version)],
                additional_headers=headers,
                open_timeout=15,
            )
        )
        charger_class = DemoCharger16 if self.version == "ocpp1.6" else DemoCharger201
        self.charger = charger_class(self.station_id, ws, response_timeout=15)
        self._tasks.append(asyncio.create_task(self.charger.start()))
        interval = await self.charger.boot()
        self._tell(f"booted at {self.url}; heartbeat every {interval} s")
        self._tasks.append(asyncio.create_task(self._heartbeats(max(interval, 1))))
        self._tasks.append(asyncio.create_task(self._metering()))

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.charger.heartbeat()

    async def _metering(self) -> None:
        """While charging, a meter value every 5 s with the energy at `power_kw` since the last."""
        while True:
            await asyncio.sleep(5.0)
            await self._meter_now()

    async def _meter_now(self) -> None:
        now = asyncio.get_running_loop().time()
        since, self._metered_at = self._metered_at, now
        if self.charging(1):
            await self.charger.deliver(self.power_kw * 1000 * (now - since) / 3600)

    async def _start(self, card: str) -> None:
        await self.charger.start_charging(card)
        self._metered_at = asyncio.get_running_loop().time()
        self._tell(f"charging (card {card})")

    async def _stop(self, reason: str = "Local") -> None:
        await self._meter_now()
        await self.charger.stop_charging(reason)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()

    async def ready(self, within: float) -> None:
        return None

    def describe(self) -> str:
        what = "charging" if self.charging(1) else "plugged" if self._plugged else "free"
        energy = self.charger.energy / 1000 if self.charger is not None else 0.0
        return f"{self.station_id} {self.version}: {what} {energy:.2f} kWh"

    def plugged(self, connector: int) -> bool:
        return self._plugged

    def charging(self, connector: int) -> bool:
        return self.charger is not None and self.charger.transaction_id is not None

    async def plug(self, connector: int) -> None:
        self._plugged = True
        await self.charger.plug()
        self._tell("plugged in")
        if self._waiting_card is not None:
            card, self._waiting_card = self._waiting_card, None
            await self._start(card)

    async def unplug(self, connector: int) -> None:
        if self.charging(connector):
            await self._stop("EVDisconnected")
        await self.charger.unplug()
        self._plugged = False
        self._tell("unplugged")

    async def swipe(self, card: str, connector: int) -> str:
        status = await self.charger.authorize(card)
        self._tell(f"card {card}: {status}")
        if status == "Accepted":
            if self.charging(connector):
                await self._stop()
                self._tell("stopped charging (card)")
            elif self._plugged:
                await self._start(card)
            else:
                self._waiting_card = card
        return str(status)

    async def charge(self, seconds: float, connector: int) -> None:
        if not self._plugged:
            await self.plug(connector)
        if not self.charging(connector):
            await self._start(self.card)
        await asyncio.sleep(seconds)
        await self._meter_now()

    async def stop_charging(self, connector: int) -> None:
        await self._stop()
        self._tell("stopped charging")


# --- running it ------------------------------------------------------------------------------------


async def run_step(sim: Sim, step: Step) -> None:
    connector = step.connector
    if step.kind == "plug":
        if step.value is False:
            await sim.unplug(connector)
        else:
            await sim.plug(connector)
    elif step.kind == "unplug":
        await sim.unplug(connector)
    elif step.kind == "swipe":
        await sim.swipe(step.value, connector)
    elif step.kind == "charge":
        await sim.charge(step.value, connector)
    elif step.kind == "stop":
        await sim.stop_charging(connector)
    elif step.kind == "wait":
        await asyncio.sleep(step.value)


async def run_script(sim: Sim, steps: list[Step], say: Callable[[str], None]) -> None:
    for number, step in enumerate(steps, 1):
        say(f"step {number}/{len(steps)}: {step}")
        await run_step(sim, step)
    say(f"script done: {sim.describe()}")


class LiveLine:
    """One line rewritten in place on a terminal; plain lines otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.describe: Callable[[], str] = lambda: ""

    def __call__(self, text: str) -> None:
        if self.terminal:
            line = f"{self.describe()} | {text}" if self.describe() else text
            self.stream.write("\r\x1b[K" + line[:200])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (on a terminal, above the live line)."""
        self.stream.write(("\r\x1b[K" if self.terminal else "") + text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()


async def run_keys(sim: Sim, line: LiveLine) -> None:
    """Until q (or end of input): p plug/unplug, c swipe, s start/stop charging."""
    import termios
    import tty

    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[str] = asyncio.Queue()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    loop.add_reader(fd, lambda: keys.put_nowait(sys.stdin.read(1)))
    line.note(HELP_LINE)
    line("ready")
    try:
        while True:
            key = (await keys.get()).lower()
            if key in ("q", "\x04", ""):
                break
            try:
                if key == "p":
                    await (sim.unplug(1) if sim.plugged(1) else sim.plug(1))
                elif key == "c":
                    await sim.swipe(sim.card, 1)
                elif key == "s":
                    if sim.charging(1):
                        await sim.stop_charging(1)
                    else:
                        await sim.charge(0, 1)
                else:
                    line(HELP_LINE)
                    continue
            except Exception as exc:  # noqa: BLE001 - shown; the charger goes on
                line(f"{key}: {exc!r}")
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        line.end()
