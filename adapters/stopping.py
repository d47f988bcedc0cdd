"""Waits that end when the bridge stops: a reconnection's back-off wait or attempt (CSMS and 104 links).

Rules
- `unless_stopped(event, awaitable)` runs `awaitable` as a task and returns its result, unless `event`
  is set first: then the task is cancelled and `Stopped` is raised, so a link that is told to stop
  reconnecting (`bridge.stopping`) neither waits out its back-off nor logs another attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


class Stopped(Exception):
    """`unless_stopped` gave up waiting: no more attempts are wanted."""


async def unless_stopped(stopped: asyncio.Event, awaitable: Awaitable[Any]) -> Any:
    """`awaitable`'s result, unless `stopped` is set first (then it is cancelled and `Stopped` is
    raised): a back-off wait or a connection attempt ends at once when the bridge stops."""
    if stopped.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise Stopped
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise Stopped
    return task.result()
