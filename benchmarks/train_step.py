#!/usr/bin/env python
"""Training-step cost, measured side by side in one process (absolute times drift on shared machines;
the ratios are the result):

1. the Megatron-Core step of a config (our training stack: DDP, Megatron optimizer, pipeline schedule)
   against a plain-PyTorch step of the same model as Hugging Face Qwen2-MoE (AdamW, clipping);
2. achieved FLOP/s of the Megatron-Core step against a matmul peak measured in the same run;
3. the step-time and active-parameter ratios of D=4 against D=0 on a width-reduced copy of the paper
   architecture (16 layers, 12 or 16 MoE), beside the paper's 0.891 and 0.887.

Steps alternate between the contenders and the median of each is compared.

    python benchmarks/train_step.py [--preset small] [--steps 10] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sparseehr_mcore.config import PRESETS, ModelConfig, ParallelConfig
from sparseehr_mcore.config.train import TrainConfig
from sparseehr_mcore.distributed import initialize_distributed, seed_everything
from sparseehr_mcore.model.accounting import count_parameters, flops_per_token
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.training.metrics import measure_matmul_peak
from sparseehr_mcore.training.stack import build_training_stack, train_step

PAPER_STEP_TIME_RATIO = 1.682 / 1.889
PAPER_ACTIVE_RATIO = 470 / 530


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="config for comparison 1 (default: small)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per contender (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step (default: 4)")
    parser.add_argument("--seq-length", type=int, default=None, help="tokens per sequence (default: the config's)")
    return parser.parse_args(argv)


def paper_shape(dense_prefix_layers: int) -> ModelConfig:
    """The paper architecture at 1/8 width and 1/8 vocabulary and sequence: same depth, same
    dense/MoE split, same 8:1 query-to-key/value head ratio, same FFN proportions."""
    return ModelConfig.from_preset(
        "paper", name="paper/8", hidden_size=256, num_attention_heads=8, num_query_groups=1, ffn_hidden_size=256,
        moe_ffn_hidden_size=192, shared_expert_ffn_hidden_size=192, vocab_size=2582, seq_length=256,
        dense_prefix_layers=dense_prefix_layers,
    )  # fmt: skip


def synthetic_batch(model: ModelConfig, batch_size: int, seq_length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.vocab_size, (batch_size, seq_length + 1), generator=generator)
    return {
        "tokens": ids[:, :-1],
        "labels": ids[:, 1:],
        "loss_mask": torch.ones(batch_size, seq_length),
        "position_ids": torch.arange(seq_length).expand(batch_size, -1),
    }


class MegatronStep:
    def __init__(self, model: ModelConfig, batch: dict[str, torch.Tensor]) -> None:
        seed_everything(1234)
        gpt = build_model(model, ParallelConfig(), per_token_loss=True)
        train = TrainConfig(train_iters=1000, lr=1e-4, warmup_iters=0, micro_batch_size=batch["tokens"].shape[0])
        self.stack = build_training_stack(gpt, train, precision="fp32")
        self.batch = batch

    def __call__(self) -> None:
        train_step(
            self.stack, iter([self.batch]), num_microbatches=1,
            micro_batch_size=self.batch["tokens"].shape[0], seq_length=self.batch["tokens"].shape[1],
        )  # fmt: skip


class HuggingFaceStep:
    """The same architecture as transformers' Qwen2MoeForCausalLM, trained with plain PyTorch."""

    def __init__(self, model: ModelConfig, batch: dict[str, torch.Tensor]) -> None:
        from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

        config = Qwen2MoeConfig(
            vocab_size=model.padded_vocab_size, hidden_size=model.hidden_size, intermediate_size=model.ffn_hidden_size,
            num_hidden_layers=model.num_layers, num_attention_heads=model.num_attention_heads,
            num_key_value_heads=model.num_query_groups, rms_norm_eps=model.norm_epsilon,
            tie_word_embeddings=model.tie_embeddings, decoder_sparse_step=1,
            moe_intermediate_size=model.moe_ffn_hidden_size,
            shared_expert_intermediate_size=model.shared_expert_ffn_hidden_size,
            num_experts_per_tok=model.router_topk, num_experts=model.num_experts, norm_topk_prob=False,
            output_router_logits=True, router_aux_loss_coef=model.aux_loss_coeff,
            mlp_only_layers=list(range(model.dense_prefix_layers)), qkv_bias=model.qkv_bias,
            max_position_embeddings=model.seq_length, use_cache=False,
        )  # fmt: skip
        torch.manual_seed(1234)
        self.model = Qwen2MoeForCausalLM(config).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
        self.batch = batch

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        output = self.model(input_ids=self.batch["tokens"], labels=self.batch["tokens"])
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()


def time_alternating(contenders: dict[str, object], *, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each contender, steps interleaved so drift hits all alike."""
    for step in contenders.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in contenders}
    for _ in range(steps):
        for name, step in contenders.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_summary(numerator: list[float], denominator: list[float]) -> str:
    """Median of the per-round ratios with their interquartile range (the noise of this machine)."""
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return f"{median:.3f} (IQR {q1:.3f}-{q3:.3f}, {len(ratios)} rounds)"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    initialize_distributed(ParallelConfig(), seed=1234)
    peak = measure_matmul_peak(device=torch.device("cpu"), dtype=torch.float32, seconds=1.0)

    model = ModelConfig.from_preset(args.preset)
    seq = args.seq_length or model.seq_length
    batch = synthetic_batch(model, args.batch_size, seq)
    times = time_alternating(
        {"megatron": MegatronStep(model, batch), "hf": HuggingFaceStep(model, batch)}, steps=args.steps, warmup=args.warmup
    )
    megatron, hf = statistics.median(times["megatron"]), statistics.median(times["hf"])
    achieved = flops_per_token(model, seq_length=seq)["training"] * args.batch_size * seq / megatron
    print(f"1. {model.name}: {count_parameters(model).total:,} parameters, batch {args.batch_size} x {seq} tokens")
    print(f"   Megatron-Core step {megatron * 1e3:8.1f} ms   Hugging Face + PyTorch step {hf * 1e3:8.1f} ms (medians)")
    print(f"   ratio Megatron-Core / plain PyTorch = {ratio_summary(times['megatron'], times['hf'])}   (goal <= 1.2)")
    print(f"2. achieved {achieved / 1e9:,.1f} GFLOP/s of a measured {peak / 1e9:,.1f} GFLOP/s fp32 matmul peak: {achieved / peak:.1%}")

    # Megatron-Core's aux-loss tracker is process-wide and sized by the first model's depth.
    from megatron.core.transformer.moe.moe_utils import get_moe_layer_wise_logging_tracker

    get_moe_layer_wise_logging_tracker().clear()
    hybrid, all_moe = paper_shape(4), paper_shape(0)
    paper_batch = synthetic_batch(hybrid, args.batch_size, hybrid.seq_length)
    times = time_alternating(
        {"D=4": MegatronStep(hybrid, paper_batch), "D=0": MegatronStep(all_moe, paper_batch)}, steps=args.steps, warmup=args.warmup
    )
    active_ratio = count_parameters(hybrid).active / count_parameters(all_moe).active
    paper_active = count_parameters(ModelConfig.from_preset("paper")).active
    paper_active_d0 = count_parameters(ModelConfig.from_preset("paper", dense_prefix_layers=0)).active
    print(f"3. {hybrid.name} (16 layers, hidden {hybrid.hidden_size}), D=4 against D=0:")
    print(f"   step time ratio    {ratio_summary(times['D=4'], times['D=0'])}   (paper: {PAPER_STEP_TIME_RATIO:.3f})")
    print(f"   active-param ratio {active_ratio:.3f}   (paper preset at full width: {paper_active / paper_active_d0:.3f}; paper: {PAPER_ACTIVE_RATIO:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
