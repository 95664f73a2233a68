"""One rank of a parallel-parity run, started by tests/integration/test_parallel_parity.py via torchrun.

`--mode reference` (one process): builds the tiny model, takes one forward/backward step on a fixed
batch through Megatron-Core's pipeline schedule, saves the weights with dist_checkpointing, and
writes the loss. `--mode check` (any layout): builds the model from a different seed, loads the
reference weights, takes the same step, and writes its loss, so the test can compare the two.
Each rank writes `OUT/rank<N>.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["reference", "check"], required=True)
    parser.add_argument("--weights", required=True, help="dist checkpoint directory")
    parser.add_argument("--out", required=True, help="directory for per-rank JSON results")
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--pp", type=int, default=1)
    parser.add_argument("--ep", type=int, default=1)
    parser.add_argument("--dispatcher", default="alltoall")
    return parser.parse_args(argv)


def fixed_batch(vocab_size: int, seq_length: int, batch_size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab_size, (batch_size, seq_length + 1), generator=generator)
    return {
        "tokens": tokens[:, :-1].contiguous(),
        "labels": tokens[:, 1:].contiguous(),
        "position_ids": torch.arange(seq_length).expand(batch_size, -1).contiguous(),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.distributed import initialize_distributed, shutdown_distributed
    from sparseehr_mcore.model.builder import build_model
    from sparseehr_mcore.model.introspect import count_built_parameters
    from sparseehr_mcore.checkpointing.weights import load_weights, save_weights

    from megatron.core.pipeline_parallel import get_forward_backward_func

    model_cfg = ModelConfig.from_preset("tiny", token_dispatcher=args.dispatcher)
    parallel = ParallelConfig(
        tensor_model_parallel_size=args.tp, pipeline_model_parallel_size=args.pp, expert_model_parallel_size=args.ep
    )
    place = initialize_distributed(parallel, model=model_cfg, seed=1234 if args.mode == "reference" else 999)
    model = build_model(model_cfg, parallel)
    built_parameters = count_built_parameters(model)
    if args.mode == "check":
        load_weights(model, args.weights)

    batch = fixed_batch(model_cfg.vocab_size, model_cfg.seq_length)

    def loss_func(output_tensor):
        loss = output_tensor.float().mean()
        return loss, {"lm_loss": loss.detach().clone()}

    def forward_step(data_iterator, gpt_model):
        micro = next(data_iterator)
        output = gpt_model(micro["tokens"], micro["position_ids"], None, labels=micro["labels"])
        return output, loss_func

    step_results = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter([batch]),
        model=[model],
        num_microbatches=1,
        seq_length=model_cfg.seq_length,
        micro_batch_size=batch["tokens"].shape[0],
        forward_only=False,
    )
    loss = float(step_results[0]["lm_loss"]) if step_results else None
    grads_finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if args.mode == "reference":
        save_weights(model, args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{place.rank}.json").write_text(
        json.dumps(
            {
                "loss": loss,
                "pp_rank": place.pp_rank,
                "grads_finite": bool(grads_finite),
                "built_parameters": built_parameters,
            }
        )
    )
    shutdown_distributed()


# A multiprocessing spawn child re-imports __main__: keep the guard.
if __name__ == "__main__":
    main()
