"""Draw docs/images/dashboard.png: the panels of docs/grafana/ocpp-bridge.json over a demo run.

    .venv/bin/python docs/grafana/render_dashboard.py [--duration 40] [--out docs/images/dashboard.png]

No Grafana here (it is neither in Debian nor on PyPI), so the picture is made from the same pieces a
Grafana would use: `ocpp-bridge demo` runs (its status page's address serves /metrics), Debian's
`prometheus` server scrapes it every second into a temporary folder, every panel's own PromQL
(`$__rate_interval` = 5 s) is evaluated by that Prometheus over the run (`/api/v1/query_range`), and
matplotlib draws the results on the dashboard's grid. Needs `prometheus` on PATH and matplotlib
(the `bench` extra). Everything it starts is stopped; nothing but the picture is written.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "ocpp-bridge.json"
RATE_INTERVAL = "5s"
STEP = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": STEP})
    answer = get_json(f"{prometheus}/api/v1/query_range?{query}")
    if answer.get("status") != "success":
        raise RuntimeError(f"{expr}: {answer}")
    return list(answer["data"]["result"])


def legend(template: str | None, labels: dict[str, str]) -> str:
    if not template:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)


def run_demo_and_scrape(duration: float, prometheus_binary: str) -> tuple[Any, float, float]:
    """Run the demo under a scraping Prometheus; return (panel results, start, end)."""
    executable = str(Path(sys.executable).with_name("ocpp-bridge"))
    demo = subprocess.Popen(
        [executable, "demo", "--duration", str(duration)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()},
    )
    prometheus_process: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="render-dashboard-") as folder:
        try:
            assert demo.stdout is not None
            target = None
            for _ in range(20):
                found = re.match(
                    r"status +http://(127\.0\.0\.1:\d+)/status ", demo.stdout.readline()
                )
                if found:
                    target = found[1]
                    break
            if target is None:
                raise RuntimeError("the demo printed no status address")
            config = Path(folder) / "prometheus.yml"
            config.write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                f"  - job_name: ocpp-bridge\n    static_configs: [{{targets: ['{target}']}}]\n"
            )
            port = free_port()
            prometheus_process = subprocess.Popen(
                [
                    prometheus_binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            start = time.time()
            demo.communicate(timeout=duration + 120)
            end = time.time()
            time.sleep(2)  # the last scrapes
            url = f"http://127.0.0.1:{port}"
            panels = json.loads(DASHBOARD.read_text())["panels"]
            results = [
                (
                    panel,
                    [
                        (target, query_range(url, target["expr"], start, end))
                        for target in panel["targets"]
                    ],
                )
                for panel in panels
            ]
            return results, start, end
        finally:
            for process in (prometheus_process, demo):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)


def draw(results: Any, start: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _ in results) // 8
    figure = plt.figure(figsize=(16, 3.1 * rows))
    grid = figure.add_gridspec(rows, 2)
    for panel, targets in results:
        position = panel["gridPos"]
        axes = figure.add_subplot(grid[position["y"] // 8, position["x"] // 12])
        axes.set_title(panel["title"], fontsize=9, loc="left")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        scale, suffix = (1000.0, "ms") if unit == "s" else (1.0, "")
        if unit == "bytes":
            scale, suffix = 1 / 2**20, "MiB"
        drawn = 0
        for target, series_list in targets:
            for series in series_list:
                times = [float(t) - start for t, _ in series["values"]]
                values = [float(v) * scale for _, v in series["values"]]
                label = legend(target.get("legendFormat"), series["metric"])
                axes.plot(times, values, label=label[:40], linewidth=1.2)
                drawn += 1
        if drawn == 0:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        elif drawn <= 8:
            axes.legend(fontsize=7, loc="upper left")
        axes.tick_params(labelsize=7)
        axes.set_xlabel("seconds into the demo", fontsize=7)
        axes.set_ylabel(suffix, fontsize=7)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=72)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    arguments = parser.parse_args()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus is not installed (apt-get install prometheus)")
    results, start, _ = run_demo_and_scrape(arguments.duration, prometheus)
    draw(results, start, arguments.out)
    print(f"wrote {arguments.out}")  # noqa: T201


if __name__ == "__main__":
    main()
