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
