"""Fixtures shared by every test folder."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from adapters.schemas import OfficialSchemas


@pytest.fixture(scope="session")
def schemas() -> OfficialSchemas:
    """The official OCPP schemas, compiled once per test session."""
    return OfficialSchemas()


@pytest.fixture
def ids() -> Callable[[], str]:
    """A deterministic message-id source: b1, b2, ..."""
    counter = itertools.count(1)
    return lambda: f"b{next(counter)}"
