"""HSTU generative recommender (Zhai et al. 2024) as Lee et al. (arXiv 2410.00215) run it.

One forward pass per request, no decoding loop: the user's history of item ids (``prompt_len``,
default 4814 — Lee et al.'s synthetic L1 inputs average 4813.87 tokens, range 4507-5121) is
embedded and runs through the L1 stack, whose last 2028 positions feed the L2 stack.

Attention is HSTU's pointwise aggregated attention, ``SiLU(Q K^T + rab) / n`` with no softmax,
inside ``genscope.workloads.archs.hstu.PointwiseAttention``; the module's name matches the
taxonomy's attention rule, so its Q·Kᵀ and A·V matmuls are categorized ``attention``.
"""

from __future__ import annotations

import torch

from genscope.capture.context import AxisRules, Runner
from genscope.errors import UserError
from genscope.workloads.base import Built, Settings, Workload


class HSTU(Workload):
    name = "hstu"
    task = "h2a"
    family = "recommender"
    description = (
        "HSTU generative recommender: pointwise (softmax-free) attention layers in two stacks "
        "over a ~4.8k-item user history, one forward pass"
    )
    components = {"model": "model"}
    defaults = {
        "full": {"prompt_len": 4814},
        "tiny": {"prompt_len": 24},
    }

    def validate(self, s: Settings) -> None:
        super().validate(s)
        most = self.component_config("model", s.variant).config(s.size)["max_seq_len"]
        if s.prompt_len is not None and s.prompt_len > most:
            raise UserError(f"hstu: --prompt-len must be <= {most} (got {s.prompt_len})")

    def build(self, s: Settings) -> Built:
        built = super().build(s)
        for layer in built.models["model"].modules():
            if type(layer).__name__ == "HSTULayer":  # label attention rows with the head count
                layer.pointwise_attn.heads = layer.heads
        return built

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("model", "text")  # a 1-D sequence of history items
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        model = built.models["model"]
        with run.phase("model", "forward"):
            vocab = model.item_emb.num_embeddings
            ids = torch.arange(s.batch * s.prompt_len, device=s.torch_device).remainder(vocab)  # type: ignore[operator]
            return model(ids.reshape(s.batch, s.prompt_len))
