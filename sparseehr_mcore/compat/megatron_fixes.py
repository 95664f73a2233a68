"""Fixes for Megatron-Core bugs that are not about CPU: applied wherever the condition holds."""

from __future__ import annotations


def define_te_general_gemm_without_te() -> bool:
    """megatron-core 0.16.x defines `moe_utils.te_general_gemm` only when Transformer Engine imports,
    yet `RouterGatingLinearFunction` reads it unconditionally ("NameError: name 'te_general_gemm'
    is not defined" from every fp32 router). Defining it as None selects the torch matmul path that
    the function already has. Fixed upstream in 0.19 (it defines the name itself).

    Returns:
        True when the name was missing and has been defined.
    """
    import megatron.core.transformer.moe.moe_utils as moe_utils

    if hasattr(moe_utils, "te_general_gemm"):
        return False
    moe_utils.te_general_gemm = None
    return True


def keep_checkpoint_write_results_in_process() -> bool:
    """megatron-core 0.16's `FileSystemWriterAsync` (the writer of every torch_dist save, synchronous
    ones included) passes its write results through `multiprocessing.get_context("spawn").Manager()
    .Queue()`: a server process per saving process, started at its first save and stopped only at a
    clean interpreter exit. A run killed with SIGKILL leaves it orphaned (a spawn worker of some
    hundred MiB, its socket open), and a test session that saves in-process keeps it to the end.
    A synchronous save puts and takes the results in the saving process (`AsyncRequest.execute_sync`
    runs the write in place), so an in-process queue carries them with no process at all. This code
    never saves asynchronously (an async save would need the manager's queue).

    Returns:
        True when Megatron-Core had no results queue yet and now uses the in-process one.
    """
    import queue

    import megatron.core.dist_checkpointing.strategies.filesystem_async as filesystem_async

    if filesystem_async._results_queue is not None:
        return False
    filesystem_async._results_queue = queue.Queue()
    return True
