"""The simulated IEC 104 charger of the tests: the one the demo ships (`adapters.cli.c104_outstation`).

Tests create it without `react`, so every point changes only when the test says so.
`idle_charger()` starts one laid out per the shipped default table (holstered, work status idle,
counter at `IDLE[ENERGY]`), and `station_entry()` is its `[[stations]]` entry for a bridge config.
"""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapters.cli.c104_outstation import HOST, Charger104, free_port
from adapters.mapping_files import compile_file

__all__ = ["HOST", "IDLE", "Charger104", "free_port", "idle_charger", "station_entry"]

DC_MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "gb-dc-charger.yaml"
IDLE: dict[int, Any] = {0x0022: True, 0x400F: 2.0, 0x0025: 1, 0x6401: 100_000}


@contextlib.asynccontextmanager
async def idle_charger(initial: dict[int, Any] | None = None) -> AsyncIterator[Charger104]:
    charger = Charger104(compile_file(DC_MAPPING, 1), {**IDLE, **(initial or {})})
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


def station_entry(station_id: str, port: int) -> dict[str, Any]:
    return {
        "id": station_id,
        "protocol": "iec104",
        "host": HOST,
        "port": port,
        "connectors": 1,
        "mapping": str(DC_MAPPING),
    }
