"""Smoke test of bench/replicas.py: its smallest preset runs end to end on a real PostgreSQL (the one the
bench starts itself, adapters/cli/local_pg.py) with real bridge processes, and its report holds what the
README says. Never a timing threshold: the figures are for `python -m bench.replicas`, not pass/fail;
what is asserted is what must hold at any speed (every pair answered and counted, every station of the
killed replica leased, re-interrogated and reconnected to the CSMS by the survivors)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench.replicas import run
from tests.pg import require_server_bin


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.timeout(240)
async def test_replicas_bench_smoke_runs_every_set_and_the_takeover(tmp_path: Path) -> None:
    require_server_bin()
    report = await run("smoke", tmp_path, lambda _: None)
    sets = [(value["backend"], value["replicas"]) for value in report["scale"]]
    assert sets == [("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3)]
    for value in report["scale"]:
        assert value["errors"] == {}, value
        assert value["messages"] > 0
        assert _positive(value["cpu_us_per_message"])
        per = value["per_replica"]
        assert len(per) == value["replicas"]
        assert sum(r["stations"] for r in per) == value["stations"]
        assert sum(r["messages"] for r in per) == value["messages"]
        if value["backend"] == "postgresql":
            # every station holds its lease where its charger is connected (1.6J and pass-through)
            assert sum(r["leases_held"] for r in per) == value["stations"]
        for key in ("p50", "p99"):
            assert math.isfinite(value["added_latency_ms"][key])
    takeover = report["takeover"]
    assert takeover["complete"] is True, takeover
    assert takeover["victim_stations"] == takeover["held_before"][0] > 0
    assert takeover["held_after"] == [takeover["stations"]]  # the survivor holds every station
    assert takeover["reinterrogated"] >= takeover["victim_stations"]
    assert takeover["csms_reconnected"] >= takeover["victim_stations"]
    assert _positive(takeover["takeover_s"])
    assert report["headline"]["replicas_takeover_s"] == takeover["takeover_s"]
