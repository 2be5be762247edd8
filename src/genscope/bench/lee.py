"""``genscope bench lee``: Lee et al.'s stacked levers predicted on an A100 80GB, with no device.

The 8 Llama/Chameleon configurations and HSTU of :mod:`genscope.optimize.lee`, each at batch 1
and at its largest feasible batch, through the GPU time model; their geometric means beside the
paper's (papers.md §2.8–2.9). Analytic, so two runs print identical JSON.
"""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from genscope.console import err_console
from genscope.costmodel.hardware import get_hardware
from genscope.optimize.lee import CONFIGS, PAPER_GEOMEAN, PAPER_GEOMEAN_8, geomeans, predict_lee

#: Lee et al. ran on one A100 80 GB (papers.md §2.4).
HARDWARE = "a100-80g-sxm"
#: Configurations run two at a time (this project's machines have 2 cores).
WORKERS = 2
#: papers.md §2.8: geomean of the "+AutoQuant" bars at batch 1.
PAPER_GEOMEAN_BS1 = 2.14


def bench_lee() -> dict[str, Any]:
    """``{"hardware", "geomean_max_batch", "geomean_bs1", "paper_geomean_*", "rows"}``; the
    ``*_llama_chameleon`` means leave HSTU out."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("Lee et al. configurations", total=len(CONFIGS))

        def progress(label: str) -> None:
            bar.update(task, description=f"done: {label}", advance=1)

        table = predict_lee(get_hardware(HARDWARE), progress=progress, workers=WORKERS)
    return {
        "name": "lee",
        "hardware": HARDWARE,
        **{f"geomean_{k}": round(v, 4) for k, v in geomeans(table).items()},
        "paper_geomean_max_batch": round(PAPER_GEOMEAN, 4),
        "paper_geomean_max_batch_llama_chameleon": round(PAPER_GEOMEAN_8, 4),
        "paper_geomean_bs1": PAPER_GEOMEAN_BS1,
        "rows": table.round(4).to_dict(orient="records"),
    }
