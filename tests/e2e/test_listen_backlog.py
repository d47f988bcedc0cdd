"""The charger listener's backlog: a burst of connections (a reconnect storm) that arrives while the
event loop is busy is queued by the kernel, not dropped (a dropped connection attempt is retried by
the charger's TCP only after 1, 3, 7, 15 s...). `[south] listen_backlog`, 4096 by default."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import bridge_config, running_bridge

BURST = 200


def _completed_while_nobody_accepts(port: int) -> int:
    """Open BURST connections without letting the event loop run (nothing accepts them): how many
    the kernel completes within half a second."""
    sockets = []
    try:
        poller = select.poll()
        for _ in range(BURST):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
            poller.register(sock, select.POLLOUT)
        completed: set[int] = set()
        deadline = time.monotonic() + 0.5
        while len(completed) < BURST and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                completed.add(fd)
        return sum(
            1
            for sock in sockets
            if sock.fileno() in completed
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        )
    finally:
        for sock in sockets:
            sock.close()


def _somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 4096  # not Linux: no such cap known


@pytest.mark.parametrize(("backlog", "queued"), [(None, BURST), (2, None)])
async def test_a_burst_of_chargers_is_queued_while_the_loop_is_busy(
    backlog: int | None, queued: int | None
) -> None:
    if backlog is None and _somaxconn() < BURST:
        pytest.skip(
            f"net.core.somaxconn is {_somaxconn()}: the kernel caps the backlog below {BURST}"
        )
    south = {} if backlog is None else {"listen_backlog": backlog}
    config = bridge_config(
        "ws://127.0.0.1:9/ocpp", [{"id": "CS-1", "protocol": "ocpp2.0.1"}], south=south
    )
    async with running_bridge(config) as runtime:
        assert runtime.south_address is not None
        completed = _completed_while_nobody_accepts(runtime.south_address[1])
        await asyncio.sleep(1.0)  # the bridge accepts what was queued and sees it closed
    if queued is not None:
        assert completed == queued  # the default queues the whole burst
    else:
        assert completed < BURST // 4  # a short queue drops most of it
