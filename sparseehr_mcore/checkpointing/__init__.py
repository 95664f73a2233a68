"""Checkpoints on disk: the directory layout, its metadata, and model weights via dist_checkpointing.

Megatron-Core is imported here first, once, without its warnings about absent TE/apex.
"""

from sparseehr_mcore.compat.quiet_import import import_megatron_quietly

import_megatron_quietly()
