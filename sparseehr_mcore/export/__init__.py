"""Checkpoint conversion between Megatron-Core and Hugging Face (`Qwen2MoeForCausalLM`).

`mapping.PARAMETER_MAP` is the one declared table of parameter names; `kinds` holds its named
special cases; `hf_qwen2_moe` reads and writes whole checkpoints and folders.
"""

from sparseehr_mcore.compat.quiet_import import import_megatron_quietly

import_megatron_quietly()
