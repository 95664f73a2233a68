"""Which tokens each expert gets (the paper's tables 2, 4 and 8): per MoE layer, token-to-expert
counts by token type, each expert's share, the shares' standard deviation ("expert util. std",
as in training's metrics) and the token types each expert gets most.

Patients are read whole (truncated to the model's positions like training) through the Hugging
Face form of the model; forward hooks on its routers record the chosen experts of every real
token (padding excluded). The export is exact, so these are the Megatron-Core router's choices.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.evaluation.codes import token_type
from sparseehr_mcore.tokenization.sequences import truncate_left

LAYER_NAME = re.compile(r"layers\.(\d+)\.")


def _routers(model: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """Layer number (0-based) -> the module whose forward returns (logits, weights, expert indices)."""
    found = {}
    for name, module in model.named_modules():
        if type(module).__name__.endswith("TopKRouter"):
            found[int(LAYER_NAME.search(name).group(1))] = module
    return found


def routing_counts(model: torch.nn.Module, prefixes: dict[str, str], *, tokens: list[str], bundle_begin: int,
                   max_positions: int, num_experts: int, batch_size: int, device: torch.device,
                   max_patients: int | None = None, progress=None) -> dict:
    """Counts [layer][expert][type] of routed tokens over the patients of `prefixes`."""
    routers = _routers(model)
    types = sorted({token_type(t) for t in tokens})
    type_index = {t: n for n, t in enumerate(types)}
    type_of_id = np.array([type_index[token_type(t)] for t in tokens], dtype=np.int64)
    counts = {layer: np.zeros((num_experts, len(types)), dtype=np.int64) for layer in routers}
    captured: dict[int, torch.Tensor] = {}
    hooks = [module.register_forward_hook(lambda m, i, out, layer=layer: captured.__setitem__(layer, out[2]))
             for layer, module in routers.items()]
    sequences = []
    try:
        for prefix in prefixes.values():
            dataset = open_dataset(Path(prefix))
            for document in range(len(dataset)):
                if max_patients is not None and len(sequences) >= max_patients:
                    break
                ids = np.array(dataset[document], dtype=np.int64)
                sequences.append(truncate_left(ids, max_positions, bundle_begin=bundle_begin))
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start:start + batch_size]
            length = max(len(s) for s in batch)
            ids = torch.zeros((len(batch), length), dtype=torch.int64)
            attention = torch.zeros((len(batch), length), dtype=torch.int64)
            for row, sequence in enumerate(batch):
                ids[row, : len(sequence)] = torch.from_numpy(sequence)
                attention[row, : len(sequence)] = 1
            with torch.no_grad():
                model(input_ids=ids.to(device), attention_mask=attention.to(device))
            real = attention.reshape(-1).bool().numpy()
            token_types = type_of_id[np.minimum(ids.reshape(-1).numpy(), len(tokens) - 1)][real]
            for layer, chosen in captured.items():
                experts = chosen.reshape(len(real), -1).cpu().numpy()[real]  # [tokens, top-k]
                for slot in range(experts.shape[1]):
                    np.add.at(counts[layer], (experts[:, slot], token_types), 1)
            if progress is not None:
                progress.update(len(batch))
    finally:
        for hook in hooks:
            hook.remove()
    return summarise(counts, types, patients=len(sequences))


def summarise(counts: dict[int, np.ndarray], types: list[str], *, patients: int, top: int = 3) -> dict:
    """Shares, util std and each expert's most frequent types (by share and by lift) per layer."""
    layers = {}
    for layer, table in sorted(counts.items()):
        per_expert = table.sum(axis=1)
        shares = per_expert / max(per_expert.sum(), 1)
        type_totals = table.sum(axis=0)
        experts = []
        for expert in range(table.shape[0]):
            share_of_expert = table[expert] / max(per_expert[expert], 1)
            overall = type_totals / max(type_totals.sum(), 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                lift = np.where(overall > 0, share_of_expert / overall, 0.0)
            by_share = np.argsort(-share_of_expert, kind="stable")[:top]
            # Lift only for types with enough tokens to mean something.
            eligible = np.flatnonzero(type_totals >= max(10, type_totals.sum() // 1000))
            by_lift = eligible[np.argsort(-lift[eligible], kind="stable")[:top]]
            experts.append({
                "share": float(shares[expert]), "tokens": int(per_expert[expert]),
                "top_types": [{"type": types[t], "share_of_expert": float(share_of_expert[t])} for t in by_share
                              if table[expert, t]],
                "most_enriched_types": [{"type": types[t], "lift": float(lift[t])} for t in by_lift if table[expert, t]],
            })
        layers[str(layer)] = {
            "expert_shares": shares.tolist(), "expert_util_std": float(shares.std()),
            "counts_by_type": {types[t]: table[:, t].tolist() for t in range(len(types)) if type_totals[t]},
            "experts": experts,
        }
    stds = [v["expert_util_std"] for v in layers.values()]
    return {"patients": patients, "types": types, "layers": layers,
            "mean_expert_util_std": float(np.mean(stds)) if stds else None}
