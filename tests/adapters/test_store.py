"""The SQLite store: atomic, durable batches of Persist effects; per-station state survives reopening."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.store import Store, StoreError
from bridge.effects import Persist


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    store = Store(path)
    store.apply("CP1", [Persist("tx", "1", {"id": "a", "seq": 0}), Persist("meta", "next", 2)])
    store.apply("CP2", [Persist("tx", "1", {"id": "other"})])
    store.close()
    reopened = Store(path)
    assert reopened.load("CP1") == {"meta": {"next": 2}, "tx": {"1": {"id": "a", "seq": 0}}}
    assert reopened.load("CP2") == {"tx": {"1": {"id": "other"}}}
    assert reopened.load("CP3") == {}


def test_none_deletes_and_keys_come_back_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    store.apply("CP1", [Persist("outbox", f"{n:012d}", n) for n in (3, 1, 2)])
    store.apply("CP1", [Persist("outbox", f"{2:012d}", None)])
    assert list(store.load("CP1")["outbox"].values()) == [1, 3]


def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    store.apply("CP1", [Persist("t", "k", 1)])

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        store.apply("CP1", [Persist("t", "k", 2), Persist("t", "j", Unserializable())])  # type: ignore[arg-type]
    assert store.load("CP1") == {"t": {"k": 1}}
    store.apply("CP1", [Persist("t", "k", 3)])  # the store is still usable
    assert store.load("CP1") == {"t": {"k": 3}}


def test_a_committed_batch_survives_a_killed_process(tmp_path: Path) -> None:
    """Write from a child process that is killed right after apply() returns."""
    path = tmp_path / "b.db"
    script = (
        "import os, signal\n"
        "from adapters.store import Store\n"
        "from bridge.effects import Persist\n"
        f"store = Store({str(path)!r})\n"
        "store.apply('CP1', [Persist('tx', str(n), n) for n in range(100)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert completed.returncode == -9
    assert len(Store(path).load("CP1")["tx"]) == 100


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "missing-folder" / "b.db")
