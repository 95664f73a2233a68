"""A README.md model card for an exported checkpoint: architecture, data, and metrics when given."""

from __future__ import annotations

from sparseehr_mcore.config import ModelConfig


def render_model_card(
    model: ModelConfig, *, iteration: int, data_description: str | None = None, metrics: dict[str, float] | None = None
) -> str:
    """Markdown text of the model card (deterministic for the same inputs)."""
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [ehr, mixture-of-experts, qwen2_moe, sparseehr]",
        "---",
        f"# SparseEHR `{model.name}` (iteration {iteration})",
        "",
        "A hybrid dense-to-MoE transformer over structured EHR timelines, trained with SparseEHR-MCore "
        "on Megatron-Core and exported as `Qwen2MoeForCausalLM`.",
        "",
        "## Architecture",
        "",
        f"- {model.num_layers} layers, hidden size {model.hidden_size}: the first {model.dense_prefix_layers} dense "
        f"(SwiGLU {model.ffn_hidden_size}), the other {model.num_moe_layers} mixture-of-experts",
        f"- {model.num_experts} routed experts (SwiGLU {model.moe_ffn_hidden_size}), top-{model.router_topk}, "
        "softmax over all experts before top-k, no renormalisation (`norm_topk_prob=false`)",
        f"- shared expert (SwiGLU {model.shared_expert_ffn_hidden_size}), "
        + ("sigmoid-gated" if model.shared_expert_gate else "ungated: exported as a zero gate with its down-projection doubled"),
        f"- {model.num_attention_heads} query heads, {model.num_query_groups} key/value groups, head dim "
        f"{model.head_dim}, RoPE base {model.rotary_base:g}",
        f"- vocabulary {model.vocab_size} (embedding padded to {model.padded_vocab_size} rows; padding ids are "
        f"never produced), sequence length {model.seq_length}, tied embeddings: {model.tie_embeddings}",
        "",
        "## Data",
        "",
        data_description or "Not recorded in the checkpoint.",
        "",
        "## Metrics",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {key} | {value:.6g} |" for key, value in sorted(metrics.items())]
    else:
        lines.append("None given at export.")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("PATH")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        "```",
        "",
    ]
    return "\n".join(lines)
