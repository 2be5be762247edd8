"""SeamlessM4T v2 speech-to-text translation (S2TT) with beam search, as Lee et al. profile it.

The whole ``SeamlessM4Tv2Model`` is built (its published 2.3B); S2TT touches its conformer speech
encoder, text decoder and LM head:

1. ``speech_encoder`` (phase ``encode``): fbank features ``(batch, frames, 160)`` — 80-dim
   log-mel at 100 frames/s, stacked in pairs, so 50 frames per second of audio. The default 500
   frames (10 s) matches Lee et al.'s FLEURS mean of 492.8 encoder input frames; the adaptor's
   stride 8 leaves ~63 states (their mean: 62.1).
2. ``text_decoder`` with beam search (beam 5, fairseq2's default in Lee et al.'s runs): step 0
   (``prefill``) runs the decoder prompt ``</s> <tgt_lang>`` for all beams; each of the
   ``new_tokens - 1`` ``decode`` steps feeds one token per beam against the KV cache. Every step
   scores ``log_softmax`` + the running beam scores, keeps the top ``2 x beams`` continuations
   (as transformers does, so beams that end in ``</s>`` can be replaced), picks the ``beams``
   best unfinished ones, gathers their token histories and **reorders the KV cache** to them
   (``Cache.reorder_cache``: an ``index_select`` of every cached key/value tensor, self- and
   cross-attention). The reorder runs inside :class:`KVCacheReorder`, so its ops are
   categorized ``kv_reorder`` (Lee et al.'s KV_Cache_Reorder).

The loop is written out rather than calling ``generate``: ``generate``'s stopping checks read
tensor values, which ``meta`` tensors do not have, and the loop needs step labels. It runs a
fixed number of steps (Lee et al.'s S2TT mean is 34.68 decode steps, 36 output tokens), without
the finished-hypothesis bookkeeping or length penalty, which only affect which sequence is
returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.affine_decode import DecodeLoop, filled_cache
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import kv_cache

BEAMS = 5


class KVCacheReorder(nn.Module):
    """Beam search's KV-cache reorder, as a module so its ops are recognizable.

    ``genscope.costmodel.taxonomy`` labels the gathers that run directly inside a module whose
    class name contains ``CacheReorder`` as ``kv_reorder``.
    """

    def forward(self, cache: Any, beam_idx: torch.Tensor) -> Any:
        cache.reorder_cache(beam_idx)
        return cache


@dataclass
class _Beams:
    cache: EncoderDecoderCache
    next_ids: torch.Tensor  # (batch * beams, 1)
    scores: torch.Tensor  # (batch, beams) running log-probabilities
    sequences: torch.Tensor  # (batch, beams, decoder prompt + new tokens)


class Seamless(Workload):
    name = "seamless"
    task = "s2t"
    family = "encoder-decoder"
    description = (
        "SeamlessM4T v2 large, speech-to-text: conformer speech encoder + text decoder with "
        "beam search (beam 5), KV-cache reorder per step"
    )
    components = {"model": "model"}
    defaults = {
        # prompt_len = speech feature frames (50/s); new_tokens = generated text tokens
        "full": {"prompt_len": 500, "new_tokens": 35},
        "tiny": {"prompt_len": 64, "new_tokens": 6},
    }

    def build(self, s: Settings) -> Built:
        built = super().build(s)
        # The decoder's cross-attention lives at ``layers.N.cross_attention``, a path the capture's
        # self/cross hints do not know; the module's own flag is what the capture reads first.
        for path, module in built.models["model"].named_modules():
            if type(module).__name__ == "SeamlessM4Tv2Attention":
                module.is_cross_attention = path.endswith("cross_attention")
        return built

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        for component in ("model", "speech_encoder", "text_decoder"):
            axes.add(component, "text")  # 1-D sequences (speech frames, text tokens)
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model = built.models["model"]
        cfg, dev, dtype = model.config, s.torch_device, s.torch_dtype
        b, rows, vocab = s.batch, s.batch * BEAMS, cfg.vocab_size
        prompt = 2  # </s> <tgt_lang>
        total = prompt + s.new_tokens  # type: ignore[operator]
        reorder = KVCacheReorder()

        with run.phase("speech_encoder", "encode"):
            # feature_projection_input_dim: 160 = 80 mel bins x 2 stacked frames (full)
            dim = cfg.feature_projection_input_dim
            features = torch.zeros((b, s.prompt_len, dim), dtype=dtype, device=dev)
            encoded = model.speech_encoder(input_features=features).last_hidden_state
            encoded = encoded.repeat_interleave(BEAMS, dim=0)  # one copy per beam

        def forward(ids: torch.Tensor, cache: EncoderDecoderCache) -> torch.Tensor:
            out = model.text_decoder(
                input_ids=ids,
                encoder_hidden_states=encoded,
                **kv_cache(model.text_decoder, cache),
                use_cache=True,
            )
            return model.lm_head(out.last_hidden_state[:, -1:])[:, -1]

        def beam_step(i: int, st: _Beams) -> None:
            """Score, select and reorder after the decoder has produced position ``i``'s logits."""
            logits = forward(st.next_ids, st.cache)
            logp = F.log_softmax(logits.float(), dim=-1).view(b, BEAMS, vocab)
            logp = (logp + st.scores[:, :, None]).view(b, BEAMS * vocab)
            top_scores, top_idx = logp.topk(2 * BEAMS, dim=-1)  # keep 2x: some may end in </s>
            top_beam, top_tok = top_idx // vocab, top_idx % vocab
            alive = top_scores + (top_tok == cfg.eos_token_id).to(top_scores.dtype) * -1e9
            st.scores, keep = alive.topk(BEAMS, dim=-1)
            beam, tok = top_beam.gather(1, keep), top_tok.gather(1, keep)
            history = beam[:, :, None].expand(-1, -1, total)
            st.sequences = st.sequences.gather(1, history)
            st.sequences[:, :, prompt + i] = tok
            st.next_ids = tok.reshape(rows, 1)
            beam_idx = (beam + torch.arange(b, device=dev)[:, None] * BEAMS).reshape(rows)
            reorder(st.cache, beam_idx)

        with run.phase("text_decoder", "prefill", step=0):
            start = torch.full((rows, prompt), cfg.decoder_start_token_id, device=dev)
            start[:, 1] = vocab - 1  # stand-in for the __<tgt_lang>__ id (not in the config)
            sequences = torch.full((b, BEAMS, total), cfg.pad_token_id, device=dev)
            sequences[:, :, :prompt] = start.view(b, BEAMS, prompt)
            scores = torch.zeros((b, BEAMS), device=dev)
            scores[:, 1:] = -1e9  # beams start identical: expand only the first
            state = _Beams(
                EncoderDecoderCache(DynamicCache(), DynamicCache()), start, scores, sequences
            )
            beam_step(0, state)

        def fresh(i: int) -> _Beams:  # before step i the decoder has seen prompt + i - 1 tokens
            heads = cfg.decoder_attention_heads
            head_dim = cfg.hidden_size // heads
            layers = cfg.decoder_layers
            cache = EncoderDecoderCache(
                filled_cache(layers, (rows, heads, prompt + i - 1, head_dim), dtype, dev),
                filled_cache(layers, (rows, heads, encoded.shape[1], head_dim), dtype, dev),
            )
            return _Beams(cache, start[:, :1].clone(), scores.clone(), sequences.clone())

        DecodeLoop(run, "text_decoder", beam_step, fresh, dev)(range(1, s.new_tokens), state)  # type: ignore[arg-type]
        sequences = state.sequences  # (batch, beams, tokens), best-scoring beam first
        del state
        return sequences
