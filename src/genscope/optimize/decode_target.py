"""An autoregressive decode loop the decoding levers can reshape, gpt-fast style.

:class:`DecodeTarget` runs a transformers decoder-only ``*ForCausalLM`` /
``*ForConditionalGeneration`` (``.model`` body + ``.lm_head``) through its own short loop:

1. **prefill** the prompt (one forward over ``prompt_len`` tokens) → first token;
2. **decode** ``new_tokens - 1`` more greedy tokens, one KV-cache forward each.

For Chameleon text-to-image the sampler sees only the 8,192 image-token logits (``vocab``, the
VQ-code → BPE-id table) and classifier-free guidance combines a conditional and an unconditional
row per image (``cfg``): each image is 2 rows. Sampling is **greedy** (argmax), so every lever's
output can be compared token for token; the workload's own loop samples top-p.

Levers change the state this loop runs with:

* ``cache``: ``"dynamic"`` (transformers ``DynamicCache``, grown by concatenation every step: the
  baseline) or ``"static"`` (``StaticCache``, preallocated once for prompt + new tokens + drafts
  and reused across runs; writes go in place, so shapes never change and the step compiles to
  one graph);
* ``head``: the LM head module; the ``image_head`` lever swaps in a head holding only the
  image-token rows (T-I samples nothing else);
* ``draft_layers`` / ``draft_tokens``: **early-exit self-speculative decoding** (LayerSkip,
  Elhoushi et al. 2024): draft ``draft_tokens`` tokens greedily with the first ``draft_layers``
  layers + the final norm + the LM head, sharing the KV cache of those layers; verify all of them
  with one full-depth forward over ``draft_tokens + 1`` positions; keep the longest agreeing
  prefix plus the full model's next token, and roll the cache back to it. Greedy output is the
  full model's by construction; the acceptance rate is accepted / drafted tokens;
* ``batch``: images decoded together (throughput);
* ``compile``: the decode, draft and verify forwards are compiled (the prefill stays eager).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import DynamicCache, StaticCache

from genscope.optimize import deviation
from genscope.optimize.targets import Target
from genscope.workloads.components import kv_cache


@dataclass
class DecodeOutput:
    tokens: torch.Tensor  # (batch, new_tokens): sampled ids, in the restricted vocabulary if any
    drafted: int = 0
    accepted: int = 0
    #: per-step logits of image 0 (new_tokens, vocab), when asked for
    logits: torch.Tensor | None = None


def early_exit_body(body: nn.Module, layers: int) -> nn.Module:
    """A view of a decoder body that runs only its first ``layers`` layers (then its final norm).

    Parameters and the layers' cache indices are shared with ``body``: the draft reads and
    writes the same KV-cache layers the full model uses for those depths.
    """
    draft = copy.copy(body)
    draft._modules = dict(body._modules)
    draft._modules["layers"] = nn.ModuleList(list(body.layers)[:layers])
    return draft


def cache_length(cache: Any) -> int:
    return int(cache.get_seq_length())


def rollback(cache: Any, length: int) -> None:
    """Forget every cached position at or after ``length``, in every layer."""
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", False):
            continue
        if isinstance(getattr(layer, "cumulative_length", None), torch.Tensor):  # static
            layer.cumulative_length.fill_(length)
        elif layer.keys is not None and layer.keys.shape[-2] > length:  # dynamic
            layer.keys = layer.keys[..., :length, :]
            layer.values = layer.values[..., :length, :]


@dataclass
class DecodeTarget(Target):
    kind: ClassVar[str] = "decode"
    output_kind: ClassVar[str] = "tokens"

    model: nn.Module = None  # type: ignore[assignment]  # has .model (body) and .lm_head
    #: a replacement LM head (the image_head lever); None: the model's own ``lm_head``
    head: nn.Module | None = None
    vocab: torch.Tensor | None = None  # sampled ids -> model ids (image tokens); None = all
    prompt_len: int = 14
    new_tokens: int = 64
    batch: int = 1
    cfg: bool = False
    cfg_scale: float = 6.0
    cache: str = "dynamic"
    draft_layers: int | None = None
    draft_tokens: int = 3
    size_note: str = ""
    _static: Any = field(default=None, repr=False)

    # -------------------------------------------------------------- state
    def modules(self) -> dict[str, nn.Module]:
        mods = {"model": self.model}
        if self.head is not None:
            mods["head"] = self.head
        return mods

    @property
    def lm_head(self) -> nn.Module:
        return self.head if self.head is not None else self.model.lm_head

    @property
    def rows(self) -> int:
        return self.batch * (2 if self.cfg else 1)

    def work_items(self) -> tuple[int, str]:
        return self.batch * self.new_tokens, "tokens"

    def prompt(self) -> torch.Tensor:
        """Rows: conditional prompts of images 0..B-1, then their unconditional prompts.

        Image ``b``'s rows do not depend on the batch size, so image 0 is the same sequence in
        every stage and its tokens can be compared across a batching lever.
        """
        vocab = self.model.config.vocab_size
        base = torch.arange(self.prompt_len)
        conds = [(base + 2 * b * self.prompt_len) % vocab for b in range(self.batch)]
        rows = conds
        if self.cfg:
            unconds = [(base + (2 * b + 1) * self.prompt_len) % vocab for b in range(self.batch)]
            rows = conds + unconds
        return torch.stack(rows).to(self.device)

    def _new_cache(self) -> Any:
        if self.cache == "dynamic":
            return DynamicCache(config=self.model.config)
        if self._static is None:
            raise RuntimeError("static cache not allocated; call prepare()")
        rollback(self._static, 0)  # stale entries are masked out and overwritten
        return self._static

    def max_cache_len(self) -> int:
        return self.prompt_len + self.new_tokens + self.draft_tokens + 2

    # -------------------------------------------------------------- forward pieces
    def _scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden (rows, n, H) → the sampler's logits (batch, n, V), fp32, after CFG."""
        logits = self.lm_head(hidden)
        if self.vocab is not None and logits.shape[-1] != self.vocab.numel():
            logits = logits.index_select(-1, self.vocab)
        logits = logits.float()
        if self.cfg:
            cond, uncond = logits.chunk(2)
            logits = uncond + self.cfg_scale * (cond - uncond)
        return logits

    def _forward_fn(self, body: nn.Module) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        def forward(ids: torch.Tensor, cache: Any) -> torch.Tensor:
            hidden = body(input_ids=ids, **kv_cache(body, cache), use_cache=True)
            hidden = hidden.last_hidden_state
            return self._scores(hidden)

        return forward

    def _ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sampled tokens (batch, n) → model input ids (rows, n)."""
        ids = self.vocab[tokens] if self.vocab is not None else tokens
        return torch.cat([ids, ids]) if self.cfg else ids

    # -------------------------------------------------------------- the loop
    def prepare(self) -> Callable[[], DecodeOutput]:
        if self.compile is not None and self.cache == "dynamic":
            # the KV length changes every step: let dynamo mark it dynamic after one recompile
            self.compile = dataclasses.replace(self.compile, dynamic=None)
        body = self.model.model
        full = self._forward_fn(body)
        prefill = full  # eager: one call per run, and its shape differs from every step's
        step = self.compiled(full) if self.compile else full
        draft = None
        if self.draft_layers is not None:
            d = self._forward_fn(early_exit_body(body, self.draft_layers))
            draft = self.compiled(d) if self.compile else d
        if self.cache == "static":
            self._static = StaticCache(config=self.model.config, max_cache_len=self.max_cache_len())
        else:
            self._static = None

        def run(force: torch.Tensor | None = None, keep_logits: bool = False) -> DecodeOutput:
            with torch.inference_mode(), self.attention_mode():
                return self._generate(prefill, step, draft, force, keep_logits)

        return run

    def _generate(
        self,
        prefill: Callable,
        step: Callable,
        draft: Callable | None,
        force: torch.Tensor | None,
        keep_logits: bool,
    ) -> DecodeOutput:
        n_new, batch = self.new_tokens, self.batch
        cache = self._new_cache()
        tokens = torch.empty((batch, n_new), dtype=torch.long, device=self.device)
        logs: list[torch.Tensor] = []
        scores = prefill(self.prompt(), cache)[:, -1]
        tokens[:, 0] = force[:, 0] if force is not None else scores.argmax(-1)
        if keep_logits:
            logs.append(scores[0:1])
        out = DecodeOutput(tokens)
        if draft is None:
            for i in range(1, n_new):
                scores = step(self._ids(tokens[:, i - 1 : i]), cache)[:, -1]
                tokens[:, i] = force[:, i] if force is not None else scores.argmax(-1)
                if keep_logits:
                    logs.append(scores[0:1])
        elif force is not None:
            self._forced_chunks(step, cache, tokens, force, logs, keep_logits)
        else:
            self._speculate(step, draft, cache, tokens, out)
        if keep_logits:
            out.logits = torch.cat(logs)[:n_new]
        return out

    def _speculate(
        self, step: Callable, draft: Callable, cache: Any, tokens: torch.Tensor, out: DecodeOutput
    ) -> None:
        n_new, k = self.new_tokens, self.draft_tokens
        i = 1
        while i < n_new:
            p = cache_length(cache)  # tokens[:, i - 1] is the next input, not yet cached
            cur = tokens[:, i - 1 : i]
            drafts, d = [], cur
            for _ in range(k):
                d = draft(self._ids(d), cache)[:, -1].argmax(-1, keepdim=True)
                drafts.append(d)
            guess = torch.cat(drafts, dim=1)  # (batch, k)
            rollback(cache, p)
            verified = step(self._ids(torch.cat([cur, guess], dim=1)), cache).argmax(-1)
            agree = (verified[:, :k] == guess).all(dim=0)  # every image must agree
            accepted = int(agree.long().cumprod(0).sum())
            take = min(accepted + 1, n_new - i)
            tokens[:, i : i + take] = verified[:, :take]
            out.drafted += k
            out.accepted += accepted
            i += take
            rollback(cache, p + take)

    def _forced_chunks(
        self,
        step: Callable,
        cache: Any,
        tokens: torch.Tensor,
        force: torch.Tensor,
        logs: list[torch.Tensor],
        keep_logits: bool,
    ) -> None:
        """Teacher forcing with the verify pass's shapes: chunks of ``draft_tokens + 1``."""
        n_new, width = self.new_tokens, self.draft_tokens + 1
        padded = torch.cat([force, force.new_zeros((force.shape[0], width))], dim=1)
        i = 1
        while i < n_new:
            scores = step(self._ids(padded[:, i - 1 : i - 1 + width]), cache)
            take = min(width, n_new - i)
            tokens[:, i : i + take] = force[:, i : i + take]
            if keep_logits:
                logs.append(scores[0, :take])
            i += take

    # -------------------------------------------------------------- measurement hooks
    def forced_logits(self, run: Callable, base_tokens: torch.Tensor) -> torch.Tensor:
        """Image 0's per-step logits when every image is fed ``base_tokens`` (1-D)."""
        force = base_tokens[None].expand(self.batch, -1).to(self.device)
        return run(force=force, keep_logits=True).logits

    def deviation(self, base: Any, out: Any, base_extra: Any = None, extra: Any = None) -> dict:
        return deviation.token_deviation(base.tokens[0], out.tokens[0], base_extra, extra)

    def stats(self, out: DecodeOutput) -> dict[str, Any]:
        if not out.drafted:
            return {}
        return {
            "drafted": out.drafted,
            "accepted": out.accepted,
            "acceptance_rate": out.accepted / out.drafted,
        }

    def describe(self) -> dict[str, Any]:
        d = super().describe() | {
            "cache": self.cache,
            "batch": self.batch,
            "rows": self.rows,
            "head": "image tokens only" if "image_head" in self.applied else "full vocabulary",
            "unit": f"prefill {self.prompt_len} + {self.new_tokens} greedy tokens, "
            f"batch {self.batch}{' x2 rows (CFG)' if self.cfg else ''}"
            + (f"; {self.size_note}" if self.size_note else ""),
        }
        if self.draft_layers is not None:
            d["speculative"] = f"draft {self.draft_tokens} tokens with {self.draft_layers} layers"
        return d
