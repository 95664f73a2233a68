#!/usr/bin/env python
"""Training-step cost, measured side by side in one process (absolute times drift on shared machines;
the ratios are the result):

1. the Megatron-Core step of a config (our training stack: DDP, Megatron optimizer, pipeline schedule)
   against a plain-PyTorch step of the same model as Hugging Face Qwen2-MoE (AdamW, clipping, sdpa
   attention); on the local spec also the same Megatron-Core step with Megatron's unfused attention
   (what the local spec used before its SDPA core attention);
2. achieved FLOP/s of the Megatron-Core step against a large matmul timed in the same rounds (the
   peak this device reaches now), per round;
3. the step-time and active-parameter ratios of D=4 against D=0 on a width-reduced copy of the paper
   architecture (16 layers, 12 or 16 MoE), beside the paper's 0.891 and 0.887.

The device is CUDA where available (bf16: Megatron-Core's mixed precision, autocast for the
plain-PyTorch step), else the CPU (fp32). Contenders alternate step by step, in an order that
rotates every round; each ratio is the median of the per-round ratios, with its interquartile range.

    python benchmarks/train_step.py [--preset small] [--steps 10] [--batch-size 4] [--precision auto]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch

from sparseehr_mcore.config import PRESETS, ModelConfig, ParallelConfig
from sparseehr_mcore.config.train import TrainConfig
from sparseehr_mcore.distributed import initialize_distributed, seed_everything
from sparseehr_mcore.model.accounting import count_parameters, flops_per_token
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.model.specs import resolve_transformer_impl
from sparseehr_mcore.training.stack import build_training_stack, train_step

PAPER_STEP_TIME_RATIO = 1.682 / 1.889
PAPER_ACTIVE_RATIO = 470 / 530


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="config for comparison 1 (default: small)")
    parser.add_argument("--steps", type=int, default=10, help="timed rounds (one step of each contender) (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step (default: 4)")
    parser.add_argument("--seq-length", type=int, default=None, help="tokens per sequence (default: the config's)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on GPU, fp32 on CPU")
    parser.add_argument("--skip-paper-shape", action="store_true", help="leave out comparison 3")
    return parser.parse_args(argv)


def paper_shape(dense_prefix_layers: int) -> ModelConfig:
    """The paper architecture at 1/8 width and 1/8 vocabulary and sequence: same depth, same
    dense/MoE split, same 8:1 query-to-key/value head ratio, same FFN proportions."""
    return ModelConfig.from_preset(
        "paper", name="paper/8", hidden_size=256, num_attention_heads=8, num_query_groups=1, ffn_hidden_size=256,
        moe_ffn_hidden_size=192, shared_expert_ffn_hidden_size=192, vocab_size=2582, seq_length=256,
        dense_prefix_layers=dense_prefix_layers,
    )  # fmt: skip


def synthetic_batch(model: ModelConfig, batch_size: int, seq_length: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.vocab_size, (batch_size, seq_length + 1), generator=generator)
    batch = {
        "tokens": ids[:, :-1],
        "labels": ids[:, 1:],
        "loss_mask": torch.ones(batch_size, seq_length),
        "position_ids": torch.arange(seq_length).expand(batch_size, -1),
    }
    return {name: tensor.contiguous().to(device) for name, tensor in batch.items()}


class MegatronStep:
    def __init__(self, model: ModelConfig, batch: dict[str, torch.Tensor], *, precision: str, local_attention: str = "sdpa") -> None:
        seed_everything(1234)
        gpt = build_model(model, ParallelConfig(), precision=precision, per_token_loss=True, local_attention=local_attention)
        train = TrainConfig(train_iters=1000, lr=1e-4, warmup_iters=0, micro_batch_size=batch["tokens"].shape[0])
        self.stack = build_training_stack(gpt, train, precision=precision)
        self.batch = batch

    def __call__(self) -> None:
        train_step(
            self.stack, iter([self.batch]), num_microbatches=1,
            micro_batch_size=self.batch["tokens"].shape[0], seq_length=self.batch["tokens"].shape[1],
        )  # fmt: skip


class HuggingFaceStep:
    """The same architecture as transformers' Qwen2MoeForCausalLM, trained with plain PyTorch
    (fp32 weights; under bf16, torch.autocast: plain PyTorch's mixed precision)."""

    def __init__(self, model: ModelConfig, batch: dict[str, torch.Tensor], *, precision: str) -> None:
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
        device = batch["tokens"].device
        self.model = Qwen2MoeForCausalLM(config).to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
        )
        self.batch = batch

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            output = self.model(input_ids=self.batch["tokens"], labels=self.batch["tokens"])
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()


class MatmulPeak:
    """A square matmul, repeated for about `target_s` per call: the FLOP/s this device reaches right
    now (datasheet peaks overstate what a shared CPU or a throttled GPU gives)."""

    def __init__(self, device: torch.device, dtype: torch.dtype, *, target_s: float) -> None:
        self.size = 1024 if device.type == "cpu" else 8192
        self.a = torch.randn(self.size, self.size, device=device, dtype=dtype)
        self.b = torch.randn(self.size, self.size, device=device, dtype=dtype)
        torch.matmul(self.a, self.b)  # warm-up: thread pools, cuBLAS handles
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(self.a, self.b)
        synchronize(device)
        self.repeats = max(3, round(target_s / max(time.perf_counter() - start, 1e-6)))

    @property
    def flops(self) -> float:
        return 2.0 * self.size**3 * self.repeats

    def __call__(self) -> None:
        for _ in range(self.repeats):
            torch.matmul(self.a, self.b)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_alternating(contenders: dict[str, Callable[[], None]], *, steps: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each contender, calls interleaved so drift hits all alike; the order
    rotates every round, so no contender always runs first (after another's cache footprint)."""
    for step in contenders.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(steps):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            step = contenders[name]
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return tuple(statistics.quantiles(ordered, n=4)) if len(ordered) > 1 else (ordered[0],) * 3


def ratio_summary(numerator: list[float], denominator: list[float]) -> str:
    """Median of the per-round ratios with their interquartile range (the noise of this machine)."""
    q1, median, q3 = quartiles([a / b for a, b in zip(numerator, denominator)])
    return f"{median:.3f} (IQR {q1:.3f}-{q3:.3f}, {len(numerator)} rounds)"


def resolve_device() -> torch.device:
    """CUDA where there is one (where Megatron-Core and `build_model` put the model), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto`: bf16 on a GPU (Megatron-Core's mixed precision), fp32 on the CPU."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return requested


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device()
    precision = resolve_precision(args.precision, device)
    initialize_distributed(ParallelConfig(), seed=1234)

    model = ModelConfig.from_preset(args.preset)
    impl = resolve_transformer_impl(model.transformer_impl)
    seq = args.seq_length or model.seq_length
    batch = synthetic_batch(model, args.batch_size, seq, device)
    contenders: dict[str, Callable[[], None]] = {"megatron": MegatronStep(model, batch, precision=precision)}
    if impl == "local":
        contenders["megatron-unfused"] = MegatronStep(model, batch, precision=precision, local_attention="unfused")
    contenders["hf"] = HuggingFaceStep(model, batch, precision=precision)
    # Warm the step first so the peak's calibration sees a warm device, then size it like a step.
    contenders["megatron"]()
    synchronize(device)
    start = time.perf_counter()
    contenders["megatron"]()
    synchronize(device)
    peak = MatmulPeak(device, torch.float32 if precision == "fp32" else torch.bfloat16, target_s=time.perf_counter() - start)
    contenders["matmul"] = peak
    times = time_alternating(contenders, steps=args.steps, warmup=args.warmup, device=device)

    step_flops = flops_per_token(model, seq_length=seq)["training"] * args.batch_size * seq
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"device {device.type} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"precision {precision}, transformer_impl {impl}, torch {torch.__version__}"
    )
    print(f"1. {model.name}: {count_parameters(model).total:,} parameters, batch {args.batch_size} x {seq} tokens")
    step_names = {"megatron": "Megatron-Core", "megatron-unfused": "Megatron-Core, unfused attention", "hf": "HF + PyTorch"}
    print("   " + "   ".join(f"{label} {medians[name] * 1e3:.1f} ms" for name, label in step_names.items() if name in medians) + " (medians)")
    print(f"   ratio Megatron-Core / plain PyTorch = {ratio_summary(times['megatron'], times['hf'])}   (goal < 1.0)")
    if "megatron-unfused" in times:
        print(f"   ratio Megatron-Core, unfused attention / plain PyTorch = {ratio_summary(times['megatron-unfused'], times['hf'])}")
        print(f"   ratio SDPA / unfused attention (whole step) = {ratio_summary(times['megatron'], times['megatron-unfused'])}")
    peak_flops = [peak.flops / seconds for seconds in times["matmul"]]
    for name in ("megatron", "megatron-unfused"):
        if name not in times:
            continue
        achieved = [step_flops / seconds for seconds in times[name]]
        q1, share, q3 = quartiles([a / p for a, p in zip(achieved, peak_flops)])
        print(
            f"2. {step_names[name]}: achieved {statistics.median(achieved) / 1e9:,.1f} GFLOP/s of a measured "
            f"{statistics.median(peak_flops) / 1e9:,.1f} GFLOP/s {precision} matmul peak "
            f"({peak.size}^3, same rounds): {share:.1%} (IQR {q1:.1%}-{q3:.1%})   (goal >= 45%)"
        )

    if args.skip_paper_shape:
        return 0
    # Megatron-Core's aux-loss tracker is process-wide and sized by the first model's depth.
    from megatron.core.transformer.moe.moe_utils import get_moe_layer_wise_logging_tracker

    get_moe_layer_wise_logging_tracker().clear()
    hybrid, all_moe = paper_shape(4), paper_shape(0)
    paper_batch = synthetic_batch(hybrid, args.batch_size, hybrid.seq_length, device)
    times = time_alternating(
        {"D=4": MegatronStep(hybrid, paper_batch, precision=precision), "D=0": MegatronStep(all_moe, paper_batch, precision=precision)},
        steps=args.steps, warmup=args.warmup, device=device,
    )  # fmt: skip
    active_ratio = count_parameters(hybrid).active / count_parameters(all_moe).active
    paper_active = count_parameters(ModelConfig.from_preset("paper")).active
    paper_active_d0 = count_parameters(ModelConfig.from_preset("paper", dense_prefix_layers=0)).active
    print(f"3. {hybrid.name} (16 layers, hidden {hybrid.hidden_size}), D=4 against D=0:")
    print(f"   step time ratio    {ratio_summary(times['D=4'], times['D=0'])}   (paper: {PAPER_STEP_TIME_RATIO:.3f})")
    print(f"   active-param ratio {active_ratio:.3f}   (paper preset at full width: {paper_active / paper_active_d0:.3f}; paper: {PAPER_ACTIVE_RATIO:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
