"""Report section: optimization levers stacked, measured on this machine.

Two parts:

1. A **live** short run (well under a minute): the tiny sd15 UNet step and the tiny Chameleon
   image-token decode loop, eager levers only (compilation takes minutes on a CPU), on one
   intra-op thread so that a busy machine does not stall OpenMP barriers. Tiny models are
   dominated by per-op overhead, so their factors say little about full-size models.
2. The latest **``genscope bench optimize``** result, if one is stored under
   ``$GENSCOPE_HOME/optimize/`` (full-size sd15 UNet; small Chameleon), shown with its date and
   git sha. On a report without a GPU time model, the claims-table finding for Lee et al.'s
   3.88x comes from it when present, else from the live tiny run, and says which; on a GPU spec
   it comes from :mod:`~genscope.report.sections.levers_predicted`.
"""

from __future__ import annotations

from typing import Any

from genscope.bench.optimize import latest_bench
from genscope.machine.threads import torch_threads
from genscope.optimize import TargetSpec, optimize
from genscope.optimize.deviation import deviation_text
from genscope.optimize.figures import plot_levers, stages_frame
from genscope.report.context import ReportContext
from genscope.report.html import Section

LABEL = "measured (cpu)"
LIVE_SD15 = "sdpa,bf16,channels_last,fused_qkv"
LIVE_DECODE = "sdpa,static_cache,bf16,int8_weight_only,image_head,speculative,batching:4"


def _live(quick: bool) -> list[dict[str, Any]]:

    repeats = 1 if quick else 2
    with torch_threads(1):
        sd = optimize(TargetSpec("sd15", size="tiny", steps=1), LIVE_SD15, repeats=repeats)
        ar = optimize(
            TargetSpec("chameleon", size="tiny", new_tokens=8 if quick else 16),
            LIVE_DECODE,
            repeats=repeats,
        )
    return [sd.to_dict(), ar.to_dict()]


def levers_section(ctx: ReportContext) -> list[Section]:

    live = _live(ctx.quick)
    table = stages_frame(live)
    sections = [
        Section(
            "levers-live",
            "Optimization levers stacked: tiny models, eager levers (live run)",
            LABEL,
            figures=[plot_levers(table, f"Levers on tiny models (eager) — {LABEL}")],
            table=table,
            notes=[
                "Each bar adds one lever to all the counted ones before it; the label is that "
                "lever's own factor. Baselines: "
                + "; ".join(f"{r['workload']}: {r['baseline']}" for r in live),
                "Tiny models on one CPU thread are dominated by per-op overhead, so low "
                "precision and int8 barely help and fewer/larger ops do; see the bench section "
                "for full-size numbers. Tolerances: "
                + "; ".join(f"{r['workload']}: {r['tolerance']}" for r in live),
            ],
            data_files=[ctx.write_data("levers_live", table)],
        )
    ]
    bench = latest_bench()
    decode_live = live[1]
    if bench and not bench.get("quick"):
        rows = bench["rows"]
        btable = stages_frame(rows)
        env = bench.get("environment", {})
        summary = "; ".join(
            f"{r['workload']}: {r['speedup']:.2f}x (target {r['target']:g}x, "
            f"{'met' if r['meets_target'] else 'not met'}; at the baseline's batch "
            f"{r['speedup_matched_batch']:.2f}x), deviation {_dev_text(r['deviation'])}"
            for r in rows
        )
        sections.append(
            Section(
                "levers-bench",
                "Optimization levers at full size: genscope bench optimize",
                LABEL,
                figures=[plot_levers(btable, f"genscope bench optimize — {LABEL}")],
                table=btable,
                notes=[
                    f"Stored run {bench.get('stamp', '?')} (git {env.get('git_sha', '?')}, "
                    f"{bench.get('threads')} thread(s), {bench.get('repeats')} repeats). "
                    + summary,
                    *[f"{r['name']}: baseline {r['baseline']}" for r in rows],
                ],
                data_files=[ctx.write_data("levers_bench", btable)],
            )
        )
        ar = next((r for r in rows if r["workload"] == "chameleon"), None)
        if ar is not None and not ctx.gpu:
            ctx.find(
                "levers_388",
                ar["speedup"],
                f"{ar['speedup']:.2f}x ({ar['speedup_kind']}); "
                f"{ar['speedup_matched_batch']:.2f}x at batch 1",
                f"genscope bench optimize {bench.get('stamp', '')}: {ar['name']}, levers "
                f"{', '.join(ar['levers_counted'])}; deviation {_dev_text(ar['deviation'])}. "
                "The headline ratio includes batching (throughput vs the batch-1 baseline), as "
                "Lee et al.'s max-batch ratios do (papers.md 2.9); the batch-1 latency ratio is "
                "the second number. Random weights; 0.26B-parameter Chameleon architecture on "
                "a CPU, not Chameleon-7B/34B on an A100",
                mode=LABEL,
            )
            return sections
    if ctx.gpu:  # the claim is predicted on the GPU spec (levers_predicted)
        return sections
    ctx.find(
        "levers_388",
        decode_live["speedup"],
        f"{decode_live['speedup']:.2f}x (tiny chameleon, eager levers)",
        "live tiny run, no stored `genscope bench optimize` result: overhead-dominated tiny "
        f"model; deviation {_dev_text(decode_live['deviation'])}",
        mode=LABEL,
    )
    return sections


def _dev_text(dev: dict[str, Any]) -> str:

    return deviation_text(dev)
