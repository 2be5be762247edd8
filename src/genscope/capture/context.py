"""Where in the pipeline we are: component, phase, step, and how many times a step repeats.

Generation loops are written once (see ``genscope.workloads``) against a :class:`Runner`. The
runner labels every op with its component/phase/step and decides whether identical steps are
executed N times (measured runs) or traced once with ``count = N`` (analytic runs). It collapses
only loops the workload declares identical — e.g. CFG denoise steps, whose ops and shapes do not
depend on the timestep — never KV-cache decode steps, whose shapes grow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
#: axis placeholder for bring-your-own models: inferred from the call's shapes at capture time
INFER = "infer"


@dataclass
class Where:
    component: str = ""
    phase: str = ""
    step: int | None = None
    count: int = 1


@dataclass
class AxisRules:
    """Attention axis per component: a default plus regexes on the module path, first match wins.

    An axis of :data:`INFER` asks the capture to infer it (:mod:`genscope.capture.labels`).
    """

    default: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[tuple[re.Pattern[str], str]]] = field(default_factory=dict)

    def add(self, component: str, default: str, rules: Iterable[tuple[str, str]] = ()) -> None:
        self.default[component] = default
        self.rules[component] = [(re.compile(p), axis) for p, axis in rules]

    def axis(self, component: str, module_path: str) -> str:
        for pattern, axis in self.rules.get(component, ()):
            if pattern.search(module_path):
                return axis
        return self.default.get(component, "text")


class Runner:
    """Labels ops with pipeline position; collapses identical steps when ``collapse`` is set."""

    def __init__(self, collapse_identical_steps: bool) -> None:
        self.collapse = collapse_identical_steps
        self.where = Where()
        self.collapsed: dict[str, int] = {}  # phase -> steps represented by one traced step
        self.step_seconds: list[tuple[str, str, int | None, float]] = []

    @contextmanager
    def phase(self, component: str, phase: str, step: int | None = None) -> Iterator[None]:
        saved = self.where
        self.where = Where(component, phase, step if step is not None else saved.step, saved.count)
        try:
            yield
        finally:
            self.where = saved

    def steps(self, phase: str, items: Iterable[T], *, identical: bool) -> Iterator[tuple[int, T]]:
        """Iterate a generation loop. If ``identical`` and collapsing, run step 0 with count=N."""
        items = list(items)
        if self.collapse and identical and items:
            saved = self.where
            self.where = Where(saved.component, phase, 0, saved.count * len(items))
            self.collapsed[phase] = len(items)
            try:
                yield 0, items[0]
            finally:
                self.where = saved
            return
        for i, item in enumerate(items):
            saved = self.where
            self.where = Where(saved.component, phase, i, saved.count)
            try:
                yield i, item
            finally:
                self.where = saved
