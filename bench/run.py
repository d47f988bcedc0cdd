"""Run the load benchmark and write its report.

    python -m bench.run --preset quick     # `make bench-quick`: a few hundred stations, under 3 minutes
    python -m bench.run --preset full      # `make bench`: 1k/5k/10k stations, TLS, deflate, 10k storms

Writes `results.json`, `report.md` and the PNG plots into `--out` (default bench/results/<preset>/), the
child processes' logs into its `logs/` folder, and prints, as its last line, one JSON object with the
headline figures (`hop_ratio_v16`, `hop_ratio_v201`, `kib_per_station`, `points_per_s_104`, ...), null
where a figure could not be measured; with `--only`, the figures of those measurements alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import raise_nofile_limit
from bench.load import PRESETS, dump, headline_only, run_suite
from bench.report import markdown, plot

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--out", type=Path, help="report folder (default bench/results/<preset>)")
    parser.add_argument(
        "--asyncio-load",
        action="store_true",
        help="run the load generators on the standard loop (default: uvloop when installed)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile rounds")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["hop", "hop_ir", "memory", "scale", "storm", "storm_tls", "iec104", "replicas"],
        help="run only these measurements",
    )
    parser.add_argument(
        "--scale-sizes",
        nargs="+",
        type=int,
        metavar="N",
        help="station counts of the scale step (default: the preset's)",
    )
    parser.add_argument(
        "--iec104-links", type=int, metavar="N", help="104 links of the throughput step (quick 100)"
    )
    parser.add_argument(
        "--iec104-rates",
        nargs="*",
        type=float,
        metavar="R",
        help="offered points/s at 22 per ASDU (none: skip those steps)",
    )
    parser.add_argument(
        "--iec104-single-rates",
        nargs="*",
        type=float,
        metavar="R",
        help="offered points/s at 1 per ASDU (none: skip those steps)",
    )
    parser.add_argument(
        "--iec104-memory-links",
        type=int,
        metavar="N",
        help="links of the 104 memory step (0: skip it)",
    )
    parser.add_argument(
        "--bridge-flag",
        action="append",
        default=[],
        help="pass a flag to every bridge process, e.g. --bridge-flag=--gc-freeze",
    )
    args = parser.parse_args(argv)
    settings = PRESETS[args.preset]
    if args.asyncio_load:
        settings.uvloop = False
    settings.bridge_flags = tuple(args.bridge_flag)
    if args.only:
        settings.only = tuple(args.only)
    if args.scale_sizes:
        settings.scale_sizes = list(args.scale_sizes)
    if args.iec104_links is not None:
        settings.iec104_links = args.iec104_links
    if args.iec104_rates is not None:
        settings.iec104_rates = tuple(args.iec104_rates)
    if args.iec104_single_rates is not None:
        settings.iec104_single_rates = tuple(args.iec104_single_rates)
    if args.iec104_memory_links is not None:
        settings.iec104_memory_links = args.iec104_memory_links
    if args.no_profile:
        settings.profile = False
    out: Path = args.out or RESULTS / args.preset
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as folder:
        root = Path(folder)
        report = asyncio.run(run_suite(settings, root, log))
        logs = out / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(root / "logs", logs)
        for profile in root.glob("profile_*.pstats"):
            shutil.copy(profile, out / profile.name)
    for data in (report.get("hop") or {}).get("profiles", {}).values():
        data["pstats"] = str(out / Path(data["pstats"]).name)
    dump(report, out / "results.json")
    plots = plot(report, out)
    (out / "report.md").write_text(markdown(report, plots), encoding="utf-8")
    log(f"bench: report in {out / 'report.md'}")
    head = headline_only(report["headline"], settings.only)
    print(json.dumps(head, separators=(", ", ": ")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
