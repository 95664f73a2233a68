"""Named shims that let Megatron-Core 0.16-0.19 run on a CPU-only torch build with gloo.

Megatron-Core builds models on CPU, but a few places call CUDA unconditionally. Each shim below
patches exactly one such place, says what fails without it, and is applied only when CUDA is absent
(`apply_cpu_shims`). GPU runs never touch this module. `tests/integration/test_compat_necessity.py`
runs Megatron-Core with each shim left out and fails if a shim stopped being needed or another
became necessary.

The CPU generator stands in for "the CUDA generator": Megatron's RNG tracker keeps named generator
states (data-parallel, tensor-parallel, expert-parallel) and forks between them; on CPU those states
are CPU generator states, so dropout and initialisation stay reproducible under `torch.manual_seed`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import types
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Shim:
    """One patch of Megatron-Core or torch.cuda, with the failure it prevents."""

    name: str
    apply: Callable[[], None]
    failure_without: str  # a substring of the error Megatron-Core raises without this shim
    # The smallest scenario that hits the failure: "model_step" (build, forward, backward through
    # the pipeline schedule), "expert_parallel" (the same with EP=2), "training_step" (with the
    # Megatron optimizer: clipping, DDP), "bf16_training_step" (the same in bf16, with the
    # mixed-precision optimizer's fp32 main parameters).
    scenario: str


def _patch_rng_tracker() -> None:
    """`CudaRNGStatesTracker.add/fork` read and write `torch.cuda` generator states."""
    from megatron.core.tensor_parallel import random as mcore_random

    def get_state(device="cuda", clone=False, graph_safe=False):  # noqa: ARG001 (Megatron's signature)
        return torch.get_rng_state()

    def set_state(new_state, device=-1, graph_safe=False):  # noqa: ARG001
        torch.set_rng_state(new_state)

    def add(self, name, seed):
        # Same bookkeeping as Megatron's `add`, with the CPU generator as the tracked generator.
        self._is_initialized = True
        if seed in self.seeds_:
            raise Exception(f"seed {seed} already exists")
        self.seeds_.add(seed)
        if name in self.states_:
            raise Exception(f"rng state {name} already exists")
        outer_state = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states_[name] = torch.get_rng_state()
        torch.set_rng_state(outer_state)

    mcore_random._get_cuda_rng_state = get_state
    mcore_random._set_cuda_rng_state = set_state
    mcore_random.CudaRNGStatesTracker.add = add


def _patch_current_device() -> None:
    """`torch.cuda.current_device()` is used as a `device=` argument (rotary frequencies, router,
    tensor-parallel buffers, all-to-all outputs); the CPU is the current device here."""
    torch.cuda.current_device = lambda: torch.device("cpu")


class _InertEvent:
    """A CUDA event on a device that runs everything in order: always complete."""

    def __init__(self, *args, **kwargs):
        pass

    def record(self, *args, **kwargs):
        pass

    def wait(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True


class _InertStream:
    """A CUDA stream on a device with one in-order queue: waiting on it is a no-op."""

    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, *args, **kwargs):
        pass

    def wait_event(self, *args, **kwargs):
        pass

    def record_event(self, *args, **kwargs):
        return _InertEvent()

    def synchronize(self):
        pass

    def __eq__(self, other):
        return isinstance(other, _InertStream)

    def __hash__(self):
        return 0


def _patch_cuda_streams() -> None:
    """The all-to-all token dispatcher creates `torch.cuda.Stream()` and events for overlapping its
    device-to-host copies of split sizes; CPU work is in order, so inert streams are exact."""
    the_stream = _InertStream()
    torch.cuda.Stream = _InertStream
    torch.cuda.Event = _InertEvent
    torch.cuda.current_stream = lambda *args, **kwargs: the_stream
    torch.cuda.default_stream = lambda *args, **kwargs: the_stream
    torch.cuda.stream = lambda stream=None: contextlib.nullcontext()
    torch.cuda.synchronize = lambda *args, **kwargs: None


def _patch_split_sizes_to_host() -> None:
    """With EP > 1 the all-to-all dispatcher turns its split sizes into host lists through
    `maybe_move_tensor_to_cpu`, which converts only CUDA tensors; CPU tensors then reach
    `all_to_all_single` and fail its argument check."""
    import megatron.core.transformer.moe.moe_utils as moe_utils
    import megatron.core.transformer.moe.token_dispatcher as token_dispatcher

    original = moe_utils.maybe_move_tensor_to_cpu

    def move_to_host(tensor, as_numpy=False, record_stream=False):
        if torch.is_tensor(tensor) and not tensor.is_cuda:
            return tensor.numpy() if as_numpy else tensor
        return original(tensor, as_numpy=as_numpy, record_stream=record_stream)

    moe_utils.maybe_move_tensor_to_cpu = move_to_host
    token_dispatcher.maybe_move_tensor_to_cpu = move_to_host


_FACTORIES_WITH_DEVICE = ("tensor", "zeros", "ones", "empty", "full", "arange", "randn", "empty_like", "zeros_like")
# The Megatron-Core modules that make tensors with device="cuda" on the paths this project runs
# (training, checkpointing). A module missing here fails loudly ("Torch not compiled with CUDA").
_MEGATRON_MODULES_ASKING_FOR_CUDA = (
    "megatron.core.dist_checkpointing.exchange_utils",
    "megatron.core.dist_checkpointing.strategies.state_dict_saver",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.optimizer.grad_scaler",
    "megatron.core.optimizer.optimizer",
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.pipeline_parallel.utils",
    "megatron.core.rerun_state_machine",
    "megatron.core.tensor_parallel.data",
    "megatron.core.transformer.moe.moe_utils",
    "megatron.core.transformer.utils",
    "megatron.core.utils",
)


def _on_cpu(device):
    if device is not None and torch.device(device).type == "cuda":
        return torch.device("cpu")
    return device


class _TorchServingCudaOnCpu(types.ModuleType):
    """`torch` as Megatron-Core's modules see it on a CPU-only build: factories asked for
    device="cuda" make CPU tensors; every other attribute is torch's own."""

    def __init__(self) -> None:
        super().__init__("torch")
        for name in _FACTORIES_WITH_DEVICE:
            setattr(self, name, self._serving_on_cpu(getattr(torch, name)))

    @staticmethod
    def _serving_on_cpu(factory):
        @functools.wraps(factory)
        def factory_on_cpu(*args, **kwargs):
            if "device" in kwargs:
                kwargs["device"] = _on_cpu(kwargs["device"])
            return factory(*args, **kwargs)

        return factory_on_cpu

    def __getattr__(self, name):
        return getattr(torch, name)


def _patch_cuda_device_is_cpu() -> None:
    """Megatron-Core creates tensors with `device="cuda"` (the default causal mask of the local
    attention, pipeline schedules, optimizer, checkpoint exchange) and moves tensors with `.cuda()`
    (embedding sync between pipeline stages). On a CPU-only build the CPU serves those requests.

    Only Megatron-Core's own modules get the CPU-serving `torch`: patching torch's factories for the
    whole process would change them for every library (transformers' meta-device model loading then
    silently leaves RoPE buffers uninitialised). `Tensor.cuda` is patched process-wide: without CUDA
    it can only fail.
    """
    torch_serving_cpu = _TorchServingCudaOnCpu()
    for name in _MEGATRON_MODULES_ASKING_FOR_CUDA:
        importlib.import_module(name)
    for name, module in list(sys.modules.items()):
        if name.startswith("megatron.") and getattr(module, "torch", None) is torch:
            module.torch = torch_serving_cpu
    torch.Tensor.cuda = lambda self, *args, **kwargs: self


def _patch_clip_grads() -> None:
    """`clip_grad_by_total_norm_fp32` asserts every gradient is a `torch.cuda.FloatTensor` before
    scaling it; CPU fp32 gradients fail that check. The CPU version scales the same gradients by the
    same coefficient (Megatron's own `max_norm / (total_norm + 1e-6)`, applied when below 1)."""
    import megatron.core.optimizer.clip_grads as clip_grads
    import megatron.core.optimizer.optimizer as optimizer_module
    from megatron.core.utils import to_local_if_dtensor

    def clip_grad_by_total_norm_fp32(parameters, max_norm, total_norm, use_decoupled_grad=False):
        attribute = "decoupled_grad" if use_decoupled_grad else "grad"
        grads = [to_local_if_dtensor(getattr(p, attribute)).detach() for p in parameters if getattr(p, attribute, None) is not None]
        clip_coeff = max_norm / (total_norm + 1.0e-6)
        if clip_coeff < 1.0:
            torch._foreach_mul_(grads, clip_coeff)

    clip_grads.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32
    optimizer_module.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32


# The CUDA tensor type names Megatron-Core's mixed-precision optimizer sorts parameters by.
_CUDA_TYPE_NAMES = {
    torch.float16: "torch.cuda.HalfTensor",
    torch.bfloat16: "torch.cuda.BFloat16Tensor",
    torch.float32: "torch.cuda.FloatTensor",
}


@contextlib.contextmanager
def _cpu_tensors_named_as_cuda():
    """While open, `tensor.type()` of a CPU fp16/bf16/fp32 tensor gives its CUDA type name."""
    original = torch.Tensor.type

    def type_named_as_cuda(self, *args, **kwargs):
        if not args and not kwargs and self.device.type == "cpu" and self.dtype in _CUDA_TYPE_NAMES:
            return _CUDA_TYPE_NAMES[self.dtype]
        return original(self, *args, **kwargs)

    torch.Tensor.type = type_named_as_cuda
    try:
        yield
    finally:
        torch.Tensor.type = original


def _patch_float16_optimizer_params() -> None:
    """`Float16OptimizerWithFloat16Params` (bf16/fp16 weights with fp32 main copies) sorts the
    parameters it wraps by `param.type()` against the CUDA names only and raises TypeError for CPU
    tensors. Its constructor runs with CPU tensors named as their CUDA counterparts; everything
    else it does (fp32 main copies, copies back after each step) is device-independent."""
    import megatron.core.optimizer.optimizer as optimizer_module

    cls = optimizer_module.Float16OptimizerWithFloat16Params
    original_init = cls.__init__

    @functools.wraps(original_init)
    def init_with_cpu_params(self, *args, **kwargs):
        with _cpu_tensors_named_as_cuda():
            original_init(self, *args, **kwargs)

    cls.__init__ = init_with_cpu_params


CPU_SHIMS: tuple[Shim, ...] = (
    Shim("rng_tracker", _patch_rng_tracker, "Torch not compiled with CUDA enabled", "model_step"),
    Shim("current_device", _patch_current_device, "Torch not compiled with CUDA enabled", "model_step"),
    Shim("cuda_streams", _patch_cuda_streams, "torch.cuda.Stream requires CUDA support", "model_step"),
    Shim("split_sizes_to_host", _patch_split_sizes_to_host, "all_to_all_single", "expert_parallel"),
    Shim("clip_grads", _patch_clip_grads, "torch.cuda.FloatTensor", "training_step"),
    Shim("cuda_device_is_cpu", _patch_cuda_device_is_cpu, "Torch not compiled with CUDA enabled", "model_step"),
    Shim("float16_optimizer_params", _patch_float16_optimizer_params, "Wrapped parameters must be one of", "bf16_training_step"),
)
