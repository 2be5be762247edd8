"""Llama 2 (7B, 70B) and Code Llama 34B: the reference LLM — prefill over the prompt, then
KV-cache decode steps.

Phases follow Lee et al. (arXiv 2410.00215): step 0 is ``prefill`` (the whole prompt in one
forward, which also yields the first new token), steps ``1 .. new_tokens-1`` are ``decode`` (one
token each against the KV cache, so decode step ``i`` attends over ``prompt_len + i`` keys).
``new_tokens`` counts generated tokens, as ``max_new_tokens`` does in transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.affine_decode import DecodeLoop, LoopReport, filled_cache
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import kv_cache

#: logits (rows, vocab) of the last position -> (tokens kept (batch,), next input ids (rows, 1))
Sampler = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: (input ids (rows, n), cache) -> logits of the last position (rows, vocab)
Forward = Callable[[torch.Tensor, Any], torch.Tensor]


def prompt_ids(rows: int, length: int, vocab: int, device: str | torch.device) -> torch.Tensor:
    """Deterministic stand-in token ids (values only matter on CPU)."""
    return torch.arange(rows * length, device=device).remainder(vocab).reshape(rows, length)


def decoder_cache(config: Any, rows: int, dtype: torch.dtype, device: str) -> Callable[[int], Any]:
    """``length -> DynamicCache`` shaped like a Llama-style decoder's (GQA-aware)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return lambda n: filled_cache(
        config.num_hidden_layers, (rows, kv_heads, n, head_dim), dtype, device
    )


def greedy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tok = logits.argmax(dim=-1)
    return tok, tok[:, None]


@dataclass
class _State:
    cache: Any
    next_ids: torch.Tensor


def generate_causal(
    run: Runner,
    *,
    component: str,
    forward: Forward,
    sample: Sampler,
    prompt: torch.Tensor,
    new_tokens: int,
    batch: int,
    device: str,
    fresh_cache: Callable[[int], Any] | None = None,
) -> tuple[torch.Tensor, LoopReport]:
    """Prefill (step 0) + decode steps 1..new_tokens-1 with a DynamicCache.

    Returns the generated tokens ``(batch, new_tokens)`` — written into a buffer allocated up
    front, so its shape never depends on how the loop was captured — and how it was captured.
    ``fresh_cache(length)`` builds a cache holding ``length`` positions for the probe of
    :class:`~genscope.workloads.affine_decode.DecodeLoop`; by default a prefill of that length.
    """
    rows, length = prompt.shape
    with run.phase(component, "prefill", step=0):
        tokens = torch.empty((batch, new_tokens), dtype=torch.long, device=device)
        state = _State(DynamicCache(), prompt)
        tok, state.next_ids = sample(forward(prompt, state.cache))
        tokens[:, 0] = tok

    def step(i: int, st: _State) -> None:
        tok, st.next_ids = sample(forward(st.next_ids, st.cache))
        tokens[:, i] = tok

    def prefilled(n: int) -> Any:
        cache = DynamicCache()
        forward(prompt.new_zeros((rows, n)), cache)
        return cache

    def fresh(i: int) -> _State:  # the cache as it is before step i: prompt + i - 1 tokens
        return _State((fresh_cache or prefilled)(length + i - 1), prompt.new_zeros((rows, 1)))

    loop = DecodeLoop(run, component, step, fresh, device)
    report = loop(range(1, new_tokens), state)
    del state
    return tokens, report


class Llama(Workload):
    name = "llama"
    task = "t2t"
    family = "autoregressive"
    description = "Llama 2 (7B / 70B), Code Llama 34B: prefill + KV-cache decode, the reference LLM"
    components = {"model": "model"}
    variant_components = ("model",)
    variants = ("7b", "34b", "70b")
    default_variant = "7b"
    defaults = {
        "full": {"prompt_len": 512, "new_tokens": 128},
        "tiny": {"prompt_len": 16, "new_tokens": 8},
    }

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("model", "text")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model = built.models["model"]

        def forward(ids: torch.Tensor, cache: Any) -> torch.Tensor:
            out = model(input_ids=ids, **kv_cache(model, cache), use_cache=True, logits_to_keep=1)
            return out.logits[:, -1]

        with run.phase("model", "prefill", step=0):
            prompt = prompt_ids(s.batch, s.prompt_len, model.config.vocab_size, s.torch_device)  # type: ignore[arg-type]
        tokens, _ = generate_causal(
            run,
            component="model",
            forward=forward,
            sample=greedy,
            prompt=prompt,
            new_tokens=s.new_tokens,  # type: ignore[arg-type]
            batch=s.batch,
            device=s.torch_device,
            fresh_cache=decoder_cache(model.config, s.batch, s.torch_dtype, s.torch_device),
        )
        return tokens
