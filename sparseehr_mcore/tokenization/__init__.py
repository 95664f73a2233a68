"""Tokenizer plugin protocol, registry and Megatron-Core tokenizer metadata."""
