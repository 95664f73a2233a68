"""A core attention for the local layer spec on `torch.nn.functional.scaled_dot_product_attention`.

Megatron-Core's local spec computes attention "unfused" (`DotProductAttention`): a `baddbmm` into a
[b*h, s, s] score buffer, a masked softmax, dropout and a `bmm`, with the score matrix and its
probabilities materialised forward and backward. torch's SDPA does the same arithmetic in one
fused kernel (flash attention on CPU and CUDA, memory-efficient attention elsewhere), which is what
plain PyTorch models (and transformers' `sdpa` attention) use.

`SDPADotProductAttention` has `DotProductAttention`'s constructor and forward signature, so it
plugs into `SelfAttentionSubmodules.core_attention` and nothing else changes: no parameters, no
checkpoint keys. It is used by the local spec only; Transformer Engine keeps its own fused
attention. `tests/unit/test_sdpa_attention.py` proves it equal to `DotProductAttention` on the same
q/k/v (forward and gradients, causal, GQA, with and without a given mask).

Semantics, as in `DotProductAttention`:
- query [sq, b, np, hn], key/value [sk, b, ng, hn] with np, ng the heads and query groups of this
  tensor-parallel partition; output [sq, b, np * hn].
- a given `attention_mask` (bool, True = masked out, broadcastable to [b, np, sq, sk]) is the whole
  mask (Megatron builds it causal already); without one, `AttnMaskType.causal` means causal.
  One difference: a query row whose keys are all masked gets zeros here (SDPA) and the mean of
  the values there (Megatron fills masked scores with -10000); such rows (padding) have no target.
- softmax scale 1/sqrt(hn) unless given; `apply_query_key_layer_scaling` divides the scores by the
  layer number and multiplies them back in an fp32 softmax, a net factor of 1, so it changes
  nothing here.
- attention dropout in training only, drawn under the tensor-parallel RNG tracker unless sequence
  parallelism is on (Megatron's rule: heads differ across TP ranks, so their masks must too).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor

from megatron.core import tensor_parallel
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.process_groups_config import ProcessGroupCollection
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.transformer.utils import is_layer_window_attention
from megatron.core.utils import divide

CAUSAL_MASK_TYPES = (AttnMaskType.causal, AttnMaskType.padding_causal)
# `enable_gqa` arrived in torch 2.5; older builds get keys/values expanded.
SDPA_HAS_GQA = torch.__version__ >= (2, 5)


class SDPADotProductAttention(MegatronModule):
    """Drop-in for Megatron-Core's `DotProductAttention` computed by torch's fused SDPA kernels."""

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: float | None = None,
        softmax_scale: float | None = None,
        cp_comm_type: str | None = None,
        pg_collection: ProcessGroupCollection | None = None,
    ) -> None:
        super().__init__(config=config)
        unsupported = {
            "context_parallel_size > 1": config.context_parallel_size != 1,
            f"softmax_type={config.softmax_type!r}": config.softmax_type != "vanilla",
            "sliding-window attention": is_layer_window_attention(
                config.window_size, config.window_attn_skip_freq, layer_number
            ),
        }
        refused = [name for name, present in unsupported.items() if present]
        if refused:
            raise ValueError(
                f"SDPADotProductAttention does not support {', '.join(refused)}; use Megatron-Core's "
                "DotProductAttention (local_attention='unfused') or Transformer Engine"
            )
        self.layer_number = max(1, layer_number)
        self.attn_mask_type = attn_mask_type
        self.attention_type = attention_type
        if pg_collection is None:
            pg_collection = ProcessGroupCollection.use_mpu_process_groups(required_pgs=["tp"])
        self.pg_collection = pg_collection
        self.tp_group = pg_collection.tp
        world_size = pg_collection.tp.size()
        projection_size = config.kv_channels * config.num_attention_heads
        self.hidden_size_per_partition = divide(projection_size, world_size)
        self.hidden_size_per_attention_head = divide(projection_size, config.num_attention_heads)
        self.num_attention_heads_per_partition = divide(config.num_attention_heads, world_size)
        self.num_query_groups_per_partition = divide(config.num_query_groups, world_size)
        self.softmax_scale = (
            1.0 / math.sqrt(self.hidden_size_per_attention_head) if softmax_scale is None else softmax_scale
        )
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout

    def _sdpa_mask(
        self, attention_mask: Tensor | None, attn_mask_type: AttnMaskType, sq: int, sk: int
    ) -> tuple[Tensor | None, bool]:
        """(SDPA's boolean mask with True = attend, is_causal) from Megatron's conventions."""
        if attention_mask is not None:
            return ~attention_mask.bool(), False
        if attn_mask_type in CAUSAL_MASK_TYPES and sq > 1:
            # One query against a cache (decoding) sees every key, as in Megatron's softmax.
            if sq != sk:
                raise ValueError(f"causal attention without a mask needs sq == sk, got {sq} and {sk}")
            return None, True
        return None, False

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias: Tensor | None = None,
        packed_seq_params: PackedSeqParams | None = None,
    ) -> Tensor:
        """Attention of this partition's heads: [sq, b, np, hn] queries -> [sq, b, np * hn]."""
        if packed_seq_params is not None:
            raise ValueError("packed sequences need Transformer Engine's attention (THD layout)")
        if attention_bias is not None:
            raise ValueError("attention_bias is not supported by SDPADotProductAttention")
        sq, batch, heads, _ = query.shape
        sk = key.size(0)
        groups = key.size(2)
        mask_BHQK, is_causal = self._sdpa_mask(attention_mask, attn_mask_type or self.attn_mask_type, sq, sk)
        query_BHQD = query.permute(1, 2, 0, 3)
        key_BGKD = key.permute(1, 2, 0, 3)  # G = H without grouped-query attention
        value_BGKD = value.permute(1, 2, 0, 3)
        gqa = {}
        if heads != groups:
            if mask_BHQK is None and SDPA_HAS_GQA:
                # Flash kernels (CPU and CUDA) read grouped keys/values in place, but only without a mask.
                gqa = {"enable_gqa": True}
            else:
                # Query group g serves heads g*r .. g*r+r-1 (Megatron's repeat_interleave).
                key_BGKD = key_BGKD.repeat_interleave(heads // groups, dim=1)
                value_BGKD = value_BGKD.repeat_interleave(heads // groups, dim=1)
        dropout_p = self.dropout_p if self.training else 0.0
        forked_rng = (
            tensor_parallel.get_cuda_rng_tracker().fork()
            if dropout_p > 0.0 and not self.config.sequence_parallel
            else contextlib.nullcontext()
        )
        with forked_rng:
            context_BHQD = torch.nn.functional.scaled_dot_product_attention(
                query_BHQD, key_BGKD, value_BGKD, attn_mask=mask_BHQK, dropout_p=dropout_p, is_causal=is_causal,
                scale=self.softmax_scale, **gqa,
            )  # fmt: skip
        # [b, np, sq, hn] -> [sq, b, np * hn]
        return context_BHQD.permute(2, 0, 1, 3).reshape(sq, batch, self.hidden_size_per_partition)
