"""What a run reports: expert utilisation per MoE layer, throughput and FLOP utilisation (the
writers that carry them are in `run_logs`)."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.transformer.moe.router import TopKRouter


class ExpertUsage:
    """Counts, per MoE layer, how many real tokens each routed expert received since the last `collect`.

    Forward hooks on Megatron-Core's routers read the routing map ([tokens, experts] booleans), so
    the counts are what the dispatcher sent, less the positions the router's padding mask leaves out
    (padding; `training.stack.padding_mask`): shares are of the tokens the aux loss balances.
    Validation passes are not counted (`paused`).
    """

    def __init__(self, model: torch.nn.Module, num_experts: int) -> None:
        self.num_experts = num_experts
        self.counts: dict[int, torch.Tensor] = {}
        self.paused = False
        for module in model.modules():
            if isinstance(module, TopKRouter):
                module.register_forward_hook(self._hook_for(module.layer_number), with_kwargs=True)

    def _hook_for(self, layer_number: int):
        def record(module, args, kwargs, output):
            if self.paused or not module.training:
                return
            routing_map_TE = output[1]
            # TopKRouter.forward(input, padding_mask): [seq, batch] bool, True = padding.
            padding_SB = args[1] if len(args) > 1 else kwargs.get("padding_mask")
            if padding_SB is not None:
                routing_map_TE = routing_map_TE & ~padding_SB.reshape(-1, 1)
            # Stays on the router's device: no host sync per layer and micro-batch, and NCCL reduces it.
            tokens_E = routing_map_TE.sum(dim=0).detach().to(torch.float64)
            self.counts[layer_number] = self.counts.get(layer_number, 0) + tokens_E

        return record

    def collect(self) -> dict[int, torch.Tensor]:
        """Token share of each expert per layer (1-based global layer numbers), over the whole
        layout; resets the counts. A collective over the model's process groups."""
        local = dict(self.counts)
        self.counts.clear()
        # Tokens of one layer are spread over TP ranks (sequence parallel) and data-parallel ranks
        # (which include the expert-parallel ones): sum over both.
        for layer in sorted(local):
            for group in (parallel_state.get_tensor_model_parallel_group(), parallel_state.get_data_parallel_group()):
                if dist.get_world_size(group) > 1:
                    dist.all_reduce(local[layer], group=group)
        local = {layer: counts.cpu() for layer, counts in local.items()}
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            gathered: list[dict] = [None] * parallel_state.get_pipeline_model_parallel_world_size()
            dist.all_gather_object(gathered, local, group=parallel_state.get_pipeline_model_parallel_group())
            local = {layer: counts for stage in gathered for layer, counts in stage.items()}
        return {layer: counts / counts.sum().clamp(min=1) for layer, counts in sorted(local.items())}


def expert_share_std(shares: torch.Tensor) -> float:
    """The paper's "expert util. std": standard deviation of the per-expert token shares."""
    return float(shares.std(unbiased=False))


def step_report(
    step, *, aux_losses: dict[str, float], expert_shares: dict[int, torch.Tensor], lr: float, tokens_per_s: float, mfu: float
) -> dict[str, float]:
    """The scalars logged for one training step, by tensorboard tag."""
    values = {
        "train/lm_loss": step.loss,
        "train/lr": lr,
        "train/grad_norm": step.grad_norm,
        "perf/tokens_per_s": tokens_per_s,
        "perf/mfu_vs_measured_matmul_peak": mfu,
        **{f"train/{name}": value for name, value in aux_losses.items()},
    }
    for layer, shares in expert_shares.items():
        values[f"experts/layer{layer:02d}_util_std"] = expert_share_std(shares)
        values.update({f"experts/layer{layer:02d}_expert{e}_share": float(s) for e, s in enumerate(shares)})
    if expert_shares:
        values["experts/util_std_mean"] = sum(expert_share_std(s) for s in expert_shares.values()) / len(expert_shares)
    return values


def format_step_line(iteration: int, train_iters: int, values: dict[str, float], *, skipped: bool) -> str:
    """One console line from `step_report`'s scalars."""
    aux_tags = [t for t in values if t.startswith("train/") and t.endswith("_loss") and t != "train/lm_loss"]
    aux = "".join(f"| {tag.removeprefix('train/')} {values[tag]:.4f} " for tag in aux_tags)
    util = f" | expert-util-std {values['experts/util_std_mean']:.3f}" if "experts/util_std_mean" in values else ""
    return (
        f"step {iteration:6d}/{train_iters} | lm loss {values['train/lm_loss']:.4f} {aux}| lr {values['train/lr']:.3e} | "
        f"grad norm {values['train/grad_norm'] or 0:.3f} | {values['perf/tokens_per_s']:,.0f} tok/s | "
        f"MFU {100 * values['perf/mfu_vs_measured_matmul_peak']:.1f}%{util}" + (" | update skipped" if skipped else "")
    )


def measure_matmul_peak(*, device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """Achieved FLOP/s of a large square matmul on this device: the ceiling FLOP utilisation is
    measured against (datasheet peaks overstate what a CPU or a throttled GPU reaches)."""
    size = 1024 if device.type == "cpu" else 8192
    # Its own generator: the run's random stream (dropout) must not depend on this measurement, or
    # a resumed run, which measures after restoring its RNG state, would draw differently.
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    torch.matmul(a, b)  # warm-up: thread pools, cuBLAS handles
    runs, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        runs += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 3:
            return 2 * size**3 * runs / elapsed
