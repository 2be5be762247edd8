"""Report section: Prefill vs decode composition of the autoregressive workloads."""

from __future__ import annotations

import pandas as pd

from genscope.analyses import decode
from genscope.report.context import ReportContext
from genscope.report.html import Section


def decode_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    ar = [n for n, r in flash_runs.items() if (r.events.phase == "decode").any()]
    shares = []
    panels = {}
    data_files = []
    for name in ar:
        ev = flash_runs[name].events
        comp = decode.step_composition(ev)
        kv = decode.kv_cache_bytes(ev)
        dec = ev[ev.phase == "decode"]
        t = (dec.predicted_s * dec["count"]).groupby(dec.category).sum()
        idle = (flash_runs[name].summary.get("predicted_idle") or {}).get("by_phase", {})
        shares.append(
            {
                "workload": name,
                "linear_share": t.get("linear", 0) / t.sum(),
                "attention_share": t.get("attention", 0) / t.sum(),
                # GPU time model only: the share of decode wall the GPU waits on the host
                "decode_idle_share": idle.get("decode", {}).get("host_bound_share"),
            }
        )
        panels[name] = (comp, kv)
        data_files += [ctx.write_data(f"decode_{name}", comp), ctx.write_data(f"kv_{name}", kv)]
    if not shares:
        return []
    table = pd.DataFrame(shares)
    llm = table[table.workload.isin(["llama", "chameleon"])]
    if len(llm):
        # both must lie in the paper's range: check the one farthest from its middle
        far = llm.linear_share.iloc[int((llm.linear_share - 0.5).abs().to_numpy().argmax())]
        ctx.find(
            "linear_llm",
            float(far),
            ", ".join(f"{r.workload} {r.linear_share:.0%}" for r in llm.itertuples()),
        )
    idle = table.dropna(subset=["decode_idle_share"])
    if len(idle):
        low = idle.loc[idle.decode_idle_share.idxmin()]
        ctx.find(
            "decode_idle",
            float(low.decode_idle_share),
            f"{low.decode_idle_share:.0%} of decode wall time idle ({low.workload}, the least)",
            ", ".join(f"{r.workload} {r.decode_idle_share:.0%}" for r in idle.itertuples())
            + " (batch 1, eager PyTorch: host timeline of the GPU time model)",
        )
    # one small-multiples figure for all decoding workloads
    return [
        Section(
            "decode",
            "Autoregressive decode: composition, KV-cache growth, linear vs attention",
            ctx.label,
            figures=[decode.plot_decode_grid(panels, f"Decode composition — {ctx.label}")],
            table=table,
            data_files=[ctx.write_data("decode_shares", table), *data_files],
        )
    ]
