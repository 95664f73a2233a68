"""The tiny hybrid model built through Megatron-Core: structure, routing, losses and learning."""

from __future__ import annotations

import pytest
import torch

from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.transformer.mlp import MLP
from megatron.core.transformer.moe.moe_layer import MoELayer
from megatron.core.transformer.moe.moe_utils import clear_aux_losses_tracker, get_moe_layer_wise_logging_tracker


def make_batch(vocab_size: int, seq_length: int, batch_size: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab_size, (batch_size, seq_length + 1), generator=generator)
    positions = torch.arange(seq_length).expand(batch_size, -1)
    return tokens[:, :-1], positions, tokens[:, 1:]


def lm_loss(model, batch):
    tokens, positions, labels = batch
    return model(tokens, positions, None, labels=labels).float().mean()


def test_first_d_layers_are_dense_and_the_rest_moe(build_tiny):
    config, model = build_tiny(num_layers=6, dense_prefix_layers=4)
    layers = model.decoder.layers
    assert len(layers) == 6
    for index, layer in enumerate(layers):
        names = [name for name, _ in layer.named_modules()]
        if index < 4:
            assert type(layer.mlp) is MLP
            assert not any("router" in name for name in names), f"dense layer {index} holds a router"
        else:
            assert isinstance(layer.mlp, MoELayer)
            assert len(layer.mlp.experts.local_experts) == config.num_experts
            assert layer.mlp.shared_experts is not None


@pytest.mark.parametrize("topk", [1, 2])
def test_every_token_goes_to_topk_experts_plus_the_shared_expert(build_tiny, topk):
    config, model = build_tiny(router_topk=topk)
    batch = make_batch(config.vocab_size, config.seq_length)
    num_tokens = batch[0].numel()
    routing_maps, shared_inputs, expert_inputs = [], [], []
    hooks = []
    for layer in model.decoder.layers[config.dense_prefix_layers :]:
        hooks.append(layer.mlp.router.register_forward_hook(lambda m, i, out: routing_maps.append(out[1])))
        hooks.append(layer.mlp.shared_experts.register_forward_hook(lambda m, i, out: shared_inputs.append(i[0])))
        for expert in layer.mlp.experts.local_experts:
            hooks.append(expert.register_forward_hook(lambda m, i, out: expert_inputs.append(i[0].shape[0])))
    with torch.no_grad():
        lm_loss(model, batch)
    for hook in hooks:
        hook.remove()
    assert len(routing_maps) == config.num_moe_layers
    for routing_map in routing_maps:  # [tokens, experts] booleans
        assert routing_map.shape == (num_tokens, config.num_experts)
        assert torch.equal(routing_map.sum(dim=1), torch.full((num_tokens,), topk))
    for shared_input in shared_inputs:
        assert shared_input.shape[0] * shared_input.shape[1] == num_tokens  # [seq, batch, hidden]: all tokens
    # Experts together receive exactly top-k copies of every token (no dropping, no duplication).
    per_layer = [sum(expert_inputs[i : i + config.num_experts]) for i in range(0, len(expert_inputs), config.num_experts)]
    assert per_layer == [num_tokens * topk] * config.num_moe_layers


def router_grads(model, batch) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    lm_loss(model, batch).backward()
    return [p.grad.clone() for name, p in model.named_parameters() if name.endswith("router.weight")]


def test_top1_router_learns_from_the_lm_loss_alone(build_tiny):
    config, model = build_tiny(aux_loss_type="none", aux_loss_coeff=0.0)
    grads = router_grads(model, make_batch(config.vocab_size, config.seq_length))
    assert len(grads) == config.num_moe_layers
    for grad in grads:
        assert grad.abs().sum() > 0


def test_aux_loss_is_nonzero_and_reaches_the_total_loss(build_tiny):
    batch = None
    grads = {}
    for coeff in (0.0, 1.0):
        config, model = build_tiny(aux_loss_coeff=coeff, aux_loss_type="aux_loss" if coeff else "none")
        batch = batch or make_batch(config.vocab_size, config.seq_length)
        clear_aux_losses_tracker()
        grads[coeff] = router_grads(model, batch)
        tracked = get_moe_layer_wise_logging_tracker()
        if coeff:
            values = tracked["load_balancing_loss"]["values"]
            assert values.shape[0] == config.num_layers
            assert (values[config.dense_prefix_layers :] > 0).all()
            assert (values[: config.dense_prefix_layers] == 0).all()
        clear_aux_losses_tracker()
    # Same weights (same seed), same LM loss: only the aux loss can move the router's gradient.
    for without_aux, with_aux in zip(grads[0.0], grads[1.0]):
        assert not torch.allclose(without_aux, with_aux)


def test_attention_is_grouped_query_with_rope(build_tiny):
    config, model = build_tiny()
    assert config.num_query_groups < config.num_attention_heads
    assert isinstance(model.rotary_pos_emb, RotaryEmbedding)
    assert not hasattr(model.embedding, "position_embeddings")  # no learned absolute positions
    attention = model.decoder.layers[0].self_attention
    qkv_rows = (config.num_attention_heads + 2 * config.num_query_groups) * config.head_dim
    assert attention.linear_qkv.weight.shape == (qkv_rows, config.hidden_size)
    assert attention.num_query_groups_per_partition == config.num_query_groups
    calls = []
    hook = model.rotary_pos_emb.register_forward_hook(lambda m, i, out: calls.append(out.shape))
    with torch.no_grad():
        lm_loss(model, make_batch(config.vocab_size, config.seq_length))
    hook.remove()
    assert calls and calls[0][0] == config.seq_length


def test_loss_falls_over_30_steps_on_a_fixed_batch(build_tiny):
    config, model = build_tiny()
    batch = make_batch(config.vocab_size, config.seq_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(model, batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    clear_aux_losses_tracker()
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(torch.isfinite(torch.tensor(losses)))


def test_activation_recomputation_gives_the_same_gradients(single_process_world):
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model

    config = ModelConfig.from_preset("tiny")
    batch = make_batch(config.vocab_size, config.seq_length)
    grads = []
    for recompute in (False, True):
        seed_everything(1234)
        model = build_model(config, ParallelConfig(), recompute=recompute)
        assert model.config.recompute_granularity == ("full" if recompute else None)
        lm_loss(model, batch).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    clear_aux_losses_tracker()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)
