"""The SparseEHR model: layer specs, Megatron-Core builder, parameter and FLOP accounting.

Megatron-Core is imported here first, once, without its warnings about absent TE/apex.
"""

from sparseehr_mcore.compat.quiet_import import import_megatron_quietly

import_megatron_quietly()
