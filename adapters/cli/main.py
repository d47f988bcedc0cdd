"""The `ocpp-bridge` command line (typer).

Rules
- Commands and options are a contract with operators' scripts and outside acceptance tests (README and
  docs/ list them): new ones extend it, none is renamed.
- `check` also warns (stderr, `warning: ...`, exit status still 0) about what `adapters.ops.exposure`
  finds open to the network: chargers without a password on a non-loopback listener, security
  profile 0 toward a CSMS on another host.
- A configuration problem prints one line per problem (file:line: key: reason) on stderr and exits 2,
  before anything starts listening.
- `run` stops gracefully on SIGTERM and SIGINT and exits 0. It runs on the loop `[bridge] event_loop`
  chooses (`adapters.ops.event_loop`: uvloop when installed) and, once started, keeps the garbage
  collector's full collections rare and short (`adapters.ops.gc_policy`); before anything connects, it
  fixes the C allocator's mmap threshold so closed TLS connections give their memory back
  (`adapters.ops.malloc_policy`).
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.cli.mappings import app as mappings_app
from adapters.cli.simulate import SIMULATE_HELP
from adapters.cli.simulate import app as simulate_app
from adapters.cli.trace import TRACE_HELP
from adapters.cli.trace import trace as trace_command
from adapters.config import BridgeConfig, ConfigError, load_config

if TYPE_CHECKING:
    from adapters.runtime import StationTables

app = typer.Typer(
    name="ocpp-bridge",
    help="Makes OCPP 1.6J, OCPP 2.0.1 and IEC 60870-5-104 chargers appear to any CSMS as OCPP 2.0.1"
    " charging stations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(
    mappings_app,
    name="mappings",
    help="IEC 104 mapping tables: list the shipped ones, validate, explain point by point, replay"
    " recorded point changes (a dry run), print the JSON Schema.",
)


def _print_version(value: bool) -> None:
    if value:
        from adapters.version import version

        print(f"ocpp-bridge {version()}")
        raise typer.Exit(0)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Makes OCPP 1.6J, OCPP 2.0.1 and IEC 60870-5-104 chargers appear to any CSMS as OCPP 2.0.1
    charging stations."""


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="The TOML configuration file. Keys can be overridden with"
        " OCPP_BRIDGE_<SECTION>__<KEY> environment variables.",
    ),
]


def _load(config: Path) -> tuple[BridgeConfig, StationTables]:
    """The configuration and its stations' tables, after every check `run` makes before binding."""
    from adapters.ops.preflight import preflight

    try:
        loaded = load_config(config, os.environ)
        tables = preflight(loaded)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(2) from None
    return loaded, tables


@app.command()
def run(config: ConfigOption) -> None:
    """Run the bridge until SIGTERM or SIGINT, then shut down gracefully."""
    loaded, tables = _load(config)
    from adapters.ops.logs import configure_logging

    configure_logging(loaded.bridge.log_format, loaded.bridge.log_level)
    from adapters.ops import event_loop

    try:
        event_loop.run(_run(loaded, tables), loaded.bridge.event_loop)
    except ConfigError as exc:  # a port that cannot be bound (busy, an address not on this machine)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(2) from None


async def _run(config: BridgeConfig, tables: StationTables) -> None:
    from adapters.ops.event_loop import loop_name
    from adapters.ops.gc_policy import GcPolicy, freeze_startup_objects
    from adapters.ops.logs import get_logger
    from adapters.ops.malloc_policy import fix_mmap_threshold
    from adapters.runtime import Runtime

    mmap_threshold_fixed = fix_mmap_threshold()
    runtime = Runtime(config, tables=tables)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start()
    freeze_startup_objects()
    collector = asyncio.create_task(GcPolicy().run())
    get_logger().info(
        "bridge.started",
        event_loop=loop_name(),
        stations=len(config.stations),
        mmap_threshold_fixed=mmap_threshold_fixed,
    )
    await stop.wait()
    collector.cancel()
    await runtime.stop()


@app.command()
def check(config: ConfigOption) -> None:
    """Validate a configuration file (and its environment overrides) without starting anything:
    every check `run` makes except binding its ports."""
    loaded, _ = _load(config)
    from adapters.ops.exposure import exposure_warnings

    for warning in exposure_warnings(loaded):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{config}: valid ({len(loaded.stations)} stations)")
    from adapters.ops.preflight import needs_store
    from adapters.store_api import StoreError, is_postgresql
    from adapters.store_open import probe

    if needs_store(loaded) and is_postgresql(loaded.bridge.store):
        try:
            print(f"store: {probe(loaded.bridge.store)}")
        except StoreError as exc:  # gone since the preflight's look
            print(f"{loaded.where(('bridge', 'store'))}: bridge.store: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None


class DemoLogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


@app.command()
def demo(
    duration: Annotated[
        float | None,
        typer.Option(
            help="Exit after this many seconds with a summary (exit status 0 on success)."
        ),
    ] = None,
    log_level: Annotated[
        DemoLogLevel,
        typer.Option(help="The bridge's log lines shown (above the live table, never in it)."),
    ] = DemoLogLevel.warning,
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=5,
            help="Run this many bridge replicas (processes) under leases on one local PostgreSQL"
            " (started for the demo: its server binaries must be installed), kill one (SIGKILL)"
            " mid-session and check that the others serve its stations with nothing lost or"
            " duplicated. Give --duration 30 or more.",
        ),
    ] = 1,
) -> None:
    """Run simulated chargers and a small CSMS through the real bridge, on loopback only (the
    bridge's status page on too: its URL is printed)."""
    if replicas == 1:
        from adapters.cli.demo import run_demo

        ok = asyncio.run(run_demo(duration, log_level.value))
        raise typer.Exit(0 if ok else 1)
    from adapters.cli.demo_replicas import run_replicas_demo
    from adapters.cli.local_pg import PostgresMissing

    try:
        ok = asyncio.run(run_replicas_demo(duration, log_level.value, replicas))
    except PostgresMissing as exc:
        print(f"demo --replicas {replicas}: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


app.command("trace", help=TRACE_HELP)(trace_command)
app.add_typer(simulate_app, name="simulate", help=SIMULATE_HELP)


def main() -> None:
    app()
