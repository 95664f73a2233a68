"""Padding stays out of MoE routing statistics: the same patients padded to two sequence lengths give
the same load-balancing loss and the same expert counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder, get_bin_path, get_idx_path
from megatron.core.transformer.moe.moe_utils import clear_aux_losses_tracker, get_moe_layer_wise_logging_tracker

from sparseehr_mcore.config import ModelConfig, ParallelConfig
from sparseehr_mcore.config.train import TrainConfig
from sparseehr_mcore.distributed import seed_everything
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.training.data import SpecialIds, build_patient_datasets, micro_batches
from sparseehr_mcore.training.metrics import ExpertUsage
from sparseehr_mcore.training.stack import build_training_stack, run_microbatches

SPECIAL = SpecialIds(pad=0, eod=1, bundle_begin=2)
BUNDLE_END = 3
PATIENTS = 6
MICRO_BATCH = 3


pytestmark = pytest.mark.usefixtures("fresh_aux_loss_scale")


def write_patients(prefix: str) -> None:
    """Six patients of 9 to 21 ids (demographics, bundles of codes, EOD): all fit in 24 positions."""
    rng = np.random.default_rng(0)
    builder = IndexedDatasetBuilder(get_bin_path(prefix), dtype=np.int32)
    for patient in range(PATIENTS):
        ids = [10 + patient % 3, 20 + patient % 2]
        for _ in range(1 + patient % 4):
            ids += [SPECIAL.bundle_begin, *rng.integers(40, 250, size=2).tolist(), BUNDLE_END]
        ids.append(SPECIAL.eod)
        builder.add_document(torch.tensor(ids, dtype=torch.int32), [len(ids)])
    builder.finalize(get_idx_path(prefix))


def routing_statistics(stack, usage: ExpertUsage, prefix: str, seq_length: int):
    """Load-balancing loss per MoE layer and token count per expert over one pass of the patients."""
    dataset, _ = build_patient_datasets(
        train=([prefix], None), valid=None, sequence_length=seq_length, special=SPECIAL,
        num_train_samples=PATIENTS, num_valid_samples=0, seed=3,
    )  # fmt: skip
    batches = micro_batches(dataset, start_sample=0, micro_batch_size=MICRO_BATCH, data_parallel_rank=0, data_parallel_size=1)
    clear_aux_losses_tracker()
    usage.counts.clear()
    run_microbatches(stack.model, batches, num_microbatches=PATIENTS // MICRO_BATCH, micro_batch_size=MICRO_BATCH,
                     seq_length=seq_length, forward_only=False)  # fmt: skip
    aux = get_moe_layer_wise_logging_tracker()["load_balancing_loss"]["values"].clone()
    return aux, {layer: counts.clone() for layer, counts in usage.counts.items()}


@pytest.fixture
def stack(single_process_world):
    seed_everything(5)
    model = build_model(ModelConfig.from_preset("tiny"), ParallelConfig(), per_token_loss=True)
    return build_training_stack(model, TrainConfig(), precision="fp32")


def test_padding_changes_neither_the_aux_loss_nor_the_expert_counts(tmp_path, stack):
    prefix = str(tmp_path / "patients")
    write_patients(prefix)
    usage = ExpertUsage(stack.model, num_experts=4)
    aux_short, counts_short = routing_statistics(stack, usage, prefix, seq_length=24)
    aux_long, counts_long = routing_statistics(stack, usage, prefix, seq_length=56)  # 2.3x the positions

    moe_layers = aux_short.nonzero().flatten().tolist()
    assert moe_layers == [2, 3]  # tiny: layers 3 and 4 (1-based) are MoE
    torch.testing.assert_close(aux_long, aux_short, rtol=1e-5, atol=0)
    assert sorted(counts_short) == [3, 4]
    for layer, counts in counts_short.items():
        assert torch.equal(counts_long[layer], counts), f"layer {layer}: {counts_long[layer]} vs {counts}"
    # The counted tokens are exactly those inside the LM loss: 6 patients of (length - 1) targets.
    dataset, _ = build_patient_datasets(
        train=([prefix], None), valid=None, sequence_length=24, special=SPECIAL,
        num_train_samples=PATIENTS, num_valid_samples=0, seed=3,
    )  # fmt: skip
    loss_tokens = sum(float(dataset[i]["loss_mask"].sum()) for i in range(PATIENTS))
    assert all(float(counts.sum()) == loss_tokens for counts in counts_short.values())
