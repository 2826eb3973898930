"""Test tiers (markers registered in pyproject.toml): a test without ``csim``, ``rtl``,
``slow`` or ``synth`` is a ``unit`` test, so ``pytest -m unit`` selects exactly the tests
that need nothing beyond the Python environment."""

from __future__ import annotations

import os

import pytest

# A build-folder lock (model.locks) held by this pytest process makes a child ``sqz`` that
# wants the same folder wait; five minutes, then a clear error, never a hung test run.
os.environ.setdefault("SQZ_LOCK_WAIT_S", "300")

TOOL_TIERS = ("csim", "rtl", "slow", "synth")


# tryfirst: the marker must be on the item before pytest's own hook deselects by ``-m``.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TOOL_TIERS):
            item.add_marker(pytest.mark.unit)
