"""Issue 16 item 7: a station's RetryBackOff* values set by the CSMS apply to the next reconnection wait,
without a restart: NorthLink asks `policy_of` (the core's owned values) before every wait."""

from __future__ import annotations

import asyncio

from adapters.ocpp.north import NorthLink
from bridge.north.backoff import BackoffPolicy
from tests.adapters.test_north import EventLog, connector


async def test_b05_retry_back_off_changes_apply_to_the_next_wait() -> None:
    # Nothing listens on port 1: every attempt fails at once and the link waits.
    policy = [BackoffPolicy(wait_minimum=0.01, random_range=0.0, repeat_times=0)]
    log = EventLog()
    link = NorthLink(
        "CS1",
        connector("ws://127.0.0.1:1/ocpp"),
        BackoffPolicy(wait_minimum=60.0, random_range=0.0, repeat_times=0),  # the configuration's
        log,
        rand=lambda: 0.0,
        policy_of=lambda: policy[0],
    )

    async def session(connection: object) -> None:  # pragma: no cover - never connects
        raise AssertionError("connected to nothing")

    task = asyncio.create_task(link.run(session))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            while log.names().count("csms.reconnect_wait") < 2:
                await asyncio.sleep(0.005)
            policy[0] = BackoffPolicy(wait_minimum=0.03, random_range=0.0, repeat_times=0)
            while log.names().count("csms.reconnect_wait") < 5:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    waits = [fields["delay"] for event, fields in log.events if event == "csms.reconnect_wait"]
    assert waits[:2] == [0.01, 0.01]  # the owned value, not the configuration's 60 s
    assert waits[-1] == 0.03  # the changed one, from the next wait on
