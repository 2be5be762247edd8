"""``genscope report``: characterize the suite and write one self-contained HTML page.

Each section is produced by a *section builder*: a function of the shared
:class:`ReportContext` that returns :class:`~genscope.report.html.Section` objects and may
record :class:`~genscope.analyses.claims.Finding` s for the claims table. Builders run in order
behind a progress bar; traces are cached in the context so sections share runs; every table is
written beside the page as CSV. A builder that fails does not sink the report: its section says
what failed.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from genscope.analyses import decode, flash, roofline, scaling, seqlen, temporal
from genscope.analyses.breakdown import category_breakdown, plot_category_breakdown
from genscope.analyses.claims import Finding, claims_html, claims_table
from genscope.commands._output import err_console
from genscope.costmodel.hardware import get_hardware
from genscope.environment import environment
from genscope.report.html import Section, render_page
from genscope.tracing import TraceResult, trace_workload
from genscope.workloads.base import Settings, Workload
from genscope.workloads.registry import all_workloads, get_workload

ROOFLINE_SPECS = ("a100-80g-sxm", "h100-sxm", "h200-sxm")
_DECODING = ("autoregressive", "encoder-decoder")
#: ``--quick``: decode loops that take a length stop after this many new tokens; Parti's loop is
#: a fixed 1024 image tokens, so it runs its smallest published size instead of 20B.
QUICK_NEW_TOKENS = 16
QUICK_VARIANTS = {"parti": "350m"}
QUICK = (
    f"quick: decode shortened to {QUICK_NEW_TOKENS} new tokens, Parti at 350M, and smaller "
    "resolution/frame/batch sweeps and numerics grids"
)


@dataclass
class ReportContext:
    out: Path
    hardware: str
    quick: bool
    workers: int = 1
    runs: dict[str, TraceResult] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)
    #: called with a short status line while a section runs many traces
    status: Callable[[str], None] = lambda _text: None

    @property
    def label(self) -> str:
        return f"analytic ({self.hardware}{', quick' if self.quick else ''})"

    def trace(self, key: str, workload: str | Workload, settings: Settings) -> TraceResult:
        """Trace once per key and remember it (run ids are listed in the report)."""
        if key not in self.runs:
            self.runs[key] = trace_workload(workload, settings, hardware=self.hardware)
        return self.runs[key]

    def prefetch(self, plan: dict[str, tuple[str, Settings]]) -> None:
        """Trace the planned runs not cached yet, ``workers`` at a time in worker processes.

        Traces are independent and single-threaded (``meta`` tensors), so on a 2-core machine
        two workers halve the wall time. A point that fails here is traced again in-process
        by :meth:`trace`, so its error surfaces where the section needs it.
        """
        todo = {k: v for k, v in plan.items() if k not in self.runs}
        if self.workers < 2 or len(todo) < 2:
            return
        from genscope.store import write_run
        from genscope.sweep.executors import LocalExecutor

        tasks = [
            {
                "workload": wl,
                "settings": s.to_dict(),
                "mode": "analytic",
                "hardware": self.hardware,
                "sweep": "report",
                "point_id": key,
            }
            for key, (wl, s) in todo.items()
        ]
        # long decode loops first, so the pool does not end waiting on one of them
        tasks.sort(key=lambda t: get_workload(t["workload"]).family not in _DECODING)
        for done, (task, outcome) in enumerate(LocalExecutor(self.workers).run(tasks), 1):
            self.status(f"traces {done}/{len(tasks)}")
            if not outcome["ok"]:
                continue
            run_id, meta = outcome["run_id"], outcome["meta"]
            path = write_run(run_id, meta, outcome["events"], outcome["summary"])
            self.runs[task["point_id"]] = TraceResult(
                run_id, meta, outcome["events"], outcome["summary"], str(path)
            )

    def suite_plan(self, attention: str) -> dict[str, tuple[str, Settings]]:
        return {
            f"{wl.name}-{attention}": (wl.name, self.suite_settings(wl, attention))
            for wl in all_workloads()
        }

    def suite_settings(self, wl: Workload, attention: str) -> Settings:
        """Default settings; ``--quick`` shortens decoding (:data:`QUICK`)."""
        if not self.quick:
            return Settings(size="full", attention=attention)
        if "new_tokens" in wl.defaults["full"]:
            return Settings(size="full", attention=attention, new_tokens=QUICK_NEW_TOKENS)
        return Settings(size="full", attention=attention, variant=QUICK_VARIANTS.get(wl.name))

    def suite(self, attention: str) -> dict[str, TraceResult]:
        return {wl: self.trace(key, wl, s) for key, (wl, s) in self.suite_plan(attention).items()}

    def write_data(self, name: str, df: pd.DataFrame) -> str:
        (self.out / "data").mkdir(parents=True, exist_ok=True)
        df.to_csv(self.out / "data" / f"{name}.csv", index=False)
        return f"data/{name}.csv"

    def find(self, key: str, value: float, display: str, detail: str = "", mode: str = "") -> None:
        self.findings[key] = Finding(float(value), display, mode or self.label, detail)


SectionBuilder = Callable[[ReportContext], list[Section]]


# --------------------------------------------------------------------------- sections
def suite_section(ctx: ReportContext) -> list[Section]:
    rows = []
    for wl in all_workloads():
        d = wl.describe()
        rows.append(
            {
                "workload": wl.name,
                "task": wl.task,
                "family": wl.family,
                "components": ", ".join(d["components"]),
                "params (B)": sum((c["published_params"] or 0) for c in d["components"].values())
                / 1e9,
                "defaults": json.dumps(d["defaults"]),
                "description": wl.description,
            }
        )
    table = pd.DataFrame(rows)
    return [
        Section(
            "suite",
            "The model suite",
            ctx.label,
            table=table,
            notes=[
                "Every component is built from a shipped config through its "
                "maintained class with random weights; full size on the meta device."
            ],
            data_files=[ctx.write_data("suite", table)],
        )
    ]


def breakdown_section(ctx: ReportContext) -> list[Section]:
    ctx.prefetch(ctx.suite_plan("math") | ctx.suite_plan("flash"))
    math_runs, flash_runs = ctx.suite("math"), ctx.suite("flash")
    runs = {}
    for name in flash_runs:
        runs[f"{name} (math)"] = math_runs[name].events
        runs[f"{name} (flash)"] = flash_runs[name].events
    table = category_breakdown(runs)
    flash_only = table[table["run"].str.endswith("(flash)")].copy()
    flash_only["workload"] = flash_only["run"].str.removesuffix(" (flash)")
    fam = {wl.name: wl.family for wl in all_workloads()}
    task = {wl.name: wl.task for wl in all_workloads()}
    flash_only["family"] = flash_only["workload"].map(fam)
    flash_only["task"] = flash_only["workload"].map(task)
    diff = flash_only[(flash_only.task == "tti") & flash_only.family.str.startswith("diffusion")]
    conv = diff[diff.category == "conv"]
    if len(conv):
        top = conv.loc[conv["share"].idxmax()]
        ctx.find(
            "conv_share_diffusion",
            top["share"],
            f"{top['share']:.0%} ({top['workload']})",
            f"range over diffusion TTI: {conv['share'].min():.0%}–{conv['share'].max():.0%}",
        )
    trans = flash_only[(flash_only.task == "tti") & ~flash_only.family.str.startswith("diffusion")]
    lin = trans[trans.category == "linear"]
    if len(lin):
        top = lin.loc[lin["share"].idxmax()]
        ctx.find(
            "linear_share_transformer",
            top["share"],
            f"{top['share']:.0%} ({top['workload']})",
            f"range over transformer TTI: {lin['share'].min():.0%}–{lin['share'].max():.0%}",
        )
    figs = [
        plot_category_breakdown(
            table[table["run"].str.endswith("(math)")], f"Baseline (math) attention — {ctx.label}"
        ),
        plot_category_breakdown(
            table[table["run"].str.endswith("(flash)")], f"Flash attention — {ctx.label}"
        ),
    ]
    return [
        Section(
            "breakdown",
            "Operator-category breakdown: baseline vs Flash attention",
            ctx.label,
            figures=figs,
            table=table,
            notes=[
                "Share of predicted end-to-end time per operator category, each "
                "workload at its default settings (fp32); llama is the LLM reference."
            ],
            data_files=[ctx.write_data("breakdown", table)],
        )
    ]


def flash_section(ctx: ReportContext) -> list[Section]:
    math_runs, flash_runs = ctx.suite("math"), ctx.suite("flash")
    wls = {wl.name: wl for wl in all_workloads()}
    pairs = {n: (math_runs[n].events, flash_runs[n].events) for n in flash_runs}
    table = flash.flash_speedup(
        pairs, {n: w.family for n, w in wls.items()}, {n: w.task for n, w in wls.items()}
    )
    ratio = flash.diffusion_vs_transformer_tti(table)
    if ratio["pairs"]:
        ctx.find(
            "flash_diffusion_vs_transformer",
            ratio["max"],
            f"{ratio['min']:.2f}–{ratio['max']:.2f}x over {ratio['pairs']} model pairs",
        )
    fig = flash.plot_flash_speedup(table, f"Flash attention speedup — {ctx.label}")
    return [
        Section(
            "flash",
            "Flash attention speedup",
            ctx.label,
            figures=[fig],
            table=table,
            notes=[f"Diffusion/transformer TTI speedup ratio: {ratio}"],
            data_files=[ctx.write_data("flash", table)],
        )
    ]


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
    sections = [
        Section(
            "roofline",
            "Roofline: arithmetic intensity per phase",
            ctx.label,
            figures=[
                roofline.plot_roofline(
                    table, specs, "bf16", "Phases against A100/H100/H200 bf16 ridges (analytic)"
                )
            ],
            table=table,
            data_files=[ctx.write_data("roofline_phases", table)],
            notes=[
                "Intensity = FLOPs / minimum bytes per phase (fp32 traces; the bound labels use "
                "each GPU's dense bf16 ridge, the regime these models are served in)."
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
                notes=[f"Smallest batch at or above the ridge: {crossing}"],
                data_files=[ctx.write_data("decode_batch_intensity", sweep)],
            )
        )
    return sections


def seqlen_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    calls = {n: seqlen.attention_calls(r.events) for n, r in flash_runs.items()}
    calls = {n: c for n, c in calls.items() if len(c)}
    rows = []
    for n, c in calls.items():
        summ = seqlen.seqlen_summary(c)
        rows.append(
            {
                "workload": n,
                "distinct_q_len": str(summ["distinct"][:12]),
                "max_over_min": summ["max_over_min"],
                "per_level": json.dumps(summ["self_attention_q_len_by_level"]),
            }
        )
    table = pd.DataFrame(rows)
    if "sd15" in calls:
        r = seqlen.adjacent_level_ratio(calls["sd15"], "unet")
        ctx.find("seqlen_4x", r, f"{r:.1f}x between adjacent sd15 UNet levels")
    fig = seqlen.plot_seqlen(calls, f"Attention sequence lengths — {ctx.label}")
    return [
        Section(
            "seqlen",
            "Sequence length of every attention call",
            ctx.label,
            figures=[fig],
            table=table,
            data_files=[ctx.write_data("seqlen", table)],
        )
    ]


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


def temporal_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    video = {n: r.events for n, r in flash_runs.items() if get_workload(n).task in ("ttv", "i2v")}
    if not video:
        return []
    hw = get_hardware(ctx.hardware)
    table = temporal.temporal_share(video, hw, "fp32")
    tem = table[table.axis == "temporal"]
    if len(tem):
        top = tem.loc[tem["time_share"].idxmax()]
        ctx.find(
            "temporal_60pct",
            top["time_share"],
            f"{top['time_share']:.0%} ({top['workload']})",
            f"FLOP share only {top['flop_share']:.1%}; fraction of peak "
            f"{top['fraction_of_peak']:.1%}",
        )
    fig = temporal.plot_temporal(table, f"Temporal vs spatial attention — {ctx.label}")
    return [
        Section(
            "temporal",
            "Temporal vs spatial attention in video models",
            ctx.label,
            figures=[fig],
            table=table,
            data_files=[ctx.write_data("temporal", table)],
        )
    ]


def decode_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    ar = [n for n, r in flash_runs.items() if (r.events.phase == "decode").any()]
    sections = []
    shares = []
    for name in ar:
        ev = flash_runs[name].events
        comp = decode.step_composition(ev)
        kv = decode.kv_cache_bytes(ev)
        dec = ev[ev.phase == "decode"]
        t = (dec.predicted_s * dec["count"]).groupby(dec.category).sum()
        shares.append(
            {
                "workload": name,
                "linear_share": t.get("linear", 0) / t.sum(),
                "attention_share": t.get("attention", 0) / t.sum(),
            }
        )
        sections.append(
            Section(
                f"decode-{name}",
                f"Decode composition and KV-cache growth: {name}",
                ctx.label,
                figures=[decode.plot_decode(comp, kv, f"{name} — {ctx.label}")],
                data_files=[
                    ctx.write_data(f"decode_{name}", comp),
                    ctx.write_data(f"kv_{name}", kv),
                ],
            )
        )
    if shares:
        table = pd.DataFrame(shares)
        llm = table[table.workload.isin(["llama", "chameleon"])]
        if len(llm):
            ctx.find(
                "linear_llm",
                float(llm.linear_share.min()),
                ", ".join(f"{r.workload} {r.linear_share:.0%}" for r in llm.itertuples()),
            )
        sections.insert(
            0,
            Section(
                "decode",
                "Autoregressive decode: linear vs attention",
                ctx.label,
                table=table,
                data_files=[ctx.write_data("decode_shares", table)],
            ),
        )
    return sections


def claims_section(ctx: ReportContext) -> list[Section]:
    table = claims_table(ctx.findings)
    return [
        Section(
            "claims",
            "Claims: the papers beside genscope",
            "analytic + measured",
            raw_html=claims_html(table),
            notes=[
                "Each row: a headline claim, genscope's number with its mode and "
                "hardware, and whether it agrees — with one line on why."
            ],
            data_files=[ctx.write_data("claims", table)],
        )
    ]


#: (progress label, builder); extra builders (measured, numerics, levers) append here.
SECTION_BUILDERS: list[tuple[str, SectionBuilder]] = [
    ("suite", suite_section),
    ("operator breakdown", breakdown_section),
    ("flash speedup", flash_section),
    ("roofline", roofline_section),
    ("sequence length", seqlen_section),
    ("scaling", scaling_section),
    ("temporal attention", temporal_section),
    ("decode", decode_section),
]


def _failed(name: str, err: BaseException) -> Section:
    return Section(
        key=f"failed-{name.replace(' ', '-')}",
        title=f"{name}: not produced",
        label="error",
        notes=[f"{type(err).__name__}: {err}", traceback.format_exc(limit=3)],
    )


def _extra_builders() -> list[tuple[str, SectionBuilder]]:
    """Sections owned by other packages (numerics, levers, measured), imported lazily."""
    from genscope.capture.report_section import measured_section
    from genscope.numerics.report_section import numerics_section

    builders: list[tuple[str, SectionBuilder]] = [
        ("measured", measured_section),
        ("numerics", numerics_section),
    ]
    try:
        from genscope.optimize.report_section import levers_section
    except ImportError:  # levers are optional in a partial install
        return builders
    return [*builders, ("levers", levers_section)]


def build_report(
    out: Path,
    hardware: str = "a100-80g-sxm",
    quick: bool = False,
    builders: list[tuple[str, SectionBuilder]] | None = None,
    workers: int = 1,
) -> Path:
    """Run every section builder (or the given ones) and write ``out/index.html`` atomically.

    ``workers`` > 1 traces a section's independent runs in that many worker processes.
    """
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out, hardware, quick, workers)
    sections: list[Section] = []
    builders = [*SECTION_BUILDERS, *_extra_builders()] if builders is None else builders
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    seconds: dict[str, float] = {}
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("report", total=len(builders) + 1)
        ctx.status = lambda text: progress.update(task, description=f"{name}: {text}")
        for name, builder in builders:
            progress.update(task, description=name)
            start = time.perf_counter()
            try:
                sections.extend(builder(ctx))
            except Exception as err:  # a broken section must not sink the whole report
                sections.append(_failed(name, err))
            seconds[name] = time.perf_counter() - start
            progress.advance(task)
        progress.update(task, description="claims")
        sections[:0] = claims_section(ctx)
        progress.advance(task)
    env = environment()
    runs = pd.DataFrame(
        [
            {"key": k, "run_id": r.run_id, "workload": r.meta["workload"]}
            for k, r in ctx.runs.items()
        ]
    )
    sections.append(
        Section(
            key="runs",
            title="Runs and environment",
            label=ctx.label,
            table=runs,
            notes=[
                *(f"{k}: {json.dumps(v)}" for k, v in env.items()),
                "seconds per section (this machine): "
                + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()),
            ],
            data_files=[ctx.write_data("runs", runs)],
        )
    )
    page = render_page(
        "genscope report",
        [
            "Where multimodal generative-AI inference spends its time, memory and precision. "
            "Analytic numbers are a per-op roofline over datasheet peaks (no GPU was used); "
            "measured numbers come from this machine's CPU and say so.",
            f"Mode: {QUICK if quick else 'full'}; analytic hardware: {hardware}.",
        ],
        sections,
        footer=(
            f"genscope {env['genscope']} · git {env['git_sha']} · torch {env['packages']['torch']}"
        ),
    )
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "index.html")
    return out / "index.html"
