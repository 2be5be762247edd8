"""Parti (Yu et al. 2022, arXiv 2206.10789): autoregressive encoder-decoder text-to-image.

The text encoder runs once over the prompt; the decoder then emits the 32x32 = 1024 ViT-VQGAN
image tokens one per step against a KV cache (cross-attention keys/values of the text are
computed at step 0 and cached), and a VQ decoder turns the token grid into an image.

* Classifier-free guidance as Parti uses it: the conditional and an unconditional (empty-text)
  prompt run as one batch of 2 through encoder and decoder, and each token is sampled from
  ``uncond + scale * (cond - uncond)`` of the logits — so CFG doubles the batch of every step.
* Sampling is restricted to the 8192 image-code logits of the shared 24,192-entry vocabulary
  (16,000 text pieces first, then the image codes); a sampled code ``c`` is fed back as id
  ``16000 + c``.
* Step labels follow Lee et al.: step 0 (``prefill``) feeds the decoder-start token and yields
  image token 1; ``decode`` steps 1..1023 yield the rest, so decode step ``i`` attends over
  ``1 + i`` decoder positions.
* The VQ decoder is a stand-in (see ``configs/parti/vqgan.json``): aMUSEd's f=16 VQ-GAN, so the
  32x32 grid decodes to 512x512 rather than Parti's 256x256.

Default variant: ``20b``, Parti's flagship — every headline result and sample in the paper is
the 20B model's; 350M/750M/3B are its scaling ablation (``--variant``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, EncoderDecoderCache

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.affine_decode import DecodeLoop, filled_cache
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import kv_cache
from genscope.workloads.llama import prompt_ids

#: Guidance scale; its value does not change the trace (Parti's exact setting is not stated
#: in the shipped sources).
GUIDANCE_SCALE = 5.0
#: VQ token grid side per size: Parti's 32x32 (1024 tokens); 4x4 for tiny (fast CPU runs).
GRID = {"full": 32, "tiny": 4}


@dataclass
class _State:
    cache: EncoderDecoderCache
    next_ids: torch.Tensor


class Parti(Workload):
    name = "parti"
    task = "tti"
    family = "encoder-decoder"
    description = (
        "Parti (350M-20B): T5-style encoder-decoder emitting 1024 ViT-VQGAN tokens with a KV "
        "cache, CFG; + VQ image decoder"
    )
    components = {"transformer": "transformer", "vqgan": "vqgan"}
    variant_components = ("transformer",)
    variants = ("350m", "750m", "3b", "20b")
    default_variant = "20b"
    defaults = {
        # PartiPrompts average ~13 tokens (Lee et al.'s statistics, papers.md 2.3); CFG on.
        "full": {"cfg": True, "prompt_len": 16},
        "tiny": {"cfg": True, "prompt_len": 8},
    }

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("transformer", "text")  # 1-D token sequences (text, then image tokens)
        axes.add("vqgan", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model, vq = built.models["transformer"], built.models["vqgan"]
        cfg, dev = model.config, s.torch_device
        codes = vq.config.num_vq_embeddings
        offset = cfg.vocab_size - codes  # image codes follow the text vocabulary
        grid = GRID[s.size]
        rows = s.batch * (2 if s.cfg else 1)

        with run.phase("transformer", "encode"):
            text = prompt_ids(rows, s.prompt_len, offset, dev)  # type: ignore[arg-type]
            encoded = model.encoder(input_ids=text).last_hidden_state

        def forward(ids: torch.Tensor, cache: EncoderDecoderCache) -> torch.Tensor:
            out = model(
                encoder_outputs=(encoded,),
                decoder_input_ids=ids,
                **kv_cache(model, cache),
                use_cache=True,
            )
            return out.logits[:, -1, offset:]  # image codes only

        def sample(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if s.cfg:
                cond, uncond = logits.chunk(2)
                logits = uncond + GUIDANCE_SCALE * (cond - uncond)
            code = torch.multinomial(logits.softmax(dim=-1), 1)  # (batch, 1)
            ids = code + offset
            return code[:, 0], torch.cat([ids, ids]) if s.cfg else ids

        def new_cache() -> EncoderDecoderCache:
            return EncoderDecoderCache(DynamicCache(), DynamicCache())

        with run.phase("transformer", "prefill", step=0):
            tokens = torch.empty((s.batch, grid * grid), dtype=torch.long, device=dev)
            start = torch.full((rows, 1), cfg.decoder_start_token_id, dtype=torch.long, device=dev)
            state = _State(new_cache(), start)
            tok, state.next_ids = sample(forward(start, state.cache))
            tokens[:, 0] = tok

        def step(i: int, st: _State) -> None:
            tok, st.next_ids = sample(forward(st.next_ids, st.cache))
            tokens[:, i] = tok

        def fresh(i: int) -> _State:  # before step i the decoder has seen i positions
            shape = (rows, cfg.num_heads, i, cfg.d_kv)
            cross = (rows, cfg.num_heads, encoded.shape[1], cfg.d_kv)
            layers = cfg.num_decoder_layers
            cache = EncoderDecoderCache(
                filled_cache(layers, shape, s.torch_dtype, dev),
                filled_cache(layers, cross, s.torch_dtype, dev),
            )
            return _State(cache, start.new_zeros((rows, 1)))

        DecodeLoop(run, "transformer", step, fresh, dev)(range(1, grid * grid), state)
        del state
        with run.phase("vqgan", "decode_image"):
            shape = (s.batch, grid, grid, vq.config.latent_channels)
            image = vq.decode(
                tokens.view(s.batch, grid, grid), force_not_quantize=True, shape=shape
            )
            return image.sample
