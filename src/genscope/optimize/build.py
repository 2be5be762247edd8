"""Build the baseline target of a workload: fp32, math attention, eager (+ dynamic KV cache).

Only the component the loop spends its time in is built: the UNet for a diffusion denoise step
(the text context is a seeded random tensor of the encoder's output shape), the decoder LM for
autoregressive decoding. Sizes:

* ``tiny``: the workload's shipped tiny config (tests, quick looks);
* ``small``: autoregressive models only — the published architecture (real vocabulary, head
  dimension 128, the published MLP ratio) at 1024 hidden and 8 layers, so a decode loop with
  real-sized embeddings and LM head runs in minutes on a CPU (:data:`SMALL`);
* ``full``: the published size with real (random) weights, if it fits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genscope.errors import UserError, choices_error
from genscope.machine.memory import available_bytes, human_bytes
from genscope.optimize.decode_target import DecodeTarget
from genscope.optimize.targets import DenoiseTarget, Target
from genscope.workloads.base import Settings, Workload
from genscope.workloads.chameleon import image_grid, image_token_lut
from genscope.workloads.components import build_component, count_params
from genscope.workloads.registry import get_workload

#: Autoregressive "small" sizes: published vocabulary and head geometry, fewer/narrower layers.
SMALL: dict[str, dict[str, Any]] = {
    "chameleon": {
        "hidden_size": 1024,
        "intermediate_size": 2752,  # 11008/4096 of Chameleon-7B, scaled to 1024
        "num_hidden_layers": 8,
        "num_attention_heads": 8,  # head dim 128, as in the 7B
        "num_key_value_heads": 8,
    },
    "llama": {
        "hidden_size": 1024,
        "intermediate_size": 2752,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
    },
}
#: The loop each supported workload optimizes.
SUPPORTED: dict[str, str] = {"sd15": "denoise", "chameleon": "decode", "llama": "decode"}
SIZES = ("tiny", "small", "full")


@dataclass(frozen=True)
class TargetSpec:
    """What the user asked for; ``None`` means the workload's default for the size."""

    workload: str
    size: str = "tiny"
    res: tuple[int, int] | None = None
    steps: int | None = None
    prompt_len: int | None = None
    new_tokens: int | None = None
    batch: int = 1
    device: str = "cpu"


def resolve(name: str) -> Workload:
    if name not in SUPPORTED:
        get_workload(name)  # unknown names: the registry's error names every workload
        raise choices_error("workload for optimize", name, list(SUPPORTED))
    return get_workload(name)


def sizes_for(name: str) -> tuple[str, ...]:
    return SIZES if name in SMALL else ("tiny", "full")


def build_target(spec: TargetSpec) -> Target:
    wl = resolve(spec.workload)
    if spec.size not in sizes_for(spec.workload):
        sizes = sizes_for(spec.workload)
        raise choices_error(f"size for optimize {spec.workload}", spec.size, sizes)
    if SUPPORTED[spec.workload] == "denoise":
        return _denoise_target(wl, spec)
    return _decode_target(wl, spec)


def _fits(params: int, device: str, what: str) -> None:

    need = params * 4 * 1.3  # fp32 weights + activations/workspace headroom
    have, source = available_bytes(device)
    if need > have:
        raise UserError(
            f"{what}: ~{human_bytes(need)} needed in fp32, {human_bytes(have)} available "
            f"({source}); use --size tiny{' or small' if 'small' in what else ''}"
        )


# --------------------------------------------------------------------------- diffusion
def _denoise_target(wl: Workload, spec: TargetSpec) -> DenoiseTarget:
    size = spec.size
    settings = wl.resolve(
        Settings(size=size, res=spec.res, steps=spec.steps or 1, batch=spec.batch)  # type: ignore[arg-type]
    )
    cfg = wl.component_config("unet", settings.variant)
    if size == "full" and cfg.published_params:
        _fits(cfg.published_params, spec.device, f"{wl.name} full UNet")
    unet = build_component(cfg, size, device=spec.device)  # type: ignore[arg-type]
    h, w = settings.res  # type: ignore[misc]
    gen = torch.Generator().manual_seed(0)
    shape = (settings.batch, unet.config.in_channels, h // wl.res_factor, w // wl.res_factor)
    latents = torch.randn(shape, generator=gen)
    rows = settings.batch * (2 if settings.cfg else 1)
    context = torch.randn((rows, 77, unet.config.cross_attention_dim), generator=gen)
    scheduler = wl.extras({"unet": unet}, settings)["scheduler"]
    return DenoiseTarget(
        workload=wl,
        device=spec.device,
        unet=unet,
        latents=latents,
        context=context,
        scheduler=scheduler,
        steps=settings.steps or 1,
        cfg=bool(settings.cfg),
        res=(h, w),
        notes=[
            f"UNet {count_params(unet) / 1e6:,.1f}M params ({size}), random weights; text context "
            "is a seeded N(0,1) tensor of the text encoder's output shape (77 tokens)"
        ],
    )


# --------------------------------------------------------------------------- autoregressive
def _decode_target(wl: Workload, spec: TargetSpec) -> DecodeTarget:
    base_size = "tiny" if spec.size == "tiny" else "full"
    settings = wl.resolve(
        Settings(
            size=base_size,  # type: ignore[arg-type]
            prompt_len=spec.prompt_len,
            # Chameleon T-I always decodes its token grid; --new-tokens shortens it here
            new_tokens=spec.new_tokens if "new_tokens" in wl.options else None,
            batch=spec.batch,
        )
    )
    cfg = wl.component_config("model", settings.variant)
    overrides = SMALL[wl.name] if spec.size == "small" else None
    if spec.size == "full" and cfg.published_params:
        _fits(cfg.published_params, spec.device, f"{wl.name} {settings.variant} full")
    model = build_component(cfg, base_size, device=spec.device, overrides=overrides)  # type: ignore[arg-type]
    vocab, cfg_on, n_new, note = None, False, settings.new_tokens, ""
    if wl.name == "chameleon":
        vocab = image_token_lut(model, spec.device)
        cfg_on = bool(settings.cfg)
        n_new = spec.new_tokens or image_grid(model) ** 2
        note = f"{vocab.numel()} image tokens sampled"
    layers = model.config.num_hidden_layers
    target = DecodeTarget(
        workload=wl,
        device=spec.device,
        model=model,
        vocab=vocab,
        prompt_len=int(settings.prompt_len or 8),
        new_tokens=int(n_new or 16),
        batch=settings.batch,
        cfg=cfg_on,
        size_note=(
            f"{spec.size}: {layers} layers, hidden {model.config.hidden_size}, "
            f"vocab {model.config.vocab_size}, {count_params(model) / 1e6:,.0f}M params"
            + (f"; {note}" if note else "")
        ),
        notes=["random weights; greedy decoding so every stage is comparable token for token"],
    )
    return target
