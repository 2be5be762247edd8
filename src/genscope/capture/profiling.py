"""Measured-mode plumbing: cheap markers during a profiled run, and attribution afterwards.

During the one profiled pass of a measured run nothing runs per aten op except the op
recorder itself: on CPU genscope's op observer (:mod:`genscope.capture.observer`, a minimal
``RecordFunction`` callback that records dispatch-level ops only, ~0.1–0.3 µs per op), else
``torch.profiler``. genscope adds two kinds of *markers* (with the observer: Python spans timed
with ``time.monotonic_ns``, the observer's clock, ~0.3 µs each; with ``torch.profiler``:
``record_function`` ranges, the C++ ``_RecordFunctionFast``, about a microsecond each):

* ``gs/where …`` — one range per :meth:`Runner.phase` block and per generation step, carrying
  component / phase / step (the labels the analytic capture takes from the same runner);
* ``gs/mod …`` — one range per call of each ``nn.Module`` that runs ops of its own (its
  instance ``forward`` is wrapped for the pass), carrying the module path, its class and its
  component.

After the pass, :func:`attribute` rebuilds the call tree of the profiler's CPU events by time
containment (per thread: a range that starts inside another and ends inside it is its child) and
finds, for every profiled op, the innermost module marker and the innermost where-marker around
it. Markers are named ``gs/...`` so they also show up, readable, in the exported Chrome trace.

*Which* profiled ops count as ops: the profiler records every dispatcher call, nested ones
included (``aten::linear`` → ``aten::t`` → ``aten::transpose`` → ``aten::as_strided``, …), while
the analytic ``TorchDispatchMode`` sees the ops left after CompositeImplicitAutograd
decomposition and none of their internals. :func:`attribute` applies the same rule: a profiled
op is a *dispatch-level op* when it is not a CompositeImplicitAutograd op and none of its op
ancestors is one either (implicit ops are transparent: their children are looked at instead).
``aten::scaled_dot_product_attention`` is one op as a whole, named after the backend kernel it
ran (as in the analytic capture, which records SDPA as one fused call). A dispatch-level op's
host time is its inclusive duration; on CUDA its device time is the summed duration of every
kernel (and memcpy/memset) its subtree launched, joined through the profiler's correlation ids.

Idle and overhead (:func:`busy_and_gaps`): on CUDA, device idle = wall − union of device-busy
intervals, and the *host-bound* part of each gap is the time the GPU waited for the next launch
to be issued (``min(next kernel start, its launch time) − previous busy end``), as in Lee et
al. (wall minus the union of kernel intervals). On CPU the "device" is the CPU itself: the
overhead is the share of wall time not inside dispatch-level ops (Python, module plumbing,
framework glue).
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import nn
from torch._C._profiler import _RecordFunctionFast

from genscope.capture import observer
from genscope.capture.context import Runner, T
from genscope.capture.observer import Observer, Recorded
from genscope.costmodel.taxonomy import SDPA_NAMES, categorize

MOD_PREFIX = "gs/mod "
WHERE_PREFIX = "gs/where "
RUN_MARKER = "gs/run"

#: Runtime API calls that launch device work (the launch time of a kernel, for host-bound idle).
_LAUNCH_NAMES = re.compile(
    r"(cuda|hip|cu)(LaunchKernel|LaunchCooperativeKernel|MemcpyAsync|"
    r"MemsetAsync|GraphLaunch|LaunchKernelExC)",
    re.I,
)


# -- markers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleLabel:
    component: str
    path: str
    type_name: str


@dataclass(frozen=True)
class WhereLabel:
    component: str
    phase: str
    step: int | None
    count: int = 1


class Markers:
    """Module and where-markers for one profiled pass, and the tables to decode them.

    Module markers wrap the *instance* ``forward`` of each marked module (restored on exit)
    rather than using global forward hooks: a global hook sends every module call down
    ``nn.Module``'s slow path (about 7 µs per call under the profiler, against about 3 µs for
    the wrapper). Which modules get one is the caller's choice (``only``); measured mode marks
    the modules that run ops of their own, less the leaves inside another such module
    (:func:`genscope.measure.run.marked_modules`), so containers and op-less modules
    (``Dropout`` in eval, ``ModuleList`` blocks) are left alone.
    """

    def __init__(self, python_spans: bool = False) -> None:
        self.modules: dict[str, ModuleLabel] = {}
        self.wheres: dict[str, WhereLabel] = {}
        self._roots: list[tuple[str, nn.Module]] = []
        self._patched: list[tuple[nn.Module, Any]] = []
        #: record markers as Python spans (for the op observer) instead of profiler ranges
        self.python_spans = python_spans
        self.spans: list[tuple[str, int, int, int]] = []  # (name, start ns, end ns, thread)

    def range(self, name: str) -> Any:
        """A context manager marking ``name`` (profiler range or Python span)."""
        return _Span(name, self.spans) if self.python_spans else _RecordFunctionFast(name)

    def name_modules(self, root: nn.Module, component: str) -> None:
        self._roots.append((component, root))

    def _module_marker(self, component: str, path: str, type_name: str) -> str:
        name = f"{MOD_PREFIX}{component}{':' + path if path else ''} ({type_name})"
        self.modules.setdefault(name, ModuleLabel(component, path, type_name))
        return name

    def where_marker(self, label: WhereLabel) -> str:
        step = "" if label.step is None else f" step={label.step}"
        name = f"{WHERE_PREFIX}{label.component or '-'}/{label.phase or '-'}{step}"
        self.wheres.setdefault(name, label)
        return name

    def _wrap(self, module: nn.Module, name: str) -> None:
        had = "forward" in module.__dict__
        previous = module.__dict__.get("forward")
        forward = module.forward

        if self.python_spans:
            spans, now, ident = self.spans, time.monotonic_ns, threading.get_ident

            @functools.wraps(forward)
            def marked_forward(*args: Any, **kwargs: Any) -> Any:
                t0 = now()
                try:
                    return forward(*args, **kwargs)
                finally:
                    spans.append((name, t0, now(), ident()))

        else:

            @functools.wraps(forward)
            def marked_forward(*args: Any, **kwargs: Any) -> Any:
                rf = _RecordFunctionFast(name)
                rf.__enter__()
                try:
                    return forward(*args, **kwargs)
                finally:
                    rf.__exit__(None, None, None)

        module.forward = marked_forward  # type: ignore[method-assign]
        self._patched.append((module, previous if had else _UNSET))

    def _restore(self) -> None:
        for module, previous in reversed(self._patched):
            if previous is _UNSET:
                module.__dict__.pop("forward", None)
            else:
                module.forward = previous  # type: ignore[method-assign]
        self._patched.clear()

    @contextmanager
    def active(self, only: set[tuple[str, str, str]] | None = None) -> Iterator[Markers]:
        """Mark module calls (all, or the ``(component, module path, class name)`` triples in
        ``only``) and the whole run."""
        seen: set[int] = set()
        try:
            for component, root in self._roots:
                for path, mod in root.named_modules():
                    key = (component, path, type(mod).__name__)
                    if id(mod) in seen or (only is not None and key not in only):
                        continue
                    seen.add(id(mod))
                    self._wrap(mod, self._module_marker(component, path, type(mod).__name__))
            with self.range(RUN_MARKER):
                yield self
        finally:
            self._restore()


_UNSET = object()


class _Span:
    """A marker recorded in Python: appends ``(name, start, end, thread)`` on exit."""

    __slots__ = ("name", "sink", "t0")

    def __init__(self, name: str, sink: list[tuple[str, int, int, int]]) -> None:
        self.name, self.sink, self.t0 = name, sink, 0

    def __enter__(self) -> None:
        self.t0 = time.monotonic_ns()

    def __exit__(self, *exc: Any) -> None:
        self.sink.append((self.name, self.t0, time.monotonic_ns(), threading.get_ident()))


class MarkedRunner(Runner):
    """A :class:`Runner` (never collapsing) that opens a where-marker per phase block and step."""

    def __init__(self, markers: Markers) -> None:
        super().__init__(collapse_identical_steps=False)
        self.markers = markers

    def _range(self) -> Any:
        w = self.where
        return self.markers.range(
            self.markers.where_marker(WhereLabel(w.component, w.phase, w.step, w.count))
        )

    @contextmanager
    def phase(self, component: str, phase: str, step: int | None = None) -> Iterator[None]:
        with super().phase(component, phase, step), self._range():
            yield

    def steps(self, phase: str, items: Iterable[T], *, identical: bool) -> Iterator[tuple[int, T]]:
        for i, item in super().steps(phase, items, identical=identical):
            with self._range():
                yield i, item


# -- which profiled events are ops ------------------------------------------------------------


def _overload_names(namespace: str, name: str) -> list[str]:
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return []
    return [o for o in packet.overloads() if "out" not in o.split("_")]


def _schema_name(qualname: str, overload: str) -> str:
    return f"{qualname}.{overload}" if overload and overload != "default" else qualname


def _has_kernel(qualname: str, overload: str, key: str) -> bool | None:
    """Whether the overload has a kernel for dispatch key ``key``; None if not registered
    (TorchScript-only overloads such as ``aten::add.t``)."""
    try:
        return bool(
            torch._C._dispatch_has_kernel_for_dispatch_key(_schema_name(qualname, overload), key)
        )
    except RuntimeError:
        return None


@cache
def op_kind(qualname: str, overload: str | None = None, device_key: str = "CPU") -> str:
    """How the analytic ``TorchDispatchMode`` sees a profiled op.

    ``implicit``: a CompositeImplicitAutograd op without a kernel of its own for the device,
    which decomposes above the Python dispatch key, so the mode sees its children instead;
    ``kernel``: the mode sees this op (and none of its internals); ``unknown``: not a registered
    operator. With the overload known (the profiler records it with
    ``capture_overload_names``) the answer is exact; without it, from all overloads of the
    packet (``mixed`` when they disagree).
    """
    if overload is not None:
        implicit = _has_kernel(qualname, overload or "default", "CompositeImplicitAutograd")
        if implicit is None:
            return "unknown"
        own = _has_kernel(qualname, overload or "default", device_key)
        return "implicit" if implicit and not own else "kernel"
    namespace, _, name = qualname.partition("::")
    kinds = {
        op_kind(qualname, o, device_key)
        for o in _overload_names(namespace, name)
        if _has_kernel(qualname, o, "CompositeImplicitAutograd") is not None
    }
    if not kinds:
        return "unknown"
    if kinds == {"implicit"}:
        return "implicit"
    return "kernel" if kinds == {"kernel"} else "mixed"


@cache
def op_overload(qualname: str, overload: str | None = None) -> Any:
    """The OpOverload of a profiled op (``aten::add`` + ``Tensor`` → ``aten.add.Tensor``).

    Without an overload name, a representative overload of the packet: the taxonomy reads the
    packet name, view-ness and pointwise tags, which its overloads share (preferring a tagged
    one: ``rsub.Scalar`` is pointwise-tagged, ``rsub.Tensor`` is not).
    """
    namespace, _, name = qualname.partition("::")
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return None
    if overload is not None:
        try:
            return getattr(packet, overload or "default")
        except (AttributeError, RuntimeError):
            pass
    names = [
        o
        for o in _overload_names(namespace, name)
        if _has_kernel(qualname, o, "CompositeImplicitAutograd") is not None
    ]
    if not names:
        return None
    order = ("Tensor", "default", "self", "Tensor_Scalar", "int", "Scalar")
    names.sort(key=lambda o: order.index(o) if o in order else len(order))
    funcs = [getattr(packet, o) for o in names]
    tagged = [f for f in funcs if torch.Tag.pointwise in f.tags or torch.Tag.reduction in f.tags]
    return (tagged or funcs)[0]


#: Profiler names that the analytic capture sees under another name: with a Python dispatch
#: mode active, ``reshape`` decomposes to ``view`` instead of ``_reshape_alias`` (same op).
_ALIASES = {("aten::_reshape_alias", ""): ("aten::view", "")}


def op_string(qualname: str, overload: str | None) -> str:
    """``aten::add`` + ``Tensor`` → ``aten.add.Tensor`` (the analytic capture's spelling)."""
    func = op_overload(qualname, overload)
    if func is not None and overload is not None:
        return str(func)
    return qualname.replace("::", ".")


def category_of(qualname: str, module_type: str, overload: str | None = None) -> str:
    func = op_overload(qualname, overload)
    if func is None:
        return "other"
    return categorize(func, module_type)


def packet_of(op: str) -> str:
    """``aten.add.Tensor`` / ``aten::add`` → ``aten.add``: the key op names are compared on.

    In-place and out-of-place forms compare equal (``add_`` ≡ ``add``): some composite ops
    decompose to the out-of-place form when a Python dispatch mode is active (``linear`` on
    3-d input adds its bias with ``add`` there and with ``add_`` otherwise).
    """
    if "::" in op:
        op = op.replace("::", ".")
    parts = op.split(".")
    name = (
        parts[1].rstrip("_")
        if len(parts) > 1 and not parts[1].startswith("_")
        else (parts[1] if len(parts) > 1 else op)
    )
    return f"{parts[0]}.{name}"


# -- events and attribution -------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One profiler event, reduced to what attribution needs (times in ns)."""

    name: str
    start: int
    end: int
    thread: int = 0
    device: str = "cpu"  # cpu | cuda (device-side: kernel, memcpy, memset)
    correlation: int = 0  # this event's correlation id
    linked: int = 0  # correlation id of the CPU op a device/runtime event belongs to
    overload: str | None = None  # ATen overload ("" = default); None when not recorded


def profiler_config() -> Any:
    """Kineto options for measured mode: record ATen overload names (negligible cost)."""
    from torch._C._profiler import _ExperimentalConfig

    return _ExperimentalConfig(capture_overload_names=True)


class ObservedPass:
    """A pass recorded by the op observer (dispatch-level ops) plus its Python marker spans;
    stands in for a finished ``torch.profiler.profile`` (:func:`events_from_profiler`,
    ``export_chrome_trace``)."""

    def __init__(self, recorded: Recorded, spans: list[tuple[str, int, int, int]]) -> None:
        self.recorded = recorded
        self.spans = list(spans)

    def events(self) -> list[Event]:
        r = self.recorded
        out = [
            Event(name, int(s), int(e), int(t), "cpu", 0, 0, overload)
            for name, overload, s, e, t in zip(
                r.names, r.overloads, r.starts, r.ends, r.threads, strict=True
            )
            if e >= s  # an op that never ended (interrupted pass) is dropped
        ]
        out.extend(Event(name, s, e, t, "cpu", 0, 0, None) for name, s, e, t in self.spans)
        return out

    def export_chrome_trace(self, path: str) -> None:
        """Chrome/Perfetto JSON: one complete ("X") event per op and marker (µs)."""
        pid = os.getpid()
        trace = [
            {
                "name": e.name,
                "cat": "user_annotation" if e.overload is None else "cpu_op",
                "ph": "X",
                "ts": e.start / 1e3,
                "dur": (e.end - e.start) / 1e3,
                "pid": pid,
                "tid": e.thread,
            }
            | ({} if e.overload is None else {"args": {"overload": e.overload}})
            for e in sorted(self.events(), key=lambda e: (e.start, -e.end))
        ]
        with open(path, "w") as f:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ns"}, f)


class OpRecorder:
    """Context manager recording the dispatch-level ops of a block with the same instrument
    as measured mode (the op observer on CPU when available, else torch.profiler); afterwards
    ``result`` (or the recorder itself) goes to :func:`events_from_profiler`."""

    def __init__(self, device: str = "cpu") -> None:

        self.device = device
        self.uses_observer = torch.device(device).type == "cpu" and observer.available()
        self._rec: Any = None
        self.result: Any = None

    def __enter__(self) -> OpRecorder:
        if self.uses_observer:
            self._rec = Observer(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU]
            if torch.device(self.device).type == "cuda":
                acts.append(ProfilerActivity.CUDA)
            self._rec = profile(activities=acts, experimental_config=profiler_config())
        self._rec.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rec.__exit__(*exc)
        self.result = ObservedPass(self._rec.recorded, []) if self.uses_observer else self._rec


def events_from_profiler(prof: Any, *, overloads: bool = True) -> list[Event]:
    """Flatten a finished ``torch.profiler.profile`` (or an :class:`ObservedPass`) into
    :class:`Event` records.

    ``overloads``: the profile was taken with :func:`profiler_config` (overload names
    recorded); otherwise ``Event.overload`` is None.
    """
    if isinstance(prof, OpRecorder):
        prof = prof.result
    if isinstance(prof, ObservedPass):
        return prof.events()
    from torch.autograd import DeviceType

    out = []
    for e in prof.profiler.kineto_results.events():
        dt = e.device_type()
        device = "cpu" if dt == DeviceType.CPU else "cuda" if dt == DeviceType.CUDA else str(dt)
        out.append(
            Event(
                e.name(),
                e.start_ns(),
                e.end_ns(),
                e.start_thread_id(),
                device,
                e.correlation_id(),
                e.linked_correlation_id(),
                e.overload_name() if overloads else None,
            )
        )
    return out


@dataclass(slots=True)
class ProfOp:
    """One dispatch-level op of the profiled pass, attributed to its place in the pipeline."""

    name: str  # profiler name of the op as the analytic capture would record it (aten::x)
    op: str  # the op as the analytic capture spells it (aten.add.Tensor)
    start: int
    end: int
    module: ModuleLabel | None
    where: WhereLabel | None
    where_id: int  # index of the innermost where-marker event (-1: outside all)
    category: str = ""
    device_s: float = 0.0
    kernels: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, launch)
    median_s: float | None = None  # robust time over several profiled passes, when taken

    @property
    def host_s(self) -> float:
        return (self.end - self.start) / 1e9

    @property
    def component(self) -> str:
        return (self.where.component if self.where else "") or (
            self.module.component if self.module else ""
        )


def op_key(op: ProfOp) -> tuple[str, str, str, int | None, str]:
    """What must agree for two profiled passes' ops to be the same op."""
    w = op.where
    return (
        op.op,
        op.module.path if op.module else "",
        w.phase if w else "",
        w.step if w else None,
        op.component,
    )


def median_over_passes(passes: list[list[ProfOp]], device_time: bool) -> bool:
    """Set ``median_s`` on the ops of ``passes[0]`` to the median over all passes, op by op.

    Preemption on a shared machine inflates a few ops of one pass by milliseconds; the median
    over passes drops it. Returns False (and leaves ``median_s`` unset) when the passes did
    not issue the same op sequence.
    """
    ref = passes[0]
    if any(len(p) != len(ref) for p in passes) or any(
        op_key(a) != op_key(b) for p in passes[1:] for a, b in zip(ref, p, strict=True)
    ):
        return False
    for i, op in enumerate(ref):
        times = sorted((p[i].device_s if device_time else p[i].host_s) for p in passes)
        n = len(times)
        op.median_s = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return True


@dataclass
class WhereSpan:
    """One where-marker (or the run marker) with its exclusive wall time."""

    label: WhereLabel | None
    start: int
    end: int
    exclusive_ns: int = 0


@dataclass
class Attribution:
    ops: list[ProfOp]
    spans: list[WhereSpan]  # where-markers; index = ProfOp.where_id
    run_span: tuple[int, int] | None  # the gs/run marker
    outside_ns: int  # run wall not inside any where-marker
    device_events: list[Event]


def _is_op_name(name: str) -> bool:
    return "::" in name and not name.startswith("gs/") and " " not in name


def _tree(events: list[Event]) -> list[int]:
    """Parent index of every CPU event (by time containment, per thread); -1 for roots."""
    parent = [-1] * len(events)
    by_thread: dict[int, list[int]] = {}
    for i, e in enumerate(events):
        by_thread.setdefault(e.thread, []).append(i)
    for idx in by_thread.values():
        idx.sort(key=lambda i: (events[i].start, -events[i].end, i))
        stack: list[int] = []
        for i in idx:
            e = events[i]
            while stack and events[stack[-1]].end <= e.start:  # finished before e began
                stack.pop()
            while stack and events[stack[-1]].end < e.end:  # overlaps without nesting
                stack.pop()
            parent[i] = stack[-1] if stack else -1
            stack.append(i)
    return parent


def attribute(events: list[Event], markers: Markers, device: str = "cpu") -> Attribution:
    """Dispatch-level ops of a profiled pass, each with its module and where labels."""
    device_key = "CUDA" if torch.device(device).type == "cuda" else "CPU"
    cpu = [e for e in events if e.device == "cpu"]
    device_events = [e for e in events if e.device != "cpu"]
    parent = _tree(cpu)
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parent):
        if p >= 0:
            children.setdefault(p, []).append(i)

    # where-markers and the run marker
    spans: list[WhereSpan] = []
    span_of_event: dict[int, int] = {}
    run_span = None
    for i, e in enumerate(cpu):
        if e.name in markers.wheres:
            span_of_event[i] = len(spans)
            spans.append(WhereSpan(markers.wheres[e.name], e.start, e.end))
        elif e.name == RUN_MARKER:
            run_span = (e.start, e.end)

    def transparent(i: int) -> bool:
        e = cpu[i]
        if e.name.partition("::")[2] == "scaled_dot_product_attention":
            return False
        kind = op_kind(e.name, e.overload, device_key)
        if kind == "implicit":
            return True
        if kind == "mixed":  # overload unknown: e.g. upsample_nearest2d.vec → .default
            return any(cpu[c].name == e.name for c in children.get(i, ()))
        return False

    def sdpa_backend(i: int) -> Event:
        stack = list(children.get(i, ()))
        while stack:
            c = stack.pop(0)
            if cpu[c].name.partition("::")[2] in SDPA_NAMES and cpu[c].name != cpu[i].name:
                return cpu[c]
            stack[:0] = children.get(c, ())
        return cpu[i]

    ops: list[ProfOp] = []
    op_of_event: dict[int, int] = {}
    # Walk roots in time order; descend through markers and transparent ops.
    roots = sorted((i for i, p in enumerate(parent) if p < 0), key=lambda i: cpu[i].start)

    def visit(i: int, module: ModuleLabel | None, where_id: int) -> None:
        e = cpu[i]
        if e.name in markers.modules:
            module = markers.modules[e.name]
        elif i in span_of_event:
            where_id = span_of_event[i]
        elif (
            _is_op_name(e.name)
            and op_kind(e.name, e.overload, device_key) != "unknown"
            and not transparent(i)
        ):
            src = sdpa_backend(i) if e.name.endswith("::scaled_dot_product_attention") else e
            name, overload = _ALIASES.get((src.name, src.overload or ""), (src.name, src.overload))
            where = spans[where_id].label if where_id >= 0 else None
            mtype = module.type_name if module else ""
            op = ProfOp(
                name,
                op_string(name, overload),
                e.start,
                e.end,
                module,
                where,
                where_id,
                category_of(name, mtype, overload),
            )
            _mark_subtree(i, len(ops), children, op_of_event)
            ops.append(op)
            return
        for c in sorted(children.get(i, ()), key=lambda c: cpu[c].start):
            visit(c, module, where_id)

    for r in roots:
        visit(r, None, -1)

    _attach_device_time(cpu, device_events, ops, op_of_event)
    outside = _exclusive_times(cpu, parent, spans, span_of_event, run_span)
    return Attribution(ops, spans, run_span, outside, device_events)


def _mark_subtree(i: int, op_index: int, children: dict[int, list[int]], out: dict) -> None:
    stack = [i]
    while stack:
        j = stack.pop()
        out[j] = op_index
        stack.extend(children.get(j, ()))


def _attach_device_time(
    cpu: list[Event], device: list[Event], ops: list[ProfOp], op_of_event: dict[int, int]
) -> None:
    """Give each op the device work its subtree launched (correlation ids)."""
    if not device:
        return
    by_corr = {e.correlation: i for i, e in enumerate(cpu) if e.correlation and e.linked == 0}
    launch_at = {e.correlation: e.start for e in cpu if e.linked and _LAUNCH_NAMES.search(e.name)}
    for k in device:
        cpu_index = by_corr.get(k.linked)
        if cpu_index is None or cpu_index not in op_of_event:
            continue
        op = ops[op_of_event[cpu_index]]
        op.device_s += (k.end - k.start) / 1e9
        op.kernels.append((k.start, k.end, launch_at.get(k.correlation, op.start)))


def _exclusive_times(
    cpu: list[Event],
    parent: list[int],
    spans: list[WhereSpan],
    span_of_event: dict[int, int],
    run_span: tuple[int, int] | None,
) -> int:
    """Fill each where-span's exclusive wall (minus nested where-spans); return run wall
    outside every where-span."""
    for span in spans:
        span.exclusive_ns = span.end - span.start
    top_level = 0
    for i, _s in span_of_event.items():
        # nearest where-marker ancestor
        p = parent[i]
        while p >= 0 and p not in span_of_event:
            p = parent[p]
        dur = cpu[i].end - cpu[i].start
        if p >= 0:
            spans[span_of_event[p]].exclusive_ns -= dur
        else:
            top_level += dur
    if run_span is None:
        return 0
    return max(0, (run_span[1] - run_span[0]) - top_level)


# -- intervals ---------------------------------------------------------------------------------


def union_ns(intervals: Iterable[tuple[int, int]]) -> int:
    """Total length covered by a set of [start, end) intervals."""
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def busy_and_gaps(
    kernels: list[tuple[int, int, int]], window: tuple[int, int]
) -> tuple[int, int, int]:
    """Device busy, idle and host-bound idle (ns) within ``window``.

    ``kernels`` are ``(start, end, launch)`` on one device timeline. Idle is the window minus
    the union of busy intervals. A gap before a kernel is host-bound for as long as that kernel
    had not been launched yet: ``min(start, launch) − previous busy end`` (clipped at 0).
    """
    w0, w1 = window
    busy = host = 0
    cur_end = w0
    for s, e, launch in sorted(kernels):
        s, e = max(s, w0), min(e, w1)
        if e <= s:
            continue
        if s > cur_end:
            host += max(0, min(s, launch) - cur_end)
            busy += e - s
            cur_end = e
        elif e > cur_end:
            busy += e - cur_end
            cur_end = e
    idle = max(0, (w1 - w0) - busy)
    return busy, idle, min(host, idle)
