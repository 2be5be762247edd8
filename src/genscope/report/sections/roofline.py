"""Report section: Roofline: every op of the suite against the ridge points of the GPU specs."""

from __future__ import annotations

import pandas as pd

from genscope.analyses import roofline
from genscope.costmodel.hardware import get_hardware
from genscope.report.context import ROOFLINE_SPECS, ReportContext
from genscope.report.html import Section
from genscope.report.interactive import TOP_OPS, op_points, plot_op_roofline
from genscope.workloads.base import Settings


def roofline_section(ctx: ReportContext) -> list[Section]:
    specs = [get_hardware(n) for n in ROOFLINE_SPECS]
    flash_runs = ctx.suite("flash")
    table = roofline.phase_intensity({n: r.events for n, r in flash_runs.items()}, specs, "bf16")
    table = table[table["flops"] > 0.001 * table.groupby("run")["flops"].transform("sum")]
    den = table[table.phase == "denoise"]["intensity"]
    dec = table[table.phase == "decode"]["intensity"]
    if len(den) and len(dec):
        ctx.find(
            "diffusion_prefill",
            den.median() / dec.median(),
            f"denoise {den.median():.0f} vs decode {dec.median():.1f} FLOP/B (median)",
        )
    op_fig, hover = plot_op_roofline(
        op_points({n: r.events for n, r in flash_runs.items()}),
        specs[0],
        "bf16",
        f"Top {TOP_OPS} ops per workload on the {specs[0].name} bf16 roofline (hover a point)",
        "hv-roofline-ops",
    )
    sections = [
        Section(
            "roofline",
            "Roofline: arithmetic intensity per phase",
            ctx.label,
            figures=[
                roofline.plot_roofline(
                    table, specs, "bf16", "Phases against A100/H100/H200 bf16 ridges (analytic)"
                ),
                op_fig,
            ],
            hover=hover,
            table=table,
            data_files=[ctx.write_data("roofline_phases", table)],
            notes=[
                "Second figure: each point an op (size ~ time), coloured by category; hover for "
                "op, module path, input shapes and predicted time.",
                "Intensity = FLOPs / minimum bytes per phase (fp32 traces; the bound labels use "
                "each GPU's dense bf16 ridge, the regime these models are served in).",
            ],
        )
    ]
    if "llama" in flash_runs:
        batches = [1, 4, 16, 64] if ctx.quick else [1, 4, 16, 64, 256]
        plan = {
            f"llama-b{b}": ("llama", Settings(size="full", batch=b, new_tokens=4)) for b in batches
        }
        ctx.prefetch(plan)
        rows = []
        for b in batches:
            r = ctx.trace(f"llama-b{b}", *plan[f"llama-b{b}"])
            ph = roofline.phase_intensity({f"b{b}": r.events}, specs, "bf16")
            d = ph[ph.phase == "decode"]
            rows.append({"batch": b, "intensity": float(d.flops.sum() / d.bytes.sum())})
        sweep = pd.DataFrame(rows)
        crossing = {s.name: roofline.ridge_crossing(sweep, s.ridge("bf16")) for s in specs}
        sections.append(
            Section(
                "decode-batch",
                "Where autoregressive decode crosses the ridge (llama 7B)",
                ctx.label,
                table=sweep,
                notes=[
                    "Smallest batch at or above the bf16 ridge: "
                    + ", ".join(
                        f"{k} {'none up to batch ' + str(batches[-1]) if v is None else v}"
                        for k, v in crossing.items()
                    )
                ],
                data_files=[ctx.write_data("decode_batch_intensity", sweep)],
            )
        )
    return sections
