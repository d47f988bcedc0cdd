"""`adapters.ops.gc_policy`: long-lived objects leave the collector's generations; cyclic garbage among
them is still reclaimed by the periodic full collection."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from adapters.ops.gc_policy import THRESHOLDS, GcPolicy


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_frozen_cyclic_garbage_is_reclaimed_by_the_full_collection() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    policy = GcPolicy()
    policy.freeze_survivors()
    assert gc.get_freeze_count() > 0
    del a, b
    gc.collect()  # a frozen cycle is out of every collection's reach...
    assert gone() is not None
    policy.full_collection()  # ...until the full collection unfreezes it
    assert gone() is None
    assert gc.get_freeze_count() > 0  # and everything alive is frozen again
    assert (policy.freezes, policy.full_collections) == (1, 1)


async def test_run_sets_the_thresholds_freezes_and_collects_in_turn() -> None:
    policy = GcPolicy(freeze_interval=0.01, full_interval=0.05)
    task = asyncio.create_task(policy.run())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gc.get_threshold() == THRESHOLDS
    assert policy.freezes >= 3
    assert policy.full_collections >= 1
