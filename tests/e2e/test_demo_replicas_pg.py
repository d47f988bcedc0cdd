"""`ocpp-bridge demo --replicas 2` (issue 20 item 6): two bridge processes under leases on a local
PostgreSQL the demo starts itself (the real server, as tests/pg.py's), replica A killed mid-session;
the demo exits 0 only when B served A's stations and the CSMS got every transaction event once (copies
identical), every transaction under way at the kill ended with its id. This test checks what the demo
prints against that, that the killed replica is gone and no replica is left running, and that without
PostgreSQL binaries the demo says what to install and exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import local_pg
from adapters.cli.main import app
from tests.pg import require_server_bin

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by anyone) is dead too
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_e02_demo_with_two_replicas_kills_one_and_the_other_serves_its_stations(
    tmp_path: Path,
) -> None:
    require_server_bin()
    completed = subprocess.run(
        [EXECUTABLE, "demo", "--replicas", "2", "--duration", "24"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert output.rstrip().endswith("demo result: OK"), output
    pids = dict(re.findall(r"^replica ([AB]) ws://127\.0\.0\.1:\d+ \(pid (\d+);", output, re.M))
    assert set(pids) == {"A", "B"}, output
    killed = re.search(r"^killed replica A \(pid (\d+), SIGKILL\); it served (.*?);", output, re.M)
    assert killed is not None and killed[1] == pids["A"], output
    served_by_a = killed[2].split(", ")
    assert served_by_a and served_by_a != ["nothing"], output
    # every station A served was served by B afterwards, each reported once
    taken = re.findall(r"^(\S+) served by replica B [\d.]+ s after the kill$", output, re.M)
    assert sorted(taken) == sorted(served_by_a), output
    for station in ("DEMO-16", "DEMO-201", "DEMO-104", "DEMO-104B", "DEMO-CARD"):
        summary = re.search(
            rf"^summary {station} \(\S+\): booted=True transactions=(\d+) ended=(\d+) events=\d+"
            r" served by B at the end",
            output,
            re.M,
        )
        assert summary is not None, output
        assert int(summary[2]) >= 2, station  # one before the kill (at least), one after
    assert "problem:" not in output
    copies = re.search(r"identical copies \(at-least-once across the failover\): (\d+)", output)
    assert copies is not None, output
    for pid in pids.values():  # A killed, B stopped by the demo
        assert not _alive(int(pid)), pid


def test_demo_with_replicas_without_postgresql_says_what_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_pg, "server_bin", lambda: None)
    result = CliRunner().invoke(app, ["demo", "--replicas", "2", "--duration", "5"])
    assert result.exit_code == 2, result.output
    assert "apt-get install postgresql" in result.output
    assert "Traceback" not in result.output
