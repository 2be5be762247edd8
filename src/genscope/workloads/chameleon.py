"""Chameleon (7B, 34B): early-fusion mixed-modal decoder, as Lee et al. (arXiv 2410.00215) run it.

Two tasks, two workload names (each has its own task, components and defaults):

* ``chameleon`` — text-to-image (T-I): a short text prompt, then 1024 image tokens sampled one
  per KV-cache decode step with classifier-free guidance (conditional and unconditional prompts
  batched, so batch 2 per image; CFG scale 6, temperature 1, top-p 0.9 as in Lee et al.), then a
  VQ decoder turns the 32x32 token grid into a 512x512 image.
* ``chameleon-i2t`` — image-to-text (I-T, captioning): the image is tokenized by Chameleon's VQ
  encoder into 1024 tokens, the ~1030-token prompt (text + <boi> + 1024 image tokens + <eoi>) is
  prefilled, then 30 text tokens are decoded greedily.

Sampling uses ``model.model`` + ``lm_head`` directly: the HF forward masks image-token logits,
which is right for text generation and wrong for T-I. Image tokens are a fixed set of 8192 BPE ids;
``lut`` maps a VQ code to its BPE id (from the vocabulary map when it lists the ``IMGIMG`` tokens,
as the tiny config does; otherwise ids 4..8195, where Chameleon's tokenizer keeps them).
HF ships no Chameleon VQ *decoder*: the aMUSEd VQ-GAN (``configs/muse/vqvae.json``; 8192 codes,
f=16, so 32x32 tokens decode to 512x512 like Chameleon's) stands in for it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.errors import UserError
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import ComponentConfig, kv_cache, load_component_config
from genscope.workloads.llama import decoder_cache, generate_causal, greedy, prompt_ids

CFG_SCALE = 6.0
TOP_P = 0.9
TEMPERATURE = 1.0
#: Chameleon's image-token BPE ids start here (tokens 4..8195 are IMGIMG*) when the shipped
#: vocabulary map does not list them (the full configs keep only "<image>").
IMAGE_BPE_OFFSET = 4


def image_token_lut(model: nn.Module, device: str | torch.device) -> torch.Tensor:
    """VQ code -> BPE id, as a tensor on ``device`` (built outside the trace)."""
    mapping = model.model.vocabulary_mapping
    codes = model.config.vq_config.num_embeddings
    if mapping.image_tokens:
        lut = mapping.img2bpe_mapping_tensor.long()
    else:
        lut = torch.arange(IMAGE_BPE_OFFSET, IMAGE_BPE_OFFSET + codes)
    return lut[:codes].to(device)


def image_grid(model: nn.Module) -> int:
    """Side of the VQ token grid: image resolution / the encoder's downsampling."""
    vq = model.config.vq_config
    return vq.resolution // 2 ** (len(vq.channel_multiplier) - 1)


class _Chameleon(Workload):
    family = "autoregressive"
    config_dir = "chameleon"
    variant_components = ("model",)
    variants = ("7b", "34b")
    default_variant = "7b"

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("model", "joint")  # one sequence mixing text and image tokens
        axes.add("vq_decoder", "spatial")
        return axes

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {"lut": image_token_lut(models["model"], s.torch_device)}

    @staticmethod
    def forward_fn(model: nn.Module) -> Any:
        def forward(ids: torch.Tensor, cache: Any) -> torch.Tensor:
            hidden = model.model(input_ids=ids, **kv_cache(model.model, cache), use_cache=True)
            return model.lm_head(hidden.last_hidden_state[:, -1:])[:, -1]

        return forward


class ChameleonT2I(_Chameleon):
    name = "chameleon"
    task = "tti"
    description = (
        "Chameleon (7B / 34B) text-to-image: 1024 image tokens, one per KV-cache decode step, "
        "CFG; + VQ image decoder"
    )
    components = {"model": "model", "vq_decoder": "vqvae"}
    defaults = {
        # Lee et al.'s T-I prompts (COCO captions) average 13.96 tokens; CFG on, as they run it.
        "full": {"cfg": True, "prompt_len": 14},
        "tiny": {"cfg": True, "prompt_len": 8},
    }

    def component_config(self, component: str, variant: str | None) -> ComponentConfig:
        if component == "vq_decoder":  # stand-in, see the module docstring
            return load_component_config("muse", "vqvae")
        return super().component_config(component, variant)

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model, vq = built.models["model"], built.models["vq_decoder"]
        lut: torch.Tensor = built.extras["lut"]
        grid = image_grid(model)
        rows = s.batch * (2 if s.cfg else 1)

        def sample(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = logits.index_select(-1, lut)  # image tokens only
            if s.cfg:
                cond, uncond = logits.chunk(2)
                logits = uncond + CFG_SCALE * (cond - uncond)
            probs = (logits / TEMPERATURE).softmax(dim=-1)
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > TOP_P  # top-p (nucleus)
            pick = torch.multinomial(sorted_probs.masked_fill(outside, 0.0), 1)
            code = order.gather(-1, pick)  # (batch, 1)
            ids = lut[code]
            return code[:, 0], torch.cat([ids, ids]) if s.cfg else ids

        with run.phase("model", "prefill", step=0):
            # conditional prompts, then unconditional ones (same length), each ending in <boi>
            prompt = prompt_ids(rows, s.prompt_len, model.config.vocab_size, s.torch_device)  # type: ignore[arg-type]
        codes, _ = generate_causal(
            run,
            component="model",
            forward=self.forward_fn(model),
            sample=sample,
            prompt=prompt,
            new_tokens=grid * grid,
            batch=s.batch,
            device=s.torch_device,
            fresh_cache=decoder_cache(model.config, rows, s.torch_dtype, s.torch_device),
        )
        with run.phase("vq_decoder", "decode_image"):
            shape = (s.batch, grid, grid, vq.config.latent_channels)
            image = vq.decode(codes.view(s.batch, grid, grid), force_not_quantize=True, shape=shape)
            return image.sample


class ChameleonI2T(_Chameleon):
    name = "chameleon-i2t"
    task = "i2t"
    description = (
        "Chameleon (7B / 34B) image-to-text: VQ image tokenizer, ~1030-token mixed prompt, "
        "30 greedy text tokens"
    )
    components = {"model": "model"}
    defaults = {
        # Lee et al. (COCO / Flickr30k captioning): 1030 input tokens (1024 image), 30 output.
        "full": {"prompt_len": 1030, "new_tokens": 30},
        "tiny": {"prompt_len": 22, "new_tokens": 6},  # 16 image tokens (4x4 grid) + 6
    }

    def validate(self, s: Settings) -> None:
        super().validate(s)
        need = image_grid_from_config(self, s) ** 2 + 2
        if s.prompt_len is not None and s.prompt_len < need:
            raise UserError(
                f"{self.name}: --prompt-len must be >= {need} (the image's tokens + <boi>/<eoi>); "
                f"got {s.prompt_len}"
            )

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model = built.models["model"]
        lut: torch.Tensor = built.extras["lut"]
        vq = model.config.vq_config
        n_image = image_grid(model) ** 2
        text = s.prompt_len - n_image - 2  # type: ignore[operator]
        dev = s.torch_device

        with run.phase("model", "encode_image"):
            pixels = torch.zeros(
                (s.batch, vq.in_channels, vq.resolution, vq.resolution),
                dtype=s.torch_dtype,
                device=dev,
            )
            codes = model.model.vqmodel.encode(pixels).image_tokens.view(s.batch, n_image)
            image_ids = lut[codes]  # HF does this lookup on the host (convert_img2bpe)
        with run.phase("model", "prefill", step=0):
            ids = prompt_ids(s.batch, text + 2, model.config.vocab_size, dev)
            # text, <boi>, the image's tokens, <eoi>
            prompt = torch.cat([ids[:, : text + 1], image_ids, ids[:, text + 1 :]], dim=1)

        base = self.forward_fn(model)

        def forward(ids: torch.Tensor, cache: Any) -> torch.Tensor:
            logits = base(ids, cache)
            return logits.index_fill(-1, lut, torch.finfo(logits.dtype).min)  # text only

        tokens, _ = generate_causal(
            run,
            component="model",
            forward=forward,
            sample=greedy,
            prompt=prompt,
            new_tokens=s.new_tokens,  # type: ignore[arg-type]
            batch=s.batch,
            device=dev,
            fresh_cache=decoder_cache(model.config, s.batch, s.torch_dtype, dev),
        )
        return tokens


def image_grid_from_config(wl: Workload, s: Settings) -> int:
    """Token-grid side from the shipped config, without building the model."""
    vq = wl.component_config("model", s.variant).config(s.size)["vq_config"]
    return vq["resolution"] // 2 ** (len(vq["channel_multiplier"]) - 1)
