"""The Hugging Face side of the export tests, in its own process, started by tests/integration/test_hf_*.py.

It imports only transformers (never Megatron-Core or `sparseehr_mcore.compat`): the CPU compat
layer's wrapped tensor factories leave transformers' RoPE buffers uninitialised on
`from_pretrained`, so the two models must not share a process. Loads `--hf` with
`AutoModelForCausalLM`, runs the tokens in `--inputs` (a torch file {"tokens": [B, S],
"patients": list of [S_i] id tensors, "prompts": list of [S0_i], "new_tokens": int}) and writes
{"logits": list of [S_i, V], "generated", "loading_info"} to `--out`.
"""

from __future__ import annotations

import argparse

import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hf", required=True, help="exported Hugging Face folder")
    parser.add_argument("--inputs", required=True, help="torch file with tokens, prompts and new_tokens")
    parser.add_argument("--out", required=True, help="torch file for the results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    inputs = torch.load(args.inputs)
    model, loading_info = AutoModelForCausalLM.from_pretrained(args.hf, output_loading_info=True, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = [model(input_ids=patient[None]).logits[0] for patient in inputs["patients"]]
        # One prompt at a time: greedy decoding stops at EOD (the generation config's eos) with no
        # padding of finished rows to compare around.
        generated = [
            model.generate(prompt[None], attention_mask=torch.ones_like(prompt[None]), max_new_tokens=inputs["new_tokens"], do_sample=False)[0]
            for prompt in inputs["prompts"]
        ]
    torch.save(
        {
            "logits": logits,
            "generated": generated,
            "loading_info": {key: sorted(map(str, value)) for key, value in loading_info.items()},
            "class": type(model).__name__,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
