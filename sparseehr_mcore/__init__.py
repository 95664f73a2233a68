"""SparseEHR-MCore: a hybrid dense-to-MoE transformer for structured EHR timelines on Megatron-Core.

Importing the package is cheap and silent: Megatron-Core, torch and Transformer Engine are imported by
the submodules that need them (`sparseehr_mcore.model`, `sparseehr_mcore.compat`, ...).
"""

__version__ = "0.1.0"
