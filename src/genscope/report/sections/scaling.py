"""Report section: Scaling with resolution and frames, with fitted exponents (O(L^4), O(n^2))."""

from __future__ import annotations

import pandas as pd

from genscope.analyses import scaling
from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.workloads.base import Settings


def scaling_section(ctx: ReportContext) -> list[Section]:
    sides = [256, 512, 1024] if ctx.quick else [256, 512, 768, 1024, 1536, 2048]
    video = "make-a-video"
    frame_list = [8, 16, 32] if ctx.quick else [8, 16, 32, 64, 128]
    plan = {
        f"sd15-res{side}-{attention}": (
            "sd15",
            Settings(size="full", res=(side, side), steps=1, attention=attention),
        )
        for side in sides
        for attention in ("math", "flash")
    }
    plan |= {f"{video}-f{f}": (video, Settings(size="full", frames=f, steps=1)) for f in frame_list}
    ctx.prefetch(plan)
    rows = []
    for side in sides:
        for attention in ("math", "flash"):
            key = f"sd15-res{side}-{attention}"
            r = ctx.trace(key, *plan[key])
            unet = r.events[r.events.component == "unet"]
            rows.append({"res": side, "attention": attention, **scaling.point_metrics(unet)})
    res = pd.DataFrame(rows)
    math_res = res[res.attention == "math"]
    fits = scaling.exponents(
        math_res,
        "res",
        ["score_matrix_bytes", "peak_activation_bytes", "time_s_attention", "time_s_conv"],
    )
    fits_flash = scaling.exponents(
        res[res.attention == "flash"],
        "res",
        ["peak_activation_bytes", "time_s_attention", "time_s_conv"],
    )
    fits_flash["quantity"] = fits_flash["quantity"] + " (flash)"
    score = fits[fits.quantity == "score_matrix_bytes"]
    if len(score):
        e = float(score.exponent.iloc[0])
        ctx.find(
            "memory_L4",
            e,
            f"L^{e:.2f} (R² {float(score.r2.iloc[0]):.3f})",
            f"math score matrix, sd15 UNet, {sides[0]}–{sides[-1]} px",
        )
    figs = [
        scaling.plot_scaling(
            math_res,
            "res",
            ["score_matrix_bytes", "peak_activation_bytes"],
            f"sd15 UNet memory vs image side (math) — {ctx.label}",
            "bytes",
        ),
        scaling.plot_scaling(
            res[res.attention == "flash"],
            "res",
            ["time_s_conv", "time_s_attention", "time_s_linear"],
            f"sd15 UNet time by category vs side (flash) — {ctx.label}",
            "predicted s per step",
        ),
    ]
    sections = [
        Section(
            "scaling-res",
            "Scaling with resolution (sd15, one CFG step)",
            ctx.label,
            figures=figs,
            table=pd.concat([fits, fits_flash]),
            data_files=[ctx.write_data("scaling_res", res)],
        )
    ]
    frows = []
    for f in frame_list:
        r = ctx.trace(f"{video}-f{f}", *plan[f"{video}-f{f}"])
        unet = r.events[r.events.component == "unet"]
        frows.append({"frames": f, **scaling.point_metrics(unet)})
    fr = pd.DataFrame(frows)
    ffits = scaling.exponents(
        fr,
        "frames",
        [
            "attn_flops_temporal",
            "attn_time_s_temporal",
            "attn_flops_spatial",
            "peak_activation_bytes",
        ],
    )
    t = ffits[ffits.quantity == "attn_flops_temporal"]
    if len(t):
        e = float(t.exponent.iloc[0])
        ctx.find(
            "temporal_n2",
            e,
            f"F^{e:.2f} (R² {float(t.r2.iloc[0]):.3f})",
            f"temporal attention FLOPs (incl. softmax), {frame_list[0]}–{frame_list[-1]} frames",
        )
    fig = scaling.plot_scaling(
        fr,
        "frames",
        ["attn_flops_temporal", "attn_flops_spatial"],
        f"{video} attention FLOPs vs frames — {ctx.label}",
        "FLOPs",
    )
    sections.append(
        Section(
            "scaling-frames",
            f"Scaling with frames ({video}, one step)",
            ctx.label,
            figures=[fig],
            table=ffits,
            data_files=[ctx.write_data("scaling_frames", fr)],
        )
    )
    return sections
