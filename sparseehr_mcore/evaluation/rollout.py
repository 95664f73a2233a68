"""Rolling a model forward from a visit's `[BEGIN]`: batched `generate` with the KV cache, under
the grammar of a bundle, greedy or sampled with per-visit seeds.

The grammar is what the data guarantees about a bundle: inside one, only codes not yet in it, or
`[END]`; between bundles (when a roll-out spans several), `[BEGIN]`, `[EOD]` or a time-gap token.
Every per-step distribution the protocols use is the model's next-token distribution renormalised
over what the grammar allows (`step_probabilities`), computed from raw logits and the generated
tokens alone, so a teacher-forced forward of another engine over the same tokens gives the same
numbers.

Sampling draws `argmax(logits / T + Gumbel noise)` with the noise of each (visit, roll-out, step)
from its own seed: the same tokens whatever the batch a visit lands in, and a plain greedy
`generate` does the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from sparseehr_mcore.evaluation.codes import CodeSpace


@dataclass(frozen=True)
class GrammarIds:
    """Token classes of the bundle grammar over the model's (padded) vocabulary."""

    begin: int
    end: int
    eod: int
    pad: int
    code_mask: torch.Tensor  # [V] ids allowed inside a bundle (codes and typed unknowns)
    between_mask: torch.Tensor  # [V] ids allowed between bundles

    @classmethod
    def build(cls, codes: CodeSpace, tokens: list[str], special_ids: dict[str, int], padded_vocab: int) -> "GrammarIds":
        code_mask = torch.zeros(padded_vocab, dtype=torch.bool)
        code_mask[: codes.vocab_size] = torch.from_numpy(codes.bundle_code_mask)
        between = torch.zeros(padded_vocab, dtype=torch.bool)
        for index, token in enumerate(tokens):
            if token.startswith("[GAP:"):
                between[index] = True
        between[special_ids["bundle_begin"]] = True
        between[special_ids["eod"]] = True
        return cls(begin=special_ids["bundle_begin"], end=special_ids["bundle_end"], eod=special_ids["eod"],
                   pad=special_ids["pad"], code_mask=code_mask, between_mask=between)


class GrammarState:
    """Where each of a batch of roll-outs stands in the grammar; every roll-out starts inside a
    bundle (its context ends with `[BEGIN]`)."""

    def __init__(self, grammar: GrammarIds, batch: int, device: torch.device) -> None:
        self.grammar = grammar
        self.code_mask = grammar.code_mask.to(device)
        self.between_mask = grammar.between_mask.to(device)
        self.inside = torch.ones(batch, dtype=torch.bool, device=device)
        self.used = torch.zeros((batch, len(grammar.code_mask)), dtype=torch.bool, device=device)
        self.rows = torch.arange(batch, device=device)

    def allowed(self) -> torch.Tensor:
        """[batch, V] ids each roll-out may take next."""
        in_bundle = self.code_mask[None] & ~self.used
        in_bundle[:, self.grammar.end] = True
        return torch.where(self.inside[:, None], in_bundle, self.between_mask[None])

    def advance(self, tokens: torch.Tensor) -> None:
        """Take one generated token per roll-out."""
        is_code = self.code_mask[tokens] & self.inside
        self.used[self.rows[is_code], tokens[is_code]] = True
        ended = tokens == self.grammar.end
        self.used[ended] = False
        self.inside = torch.where(ended, torch.zeros_like(self.inside), self.inside | (tokens == self.grammar.begin))


def step_probabilities(tokens: np.ndarray, logits: np.ndarray, *, grammar: GrammarIds, columns: np.ndarray,
                       temperature: float = 1.0) -> np.ndarray:
    """[steps, len(columns)]: at each step, the probability of each of `columns` under the model's
    next-token distribution (at `temperature`) renormalised over what the grammar allows.

    Args:
        tokens: the roll-out's tokens; step t predicted `tokens[t]` from the context and `tokens[:t]`.
        logits: [steps, V] raw logits at each step.
        grammar: the grammar's token classes.
        columns: the vocabulary ids wanted (the diagnosis candidates).
    """
    steps = len(tokens)
    state = GrammarState(grammar, 1, torch.device("cpu"))
    masks = torch.zeros((steps, logits.shape[1]), dtype=torch.bool)
    for step in range(steps):
        masks[step] = state.allowed()[0]
        state.advance(torch.tensor([int(tokens[step])]))
    scaled = torch.from_numpy(np.asarray(logits, dtype=np.float64)) / temperature
    scaled = scaled.masked_fill(~masks, -torch.inf)
    return torch.softmax(scaled, dim=-1)[:, torch.from_numpy(columns)].numpy()


class _GrammarProcessor(LogitsProcessor):
    def __init__(self, grammar: GrammarIds, batch: int, context_length: int, device: torch.device) -> None:
        self.state = GrammarState(grammar, batch, device)
        self.context_length = context_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] > self.context_length:
            self.state.advance(input_ids[:, -1])
        return scores.masked_fill(~self.state.allowed(), -torch.inf)


class _GumbelProcessor(LogitsProcessor):
    """Scales by 1/T and adds Gumbel noise from each row's own seed and the step: greedy decoding
    of the result samples from softmax(logits / T)."""

    def __init__(self, seeds: list[tuple[int, ...]], temperature: float, context_length: int) -> None:
        self.seeds, self.temperature, self.context_length = seeds, temperature, context_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.context_length
        noise = torch.empty_like(scores)
        for row, seed in enumerate(self.seeds):
            generator = torch.Generator().manual_seed(int(np.random.SeedSequence([*seed, step]).generate_state(1)[0]))
            uniform = torch.rand(scores.shape[1], generator=generator, dtype=torch.float64).clamp_(1e-300, 1.0)
            noise[row] = (-torch.log(-torch.log(uniform))).to(scores.dtype)
        return scores / self.temperature + noise


class _QuotaStop(StoppingCriteria):
    """A row is done after `quota` bundle ends, or at `[EOD]`."""

    def __init__(self, quotas: list[int], *, end: int, eod: int, context_length: int, device: torch.device) -> None:
        self.quotas = torch.tensor(quotas, device=device)
        self.end, self.eod, self.context_length = end, eod, context_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        generated = input_ids[:, self.context_length:]
        return ((generated == self.end).sum(dim=1) >= self.quotas) | (generated == self.eod).any(dim=1)


@dataclass(frozen=True)
class RollOut:
    tokens: np.ndarray  # generated ids, the stopping token included
    logits: np.ndarray  # [steps, V] raw logits; step t predicted tokens[t]


def roll_out(
    model: torch.nn.Module, contexts: list[np.ndarray], *, quotas: list[int], grammar: GrammarIds,
    max_new_tokens: int, seeds: list[tuple[int, ...]] | None = None, temperature: float = 1.0,
    use_cache: bool = True, device: torch.device = torch.device("cpu"),
) -> list[RollOut]:
    """One batched `generate` over left-padded `contexts` (each ending with `[BEGIN]`).

    Args:
        model: a Hugging Face causal LM (eval mode, on `device`).
        contexts: token ids per row.
        quotas: bundles each row generates before it stops.
        grammar: the bundle grammar.
        max_new_tokens: the cap on generated tokens.
        seeds: per row, the seed tuple of its sampling noise; None decodes greedily.
        temperature: sampling temperature.
        use_cache: the KV cache (off only to measure it or to check it changes nothing).
    """
    batch, length = len(contexts), max(len(c) for c in contexts)
    input_ids = torch.full((batch, length), grammar.pad, dtype=torch.int64)
    attention = torch.zeros((batch, length), dtype=torch.int64)
    for row, context in enumerate(contexts):
        input_ids[row, length - len(context):] = torch.from_numpy(np.asarray(context, dtype=np.int64))
        attention[row, length - len(context):] = 1
    processors = [_GrammarProcessor(grammar, batch, length, device)]
    if seeds is not None:
        processors.append(_GumbelProcessor(seeds, temperature, length))
    with torch.no_grad():
        out = model.generate(
            input_ids.to(device), attention_mask=attention.to(device), max_new_tokens=max_new_tokens,
            do_sample=False, num_beams=1, use_cache=use_cache, pad_token_id=grammar.pad, eos_token_id=grammar.eod,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList(
                [_QuotaStop(quotas, end=grammar.end, eod=grammar.eod, context_length=length, device=device)]
            ),
            output_logits=True, return_dict_in_generate=True,
        )
    generated = out.sequences[:, length:].cpu().numpy()
    logits = torch.stack(out.logits, dim=1).float().cpu().numpy()  # [batch, steps, V]
    results = []
    for row in range(batch):
        steps = _steps_taken(generated[row], quota=quotas[row], end=grammar.end, eod=grammar.eod)
        results.append(RollOut(tokens=generated[row, :steps].copy(), logits=logits[row, :steps].copy()))
    return results


def _steps_taken(generated: np.ndarray, *, quota: int, end: int, eod: int) -> int:
    """How many of a row's generated tokens are its own (generate pads rows that stopped early)."""
    ends = 0
    for step, token in enumerate(generated):
        if token == eod:
            return step + 1
        if token == end:
            ends += 1
            if ends >= quota:
                return step + 1
    return len(generated)
