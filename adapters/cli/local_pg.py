"""A throwaway local PostgreSQL server for `ocpp-bridge demo --replicas` and bench/replicas.py: the
installed server's own binaries (`initdb`, `postgres`), never an emulation; the tests' server too
(tests/pg.py).

Rules
- `server_bin()` finds `initdb` on PATH or the newest /usr/lib/postgresql/*/bin; none: `start()` raises
  PostgresMissing, whose message says what to install.
- `start()` runs `initdb` (trust authentication for the superuser `bridge`, UTF8) into a fresh
  temporary folder and `postgres` listening on 127.0.0.1 only, on a port found free there, with its
  Unix socket in that folder; it returns once the server accepts connections (bounded: 60 s). As root it
  runs both as the `postgres` user (the server refuses root); without that user, PostgresMissing.
  `durable=False` (the demo) runs it with fsync off; bench figures use `durable=True`.
- `restart()` stops it (fast shutdown) and starts it again on the same data folder and port.
- `stop()` ends the server (fast shutdown, SIGKILL after 30 s) and removes the folder. Every wait is
  bounded; the server's log is kept in the folder until then (`log_tail()` for an error message).
- Blocking (subprocess and psycopg): callers on an event loop run it in a thread.
"""

from __future__ import annotations

import contextlib
import glob
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

USER = "bridge"
UTF8 = ("-E", "UTF8")
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL"
    " (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server;"
    " macOS: brew install postgresql) or put its bin folder on PATH"
)


class PostgresMissing(Exception):
    """No PostgreSQL server to start here (the message says what to install)."""


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalPostgres:
    def __init__(self, max_connections: int = 100, *, durable: bool = False) -> None:
        self.max_connections = max_connections
        self.durable = durable  # fsync on (bench figures); off for the demo
        self.folder: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.user: str | None = None
        self._bin_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def log_tail(self) -> str:
        if self.folder is None:
            return ""
        log = self.folder / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def start(self) -> str:
        """Start the server; its URL. Raises PostgresMissing or RuntimeError."""
        bin_dir = server_bin()
        if bin_dir is None:
            raise PostgresMissing(INSTALL_HINT)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresMissing(
                    "running as root: PostgreSQL refuses root and there is no `postgres` user to run"
                    " it as (create one, e.g. by installing Debian's postgresql package, or run the"
                    " demo as another user)"
                ) from None
            self.user = "postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="ocpp-bridge-pg-"))
        if self.user is not None:
            shutil.chown(self.folder, self.user, self.user)
        data = self.folder / "data"
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                USER,
                "--no-sync",
                *UTF8,
            ],
            user=self.user,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
        self.port = free_port()
        self._bin_dir = bin_dir
        self._spawn()
        return self.url

    def restart(self) -> None:
        """Stop the server (fast shutdown) and start it again on the same data folder and port (the
        fault runs restart PostgreSQL under the bridges)."""
        self._stop_process()
        self._spawn()

    def _spawn(self) -> None:
        """Run postgres on the data folder and port; return once it accepts connections (60 s)."""
        assert self.folder is not None and self._bin_dir is not None
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(str(self._bin_dir / "postgres"), "-D", str(self.folder / "data")),
                    *("-k", str(self.folder), "-p", str(self.port), "-h", "127.0.0.1"),
                    *("-c", f"fsync={'on' if self.durable else 'off'}"),
                    *("-c", f"max_connections={self.max_connections}", "-c", "shared_buffers=32MB"),
                ],
                user=self.user,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo, not the server
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.process.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not accept connections within 60 s")
            time.sleep(0.1)

    def _stop_process(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: rolls back, checkpoints, exits
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)

    def stop(self) -> None:
        self._stop_process()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
