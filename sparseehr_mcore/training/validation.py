"""Validation: the mean loss per target token over a fixed set of validation batches."""

from __future__ import annotations

import torch

from sparseehr_mcore.training.data import micro_batches
from sparseehr_mcore.training.metrics import ExpertUsage
from sparseehr_mcore.training.setup import RunParts
from sparseehr_mcore.training.stack import run_microbatches


def validate(*, parts: RunParts, valid_set, usage: ExpertUsage) -> float:
    """Mean validation loss per target token over `eval_iters` global batches, always the same ones
    (from sample 0). Routing is not counted in the expert shares, and the model returns to training
    mode afterwards."""
    train, place = parts.run.train, parts.place
    batches = micro_batches(
        valid_set, start_sample=0, micro_batch_size=train.micro_batch_size,
        data_parallel_rank=place.dp_rank, data_parallel_size=place.dp_size,
    )  # fmt: skip
    model = parts.stack.model
    model.eval()
    usage.paused = True
    loss_sum = tokens = 0.0
    with torch.no_grad():
        for _ in range(train.eval_iters):
            batch_loss, batch_tokens = run_microbatches(
                model, batches, num_microbatches=parts.num_microbatches, micro_batch_size=train.micro_batch_size,
                seq_length=parts.run.model.seq_length, forward_only=True,
            )  # fmt: skip
            loss_sum, tokens = loss_sum + batch_loss, tokens + batch_tokens
    usage.paused = False
    model.train()
    return loss_sum / max(tokens, 1.0)
