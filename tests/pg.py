"""A throwaway PostgreSQL server for tests: the real server (Debian's `postgresql` package, installed by
.ci/run), never a mock.

`PgServer.start()` runs `initdb` into a fresh folder and `postgres` on 127.0.0.1 with a free port and its
socket in that folder, as the `postgres` user when the tests run as root (the server refuses root), waits
until it accepts connections (bounded), and `stop()` ends it (fast shutdown, then SIGKILL) and removes the
folder. `database()` creates a fresh database and returns its URL, so each test starts empty.
Without the server binaries the fixtures skip on a developer's machine and fail in CI (`CI=true`).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

USER = "bridge"  # the server's superuser in tests (trust authentication, loopback only)


def server_bin() -> Path | None:
    """The folder of initdb and postgres (the newest installed version), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def require_server_bin() -> Path:
    folder = server_bin()
    if folder is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="ocpp-bridge-pg-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        # postgres refuses to run as root: run it as the `postgres` user, owner of the folder
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root needs a `postgres` user to run the test server")
            self.user = "postgres"
            shutil.chown(self.folder, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.folder / "data"
        initdb = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                USER,
                "--no-sync",
                "-E",
                "UTF8",
            ],
            user=self.user,
            capture_output=True,
            timeout=120,
        )
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
        self.port = _free_port()
        self._spawn()

    def _spawn(self) -> None:
        """Run postgres on the data folder and port; return once it accepts connections."""
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.folder / "data"),
                    "-k",
                    str(self.folder),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-c",
                    "max_connections=100",
                    "-c",
                    "shared_buffers=16MB",
                ],
                user=self.user,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                log_text = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"postgres exited with {self.process.returncode}: {log_text}")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("postgres did not accept connections within 60 s")
            time.sleep(0.1)

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        """Stop the server (fast shutdown) and start it again on the same port and data."""
        self._stop_process()
        self._spawn()

    def _stop_process(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # fast shutdown: rolls back, checkpoints, exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self._stop_process()
        shutil.rmtree(self.folder, ignore_errors=True)
