"""Peak memory of one training step of one variant, while the other variants share the process.

The figure is what the variant would need alone: its resident tensors (weights, gradient buffers,
optimizer state, fp32 main weights under bf16), counted by walking them, plus the transient peak of
one step above the memory in use when the step starts. The transient part is read from the
allocator: on CUDA the caching allocator's `max_memory_allocated`; on CPU the c10 allocator's
allocation and free events as torch.profiler records them (the CPU has no allocator statistics of
its own). Neither counts the CUDA context, the Python heap or allocator slack, so a process's
`nvidia-smi` figure or RSS is higher; the label of each reading says which method made it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

CUDA_METHOD = "cuda: resident tensors + torch.cuda.max_memory_allocated above the step's start"
CPU_METHOD = "cpu: resident tensors + c10 CPU allocator events (torch.profiler) above the step's start"


@dataclass(frozen=True)
class MemoryReading:
    """Bytes one variant's training step needs, by part."""

    resident_bytes: int  # weights, gradient buffers and optimizer state of this variant
    step_bytes: int | None  # peak of the step's own allocations above its start; None: not measured
    method: str

    @property
    def peak_bytes(self) -> int | None:
        return None if self.step_bytes is None else self.resident_bytes + self.step_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "peak_bytes": self.peak_bytes}


def _torch_optimizers(optimizer) -> Iterator[torch.optim.Optimizer]:
    """The torch optimizers inside a Megatron-Core (chained) optimizer."""
    if isinstance(optimizer, torch.optim.Optimizer):
        yield optimizer
        return
    for inner in getattr(optimizer, "chained_optimizers", None) or []:
        yield from _torch_optimizers(inner)
    inner = getattr(optimizer, "optimizer", None)
    if inner is not None:
        yield from _torch_optimizers(inner)


def resident_bytes(model: torch.nn.Module, optimizer) -> int:
    """Bytes of the storages behind the model's parameters and gradients and the optimizer's
    parameters and state, each storage counted once (Megatron-Core's gradients are views of one
    contiguous buffer per dtype, and mixed precision adds fp32 copies of the weights)."""
    storages: dict[tuple[str, int], int] = {}

    def add(tensor) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            storage = tensor.untyped_storage()
            storages[(str(storage.device), storage.data_ptr())] = storage.nbytes()

    for parameter in model.parameters():
        add(parameter)
        add(parameter.grad)
        add(getattr(parameter, "main_grad", None))
    for torch_optimizer in _torch_optimizers(optimizer):
        for group in torch_optimizer.param_groups:
            for parameter in group["params"]:
                add(parameter)
        for state in torch_optimizer.state.values():
            for value in state.values():
                add(value)
    return sum(storages.values())


class StepPeak:
    """The transient peak of the code run under `measure()`, in bytes (None until measured)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes: int | None = None
        self.method = CUDA_METHOD if device.type == "cuda" else CPU_METHOD

    @contextmanager
    def measure(self) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - start
            return
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        with profiler:
            yield
        self.bytes = _peak_from_profiler(profiler)


def _peak_from_profiler(profiler: torch.profiler.profile) -> int | None:
    """Largest running sum of CPU allocations minus frees, in time order; None where this torch's
    profiler does not expose its memory events (then no figure is better than a wrong one).

    The profiler sees the frees of blocks allocated while it runs, not of older ones (it says so
    once, "Memory block of unknown size ..."), so this is the peak of the step's own allocations:
    older tensors the step lets go of are not subtracted.
    """
    results = getattr(getattr(profiler, "profiler", None), "kineto_results", None)
    if results is None:
        return None
    events = [
        event
        for event in results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    if not events:  # a training step always allocates: no events means none were recorded
        return None
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()  # negative for a free
        peak = max(peak, running)
    return peak
