"""The bridge under test, as its own process: `adapters.runtime.Runtime` run the way `ocpp-bridge run` runs it.

Run as a child of the benchmark: `python -m bench.bridge_process --config FILE [--loop uvloop|asyncio]`.

Rules
- The configuration is loaded exactly as `ocpp-bridge run` loads it (`load_config` with the environment,
  `check_supported`, `configure_logging`); logs go to stderr (the benchmark's log file).
- A configuration the runtime refuses (a protocol it does not support yet) is reported on the control
  channel as `{"error": ..., "unsupported": true}` and the process exits 2: the benchmark reports that
  figure as null with the reason.
- Besides the runtime's own event-loop lag histogram (`/metrics`), the wrapper samples the loop's lag
  every 50 ms and keeps every sample, so percentiles are exact rather than bucket bounds.
- `profile_start` / `profile_stop` run cProfile over a window (the whole bridge runs on this one thread);
  `profile_stop` writes the pstats file and returns the top functions by own time.
- `stop` (or SIGTERM) shuts the runtime down gracefully, as `ocpp-bridge run` does on SIGTERM.
- The event loop, the garbage collection policy and the allocator's policy are those of `ocpp-bridge
  run` (`adapters.ops.event_loop`, the configuration's `[bridge] event_loop`; `adapters.ops.gc_policy`;
  `adapters.ops.malloc_policy`) unless `--loop` names one; `--uvloop` is `--loop uvloop`.
  `--no-gc-freeze`, `--no-mmap-threshold` and `--ssl-buffer-kib` are experiments: no `gc.freeze()` and
  no periodic freezing; glibc's dynamic mmap threshold; another TLS read buffer size on the standard
  loop than the runtime's 32 KiB (asyncio's own: 256 KiB).
- `gc_garbage` (experiment) unfreezes, runs a full collection and lists what it found by type, and
  what refers to objects of a type still alive.
- `--tracemalloc` traces Python allocations: `memory_mark`, then `memory_top` lists what grew since, by
  source line (C allocations, OpenSSL's among them, are not seen).
- `--stall-watch-ms MS` (experiment): a thread notes where the loop's thread was whenever the loop
  stood still for MS milliseconds, once per stall, and whether the process was on the CPU meanwhile;
  `stats` returns them as `stalls` (the scale step reports `bridge_stalls`).
- `--check-only` loads and checks the configuration, reports ready (or the refusal) and exits: how the
  benchmark learns which protocols the runtime accepts without starting one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import (
    Control,
    LagSampler,
    StallWatch,
    cpu_seconds,
    install_stop_signals,
    raise_nofile_limit,
    rss_bytes,
    self_rss_bytes,
)


class GcPauses:
    """How long the garbage collector's collections take, per generation, since the last `take()`."""

    def __init__(self) -> None:
        self._started = (0.0, 0.0)
        self._seen: dict[int, list[tuple[float, float]]] = {}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            wall = (time.perf_counter() - self._started[0]) * 1000
            cpu = (time.thread_time() - self._started[1]) * 1000
            self._seen.setdefault(int(info["generation"]), []).append((wall, cpu))

    def take(self) -> dict[str, Any]:
        """Per generation: collections, the longest (wall clock: a collection the scheduler
        interrupted counts its wait too) and the most CPU one took (this thread's CPU time)."""
        seen, self._seen = self._seen, {}
        return {
            str(generation): {
                "count": len(values),
                "max_ms": round(max(v[0] for v in values), 3),
                "max_cpu_ms": round(max(v[1] for v in values), 3),
                "total_ms": round(sum(v[0] for v in values), 3),
            }
            for generation, values in sorted(seen.items())
        }


async def main(args: argparse.Namespace, control: Control, config: Any, started: float) -> None:
    limit = raise_nofile_limit()
    from adapters.config import ConfigError
    from adapters.ops.event_loop import loop_name
    from adapters.ops.gc_policy import GcPolicy, freeze_startup_objects
    from adapters.ops.logs import configure_logging
    from adapters.ops.malloc_policy import fix_mmap_threshold
    from adapters.runtime import Runtime

    if args.check_only:
        control.send({"ready": True, "supported": True})
        return
    configure_logging(config.bridge.log_format, config.bridge.log_level)
    if not args.no_mmap_threshold:
        fix_mmap_threshold()
    runtime = Runtime(config)
    try:
        await runtime.start()
    except ConfigError as exc:
        control.send({"error": "; ".join(exc.problems)})
        raise SystemExit(2) from None
    startup = time.monotonic() - started
    collector: asyncio.Task[None] | None = None
    if not args.no_gc_freeze:
        freeze_startup_objects()
        collector = asyncio.create_task(GcPolicy().run())
    lag = LagSampler()
    lag.start()
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    stall_watch: StallWatch | None = None
    if args.stall_watch_ms:
        stall_watch = StallWatch(args.stall_watch_ms / 1e3)
        stall_watch.start()
    install_stop_signals(control.stop)
    profiler: cProfile.Profile | None = None

    def workers_cpu() -> float:
        total = 0.0
        for pid in getattr(runtime, "iec104_worker_pids", ()):
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        ended = os.times()
        return total + ended.children_user + ended.children_system

    async def cpu(_: dict[str, Any]) -> dict[str, Any]:
        # the bridge's own CPU and its IEC 104 link workers' (running or ended): what it costs
        return {"cpu": time.process_time() + workers_cpu()}

    async def stats(command: dict[str, Any]) -> dict[str, Any]:
        if command.get("gc"):
            gc.collect()
        worker_rss = 0
        for pid in getattr(runtime, "iec104_worker_pids", ()):
            with contextlib.suppress(OSError):
                worker_rss += rss_bytes(pid)
        return {
            "worker_rss": worker_rss,
            "workers": len(getattr(runtime, "iec104_worker_pids", ())),
            "rss": self_rss_bytes(),
            "lag": lag.take(),
            "connected": len(runtime.connected_stations),
            "gc_counts": gc.get_count(),
            "gc_pauses": pauses.take(),
            **({"stalls": stall_watch.take()} if stall_watch is not None else {}),
        }

    async def profile_start(_: dict[str, Any]) -> dict[str, Any]:
        nonlocal profiler
        profiler = cProfile.Profile()
        profiler.enable()
        return {"profiling": True}

    async def profile_stop(command: dict[str, Any]) -> dict[str, Any]:
        nonlocal profiler
        if profiler is None:
            return {"error": "not profiling"}
        profiler.disable()
        profiler.dump_stats(command["path"])
        text = io.StringIO()
        top = int(command.get("top", 25))
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        # cumulative time of the bridge's own functions: which step of a message costs what
        stats.sort_stats("cumulative").print_stats(r"/(adapters|bridge)/", top)
        profiler = None
        return {"top": text.getvalue()}

    async def stop(_: dict[str, Any]) -> dict[str, Any]:
        control.stop.set()
        return {"stopping": True}

    async def gc_garbage(command: dict[str, Any]) -> dict[str, Any]:
        """Experiment: what a full collection finds now (frozen objects included), by type, and
        what refers to the objects of the type named `referrers_of`."""
        gc.unfreeze()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            found = gc.collect()
            kinds: dict[str, int] = {}
            for item in gc.garbage:
                name = type(item).__qualname__
                kinds[name] = kinds.get(name, 0) + 1
            wanted = command.get("referrers_of")
            referrers: dict[str, int] = {}
            for item in gc.garbage:
                if type(item).__qualname__ != wanted:
                    continue
                for referrer in gc.get_referrers(item):
                    if referrer is gc.garbage:
                        continue
                    name = type(referrer).__qualname__
                    if name == "function":
                        name += ":" + referrer.__qualname__
                    elif name == "frame":
                        name += ":" + referrer.f_code.co_qualname
                    referrers[name] = referrers.get(name, 0) + 1
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.freeze()
        alive: dict[str, int] = {}
        for item in gc.get_objects():
            if type(item).__qualname__ != wanted:
                continue
            for referrer in gc.get_referrers(item):
                name = type(referrer).__qualname__
                if isinstance(referrer, dict):
                    owners = [type(o).__qualname__ for o in gc.get_referrers(referrer)][:3]
                    name += f"<-{owners}"
                elif name == "frame":
                    name += ":" + referrer.f_code.co_qualname
                alive[name] = alive.get(name, 0) + 1
        top = sorted(kinds.items(), key=lambda kv: -kv[1])[: int(command.get("top", 30))]
        return {"collected": found, "kinds": top, "referrers": referrers, "alive_referrers": alive}

    marked: list[Any] = []

    async def memory_mark(_: dict[str, Any]) -> dict[str, Any]:
        if not tracemalloc.is_tracing():
            return {"error": "start the bridge process with --tracemalloc"}
        gc.collect()
        marked[:] = [tracemalloc.take_snapshot()]
        return {"marked": True}

    async def memory_top(command: dict[str, Any]) -> dict[str, Any]:
        """Python allocations grown since `memory_mark`, by source line (divide by `per`)."""
        if not marked:
            return {"error": "no memory_mark"}
        gc.collect()
        per = max(1, int(command.get("per", 1)))
        diff = tracemalloc.take_snapshot().compare_to(marked[0], "lineno")
        return {
            "total_bytes_per": sum(d.size_diff for d in diff) / per,
            "top": [
                [str(d.traceback[0]), round(d.size_diff / per, 1), round(d.count_diff / per, 2)]
                for d in diff[: int(command.get("top", 40))]
            ],
        }

    control.send(
        {
            "ready": True,
            "south_port": runtime.south_address[1] if runtime.south_address else None,
            "health_port": runtime.health_address[1] if runtime.health_address else None,
            "startup_s": round(startup, 3),
            "event_loop": loop_name(),
            "nofile": limit,
        }
    )
    try:
        await control.serve(
            {
                "cpu": cpu,
                "stats": stats,
                "profile_start": profile_start,
                "profile_stop": profile_stop,
                "stop": stop,
                "memory_mark": memory_mark,
                "memory_top": memory_top,
                "gc_garbage": gc_garbage,
            }
        )
    finally:
        if collector is not None:
            collector.cancel()
        await lag.close()
        await runtime.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], help="default: the configuration's"
    )
    parser.add_argument("--uvloop", action="store_true", help="the same as --loop uvloop")
    parser.add_argument("--no-gc-freeze", action="store_true")
    parser.add_argument(
        "--no-mmap-threshold",
        action="store_true",
        help="experiment: leave glibc's dynamic mmap threshold (adapters.ops.malloc_policy)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="experiment: trace Python allocations (memory_mark / memory_top commands)",
    )
    parser.add_argument(
        "--ssl-buffer-kib",
        type=int,
        help="experiment: the standard loop's per-connection TLS read buffer (runtime: 32 KiB)",
    )
    parser.add_argument(
        "--stall-watch-ms",
        type=float,
        help="experiment: note where the loop was whenever it stood still this long (`stats`: stalls)",
    )
    parser.add_argument(
        "--check-only", action="store_true", help="load and check the configuration, then exit"
    )
    args = parser.parse_args()
    control = Control()  # first: it moves stdout aside for the control channel
    from adapters.config import ConfigError, load_config
    from adapters.ops import event_loop
    from adapters.runtime import check_supported

    if args.tracemalloc:
        tracemalloc.start()
    started = time.monotonic()
    try:
        config = load_config(Path(args.config), os.environ)
        check_supported(config)
    except ConfigError as exc:
        control.send({"error": "; ".join(exc.problems), "unsupported": True})
        raise SystemExit(2) from None
    choice = "uvloop" if args.uvloop else (args.loop or config.bridge.event_loop)
    factory = event_loop.loop_factory(choice)
    if args.ssl_buffer_kib:
        from asyncio import sslproto

        sslproto.SSLProtocol.max_size = args.ssl_buffer_kib * 1024  # type: ignore[attr-defined]
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(args, control, config, started))


if __name__ == "__main__":
    cli()
