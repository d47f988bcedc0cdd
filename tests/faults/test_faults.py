"""Fault injection through the real bridge process: nothing lost, nothing duplicated (issue 5).

A short run in every test session; the long run (at least 1,000 randomized faults) with --run-slow.
The seed is printed and in every failure message; FAULT_SEED=<seed> replays the same plan;
FAULT_COUNT=<n> changes the long run's number of faults (1,000 by default).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.harness import FAULT_KINDS, run_faults, seed_from_env

COUNT_ENV = "FAULT_COUNT"


async def test_short_run_two_chargers_ten_transactions_each(tmp_path: Path) -> None:
    seed = seed_from_env()
    print(f"fault seed {seed}")
    run = await run_faults(tmp_path, seed=seed, chargers=2, transactions=10, faults=14)
    print(run.describe())
    assert run.problems == [], run.describe()
    assert set(run.faults.counts) == set(FAULT_KINDS), run.describe()
    assert run.stats["transactions"] == 20, run.describe()


@pytest.mark.slow
@pytest.mark.timeout(5400)
async def test_long_run_a_thousand_faults(tmp_path: Path) -> None:
    seed = seed_from_env()
    print(f"fault seed {seed}")

    def progress(step: int) -> None:
        if step % 100 == 0:
            print(f"  {step} faults", flush=True)

    count = int(os.environ.get(COUNT_ENV, "1000"))
    run = await run_faults(
        tmp_path, seed=seed, chargers=3, transactions=None, faults=count, progress=progress
    )
    print(run.describe())
    assert run.problems == [], run.describe()
    assert run.faults.total >= count, run.describe()
