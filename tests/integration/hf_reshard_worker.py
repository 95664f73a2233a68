"""One rank of the layout-independence export test, started by tests/integration/test_hf_layouts.py.

Loads the weights of a reference checkpoint under the given TP/PP/EP layout (dist_checkpointing
reshards them) and saves them again under that layout, with metadata recording it, so the test can
export both checkpoints and compare the Hugging Face files byte for byte.
"""

from __future__ import annotations

import argparse

import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", required=True, help="checkpoint saved under TP=PP=EP=1")
    parser.add_argument("--save", required=True, help="checkpoint directory to write under the layout")
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--pp", type=int, default=1)
    parser.add_argument("--ep", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from sparseehr_mcore.checkpointing.layout import CheckpointMetadata, read_metadata
    from sparseehr_mcore.checkpointing.weights import load_weights, save_weights
    from sparseehr_mcore.config import ParallelConfig
    from sparseehr_mcore.distributed import initialize_distributed, shutdown_distributed
    from sparseehr_mcore.model.builder import build_model

    reference = read_metadata(args.reference)
    parallel = ParallelConfig(
        tensor_model_parallel_size=args.tp, pipeline_model_parallel_size=args.pp, expert_model_parallel_size=args.ep
    )
    place = initialize_distributed(parallel, model=reference.model, seed=999)  # other seed: weights must come from the file
    model = build_model(reference.model, parallel)
    load_weights(model, args.reference)
    metadata = CheckpointMetadata(
        model=reference.model, parallel=parallel, iteration=reference.iteration, kind="weights", world_size=place.world_size
    )
    save_weights(model, args.save, metadata=metadata)
    shutdown_distributed()


if __name__ == "__main__":
    main()
