"""Build the SparseEHR GPTModel (this pipeline stage's part of it) through Megatron-Core."""

from __future__ import annotations

import torch

from sparseehr_mcore.compat import apply_compat, have_cuda
from sparseehr_mcore.config import ModelConfig, ParallelConfig
from sparseehr_mcore.model.specs import decoder_block_spec, resolve_transformer_impl
from sparseehr_mcore.model.transformer_config import to_transformer_config

from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel


def build_model(
    model: ModelConfig,
    parallel: ParallelConfig,
    *,
    precision: str = "fp32",
    recompute: bool = False,
    per_token_loss: bool = False,
    local_attention: str = "sdpa",
    pp_rank: int | None = None,
) -> GPTModel:
    """The GPTModel for this process's place in the parallel layout, on the current CUDA device
    where there is one.

    `parallel_state.initialize_model_parallel` must have run with the sizes in `parallel`
    (`sparseehr_mcore.distributed.initialize_distributed` does both).

    Args:
        model: the architecture.
        parallel: the parallel layout.
        precision: `fp32`, `bf16` or `fp8` (see `to_transformer_config`).
        recompute: full activation recomputation.
        per_token_loss: see `to_transformer_config`.
        local_attention: the local spec's core attention, `sdpa` (torch's fused kernels) or
            `unfused` (Megatron-Core's `DotProductAttention`); ignored under Transformer Engine.
        pp_rank: the pipeline stage to build; defaults to this process's stage.
    """
    apply_compat()
    parallel.validate(model)
    impl = resolve_transformer_impl(model.transformer_impl)
    config = to_transformer_config(
        model, parallel, precision=precision, transformer_impl=impl, recompute=recompute, per_token_loss=per_token_loss
    )
    if pp_rank is None:
        pp_rank = parallel_state.get_pipeline_model_parallel_rank()
    last_stage = parallel.pp - 1
    model = GPTModel(
        config=config,
        transformer_layer_spec=decoder_block_spec(
            model, config, transformer_impl=impl, local_attention=local_attention, pp_rank=pp_rank
        ),
        vocab_size=model.padded_vocab_size,
        max_sequence_length=model.seq_length,
        pre_process=pp_rank == 0,
        post_process=pp_rank == last_stage,
        share_embeddings_and_output_weights=model.tie_embeddings,
        position_embedding_type="rope",
        rotary_base=model.rotary_base,
    )
    if have_cuda():
        # Megatron-Core makes its linear weights on the current device, but the router, the shared
        # expert's gate and the local spec's torch norms on the CPU; Megatron-LM's get_model moves
        # the whole model the same way.
        model.cuda(torch.cuda.current_device())
    return model
