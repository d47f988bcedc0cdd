"""The store back ends side by side: SQLite (a file on this disk) and PostgreSQL (a local server), same run.

Run: `.venv/bin/python -m bench.store [--batches 2000] [--stations 1000] [--seconds 10] [--url URL]`
(prints one line per figure and, last, one JSON line with all of them). Without `--url` a throwaway
PostgreSQL server is started for the run (tests/pg.py: initdb + postgres on 127.0.0.1, Debian's
postgresql package; fsync and synchronous_commit on, its defaults) and stopped at the end.

Figures, for each back end
1. `commit`: `apply` of one batch at a time, the shape the 1.6 core commits for a MeterValues (its
   transaction row + one outbox entry): the latency of one durable commit with nobody else writing
   (SQLite: WAL + fsync; PostgreSQL: a round trip on loopback + the server's WAL flush).
2. `throughput`: `--stations` stations on one event loop, each submitting its next batch as soon as
   the previous one is answered (as the drivers do), for `--seconds`: batches made durable per second,
   the submit → answer latency (what a charger's acknowledgement waits for), and batches per commit
   (the group commit's grouping).
3. `postgresql_leases`: PostgreSQL again, every station's lease taken first and writes fenced
   (`require_leases`: each transaction reads its stations' lease rows FOR SHARE): the cost of fencing.
`ratio`: PostgreSQL / SQLite for each figure. Each PostgreSQL run starts after a CHECKPOINT (when the
user may make one), so both pay the same full-page writes. Both back ends run on the same 2-core machine, so the
PostgreSQL server's CPU competes with the bridge's here; on a separate database host the round trip
grows and the CPU competition goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from adapters.store_api import StateStore, StoreError
from adapters.store_open import open_store
from adapters.store_pg import PgStore
from bench.reliability import summary
from bridge.effects import Persist

ROW = {
    "transaction_id": "b7f3c2a1-0000-4000-8000-000000000001",
    "evse_id": 1,
    "next_seq_no": 0,
    "start_key": "1|TAG|2026-01-01T00:00:00Z|1000",
}
EVENT = {
    "action": "TransactionEvent",
    "payload": {
        "eventType": "Updated",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": ROW["transaction_id"]},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": "2026-11-22T10:00:00.000Z",
                "sampledValue": [{"value": 12345.6, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    },
}


def batch(n: int) -> list[Persist]:
    """A MeterValues' commit: the transaction row and one outbox entry."""
    return [Persist("tx", "t", {**ROW, "next_seq_no": n}), Persist("outbox", f"{n:016d}", EVENT)]


def bench_commit(store: StateStore, batches: int, prefix: str) -> dict[str, Any]:
    samples = []
    for n in range(batches):
        started = time.perf_counter()
        store.apply(f"{prefix}COMMIT-1", batch(n))
        samples.append(time.perf_counter() - started)
    return summary(samples)


async def bench_throughput(
    store: StateStore, stations: int, seconds: float, prefix: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    waits: list[float] = []
    errors: list[StoreError] = []
    deadline = loop.time() + seconds
    commits_before = store.commits

    async def station(index: int) -> int:
        name = f"{prefix}TP-{index}"
        n = 0
        while loop.time() < deadline:
            answered: asyncio.Future[StoreError | None] = loop.create_future()
            started = time.perf_counter()
            store.submit(name, batch(n), answered.set_result)
            error = await answered
            waits.append(time.perf_counter() - started)
            if error is not None:
                errors.append(error)
            n += 1
        return n

    started = time.perf_counter()
    done = await asyncio.gather(*(station(i) for i in range(stations)))
    elapsed = time.perf_counter() - started
    total = sum(done)
    commits = store.commits - commits_before
    if errors:
        raise errors[0]
    return {
        "batches": total,
        "batches_per_s": round(total / elapsed),
        "latency": summary(waits),
        "batches_per_commit": round(total / max(1, commits), 1),
    }


@contextlib.contextmanager
def postgresql(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.pg import PgServer, server_bin

    folder = server_bin()
    if folder is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or give --url")
    server = PgServer(folder)
    try:
        server.start()
        yield server.database()
    finally:
        server.stop()


def run_one(where: str, args: argparse.Namespace, leases: bool = False) -> dict[str, Any]:
    """Each run writes stations of its own (a prefix), so every run inserts rows as the first did."""
    prefix = "L-" if leases else ""
    store = open_store(where, require_leases=True) if leases else open_store(where)
    if isinstance(store, PgStore):
        # each PostgreSQL run starts right after a checkpoint, so each pays the same full-page
        # writes (the first change of every page after a checkpoint logs the whole page)
        with contextlib.suppress(Exception), psycopg.connect(where, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    try:
        if leases:
            assert isinstance(store, PgStore)
            for n in range(args.stations):
                store.take_lease(f"{prefix}TP-{n}")
            store.take_lease(f"{prefix}COMMIT-1")
        commit = bench_commit(store, args.batches, prefix)
        throughput = asyncio.run(bench_throughput(store, args.stations, args.seconds, prefix))
    finally:
        store.close()
    return {"commit": commit, "throughput": throughput}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=2000, help="apply() batches, one at a time")
    parser.add_argument("--stations", type=int, default=1000, help="stations submitting at once")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the throughput run")
    parser.add_argument("--url", help="an existing PostgreSQL database (else a throwaway server)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        results["sqlite"] = run_one(str(Path(folder) / "bench.db"), args)
    with postgresql(args.url) as url:
        results["postgresql"] = run_one(url, args)
        results["postgresql_leases"] = run_one(url, args, leases=True)
    sqlite, pg = results["sqlite"], results["postgresql"]
    results["ratio"] = {
        "commit_p50": round(pg["commit"]["p50_ms"] / sqlite["commit"]["p50_ms"], 2),
        "commit_p99": round(pg["commit"]["p99_ms"] / sqlite["commit"]["p99_ms"], 2),
        "throughput": round(
            pg["throughput"]["batches_per_s"] / sqlite["throughput"]["batches_per_s"], 2
        ),
        "latency_p99": round(
            pg["throughput"]["latency"]["p99_ms"] / sqlite["throughput"]["latency"]["p99_ms"], 2
        ),
    }
    results["ratio"]["fenced_throughput"] = round(
        results["postgresql_leases"]["throughput"]["batches_per_s"]
        / pg["throughput"]["batches_per_s"],
        2,
    )
    for name in ("sqlite", "postgresql", "postgresql_leases"):
        figures = results[name]
        print(
            f"{name:17} commit p50 {figures['commit']['p50_ms']} ms p99 {figures['commit']['p99_ms']}"
            f" ms | {args.stations} stations: {figures['throughput']['batches_per_s']} batches/s,"
            f" submit→durable p50 {figures['throughput']['latency']['p50_ms']} ms"
            f" p99 {figures['throughput']['latency']['p99_ms']} ms,"
            f" {figures['throughput']['batches_per_commit']} batches/commit"
        )
    print(f"ratio (PostgreSQL / SQLite): {results['ratio']}")
    print(json.dumps({"store": results, "args": vars(args)}))


if __name__ == "__main__":
    main()
