"""Fixtures shared by the stats engine's tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.stats.examples import EXAMPLE


@pytest.fixture
def example() -> dict[str, Any]:
    """Returns a fresh copy of the request of docs/statistics.md (with the elided treatment arms filled in)."""
    return copy.deepcopy(EXAMPLE)
