"""Shared test helpers (fixtures only: test modules do not import each other)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


def _field(stage: Any, name: str) -> Any:
    return stage[name] if isinstance(stage, dict) else getattr(stage, name)


def _levers_settled(stages: Iterable[Any]) -> None:
    """Every lever stage of a stack (``Stage`` objects or their dicts) ends ``measured`` (ok)
    or ``rejected`` with a reason when it applies, ``skipped`` with a reason when it does not,
    and never ``failed`` (a lever that raised: optimize/stack.py keeps going past it)."""
    stages = list(stages)
    assert stages and _field(stages[0], "status") == "baseline"
    for s in stages[1:]:
        lever, status, reason = (_field(s, k) for k in ("lever", "status", "reason"))
        assert status in ("measured", "rejected", "skipped"), (lever, status, reason)
        assert isinstance(reason, str) and reason.strip(), (lever, status)


@pytest.fixture
def levers_settled() -> Callable[[Iterable[Any]], None]:
    return _levers_settled
