"""Configuration dataclasses (one per concern), YAML in and out, unknown keys rejected."""

from sparseehr_mcore.config.base import ConfigError
from sparseehr_mcore.config.model import PRESETS, ModelConfig
from sparseehr_mcore.config.parallel import ParallelConfig

__all__ = ["ConfigError", "ModelConfig", "ParallelConfig", "PRESETS"]
