"""`ocpp-bridge simulate iec104|ocpp1.6|ocpp2.0.1`: one simulated charger (adapters.cli.simulators).

Rules
- A table, address or script that cannot be used prints one line per problem on stderr and exits 2
  before anything connects.
- With `--script` the charger runs the session file and exits 0 when it ends (1 when a step failed or
  the link never came up); without one, on a terminal, it takes keys until q; without a terminal it
  runs until SIGINT/SIGTERM. Either way it stops every connection and task it opened.
- `--log-level debug` logs every frame exchange (104: `sim104.frame` with the bytes in hex).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.cli.simulators import DEFAULT_CARD, ScriptError, Step

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SIMULATE_HELP = (
    "A simulated charger for testing a site or a vendor table: IEC 104 per any table (dialling in"
    " or listening, with registration, cards and settlement records where the table declares them),"
    " or an OCPP 1.6J or 2.0.1 charger. Keys on a terminal, or a scripted session (--script)."
)

ScriptOption = Annotated[
    Path | None,
    typer.Option(
        "--script",
        help="A session file: JSON lines or a YAML list of steps, e.g. {plug: true},"
        ' {swipe: "1234567890123456"}, {charge: 60}, {stop: true}, {wait: 2}, {unplug: true}.'
        " The simulator exits 0 when it ends.",
    ),
]
CardOption = Annotated[
    str, typer.Option("--card", help="The card the c key swipes (and charge: uses on OCPP).")
]
LogOption = Annotated[
    str, typer.Option("--log-level", help="debug logs every frame; info every event.")
]


def _fail(*problems: str) -> typer.Exit:
    for problem in problems:
        typer.echo(problem, err=True)
    return typer.Exit(2)


def _address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _fail(f"{option} {text}: HOST:PORT expected")
    return host.strip("[]"), int(port)


def _script(path: Path | None) -> list[Step] | None:
    if path is None:
        return None
    from adapters.cli.simulators import load_script

    try:
        return load_script(path)
    except ScriptError as exc:
        raise _fail(str(exc)) from None


@app.command(
    "iec104",
    help="An IEC 104 charger (the controlled station) per a mapping table: a shipped table's name"
    " or a table file. It listens for the bridge (--listen, the default: 127.0.0.1:2404) or dials the"
    " bridge's \\[south] iec104_listen (--dial-in), sending the table's registration frame first when"
    " it declares one. Keys: p plug/unplug, c swipe the card, s start/stop charging, q quit.",
)
def iec104(
    table: Annotated[
        str, typer.Option("--table", help="A shipped table's name (gb-dc-charger) or a table file.")
    ],
    dial_in: Annotated[
        str | None,
        typer.Option("--dial-in", help="HOST:PORT of the bridge's \\[south] iec104_listen."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen", help="HOST:PORT to listen on; the bridge's station dials it (host, port)."
        ),
    ] = None,
    common_address: Annotated[
        int | None,
        typer.Option("--common-address", help="The ASDU common address (default: the table's)."),
    ] = None,
    serial: Annotated[
        str,
        typer.Option(
            "--serial", help="The id in the registration frame (the station's registration_id)."
        ),
    ] = "SIM0001",
    card: CardOption = DEFAULT_CARD,
    script: ScriptOption = None,
    connectors: Annotated[int, typer.Option("--connectors", help="Connectors (1..64).")] = 1,
    price: Annotated[
        float, typer.Option("--price", help="Price per kWh in settlement records.")
    ] = 1.0,
    power: Annotated[float, typer.Option("--power", help="Charging power in kW.")] = 60.0,
    log_level: LogOption = "warning",
) -> None:
    from adapters.cli.outstation104 import Outstation
    from adapters.cli.simulators import Iec104Sim
    from adapters.config import Iec104Station
    from adapters.iec104.station import load_table
    from adapters.mapping_files import MappingFileError

    if dial_in is not None and listen is not None:
        raise _fail("--dial-in and --listen exclude each other")
    if not 1 <= connectors <= 64:
        raise _fail(f"--connectors {connectors}: 1..64")
    dial = _address(dial_in, "--dial-in") if dial_in is not None else None
    where = _address(listen or "127.0.0.1:2404", "--listen") if dial is None else None
    steps = _script(script)
    try:
        station = Iec104Station.model_validate(
            {
                "id": "SIM",
                "protocol": "iec104",
                "dial": "in",
                "connectors": connectors,
                "mapping": table,
            }
        )
        compiled = load_table(station)
    except MappingFileError as exc:
        raise _fail(*(str(problem) for problem in exc.problems)) from None
    except ValueError as exc:
        raise _fail(f"--table {table}: {exc}") from None
    _logging(log_level)
    from adapters.cli.simulators import LiveLine

    line = LiveLine()
    outstation = Outstation(
        compiled, common_address=common_address, serial=serial, price=price, on_event=line
    )
    sim = Iec104Sim(outstation, card=card, power_kw=power)
    line.describe = sim.describe

    async def main() -> int:
        try:
            address = await sim.start(dial_in=dial, listen=where)
        except OSError as exc:
            typer.echo(f"--listen {listen}: {exc.strerror or exc}", err=True)
            return 2
        try:
            if address is not None:
                line.note(f"listening on {address[0]}:{address[1]} (table {table})")
            else:
                assert dial is not None
                line.note(f"dialling {dial[0]}:{dial[1]} as {serial} (table {table})")
            return await _drive(sim, steps, line, lambda: sim.ready(60))
        finally:
            await sim.close()

    raise typer.Exit(asyncio.run(main()))


def _ocpp(version: str) -> Any:
    def command(
        url: Annotated[
            str,
            typer.Option(
                "--url",
                help="The bridge's (or a CSMS's) OCPP URL, ws://HOST:PORT/PATH; the station id"
                " is appended.",
            ),
        ],
        station_id: Annotated[str, typer.Option("--id", help="The station id.")],
        password: Annotated[
            str | None,
            typer.Option("--password", help="HTTP Basic password (security profile 1)."),
        ] = None,
        card: CardOption = DEFAULT_CARD,
        script: ScriptOption = None,
        power: Annotated[float, typer.Option("--power", help="Charging power in kW.")] = 22.0,
        log_level: LogOption = "warning",
    ) -> None:
        from adapters.cli.simulators import LiveLine, OcppSim

        if not url.startswith(("ws://", "wss://")):
            raise _fail(f"--url {url}: ws:// or wss:// expected")
        steps = _script(script)
        _logging(log_level)
        line = LiveLine()
        sim = OcppSim(
            version, url, station_id, password=password, card=card, power_kw=power, on_event=line
        )
        line.describe = sim.describe

        async def main() -> int:
            try:
                try:
                    await sim.start()
                except Exception as exc:  # noqa: BLE001 - refused, unreachable, timed out
                    typer.echo(f"{sim.url}: {exc}", err=True)
                    return 1
                return await _drive(sim, steps, line, None)
            finally:
                await sim.close()

        raise typer.Exit(asyncio.run(main()))

    command.__doc__ = (
        f"An OCPP {'1.6J' if version == 'ocpp1.6' else '2.0.1'} charger (the demo's, on the `ocpp`"
        " package): boots, sends its status and heartbeats, and runs sessions (plug, authorize a"
        " card, start, meter values, stop). Keys: p plug/unplug, c swipe the card, s start/stop"
        " charging, q quit."
    )
    return command


app.command("ocpp1.6")(_ocpp("ocpp1.6"))
app.command("ocpp2.0.1")(_ocpp("ocpp2.0.1"))


def _logging(level: str) -> None:
    from adapters.ops.logs import configure_logging

    configure_logging("console", level)


async def _drive(sim: Any, steps: list[Step] | None, line: Any, ready: Any) -> int:
    from adapters.cli.simulators import run_keys, run_script

    if steps is not None:
        if ready is not None:
            try:
                await ready()
            except TimeoutError:
                line("the link did not come up within 60 s")
                return 1
        try:
            await run_script(sim, steps, line)
        except Exception as exc:  # noqa: BLE001 - the step and why, then exit 1
            line(f"script failed: {exc!r}")
            return 1
        return 0
    if sys.stdin.isatty():
        await run_keys(sim, line)
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    return 0
