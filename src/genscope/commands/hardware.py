"""``genscope hardware [NAME]`` lists the hardware registry; ``genscope calibrate`` measures this
machine and adds it to the registry as ``cpu-local`` (or ``cuda-local``)."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genscope.commands._output import emit_json, err_console, out_console
from genscope.costmodel.hardware import (
    VECTOR_FALLBACK,
    HardwareSpec,
    get_hardware,
    list_hardware,
)
from genscope.errors import UserError


def _num(x: float) -> str:
    """Readable magnitude: one decimal from 10 up, three significant digits below."""
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _maybe(spec: HardwareSpec, fn: Any) -> str:
    try:
        return _num(fn(spec))
    except UserError:  # the spec has no such peak
        return "–"


def _list_table(specs: list[HardwareSpec]) -> Table:
    table = Table(title="Hardware specs (dense peaks; `genscope hardware NAME` shows sources)")
    table.add_column("name", no_wrap=True)
    table.add_column("kind")
    for col in (
        "bf16 matrix\nTFLOPS",
        "fp32 vector\nTFLOPS",
        "bandwidth\nGB/s",
        "memory\nGB",
        "bf16 ridge\nFLOP/B",
    ):
        table.add_column(col, justify="right")
    table.add_column("status")
    for s in specs:
        table.add_row(
            s.name,
            s.kind,
            _maybe(s, lambda s: s.peak("bf16", "matrix") / 1e12),
            _maybe(s, lambda s: s.peak("fp32", "vector") / 1e12),
            _num(s.mem_bw / 1e9),
            _num(s.mem_bytes / 1e9),
            _maybe(s, lambda s: s.ridge("bf16", "matrix")),
            s.status_summary(),
        )
    return table


def _value(path: str, value: float) -> tuple[str, str]:
    """(number, unit) in the unit a reader expects for that field."""
    if path.startswith(("matrix_peak.", "vector_peak.", "extra.matrix_peak_sparse.")):
        prefix, scale = ("T", 1e12) if value >= 1e12 else ("G", 1e9)  # CPUs: GFLOPS
        return _num(value / scale), prefix + ("OPS" if path.endswith("int8") else "FLOPS")
    if path == "mem_bw":
        return _num(value / 1e9), "GB/s"
    if path == "mem_bytes":
        return _num(value / 1e9), "GB"
    if path == "dispatch_overhead_s":
        return _num(value * 1e6), "µs"
    if path.endswith("_w"):
        return _num(value), "W"
    return _num(value), ""


def _spread(spec: HardwareSpec, path: str) -> str:
    """For measured fields: the min-max range over the repeats, in the field's display unit."""
    m = spec.extra.get("measurements", {}).get(path)
    if not isinstance(m, dict) or "min" not in m:
        return ""
    lo, _ = _value(path, m["min"])
    hi, _ = _value(path, m["max"])
    return f"\n(min {lo}, max {hi}, {m['repeats']} repeats)"


def _detail_table(spec: HardwareSpec) -> Table:
    table = Table(title=f"{spec.name} ({spec.kind}): {spec.description}", show_lines=True)
    table.add_column("field", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("status")
    table.add_column("source", overflow="fold", ratio=1)
    numbers = spec.number_fields()
    for path, value in numbers.items():
        if path.startswith("extra.measurements."):
            continue  # raw timings: their range is shown under the field they measure
        number, unit = _value(path, value)
        table.add_row(
            path,
            f"{number} {unit}".strip() + _spread(spec, path),
            spec.status_of(path) or "-",
            spec.source_of(path) or "MISSING",
        )
    for key, text in spec.sources.items():
        if not any(p == key or p.startswith(key + ".") for p in numbers):
            table.add_row(key, "", spec.status.get(key, "note"), text)  # e.g. how L4 was checked
    for dtype in VECTOR_FALLBACK:
        if dtype in spec.vector_peak or "fp32" not in spec.vector_peak:
            continue
        used = spec.peak_field(dtype, "vector")
        number, unit = _value(used, spec.peak(dtype, "vector"))
        table.add_row(
            f"vector_peak.{dtype}",
            f"{number} {unit}",
            "fallback",
            f"no figure of its own: peak('{dtype}', 'vector') returns {used}",
        )
    for dtype, unit in (("bf16", "matrix"), ("fp32", "vector")):
        try:
            ridge = spec.ridge(dtype, unit)
        except UserError:
            continue
        used = spec.peak_field(dtype, unit)
        table.add_row(
            f"ridge({dtype}, {unit})", f"{_num(ridge)} FLOP/B", "derived", f"{used} / mem_bw"
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("hardware")
    def hardware(
        name: str | None = typer.Argument(
            None, help="Show one spec with every number and its source."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """List GPU datasheet specs and measured local specs (peaks, bandwidth, ridge points)."""
        if name is not None:
            spec = get_hardware(name)
            if json_out:
                emit_json(spec.to_dict())
            else:
                out_console.print(_detail_table(spec))
            return
        specs = list_hardware()
        if json_out:
            emit_json({"hardware": [s.to_dict() for s in specs]})
        else:
            out_console.print(_list_table(specs))

    @app.command("calibrate")
    def calibrate_cmd(
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repeats per measurement."),
        warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed calls before timing."),
        quick: bool = typer.Option(
            False, "--quick", help="Tiny sizes, 2 repeats: a smoke test, not a calibration."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Measure this machine (GEMM, elementwise, copy bandwidth, dispatch overhead) and save
        it as the hardware spec `<device>-local`."""
        from genscope.measure.calibrate import calibrate, save_local_spec  # torch import: keep lazy

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("calibrating", total=None)

            def on_step(label: str, done: int, total: int) -> None:
                bar.update(task, description=label, completed=done, total=total)

            spec = calibrate(device, repeats=repeats, warmup=warmup, quick=quick, progress=on_step)
        path = save_local_spec(spec)
        err_console.print(f"wrote {path} ({spec.extra['duration_s']:.1f} s)")
        for warning in spec.extra.get("warnings", []):
            err_console.print(f"[yellow]warning:[/] {warning}")
        if json_out:
            emit_json(spec.to_dict())
        else:
            out_console.print(_detail_table(spec))
