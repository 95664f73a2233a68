"""Pretraining: data, the Megatron-Core training stack, metrics, checkpoints, the loop.

Megatron-Core is imported here first, once, without its warnings about absent TE/apex.
"""

from sparseehr_mcore.compat.quiet_import import import_megatron_quietly

import_megatron_quietly()
