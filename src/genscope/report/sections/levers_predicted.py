"""Report section: Lee et al.'s stacked levers predicted on the report's GPU spec.

Only on a spec with a GPU time model: the 8 Llama/Chameleon configurations and HSTU of
:mod:`genscope.optimize.lee`, each at batch 1 and at its largest feasible batch, beside the
paper's bars. The geometric mean of the 9 terms is the claims table's finding for "3.88x better
baseline".
"""

from __future__ import annotations

from genscope.costmodel.hardware import get_hardware
from genscope.optimize.figures import plot_lee
from genscope.optimize.lee import PAPER_GEOMEAN, PAPER_GEOMEAN_8, geomeans, predict_lee
from genscope.report.context import ReportContext
from genscope.report.html import Section


def levers_predicted_section(ctx: ReportContext) -> list[Section]:
    if not ctx.gpu:
        return []
    hw = get_hardware(ctx.hardware)
    table = predict_lee(hw, workers=ctx.workers)
    means = geomeans(table)
    ours, ours_bs1, ours_8 = means["max_batch"], means["bs1"], means["max_batch_llama_chameleon"]
    batches = ", ".join(f"{r.config} {r.max_batch}" for r in table.itertuples())
    ctx.find(
        "levers_388",
        ours,
        f"{ours:.2f}x (geomean of 9 terms at the largest feasible batch; {ours_bs1:.2f}x at "
        "batch 1)",
        f"GPU time model on {hw.name}, Lee et al.'s definition: 8 Llama/Chameleon "
        "configurations, SDPA run vs + static cache, compile (CUDA graphs) and AutoQuant (the "
        "faster of int8 weight-only and dynamic), fp16; HSTU's PyTorch run vs fused attention. "
        f"Both runs of each ratio at the same largest feasible batch ({batches}). Without HSTU "
        f"{ours_8:.2f}x vs the paper's {PAPER_GEOMEAN_8:.2f}x",
    )
    return [
        Section(
            "levers-predicted",
            f"Lee et al.'s stacked levers, predicted on {hw.name}",
            ctx.label,
            figures=[plot_lee(table, f"Stacked levers, Lee et al.'s configurations — {ctx.label}")],
            table=table,
            notes=[
                f"Geometric mean at the largest feasible batch: {ours:.2f}x predicted, "
                f"{PAPER_GEOMEAN:.2f}x in the paper (papers.md §2.9); at batch 1 "
                f"{ours_bs1:.2f}x predicted. The paper's VizWiz bars (6.57x, 21.2x) compare a "
                "compiled run at batch 1 with SDPA at batch 8/32 (papers.md §2.8).",
                "Largest feasible batch: the largest of the paper's batch sizes whose fp16 "
                "weights plus peak live activations (KV cache included) fit the GPU's memory. "
                "Both runs of a ratio use that batch, so it is also the throughput gain.",
            ],
            data_files=[ctx.write_data("levers_predicted", table)],
        )
    ]
