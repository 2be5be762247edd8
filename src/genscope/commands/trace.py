"""``genscope trace``: characterize one workload run and store it."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from genscope.commands import options
from genscope.commands._output import emit_json, err_console, out_console
from genscope.errors import UserError, choices_error


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def print_summary(result: dict) -> None:
    """Human-readable trace summary (stdout)."""
    out_console.print(
        f"[bold]{result['run_id']}[/]  {result['workload']} ({result['size']}, {result['mode']}, "
        f"{result['dtype']}, {result['settings']['attention']} attention) on {result['hardware']}"
    )
    params = ", ".join(f"{k} {v / 1e6:,.1f}M" for k, v in result["params"].items())
    out_console.print(f"params: {params}")
    if result.get("collapsed_steps"):
        steps = ", ".join(f"{p}: 1 traced x{n}" for p, n in result["collapsed_steps"].items())
        out_console.print(f"identical steps traced once and counted: {steps}")
    gpu = result.get("time_model", "roofline") != "roofline"
    model = "GPU time model: kernels + host timeline" if gpu else "analytic roofline"
    out_console.print(
        f"total: {_fmt(result['flops_total'], 'FLOP')}, {_fmt(result['bytes_total'], 'B')}, "
        f"predicted {result['predicted_s'] * 1e3:.2f} ms ({model})"
    )
    if gpu:
        out_console.print(
            f"kernels {result['kernel_s'] * 1e3:.2f} ms, device idle {result['idle_s'] * 1e3:.2f}"
            f" ms ({result['host_bound_share']:.1%} host-bound), roofline bound "
            f"{result['roofline_s'] * 1e3:.2f} ms"
        )
    table = Table("category", "FLOPs", "bytes", "time", "roofline", "share", title="by category")
    rows = sorted(result["by_category"].items(), key=lambda kv: -kv[1]["time_s"])
    for cat, v in rows:
        table.add_row(
            cat,
            _fmt(v["flops"], "FLOP"),
            _fmt(v["bytes"], "B"),
            f"{v['time_s'] * 1e3:.3f} ms",
            f"{v['roofline_s'] * 1e3:.3f} ms",
            f"{v['share']:.1%}",
        )
    out_console.print(table)
    seq = result["seq_len"]
    out_console.print(f"attention seq_len: min {seq['min']}, max {seq['max']}, {seq['distinct']}")
    if result.get("path"):
        out_console.print(f"stored: {result['path']}")


def print_measured_summary(result: dict) -> None:
    """Human-readable summary of a measured run (stdout); every number says where it is from."""
    label = result["measured_label"]
    out_console.print(
        f"[bold]{result['run_id']}[/]  {result['workload']} ({result['size']}, measured on "
        f"{result['device']}, {result['dtype']}, {result['settings']['attention']} attention, "
        f"{result['threads']} thread(s))"
    )
    w = result["wall_s"]
    out_console.print(
        f"{label}: end-to-end wall median {w['median'] * 1e3:.2f} ms "
        f"(min {w['min'] * 1e3:.2f}, max {w['max'] * 1e3:.2f}, spread {w['spread']:.1%}, "
        f"{w['repeats']} uninstrumented repeats after warm-up)"
    )
    pm = result["predicted_memory"]
    out_console.print(
        f"{label}: peak memory {_fmt(result['peak_memory_bytes'], 'B')} "
        f"({result['memory_source'].split(' (')[0]}; "
        f"{_fmt(result['peak_above_baseline_bytes'], 'B')} above the pre-run level); predicted "
        f"weights {_fmt(pm['weights_bytes'], 'B')} + activations "
        f"{_fmt(pm['activations_bytes'], 'B')}"
    )
    out_console.print(
        f"{label}, one profiled pass: wall {result['profiled_wall_s'] * 1e3:.2f} ms "
        f"(x{result['instrumentation_ratio']:.2f} of uninstrumented), op time "
        f"{result['measured_s'] * 1e3:.2f} ms, outside ops {result['overhead']['share']:.1%}"
    )
    out_console.print(
        f"analytic roofline on {result['hardware']}: {result['predicted_s'] * 1e3:.2f} ms"
    )
    table = Table(
        "category", "FLOPs", "predicted", "measured", "measured share", title="by category"
    )
    rows = sorted(result["by_category"].items(), key=lambda kv: -kv[1].get("measured_s", 0))
    for cat, v in rows:
        table.add_row(
            cat,
            _fmt(v["flops"], "FLOP"),
            f"{v['time_s'] * 1e3:.3f} ms",
            f"{v.get('measured_s', 0) * 1e3:.3f} ms",
            f"{v.get('measured_share', 0):.1%}",
        )
    out_console.print(table)
    phases = Table("phase", "wall", "op time", "outside ops", title=f"by phase ({label})")
    for phase, v in result["by_phase"].items():
        phases.add_row(
            phase,
            f"{v['wall_s'] * 1e3:.2f} ms",
            f"{v['op_s'] * 1e3:.2f} ms",
            f"{v['overhead_share']:.1%}",
        )
    out_console.print(phases)
    a = result["attribution"]
    out_console.print(
        f"attribution: {a['matched']} of {a['profiled_ops']} profiled ops matched to analytic "
        f"rows ({a['profiled_only']} profiled only, {a['analytic_only']} analytic only)"
    )
    if result.get("path"):
        out_console.print(f"stored: {result['path']}")


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_cmd(
        workload: options.Workload,
        size: str = typer.Option("full", help="full (published size, meta device) | tiny"),
        mode: str = typer.Option("analytic", help="analytic | measured"),
        hardware: str | None = typer.Option(
            None,
            help="Spec for the roofline (`genscope hardware`); default a100-80g-sxm, or "
            "<device>-local for --mode measured when `genscope calibrate` has run.",
        ),
        res: options.Res = None,
        frames: options.Frames = None,
        steps: options.Steps = None,
        batch: options.Batch = 1,
        cfg: options.Cfg = None,
        dtype: options.Dtype = "fp32",
        attention: options.Attention = "flash",
        variant: options.Variant = None,
        prompt_len: options.PromptLen = None,
        new_tokens: options.NewTokens = None,
        device: str | None = typer.Option(None, help="measured: cpu | cuda (default cpu)."),
        repeats: int | None = typer.Option(
            None, help="measured: uninstrumented timed passes for wall time (default 3)."
        ),
        warmup: int | None = typer.Option(
            None, help="measured: plain warm-up passes after the analytic pass (default 1)."
        ),
        threads: int | None = typer.Option(
            None, help="measured: torch intra-op threads (default: torch's setting)."
        ),
        profiled_passes: int | None = typer.Option(
            None, help="measured: profiled passes; >1 takes each op's median (default 1)."
        ),
        trace_out: str | None = typer.Option(
            None, "--trace-out", help="measured: write a Chrome/Perfetto trace JSON here."
        ),
        force: options.Force = False,
        json_out: options.Json = False,
    ) -> None:
        """Trace a workload: every aten op → op-event table → roofline → run store.

        ``--mode measured`` runs the real pipeline on this machine, records its ops (genscope's
        op observer on CPU, torch.profiler on CUDA) and fills ``measured_s`` (see README,
        "Measured mode").
        """
        from genscope.api import DEFAULT_HARDWARE, trace_workload

        if mode not in ("analytic", "measured"):
            raise choices_error("mode", mode, ["analytic", "measured"])
        measured_only = {
            "--device": device,
            "--repeats": repeats,
            "--warmup": warmup,
            "--threads": threads,
            "--profiled-passes": profiled_passes,
            "--trace-out": trace_out,
            "--force": force or None,
        }
        if mode == "analytic" and any(v is not None for v in measured_only.values()):
            given = ", ".join(k for k, v in measured_only.items() if v is not None)
            raise UserError(f"{given} only apply to --mode measured")
        settings = options.settings_from(locals())
        if mode == "measured":
            from genscope.measure.passes import PassPlan
            from genscope.measure.run import measure_workload

            def progress(msg: str) -> None:
                print(f"genscope: measured: {msg}", file=sys.stderr, flush=True)

            result = measure_workload(
                workload,
                settings,
                device=device or "cpu",
                plan=PassPlan(
                    repeats=3 if repeats is None else repeats,
                    warmup=1 if warmup is None else warmup,
                    profiled_passes=1 if profiled_passes is None else profiled_passes,
                ),
                hardware=hardware,
                trace_out=trace_out,
                force=force,
                threads=threads,
                progress=None if json_out else progress,  # --json: stderr only for errors
            ).to_json()
        else:
            with err_console.status(f"tracing {workload} ({size}, {mode})"):
                result = trace_workload(
                    workload, settings, hardware=hardware or DEFAULT_HARDWARE
                ).to_json()
        if json_out:
            emit_json(result)
        elif mode == "measured":
            print_measured_summary(result)
        else:
            print_summary(result)
