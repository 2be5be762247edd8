"""Phenaki (Villegas et al., ICLR 2023): T5 text encoder -> MaskGIT over video tokens -> C-ViViT.

* ``text_encoder``: T5-XXL encoder (the stand-in for Phenaki's T5X embeddings) over the prompt;
  with CFG the conditional and an empty prompt run as one batch of 2.
* ``transformer``: a bidirectional MaskGIT transformer over all video tokens at once
  (``latent frames x 16 x 16``; 11 frames -> 6 latent frames -> 1536 tokens), cross-attending to
  the text, unmasked iteratively with the MaskGIT update of :func:`genscope.workloads.muse.
  unmask_step`; steps 0..N-2 are identical (fixed token grid), the last is traced apart.
* ``tokenizer_decoder``: the C-ViViT decoder (causal temporal transformer, then spatial
  transformer, then linear unpatching) turns the token grid into 128x128 frames.

Defaults: 11 frames (the C-ViViT config's 1 + 5 x 2-frame tubelets, 6 latent frames), 12
unmasking steps (MaskGIT's default schedule length; Phenaki's own step count was not retrieved),
CFG on, a 16-token prompt.
"""

from __future__ import annotations

import math

import torch

from genscope.capture.context import AxisRules, Runner
from genscope.errors import UserError
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.llama import prompt_ids
from genscope.workloads.muse import sampling_generator, unmask_step, unmasking_loop

GUIDANCE_SCALE = 12.0  # value does not change the trace


class Phenaki(Workload):
    name = "phenaki"
    task = "ttv"
    family = "masked-token"
    description = (
        "Phenaki: T5-XXL + bidirectional MaskGIT transformer over C-ViViT video tokens "
        "(iterative unmasking, CFG) + causal C-ViViT decoder"
    )
    components = {
        "text_encoder": "text_encoder",
        "transformer": "transformer",
        "tokenizer_decoder": "tokenizer_decoder",
    }
    defaults = {
        "full": {"frames": 11, "steps": 12, "cfg": True, "prompt_len": 16},
        "tiny": {"frames": 5, "steps": 3, "cfg": True, "prompt_len": 8},
    }

    def validate(self, s: Settings) -> None:
        super().validate(s)
        if s.frames is None:
            return
        cfg = self.component_config("tokenizer_decoder", s.variant).config(s.size)
        latent = 1 + math.ceil((s.frames - 1) / cfg["temporal_patch_size"])
        if latent > cfg["max_latent_frames"]:
            most = 1 + (cfg["max_latent_frames"] - 1) * cfg["temporal_patch_size"]
            raise UserError(f"phenaki: --frames must be <= {most} (got {s.frames})")

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("transformer", "joint")  # one sequence over all frames' tokens
        axes.add(
            "tokenizer_decoder",
            "spatial",
            [(r"temporal_attn", "temporal"), (r"spatial_attn", "spatial")],
        )
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder = built.models["text_encoder"]
        transformer = built.models["transformer"]
        decoder = built.models["tokenizer_decoder"]
        dev = s.torch_device
        rows = s.batch * (2 if s.cfg else 1)
        latent = decoder.latent_frames(s.frames)
        per_frame = transformer.tokens_per_frame
        mask_id = transformer.mask_token_id
        generator = sampling_generator(dev)

        with run.phase("text_encoder", "encode"):
            ids = prompt_ids(rows, s.prompt_len, encoder.config.vocab_size, dev)  # type: ignore[arg-type]
            text = encoder(input_ids=ids).last_hidden_state
            tokens = torch.full(
                (s.batch, latent * per_frame), mask_id, dtype=torch.long, device=dev
            )

        def body(i: int) -> None:
            nonlocal tokens
            logits = transformer(torch.cat([tokens, tokens]) if s.cfg else tokens, text)
            if s.cfg:
                cond, uncond = logits.chunk(2)
                logits = uncond + GUIDANCE_SCALE * (cond - uncond)
            tokens = unmask_step(logits, tokens, i, s.steps, mask_id, generator)  # type: ignore[arg-type]

        unmasking_loop(run, "transformer", s.steps, body)  # type: ignore[arg-type]
        with run.phase("tokenizer_decoder", "decode_video"):
            side = decoder.grid
            return decoder(tokens.view(s.batch, latent, side, side))
