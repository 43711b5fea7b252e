"""GPU memory of one `recursa rl train` process: weights, gradients, optimizer, KV cache,
activations, from the model's config alone (nothing is loaded).

The arithmetic (docs/RL.md works it through for Qwen3-4B at the paper's lengths):

- parameters P from the architecture: embeddings V x H (and an untied LM head V x H), per
  layer the attention projections H x (heads + 2 x kv_heads) x head_dim + heads x head_dim x
  H, the gated MLP 3 x H x I and the norms;
- weights, gradients: P x bytes of the training dtype each; AdamW keeps two states per
  parameter in the parameters' dtype (torch.optim.AdamW): 2 x P x bytes;
- KV cache of one generation batch (TRL generating with the policy itself): sequences x
  (prompt + response) x 2 x layers x kv_heads x head_dim x bytes; with vLLM the KV cache lives
  in vLLM's memory share instead, which is counted whole;
- activations of one micro-batch: with gradient checkpointing each layer keeps its input
  (S x H values) and one layer at a time is recomputed (about 17 x S x H values, Korthikanti
  et al. 2022, no S^2 term with fused attention); without it every layer keeps its 17 x S x H;
  plus the logits of the completion tokens (R x V in the dtype and once more in float32 for
  the log-softmax).

Peak = weights + gradients + optimizer + max(KV cache, activations), plus vLLM's share when
it runs beside training: generation and the backward pass do not overlap, but gradients are
kept across the accumulation steps between which TRL generates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 2**30
#: Values per token and layer that one layer's forward pass keeps for its backward pass.
LAYER_ACTIVATION_VALUES = 17
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Architecture:
    """The sizes of a decoder-only transformer that the estimate needs."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: Any) -> Architecture:
        """From a transformers `PretrainedConfig` (its text config for multimodal models)."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = int(text.num_attention_heads)
        hidden = int(text.hidden_size)
        head_dim = getattr(text, "head_dim", None) or hidden // heads
        return cls(
            layers=int(text.num_hidden_layers),
            hidden=hidden,
            heads=heads,
            kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim),
            intermediate=int(getattr(text, "intermediate_size", None) or 4 * hidden),
            vocab=int(text.vocab_size),
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )

    @property
    def parameters(self) -> int:
        h, d = self.hidden, self.head_dim
        attention = h * (self.heads + 2 * self.kv_heads) * d + self.heads * d * h
        mlp = 3 * h * self.intermediate
        norms = 2 * h + 2 * d  # two RMSNorms per layer; q/k norms (Qwen3) are head_dim each
        embeddings = self.vocab * h * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * (attention + mlp + norms) + h

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per item for one training process; `peak` is what the GPU must hold."""

    weights: int
    gradients: int
    optimizer: int
    kv_cache: int
    activations: int
    vllm_share: int
    kv_detail: str
    activation_detail: str

    @property
    def peak(self) -> int:
        static = self.weights + self.gradients + self.optimizer
        if self.vllm_share:
            return static + self.vllm_share + self.activations
        return static + max(self.kv_cache, self.activations)


def estimate(
    arch: Architecture,
    *,
    dtype: str,
    prompt_tokens: int,
    response_tokens: int,
    generation_batch: int,
    micro_batch: int,
    gradient_checkpointing: bool,
    vllm_share_bytes: int = 0,
) -> MemoryPlan:
    """The memory plan of one process (no offloading, no sharding)."""
    b = DTYPE_BYTES[dtype]
    p = arch.parameters
    seq = prompt_tokens + response_tokens
    per_token = arch.kv_bytes_per_token(b)
    kv = 0 if vllm_share_bytes else generation_batch * seq * per_token
    layer_values = LAYER_ACTIVATION_VALUES * seq * arch.hidden
    if gradient_checkpointing:
        hidden_values = arch.layers * seq * arch.hidden + layer_values
    else:
        hidden_values = arch.layers * layer_values
    logits = response_tokens * arch.vocab * (b + 4)
    activations = micro_batch * (hidden_values * b + logits)
    kv_detail = (
        "in vLLM's share"
        if vllm_share_bytes
        else f"{generation_batch} sequences x {seq:,} tokens x {per_token / 1024:g} KiB"
    )
    how = "checkpointed" if gradient_checkpointing else "all layers kept"
    return MemoryPlan(
        weights=p * b,
        gradients=p * b,
        optimizer=2 * p * b,
        kv_cache=kv,
        activations=activations,
        vllm_share=vllm_share_bytes,
        kv_detail=kv_detail,
        activation_detail=f"micro-batch {micro_batch} x {seq:,} tokens ({how}) + logits",
    )


def gib(n: int | float) -> str:
    return f"{n / GIB:.1f} GiB"
